"""Compaction at size: the reserve grows with the snapshot, deltas are capped by it, disk is made
before work starts. Sizes are simulated (a manifest that claims a large parent, a fake disk) and
time is a fake clock: the real ones would take minutes and gigabytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storekeeper.compaction import compact
from storekeeper.compaction_budget import (
    DISK_MARGIN_BYTES,
    Budget,
    CompactionTooLarge,
    Rates,
    disk_needed,
    estimated_size,
)
from storekeeper.deltas import list_pending
from storekeeper.snapshots import SnapshotCache, load_manifest, read_pointer
from storekeeper.stores.local import LocalStore
from tests.compaction_support import assert_same_state, delta, model_state, produce, snapshot_state, vec

pytestmark = pytest.mark.slow  # real compactions with chromadb: not in `make test-fast`

DIM = 8
GB = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "bucket")


def _claim_size(store: LocalStore, c: str, size: int) -> None:
    """Make the live manifest claim a parent of `size` bytes (what the budget plans with)."""
    version, _ = read_pointer(store, c)
    assert version is not None
    key = f"snapshot/{c}/{version}/manifest.json"
    data = json.loads(store.get(key).body)
    data["size"] = size
    store.put(key, json.dumps(data).encode())


def _published(store: LocalStore, c: str, tmp_path: Path) -> list:
    first = delta(c, {"seed": vec(0, DIM)})
    produce(store, first)
    compact(store, c, cache=SnapshotCache(tmp_path / "seed-cache"))
    return [first]


def test_the_reserve_grows_with_the_snapshot() -> None:
    b = Budget(floor_ms=20_000, rates=Rates())
    small, large = b.finish_ms(10_000_000, 1), b.finish_ms(2 * GB, 1)
    assert small < 25_000 < large  # 20 s was enough for 10 MB, far from it for 2 GB
    assert b.finish_ms(2 * GB, 500) > large  # removing the applied deltas is counted too
    assert b.start_ms(2 * GB, cached=True) == 0
    assert b.start_ms(2 * GB, cached=False) > 60_000


def test_measured_rates_replace_the_defaults_and_tiny_samples_are_ignored() -> None:
    r = Rates()
    before = r.upload
    r.observe("upload", 1000, 1.0)  # 1 kB in a second measures latency, not throughput
    assert r.upload == before
    r.observe("upload", 400_000_000, 1.0)  # 400 MB/s measured
    assert before < r.upload < 400_000_000


def test_a_parent_too_large_for_one_invocation_is_a_clear_error(store: LocalStore, tmp_path: Path) -> None:
    _published(store, "big", tmp_path)
    _claim_size(store, "big", 6 * GB)
    produce(store, delta("big", {"a": vec(1, DIM)}))
    with pytest.raises(CompactionTooLarge, match=r"6000 MB .* raise the function's Timeout"):
        compact(
            store,
            "big",
            cache=SnapshotCache(tmp_path / "cold-cache"),
            remaining_ms=lambda: 299_000,
            total_ms=300_000,
        )
    assert len(list_pending(store, "big")) == 1  # nothing lost, nothing published


def test_a_parent_that_fits_a_fresh_invocation_waits_for_one(store: LocalStore, tmp_path: Path) -> None:
    """Late in an invocation a 1 GB parent is not started (it would time out unpublished): the
    records succeed and the sweep, with a whole invocation, compacts it."""
    _published(store, "mid", tmp_path)
    _claim_size(store, "mid", 1 * GB)
    d = delta("mid", {"a": vec(1, DIM)})
    produce(store, d)
    cache = SnapshotCache(tmp_path / "cold-cache")
    late = compact(store, "mid", cache=cache, remaining_ms=lambda: 60_000, total_ms=300_000)
    assert late.status == "incomplete"
    assert late.pending == [d.delta_id]
    assert cache.downloads == 0  # did not even start the download
    fresh = compact(store, "mid", cache=cache, remaining_ms=lambda: 299_000, total_ms=300_000)
    assert fresh.status == "published"
    assert fresh.applied == [d.delta_id]


def test_deltas_per_run_are_capped_by_the_time_their_snapshot_needs(
    store: LocalStore, tmp_path: Path
) -> None:
    """Every applied delta grows the snapshot and so the finish: the run stops taking deltas where
    the finish for the grown snapshot would no longer fit, publishes them, and leaves the rest."""
    seeded = _published(store, "docs", tmp_path)
    ds = [delta("docs", {f"r{i}": vec(i + 1, DIM)}) for i in range(12)]
    for d in ds:
        produce(store, d)
    parent = load_manifest(store, "docs", read_pointer(store, "docs")[0] or "").size
    sizes = [o.size for o in list_pending(store, "docs")]
    slow = Rates(fetch=1e12, pack=parent / 10, upload=parent / 10, apply_s=0.0, remove_s=0.0)
    budget = Budget(None, 5_000, slow)
    # time left: exactly enough to finish a snapshot grown by the first 6 deltas
    left = budget.finish_ms(estimated_size(parent, sum(sizes[:6])), 6) + 1
    cache = SnapshotCache(tmp_path / "c")
    r = compact(store, "docs", cache=cache, remaining_ms=lambda: left, rates=slow, reserve_ms=5_000)
    assert r.status == "incomplete"
    assert r.applied == [d.delta_id for d in ds[:6]]
    assert r.pending == [d.delta_id for d in ds[6:]]
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([*seeded, *ds[:6]]))
    rest = compact(store, "docs", cache=cache, remaining_ms=lambda: 300_000)  # default rates: all fit
    assert rest.applied == r.pending


def test_cache_is_evicted_by_bytes_before_work_starts(store: LocalStore, tmp_path: Path) -> None:
    """Two other collections' trees sit in the cache; the disk has room for the work only if the
    least recently used one goes. It goes, the other stays, the compaction publishes."""
    cache = SnapshotCache(tmp_path / "c")
    for c in ("old", "recent", "docs"):
        produce(store, delta(c, {"a": vec(1, DIM)}))
        compact(store, c, cache=cache)
    entries = {p.parent.name: size for p, size in cache.entries()}
    assert set(entries) == {"old", "recent", "docs"}
    d = delta("docs", {"b": vec(2, DIM)})
    produce(store, d)
    parent = load_manifest(store, "docs", read_pointer(store, "docs")[0] or "")
    need = disk_needed(parent.size, cached=True, delta_bytes=list_pending(store, "docs")[0].size)
    capacity = need + entries["recent"] + entries["docs"] + entries["old"] // 2  # "old" must go

    def free(_: Path) -> int:
        return capacity - cache.size()

    r = compact(store, "docs", cache=cache, free_bytes=free)
    assert r.status == "published"
    left = {p.parent.name for p, _ in cache.entries()}
    assert "old" not in left
    assert "recent" in left


def test_a_disk_too_small_even_when_empty_is_a_clear_error(store: LocalStore, tmp_path: Path) -> None:
    _published(store, "huge", tmp_path)
    _claim_size(store, "huge", 3 * GB)
    produce(store, delta("huge", {"a": vec(1, DIM)}))
    with pytest.raises(CompactionTooLarge, match="EphemeralStorage"):
        compact(store, "huge", cache=SnapshotCache(tmp_path / "c"), free_bytes=lambda _: 4 * GB)
    assert len(list_pending(store, "huge")) == 1


def test_disk_needed_counts_the_download_only_when_not_cached() -> None:
    assert disk_needed(GB, cached=False) - disk_needed(GB, cached=True) == GB
    assert disk_needed(0, cached=True) == DISK_MARGIN_BYTES
    assert estimated_size(GB, 1000) > GB
