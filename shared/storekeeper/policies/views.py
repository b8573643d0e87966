"""What the planner reads, each read once per run: object stores (listings, snapshot chains,
bucket usage), vector projects (buckets, indexes, labels) and the filter environment of a policy."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import purged_on_delete
from storekeeper.policies.access import Access
from storekeeper.policies.model import StoreSpec
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.protection import LiveState, Protection
from storekeeper.stores.base import ObjectInfo, ObjectStore
from storekeeper.stores.listing import ListingSource, ListingStats, ObjectTable, ParallelListing
from storekeeper.stores.vectors import VectorBackend, VectorBucketInfo, VectorIndexInfo

_TEST_NAME_RE = re.compile(r"^test-(?P<id>[a-z0-9]+)-")


# -- per-store views (cached reads) -------------------------------------------------------------------


@dataclass
class Chain:
    live: LiveState
    published: frozenset[str]  # versions reached from the pointer through manifest parents


def listing_source(spec: StoreSpec, access: Access) -> ListingSource:
    """The store's S3 Inventory when one is configured, else a parallel listing (resumable, throttled)."""
    if spec.inventory:
        from storekeeper.stores.inventory import InventoryListing

        return InventoryListing(spec.inventory)
    return ParallelListing(access.list, workers=spec.list_workers)


class StoreView:
    """One object store as the planner sees it during a run: every read cached."""

    def __init__(
        self, name: str, spec: StoreSpec, store: ObjectStore, access: Access, protection: Protection
    ):
        self.name, self.spec, self.store, self.access, self.protection = name, spec, store, access, protection
        self.source = listing_source(spec, access)
        self.listing_stats: list[tuple[str, ListingStats]] = []
        self._tables: dict[str, ObjectTable] = {}
        self._chains: dict[str, Chain] = {}
        self._bucket_usage: dict[str, int] = {}

    def table(self, prefix: str) -> ObjectTable:
        """The objects under `prefix` as columns, listed once per run (a longer prefix is served from
        a listing that covers it)."""
        for have, table in self._tables.items():
            if prefix.startswith(have):
                return table if have == prefix else table.under(prefix)
        table = self.source.table(self.store, prefix)
        self.listing_stats.append((prefix, self.source.stats))
        self._tables[prefix] = table
        return table

    def listing(self, prefix: str) -> list[ObjectInfo]:
        return self.table(prefix).infos()

    def usage_bytes(self) -> int:
        """Billed bytes: current objects, and on a versioned bucket every noncurrent version too."""
        return sum(self.table("").sizes) + self._noncurrent_bytes(self.store)

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
        if r.kind in (ResourceKind.delta, ResourceKind.snapshot_version) or purged_on_delete(r.name):
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
        backend: VectorBackend,
        registry: tuple[ObjectStore, str] | None,
        access: Access,
    ):
        self.name, self.spec, self.backend, self.registry, self.access = name, spec, backend, registry, access
        self._buckets: list[VectorBucketInfo] | None = None
        self._registry: dict[str, dict[str, str]] | None = None

    def buckets(self) -> list[VectorBucketInfo]:
        if self._buckets is None:
            self._buckets = list(self.access.call(self.backend.list_buckets))
        return self._buckets

    def created(self, bucket: VectorBucketInfo) -> datetime | None:
        """Creation time; Supabase's bucket listing has none, so ask GetVectorBucket (one call per bucket)."""
        if bucket.created_at is not None:
            return bucket.created_at
        return self.access.call(partial(self.backend.get_bucket, bucket.name)).created_at

    def indexes(self, bucket: str) -> list[VectorIndexInfo]:
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
