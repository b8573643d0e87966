"""Policy files are loaded safely (issue 8.7): every problem is a PolicyFileError naming file:line,
the policy and the field; never a hang, a RecursionError, an OverflowError or a silently
ignored duplicate."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.policies.filters import MODULES, REGISTRY
from storekeeper.policies.model import LoadedPolicies, PolicyFileError, parse_policies
from storekeeper.policies.resources import ResourceKind

POLICY = """\
stores:
  main: {{}}
policies:
  - name: old-tmp
    resource: object
    store: main
    prefix: tmp/
    filters:
      - type: older-than
        age: {age}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyFileError) as info:
        parse_policies(text, "p.yaml")
    return info.value.problems


def test_the_example_loads() -> None:
    assert parse_policies(POLICY.format(age="30d"), "p.yaml").spec.policies[0].name == "old-tmp"


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    lines.append("policies: *a11")
    [p] = problems("\n".join(lines) + "\n")
    assert re.match(r"p\.yaml:\d+: expands to more than", p), p


def test_a_self_referencing_alias_is_refused() -> None:
    [p] = problems("stores: &s\n  main: *s\n")
    assert p.startswith("p.yaml:2: alias *s refers to its own anchor"), p


def test_duplicate_keys_are_refused_naming_both_lines() -> None:
    text = POLICY.format(age="30d").replace("    prefix: tmp/\n", "    prefix: tmp/\n    prefix: other/\n")
    [p] = problems(text)
    assert p == "p.yaml:8: duplicate key 'prefix' (first on line 7)", p


@pytest.mark.parametrize("age", ["99999999999999d", "36600000d", "9" * 400 + "s"])
def test_out_of_range_durations_name_line_policy_and_field(age: str) -> None:
    [p] = problems(POLICY.format(age=age))
    assert p.startswith("p.yaml:10: policy 'old-tmp': filters[0].age"), p
    assert "longer than 100 years" in p


@pytest.mark.parametrize(
    ("url", "says"),
    [("ftp://host/b", "scheme 'ftp'"), ("http://host/b", "scheme 'http'"), ("bucket", "no scheme")],
)
def test_unsupported_url_schemes_are_reported_with_file_and_line(url: str, says: str) -> None:
    [p] = problems(f"stores:\n  main:\n    url: {url}\n")
    assert p.startswith("p.yaml:3: store 'main': url: unsupported URL"), p
    assert says in p


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("  max_deletions: 10000000000000000000000", "defaults.max_deletions"),
        ("  retries: 1000000", "defaults.retries"),
        ("  rate_limit: 1e300", "defaults.rate_limit"),
        ("  grace: 999999999w", "defaults.grace"),
    ],
)
def test_every_number_is_range_checked(line: str, field: str) -> None:
    [p] = problems(f"defaults:\n{line}\n")
    assert p.startswith(f"p.yaml:2: {field}:"), p


def test_an_oversized_file_is_refused() -> None:
    [p] = problems("# " + "x" * (1024 * 1024) + "\n")
    assert "byte limit" in p


# -- hypothesis: arbitrary documents and arbitrary text ------------------------------------------------
KEYS = ["stores", "defaults", "protect", "policies", "name", "resource", "store", "prefix", "filters",
        "type", "older-than", "url", "kind", "capacity", "watermarks", "high", "low", "hard", "quota",
        "grace", "max_deletions", "rate_limit", "retries", "action", "limits", "count", "keep", "labels",
        "enabled", "main", "older-than", "gt", "lt"]  # fmt: skip
scalars = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            "30d",
            "99999999999999d",
            "1GB",
            "1e400GB",
            "0.85",
            "85%",
            "ftp://x/b",
            "s3://b",
            "file:///tmp/x",
            "object",
            "bucket",
            "delta",
            "age",
            "main",
            "../x",
            "",
            "ß",
            "\x00",
        ]
    ),
    st.text(max_size=8),
)
#: every field a registered filter has
FILTER_FIELDS = ["value", "pattern", "age", "ttl_label", "expires_label", "key", "absent", "gt", "lt", "gte",
                 "high", "low", "threshold", "target", "quota", "count"]  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)


def _assert_clear(text: str) -> LoadedPolicies | PolicyFileError:
    """The file loaded, or its problems, each naming the file (and a line where one is known)."""
    out: LoadedPolicies | PolicyFileError
    try:
        out = parse_policies(text, "p.yaml")
    except PolicyFileError as exc:
        out = exc
    if isinstance(out, PolicyFileError):
        assert out.problems
        assert all(p.startswith("p.yaml") for p in out.problems), out.problems
    else:
        assert isinstance(out, LoadedPolicies)
    return out


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow  # hypothesis, many examples: >5 s here
@FUZZ
@given(
    doc=st.dictionaries(st.sampled_from(["stores", "defaults", "protect", "policies"]), documents, max_size=4)
)
def test_any_document_is_a_clear_error_or_a_loaded_file(doc: dict[str, Any]) -> None:
    _assert_clear(yaml.safe_dump(doc, allow_unicode=True))


@pytest.mark.slow  # hypothesis, many examples: >5 s here
@FUZZ
@given(policy=st.dictionaries(st.sampled_from(KEYS), documents, max_size=7))
def test_any_policy_entry_is_a_clear_error_or_a_loaded_file(policy: dict[str, Any]) -> None:
    _assert_clear(yaml.safe_dump({"policies": [policy]}, allow_unicode=True))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("ab:&*-[]{}\n #!'\"|>%@`,?0123456789d")), max_size=120))
def test_any_text_is_a_clear_error_or_a_loaded_file(text: str) -> None:
    _assert_clear(text)


#: filter types a policy file may write: every registered name, near misses, names of the filters'
#: modules and classes (the registry imports a module by name: only its own table's), any text
filter_types = st.one_of(
    st.sampled_from(sorted(MODULES)),
    st.sampled_from(
        ["age", "names", "labels", "OlderThan", "__init__", "registry", "older_than", "Older-Than"]
    ),
    st.text(max_size=12),
)
filter_entries = st.one_of(
    st.fixed_dictionaries({"type": filter_types}, optional=dict.fromkeys(FILTER_FIELDS, documents)),
    documents,
)


@FUZZ
@given(
    filters=st.lists(filter_entries, max_size=4), resource=st.sampled_from([k.value for k in ResourceKind])
)
def test_any_filter_list_is_a_clear_error_or_exactly_the_registered_filters(
    filters: list[Any], resource: str
) -> None:
    """Filters are resolved by name, each module imported on first use: an unknown or malformed
    filter is a clear error naming the filter and field, a known one is exactly its registered class."""
    policy = {"name": "p", "resource": resource, "store": "main", "filters": filters}
    if resource.startswith("vector"):
        doc: dict[str, Any] = {"stores": {"main": {"kind": "vectors"}}, "policies": [policy]}
    else:
        doc = {"policies": [policy]}
    out = _assert_clear(yaml.safe_dump(doc, allow_unicode=True))
    if isinstance(out, PolicyFileError):
        assert all(re.match(r"p\.yaml(:\d+)?: policy 'p': ", p) for p in out.problems), out.problems
        first = filters[0] if filters else None  # the filters are validated in order, to the first bad one
        if isinstance(first, dict) and "type" in first and str(first["type"]) not in MODULES:
            assert any("filters[0]: unknown filter type" in p for p in out.problems), out.problems
        return
    got = out.spec.policies[0].filters
    assert [f.type for f in got] == [f["type"] for f in filters]
    for f in got:
        assert type(f) is REGISTRY[f.type]
        assert type(f).__module__ == f"storekeeper.policies.filters.{MODULES[f.type]}"
