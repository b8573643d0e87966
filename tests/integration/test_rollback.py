"""Rollback on the local store and on SeaweedFS (a real S3 server): a new version with the
chosen version's content through the conditional pointer write, the dropped deltas named, never
re-applied; refuses a gone or corrupt version; a lost race publishes nothing; the CLI asks first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from storekeeper import retention, rollback
from storekeeper.cli import app
from storekeeper.compaction import compact
from storekeeper.errors import CorruptObject, PointerTargetMissing, PreconditionFailed, StorekeeperError
from storekeeper.snapshots import SnapshotCache, load_manifest, manifest_key, read_pointer
from storekeeper.stores.base import ObjectStore
from tests.compaction_support import delta, produce, snapshot_state, vec, version_chain
from tests.integration.backend_pair import KINDS, open_pair_store

DIM = 8


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    return open_pair_store(request, tmp_path / "store", monkeypatch, "rb")


def build(store: ObjectStore, tmp_path: Path) -> tuple[list[str], list[list[str]]]:
    """Three versions: v1 {a, b}; v2 + c; v3 - a + d. Returns (versions, delta ids per version)."""
    cache = SnapshotCache(tmp_path / "cache")
    steps: list[dict[str, Any]] = [
        {"upserts": {"a": vec(1, DIM), "b": vec(2, DIM)}},
        {"upserts": {"c": vec(3, DIM)}},
        {"upserts": {"d": vec(4, DIM)}, "deletes": ["a"]},
    ]
    versions, ids = [], []
    for s in steps:
        d = delta("docs", s.get("upserts"), s.get("deletes", ()))
        produce(store, d)
        res = compact(store, "docs", cache=cache)
        assert res.status == "published"
        versions.append(res.version)
        ids.append([d.delta_id])
    return versions, ids


def test_rollback_publishes_the_old_content_as_a_new_version(store: ObjectStore, tmp_path: Path) -> None:
    (v1, v2, v3), ids = build(store, tmp_path)
    p = rollback.plan(store, "docs", v1, tmp_path)
    assert p.live_version == v3
    assert p.skipped_versions == [v3, v2]
    assert p.dropped == ids[1] + ids[2]
    assert p.chain_complete
    m = rollback.apply(store, p)
    live, _ = read_pointer(store, "docs")
    assert live == m.version
    assert m.version > v3
    assert m.version.startswith("000000000004-")
    assert m.parent == v3
    assert m.deltas == []
    assert m.record_count == 2
    assert m.sha256 == load_manifest(store, "docs", v1).sha256
    assert m.applied == load_manifest(store, "docs", v3).applied  # the ledger: dropped deltas stay applied
    assert sorted(snapshot_state(store, "docs", tmp_path / "r1")) == ["a", "b"]
    # the next compaction builds on the rolled-back content; no dropped delta comes back
    produce(store, delta("docs", {"e": vec(5, DIM)}))
    res = compact(store, "docs", cache=SnapshotCache(tmp_path / "cache2"))
    assert res.status == "published"
    assert res.record_count == 3
    assert sorted(snapshot_state(store, "docs", tmp_path / "r2")) == ["a", "b", "e"]
    assert [x.version for x in version_chain(store, "docs")][:3] == [res.version, m.version, v3]


def test_rollback_refuses_a_gone_or_corrupt_version(store: ObjectStore, tmp_path: Path) -> None:
    (v1, v2, v3), _ = build(store, tmp_path)
    before = read_pointer(store, "docs")
    # corrupt: the archive's bytes no longer match the manifest's sha256
    m2 = load_manifest(store, "docs", v2)
    store.put(m2.archive_key, b"not the archive")
    with pytest.raises(CorruptObject, match="does not match the manifest"):
        rollback.plan(store, "docs", v2, tmp_path / "x")
    # gone: the archive removed, then the manifest removed
    m1 = load_manifest(store, "docs", v1)
    store.delete(m1.archive_key)
    (tmp_path / "y").mkdir()
    with pytest.raises(PointerTargetMissing, match="does not exist"):
        rollback.plan(store, "docs", v1, tmp_path / "y")
    store.delete(manifest_key("docs", v1))
    with pytest.raises(PointerTargetMissing):
        rollback.plan(store, "docs", v1, tmp_path / "y")
    with pytest.raises(StorekeeperError, match="already the live one"):
        rollback.plan(store, "docs", v3, tmp_path / "y")
    assert read_pointer(store, "docs") == before  # nothing was published


def test_a_lost_race_publishes_nothing_and_leaves_nothing(store: ObjectStore, tmp_path: Path) -> None:
    (v1, v2, v3), _ = build(store, tmp_path)
    p = rollback.plan(store, "docs", v1, tmp_path)
    produce(store, delta("docs", {"z": vec(9, DIM)}))
    won = compact(store, "docs", cache=SnapshotCache(tmp_path / "c2"))
    with pytest.raises(PreconditionFailed, match="was removed"):
        rollback.apply(store, p)
    assert read_pointer(store, "docs")[0] == won.version
    assert [r.version for r in rollback.versions(store, "docs")[1]] == [won.version, v3, v2, v1]  # none left


def test_a_pointer_write_that_landed_but_answered_412_is_a_win(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried conditional PUT whose first try landed answers 412: the rollback re-reads the
    pointer, finds its own version and returns it, never removing the live version."""
    (v1, _, _), _ = build(store, tmp_path)
    p = rollback.plan(store, "docs", v1, tmp_path)
    real = retention.publish

    def lands_then_412(s: ObjectStore, c: str, version: str, etag: str | None) -> str:
        real(s, c, version, etag)
        raise PreconditionFailed(s.url, "pointer", "412 on the retry of a write that landed")

    monkeypatch.setattr(retention, "publish", lands_then_412)
    m = rollback.apply(store, p)
    assert read_pointer(store, "docs")[0] == m.version
    assert load_manifest(store, "docs", m.version).sha256 == p.target.sha256


def test_rollback_recovers_a_pointer_whose_target_is_missing(store: ObjectStore, tmp_path: Path) -> None:
    """The PointerTargetMissing runbook: the live manifest is gone; roll back to a retained version."""
    (_v1, v2, v3), _ = build(store, tmp_path)
    store.delete(manifest_key("docs", v3))
    with pytest.raises(PointerTargetMissing):
        compact(store, "docs", cache=SnapshotCache(tmp_path / "c"))
    p = rollback.plan(store, "docs", v2, tmp_path)
    assert p.live_problem
    assert not p.chain_complete
    assert p.live_manifest is None
    m = rollback.apply(store, p)
    assert m.parent == v3
    assert m.record_count == 3
    assert sorted(snapshot_state(store, "docs", tmp_path / "r")) == ["a", "b", "c"]


def test_cli_shows_the_dropped_deltas_and_needs_a_yes(store: ObjectStore, tmp_path: Path) -> None:
    (v1, _, v3), ids = build(store, tmp_path)
    runner = CliRunner()
    dry = runner.invoke(app, ["rollback", "docs", v1, "--store", store.url, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.stdout)
    assert data["dropped_deltas"] == ids[1] + ids[2]
    assert data["published"] is None
    told = runner.invoke(app, ["rollback", "docs", v1, "--store", store.url, "--dry-run"])
    assert told.exit_code == 0, told.output
    assert "dry run: nothing published" in told.output  # the table alone looked like it had happened
    assert read_pointer(store, "docs")[0] == v3
    # not a terminal and no --yes: refused, nothing changed
    no = runner.invoke(app, ["rollback", "docs", v1, "--store", store.url])
    assert no.exit_code == 1
    assert "pass --yes" in no.output
    assert read_pointer(store, "docs")[0] == v3
    yes = runner.invoke(app, ["rollback", "docs", v1, "--store", store.url, "--yes"])
    assert yes.exit_code == 0, yes.output
    assert "2 applied delta(s) dropped" in " ".join(yes.output.split())
    live = read_pointer(store, "docs")[0]
    assert live is not None
    assert live > v3
    table = runner.invoke(app, ["snapshots", "docs", "--store", store.url], env={"COLUMNS": "80"}).output
    assert v3 in table  # versions whole, not folded
    assert max(len(line) for line in table.splitlines()) <= 80
    listing = runner.invoke(app, ["snapshots", "docs", "--store", store.url, "--json"])
    rows = json.loads(listing.stdout)["versions"]
    assert [r["version"] for r in rows] == sorted([r["version"] for r in rows], reverse=True)
    assert [r["live"] for r in rows] == [True, False, False, False]
    assert rows[0]["record_count"] == 2
    assert rows[0]["parent"] == v3
    gone = runner.invoke(app, ["rollback", "docs", "000000000099-zzzzzzzz", "--store", store.url, "--yes"])
    assert gone.exit_code == 1
    assert "does not exist" in gone.output


def test_two_rollbacks_racing_publish_exactly_one(store: ObjectStore, tmp_path: Path) -> None:
    """Two operators roll back at once (real threads, a barrier before the writes): one conditional
    pointer write wins, the other gets PreconditionFailed; the pointer names the winner's version."""
    import threading

    (v1, v2, v3), _ = build(store, tmp_path)
    plans = [rollback.plan(store, "docs", v, tmp_path / f"p{i}") for i, v in enumerate((v1, v2))]
    barrier = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def go(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = rollback.apply(store, plans[i]).version
        except PreconditionFailed as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [v for v in outcomes.values() if isinstance(v, str)]
    lost = [v for v in outcomes.values() if isinstance(v, PreconditionFailed)]
    assert len(won) == 1
    assert len(lost) == 1
    assert read_pointer(store, "docs")[0] == won[0]
    # the loser removed the version it wrote (same sequence as the winner's: it can never be published)
    assert "was removed" in str(lost[0])
    assert [r.version for r in rollback.versions(store, "docs")[1]] == [won[0], v3, v2, v1]
