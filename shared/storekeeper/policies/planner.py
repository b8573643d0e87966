"""The planner: every policy over listing data -> one plan of decisions and cleanup tasks.

The plan is a pure function of the stores' state, the policies and `now`: a
dry run and a real run call exactly this, and only the reaper decides whether to
send the tasks. Order per policy:

1. list the population (all pages, cached across policies);
2. item filters that need no labels (names, age, size, facts) -> matched;
3. protection that needs no labels (live snapshot, unapplied deltas, protect
   list, configured stores) -> `protected`;
4. labels are fetched lazily, only for candidates the set filter reaches
   (or every candidate when there is none): label filters, then label
   protection (protect labels, protect-until);
5. the set filter picks (oldest first until a target, keep newest N);
6. a resource already planned by an earlier policy is `skipped`; past the
   policy's or the run's deletion cap it is `deferred`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import (
    DELTA_PREFIX,
    SNAPSHOT_PREFIX,
    match_delta_key,
    match_version_key,
    purged_on_delete,
    version_prefix,
)
from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
from storekeeper.models.reports import Decision, PolicySummary, Verdict, trusted_decision
from storekeeper.overflow import group_members
from storekeeper.policies.access import Access
from storekeeper.policies.filters import Filter, Selection, UsageRatio
from storekeeper.policies.model import Policy, PolicyFile, Protect, StoreSpec
from storekeeper.policies.protect import protection_config
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.protection import LiveState, Protection, TargetKind
from storekeeper.stores.base import ObjectInfo, ObjectStore

K = ResourceKind
MAX_KEYS_PER_TASK = 1000
MAX_LISTED_SKIPS = 1000
_TEST_NAME_RE = re.compile(r"^test-(?P<id>[a-z0-9]+)-")


# -- per-store views (cached reads) -------------------------------------------------------------------


@dataclass
class Chain:
    live: LiveState
    published: frozenset[str]  # versions reached from the pointer through manifest parents


class StoreView:
    """One object store as the planner sees it during a run: every read cached."""

    def __init__(
        self, name: str, spec: StoreSpec, store: ObjectStore, access: Access, protection: Protection
    ):
        self.name, self.spec, self.store, self.access, self.protection = name, spec, store, access, protection
        self._listings: dict[str, list[ObjectInfo]] = {}
        self._chains: dict[str, Chain] = {}
        self._bucket_usage: dict[str, int] = {}

    def listing(self, prefix: str) -> list[ObjectInfo]:
        for have, items in self._listings.items():
            if prefix.startswith(have):
                return items if have == prefix else [i for i in items if i.key.startswith(prefix)]
        items = list(self.access.list(self.store, prefix))
        self._listings[prefix] = items
        return items

    def usage_bytes(self) -> int:
        """Billed bytes: current objects, and on a versioned bucket every noncurrent version too."""
        return sum(i.size for i in self.listing("")) + self._noncurrent_bytes(self.store)

    def bucket_usage(self, bucket: str) -> int:
        if bucket == self.store.bucket:
            return self.usage_bytes()
        if bucket not in self._bucket_usage:
            other = self.store.for_bucket(bucket)
            listed = sum(i.size for i in self.access.list(other, ""))
            self._bucket_usage[bucket] = listed + self._noncurrent_bytes(other)
        return self._bucket_usage[bucket]

    def _noncurrent_bytes(self, store: ObjectStore) -> int:
        """One version listing on versioned buckets (none elsewhere): what deletes left billed."""
        if not self.access.call(lambda: store.versioned):
            return 0
        return self.access.call(lambda: store.usage("")).noncurrent_bytes

    def freed_bytes(self, r: Resource) -> int:
        """What deleting `r` frees now: on a versioned bucket only what cleanup purges
        (snapshot versions, deltas); anything else stays billed as a noncurrent version."""
        if r.kind in (K.delta, K.snapshot_version) or purged_on_delete(r.name):
            return r.size or 0
        return 0 if self.access.call(lambda: self.store.versioned) else r.size or 0

    def chain(self, collection: str) -> Chain:
        """The live state and every version its manifest-parent chain reaches (published history)."""
        if collection in self._chains:
            return self._chains[collection]
        from storekeeper.snapshots import load_manifest

        live = self.protection.live(collection)
        published: set[str] = set()
        version = live.version if not live.error else None
        while version and version not in published:
            published.add(version)
            try:
                manifest = self.access.call(partial(load_manifest, self.store, collection, version))
                version = manifest.parent
            except StorekeeperError:
                break  # an older, already removed (or unreadable) version ends the chain
        chain = Chain(live, frozenset(published))
        self._chains[collection] = chain
        return chain


class VectorView:
    """The vector buckets of one project; labels from the `test-<id>-` convention plus a registry object."""

    def __init__(
        self,
        name: str,
        spec: StoreSpec,
        backend: Any,
        registry: tuple[ObjectStore, str] | None,
        access: Access,
    ):
        self.name, self.spec, self.backend, self.registry, self.access = name, spec, backend, registry, access
        self._buckets: list[Any] | None = None
        self._registry: dict[str, dict[str, str]] | None = None

    def buckets(self) -> list[Any]:
        if self._buckets is None:
            self._buckets = list(self.access.call(self.backend.list_buckets))
        return self._buckets

    def created(self, bucket: Any) -> datetime | None:
        """Creation time; Supabase's bucket listing has none, so ask GetVectorBucket (one call per bucket)."""
        found = _created(bucket)
        if found is not None:
            return found
        name = _attr(bucket, "name")
        getter = getattr(self.backend, "get_bucket", None) or getattr(
            getattr(self.backend, "vectors", None), "get_bucket", None
        )
        if getter is None:
            return None
        resp = self.access.call(partial(getter, name))
        return _created(getattr(resp, "vectorBucket", resp)) if resp is not None else None

    def indexes(self, bucket: str) -> list[Any]:
        return list(self.access.call(lambda: self.backend.list_indexes(bucket)))

    def labels(self, name: str) -> dict[str, str]:
        labels: dict[str, str] = {}
        m = _TEST_NAME_RE.match(name)
        if m:
            labels["test-id"] = m["id"]
        labels.update(self._registry_labels().get(name, {}))
        return labels

    def _registry_labels(self) -> dict[str, dict[str, str]]:
        if self._registry is None:
            self._registry = {}
            if self.registry is not None:
                store, key = self.registry
                try:
                    data = json.loads(self.access.call(lambda: store.get(key)).body)
                except NotFound:
                    data = {}
                if not isinstance(data, dict):
                    raise StorekeeperError(
                        f"labels registry {store.url}/{key} must be a JSON object of name -> labels"
                    )
                self._registry = {
                    str(k): {str(a): str(b) for a, b in v.items()}
                    for k, v in data.items()
                    if isinstance(v, dict)
                }
        return self._registry


# -- the filter environment of one policy -------------------------


class PolicyEnv:
    def __init__(self, now: datetime, spec: StoreSpec, view: StoreView | None, population: list[Resource]):
        self.now = now
        self.quota = spec.quota
        self.high, self.low, self.hard = spec.watermarks.high, spec.watermarks.low, spec.watermarks.hard
        self.capacity = spec.capacity
        self._view = view
        self._population = population

    def usage_bytes(self) -> int:
        assert self._view is not None
        return self._view.usage_bytes()

    def bucket_usage(self, bucket: str) -> int:
        assert self._view is not None
        return self._view.bucket_usage(bucket)

    def freed_bytes(self, r: Resource) -> int:
        return self._view.freed_bytes(r) if self._view is not None else r.size or 0

    def population(self) -> list[Resource]:
        return self._population


# -- the plan -------------------------


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)
    tasks: list[CleanupTask] = field(default_factory=list)
    summaries: list[PolicySummary] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def task_id(*parts: object) -> str:
    """Deterministic: the same plan made twice has the same ids (and the executor dedups on them)."""
    return "t-" + hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:32]


class Planner:
    def __init__(
        self,
        policies: PolicyFile,
        stores: dict[str, ObjectStore],
        *,
        now: datetime,
        vector_backends: dict[str, Any] | None = None,
        max_deletions: int | None = None,
        extra_protect: Iterable[str] = (),
    ) -> None:
        self.pf = policies
        self.now = now
        self.access = Access(policies.defaults.rate_limit, policies.defaults.retries)
        self.cap = policies.defaults.max_deletions if max_deletions is None else max_deletions
        prot: Protect = policies.protect
        self.protect = prot
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
                self.views[name] = StoreView(name, spec, st, self.access, Protection(st, self.pconfig, now))
        for name, spec in policies.stores.items():
            if spec.kind == "vectors" and vector_backends is not None and name in vector_backends:
                reg = spec.labels_registry
                registry = (stores[reg.store], reg.key) if reg is not None else None
                self.vectors[name] = VectorView(name, spec, vector_backends[name], registry, self.access)
        self._planned: dict[str, str] = {}  # resource ident -> policy
        self._deletions = 0
        self._etags: dict[str, str] = {}  # key -> etag seen in the listing, for task guards

    # -- public -------------------------
    def plan(self) -> Plan:
        with gc_paused():
            return self._plan()

    def _plan(self) -> Plan:
        plan = Plan()
        for policy in self.pf.policies:
            if not policy.enabled:
                continue
            tally = _Tally()
            rows: list[_Row] = []
            tasks: list[CleanupTask] = []
            try:
                self._evaluate(policy, tally, rows)
                tasks = self._tasks(policy, rows)
            except StorekeeperError as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")
                plan.errors.append(f"policy {policy.name}: {exc}")
                tasks = []
                failed = f"policy failed: {exc}"[:1024]
                for row in rows:
                    if row.verdict == "planned":
                        row.verdict, row.reason, row.task_id = "skipped", failed, None
            counts = {"planned": 0, "protected": 0, "skipped": 0, "deferred": 0}
            bytes_planned = 0
            kept: list[_Row] = []
            for row in rows:
                v = row.verdict
                counts[v] += 1
                if v == "planned":
                    bytes_planned += row.size or 0
                elif v == "skipped" and counts[v] > MAX_LISTED_SKIPS:
                    continue  # counted, not listed: the report stays small
                kept.append(row)
            summary = PolicySummary(
                policy=policy.name,
                resource=policy.resource.value,
                store=policy.store,
                evaluated=tally.evaluated,
                matched=tally.matched,
                notes=tally.notes,
                errors=tally.errors,
                omitted_decisions=max(0, counts["skipped"] - MAX_LISTED_SKIPS),
                bytes_planned=bytes_planned,
                **counts,
            )
            plan.decisions.extend([trusted_decision(row.values()) for row in kept])
            plan.tasks.extend(tasks)
            plan.summaries.append(summary)
        return plan

    # -- evaluation -------------------------
    def _evaluate(self, policy: Policy, tally: _Tally, out: list[_Row]) -> None:
        spec = self.pf.stores[policy.store]
        view = self.views.get(policy.store)
        if spec.kind == "vectors" and policy.store not in self.vectors:
            raise StorekeeperError(
                f"store {policy.store!r}: no vector backend configured (SUPABASE_URL / --vectors)"
            )
        population = self._population(policy)
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
            why = self._structural(policy, r)
            if why:
                out.append(_row(policy, r, "protected", why))
                continue
            candidates.append((r, reasons))
        reasons_of = {id(r): rs for r, rs in candidates}

        label_protection = self._label_protection_applies(policy, policy.resource)

        def eligible(r: Resource) -> bool:
            """Label-needing filters and label protection, fetched only now, once per resource."""
            if labelled or label_protection:
                if r.labels is None:
                    r.labels = self._labels(policy, r)
                more = _all_match(labelled, r, env)
                if more is None:
                    return False
                reasons_of[id(r)] = reasons_of[id(r)] + more
                why = self._label_protection(r) if label_protection else None
                if why:
                    out.append(_row(policy, r, "protected", why))
                    return False
            return True

        set_filter = policy.set_filter
        if set_filter is None:
            sel = Selection(chosen=[(r, "") for r, _ in candidates if eligible(r)])
        else:
            sel = set_filter.select([r for r, _ in candidates], env, eligible)
        if policy.action == "create-overflow":
            sel = self._overflow_selection(policy, population, sel)
        tally.notes.extend(sel.notes)
        planned_here = 0
        for r, why in sel.chosen:
            reason = _join_reasons(reasons_of[id(r)], why)
            ident = r.ident
            prior = self._planned.get(ident)
            if prior is not None:
                out.append(_row(policy, r, "skipped", f"already planned by policy {prior}"))
                continue
            counts = policy.action == "delete"
            if not counts:
                out.append(_row(policy, r, "planned", reason))
                continue
            limit = policy.limits.max_deletions
            if counts and limit is not None and planned_here >= limit:
                out.append(
                    _row(policy, r, "deferred", f"policy limit of {limit} deletions reached; {reason}")
                )
                continue
            if counts and self._deletions >= self.cap:
                out.append(_row(policy, r, "deferred", f"run cap of {self.cap} deletions reached; {reason}"))
                continue
            self._deletions += 1
            planned_here += 1
            self._planned[ident] = policy.name
            if r.etag:
                self._etags[r.name] = r.etag
            out.append(_row(policy, r, "planned", reason))
        for r, why in sel.passed:
            out.append(_row(policy, r, "skipped", why))

    # -- populations -------------------------
    def _population(self, policy: Policy) -> list[Resource]:
        kind = policy.resource
        if kind in (K.vector_bucket, K.vector_index):
            return self._vector_population(policy)
        view = self.views[policy.store]
        bucket = view.store.bucket
        if kind is K.object:
            return [
                Resource(K.object, view.name, bucket, i.key, i.size, i.last_modified, i.etag)
                for i in view.listing(policy.prefix)
            ]
        if kind is K.delta:
            out = []
            for i in view.listing(policy.prefix if policy.prefix.startswith(DELTA_PREFIX) else DELTA_PREFIX):
                parts = match_delta_key(i.key)
                if parts is None:
                    continue
                c, delta_id = parts
                chain = view.chain(c)
                facts: dict[str, object] = {
                    "applied": delta_id in chain.live.applied and not chain.live.error,
                    "live_version": chain.live.version,
                }
                out.append(
                    Resource(
                        K.delta,
                        view.name,
                        bucket,
                        i.key,
                        i.size,
                        i.last_modified,
                        i.etag,
                        collection=c,
                        facts=facts,
                    )
                )
            return out
        if kind is K.snapshot_version:
            groups: dict[tuple[str, str], list[ObjectInfo]] = {}
            for i in view.listing(SNAPSHOT_PREFIX):
                cv = match_version_key(i.key)
                if cv:
                    groups.setdefault(cv, []).append(i)
            out = []
            for (c, v), items in sorted(groups.items()):
                chain = view.chain(c)
                out.append(
                    Resource(
                        K.snapshot_version,
                        view.name,
                        bucket,
                        version_prefix(c, v),
                        sum(i.size for i in items),
                        max(i.last_modified for i in items),
                        None,
                        collection=c,
                        version=v,
                        keys=tuple(i.key for i in items),
                        facts={
                            "published": v in chain.published,
                            "live_version": chain.live.version,
                            "live_error": chain.live.error,
                        },
                    )
                )
            return out
        if kind is K.upload:
            uploads = self.access.call(lambda: view.store.list_incomplete_uploads(policy.prefix))
            return [
                Resource(K.upload, view.name, bucket, upload_name(u.key, u.upload_id), 0, u.initiated,
                         facts={"key": u.key, "upload_id": u.upload_id})
                for u in sorted(uploads)
            ]  # fmt: skip
        # buckets
        infos = self.access.call(view.store.list_buckets)
        if policy.action == "create-overflow":
            names = group_members([b.name for b in infos], bucket)
            infos = [b for b in infos if b.name in names]
        return [Resource(K.bucket, view.name, b.name, b.name, 0, b.created_at) for b in infos]

    def _vector_population(self, policy: Policy) -> list[Resource]:
        vv = self.vectors[policy.store]
        out = []
        for b in vv.buckets():
            name, created = _attr(b, "name"), vv.created(b)
            if policy.resource is K.vector_bucket:
                out.append(Resource(K.vector_bucket, vv.name, name, name, 0, created))
            else:
                for ix in vv.indexes(name):
                    iname = _attr(ix, "name", "index_name", "indexName")
                    out.append(
                        Resource(
                            K.vector_index,
                            vv.name,
                            name,
                            f"{name}/{iname}",
                            0,
                            _created(ix),
                            facts={"index": iname},
                        )
                    )
        return out

    # -- protection -------------------------
    def _target(self, r: Resource) -> tuple[Protection, TargetKind, str]:
        """What `Protection.reason` is asked about for this resource."""
        if r.kind in (K.object, K.delta):
            return self.views[r.store].protection, "key", r.name
        if r.kind is K.upload:  # never live data: its key on the protect list, and the grace floor
            return self.views[r.store].protection, "upload", str(r.facts["key"])
        if r.kind is K.snapshot_version:
            return self.views[r.store].protection, "version", r.name
        if r.kind is K.bucket:
            return self.views[r.store].protection, "bucket", r.name
        return self.protection, "vector", r.name

    def _structural(self, policy: Policy, r: Resource) -> str | None:
        """Protection decided without labels: live data, protect list, configured stores, grace."""
        if policy.action != "delete":
            return None  # nothing is deleted (create-overflow reads the population)
        protection, kind, name = self._target(r)
        return protection.reason(kind, name, created=r.created)

    def _overflow_selection(self, policy: Policy, population: list[Resource], sel: Selection) -> Selection:
        """An overflow bucket is needed only when every member of the group is past the threshold."""
        full = {r.name for r, _ in sel.chosen}
        room = [r for r in population if r.name not in full]
        group = ", ".join(f"{r.name}={float(str(r.facts.get('usage_ratio', 0))):.3f}" for r in population)
        if not sel.chosen:
            return Selection(notes=[*sel.notes, f"group {group}: no member past the threshold"])
        if room:
            names = ", ".join(r.name for r in room)
            return Selection(
                passed=[(r, f"group still has room in {names}") for r, _ in sel.chosen],
                notes=[*sel.notes, f"group {group}: room left in {names}"],
            )
        return Selection(
            chosen=sel.chosen, notes=[*sel.notes, f"group {group}: every member full, overflow needed"]
        )

    def _label_protection_applies(self, policy: Policy, kind: ResourceKind) -> bool:
        """Per policy, not per resource: a policy's population is all of its resource kind."""
        if policy.action == "create-overflow":
            return False
        if kind in (K.object, K.delta):
            return self.pconfig.check_object_labels
        return kind not in (K.snapshot_version, K.upload)

    def _labels(self, policy: Policy, r: Resource) -> dict[str, str]:
        if r.kind in (K.object, K.delta):
            view = self.views[r.store]
            try:
                info = self.access.call(lambda: view.store.head(r.name))
            except NotFound:
                return {}
            return dict(info.metadata or {})
        if r.kind is K.bucket:
            view = self.views[r.store]
            return self.access.call(lambda: view.store.get_bucket_labels(r.name))
        if r.kind in (K.vector_bucket, K.vector_index):
            vv = self.vectors[r.store]
            labels = vv.labels(r.bucket)
            if r.kind is K.vector_index:
                labels = {**labels, **vv.labels(r.name)}
            return labels
        return {}

    def _label_protection(self, r: Resource) -> str | None:
        protection, kind, name = self._target(r)
        return protection.reason(kind, name, created=r.created, labels=r.labels or {})

    # -- tasks -------------------------
    def _tasks(self, policy: Policy, rows: list[_Row]) -> list[CleanupTask]:
        """Tasks for the planned rows; each row gets its task's id."""
        planned = [d for d in rows if d.verdict == "planned"]
        if not planned:
            return []
        spec = self.pf.stores[policy.store]
        backend = "supabase" if spec.kind == "vectors" else self.views[policy.store].store.scheme
        base: dict[str, Any] = {"backend": backend, "policy": policy.name, "planned_at": self.now}
        tasks: list[CleanupTask] = []

        def add(d_list: list[_Row], **kw: Any) -> None:
            reason = d_list[0].reason if len(d_list) == 1 else f"{len(d_list)} targets: {d_list[0].reason}"
            tid = task_id(
                policy.name,
                kw["action"],
                kw["bucket"],
                kw.get("collection"),
                kw.get("version"),
                kw.get("index"),
                kw.get("keys"),
                *([kw["upload_ids"]] if kw.get("upload_ids") else []),
            )
            t = CleanupTask(task_id=tid, reason=reason[:1024], **base, **kw)
            tasks.append(t)
            for d in d_list:
                d.task_id = tid

        kind = policy.resource
        if kind in (K.object, K.delta):
            view = self.views[policy.store]
            etags = self._etags
            groups: dict[str | None, list[_Row]] = {}
            if kind is K.delta:  # per collection: each task carries its collection's live version
                for d in planned:
                    parts = match_delta_key(d.name)
                    groups.setdefault(parts[0] if parts else None, []).append(d)
            else:
                groups[None] = planned
            for coll, ds in groups.items():
                live = view.chain(coll).live.version if coll else None
                for i in range(0, len(ds), MAX_KEYS_PER_TASK):
                    chunk = ds[i : i + MAX_KEYS_PER_TASK]
                    guard = TaskGuard(
                        etags={d.name: etags[d.name] for d in chunk if etags.get(d.name)},
                        last_modified_before=self.now,
                        live_version=live,
                    )
                    add(
                        chunk,
                        action=CleanupAction.delete_objects,
                        bucket=view.store.bucket,
                        keys=[d.name for d in chunk],
                        collection=coll,
                        guard=guard,
                    )
        elif kind is K.upload:
            view = self.views[policy.store]
            for i in range(0, len(planned), MAX_KEYS_PER_TASK):
                chunk = planned[i : i + MAX_KEYS_PER_TASK]
                pairs = [split_upload_name(d.name) for d in chunk]
                add(
                    chunk,
                    action=CleanupAction.abort_uploads,
                    bucket=view.store.bucket,
                    keys=[k for k, _ in pairs],
                    upload_ids=[u for _, u in pairs],
                    guard=TaskGuard(last_modified_before=self.now),
                )
        elif kind is K.snapshot_version:
            view = self.views[policy.store]
            for d in planned:
                cv = match_version_key(d.name)
                assert cv is not None  # the population holds version prefixes only
                c, v = cv
                guard = TaskGuard(live_version=view.chain(c).live.version, last_modified_before=self.now)
                add(
                    [d],
                    action=CleanupAction.delete_snapshot_version,
                    bucket=view.store.bucket,
                    collection=c,
                    version=v,
                    guard=guard,
                )
        elif kind is K.bucket and policy.action == "create-overflow":
            view = self.views[policy.store]
            f = next((f for f in policy.item_filters if isinstance(f, UsageRatio)), None)
            hard = f.threshold(PolicyEnv(self.now, spec, view, [])) if f else spec.watermarks.hard
            guard = TaskGuard(capacity_bytes=spec.capacity, hard_watermark=hard)
            add(planned, action=CleanupAction.create_overflow_bucket, bucket=view.store.bucket, guard=guard)
        elif kind is K.bucket:
            view = self.views[policy.store]
            for d in planned:
                objects = sum(1 for _ in self.access.list(view.store.for_bucket(d.name), ""))
                add(
                    [d],
                    action=CleanupAction.delete_bucket,
                    bucket=d.name,
                    guard=TaskGuard(max_objects=objects),
                )
        elif kind is K.vector_bucket:
            for d in planned:
                add([d], action=CleanupAction.delete_vector_bucket, bucket=d.name)
        elif kind is K.vector_index:
            for d in planned:
                b, ix = d.name.split("/", 1)
                add([d], action=CleanupAction.delete_vector_index, bucket=b, index=ix)
        return tasks


UPLOAD_SEP = "?uploadId="


def upload_name(key: str, upload_id: str) -> str:
    """How an incomplete upload is named in plans and reports (S3's own request notation)."""
    return f"{key}{UPLOAD_SEP}{upload_id}"


def split_upload_name(name: str) -> tuple[str, str]:
    key, _, upload_id = name.rpartition(UPLOAD_SEP)
    return key, upload_id


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC passes while planning: a run builds a few objects per listed key, none in a
    cycle, and each collection re-scans all of them (a quarter of the time at 100,000 keys).
    Whatever is collectable is collected as usual once the plan is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Tally:
    evaluated: int = 0
    matched: int = 0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _all_match(filters: list[Filter], r: Resource, env: PolicyEnv) -> list[str] | None:
    reasons = []
    for f in filters:
        why = f.match(r, env)
        if why is None:
            return None
        reasons.append(why)
    return reasons


@dataclass(slots=True)
class _Row:
    """A decision while planning: plain and mutable (task ids are filled in later); each becomes
    a `Decision` model once, when the policy is done."""

    policy: str
    store: str
    resource: str
    bucket: str
    name: str
    verdict: Verdict
    reason: str
    size: int | None
    created: datetime | None
    task_id: str | None = None

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


def _row(policy: Policy, r: Resource, verdict: Verdict, reason: str) -> _Row:
    # str(kind): the StrEnum's value as a plain str, without the `.value` descriptor
    return _Row(
        policy.name, r.store, str(r.kind), r.bucket, r.name, verdict, reason[:1024], r.size, r.created
    )


def _join_reasons(reasons: list[str], why: str) -> str:
    if len(reasons) == 1 and not why:
        return reasons[0]  # the common case: one item filter, no set filter
    return "; ".join(x for x in [*reasons, why] if x)


def _attr(obj: Any, *names: str) -> str:
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v:
            return str(v)
    raise StorekeeperError(f"vector backend returned an entry without a name: {obj!r:.120}")


def _created(obj: Any) -> datetime | None:
    for n in ("created_at", "creationTime", "creation_time"):
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if isinstance(v, datetime):
            return v
        if isinstance(v, str):
            from storekeeper.policies.filters import parse_time

            return parse_time(v)
        if isinstance(v, int | float):
            from datetime import UTC

            return datetime.fromtimestamp(v, UTC)
    return None
