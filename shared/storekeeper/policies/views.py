"""What the planner reads, each read once per run: object stores (listings, snapshot chains,
bucket usage), vector projects (buckets, indexes, labels) and the filter environment of a policy."""

from __future__ import annotations

import bisect
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import purged_on_delete
from storekeeper.policies.access import Access
from storekeeper.policies.budget import LISTING_SHARE, Budget
from storekeeper.policies.model import StoreSpec
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.protection import LiveState, Protection
from storekeeper.stores.base import ObjectInfo, ObjectStore
from storekeeper.stores.listing import ListingSource, ListingStats, ObjectTable, ParallelListing

if TYPE_CHECKING:  # vector stores are opened only for a policy file that names one
    from storekeeper.stores.vectors import VectorBackend, VectorBucketInfo, VectorIndexInfo

_TEST_NAME_RE = re.compile(r"^test-(?P<id>[a-z0-9]+)-")


# -- per-store views (cached reads) -------------------------------------------------------------------


@dataclass
class Chain:
    live: LiveState
    published: frozenset[str]  # versions reached from the pointer through manifest parents


def listing_source(spec: StoreSpec, access: Access, lister: BoundedLister | None = None) -> ListingSource:
    """The store's S3 Inventory when one is configured, else a parallel listing (resumable, throttled);
    under a budget, the segment after the resume point within the memory bound."""
    if spec.inventory:
        from storekeeper.stores.inventory import InventoryListing

        if lister is None:
            return InventoryListing(spec.inventory)
        return InventoryListing(spec.inventory, after=lister.after, max_objects=lister.budget.max_objects)
    return ParallelListing(lister or access.list, workers=spec.list_workers)


class BoundedLister:
    """The parallel listing's lister under a time budget, resuming after a key (a continuation's
    `after`): each range starts at the later of its own start and the resume point (S3
    `StartAfter`), and stops once the budget is spent or the objects listed by all ranges together
    reach its memory bound, after one key at least. `bound()` then says up to which key the listing
    is known without a gap, across every range."""

    def __init__(self, access: Access, after: str | None, budget: Budget) -> None:
        self.access, self.after, self.budget = access, after, budget
        #: the last key of each range the budget stopped
        self.stopped: list[str] = []
        self._lock = threading.Lock()
        self._held = itertools.count(1)  # objects listed so far, every range together (the memory bound)

    def __call__(
        self, store: ObjectStore, prefix: str, start_after: str | None = None
    ) -> Iterator[ObjectInfo]:
        a = self.after
        start = a if a is not None and (start_after is None or a > start_after) else start_after
        for info in self.access.list(store, prefix, start_after=start):
            yield info
            if self.budget.expired("listing") or self.budget.full(next(self._held)):
                with self._lock:
                    self.stopped.append(info.key)
                return

    def bound(self) -> str | None:
        """Every key up to this one is listed (None: every range was listed to its end)."""
        return min(self.stopped) if self.stopped else None


class StoreView:
    """One object store as the planner sees it during a run: every read cached."""

    def __init__(
        self,
        name: str,
        spec: StoreSpec,
        store: ObjectStore,
        access: Access,
        protection: Protection,
        *,
        budget: Budget | None = None,
        after: str | None = None,
        finished: bool = False,
    ):
        self.name, self.spec, self.store, self.access, self.protection = name, spec, store, access, protection
        self.budget = budget or Budget(None)
        #: the pass's resume point (keys up to it were planned by earlier runs) and whether an earlier
        #: run of the pass already planned this store to its end
        self.after, self.finished = after, finished
        #: keys from here on are left to a later run (the budget ran out looking up their labels)
        self.cut: str | None = None
        #: the listing reached the end of the bucket (no range stopped by the budget)
        self.listing_complete = True
        self._uncut = False  # serve the whole listing, the cut's far side too (whole-bucket policies)
        limited = self.budget.limited or after is not None
        self._bounded = BoundedLister(access, after, self.budget.part(LISTING_SHARE)) if limited else None
        self.source = listing_source(spec, access, self._bounded)
        self.listing_stats: list[tuple[str, ListingStats]] = []
        self._tables: dict[str, ObjectTable] = {}
        self._chains: dict[str, Chain] = {}
        self._bucket_usage: dict[str, int] = {}

    def table(self, prefix: str) -> ObjectTable:
        """The objects under `prefix` as columns, listed once per run (a longer prefix is served from
        a listing that covers it): under a time budget, this run's segment only, before any cut."""
        table = self._listed(prefix)
        if self.cut is not None and not self._uncut:
            table = _rows(table, 0, bisect.bisect_left(table.keys, self.cut))
        return table

    def _listed(self, prefix: str) -> ObjectTable:
        if self.finished:
            return ObjectTable([], [], [], [])
        for have, table in self._tables.items():
            if prefix.startswith(have):
                return table if have == prefix else table.under(prefix)
        table = self.source.table(self.store, prefix)
        self.listing_stats.append((prefix, self.source.stats))
        if self._bounded is not None:
            table = self._segment(table)
        self._tables[prefix] = table
        return table

    def _segment(self, table: ObjectTable) -> ObjectTable:
        """Keys after the resume point, up to where the budget let the listing get (an inventory is
        read whole: its keys are cut, if at all, by the label lookups' budget)."""
        assert self._bounded is not None
        keys = table.keys
        lo = 0 if self.after is None else bisect.bisect_right(keys, self.after)
        bounds = [b for b in (self._bounded.bound(), self.source.bound()) if b is not None]
        if self.source.bound() is not None:
            self._bounded.budget.spend("memory")  # the report says what stopped the run
        bound = min(bounds) if bounds else None
        hi = len(keys)
        if bound is not None:
            self.listing_complete = False
            hi = bisect.bisect_right(keys, bound, lo)
        return table if (lo, hi) == (0, len(keys)) else _rows(table, lo, hi)

    def first_key(self) -> str | None:
        """The first key of this run's segment of the store."""
        table = self._listed("")
        return table.keys[0] if len(table) else None

    @contextmanager
    def uncut(self) -> Iterator[None]:
        """Within: the listing as listed, past the cut too (a whole-bucket policy decides on all of it;
        the planner then keeps its plan only if it deletes nothing past the cut)."""
        self._uncut = True
        try:
            yield
        finally:
            self._uncut = False

    def cut_at(self, key: str) -> None:
        """The budget ran out at `key`: it and everything after it are left to the next run."""
        if self.cut is None or key < self.cut:
            self.cut = key

    @property
    def whole(self) -> bool:
        """This run knows the whole bucket: listed from its start to its end, nothing cut."""
        return self.listed_whole and self.cut is None

    @property
    def listed_whole(self) -> bool:
        """This run listed the bucket from its start to its end."""
        return not self.finished and self.after is None and self.listing_complete

    def complete_table(self) -> ObjectTable | None:
        """The whole bucket's listing when this run made one (the status measure sums its columns)."""
        table = self._listed("")
        return table if self.listed_whole else None

    def progress(self) -> tuple[str | None, bool, int]:
        """(the last key fully planned, planned to the end, listed keys left unplanned by a cut)."""
        if self.finished:
            return self.after, True, 0
        listed, kept = self._listed(""), self.table("")
        last = kept.keys[-1] if len(kept) else self.after
        return last, self.listing_complete and self.cut is None, len(listed) - len(kept)

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


def _rows(t: ObjectTable, lo: int, hi: int) -> ObjectTable:
    infos = t._infos[lo:hi] if t._infos is not None else None
    return ObjectTable(
        t.keys[lo:hi], t.sizes[lo:hi], t.modified[lo:hi], t.etags[lo:hi], infos, keys_checked=t.keys_checked
    )


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
