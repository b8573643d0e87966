"""Compactors racing for one pointer (real threads, real conditional writes): the losers remove the
versions they wrote, so exactly one version per successful publish remains (local and SeaweedFS)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from storekeeper import rollback
from storekeeper.compaction import CompactionResult, compact
from storekeeper.deltas import DeltaContent, list_pending
from storekeeper.snapshots import SnapshotCache, read_pointer
from storekeeper.stores.base import ObjectStore
from tests.compaction_support import (
    assert_same_state,
    delta,
    model_state,
    produce,
    snapshot_state,
    vec,
    version_chain,
)
from tests.integration.backend_pair import KINDS, open_pair_store

pytestmark = pytest.mark.slow  # real compactions with chromadb in several threads

DIM = 8
COMPACTORS = 4


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    return open_pair_store(request, tmp_path / "bucket", monkeypatch, "lost-race")


def _versions_left(store: ObjectStore) -> list[str]:
    """Every version with an object under snapshot/docs/, published or not."""
    return sorted(row.version for row in rollback.versions(store, "docs")[1])


def _race(
    store: ObjectStore, tmp_path: Path, run: str, *, barrier: threading.Barrier | None, rounds: int
) -> list[CompactionResult]:
    """COMPACTORS threads compact "docs" `rounds` times each; with `barrier`, every first attempt
    waits there after writing its version, so all of them publish against the same parent."""
    results: list[CompactionResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        waited: list[str] = []

        def hook(step: str) -> None:
            if barrier is not None and step == "after_manifest" and not waited:
                waited.append(step)
                barrier.wait()

        cache = SnapshotCache(tmp_path / f"{run}-cache{i}")
        try:
            for _ in range(rounds):
                r = compact(store, "docs", cache=cache, hooks=hook, max_attempts=50)
                with lock:
                    results.append(r)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(COMPACTORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    return results


def test_racing_compactors_leave_one_version_per_publish_and_nothing_of_the_losers(
    store: ObjectStore, tmp_path: Path
) -> None:
    produced: list[DeltaContent] = []
    for i in range(3):
        produced.append(delta("docs", {f"r{i}": vec(i, DIM)}))
        produce(store, produced[-1])

    # every compactor writes its version from the same parent (none yet), then all publish at once
    first = _race(store, tmp_path, "a", barrier=threading.Barrier(COMPACTORS, timeout=120), rounds=1)
    won = [r for r in first if r.applied]
    assert len(won) == 1  # one conditional write won; the others rebased and found nothing to do
    losers = [r for r in first if r.races_lost]
    assert len(losers) == COMPACTORS - 1
    assert _versions_left(store) == [won[0].version]
    for r in losers:
        assert r.status == "noop"
        assert len(r.lost_removed) == 1  # the version it wrote, removed again
        assert r.lost_kept == {}
        assert r.lost_removed[0] != won[0].version

    # a second race from a published parent, with more deltas arriving while they run
    def more(start: int, stop: int) -> None:
        for i in range(start, stop):
            produced.append(delta("docs", {f"r{i % 5}": vec(i, DIM)}, deletes=[f"r{(i + 2) % 5}"]))
            produce(store, produced[-1])

    more(3, 5)  # pending before they start: every first attempt reaches the barrier
    feeder = threading.Thread(target=more, args=(5, 9))
    feeder.start()
    second = _race(store, tmp_path, "b", barrier=threading.Barrier(COMPACTORS, timeout=120), rounds=3)
    feeder.join(timeout=60)
    last = compact(store, "docs", cache=SnapshotCache(tmp_path / "last"))  # whatever arrived at the end

    runs = [*first, *second, last]
    published = sorted(r.version for r in runs if r.applied and r.version)
    chain = version_chain(store, "docs")
    assert sorted(m.version for m in chain) == published  # every successful publish, linear
    assert _versions_left(store) == published  # ... and nothing else: no loser left its version
    removed = [v for r in runs for v in r.lost_removed]
    assert len(removed) == sum(r.races_lost for r in runs) >= 2 * (COMPACTORS - 1)
    assert not set(removed) & set(published)
    in_chain = [d for m in chain for d in m.deltas]
    assert sorted(in_chain) == sorted(d.delta_id for d in produced)  # each delta exactly once
    assert list_pending(store, "docs") == []
    assert read_pointer(store, "docs")[0] == published[-1]
    assert_same_state(snapshot_state(store, "docs", tmp_path / "reader"), model_state(produced))
