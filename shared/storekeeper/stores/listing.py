"""Where the reaper's planner gets its object listing: the bucket itself, in parallel, or an S3 Inventory.

One sequential `ListObjectsV2` pass is 1,000 keys per round trip: ~100 ms each on S3, so a bucket of
10 million objects takes ~17 minutes to list — longer than a Lambda may run. Two ways past it:

* `ParallelListing` splits the key space at its common prefixes (delimiter listings, breadth first,
  until there are enough parts for the pool) and lists the parts concurrently with a bounded pool.
  Every range is listed once, in full 1,000-key pages except its last; the stats say how many
  requests that took against the sequential minimum. Throttling: each range goes through the
  caller's lister (the planner's resumable, backed-off `Access.list`) over a client whose standard
  retry mode backs off on `SlowDown`; the pool bound caps the request rate.
* `InventoryListing` reads an S3 Inventory report (storekeeper.stores.inventory) and lists nothing.

A flat prefix holding millions of keys (no '/' below it) is one range: list it from an inventory.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from storekeeper.stores.base import ObjectInfo, ObjectStore

#: keys per listing page on S3 (ListObjectsV2's maximum)
PAGE = 1000
DEFAULT_WORKERS = 16
#: delimiter levels explored at most while looking for parts to list in parallel
MAX_SPLIT_DEPTH = 3

Lister = Callable[[ObjectStore, str], Iterator[ObjectInfo]]


def _plain_list(store: ObjectStore, prefix: str) -> Iterator[ObjectInfo]:
    return store.list(prefix)


@dataclass
class ListingStats:
    """What a listing cost: requests taken against one sequential pass over the same keys."""

    source: str = "list"
    objects: int = 0
    requests: int = 0
    ranges: int = 1
    #: delimiter-listing requests (each also lists the objects directly under its prefix, never again)
    split_requests: int = 0
    seconds: float = 0.0
    page: int = PAGE
    notes: list[str] = field(default_factory=list)

    @property
    def sequential_minimum(self) -> int:
        """Requests one sequential listing of the same keys needs (full pages)."""
        return max(1, math.ceil(self.objects / self.page))

    def summary(self) -> str:
        return (
            f"{self.source}: {self.objects} objects in {self.requests} requests over {self.ranges} "
            f"range(s) (sequential minimum {self.sequential_minimum}; {self.split_requests} to split)"
        )


class ListingSource(Protocol):
    """Every current object under a prefix, in key order; `stats` says what the last listing cost."""

    stats: ListingStats

    def list(self, store: ObjectStore, prefix: str) -> builtins.list[ObjectInfo]: ...


class SequentialListing:
    """One listing pass (the default, and what every backend without pages gets)."""

    def __init__(self, lister: Lister = _plain_list) -> None:
        self.lister = lister
        self.stats = ListingStats(source="sequential")

    def list(self, store: ObjectStore, prefix: str) -> builtins.list[ObjectInfo]:
        before = store.requests.total()
        start = time.perf_counter()
        items = list(self.lister(store, prefix))
        self.stats = ListingStats(
            source="sequential",
            objects=len(items),
            requests=store.requests.total() - before,
            seconds=time.perf_counter() - start,
            page=_page(store),
        )
        return items


class ParallelListing:
    """Split at common prefixes, list the parts concurrently, hand back one key-ordered list."""

    def __init__(
        self, lister: Lister = _plain_list, *, workers: int = DEFAULT_WORKERS, min_parts: int | None = None
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.lister = lister
        self.workers = workers
        self.min_parts = min_parts if min_parts is not None else 2 * workers
        self.stats = ListingStats(source="parallel")

    def list(self, store: ObjectStore, prefix: str) -> builtins.list[ObjectInfo]:
        start = time.perf_counter()
        before = store.requests.total()
        if store.scheme == "file" or self.workers == 1:  # no pages, no round trips: nothing to gain
            items = list(self.lister(store, prefix))
            self.stats = ListingStats("parallel", len(items), store.requests.total() - before, 1)
            self.stats.seconds = time.perf_counter() - start
            return items
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="list") as pool:
            direct, parts, split = self._split(store, prefix, pool)
            listed = list(pool.map(lambda p: list(self.lister(store, p)), parts))
        runs = [direct, *listed]
        items = [i for run in runs for i in run]
        # the runs are each in key order and disjoint: timsort merges them in near-linear time
        items.sort(key=_key)
        self.stats = ListingStats(
            source="parallel",
            objects=len(items),
            requests=store.requests.total() - before,
            ranges=len(parts),
            split_requests=split,
            seconds=time.perf_counter() - start,
            page=_page(store),
        )
        return items

    def _split(
        self, store: ObjectStore, prefix: str, pool: ThreadPoolExecutor
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str], int]:
        """Objects found on the way and the prefixes left to list, breadth first.

        A level is expanded only while it has fewer parts than `min_parts`; each expansion costs one
        delimiter listing per part (its own full pages), and the objects it returns are kept, never
        listed again.
        """
        direct: builtins.list[ObjectInfo] = []
        parts = [prefix]
        requests = 0
        for _ in range(MAX_SPLIT_DEPTH):
            if len(parts) >= self.min_parts:
                break
            before = store.requests.total()
            levels = list(pool.map(store.list_level, parts))
            requests += store.requests.total() - before
            nxt: builtins.list[str] = []
            for objects, subprefixes in levels:
                direct.extend(objects)
                nxt.extend(subprefixes)
            parts = nxt
            if not parts:
                break
        return direct, parts, requests


def _page(store: ObjectStore) -> int:
    """Keys per listing page of this store (S3: its MaxKeys; 1,000 on AWS)."""
    size = getattr(store, "list_page_size", PAGE)
    return size if isinstance(size, int) and size > 0 else PAGE


def _key(info: ObjectInfo) -> str:
    return info.key
