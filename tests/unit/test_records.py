"""Record semantics against the real chromadb: a put replaces the whole record, an update merges,
and whatever the producer accepts a real compaction stores exactly (docs/design-notes.md,
"Object layout", Records).

Every generated input ends as a typed ValidationError at the producer or as exactly the value
read back from the published snapshot, whatever the batching of records into requests and of
deltas into compactions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper import deltas as deltas_mod
from storekeeper.chroma_floats import stored_metadata_float
from storekeeper.compaction import compact, rejection_reason
from storekeeper.deltas import DeltaContent, new_delta_id, write_delta
from storekeeper.errors import ValidationError
from storekeeper.producer import parse_jsonl, parse_put_request, put
from storekeeper.queues import LocalQueue
from storekeeper.snapshots import SnapshotCache, open_snapshot
from storekeeper.stores.local import LocalStore

pytestmark = pytest.mark.slow  # real compactions with chromadb: not in `make test-fast`

Record = tuple[list[float], dict[str, Any] | None, str | None]


def stored(store: LocalStore, collection: str, cache_dir: Path) -> dict[str, Record]:
    col = open_snapshot(store, collection, cache=SnapshotCache(cache_dir))
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {
        rid: ([float(x) for x in e], dict(m) if m else None, d)
        for rid, e, m, d in zip(
            got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
        )
    }


def f32(v: list[float]) -> list[float]:
    return [float(x) for x in np.asarray(v, dtype=np.float32)]


@pytest.fixture
def env(tmp_path: Path) -> tuple[LocalStore, LocalQueue, Path]:
    return LocalStore(tmp_path / "bucket"), LocalQueue(tmp_path / "queue"), tmp_path


def _put(store: LocalStore, queue: LocalQueue, event: dict[str, Any]) -> None:
    put(parse_put_request(event), store=store, queue=queue)


def _one(rid: str, emb: list[float], **fields: Any) -> dict[str, Any]:
    return {"collection": "c", "upserts": [{"id": rid, "embedding": emb, **fields}]}


OLD = _one("a", [1.0, 0.0], metadata={"x": 1, "n": 5}, document="old")


def test_a_put_replaces_metadata_and_document_in_one_compaction(env) -> None:
    store, queue, tmp = env
    _put(store, queue, OLD)
    _put(store, queue, _one("a", [0.0, 1.0], metadata={"x": 2}))
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert stored(store, "c", tmp / "read") == {"a": ([0.0, 1.0], {"x": 2}, None)}


def test_a_put_replaces_the_record_across_compactions(env) -> None:
    store, queue, tmp = env
    _put(store, queue, OLD)
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    _put(store, queue, _one("a", [0.0, 1.0], metadata={"x": 2}))
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert stored(store, "c", tmp / "read") == {"a": ([0.0, 1.0], {"x": 2}, None)}


def test_an_update_merges_metadata_removes_null_keys_and_sets_the_document(env) -> None:
    store, queue, tmp = env
    _put(store, queue, OLD)
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    lines = [
        b'{"update": "a", "metadata": {"x": 2, "n": null, "new": "y"}}',
        b'{"update": "missing", "document": "z"}',
    ]
    put(parse_jsonl("c", lines), store=store, queue=queue)
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert stored(store, "c", tmp / "read") == {"a": ([1.0, 0.0], {"x": 2, "new": "y"}, "old")}
    put(parse_jsonl("c", [b'{"update": "a", "document": null}']), store=store, queue=queue)
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert stored(store, "c", tmp / "read") == {"a": ([1.0, 0.0], {"x": 2, "new": "y"}, None)}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (b'{"update": "a"}', "line 1"),
        (b'{"update": "a", "metadata": {}}', "line 1"),
        (b'{"update": "a", "metadata": {"$x": 1}}', "line 1: metadata"),
        (b'{"update": "a", "metadata": null}', "line 1"),
        (b'{"update": "a", "embedding": [1.0]}', "line 1: embedding"),
        (b'{"update": "", "document": "x"}', "line 1: id"),
    ],
)
def test_bad_updates_are_refused_naming_the_field(line: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_jsonl("c", [line])
    assert info.value.field.startswith(field), str(info.value)


# -- what the producer accepts vs what chromadb stores ------------------------------------------------
BAD_RECORDS = [
    ({"metadata": {"chroma:document": "x"}}, "metadata", "key 'chroma:document': keys starting with"),
    ({"metadata": {"chroma:anything": 1}}, "metadata", "key 'chroma:anything': keys starting with"),
    ({"metadata": {"$where": 1}}, "metadata", "key '$where': keys starting with"),
    ({"metadata": {"#tag": 1}}, "metadata", "key '#tag': keys starting with"),
    ({"metadata": {"big": 2**63}}, "metadata", "key 'big': integers must fit in 64 bits"),
    ({"metadata": {"small": -(2**63) - 1}}, "metadata", "key 'small': integers must fit in 64 bits"),
    ({"metadata": {"s": "\ud800"}}, "metadata", "key 's': is not valid Unicode"),
    ({"metadata": {"\udfff": 1}}, "metadata[", "unicode"),
    ({"document": "x\ud800"}, "document", "unicode"),
    ({"id": "\ud800"}, "id", "unicode"),
    ({"embedding": [1.0, "2"]}, "embedding[1]", "number"),
    ({"embedding": [True, 1.0]}, "embedding[0]", "number"),
    ({"metadata": {"l": [1, 2]}}, "metadata", ""),
]


@pytest.mark.parametrize(("change", "field", "reason"), BAD_RECORDS)
def test_the_producer_refuses_what_chromadb_would_refuse_drop_or_change(
    change: dict[str, Any], field: str, reason: str
) -> None:
    rec = {"id": "a", "embedding": [1.0, 2.0], **change}
    with pytest.raises(ValidationError) as info:
        parse_put_request({"collection": "c", "upserts": [rec]})
    assert info.value.field.startswith(f"upserts[0].{field}"), str(info.value)
    assert reason.lower() in str(info.value).lower()
    str(info.value).encode()  # printable: no lone surrogate copied into the message


def test_edge_values_inside_the_rules_are_stored_exactly(env) -> None:
    store, queue, tmp = env
    meta = {
        "max": 2**63 - 1,
        "min": -(2**63),
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "empty": "",
        "nul": "a\x00b",
        "t": True,
        "f": False,
        "chromax": 1,
        "k\x00": "v",
    }
    _put(store, queue, _one("a b", [1e-45, -3.4e38], metadata=meta, document=""))
    compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert stored(store, "c", tmp / "read") == {"a b": (f32([1e-45, -3.4e38]), meta, "")}


# -- property: arbitrary records, arbitrary batching -------------------------------------------------
ids = st.sampled_from(["a", "b", "c", "d"])
keys = st.one_of(
    st.sampled_from(["x", "n", "chroma:document", "chroma:k", "$k", "#k", "é"]), st.text(max_size=4)
)
values = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(width=64),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
embedding_values = st.one_of(
    st.floats(width=32), st.floats(width=64), st.integers(-(2**70), 2**70), st.booleans(), st.text(max_size=2)
)
metadata = st.one_of(st.none(), st.dictionaries(keys, values, max_size=3))
documents = st.one_of(st.none(), st.text(max_size=6))


@st.composite
def operations(draw: st.DrawFn) -> dict[str, Any]:
    rid = draw(ids)
    kind = draw(st.sampled_from(["put", "put", "delete", "update"]))
    if kind == "delete":
        return {"delete": rid}
    if kind == "update":
        op: dict[str, Any] = {"update": rid}
        if draw(st.booleans()):
            op["metadata"] = draw(st.dictionaries(keys, values, max_size=3))
        if draw(st.booleans()):
            op["document"] = draw(documents)
        return op
    rec: dict[str, Any] = {"id": rid, "embedding": draw(st.lists(embedding_values, min_size=2, max_size=2))}
    if draw(st.booleans()):
        rec["metadata"] = draw(metadata)
    if draw(st.booleans()):
        rec["document"] = draw(documents)
    return rec


def _op_id(op: dict[str, Any]) -> str:
    return str(op.get("id", op.get("delete", op.get("update"))))


def apply_model(state: dict[str, Record], op: dict[str, Any]) -> None:
    if "delete" in op:
        state.pop(op["delete"], None)
    elif "update" in op:
        cur = state.get(op["update"])
        if cur is None:
            return
        meta = dict(cur[1] or {})
        for k, v in (op.get("metadata") or {}).items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        doc = op["document"] if "document" in op else cur[2]
        state[op["update"]] = (cur[0], meta or None, doc)
    else:
        state[op["id"]] = (f32(op["embedding"]), op.get("metadata") or None, op.get("document"))


def _as_chromadb_stores(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metadata chromadb 1.5.9 gives back: a float may be one ULP off (storekeeper.chroma_floats)."""
    if meta is None:
        return None
    return {k: stored_metadata_float(v) if type(v) is float else v for k, v in meta.items()}


def same(got: dict[str, Record], want: dict[str, Record]) -> bool:
    if set(got) != set(want):
        return False
    for rid, (emb, meta, doc) in want.items():
        g = got[rid]
        if g[0] != emb or g[2] != doc or (g[1] or None) != _as_chromadb_stores(meta):
            return False
        for k, v in (meta or {}).items():  # 1 == 1.0 == True in Python: compare types too
            if type(g[1][k]) is not type(v):  # type: ignore[index]
                return False
    return True


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(
    batches=st.lists(
        st.tuples(
            st.lists(
                st.lists(operations(), min_size=1, max_size=4, unique_by=_op_id), min_size=1, max_size=3
            ),
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_accepted_record_is_stored_exactly_whatever_the_batching(
    tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[list[list[dict[str, Any]]], bool]]
) -> None:
    """Requests of random operations, compacted after random requests: a typed error or the model's value."""
    tmp = tmp_path_factory.mktemp("records")
    store, queue = LocalStore(tmp / "bucket"), LocalQueue(tmp / "queue")
    state: dict[str, Record] = {}
    for requests, compact_now in batches:
        for ops in requests:
            lines = [json.dumps(op).encode() for op in ops]  # lone surrogates travel as \\ud800 escapes
            try:
                request = parse_jsonl("c", lines)
            except ValidationError as exc:
                refused = exc
            else:
                refused = None
            if refused is not None:
                assert refused.field.startswith(("line ", "file")), str(refused)
                str(refused).encode()  # printable
                continue
            put(request, store=store, queue=queue)
            for op in ops:
                apply_model(state, op)
        if compact_now:
            r = compact(store, "c", cache=SnapshotCache(tmp / "cache"))
            assert not r.rejected, r.rejected
    r = compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert not r.rejected, r.rejected
    if r.version is None:
        assert not state
        return
    got = stored(store, "c", tmp / f"read-{r.version}")
    assert same(got, state), (got, state)


def test_a_delta_chromadb_refuses_is_quarantined_and_the_rest_applies(env, monkeypatch) -> None:
    """Defence in depth: if chromadb refuses a record mid-apply, that delta is quarantined with its
    reason, the half-applied work tree is discarded, and the deltas around it are published."""
    store, queue, tmp = env
    _put(store, queue, {"collection": "c", "upserts": [{"id": "a", "embedding": [1.0, 0.0]}]})
    # let a record through that chromadb refuses (a rule chromadb might add one day)
    monkeypatch.setattr(deltas_mod, "metadata_problem", lambda value, patch=False: None)
    bad = DeltaContent(
        "c", new_delta_id(), datetime.now(UTC), ["b", "z"], np.ones((2, 2), dtype=np.float32),
        [None, {"$bad": 1}], [None, None], ["a"],
    )  # fmt: skip
    write_delta(store, bad)
    _put(store, queue, {"collection": "c", "upserts": [{"id": "c", "embedding": [0.0, 1.0]}]})
    r = compact(store, "c", cache=SnapshotCache(tmp / "cache"))
    assert list(r.rejected) == [bad.delta_id]
    assert "chromadb refused a record" in (rejection_reason(store, "c", bad.delta_id) or "")
    assert r.status == "published"
    assert stored(store, "c", tmp / "read") == {"a": ([1.0, 0.0], None, None), "c": ([0.0, 1.0], None, None)}
