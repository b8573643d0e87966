"""What `storekeeper status` reports: per collection live version, records and pending deltas;
bucket usage against capacity and watermarks; vector buckets against the quota.

One listing of `snapshot/` and one of `delta/` (all pages), plus one pointer and
one manifest read per collection. Read-only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from storekeeper.errors import StorekeeperError
from storekeeper.layout import DELTA_PREFIX, LATEST, SNAPSHOT_PREFIX, match_delta_key, match_snapshot_entry
from storekeeper.policies.model import LoadedPolicies
from storekeeper.stores.base import ObjectStore


class CollectionStatus(BaseModel):
    collection: str
    live_version: str | None
    record_count: int | None
    dimension: int | None
    versions: int
    pending_deltas: int
    applied_deltas_present: int
    error: str | None = None


class BucketStatus(BaseModel):
    store: str
    bucket: str
    bytes: int
    objects: int
    capacity: int | None
    ratio: float | None
    high: float
    low: float
    hard: float
    state: str  # ok / above-high / above-hard / no-capacity


class VectorStatus(BaseModel):
    store: str
    buckets: int
    quota: int
    names: list[str]
    error: str | None = None


class StoreStatus(BaseModel):
    store: str
    collections: list[CollectionStatus]
    buckets: list[BucketStatus]
    vectors: list[VectorStatus]


def collection_status(store: ObjectStore) -> list[CollectionStatus]:
    from storekeeper.snapshots import resolve

    versions: dict[str, set[str]] = {}
    for info in store.list(SNAPSHOT_PREFIX):
        entry = match_snapshot_entry(info.key)
        if entry:
            c, v = entry
            versions.setdefault(c, set())
            if v != LATEST:
                versions[c].add(v)
    deltas: dict[str, list[str]] = {}
    for info in store.list(DELTA_PREFIX):
        parts = match_delta_key(info.key)
        if parts:
            deltas.setdefault(parts[0], []).append(parts[1])
    out = []
    for c in sorted(set(versions) | set(deltas)):
        ids = deltas.get(c, [])
        try:
            pub = resolve(store, c)
        except StorekeeperError as exc:
            out.append(
                CollectionStatus(
                    collection=c,
                    live_version=None,
                    record_count=None,
                    dimension=None,
                    versions=len(versions.get(c, ())),
                    pending_deltas=len(ids),
                    applied_deltas_present=0,
                    error=str(exc),
                )
            )
            continue
        applied = set(pub.manifest.applied) | set(pub.manifest.deltas) if pub else set()
        out.append(
            CollectionStatus(
                collection=c,
                live_version=pub.version if pub else None,
                record_count=pub.manifest.record_count if pub else 0,
                dimension=pub.manifest.dimension if pub else None,
                versions=len(versions.get(c, ())),
                pending_deltas=sum(i not in applied for i in ids),
                applied_deltas_present=sum(i in applied for i in ids),
            )
        )
    return out


def bucket_status(name: str, store: ObjectStore, loaded: LoadedPolicies | None) -> BucketStatus:
    spec = loaded.spec.stores.get(name) if loaded else None
    usage = store.usage()
    cap = spec.capacity if spec else None
    wm = spec.watermarks if spec else None
    high, low, hard = (wm.high, wm.low, wm.hard) if wm else (0.85, 0.70, 0.95)
    ratio = usage.bytes / cap if cap else None
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
        bytes=usage.bytes,
        objects=usage.objects,
        capacity=cap,
        ratio=ratio,
        high=high,
        low=low,
        hard=hard,
        state=state,
    )


def vector_status(loaded: LoadedPolicies | None, backends: dict[str, Any]) -> list[VectorStatus]:
    out: list[VectorStatus] = []
    if loaded is None:
        return out
    for name, spec in loaded.spec.stores.items():
        if spec.kind != "vectors" or name not in backends:
            continue
        try:
            buckets = list(backends[name].list_buckets())
            names = sorted(
                str(b.get("name") if isinstance(b, dict) else getattr(b, "name", b)) for b in buckets
            )
            out.append(VectorStatus(store=name, buckets=len(names), quota=spec.quota, names=names))
        except StorekeeperError as exc:
            out.append(VectorStatus(store=name, buckets=0, quota=spec.quota, names=[], error=str(exc)))
    return out


def store_status(
    store: ObjectStore, loaded: LoadedPolicies | None = None, vector_backends: dict[str, Any] | None = None
) -> StoreStatus:
    """Status of the run's store (named `main` in the policies file, if it has one)."""
    return StoreStatus(
        store=store.url,
        collections=collection_status(store),
        buckets=[bucket_status("main", store, loaded)],
        vectors=vector_status(loaded, vector_backends or {}),
    )
