"""The ceiling case's base snapshots kept across runs, and its command-line sizes.

A cached base must hold exactly the records a fresh build would (the curve's points stay
comparable across runs), a larger base grows from the largest cached one, and a reused one
is not rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from storekeeper import chroma
from storekeeper.cli.bench_cmd import _sizes
from storekeeper.dev.bench import compactbench as cb
from storekeeper.dev.bench.context import QUICK, BenchContext


def _ctx(tmp: Path, cache: Path | None) -> BenchContext:
    sizes = replace(QUICK, chroma_batch=7)  # several add batches per draw
    return BenchContext(
        sizes=sizes, quick=True, workdir=tmp, backends=None, log=lambda _: None, cache_dir=cache
    )


def _records(path: Path, collection: str) -> tuple[list[str], np.ndarray, list[object]]:
    with chroma.persistent_client(path) as client:
        got = chroma.get(client, collection).get(include=["embeddings", "metadatas"])
    order = np.argsort(got["ids"])
    ids = [got["ids"][i] for i in order]
    return ids, np.asarray(got["embeddings"])[order], [got["metadatas"][i] for i in order]


def test_cached_bases_grow_from_smaller_ones_and_equal_a_fresh_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cb, "BASE_STEP", 10)
    cache = tmp_path / "cache"
    small = cb.base_snapshot(_ctx(tmp_path / "w1", cache), 20)
    big = cb.base_snapshot(_ctx(tmp_path / "w2", cache), 50)
    info = json.loads((big.path.parent / "built.json").read_text())
    assert info["from"] == 20
    assert info["n"] == 50
    assert big.build_seconds >= small.build_seconds
    fresh = cb.base_snapshot(_ctx(tmp_path / "w3", None), 50)  # no cache: built from empty
    a, b = _records(big.path, big.collection), _records(fresh.path, fresh.collection)
    assert a[0] == b[0]
    assert len(a[0]) == 50
    assert np.array_equal(a[1], b[1])
    assert a[2] == b[2]
    with chroma.persistent_client(big.path) as client:
        assert [c.name for c in client.list_collections()] == [big.collection]
    # a later run reuses the cached tree as it is
    before = (big.path.parent / "built.json").stat().st_mtime_ns
    again = cb.base_snapshot(_ctx(tmp_path / "w4", cache), 50)
    assert again.path == big.path
    assert (big.path.parent / "built.json").stat().st_mtime_ns == before
    assert not [p for p in cache.iterdir() if p.name.startswith(".building")]


def test_ceiling_sizes_from_the_command_line() -> None:
    sizes = _sizes(False, "400_000,100000,200000", 1_000_000)
    assert sizes.ceiling == (100_000, 200_000, 400_000)
    assert sizes.ceiling_target == 1_000_000
    assert _sizes(True, None, None) == QUICK
    for bad in ("x", "100", "0,5", ""):
        with pytest.raises(ValueError, match="--ceiling"):
            _sizes(False, bad, None)
    with pytest.raises(ValueError, match="--ceiling-target"):
        _sizes(False, None, 0)
