"""How much time and disk one compaction may spend, sized from the snapshot it works on.

Everything after the last delta is applied grows with the snapshot: flush, pack,
upload, manifest, pointer, delete. A fixed reserve covered it up to a few hundred
thousand vectors and then every compaction that reached its budget timed out
without publishing. So the reserve is computed from the expected size of the new
snapshot and the throughput measured in this process (smoothed, starting from
conservative defaults), and the compactor stops taking deltas while the estimate
still fits. Disk is sized the same way: before work starts, cache entries are
evicted by bytes (`SnapshotCache.make_room`) until the work (the parent's tree,
taken from the cache, plus its archive) fits, after temp dirs of dead processes
are removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storekeeper.errors import StorekeeperError

#: bytes of snapshot per byte of delta blob applied (chroma's sqlite + HNSW links + WAL vs float32 blobs)
GROWTH_PER_DELTA_BYTE = 3.0
#: disk kept free beyond the estimate (chroma's WAL and sqlite temp files)
DISK_MARGIN_BYTES = 256 * 1024 * 1024
#: the estimate is multiplied by this before it is compared with the time left
SAFETY = 1.5
_MIN_SAMPLE_BYTES = 4 * 1024 * 1024  # smaller transfers measure latency, not throughput


class CompactionTooLarge(StorekeeperError):
    """The collection cannot be compacted within one function's time or disk: raise the limits."""


@dataclass
class Rates:
    """Throughput in bytes/s of the steps that grow with the snapshot, smoothed over the runs of
    this process. Defaults are conservative for a 2 GB Lambda next to S3 (measured rates replace
    them after the first large enough compaction)."""

    fetch: float = 30e6  # download + verify + extract, one rate
    pack: float = 100e6
    upload: float = 40e6
    #: per delta: fetch, decode and apply (deltas are small; this is their latency)
    apply_s: float = 0.05
    #: per applied delta removed after publishing (batched deletes: mostly latency)
    remove_s: float = 0.01

    def observe(self, step: str, nbytes: int, seconds: float) -> None:
        """Fold one measurement in (exponential average, weight 1/2); tiny samples are ignored."""
        if nbytes < _MIN_SAMPLE_BYTES or seconds <= 0:
            return
        rate = nbytes / seconds
        setattr(self, step, 0.5 * getattr(self, step) + 0.5 * rate)

    def timed(self, step: str, nbytes: int, started: float) -> None:
        self.observe(step, nbytes, time.monotonic() - started)


#: kept across warm invocations: each compaction measures what the next one plans with
RATES = Rates()


@dataclass
class Budget:
    """The time a compaction may still spend, and what it must keep for finishing."""

    remaining_ms: Callable[[], int] | None = None
    floor_ms: int = 20_000  # fixed part: chroma flush, manifest, pointer, one round trip each
    rates: Rates = field(default_factory=lambda: RATES)
    total_ms: int | None = None  # the whole invocation's time (None: unknown, no size limit applies)

    def finish_ms(self, snapshot_bytes: int, deltas: int) -> int:
        """Time needed after the last delta: pack + upload the snapshot, publish, remove the deltas."""
        r = self.rates
        work_s = snapshot_bytes / r.pack + snapshot_bytes / r.upload + deltas * r.remove_s
        return int(self.floor_ms + 1000 * SAFETY * work_s)

    def start_ms(self, snapshot_bytes: int, cached: bool) -> int:
        """Time to get the parent's tree ready (download + verify + extract unless cached)."""
        if cached:
            return 0
        return int(1000 * SAFETY * snapshot_bytes / self.rates.fetch)

    def left_ms(self) -> int | None:
        return None if self.remaining_ms is None else int(self.remaining_ms())

    def fits(self, need_ms: int) -> bool:
        left = self.left_ms()
        return left is None or left > need_ms

    def can_apply_next(self, snapshot_bytes: int, deltas_so_far: int, *, unwritten: int = 0) -> bool:
        """One more delta, then still time to finish a snapshot of (about) this size? `unwritten`:
        deltas of `deltas_so_far` taken but not yet written to chromadb (a fold): their apply is ahead."""
        r = self.rates
        need = self.finish_ms(snapshot_bytes, deltas_so_far + 1) + int(
            1000 * SAFETY * r.apply_s * (1 + unwritten)
        )
        return self.fits(need)


def estimated_size(parent_bytes: int, delta_bytes: int) -> int:
    """The new snapshot's size after applying `delta_bytes` of delta blobs to a parent of `parent_bytes`."""
    return int(parent_bytes + GROWTH_PER_DELTA_BYTE * delta_bytes)


def disk_needed(parent_bytes: int, *, cached: bool, delta_bytes: int = 0) -> int:
    """Free bytes a compaction needs: the new archive while packing, the tree's growth by the
    deltas, chroma's scratch, and (unless the parent's tree is already in the cache) its
    download and extraction."""
    grown = estimated_size(parent_bytes, delta_bytes)
    return grown + (grown - parent_bytes) + (0 if cached else parent_bytes) + DISK_MARGIN_BYTES


def disk_free(root: Path) -> int:
    return shutil.disk_usage(root).free
