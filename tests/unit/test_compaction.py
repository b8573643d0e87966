"""Compaction on the local store with the real chromadb: merge, ledger, rebase, rejects, time budget."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings

from storekeeper import retention, rollback
from storekeeper.compaction import RacesLost, compact, rejection_reason, stale_collections
from storekeeper.deltas import list_pending
from storekeeper.errors import CorruptObject, PointerTargetMissing
from storekeeper.snapshots import SnapshotCache, load_manifest, read_pointer
from storekeeper.stores.local import LocalStore
from tests.compaction_support import (
    assert_same_state,
    delta,
    model_state,
    nan_delta_bytes,
    produce,
    snapshot_state,
    vec,
    version_chain,
)

pytestmark = pytest.mark.slow  # real compactions with chromadb: not in `make test-fast`

DIM = 8


@pytest.fixture
def cache(tmp_path: Path) -> SnapshotCache:
    return SnapshotCache(tmp_path / "cache")


def test_nothing_pending_is_a_noop(store: LocalStore, cache: SnapshotCache) -> None:
    r = compact(store, "docs", cache=cache)
    assert r.status == "noop"
    assert r.version is None
    assert read_pointer(store, "docs") == (None, None)


def test_merge_applies_deletes_then_upserts_in_delta_order(
    store: LocalStore, cache: SnapshotCache, tmp_path
) -> None:
    d1 = delta("docs", {"x": vec(1, DIM), "y": vec(2, DIM)})
    d2 = delta("docs", {"z": vec(3, DIM)}, deletes=["x"])
    d3 = delta("docs", {"x": vec(4, DIM)}, deletes=["y"])  # x comes back with a new vector
    for d in (d1, d2, d3):
        produce(store, d)
    r = compact(store, "docs", cache=cache)
    assert r.status == "published"
    assert r.applied == [d1.delta_id, d2.delta_id, d3.delta_id]
    assert r.record_count == 2
    assert r.dimension == DIM
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([d1, d2, d3]))
    m = load_manifest(store, "docs", r.version)
    assert m.parent is None
    assert m.deltas == r.applied
    assert m.applied == sorted(r.applied)
    assert list_pending(store, "docs") == []  # removed after the publish

    # second round: a new version whose parent is the first; the ledger forgets removed deltas
    d4 = delta("docs", deletes=["z"])
    produce(store, d4)
    r2 = compact(store, "docs", cache=cache)
    m2 = load_manifest(store, "docs", r2.version)
    assert m2.parent == r.version
    assert m2.applied == [d4.delta_id]
    assert r2.version > r.version
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc2"), model_state([d1, d2, d3, d4]))
    assert cache.downloads == 0  # our own published tree was adopted into the cache


def test_ledger_prevents_reapplying_after_crash_before_removal(
    store: LocalStore, cache: SnapshotCache, tmp_path
):
    d1 = delta("docs", {"x": vec(1, DIM)})
    d2 = delta("docs", deletes=["x"])
    produce(store, d1)
    produce(store, d2)

    def crash(step: str) -> None:
        if step == "after_pointer_write":
            raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        compact(store, "docs", cache=cache, hooks=crash)
    assert len(list_pending(store, "docs")) == 2  # published, but not removed yet
    r = compact(store, "docs", cache=cache)
    # re-applying d1 alone would resurrect x: the ledger stops it
    assert r.status == "noop"
    assert r.already_applied == [d1.delta_id, d2.delta_id]
    assert list_pending(store, "docs") == []
    assert snapshot_state(store, "docs", tmp_path / "rc") == {}
    assert [m.deltas for m in version_chain(store, "docs")] == [[d1.delta_id, d2.delta_id]]


def _lose_once(
    store: LocalStore, tmp_path: Path, then: Callable[[], object] | None = None
) -> Callable[[str], None]:
    """A hook that lets another compactor publish while we sit between manifest and pointer write."""
    fired: list[str] = []

    def race(step: str) -> None:
        if step == "after_manifest" and not fired:
            fired.append(step)
            compact(store, "docs", cache=SnapshotCache(tmp_path / "other-cache"))
            if then is not None:
                then()

    return race


def test_a_lost_version_is_kept_and_said_when_no_time_is_left(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    """Removing the loser's version waits for nothing the compaction needs: with less than a
    finish's floor left it is kept (the reaper's orphan rule removes it) and the result says so."""
    produce(store, delta("docs", {"a": vec(1, DIM)}))
    left = [10**9]
    r = compact(
        store,
        "docs",
        cache=cache,
        remaining_ms=lambda: left[0],
        hooks=_lose_once(store, tmp_path, lambda: left.__setitem__(0, 1000)),
    )
    assert r.races_lost == 1
    assert r.lost_removed == []
    [(version, why)] = r.lost_kept.items()
    assert "no time left" in why
    live = read_pointer(store, "docs")[0]
    assert sorted(row.version for row in rollback.versions(store, "docs")[1]) == sorted([live, version])


def test_a_failing_removal_of_the_lost_version_never_fails_the_compaction(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: object, **_k: object) -> None:
        raise OSError("store went away")

    monkeypatch.setattr(retention, "remove_version", broken)
    produce(store, delta("docs", {"a": vec(1, DIM)}))
    r = compact(store, "docs", cache=cache, hooks=_lose_once(store, tmp_path))
    assert r.status == "noop"  # rebased onto the winner, which applied the delta
    [(_version, why)] = r.lost_kept.items()
    assert "removal failed: OSError: store went away" in why
    assert list_pending(store, "docs") == []


def test_a_compaction_that_gives_up_says_how_many_races_it_lost(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    """Every attempt loses (another compactor publishes each time): RacesLost carries the result,
    and every version the loser wrote was removed again."""
    produce(store, delta("docs", {"a": vec(1, DIM)}))

    def race(step: str) -> None:
        # two more deltas; the other compactor publishes all but the last, which keeps us trying
        if step == "after_manifest":
            for k in range(2):
                produce(store, delta("docs", {f"b{k}": vec(k + 2, DIM)}))
            compact(store, "docs", cache=SnapshotCache(tmp_path / "other-cache"), max_deltas=2)

    with pytest.raises(RacesLost) as caught:
        compact(store, "docs", cache=cache, hooks=race, max_attempts=3)
    assert caught.value.result.races_lost == 3
    assert len(caught.value.result.lost_removed) == 3
    assert "3 pointer race(s) lost" in str(caught.value)
    chain = version_chain(store, "docs")
    assert sorted(row.version for row in rollback.versions(store, "docs")[1]) == sorted(
        m.version for m in chain
    )


def test_lost_race_rebases_onto_the_winner(store: LocalStore, cache: SnapshotCache, tmp_path) -> None:
    d1 = delta("docs", {"a": vec(1, DIM)})
    produce(store, d1)
    late = delta("docs", {"b": vec(2, DIM)}, deletes=["a"])
    fired = []

    def race(step: str) -> None:
        # another compactor publishes d1 and `late` while we sit between manifest and pointer write
        if step == "after_manifest" and not fired:
            fired.append(step)
            produce(store, late)
            winner = compact(store, "docs", cache=SnapshotCache(tmp_path / "other-cache"))
            assert winner.applied == [d1.delta_id, late.delta_id]

    r = compact(store, "docs", cache=cache, hooks=race)
    assert r.races_lost == 1
    assert r.status == "noop"  # after the rebase there was nothing left to do
    chain = version_chain(store, "docs")
    assert len(chain) == 1
    assert len(r.lost_removed) == 1  # the loser removed the version it wrote
    assert "publish" in r.phase_seconds  # the lost attempt's pack, upload and pointer write
    assert [row.version for row in rollback.versions(store, "docs")[1]] == [chain[0].version]
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([d1, late]))

    # and a rebase that still has work publishes on top of the winner
    d3 = delta("docs", {"c": vec(3, DIM)})
    produce(store, d3)
    late2 = delta("docs", {"d": vec(4, DIM)})
    fired.clear()

    def race2(step: str) -> None:
        if step == "after_manifest" and not fired:
            fired.append(step)
            produce(store, late2)
            compact(store, "docs", cache=SnapshotCache(tmp_path / "other-cache"), max_deltas=1)  # only d3

    r2 = compact(store, "docs", cache=cache, hooks=race2)
    assert r2.races_lost == 1
    assert r2.status == "published"
    assert r2.applied == [late2.delta_id]
    chain = version_chain(store, "docs")
    assert [m.version.split("-")[0] for m in chain] == ["000000000003", "000000000002", "000000000001"]
    ids = [d for m in chain for d in m.deltas]
    assert sorted(ids) == sorted({d1.delta_id, late.delta_id, d3.delta_id, late2.delta_id})
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc2"), model_state([d1, late, d3, late2]))


def test_bad_deltas_are_quarantined_and_do_not_block_the_rest(
    store: LocalStore, cache: SnapshotCache, tmp_path
):
    good1 = delta("docs", {"a": vec(1, DIM)})
    produce(store, good1)
    wrong_dim = delta("docs", {"w": vec(2, DIM + 1)})
    produce(store, wrong_dim)
    nan_key, nan_blob = nan_delta_bytes("docs", DIM)
    store.put(nan_key, nan_blob)
    corrupt = delta("docs", {"k": vec(3, DIM)})
    store.put(corrupt.key, b"SKDL" + os.urandom(100))
    good2 = delta("docs", {"b": vec(4, DIM)})
    produce(store, good2)

    r = compact(store, "docs", cache=cache)
    assert r.status == "published"
    assert r.applied == [good1.delta_id, good2.delta_id]
    nan_id = nan_key.split("/")[-1].removesuffix(".delta")
    assert set(r.rejected) == {wrong_dim.delta_id, nan_id, corrupt.delta_id}
    assert "dimension 9 but collection docs has dimension 8" in r.rejected[wrong_dim.delta_id]
    assert "must be finite" in r.rejected[nan_id]
    assert "sha256" in r.rejected[corrupt.delta_id] or "format" in r.rejected[corrupt.delta_id]
    # kept for people, out of the way of compaction, with the reason next to it
    assert store.exists(f"delta-rejected/docs/{wrong_dim.delta_id}.delta")
    assert "dimension" in (rejection_reason(store, "docs", wrong_dim.delta_id) or "")
    assert list_pending(store, "docs") == []
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([good1, good2]))


def test_applied_deltas_digests_are_kept_for_judging_notifications(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    """The blob verifies by its own checksum: a wrong sha256 in a message must not cost the delta;
    the digest is kept (result and manifest) so each notification can be judged, even late."""
    d1 = delta("docs", {"a": vec(1, DIM)})
    d2 = delta("docs", deletes=["a"])  # order matters: d1 must still be applied before d2
    produce(store, d1)
    produce(store, d2)
    r = compact(store, "docs", cache=cache)  # the notification itself is judged by the handler
    assert r.status == "published"
    assert r.applied == [d1.delta_id, d2.delta_id]
    digest = r.digests[d1.delta_id]  # what a notification's sha256 is judged against
    assert load_manifest(store, "docs", r.version).delta_sha256[d1.delta_id] == digest
    assert d1.delta_id not in r.rejected
    assert not store.exists(f"delta-rejected/docs/{d1.delta_id}.delta")
    assert_same_state(snapshot_state(store, "docs", tmp_path / "mm"), model_state([d1, d2]))


@pytest.mark.parametrize("damage", ["manifest", "archive", "checksum"])
def test_pointer_target_missing_or_corrupt_stops_compaction(store, cache, tmp_path, damage: str) -> None:
    produce(store, delta("docs", {"a": vec(1, DIM)}))
    first = compact(store, "docs", cache=cache)
    m = load_manifest(store, "docs", first.version)
    pointer_before = store.get("snapshot/docs/latest/pointer.txt").body
    produce(store, delta("docs", {"b": vec(2, DIM)}))
    if damage == "manifest":
        store.delete(f"snapshot/docs/{m.version}/manifest.json")
    elif damage == "archive":
        store.delete(m.archive_key)
    else:
        store.put(m.archive_key, b"\x1f\x8b" + os.urandom(64))
    fresh = SnapshotCache(tmp_path / "fresh-cache")  # no cached copy to fall back on
    expected = CorruptObject if damage == "checksum" else PointerTargetMissing
    with pytest.raises(expected):
        compact(store, "docs", cache=fresh)
    assert store.get("snapshot/docs/latest/pointer.txt").body == pointer_before  # nothing published
    assert len(list_pending(store, "docs")) == 1  # the delta is still waiting


def test_time_budget_and_max_deltas_leave_work_pending(store: LocalStore, cache: SnapshotCache) -> None:
    ds = [delta("docs", {f"r{i}": vec(i, DIM)}) for i in range(3)]
    for d in ds:
        produce(store, d)
    r = compact(store, "docs", cache=cache, remaining_ms=lambda: 1_000, reserve_ms=5_000)
    assert r.status == "incomplete"
    assert r.pending == [d.delta_id for d in ds]
    assert read_pointer(store, "docs") == (None, None)

    r = compact(store, "docs", cache=cache, max_deltas=2)
    assert r.status == "incomplete"
    assert r.applied == [ds[0].delta_id, ds[1].delta_id]
    assert r.pending == [ds[2].delta_id]
    assert [o.key for o in list_pending(store, "docs")] == [ds[2].key]

    clock = iter([60_000, 60_000, 1_000, 1_000, 1_000])  # runs out after the first delta of this run
    d4 = delta("docs", {"r4": vec(4, DIM)})
    produce(store, d4)
    r = compact(store, "docs", cache=cache, remaining_ms=lambda: next(clock), reserve_ms=5_000)
    assert r.status == "incomplete"
    assert r.applied == [ds[2].delta_id]
    assert r.pending == [d4.delta_id]


def test_published_archive_opens_with_plain_chromadb(
    store: LocalStore, cache: SnapshotCache, tmp_path
) -> None:
    recs = {f"id-{i}": vec(100 + i, DIM) for i in range(50)}
    produce(store, delta("docs", recs, metadata={"source": "test"}))
    r = compact(store, "docs", cache=cache)
    m = load_manifest(store, "docs", r.version)
    archive = tmp_path / "by-hand.tar.gz"
    archive.write_bytes(store.get(m.archive_key).body)
    out = tmp_path / "by-hand"
    with tarfile.open(archive) as tf:
        tf.extractall(out, filter="data")
    client = chromadb.PersistentClient(path=str(out), settings=Settings(anonymized_telemetry=False))
    try:
        cols = client.list_collections()
        assert [c.name for c in cols] == ["docs"]
        col = client.get_collection("docs", embedding_function=None)
        assert col.count() == 50 == m.record_count
        res = col.query(query_embeddings=[recs["id-7"]], n_results=3, include=["distances", "metadatas"])
        assert res["ids"][0][0] == "id-7"
        assert res["distances"][0][0] < 1e-4
        assert res["metadatas"][0][0] == {"source": "test"}
    finally:
        client.close()


def test_short_collection_names_still_work(store: LocalStore, cache: SnapshotCache, tmp_path) -> None:
    d = delta("a", {"x": vec(1, DIM)})  # 'a' is too short for a Chroma name: wrapped, still one collection
    produce(store, d)
    compact(store, "a", cache=cache)
    assert_same_state(snapshot_state(store, "a", tmp_path / "rc"), model_state([d]))


def test_sweep_finds_collections_with_old_pending_deltas(store: LocalStore) -> None:
    produce(store, delta("old", {"a": vec(1, DIM)}))
    produce(store, delta("new", {"a": vec(1, DIM)}))
    old_file = next((store.path / "delta" / "old").iterdir())
    os.utime(old_file, (0, 1_000_000))
    store.put("delta/old/not-a-delta.txt", b"stray")
    assert stale_collections(store, 3600) == ["old"]
    assert stale_collections(store, 0) == ["new", "old"]


def test_warm_compaction_moves_the_parent_out_of_the_cache_and_adopts_the_result(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    d1, d2 = delta("docs", {"x": vec(1, DIM)}), delta("docs", {"y": vec(2, DIM)})
    produce(store, d1)
    v1 = compact(store, "docs", cache=cache).version
    produce(store, d2)
    v2 = compact(store, "docs", cache=cache).version
    entries = tmp_path / "cache" / "entries" / "docs"
    # the parent's tree was taken (not copied) by the second run, whose own result is cached
    assert sorted(p.name for p in entries.iterdir()) == [v2]
    assert cache.downloads == 0
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([d1, d2]))
    # the taken parent is still readable: it is fetched and verified again
    assert SnapshotCache(tmp_path / "cache").fetch(store, load_manifest(store, "docs", v1)).is_dir()
