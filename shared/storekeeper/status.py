"""Measure the stores: per collection live version, records, pointer age, pending deltas and kept
versions; bucket usage against capacity and watermarks; vector buckets against the quota.

Per object store a tally (`UsageSum`: bytes and objects, each collection's versions, pointer and
deltas), summed over a full listing or, in the reaper, from its planner's listing columns or carried
across a budgeted pass's runs, so no listing is kept and no object built; plus one pointer and a few
manifest reads per collection. Read-only. The reaper writes the
result into every report, which is where `status`'s history and forecasts come from.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storekeeper.errors import StorekeeperError
from storekeeper.layout import (
    DELTA_PREFIX,
    LATEST,
    SNAPSHOT_PREFIX,
    match_delta_key,
    match_pointer_key,
    match_snapshot_entry,
)
from storekeeper.models.status import (
    BucketStatus,
    CollectionStatus,
    DeltaTally,
    Measurement,
    StoreStatus,
    StoreTally,
    VectorStatus,
    VersionStat,
)
from storekeeper.policies.model import LoadedPolicies, StoreSpec
from storekeeper.stores.base import ObjectInfo, ObjectStore

if TYPE_CHECKING:
    from storekeeper.stores.vectors import VectorBackend

if TYPE_CHECKING:
    from storekeeper.snapshots import Published
    from storekeeper.stores.listing import ObjectTable

__all__ = [
    "MAX_VERSIONS_READ",
    "UsageSum",
    "bucket_status",
    "collection_status",
    "measure",
    "merge",
    "store_status",
    "vector_status",
]

#: manifests read per collection for the snapshot history (the newest ones)
MAX_VERSIONS_READ = 20


def _delta_time(delta_id: str) -> datetime:
    """Creation time from the delta id's 13-digit epoch-ms prefix."""
    return datetime.fromtimestamp(int(delta_id[:13]) / 1000, UTC)


class UsageSum:
    """The measure's raw figures, summed as keys are read (no listing is kept): objects and bytes,
    and per collection its versions' bytes and objects, its pointer's time and its delta ids."""

    def __init__(self) -> None:
        self.objects = self.bytes = 0
        self.versions: dict[str, dict[str, list[int]]] = {}  # c -> version -> [bytes, objects]
        self.pointers: dict[str, datetime] = {}
        self.deltas: dict[str, list[str]] = {}

    @classmethod
    def of_listing(cls, listing: Iterable[ObjectInfo]) -> UsageSum:
        out = cls()
        measured = (SNAPSHOT_PREFIX, DELTA_PREFIX)
        for info in listing:
            out.objects += 1
            out.bytes += info.size
            if info.key.startswith(measured):
                out.add(info.key, info.size, info.last_modified)
        return out

    @classmethod
    def of_table(cls, table: ObjectTable) -> UsageSum:
        """From a listing's columns: a sum over sizes and a pass over the snapshot and delta keys only
        (a contiguous run each: keys are sorted), no object built."""
        out = cls()
        out.objects, out.bytes = len(table), sum(table.sizes)
        keys, sizes, modified = table.keys, table.sizes, table.modified
        for prefix in (SNAPSHOT_PREFIX, DELTA_PREFIX):
            lo, hi = table.span(prefix)
            for i in range(lo, hi):
                out.add(keys[i], sizes[i], modified[i])
        return out

    def add(self, key: str, size: int, modified: datetime) -> None:
        """A snapshot or delta key (any other key only counts in the totals)."""
        if key.startswith(SNAPSHOT_PREFIX):
            c = match_pointer_key(key)
            if c is not None:
                self.pointers[c] = modified
                self.versions.setdefault(c, {})
                return
            entry = match_snapshot_entry(key)
            if entry and entry[1] != LATEST:
                stat = self.versions.setdefault(entry[0], {}).setdefault(entry[1], [0, 0])
                stat[0] += size
                stat[1] += 1
        elif key.startswith(DELTA_PREFIX):
            parts = match_delta_key(key)
            if parts:
                self.deltas.setdefault(parts[0], []).append(parts[1])

    def settle(self, store: ObjectStore, *, partial: bool = False) -> StoreTally:
        """The sum as a `StoreTally`: delta ids become counts against the live manifest now (read for
        collections whose pointer was listed; for every one when the sum covers part of a bucket)."""
        deltas: dict[str, DeltaTally] = {}
        for c, ids in self.deltas.items():
            applied: set[str] = set()
            if partial or c in self.pointers:
                with contextlib.suppress(StorekeeperError):  # unreadable: all pending, as the measure says
                    pub = resolve_cached(store, c)
                    applied = set(pub.manifest.applied) | set(pub.manifest.deltas) if pub else set()
            pending = [_delta_time(i) for i in ids if i not in applied]
            deltas[c] = DeltaTally(
                pending=len(pending),
                applied=len(ids) - len(pending),
                oldest_pending=min(pending, default=None),
            )
        versions = {c: {v: (n[0], n[1]) for v, n in vs.items()} for c, vs in self.versions.items()}
        return StoreTally(
            objects=self.objects, bytes=self.bytes, versions=versions, pointers=self.pointers, deltas=deltas
        )


def merge(a: StoreTally, b: StoreTally) -> StoreTally:
    """Two tallies of disjoint key ranges of one store as one (a pass's runs)."""
    versions = {c: dict(vs) for c, vs in a.versions.items()}
    for c, vs in b.versions.items():
        mine = versions.setdefault(c, {})
        for v, (n, k) in vs.items():
            was = mine.get(v, (0, 0))
            mine[v] = (was[0] + n, was[1] + k)
    deltas = dict(a.deltas)
    for c, d in b.deltas.items():
        if c in deltas:
            e = deltas[c]
            oldest = min((t for t in (e.oldest_pending, d.oldest_pending) if t is not None), default=None)
            d = DeltaTally(
                pending=e.pending + d.pending, applied=e.applied + d.applied, oldest_pending=oldest
            )
        deltas[c] = d
    return StoreTally(
        objects=a.objects + b.objects,
        bytes=a.bytes + b.bytes,
        versions=versions,
        pointers={**a.pointers, **b.pointers},
        deltas=deltas,
    )


def resolve_cached(store: ObjectStore, collection: str) -> Published | None:
    """`snapshots.resolve`, once per store and collection within one measure (`_resolved`)."""
    from storekeeper.snapshots import resolve

    cache = _resolved.get()
    if cache is None:
        return resolve(store, collection)
    k = (id(store), collection)
    if k not in cache:
        try:
            cache[k] = resolve(store, collection)
        except StorekeeperError as exc:
            cache[k] = exc
    got = cache[k]
    if isinstance(got, StorekeeperError):
        raise got
    return got


#: pointers resolved during one `measure` (a run settles its sum and then measures: one read each)
_resolved: contextvars.ContextVar[dict[tuple[int, str], Published | StorekeeperError | None] | None] = (
    contextvars.ContextVar("storekeeper_status_resolved", default=None)
)


@contextlib.contextmanager
def resolving_once() -> Iterator[None]:
    token = _resolved.set({})
    try:
        yield
    finally:
        _resolved.reset(token)


def collection_status(
    store: ObjectStore, listing: Iterable[ObjectInfo] | StoreTally, *, now: datetime, store_name: str = "main"
) -> list[CollectionStatus]:
    """Every collection that has snapshots, a pointer or deltas in `listing` (a listing of the store,
    or its tally)."""
    from storekeeper.snapshots import load_manifest

    t = listing if isinstance(listing, StoreTally) else UsageSum.of_listing(listing).settle(store)
    versions, pointers, deltas = t.versions, t.pointers, t.deltas
    out = []
    for c in sorted(set(versions) | set(deltas)):
        kept = versions.get(c, {})
        d = deltas.get(c, DeltaTally())
        base: dict[str, Any] = {
            "store": store_name,
            "collection": c,
            "versions": len(kept),
            "versions_bytes": sum(s[0] for s in kept.values()),
            "pointer_updated": pointers.get(c),
            "pointer_age_s": (now - pointers[c]).total_seconds() if c in pointers else None,
        }
        try:
            pub = resolve_cached(store, c) if c in pointers else None
        except StorekeeperError as exc:
            out.append(CollectionStatus(**base, pending_deltas=d.pending + d.applied, error=str(exc)))
            continue
        history = []
        for v in sorted(kept, reverse=True)[:MAX_VERSIONS_READ]:
            row = VersionStat(
                version=v, bytes=kept[v][0], objects=kept[v][1], live=pub is not None and v == pub.version
            )
            try:
                man = pub.manifest if pub and v == pub.version else load_manifest(store, c, v)
                row = row.model_copy(
                    update={
                        "record_count": man.record_count,
                        "parent": man.parent,
                        "created_at": man.created_at,
                    }
                )
            except StorekeeperError:
                pass  # half-written or removed meanwhile: bytes only
            history.append(row)
        oldest = d.oldest_pending
        out.append(
            CollectionStatus(
                **base,
                live_version=pub.version if pub else None,
                record_count=pub.manifest.record_count if pub else 0,
                dimension=pub.manifest.dimension if pub else None,
                pending_deltas=d.pending,
                oldest_pending_age_s=(now - oldest).total_seconds() if d.pending and oldest else None,
                applied_deltas_present=d.applied,
                history=history,
            )
        )
    return out


def bucket_status(
    name: str, store: ObjectStore, spec: StoreSpec | None, listing: Iterable[ObjectInfo] | StoreTally
) -> BucketStatus:
    """Usage from a listing or its tally (noncurrent versions count where the backend lists them) vs
    the limits."""
    if isinstance(listing, StoreTally):
        total, count = listing.bytes, listing.objects
    else:
        total = count = 0
        for info in listing:
            total += info.size
            count += 1
    wm = spec.watermarks if spec else None
    high, low, hard = (wm.high, wm.low, wm.hard) if wm else (0.85, 0.70, 0.95)
    cap = spec.capacity if spec else None
    ratio = total / cap if cap else None
    state = (
        "no-capacity"
        if ratio is None
        else "above-hard"
        if ratio >= hard
        else "above-high"
        if ratio >= high
        else "ok"
    )
    return BucketStatus(
        store=name,
        bucket=store.bucket,
        bytes=total,
        objects=count,
        capacity=cap,
        ratio=ratio,
        high=high,
        low=low,
        hard=hard,
        state=state,
    )


def vector_status(loaded: LoadedPolicies | None, backends: Mapping[str, VectorBackend]) -> list[VectorStatus]:
    out: list[VectorStatus] = []
    if loaded is None:
        return out
    for name, spec in loaded.spec.stores.items():
        if spec.kind != "vectors" or name not in backends:
            continue
        try:
            names = sorted(b.name for b in backends[name].list_buckets())
            out.append(VectorStatus(store=name, buckets=len(names), quota=spec.quota, names=names))
        except StorekeeperError as exc:
            out.append(VectorStatus(store=name, buckets=0, quota=spec.quota, names=[], error=str(exc)))
    return out


#: (name, store) -> the store's tally (default: summed over a full listing, nothing kept)
Tallier = Callable[[str, ObjectStore], StoreTally]


def _list_all(_name: str, store: ObjectStore) -> StoreTally:
    return UsageSum.of_listing(store.list("")).settle(store)


def measure(
    loaded: LoadedPolicies,
    stores: Mapping[str, ObjectStore],
    vector_backends: Mapping[str, VectorBackend] | None = None,
    *,
    home: ObjectStore | None = None,
    now: datetime | None = None,
    tallies: Tallier = _list_all,
) -> Measurement:
    """Every object store of the policies file (collections and usage) and every vector store.

    `tallies(name, store)` gives one store's tally; the reaper passes the one summed from its
    planner's listing (or carried across a pass's runs), so measuring costs it no second listing and
    builds no object. A store that cannot be read is reported with its error; the others are still
    measured.
    """
    now = now or datetime.now(UTC)
    buckets: list[BucketStatus] = []
    collections: list[CollectionStatus] = []
    for name, store in stores.items():
        spec = loaded.spec.stores.get(name)
        try:
            with resolving_once():
                tally = tallies(name, store)
                buckets.append(bucket_status(name, store, spec, tally))
                collections.extend(collection_status(store, tally, now=now, store_name=name))
        except StorekeeperError as exc:
            buckets.append(BucketStatus(store=name, bucket=store.bucket, state="error", error=str(exc)))
    return Measurement(
        measured_at=now,
        store=(home or next(iter(stores.values()))).url if (home or stores) else "",
        collections=collections,
        buckets=buckets,
        vectors=vector_status(loaded, vector_backends or {}),
    )


def store_status(
    store: ObjectStore,
    loaded: LoadedPolicies,
    vector_backends: Mapping[str, VectorBackend] | None = None,
    *,
    stores: Mapping[str, ObjectStore] | None = None,
    now: datetime | None = None,
    history_runs: int | None = None,
) -> StoreStatus:
    """The measurement now plus the history and forecasts from the reaper's reports in `store`."""
    from storekeeper import history

    now = now or datetime.now(UTC)
    opened = dict(stores) if stores is not None else {"main": store}
    m = measure(loaded, opened, vector_backends, home=store, now=now)
    runs = history.DEFAULT_RUNS if history_runs is None else history_runs
    return history.status_from(m, history.read(store, limit=runs), now=now)
