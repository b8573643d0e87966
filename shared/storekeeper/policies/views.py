"""What the planner reads, each read once per run: object stores (listings, snapshot chains,
bucket usage), vector projects (buckets, indexes, labels) and the filter environment of a policy."""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import purged_on_delete
from storekeeper.policies.access import Access
from storekeeper.policies.budget import LISTING_SHARE, Budget
from storekeeper.policies.model import StoreSpec
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.protection import LiveState, Protection
from storekeeper.stores.base import ObjectInfo, ObjectStore
from storekeeper.stores.listing import (
    EVERYTHING,
    KeyRange,
    ListingSource,
    ListingStats,
    ObjectTable,
    ParallelListing,
    RangeListed,
)

if TYPE_CHECKING:  # vector stores are opened only for a policy file that names one
    from storekeeper.stores.vectors import VectorBackend, VectorBucketInfo, VectorIndexInfo

_TEST_NAME_RE = re.compile(r"^test-(?P<id>[a-z0-9]+)-")


# -- per-store views (cached reads) -------------------------------------------------------------------


class Chain(NamedTuple):
    live: LiveState
    published: frozenset[str]  # versions reached from the pointer through manifest parents


def listing_source(
    spec: StoreSpec, access: Access, ranges: list[KeyRange], stop: ListingStop | None = None
) -> ListingSource:
    """The store's S3 Inventory when one is configured, else a parallel listing (resumable, throttled)
    of `ranges`; under a budget (`stop`), what the budget lets each range get to."""
    if spec.inventory:
        from storekeeper.stores.inventory import InventoryListing

        if stop is None:
            return InventoryListing(spec.inventory)
        # the report is read from the lowest resume point on (its keys in between were planned
        # already: the view keeps only the ranges' keys)
        first = ranges[0].after if ranges else None
        return InventoryListing(spec.inventory, after=first, max_objects=stop.budget.max_objects)
    return ParallelListing(access.list, workers=spec.list_workers, ranges=ranges, stop=stop)


class ListingStop:
    """When the parallel listing's ranges stop: once the budget is spent, or once the objects listed
    by all ranges together reach its memory bound (asked after every key, so a range stops after one
    key at least). Each range keeps what it listed; the next run lists its remainder."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._held = itertools.count(1)  # objects listed so far, every range together (the memory bound)

    def __call__(self) -> bool:
        return self.budget.expired("listing") or self.budget.full(next(self._held))


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
        ranges: list[KeyRange] | None = None,
        finished: bool = False,
    ):
        self.name, self.spec, self.store, self.access, self.protection = name, spec, store, access, protection
        self.budget = budget or Budget(None)
        #: the key ranges the pass has left to list (the rest was planned by earlier runs) and whether
        #: an earlier run of the pass already planned this store to its end
        self.ranges, self.finished = (ranges or [EVERYTHING]), finished
        #: keys from here on are left to a later run (the budget ran out looking up their labels)
        self.cut: str | None = None
        #: the listing reached the end of the bucket (no range stopped by the budget)
        self.listing_complete = True
        self._uncut = False  # serve the whole listing, the cut's far side too (whole-bucket policies)
        limited = self.budget.limited or self.ranges != [EVERYTHING]
        self._bounded = ListingStop(self.budget.part(LISTING_SHARE)) if limited else None
        self.source = listing_source(spec, access, self.ranges, self._bounded)
        #: each range this run listed and where it stopped (for the remainders the next run lists)
        self.listed: list[RangeListed] = [RangeListed(r) for r in self.ranges]
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
        """The keys of the ranges this run listed, each up to where the budget let it get: every key a
        range listed is kept (a split's delimiter listing may have returned keys past a range's stop:
        those are left to the range's remainder). An inventory is read from the lowest resume point,
        at most `max_objects` keys: every range stops at the last key read."""
        if isinstance(self.source, ParallelListing):
            self.listed = list(self.source.listed)
        else:
            bound = self.source.bound()
            if bound is not None and self._bounded is not None:
                self._bounded.budget.spend("memory")  # the report says what stopped the run
            self.listed = [_stopped_at(r, bound) for r in self.ranges]
        self.listing_complete = all(r.stopped_at is None for r in self.listed)
        keys = table.keys
        spans: list[tuple[int, int]] = []
        for lo, hi in (_span(keys, r.range.after, r.known_through) for r in self.listed):
            if hi <= lo:
                continue
            if spans and spans[-1][1] == lo:  # no key between them: one run of rows (nothing copied)
                spans[-1] = (spans[-1][0], hi)
            else:
                spans.append((lo, hi))
        if spans == [(0, len(keys))]:
            return table
        return _concat([_rows(table, lo, hi) for lo, hi in spans])

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
        return not self.finished and self.ranges == [EVERYTHING] and self.listing_complete

    def complete_table(self) -> ObjectTable | None:
        """The whole bucket's listing when this run made one (the status measure sums its columns)."""
        table = self._listed("")
        return table if self.listed_whole else None

    def progress(self) -> StoreProgressOf:
        """Where the store stands after this run's plan: the ranges left (each range's keys after the
        last one planned; none once a range was listed to its end and all of it planned), the keys
        planned and the listed keys left unplanned by a cut."""
        if self.finished:
            return StoreProgressOf([], 0, 0)
        listed, kept = self._listed(""), self.table("")
        keys, cut = listed.keys, self.cut
        left: list[KeyRange] = []
        for r in self.listed:
            lo, hi = _span(keys, r.range.after, r.known_through)
            end = hi if cut is None else min(hi, bisect.bisect_left(keys, cut, lo))
            if r.stopped_at is None and end == hi:
                continue  # listed to its end, all of it planned
            after, through = keys[end - 1] if end > lo else r.range.after, r.range.through
            if after is not None and through is not None and after >= through:
                continue  # stopped on its own last key (a "folder" object ends a split's range)
            left.append(KeyRange(after, through))
        return StoreProgressOf(left, len(kept), len(listed) - len(kept))

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
        if not self.access.call(lambda: store.versioned, store):
            return 0
        return self.access.call(lambda: store.usage(""), store).noncurrent_bytes

    def freed_bytes(self, r: Resource) -> int:
        """What deleting `r` frees now: on a versioned bucket only what cleanup purges
        (snapshot versions, deltas); anything else stays billed as a noncurrent version."""
        if r.kind in (ResourceKind.delta, ResourceKind.snapshot_version) or purged_on_delete(r.name):
            return r.size or 0
        return 0 if self.access.call(lambda: self.store.versioned, self.store) else r.size or 0

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
                manifest = self.access.call(
                    partial(load_manifest, self.store, collection, version), self.store
                )
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
                    data = json.loads(self.access.call(lambda: store.get(key), store).body)
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


class StoreProgressOf(NamedTuple):
    """One store after a run: the ranges it has left (none: planned to its end), keys planned, keys
    listed but left unplanned (a label lookup's cut)."""

    ranges: list[KeyRange]
    planned: int
    left_unplanned: int

    @property
    def finished(self) -> bool:
        return not self.ranges


def _stopped_at(r: KeyRange, bound: str | None) -> RangeListed:
    """`r` as a listing read only up to `bound` (None: to the end) sees it."""
    if bound is None or (r.through is not None and r.through <= bound):
        return RangeListed(r)
    return RangeListed(r, bound if r.after is None or bound > r.after else r.after)


def _span(keys: list[str], after: str | None, through: str | None) -> tuple[int, int]:
    """Rows lo:hi are the keys after `after` up to and including `through`."""
    lo = 0 if after is None else bisect.bisect_right(keys, after)
    return lo, len(keys) if through is None else max(lo, bisect.bisect_right(keys, through, lo))


def _concat(parts: list[ObjectTable]) -> ObjectTable:
    """Tables of disjoint key runs, in key order, as one."""
    if len(parts) == 1:
        return parts[0]
    checked = all(p.keys_checked for p in parts)
    if not parts:
        return ObjectTable([], [], [], [], [], keys_checked=checked)
    infos = [p._infos for p in parts]
    return ObjectTable(
        [k for p in parts for k in p.keys],
        [n for p in parts for n in p.sizes],
        [t for p in parts for t in p.modified],
        [e for p in parts for e in p.etags],
        None if any(i is None for i in infos) else [i for p in infos if p is not None for i in p],
        keys_checked=checked,
    )


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
