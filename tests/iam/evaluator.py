"""IAM's evaluation of identity policies for one request: explicit Deny, else Allow, else implicit deny.

Written here because nothing on PyPI fits (checked, 2026-11): moto's
`moto.iam.access_control.IAMPolicyStatement` answers DENIED for an *Allow*
statement whose condition does not hold (so one prefix-conditioned Allow would
deny a request another statement allows), and PMapper's
`local_policy_simulation` imports `collections.Mapping`, which Python 3.10
removed (unmaintained since 2022). The rules below follow the IAM User Guide,
"Policy evaluation logic" and "IAM JSON policy elements: Condition operators":

* Action matches case-insensitively, Resource case-sensitively; `*` matches any
  run of characters and `?` any one character, in both; NotAction/NotResource
  invert the match.
* Every condition operator of a statement must hold (AND), every key of an
  operator must hold (AND), any value of a key may match (OR). A key absent
  from the request fails the operator, unless the operator ends in `IfExists`
  (then it holds) or is `Null` (which tests presence). `ForAnyValue:` /
  `ForAllValues:` compare multi-valued keys.
* A matching Deny wins; else a matching Allow allows; else the request is denied.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Context = Mapping[str, str | list[str]]


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def _wildcard(pattern: str, value: str, *, case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _lookup(ctx: Context, key: str) -> list[str] | None:
    for k, v in ctx.items():
        if k.lower() == key.lower():  # condition keys are case-insensitive
            return [str(x) for x in _as_list(v)]
    return None


def _string_like(p: str, v: str) -> bool:
    return _wildcard(p, v, case=True)


def _ip(p: str, v: str) -> bool:
    return ipaddress.ip_address(v) in ipaddress.ip_network(p, strict=False)


_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": _string_like,
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": _string_like,
    "NumericEquals": lambda p, v: float(v) == float(p),
    "NumericLessThan": lambda p, v: float(v) < float(p),
    "NumericLessThanEquals": lambda p, v: float(v) <= float(p),
    "NumericGreaterThan": lambda p, v: float(v) > float(p),
    "NumericGreaterThanEquals": lambda p, v: float(v) >= float(p),
    "Bool": lambda p, v: str(p).lower() == str(v).lower(),
    "IpAddress": _ip,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
    "NotIpAddress": "IpAddress",
}


def _operator_holds(op: str, key: str, wanted: list[Any], ctx: Context) -> bool:
    qualifier = ""
    if ":" in op and op.split(":", 1)[0] in ("ForAnyValue", "ForAllValues"):
        qualifier, op = op.split(":", 1)
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    values = _lookup(ctx, key)
    if op == "Null":
        return (values is None) == (str(wanted[0]).lower() == "true")
    if values is None:
        # absent key: IfExists holds; ForAllValues holds vacuously; negated operators do not match
        return if_exists or qualifier == "ForAllValues"
    negated = op in _NEGATED
    base = _NEGATED.get(op, op)
    if base not in _COMPARE:
        raise ValueError(f"condition operator {op!r} is not modelled")
    cmp = _COMPARE[base]

    def one(v: str) -> bool:
        hit = any(cmp(str(p), v) for p in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)  # single-valued keys and ForAnyValue


def _conditions_hold(cond: Mapping[str, Mapping[str, Any]], ctx: Context) -> bool:
    return all(
        _operator_holds(op, key, _as_list(wanted), ctx)
        for op, keys in cond.items()
        for key, wanted in keys.items()
    )


def _element_matches(statement: Mapping[str, Any], name: str, value: str, *, case: bool) -> bool:
    if name in statement:
        return any(_wildcard(p, value, case=case) for p in _as_list(statement[name]))
    negated = f"Not{name}"
    if negated in statement:
        return not any(_wildcard(p, value, case=case) for p in _as_list(statement[negated]))
    return False


def statement_matches(statement: Mapping[str, Any], action: str, resource: str, ctx: Context) -> bool:
    return (
        _element_matches(statement, "Action", action, case=False)
        and _element_matches(statement, "Resource", resource, case=True)
        and _conditions_hold(statement.get("Condition", {}), ctx)
    )


def statements(documents: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [st for doc in documents for st in _as_list(doc["Statement"])]


def decide(documents: Iterable[Mapping[str, Any]], action: str, resource: str, ctx: Context) -> str:
    """'allow', 'explicit deny' or 'implicit deny'."""
    sts = statements(documents)
    if any(st["Effect"] == "Deny" and statement_matches(st, action, resource, ctx) for st in sts):
        return "explicit deny"
    if any(st["Effect"] == "Allow" and statement_matches(st, action, resource, ctx) for st in sts):
        return "allow"
    return "implicit deny"
