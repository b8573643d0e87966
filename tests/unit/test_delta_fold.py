"""Folding consecutive deltas into one set of chromadb writes leaves exactly what applying them one
by one leaves (real chromadb), in fewer calls."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper import chroma
from storekeeper.delta_fold import Fold
from storekeeper.deltas import DeltaContent, RecordUpdate, new_delta_id

POOL = ["a", "b", "c", "d"]


def _delta(ops: list[tuple[str, str, int]]) -> DeltaContent:
    """ops: (kind, id, value) with kind put / delete / update; one op per id, as a delta allows."""
    puts = [(rid, v) for kind, rid, v in ops if kind == "put"]
    return DeltaContent(
        "c",
        new_delta_id(),
        datetime.now(UTC),
        ids=[rid for rid, _ in puts],
        embeddings=np.array([[float(v), 1.0] for _, v in puts], dtype=np.float32).reshape(len(puts), 2),
        metadatas=[{"v": v} if v % 2 else None for _, v in puts],
        documents=[f"doc{v}" if v % 3 else None for _, v in puts],
        deletes=[rid for kind, rid, _ in ops if kind == "delete"],
        updates=[RecordUpdate(id=rid, metadata={"u": v}) for kind, rid, v in ops if kind == "update"],
    )


_ops = st.lists(
    st.tuples(st.sampled_from(["put", "put", "delete", "update"]), st.sampled_from(POOL), st.integers(0, 9)),
    max_size=4,
    unique_by=lambda op: op[1],
).filter(bool)


def _state(col: Any) -> dict[str, tuple[list[float], Any, Any]]:
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {
        rid: ([float(x) for x in emb], meta, doc)
        for rid, emb, meta, doc in zip(
            got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
        )
    }


def _folded(col: Any, contents: list[DeltaContent], batch: int) -> None:
    """The compactor's rule: a delta with updates is folded alone; a fold is written at `batch` records."""
    fold = Fold()
    for content in contents:
        if content.updates or fold.has_updates:
            if fold.deltas:
                fold.write(col, batch)
            fold = Fold()
        fold.add(content, content.embeddings, "sha")
        if fold.records >= batch:
            fold.write(col, batch)
            fold = Fold()
    if fold.deltas:
        fold.write(col, batch)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with chroma.persistent_client(Path(tmp_path_factory.mktemp("fold"))) as c:
        yield c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=_ops, deltas=st.lists(_ops, min_size=1, max_size=6), batch=st.sampled_from([1, 3, 100]))
def test_a_fold_leaves_what_one_by_one_leaves(client: Any, start: Any, deltas: Any, batch: int) -> None:
    base = _delta([op for op in start if op[0] == "put"] or [("put", "a", 0)])
    cols = []
    for name in ("one-by-one", "folded"):
        if name in [c.name for c in client.list_collections()]:
            client.delete_collection(name)
        col = chroma.get_or_create(client, name, "l2")
        chroma.apply(col, deletes=[], ids=base.ids, embeddings=base.embeddings, metadatas=base.metadatas,
                     documents=base.documents, batch=100)  # fmt: skip
        cols.append(col)
    contents = [_delta(ops) for ops in deltas]
    for content in contents:
        chroma.apply(cols[0], deletes=content.deletes, ids=content.ids, embeddings=content.embeddings,
                     metadatas=content.metadatas, documents=content.documents, updates=content.updates,
                     batch=batch)  # fmt: skip
    _folded(cols[1], contents, batch)
    assert _state(cols[1]) == _state(cols[0])


class _Counting:
    """A real collection whose write calls are counted."""

    def __init__(self, col: Any) -> None:
        self.col, self.calls = col, {"add": 0, "delete": 0, "get": 0}

    def __getattr__(self, name: str) -> Any:
        if name in self.calls:
            self.calls[name] += 1
        return getattr(self.col, name)


def test_ten_deltas_of_new_ids_become_one_add_and_no_delete(client: Any) -> None:
    col = _Counting(chroma.get_or_create(client, "counted", "l2"))
    fold = Fold()
    for d in range(10):
        ids = [f"r{d}-{i}" for i in range(100)]
        vecs = np.random.default_rng(d).random((100, 2), dtype=np.float32)
        content = DeltaContent("c", new_delta_id(), datetime.now(UTC), ids, vecs, [None] * 100, [None] * 100)
        fold.add(content, vecs, f"sha{d}")
    assert fold.records == 1000
    assert len(fold.deltas) == len(fold.digests) == 10
    fold.write(col, batch=1000)
    assert col.calls == {"add": 1, "delete": 0, "get": 1}  # one existence check finds nothing to delete
    assert int(col.col.count()) == 1000


def test_a_delta_with_updates_is_folded_alone() -> None:
    fold = Fold()
    fold.add(_delta([("put", "a", 1)]), np.ones((1, 2), np.float32), "s1")
    with pytest.raises(ValueError, match="alone"):
        fold.add(_delta([("update", "a", 2)]), np.zeros((0, 2), np.float32), "s2")
