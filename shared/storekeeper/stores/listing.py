"""Where the reaper's planner gets its object listing: the bucket itself, in parallel, or an S3 Inventory.

One sequential `ListObjectsV2` pass is 1,000 keys per round trip: ~100 ms each on S3, so a bucket of
10 million objects takes ~17 minutes to list — longer than a Lambda may run. Two ways past it:

* `ParallelListing` splits the key space at its common prefixes (delimiter listings, breadth first,
  until there is a part per worker), groups consecutive parts into a range per worker and lists the
  ranges concurrently with a bounded pool. Every range is listed once, in full 1,000-key pages
  except its last; the stats say how many
  requests that took against the sequential minimum. Throttling: each range goes through the
  caller's lister (the planner's resumable, backed-off `Access.list`) over a client whose standard
  retry mode backs off on `SlowDown`; the pool bound caps the request rate.
* `InventoryListing` reads an S3 Inventory report (storekeeper.stores.inventory) and lists nothing.

A flat prefix holding millions of keys (no '/' below it) is one range (list it from an inventory to
go faster): the split reads at most `MAX_SPLIT_ENTRIES` of a level, so the range is listed through
the caller's lister, under its time budget and memory bound like every other range.

A listing can be stopped (the reaper's time budget and memory bound: `stop`, asked after every key):
each range then says where it stopped (`RangeListed`), so a run keeps every key any range listed and
the next run lists only each range's remainder (`ranges=`), without splitting again.
"""

from __future__ import annotations

import bisect
import builtins
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from storekeeper.stores.base import ObjectInfo, ObjectStore

#: keys per listing page on S3 (ListObjectsV2's maximum)
PAGE = 1000
DEFAULT_WORKERS = 16
#: delimiter levels explored at most while looking for parts to list in parallel
MAX_SPLIT_DEPTH = 3
#: entries (objects and sub-prefixes) one delimiter listing of the split may return: a larger level
#: (a flat root of millions of keys) is not split but listed as a range, through the caller's
#: budgeted lister; what the split read of it (at most this many entries, ~20 requests) is dropped
MAX_SPLIT_ENTRIES = 20 * PAGE

#: (store, prefix, start_after) -> every object under prefix after start_after, in key order
Lister = Callable[[ObjectStore, str, str | None], Iterator[ObjectInfo]]


class KeyRange(NamedTuple):
    """The keys after `after` up to and including `through` (None: from the start / to the end)."""

    after: str | None = None
    through: str | None = None


#: the whole key space: the one range of a listing that was not resumed
EVERYTHING = KeyRange()


class RangeListed(NamedTuple):
    """One range of a listing and where a stop cut it short (None: listed to its end)."""

    range: KeyRange
    stopped_at: str | None = None

    @property
    def known_through(self) -> str | None:
        """Every key of the range up to this one was listed (None: to the range's end, or its end is
        unbounded and it was not stopped)."""
        return self.stopped_at if self.stopped_at is not None else self.range.through


def _plain_list(store: ObjectStore, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
    return store.list(prefix, start_after=start_after)


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


class ObjectTable:
    """Listed objects in key order as columns (key, size, last-modified, etag).

    Planning a million objects from an inventory never needs a million `ObjectInfo`s: the fast
    path (storekeeper.policies.fastpath) reads the columns; `infos()` builds the objects once,
    only for whoever iterates them (the general planner; the status measure sums the columns).
    """

    __slots__ = ("_infos", "etags", "keys", "keys_checked", "modified", "sizes")

    def __init__(
        self,
        keys: builtins.list[str],
        sizes: builtins.list[int],
        modified: builtins.list[datetime],
        etags: builtins.list[str],
        infos: builtins.list[ObjectInfo] | None = None,
        *,
        keys_checked: bool = False,
    ) -> None:
        self.keys, self.sizes, self.modified, self.etags = keys, sizes, modified, etags
        self._infos = infos
        #: every key passed `names.check_key` (an inventory checks them as it reads)
        self.keys_checked = keys_checked

    @classmethod
    def of(cls, infos: builtins.list[ObjectInfo]) -> ObjectTable:
        """From objects already in key order."""
        return cls(
            [i.key for i in infos],
            [i.size for i in infos],
            [i.last_modified for i in infos],
            [i.etag for i in infos],
            infos,
        )

    def __len__(self) -> int:
        return len(self.keys)

    def infos(self) -> builtins.list[ObjectInfo]:
        if self._infos is None:
            self._infos = [
                ObjectInfo(k, n, e, t)
                for k, n, t, e in zip(self.keys, self.sizes, self.modified, self.etags, strict=False)
            ]
        return self._infos

    def under(self, prefix: str) -> ObjectTable:
        """The objects whose key starts with `prefix` (a contiguous run: keys are sorted)."""
        if not prefix:
            return self
        lo, hi = self.span(prefix)
        infos = self._infos[lo:hi] if self._infos is not None else None
        return ObjectTable(
            self.keys[lo:hi],
            self.sizes[lo:hi],
            self.modified[lo:hi],
            self.etags[lo:hi],
            infos,
            keys_checked=self.keys_checked,
        )

    def span(self, prefix: str) -> tuple[int, int]:
        """Rows lo:hi are the keys that start with `prefix`."""
        lo = bisect.bisect_left(self.keys, prefix)
        above = _successor(prefix)
        return lo, bisect.bisect_left(self.keys, above, lo) if above is not None else len(self.keys)


def _successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix` (None: there is none)."""
    p = prefix.rstrip("\U0010ffff")
    return p[:-1] + chr(ord(p[-1]) + 1) if p else None


class ListingSource(Protocol):
    """Every current object under a prefix, in key order; `stats` says what the last listing cost."""

    stats: ListingStats

    def table(self, store: ObjectStore, prefix: str) -> ObjectTable: ...

    def bound(self) -> str | None:
        """The last key of a listing the source itself cut short (None: it did not)."""
        ...


class SequentialListing:
    """One listing pass (the default, and what every backend without pages gets)."""

    def __init__(self, lister: Lister = _plain_list) -> None:
        self.lister = lister
        self.stats = ListingStats(source="sequential")

    def list(self, store: ObjectStore, prefix: str) -> builtins.list[ObjectInfo]:
        before = store.requests.total()
        start = time.perf_counter()
        items = list(self.lister(store, prefix, None))
        self.stats = ListingStats(
            source="sequential",
            objects=len(items),
            requests=store.requests.total() - before,
            seconds=time.perf_counter() - start,
            page=_page(store),
        )
        return items

    def table(self, store: ObjectStore, prefix: str) -> ObjectTable:
        return ObjectTable.of(self.list(store, prefix))

    def bound(self) -> str | None:
        """A listing stops only where its lister stops."""
        return None


class ParallelListing:
    """Split at common prefixes, list ranges of them concurrently, hand back one key-ordered list.

    The parts found by the split are grouped into at most `workers` ranges of consecutive parts,
    each listed as one `StartAfter` listing that stops where the next range begins: a range of
    many small prefixes costs full pages, not a partial page per prefix (97 prefixes of ~400 keys
    are 16 ranges of ~2,500 keys: 3 pages each, where one listing per prefix took 97 requests).
    A range starts after its first part itself (`StartAfter=p/`): a marker just below it would
    skip the whole folder on SeaweedFS, which compares a marker with folder names; the object
    named exactly like that part (a console "folder") is the previous range's last key.
    """

    #: schemes listed as one range (no pages, no round trips: nothing to gain from a split)
    SEQUENTIAL_SCHEMES = frozenset({"file"})

    def __init__(
        self,
        lister: Lister = _plain_list,
        *,
        workers: int = DEFAULT_WORKERS,
        min_parts: int | None = None,
        ranges: builtins.list[KeyRange] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.lister = lister
        self.workers = workers
        #: list only these ranges (a resumed pass's remainders), as they are: no split (None: all)
        self.ranges = None if ranges is None or ranges == [EVERYTHING] else list(ranges)
        #: asked after every listed key: True stops that range there (it keeps the key)
        self.stop = stop
        #: the ranges of the last listing and where each stopped
        self.listed: builtins.list[RangeListed] = []
        #: split no further once a level has a part per worker: the ranges group them anyway
        self.min_parts = min_parts if min_parts is not None else workers
        #: entries a delimiter listing of the split may return (a larger level is not split)
        self.split_limit = MAX_SPLIT_ENTRIES
        self.stats = ListingStats(source="parallel")

    def list(self, store: ObjectStore, prefix: str) -> builtins.list[ObjectInfo]:
        start = time.perf_counter()
        before = store.requests.total()
        direct: builtins.list[ObjectInfo] = []
        split, notes = 0, builtins.list[str]()
        sequential = store.scheme in self.SEQUENTIAL_SCHEMES or self.workers == 1
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="list") as pool:
            if self.ranges is not None:
                ranges = self.ranges
            elif sequential:
                ranges = [EVERYTHING]
            else:
                direct, parts, split, notes = self._split(store, prefix, pool)
                bounds = _ranges(parts, self.workers)
                ranges = [KeyRange(None if i == 0 else lo, hi) for i, (lo, hi) in enumerate(bounds)]
            listed_once = {i.key for i in direct}

            def one(r: KeyRange) -> tuple[builtins.list[ObjectInfo], RangeListed]:
                return self._range(store, prefix, r, listed_once)

            done = [one(r) for r in ranges] if sequential else list(pool.map(one, ranges))
        # no range left by the split: its delimiter listings listed every key, to the end
        self.listed = [stopped for _, stopped in done] or [RangeListed(EVERYTHING)]
        runs = [direct, *(items for items, _ in done)]
        items = [i for run_ in runs for i in run_]
        # the runs are each in key order and disjoint: timsort merges them in near-linear time
        items.sort(key=_key)
        self.stats = ListingStats(
            source="parallel",
            objects=len(items),
            requests=store.requests.total() - before,
            ranges=len(ranges),
            split_requests=split,
            seconds=time.perf_counter() - start,
            page=_page(store),
            notes=notes,
        )
        return items

    def table(self, store: ObjectStore, prefix: str) -> ObjectTable:
        return ObjectTable.of(self.list(store, prefix))

    def bound(self) -> str | None:
        """Where a stopped listing stops is per range (`listed`), not one key."""
        return None

    def _range(
        self, store: ObjectStore, prefix: str, r: KeyRange, listed_once: set[str]
    ) -> tuple[builtins.list[ObjectInfo], RangeListed]:
        """The keys of `r` under `prefix`, in one listing after `r.after` stopped at the first key past
        `r.through` (a split's range: through the next range's first part): every page full but the
        last. Objects a delimiter listing of the split already returned are not repeated. `stop`
        ends the range after the key it was asked about."""
        hi, stop = r.through, self.stop
        out: builtins.list[ObjectInfo] = []
        for info in self.lister(store, prefix, r.after):
            key = info.key
            if hi is not None and key > hi:
                break
            if key not in listed_once:
                out.append(info)
            if stop is not None and stop():
                return out, RangeListed(r, key)
        return out, RangeListed(r)

    def _split(
        self, store: ObjectStore, prefix: str, pool: ThreadPoolExecutor
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str], int, builtins.list[str]]:
        """Objects found on the way, the prefixes left to list (breadth first), the requests it took
        and notes (a level too large to split).

        A level is expanded only while it has fewer parts than `min_parts`; each expansion costs one
        delimiter listing per part (its own full pages), and the objects it returns are kept, never
        listed again. A part whose level has more than `split_limit` entries stays a part, and the
        split stops there.
        """
        direct: builtins.list[ObjectInfo] = []
        parts = [prefix]
        requests = 0
        notes: builtins.list[str] = []
        limit = self.split_limit
        for _ in range(MAX_SPLIT_DEPTH):
            if len(parts) >= self.min_parts:
                break
            before = store.requests.total()
            levels = list(pool.map(lambda p: store.list_level(p, limit=limit), parts))
            requests += store.requests.total() - before
            nxt: builtins.list[str] = []
            whole = True
            for part, level in zip(parts, levels, strict=True):
                if level is None:  # too large to split: the part is listed as (part of) a range
                    nxt.append(part)
                    whole = False
                    notes.append(f"{part!r}: more than {limit} entries on one level, not split")
                    continue
                objects, subprefixes = level
                direct.extend(objects)
                nxt.extend(subprefixes)
            parts = nxt
            if not parts or not whole:
                break
        return direct, parts, requests, notes


def _ranges(parts: builtins.list[str], count: int) -> builtins.list[tuple[str, str | None]]:
    """`parts` (key order) in at most `count` runs of consecutive parts, as even as their number
    allows: (first part, first part of the next run or None)."""
    parts = sorted(parts)
    n = min(count, len(parts))
    starts = [parts[len(parts) * i // n] for i in range(n)]
    return [(lo, starts[i + 1] if i + 1 < n else None) for i, lo in enumerate(starts)]


def _page(store: ObjectStore) -> int:
    """Keys per listing page of this store (S3: its MaxKeys; 1,000 on AWS)."""
    size = getattr(store, "list_page_size", PAGE)
    return size if isinstance(size, int) and size > 0 else PAGE


def _key(info: ObjectInfo) -> str:
    return info.key
