"""Crash at every step of a compaction, then retry: nothing lost, nothing applied twice.

The delta sequence makes both visible: d2 deletes x that d1 upserted, d3 brings x
back with a new vector and deletes y. Re-applying d1 after d3 would resurrect y
and revert x; re-applying d2 after d3 would delete x; a lost delta changes the
final state too.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storekeeper.compaction import STEPS, compact
from storekeeper.deltas import list_pending
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.local import LocalStore
from tests.compaction_support import (
    assert_same_state,
    delta,
    model_state,
    produce,
    snapshot_state,
    vec,
    version_chain,
)

DIM = 8
REPO = Path(__file__).resolve().parents[2]


class Crash(Exception):
    pass


def _scenario(store: LocalStore, cache: SnapshotCache):
    base = delta("docs", {"base": vec(0, DIM)})
    produce(store, base)
    compact(store, "docs", cache=cache)  # so the crashing run has a parent to download
    d1 = delta("docs", {"x": vec(1, DIM), "y": vec(2, DIM)})
    d2 = delta("docs", {"z": vec(3, DIM)}, deletes=["x"])
    d3 = delta("docs", {"x": vec(4, DIM)}, deletes=["y"])
    for d in (d1, d2, d3):
        produce(store, d)
    return [base, d1, d2, d3]


def _check(store: LocalStore, tmp_path: Path, all_deltas) -> None:
    assert list_pending(store, "docs") == []
    assert_same_state(snapshot_state(store, "docs", tmp_path / "reader"), model_state(all_deltas))
    chain = version_chain(store, "docs")
    applied = [d for m in chain for d in m.deltas]
    assert sorted(applied) == sorted(d.delta_id for d in all_deltas)  # each exactly once
    for newer, older in itertools.pairwise(chain):
        assert newer.parent == older.version  # linear, nothing overwritten


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("fresh_cache", [False, True], ids=["warm", "cold"])
def test_raise_at_each_step_then_retry(tmp_path: Path, step: str, fresh_cache: bool) -> None:
    store = LocalStore(tmp_path / "bucket")
    cache = SnapshotCache(tmp_path / "cache")
    deltas = _scenario(store, cache)
    seen: list[str] = []

    def hook(s: str) -> None:
        seen.append(s)
        if s == step:
            raise Crash(s)

    with pytest.raises(Crash):
        compact(store, "docs", cache=cache, hooks=hook)
    assert seen[-1] == step
    retry_cache = SnapshotCache(tmp_path / "cache2") if fresh_cache else cache
    r = compact(store, "docs", cache=retry_cache)
    assert r.races_lost == 0
    _check(store, tmp_path, deltas)
    # a third run finds nothing to do
    assert compact(store, "docs", cache=retry_cache).status == "noop"


class DiesMidRemoval(LocalStore):
    """A store whose bulk delete removes part of the applied deltas, then fails: the crash
    between two of the compactor's deletes, injected in the store instead of the compactor."""

    def purge_many(self, keys, **kw):  # type: ignore[no-untyped-def]
        keys = list(keys)
        super().purge_many(keys[: max(1, len(keys) // 2)], **kw)
        raise Crash("mid_delta_removal")


@pytest.mark.parametrize("fresh_cache", [False, True], ids=["warm", "cold"])
def test_raise_mid_delta_removal_then_retry(tmp_path: Path, fresh_cache: bool) -> None:
    store = LocalStore(tmp_path / "bucket")
    cache = SnapshotCache(tmp_path / "cache")
    deltas = _scenario(store, cache)
    with pytest.raises(Crash):
        compact(DiesMidRemoval(store.path), "docs", cache=cache)
    assert 0 < len(list_pending(store, "docs")) < 3  # part of the applied deltas is gone, part is left
    retry_cache = SnapshotCache(tmp_path / "cache2") if fresh_cache else cache
    r = compact(store, "docs", cache=retry_cache)
    assert r.races_lost == 0
    _check(store, tmp_path, deltas)
    assert compact(store, "docs", cache=retry_cache).status == "noop"


@pytest.mark.parametrize("step", ["mid_apply", "after_manifest", "mid_delta_removal"])
def test_process_killed_at_a_step_then_retry(tmp_path: Path, step: str) -> None:
    store = LocalStore(tmp_path / "bucket")
    deltas = _scenario(store, SnapshotCache(tmp_path / "cache"))
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from storekeeper.compaction import compact
        from storekeeper.snapshots import SnapshotCache
        from storekeeper.stores.local import LocalStore

        def hook(step):
            if step == {step!r}:
                sys.stdout.flush()
                os._exit(17)

        class DiesMidRemoval(LocalStore):  # killed between two deletes of applied deltas
            def purge_many(self, keys, **kw):
                keys = list(keys)
                super().purge_many(keys[: max(1, len(keys) // 2)], **kw)
                hook("mid_delta_removal")
                return super().purge_many(keys, **kw)

        cache = SnapshotCache({str(tmp_path / "cache")!r})
        compact(DiesMidRemoval(Path({str(store.path)!r})), "docs", cache=cache, hooks=hook)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 17, proc.stderr
    r = compact(store, "docs", cache=SnapshotCache(tmp_path / "cache"))
    assert r.status in ("published", "noop")
    _check(store, tmp_path, deltas)
