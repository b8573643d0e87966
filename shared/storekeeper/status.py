"""Measure the stores: per collection live version, records, pointer age, pending deltas and kept
versions; bucket usage against capacity and watermarks; vector buckets against the quota.

One full listing per object store (the reaper passes the listing its planner already made),
plus one pointer and a few manifest reads per collection. Read-only. The reaper writes the
result into every report, which is where `status`'s history and forecasts come from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

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
    Measurement,
    StoreStatus,
    VectorStatus,
    VersionStat,
)
from storekeeper.policies.model import LoadedPolicies, StoreSpec
from storekeeper.stores.base import ObjectInfo, ObjectStore
from storekeeper.stores.vectors import VectorBackend

__all__ = [
    "MAX_VERSIONS_READ",
    "bucket_status",
    "collection_status",
    "measure",
    "store_status",
    "vector_status",
]

#: manifests read per collection for the snapshot history (the newest ones)
MAX_VERSIONS_READ = 20


def _delta_time(delta_id: str) -> datetime:
    """Creation time from the delta id's 13-digit epoch-ms prefix."""
    return datetime.fromtimestamp(int(delta_id[:13]) / 1000, UTC)


def collection_status(
    store: ObjectStore, listing: Iterable[ObjectInfo], *, now: datetime, store_name: str = "main"
) -> list[CollectionStatus]:
    """Every collection that has snapshots, a pointer or deltas in `listing` (a listing of the store)."""
    from storekeeper.snapshots import load_manifest, resolve

    versions: dict[str, dict[str, list[int]]] = {}  # c -> version -> [bytes, objects]
    pointers: dict[str, datetime] = {}
    deltas: dict[str, list[tuple[str, datetime]]] = {}
    for info in listing:
        if info.key.startswith(SNAPSHOT_PREFIX):
            c = match_pointer_key(info.key)
            if c is not None:
                pointers[c] = info.last_modified
                versions.setdefault(c, {})
                continue
            entry = match_snapshot_entry(info.key)
            if entry and entry[1] != LATEST:
                stat = versions.setdefault(entry[0], {}).setdefault(entry[1], [0, 0])
                stat[0] += info.size
                stat[1] += 1
        elif info.key.startswith(DELTA_PREFIX):
            parts = match_delta_key(info.key)
            if parts:
                deltas.setdefault(parts[0], []).append((parts[1], _delta_time(parts[1])))
    out = []
    for c in sorted(set(versions) | set(deltas)):
        kept = versions.get(c, {})
        ids = deltas.get(c, [])
        base: dict[str, Any] = {
            "store": store_name,
            "collection": c,
            "versions": len(kept),
            "versions_bytes": sum(s[0] for s in kept.values()),
            "pointer_updated": pointers.get(c),
            "pointer_age_s": (now - pointers[c]).total_seconds() if c in pointers else None,
        }
        try:
            pub = resolve(store, c) if c in pointers else None
        except StorekeeperError as exc:
            out.append(CollectionStatus(**base, pending_deltas=len(ids), error=str(exc)))
            continue
        applied = set(pub.manifest.applied) | set(pub.manifest.deltas) if pub else set()
        pending = [t for i, t in ids if i not in applied]
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
        out.append(
            CollectionStatus(
                **base,
                live_version=pub.version if pub else None,
                record_count=pub.manifest.record_count if pub else 0,
                dimension=pub.manifest.dimension if pub else None,
                pending_deltas=len(pending),
                oldest_pending_age_s=(now - min(pending)).total_seconds() if pending else None,
                applied_deltas_present=len(ids) - len(pending),
                history=history,
            )
        )
    return out


def bucket_status(
    name: str, store: ObjectStore, spec: StoreSpec | None, listing: Iterable[ObjectInfo]
) -> BucketStatus:
    """Usage from a listing (noncurrent versions count where the backend lists them) vs the limits."""
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


Lister = Callable[[str, ObjectStore], list[ObjectInfo]]


def _list_all(_name: str, store: ObjectStore) -> list[ObjectInfo]:
    return list(store.list(""))


def measure(
    loaded: LoadedPolicies,
    stores: Mapping[str, ObjectStore],
    vector_backends: Mapping[str, VectorBackend] | None = None,
    *,
    home: ObjectStore | None = None,
    now: datetime | None = None,
    lister: Lister = _list_all,
) -> Measurement:
    """Every object store of the policies file (collections and usage) and every vector store.

    `lister(name, store)` gives a full listing of one store; the reaper passes its planner's
    cached one, so measuring costs it no second listing. A store that cannot be read is
    reported with its error; the others are still measured.
    """
    now = now or datetime.now(UTC)
    buckets: list[BucketStatus] = []
    collections: list[CollectionStatus] = []
    for name, store in stores.items():
        spec = loaded.spec.stores.get(name)
        try:
            listing = lister(name, store)
            buckets.append(bucket_status(name, store, spec, listing))
            collections.extend(collection_status(store, listing, now=now, store_name=name))
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
