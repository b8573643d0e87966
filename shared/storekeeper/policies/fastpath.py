"""The planner's columnar fast path: object policies whose filters read only key, size and age.

The general planner builds a `Resource` per listed object, asks each filter and `Protection.reason`
about it and keeps a row per decision: ~25 us an object, fine behind a listing, ~10x a bare csv pass
over an S3 Inventory of a million objects. Here the same policy is evaluated on the listing's columns
(`ObjectTable`): each filter narrows a list of row numbers in one pass, `Protection.reason` is asked
only about the keys it could keep (`Protection.key_may_be_kept`), and rows, resources and reasons are
built only for the decisions the report lists (`MAX_LISTED` of each verdict) and the first target of
each task. Everything else (labels, the caps, the tasks' shape and ids) is the general path's own
code or rule, and tests/unit/test_fastpath.py runs both paths over random listings and policies and
requires the same plan. Anything this cannot express (other resource kinds, set filters, label
filters, a key no store accepts, a listing that failed) goes to the general path.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from storekeeper.errors import StorekeeperError
from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
from storekeeper.names import invalid_keys
from storekeeper.policies.filters import REGISTRY
from storekeeper.policies.kinds import MAX_KEYS_PER_TASK, resource_type
from storekeeper.policies.model import Policy
from storekeeper.policies.resources import ResourceKind, StoredObject
from storekeeper.policies.views import PolicyEnv
from storekeeper.stores.listing import ObjectTable

if TYPE_CHECKING:
    from storekeeper.policies.filters import Filter
    from storekeeper.policies.filters.age import OlderThan
    from storekeeper.policies.filters.names import NameGlob, NamePrefix, NameRegex
    from storekeeper.policies.filters.sizes import SizeFilter
    from storekeeper.policies.planner import Planner, PolicyPlan, Row

#: tests switch it off to plan the same input through the general path
ENABLED = True

T = TypeVar("T")
#: rows that passed so far (None: every row of the table)
Rows = list[int] | None


def _where(rows: Rows, column: Sequence[T], keep: Callable[[T], bool]) -> list[int]:
    if rows is None:
        return list(itertools.compress(range(len(column)), map(keep, column)))
    return [i for i in rows if keep(column[i])]


def _older_than(f: OlderThan, t: ObjectTable, rows: Rows, now: datetime) -> list[int]:
    # now - created >= age  <=>  created <= now - age (exact: timedeltas are whole microseconds)
    try:
        cut = now - f.age
    except OverflowError:
        return []  # older than anything a datetime can hold
    if rows is None:  # one C-level pass: cut >= modified, row by row
        at_or_before = map(operator.ge, itertools.repeat(cut), t.modified)
        return list(itertools.compress(range(len(t)), at_or_before))
    return [i for i in rows if t.modified[i] <= cut]


def _size(f: SizeFilter, t: ObjectTable, rows: Rows, now: datetime) -> list[int]:
    if f.gt is not None and f.lt is not None:
        low, high = f.gt, f.lt
        return _where(rows, t.sizes, lambda n: low < n < high)
    if f.gt is not None:
        above = f.gt
        return _where(rows, t.sizes, lambda n: n > above)
    below = f.lt
    return _where(rows, t.sizes, lambda n: below is None or n < below)


def _name_prefix(f: NamePrefix, t: ObjectTable, rows: Rows, now: datetime) -> list[int]:
    values = (f.value,) if isinstance(f.value, str) else tuple(f.value)
    return _where(rows, t.keys, lambda k: k.startswith(values))


def _name_glob(f: NameGlob, t: ObjectTable, rows: Rows, now: datetime) -> list[int]:
    pats = [f.pattern] if isinstance(f.pattern, str) else f.pattern
    if not pats:
        return []
    match = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats)).match
    return _where(rows, t.keys, lambda k: match(k) is not None)


def _name_regex(f: NameRegex, t: ObjectTable, rows: Rows, now: datetime) -> list[int]:
    search = re.compile(f.pattern).search
    return _where(rows, t.keys, lambda k: search(k) is not None)


#: filter name -> its evaluation over columns; by name, so that planning imports only the filters
#: a policy file names (policies.filters), of the registered class alone: a subclass may read anything
COLUMNAR: dict[str, Callable[..., list[int]]] = {
    "older-than": _older_than,
    "size": _size,
    "name-prefix": _name_prefix,
    "name-glob": _name_glob,
    "name-regex": _name_regex,
}


def columnar(f: Filter) -> Callable[..., list[int]] | None:
    """`f`'s evaluation over columns, if `f` is exactly the registered class of a name that has one."""
    found = COLUMNAR.get(f.type_name)
    return found if found is not None and REGISTRY.get(f.type_name) is type(f) else None


def expressible(policy: Policy) -> bool:
    """Objects deleted by item filters this module evaluates on columns (no set filter, no labels)."""
    return (
        policy.resource is ResourceKind.object
        and policy.action == "delete"
        and policy.set_filter is None
        and all(columnar(f) is not None for f in policy.item_filters)
    )


def plan_columnar(p: Planner, policy: Policy) -> PolicyPlan | None:
    """The policy planned on columns, or None when the general path must plan it."""
    if not ENABLED or not expressible(policy):
        return None
    try:
        return _Columnar(p, policy).plan()
    except StorekeeperError:
        return None  # the general path meets the same failure and reports it as it always has


class _Columnar:
    def __init__(self, p: Planner, policy: Policy) -> None:
        self.p, self.policy = p, policy
        self.view = p.views[policy.store]
        self.kind = resource_type(policy.resource)
        self.env = PolicyEnv(p.now, self.view.spec, self.view, [])
        self.table = self.view.table(policy.prefix)
        self.listed: list[Row] = []  # the decisions the report lists, in the general path's order
        self.counts = {"planned": 0, "protected": 0, "skipped": 0, "deferred": 0}

    # -- rows the report lists --------------------------------------------------------------------
    def resource(self, i: int) -> StoredObject:
        t = self.table
        return StoredObject(
            self.view.name, self.view.store.bucket, t.keys[i], t.sizes[i], t.modified[i], t.etags[i]
        )

    def reason(self, i: int) -> str:
        """What the general path says about a planned row: its item filters' reasons."""
        from storekeeper.policies.planner import _all_match, _join_reasons

        reasons = _all_match(self.policy.item_filters, self.resource(i), self.env)
        assert reasons is not None, "a row the columns matched fails its filter"
        return _join_reasons(reasons, "")

    def note(self, verdict: str, i: int, reason: Callable[[], str]) -> Row | None:
        """Count a decision; build its row only while the report still lists that verdict."""
        from storekeeper.policies.planner import MAX_LISTED, _row

        self.counts[verdict] += 1
        if self.counts[verdict] > MAX_LISTED:
            return None
        row = _row(self.policy, self.resource(i), verdict, reason())  # type: ignore[arg-type]
        self.listed.append(row)
        return row

    # -- the plan ---------------------------------------------------------------------------------
    def plan(self) -> PolicyPlan | None:
        from storekeeper.policies.planner import _Tally, policy_plan

        p, policy, t = self.p, self.policy, self.table
        if None in t.modified:
            return None
        rows: Rows = None
        for f in policy.item_filters:
            evaluate = columnar(f)
            assert evaluate is not None, "planned by columns, a filter that has none"
            rows = evaluate(f, t, rows, p.now)
        matched = list(range(len(t))) if rows is None else rows
        candidates = self.unprotected(matched)
        chosen = self.label_checked(candidates)
        planned = self.admit(chosen)
        keys = _take(t.keys, planned)
        if not t.keys_checked and invalid_keys(keys):
            return None  # the general path validates each key (and says which one) as always
        tasks = self.tasks(planned, keys)
        tally = _Tally(evaluated=len(t), matched=len(matched))
        p.planned.add_all(str(ResourceKind.object), self.view.name, self.view.store.bucket, keys, policy.name)
        p.deletions += len(planned)
        size = t.sizes
        return policy_plan(
            policy, tally, self.counts, sum(map(size.__getitem__, planned)), self.listed, tasks
        )

    def unprotected(self, matched: list[int]) -> list[int]:
        """Rows `Protection.reason` lets go without labels; the others are listed as protected.

        It is asked only about keys it could keep (`Protection.key_may_be_kept`): under the
        prefixes its key rules know (each a contiguous run of the sorted keys, found by bisection)
        or on the protect list."""
        t, protection = self.table, self.view.protection
        suspect: set[int] = set()
        for prefix in protection.KEY_RULE_PREFIXES:
            lo, hi = t.span(prefix)
            suspect.update(matched[bisect.bisect_left(matched, lo) : bisect.bisect_left(matched, hi)])
        if protection.config.protect:
            may_keep = protection.key_may_be_kept()
            suspect.update(i for i in matched if may_keep(t.keys[i]))
        if not suspect:
            return matched
        suspects = sorted(suspect)
        kept: set[int] = set()
        for i in suspects:
            why = protection.reason("key", t.keys[i], created=t.modified[i])
            if why:
                kept.add(i)
                self.note("protected", i, lambda why=why: why)  # type: ignore[misc]
        return [i for i in matched if i not in kept]

    def label_checked(self, candidates: list[int]) -> list[int]:
        """The general path's `within_cap`: labels (a HEAD each) for fresh candidates until the
        deletion room is used; later ones are chosen unchecked (they are deferred anyway)."""
        p, _policy = self.p, self.policy
        if not self.kind.labels_apply(p):
            return candidates
        room = self.room()
        prior = self.prior()
        out: list[int] = []
        admitted = 0
        for i in candidates:
            fresh = prior is None or self.table.keys[i] not in prior
            if room is not None and fresh and admitted >= room:
                out.append(i)
                continue
            r = self.resource(i)
            r.labels = p.labels_of(self.kind, r)  # within the time budget (a cut re-plans)
            why = self.view.protection.reason("key", r.name, created=r.created, labels=r.labels)
            if why:
                self.note("protected", i, lambda why=why: why)  # type: ignore[misc]
                continue
            admitted += fresh
            out.append(i)
        return out

    def room(self) -> int | None:
        left = max(0, self.p.cap - self.p.deletions)
        limit = self.policy.limits.max_deletions
        return left if limit is None else min(left, limit)

    def prior(self) -> dict[str, str] | None:
        """Names earlier policies planned in this namespace (None: none)."""
        return self.p.planned.names(str(ResourceKind.object), self.view.name, self.view.store.bucket) or None

    def admit(self, chosen: list[int]) -> list[int]:
        """The general path's `_admit`: skipped when planned before, deferred past a cap, else planned."""
        p, policy, keys = self.p, self.policy, self.table.keys
        limit = policy.limits.max_deletions
        cap_left = max(0, p.cap - p.deletions)
        prior = self.prior()

        def deferred(i: int, planned_so_far: int) -> None:
            if limit is not None and planned_so_far >= limit:
                self.note(
                    "deferred", i, lambda: f"policy limit of {limit} deletions reached; {self.reason(i)}"
                )
            else:
                self.note("deferred", i, lambda: f"run cap of {p.cap} deletions reached; {self.reason(i)}")

        if prior is None:  # the usual case: no per-row bookkeeping
            n = min(len(chosen), cap_left, len(chosen) if limit is None else limit)
            shown = min(n, _listed())
            for i in chosen[:shown]:
                self.note("planned", i, lambda i=i: self.reason(i))  # type: ignore[misc]
            self.counts["planned"] += n - shown
            rest = chosen[n:]
            for i in rest[: _listed()]:
                deferred(i, n)
            self.counts["deferred"] += max(0, len(rest) - _listed())
            return chosen[:n]
        planned: list[int] = []
        for i in chosen:
            before = prior.get(keys[i])
            if before is not None:
                self.note("skipped", i, lambda before=before: f"already planned by policy {before}")  # type: ignore[misc]
            elif len(planned) >= cap_left or (limit is not None and len(planned) >= limit):
                deferred(i, len(planned))
            else:
                planned.append(i)
                self.note("planned", i, lambda i=i: self.reason(i))  # type: ignore[misc]
        return planned

    def tasks(self, planned: list[int], keys: list[str]) -> list[CleanupTask]:
        """`delete_objects` tasks of MAX_KEYS_PER_TASK keys, as `kinds._key_tasks` makes them; the
        keys were checked in bulk (`invalid_keys`), so each task is validated with one of them."""
        from storekeeper.policies.planner import new_task

        p, t = self.p, self.table
        base = p.task_base(self.policy)
        out: list[CleanupTask] = []
        for start in range(0, len(planned), MAX_KEYS_PER_TASK):
            chunk = keys[start : start + MAX_KEYS_PER_TASK]
            etags = _take(t.etags, planned[start : start + MAX_KEYS_PER_TASK])
            seen = dict(zip(chunk, etags, strict=True)) if "" not in etags else {
                k: e for k, e in zip(chunk, etags, strict=True) if e
            }  # fmt: skip
            # the etags are the listing's strings: validated as the empty mapping, then filled in
            guard = TaskGuard(last_modified_before=p.now, live_version=None).model_copy(
                update={"etags": seen}
            )
            one = new_task(
                base,
                len(chunk),
                self.reason(planned[start]),
                action=CleanupAction.delete_objects,
                bucket=self.view.store.bucket,
                keys=chunk,
                collection=None,
                guard=guard,
                keys_checked=True,
            )
            out.append(one)
        tids = [task.task_id for task in out]
        planned_rows = (r for r in self.listed if r.verdict == "planned")
        for j, row in enumerate(planned_rows):
            row.task_id = tids[j // MAX_KEYS_PER_TASK]
        return out


def _take(column: list[str], rows: list[int]) -> list[str]:
    """column[i] for each row; a run of consecutive rows (the usual plan) is one slice."""
    if rows and rows[-1] - rows[0] + 1 == len(rows):  # rows ascend: equal spans are contiguous
        return column[rows[0] : rows[-1] + 1]
    return [column[i] for i in rows]


def _listed() -> int:
    from storekeeper.policies.planner import MAX_LISTED

    return MAX_LISTED
