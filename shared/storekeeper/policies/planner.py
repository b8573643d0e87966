"""The planner: every policy over listing data -> one plan of decisions and cleanup tasks.

The plan is a pure function of the stores' state, the policies and `now`: a
dry run and a real run call exactly this, and only the reaper decides whether to
send the tasks. What differs between resource kinds lives in their registered
classes (`kinds`), what differs between actions in theirs (`actions`); this loop
is the same for all. Order per policy:

1. list the population (all pages, cached across policies);
2. item filters that need no labels (names, age, size, facts) -> matched;
3. protection that needs no labels (live snapshot, unapplied deltas, protect
   list, configured stores, grace) -> `protected`;
4. labels are fetched lazily, only for candidates the set filter reaches
   (or every candidate when there is none): label filters, then label
   protection (protect labels, protect-until);
5. the set filter picks (oldest first until a target, keep newest N);
6. a resource already planned by an earlier policy is `skipped`; past the
   policy's or the run's deletion cap it is `deferred`.

Protection, in steps 3 and 4, is `Protection.reason`: the same decision the
cleanup executor makes again at delete time.

Under a time budget (`policies.budget`) a run plans a *segment* of each store: after the pass's
resume point, up to where the listing got. A label lookup with the budget spent *cuts* the store
at that key and the plan is made again over the keys before it (labels already read are cached,
so this costs no request): every policy of a store stands at one key, the next run resumes from
it, and no key is planned twice. Policies that need the whole bucket at once (set filters,
snapshot versions, bucket and vector kinds) decide only in a run that knows the whole bucket,
once per pass; elsewhere they wait.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from storekeeper.errors import StorekeeperError
from storekeeper.models.cleanup import CleanupTask
from storekeeper.models.reports import (
    Decision,
    ListingSummary,
    PolicySummary,
    StoreProgressReport,
    Verdict,
    trusted_decision,
)
from storekeeper.policies.access import Access
from storekeeper.policies.actions import PolicyAction, policy_action
from storekeeper.policies.budget import Budget, Continuation, StoreProgress
from storekeeper.policies.filters import Filter, Selection
from storekeeper.policies.kinds import ResourceType, resource_type
from storekeeper.policies.model import Policy, PolicyFile
from storekeeper.policies.protect import protection_config
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.policies.views import PolicyEnv, StoreProgressOf, StoreView, VectorView
from storekeeper.protection import Protection
from storekeeper.stores.base import ObjectStore

if TYPE_CHECKING:
    from storekeeper.stores.vectors import VectorBackend

#: decisions listed per policy and verdict; the rest are counted (`omitted_decisions`), their targets
#: are in the tasks: a report of a million planned objects stays small
MAX_LISTED = 1000


class Plan:
    """What planning produced. The planner's records are plain classes or NamedTuples: a dataclass
    costs a cold start ~2-3 M instructions to create (Python 3.11 compiles each generated method)."""

    __slots__ = ("decisions", "errors", "listings", "summaries", "tasks", "waiting")

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.tasks: list[CleanupTask] = []
        self.summaries: list[PolicySummary] = []
        self.errors: list[str] = []
        self.listings: list[ListingSummary] = []
        #: whole-bucket policies that could not decide in this run (time budget)
        self.waiting: list[str] = []


class _Replan(Exception):
    """A whole-bucket policy planned past its store's cut: it waits, and the plan is made again."""


class _Cut(Exception):
    """The budget ran out before the labels of `name` (in `store`) could be looked up."""

    def __init__(self, store: str, name: str) -> None:
        super().__init__(name)
        self.store, self.name = store, name


class PolicyPlan(NamedTuple):
    """One policy's share of a plan (what the general path and the fast path both produce)."""

    summary: PolicySummary
    decisions: list[Decision]
    tasks: list[CleanupTask]
    #: for the plan's own errors (the summary has the policy's)
    failure: str | None = None
    #: a whole-bucket policy that could not decide in this run (time budget)
    waiting: bool = False


def task_id(*parts: object) -> str:
    """Deterministic: the same plan made twice has the same ids (and the executor dedups on them).

    A list (a task's keys) is hashed line by line (keys hold no newline): a thousand keys cost
    ~50 us, where their JSON of a repr cost ~1 ms."""
    h = hashlib.sha256()
    for p in parts:
        h.update(("\n".join(map(str, p)) if isinstance(p, list) else str(p)).encode())
        h.update(b"\x00")
    return "t-" + h.hexdigest()[:32]


class Planner:
    def __init__(
        self,
        policies: PolicyFile,
        stores: dict[str, ObjectStore],
        *,
        now: datetime,
        vector_backends: Mapping[str, VectorBackend] | None = None,
        max_deletions: int | None = None,
        extra_protect: Iterable[str] = (),
        inventory: str | None = None,
        budget: Budget | None = None,
        resume: Continuation | None = None,
    ) -> None:
        self.pf = policies
        self.now = now
        self.budget = budget or Budget(None)
        #: whole-bucket policies decided in this pass (earlier runs and this one)
        self.decided: list[str] = list(resume.decided) if resume else []
        self._decided_before = frozenset(self.decided)
        #: labels read in this run, by (kind, store, name): a plan made again after a cut reads none twice
        self._labels: dict[tuple[str, str, str], dict[str, str]] = {}
        #: whole-bucket policies that wait in this run (their plan reached past a cut)
        self._waits: set[str] = set()
        self.access = Access(policies.defaults.rate_limit, policies.defaults.retries)
        self.cap = policies.defaults.max_deletions if max_deletions is None else max_deletions
        self.views: dict[str, StoreView] = {}
        self.vectors: dict[str, VectorView] = {}
        #: store buckets named in the file are never deleted by a bucket policy
        configured = {stores[n].bucket for n, spec in policies.stores.items() if spec.kind == "objects"}
        self.pconfig = protection_config(policies, extra_protect, stores=configured)
        #: protection of what lives outside any object store (vector buckets and indexes)
        self.protection = Protection(None, self.pconfig, now)
        for name, spec in policies.stores.items():
            if spec.kind == "objects":
                st = stores[name]
                if inventory and spec.url is None:  # `reap --inventory`: the run's own store
                    spec = spec.model_copy(update={"inventory": inventory})
                at = resume.stores.get(name) if resume else None
                ranges = at.intervals() if at else None
                self.views[name] = StoreView(
                    name, spec, st, self.access, Protection(st, self.pconfig, now),
                    budget=self.budget, ranges=ranges, finished=bool(at and at.finished),
                )  # fmt: skip
        for name, spec in policies.stores.items():
            if spec.kind == "vectors" and vector_backends is not None and name in vector_backends:
                reg = spec.labels_registry
                registry = (stores[reg.store], reg.key) if reg is not None else None
                self.vectors[name] = VectorView(name, spec, vector_backends[name], registry, self.access)
        self.planned = PlannedSet()
        self.deletions = 0
        #: key -> etag seen in the listing, for task guards
        self.etags: dict[str, str] = {}

    # -- public -------------------------
    def plan(self) -> Plan:
        with gc_paused():
            # one full listing per store, first: every policy's prefix is served from it, and the run's
            # status measure (reaper._measure) needs the whole bucket anyway. A failure here is left to
            # the policies, which list again and report the error as theirs.
            for view in self.views.values():
                with contextlib.suppress(StorekeeperError):
                    view.table("")
            while True:
                try:
                    plan = self._plan()
                    break
                except (_Cut, _Replan) as again:  # over the keys before the cut (labels are cached)
                    if isinstance(again, _Cut):
                        self.views[again.store].cut_at(again.name)
                    self.planned, self.deletions, self.etags = PlannedSet(), 0, {}
                    self.decided = list(self._decided_before)
        plan.listings = [
            ListingSummary(
                store=name,
                prefix=prefix,
                source=st.source,
                objects=st.objects,
                requests=st.requests,
                sequential_minimum=st.sequential_minimum,
                ranges=st.ranges,
                split_requests=st.split_requests,
                seconds=round(st.seconds, 3),
            )
            for name, view in self.views.items()
            for prefix, st in view.listing_stats
        ]
        return plan

    def _plan(self) -> Plan:
        from storekeeper.policies.fastpath import plan_columnar

        plan = Plan()
        for policy in self.pf.policies:
            if not policy.enabled:
                continue
            done = self._in_pass(policy)
            if done is None and self.whole_bucket(policy):
                view = self.views.get(policy.store)
                with view.uncut() if view is not None else contextlib.nullcontext():
                    done = self._plan_policy(policy)  # over the whole listing, the cut's far side too
                if view is not None and view.cut is not None and _reaches(done.tasks, view.cut):
                    self._waits.add(policy.name)  # its plan needs keys left to the next run
                    raise _Replan()
                if not done.waiting:
                    self.decided.append(policy.name)
            elif done is None:
                done = plan_columnar(self, policy) or self._plan_policy(policy)
            if done.waiting:
                plan.waiting.append(policy.name)
            plan.decisions.extend(done.decisions)
            plan.tasks.extend(done.tasks)
            plan.summaries.append(done.summary)
            if done.failure:
                plan.errors.append(done.failure)
        return plan

    def whole_bucket(self, policy: Policy) -> bool:
        """Decided over the whole population at once (set filters, versions, buckets, vectors), so
        only in a run that knows all of it; object and delta item rules go key by key."""
        keyed = policy.resource in (ResourceKind.object, ResourceKind.delta)
        return not keyed or policy.set_filter is not None

    def _in_pass(self, policy: Policy) -> PolicyPlan | None:
        """What the pass says instead of planning `policy` in this run (None: plan it)."""
        view = self.views.get(policy.store)
        whole = self.whole_bucket(policy)
        tally = _Tally()
        if whole and policy.name in self._decided_before:
            tally.notes.append("decided earlier in this pass")
        elif view is not None and view.finished:
            tally.notes.append(f"store {view.name} was planned to its end earlier in this pass")
        elif whole and view is not None and not view.listed_whole:
            tally.waiting = True
            tally.notes.append(
                "deferred: needs the whole bucket, and this run plans only part of it (time budget); "
                "it decides in a pass whose first run lists the bucket in full (or from an inventory)"
            )
        elif policy.name in self._waits:
            tally.waiting = True
            tally.notes.append(
                "deferred: it would delete keys past where the time budget cut this run; it decides in "
                "a later pass"
            )
        else:
            return None
        counts = {"planned": 0, "protected": 0, "skipped": 0, "deferred": 0}
        return policy_plan(policy, tally, counts, 0, [], [])

    def labels_of(self, kind: ResourceType, r: Resource) -> dict[str, str]:
        """`kind.labels(r)` once per run, within the time budget: a lookup with the budget spent cuts
        the store there (but for the segment's first key, so every run makes progress); in a
        whole-bucket policy it makes the policy wait."""
        ident = (str(r.kind), r.store, r.name)
        if ident in self._labels:
            return self._labels[ident]
        if self.budget.expired("label lookups") and not self._always_looked_up(r):
            raise _Cut(r.store, r.name)
        labels = self._labels[ident] = kind.labels(self, r)
        return labels

    def _always_looked_up(self, r: Resource) -> bool:
        """The first key of a store's segment: looked up whatever the budget, so a cut is always
        after it (every run plans a key at least) and each cut is lower than the one before."""
        view = self.views.get(r.store)
        return view is not None and r.name == view.first_key()

    def progress(self) -> tuple[dict[str, StoreProgress], list[StoreProgressReport]]:
        """Where each object store stands in the pass after this run's plan (for the continuation)."""
        stores: dict[str, StoreProgress] = {}
        reports: list[StoreProgressReport] = []
        for name, view in self.views.items():
            try:
                done = view.progress()
            except StorekeeperError:  # its listing failed (the policies say so): nothing advanced
                done = StoreProgressOf([] if view.finished else list(view.ranges), 0, 0)
            stores[name] = StoreProgress.of(done.ranges)
            reports.append(
                StoreProgressReport(
                    store=name, resume_after=done.ranges[0].after if done.ranges else None,
                    finished=done.finished, ranges_left=len(done.ranges), keys_planned=done.planned,
                    left_unplanned=done.left_unplanned, listing_complete=view.listing_complete,
                )
            )  # fmt: skip
        return stores, reports

    def _plan_policy(self, policy: Policy) -> PolicyPlan:
        tally = _Tally()
        rows: list[Row] = []
        tasks: list[CleanupTask] = []
        try:
            self._evaluate(policy, tally, rows)
            tasks = self._tasks(policy, rows)
        except _Cut:
            if not self.whole_bucket(policy):
                raise  # the plan is made again, up to the cut
            note = "deferred: the time budget ran out in its lookups; it decides in a later pass"
            rows, tasks, tally = [], [], _Tally(notes=[note], waiting=True)
        except StorekeeperError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            tally.failure = f"policy {policy.name}: {exc}"
            tasks = []
            failed = f"policy failed: {exc}"[:1024]
            for row in rows:
                if row.verdict == "planned":
                    row.verdict, row.reason, row.task_id = "skipped", failed, None
        counts = {"planned": 0, "protected": 0, "skipped": 0, "deferred": 0}
        bytes_planned = 0
        kept: list[Row] = []
        for row in rows:
            v = row.verdict
            counts[v] += 1
            if v == "planned":
                bytes_planned += row.size or 0
            if counts[v] <= MAX_LISTED:
                kept.append(row)
        return policy_plan(policy, tally, counts, bytes_planned, kept, tasks)

    # -- evaluation -------------------------
    def _evaluate(self, policy: Policy, tally: _Tally, out: list[Row]) -> None:
        spec = self.pf.stores[policy.store]
        view = self.views.get(policy.store)
        if spec.kind == "vectors" and policy.store not in self.vectors:
            raise StorekeeperError(
                f"store {policy.store!r}: no vector backend configured (SUPABASE_URL / --vectors)"
            )
        kind = resource_type(policy.resource)
        action = policy_action(policy.action)
        population = action.scope(self, policy, kind.population(self, policy))
        env = PolicyEnv(self.now, spec, view, population)
        tally.evaluated = len(population)
        cheap = [f for f in policy.item_filters if not f.needs_labels]
        labelled = [f for f in policy.item_filters if f.needs_labels]
        candidates: list[tuple[Resource, list[str]]] = []
        for r in population:
            reasons = _all_match(cheap, r, env)
            if reasons is None:
                continue
            tally.matched += 1
            why = self._protected(kind, action, r)
            if why:
                out.append(_row(policy, r, "protected", why))
                continue
            candidates.append((r, reasons))
        reasons_of = {id(r): rs for r, rs in candidates}
        # per policy, not per resource: a policy's population is all of one resource kind
        label_protection = action.deletes and kind.labels_apply(self)

        def eligible(r: Resource) -> bool:
            """Label-needing filters and label protection, fetched only now, once per resource."""
            if labelled or label_protection:
                if r.labels is None:
                    r.labels = self.labels_of(kind, r)
                more = _all_match(labelled, r, env)
                if more is None:
                    return False
                reasons_of[id(r)] = reasons_of[id(r)] + more
                why = self._protected(kind, action, r, labels=True) if label_protection else None
                if why:
                    out.append(_row(policy, r, "protected", why))
                    return False
            return True

        room = self._room(policy, action)
        admitted = 0

        def within_cap(r: Resource) -> bool:
            """`eligible`, but past the deletion cap no label is looked up: those resources would be
            `deferred` anyway, and a HEAD each at the rate limit is what made runs at size time out."""
            nonlocal admitted
            fresh = self.planned.of(r) is None
            if room is not None and fresh and admitted >= room:
                return True  # chosen unchecked; _admit defers it (no deletion is planned past the cap)
            ok = eligible(r)
            admitted += int(ok and fresh)
            return ok

        set_filter = policy.set_filter
        if set_filter is None:
            sel = Selection(chosen=[(r, "") for r, _ in candidates if within_cap(r)])
        else:
            sel = set_filter.select([r for r, _ in candidates], env, within_cap)
        sel = action.refine(self, policy, env, sel)
        tally.notes.extend(sel.notes)
        self._admit(policy, action, sel, reasons_of, out)

    def _room(self, policy: Policy, action: PolicyAction) -> int | None:
        """Deletions this policy may still plan (the policy's limit and the run's cap); None: no cap."""
        if not action.deletes:
            return None
        left = max(0, self.cap - self.deletions)
        limit = policy.limits.max_deletions
        return left if limit is None else min(left, limit)

    def _protected(
        self, kind: ResourceType, action: PolicyAction, r: Resource, labels: bool = False
    ) -> str | None:
        """`Protection.reason` for what this action would delete (nothing, for one that deletes nothing)."""
        if not action.deletes:
            return None
        protection, target, name = kind.target(self, r)
        return protection.reason(target, name, created=r.created, labels=(r.labels or {}) if labels else None)

    def _admit(
        self,
        policy: Policy,
        action: PolicyAction,
        sel: Selection,
        reasons_of: dict[int, list[str]],
        out: list[Row],
    ) -> None:
        """Chosen resources become planned rows, minus those already planned and those past a cap."""
        planned_here = 0
        limit = policy.limits.max_deletions
        for r, why in sel.chosen:
            reason = _join_reasons(reasons_of[id(r)], why)
            prior = self.planned.of(r)
            if prior is not None:
                out.append(_row(policy, r, "skipped", f"already planned by policy {prior}"))
                continue
            if not action.deletes:
                out.append(_row(policy, r, "planned", reason))
                continue
            if limit is not None and planned_here >= limit:
                out.append(
                    _row(policy, r, "deferred", f"policy limit of {limit} deletions reached; {reason}")
                )
                continue
            if self.deletions >= self.cap:
                out.append(_row(policy, r, "deferred", f"run cap of {self.cap} deletions reached; {reason}"))
                continue
            self.deletions += 1
            planned_here += 1
            self.planned.add(r, policy.name)
            if r.etag:
                self.etags[r.name] = r.etag
            out.append(_row(policy, r, "planned", reason))
        for r, why in sel.passed:
            out.append(_row(policy, r, "skipped", why))

    # -- tasks -------------------------
    def task_base(self, policy: Policy) -> dict[str, Any]:
        """The fields every task of `policy` shares."""
        spec = self.pf.stores[policy.store]
        backend = "supabase" if spec.kind == "vectors" else self.views[policy.store].store.scheme
        return {"backend": backend, "policy": policy.name, "planned_at": self.now}

    def _tasks(self, policy: Policy, rows: list[Row]) -> list[CleanupTask]:
        """Tasks for the planned rows (the action's, by resource kind); each row gets its task's id."""
        planned = [d for d in rows if d.verdict == "planned"]
        if not planned:
            return []
        base = self.task_base(policy)
        tasks: list[CleanupTask] = []

        def add(d_list: list[Row], **kw: Any) -> None:
            task = new_task(base, len(d_list), d_list[0].reason, **kw)
            tasks.append(task)
            for d in d_list:
                d.task_id = task.task_id

        policy_action(policy.action).tasks(self, policy, planned, add)
        return tasks


def new_task(
    base: dict[str, Any], targets: int, first_reason: str, *, keys_checked: bool = False, **kw: Any
) -> CleanupTask:
    """A task for `targets` planned rows (`first_reason`: the first one's); its id is a pure function
    of what it does, so the same plan made twice has the same ids. `keys_checked`: the caller checked
    every key (`names.invalid_keys`), so the model validates one of them, not a thousand."""
    reason = first_reason if targets == 1 else f"{targets} targets: {first_reason}"
    tid = task_id(
        base["policy"],
        kw["action"],
        kw["bucket"],
        kw.get("collection"),
        kw.get("version"),
        kw.get("index"),
        kw.get("keys"),
        *([kw["upload_ids"]] if kw.get("upload_ids") else []),
    )
    keys = kw.get("keys")
    if keys_checked and keys:
        task = CleanupTask(task_id=tid, reason=reason[:1024], **base, **{**kw, "keys": keys[:1]})
        return task.model_copy(update={"keys": keys})
    return CleanupTask(task_id=tid, reason=reason[:1024], **base, **kw)


def policy_plan(
    policy: Policy,
    tally: _Tally,
    counts: dict[str, int],
    bytes_planned: int,
    kept: list[Row],
    tasks: list[CleanupTask],
) -> PolicyPlan:
    """The summary (every count) and the listed decisions (at most MAX_LISTED of each verdict)."""
    summary = PolicySummary(
        policy=policy.name,
        resource=policy.resource.value,
        store=policy.store,
        evaluated=tally.evaluated,
        matched=tally.matched,
        notes=tally.notes,
        errors=tally.errors,
        omitted_decisions=sum(max(0, n - MAX_LISTED) for n in counts.values()),
        bytes_planned=bytes_planned,
        **counts,
    )
    decisions = [trusted_decision(row.values()) for row in kept]
    return PolicyPlan(summary, decisions, tasks, tally.failure, tally.waiting)


#: resource kinds whose names are keys of the store's objects share the `object` namespace: a key
#: that an `object` policy and a `delta` policy both match is one deletion, planned once
_SAME_NAMES = {str(ResourceKind.delta): str(ResourceKind.object)}


def _namespace(kind: str, store: str, bucket: str) -> tuple[str, str, str]:
    return (_SAME_NAMES.get(kind, kind), store, bucket)


class PlannedSet:
    """What the run's earlier policies planned, by namespace (kind, store, bucket), then name: a
    resource matched by two policies is planned once (by the first; the other says so). Kinds that
    name the same objects share a namespace (`_SAME_NAMES`); their tasks carry the same guard (the
    listed etag, the plan's cutoff) and the executor asks the one protection function again, so it
    does not matter which policy planned the key. The fast path hands over a million names at once;
    they are indexed only if a later policy of the namespace asks."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str, str], dict[str, str]] = {}
        self._pending: dict[tuple[str, str, str], list[tuple[list[str], str]]] = {}

    def names(self, kind: str, store: str, bucket: str) -> dict[str, str]:
        """name -> the policy that planned it."""
        ns = _namespace(kind, store, bucket)
        names = self._names.setdefault(ns, {})
        for batch, policy in self._pending.pop(ns, ()):
            names.update(dict.fromkeys(batch, policy))
        return names

    def add_all(self, kind: str, store: str, bucket: str, names: list[str], policy: str) -> None:
        if names:
            self._pending.setdefault(_namespace(kind, store, bucket), []).append((names, policy))

    def of(self, r: Resource) -> str | None:
        return self.names(str(r.kind), r.store, r.bucket).get(r.name)

    def add(self, r: Resource, policy: str) -> None:
        self.names(str(r.kind), r.store, r.bucket)[r.name] = policy


def _reaches(tasks: list[CleanupTask], cut: str) -> bool:
    """Some task deletes a listed key at or past `cut` (a snapshot version: any key of its prefix)."""
    from storekeeper.layout import version_prefix
    from storekeeper.models.cleanup import CleanupAction

    for t in tasks:
        if t.action is CleanupAction.delete_objects and any(k >= cut for k in t.keys):
            return True
        if t.action is CleanupAction.delete_snapshot_version and t.version and t.collection:
            prefix = version_prefix(t.collection, t.version)
            if prefix >= cut or cut.startswith(prefix):
                return True
    return False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC passes while planning: a run builds a few objects per listed key, none in a
    cycle, and each collection re-scans all of them (a quarter of the time at 100,000 keys).
    Whatever is collectable is collected as usual once the plan is done. What the pause built
    is handed to the oldest generation (freeze, then unfreeze: two list splices): left in the
    youngest, the first collection after it scanned them all (~0.5 s per million listed keys)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


class _Tally:
    __slots__ = ("errors", "evaluated", "failure", "matched", "notes", "waiting")

    def __init__(
        self, evaluated: int = 0, matched: int = 0, notes: list[str] | None = None, waiting: bool = False
    ) -> None:
        self.evaluated = evaluated
        self.matched = matched
        self.notes = [] if notes is None else notes
        self.errors: list[str] = []
        self.failure: str | None = None
        #: a whole-bucket policy that could not decide in this run
        self.waiting = waiting


def _all_match(filters: list[Filter], r: Resource, env: PolicyEnv) -> list[str] | None:
    reasons = []
    for f in filters:
        why = f.match(r, env)
        if why is None:
            return None
        reasons.append(why)
    return reasons


class Row:
    """A decision while planning: plain and mutable (task ids are filled in later); each becomes
    a `Decision` model once, when the policy is done."""

    __slots__ = (
        "bucket",
        "created",
        "name",
        "policy",
        "reason",
        "resource",
        "size",
        "store",
        "task_id",
        "verdict",
    )

    def __init__(
        self,
        policy: str,
        store: str,
        resource: str,
        bucket: str,
        name: str,
        verdict: Verdict,
        reason: str,
        size: int | None,
        created: datetime | None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.resource = resource
        self.bucket = bucket
        self.name = name
        self.verdict = verdict
        self.reason = reason
        self.size = size
        self.created = created
        self.task_id: str | None = None

    def values(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "store": self.store,
            "resource": self.resource,
            "bucket": self.bucket,
            "name": self.name,
            "verdict": self.verdict,
            "reason": self.reason,
            "size": self.size,
            "created": self.created,
            "task_id": self.task_id,
        }


def _row(policy: Policy, r: Resource, verdict: Verdict, reason: str) -> Row:
    # str(kind): the StrEnum's value as a plain str, without the `.value` descriptor
    return Row(policy.name, r.store, str(r.kind), r.bucket, r.name, verdict, reason[:1024], r.size, r.created)


def _join_reasons(reasons: list[str], why: str) -> str:
    if len(reasons) == 1 and not why:
        return reasons[0]  # the common case: one item filter, no set filter
    # a policy without filters selects everything under its prefix: say so (a task needs a reason)
    return "; ".join(x for x in [*reasons, why] if x) or "no filters: everything the policy selects"
