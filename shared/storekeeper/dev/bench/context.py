"""What every case shares in one run: sizes, a scratch directory, backends, and memoised work.

Expensive things (a 100,000-vector snapshot, a running SeaweedFS) are built once
per run and reused by every case that needs them, so cases stay independent in
code but not in cost.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CaseSkipped(Exception):
    """A case cannot run here (a module not built yet, a server missing); the reason goes in the report."""


@dataclass(frozen=True)
class Sizes:
    """Every size a case uses; `QUICK` keeps the smoke test to seconds."""

    dim: int = 384
    delta: int = 10_000  # case 1: vectors per compaction
    delta_chunk: int = 1_000  # vectors per delta blob (a producer put's worth)
    snapshots: tuple[int, ...] = (0, 10_000, 100_000)  # case 1 (and case 2's snapshot axis)
    cold: tuple[int, ...] = (100_000,)  # case 1: snapshot sizes also measured cold (downloaded)
    delta_scale: tuple[int, ...] = (1_000, 3_000, 10_000)  # case 2: delta sizes ...
    delta_scale_snapshot: int = 10_000  # ... into a snapshot of this size
    history: tuple[int, ...] = (1, 5, 10)  # case 2: time the n-th small compaction
    history_delta: int = 100
    producer_put: int = 1_000  # case 3
    producer_repeats: int = 5
    #: moto in-process takes ~10 min to create 100k objects here, SeaweedFS minutes: 10k on those
    reaper_objects: dict[str, int] = field(
        default_factory=lambda: {"local": 100_000, "moto": 10_000, "seaweedfs": 10_000}
    )
    import_repeats: int = 5  # case 5
    chroma_batch: int = 5_000
    #: case listing: objects in prefixes on SeaweedFS behind a proxy adding a delay per request
    listing_objects: int = 40_000
    listing_prefixes: int = 97
    listing_delay: float = 0.100
    listing_workers: int = 16
    #: case listing: an S3 Inventory report of this many objects in this many gzip CSV files
    inventory_objects: int = 1_000_000
    inventory_files: int = 10
    #: case versions: compactions measured on a versioned SeaweedFS bucket, vectors per snapshot
    versions_compactions: int = 4
    versions_snapshot: int = 20_000
    #: case ceiling: snapshot sizes whose compaction is measured (the curve), and the largest asked about
    ceiling: tuple[int, ...] = (10_000, 50_000, 100_000, 200_000)
    ceiling_target: int = 1_000_000
    ceiling_delta: int = 10_000


FULL = Sizes()
QUICK = Sizes(
    dim=16,
    delta=40,
    delta_chunk=10,
    snapshots=(0, 60, 200),
    cold=(200,),
    delta_scale=(10, 20, 40),
    delta_scale_snapshot=60,
    history=(1, 2, 3),
    history_delta=5,
    producer_put=50,
    producer_repeats=2,
    reaper_objects={"local": 300, "moto": 1_100, "seaweedfs": 1_100},  # S3: two list pages, two bulk deletes
    import_repeats=1,
    chroma_batch=100,
    listing_objects=600,
    listing_prefixes=7,
    listing_delay=0.02,
    listing_workers=4,
    inventory_objects=5_000,
    inventory_files=2,
    versions_compactions=3,
    versions_snapshot=200,
    ceiling=(100, 300),
    ceiling_target=1_000,
    ceiling_delta=50,
)


@dataclass
class BenchContext:
    sizes: Sizes
    quick: bool
    workdir: Path
    backends: Any  # storekeeper.dev.bench.backends.Backends (kept loose: it imports boto3 lazily)
    log: Callable[[str], None] = print
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    #: where the report goes: cases write their plots next to it
    out_dir: Path | None = None
    #: where base snapshots are kept across runs (`--cache-dir`); None: built in the run's scratch space
    cache_dir: Path | None = None

    def scratch(self, name: str) -> Path:
        """A fresh empty directory under the run's scratch space."""
        d = self.workdir / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def once(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """Build a value the first time a case asks for it; later cases reuse it."""
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]
