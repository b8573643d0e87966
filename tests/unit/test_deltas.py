"""The delta blob: roundtrip, corruption detection, size bound, store helpers."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.deltas import (
    DeltaContent,
    DeltaFormatError,
    PackedVectors,
    as_array,
    decode_delta,
    delta_key,
    encode_delta,
    list_pending,
    new_delta_id,
    parse_delta_key,
    read_delta,
    write_delta,
)
from storekeeper.errors import CorruptObject, PreconditionFailed, ValidationError
from storekeeper.layout import DELTA_KEY_RE
from storekeeper.stores.local import LocalStore

record_ids = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\x7f"),
    min_size=1,
    max_size=12,
)
meta_values = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
meta_keys = st.text(min_size=1, max_size=6).filter(lambda k: not k.startswith(("chroma:", "$", "#")))
metadatas = st.one_of(st.none(), st.dictionaries(meta_keys, meta_values, max_size=3))
documents = st.one_of(st.none(), st.text(max_size=20))


@st.composite
def contents(draw: st.DrawFn) -> DeltaContent:
    n = draw(st.integers(0, 6))
    dim = draw(st.integers(1, 8))
    ids = draw(st.lists(record_ids, min_size=n, max_size=n, unique=True))
    deletes = draw(st.lists(record_ids, min_size=0 if n else 1, max_size=4, unique=True))
    values = draw(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=n * dim, max_size=n * dim
        )
    )
    emb = np.array(values, dtype=np.float32).reshape(n, dim) if n else np.zeros((0, 0), dtype=np.float32)
    return DeltaContent(
        collection=draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True)),
        delta_id=new_delta_id(),
        created_at=datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        ids=ids,
        embeddings=emb,
        metadatas=draw(st.lists(metadatas, min_size=n, max_size=n)),
        documents=draw(st.lists(documents, min_size=n, max_size=n)),
        deletes=deletes,
    )


def _assert_same(a: DeltaContent, b: DeltaContent) -> None:
    assert (a.collection, a.delta_id, a.created_at) == (b.collection, b.delta_id, b.created_at)
    assert a.ids == b.ids
    assert a.deletes == b.deletes
    assert a.metadatas == b.metadatas
    assert a.documents == b.documents
    assert a.dimension == b.dimension
    if a.ids:
        assert b.embeddings.dtype == np.float32
        np.testing.assert_array_equal(a.embeddings, b.embeddings)


def _sample(n: int = 3, dim: int = 4, collection: str = "docs") -> DeltaContent:
    rng = np.random.default_rng(7)
    return DeltaContent(
        collection=collection,
        delta_id=new_delta_id(),
        created_at=datetime.now(UTC),
        ids=[f"id-{i}" for i in range(n)],
        embeddings=rng.standard_normal((n, dim)).astype(np.float32),
        metadatas=[{"i": i, "tag": "x"} if i % 2 else None for i in range(n)],
        documents=[f"doc {i}" if i % 2 == 0 else None for i in range(n)],
        deletes=["gone-1"],
    )


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(contents())
def test_roundtrip(content: DeltaContent) -> None:
    blob = encode_delta(content)
    _assert_same(content, decode_delta(blob, expect_key=content.key))


@FAST
@given(contents(), st.data())
def test_any_single_byte_corruption_is_detected(content: DeltaContent, data: st.DataObject) -> None:
    blob = bytearray(encode_delta(content))
    pos = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    blob[pos] ^= flip
    with pytest.raises(DeltaFormatError):
        decode_delta(bytes(blob))


@FAST
@given(contents(), st.data())
def test_any_truncation_or_extension_is_detected(content: DeltaContent, data: st.DataObject) -> None:
    blob = encode_delta(content)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(DeltaFormatError):
        decode_delta(blob[:cut])
    with pytest.raises(DeltaFormatError):
        decode_delta(blob + b"\x00")


@FAST
@given(contents())
def test_packed_vectors_encode_to_the_same_bytes_as_numpy(content: DeltaContent) -> None:
    """The producer packs vectors without numpy: the blob must be the very one numpy's path writes."""
    assert not isinstance(content.embeddings, PackedVectors)
    rows = [[float(x) for x in row] for row in content.embeddings] if content.ids else []
    packed = PackedVectors(rows)
    assert packed.shape == (content.embeddings.shape if content.ids else (0, 0))
    with_numpy = encode_delta(content)
    content.embeddings = packed
    assert encode_delta(content) == with_numpy
    if content.ids:
        np.testing.assert_array_equal(as_array(packed), decode_delta(with_numpy).embeddings)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 3.5e38])
def test_packed_vectors_refuse_non_finite_values_by_index(bad: float) -> None:
    c = _sample(n=3, dim=4)
    rows = [[0.5] * 4 for _ in range(3)]
    rows[2][1] = bad  # 3.5e38 does not fit in float32: it becomes inf when packed
    c.embeddings = PackedVectors(rows)
    with pytest.raises(DeltaFormatError) as info:
        encode_delta(c)
    assert info.value.field == "embeddings[2][1]"


def test_packed_vectors_refuse_ragged_rows() -> None:
    with pytest.raises(ValueError, match="row 1 has 2 values, row 0 has 3"):
        PackedVectors([[1.0, 2.0, 3.0], [1.0, 2.0]])


def test_error_is_a_corrupt_object_naming_key_and_field() -> None:
    c = _sample()
    blob = bytearray(encode_delta(c))
    blob[-1] ^= 1
    with pytest.raises(CorruptObject) as info:
        decode_delta(bytes(blob), expect_key=c.key, store="file:///s")
    assert info.value.key == c.key
    assert isinstance(info.value, DeltaFormatError)
    assert info.value.field == "sha256"
    assert c.key in str(info.value)
    assert "checksum" in str(info.value)


def _reseal(body: bytes) -> bytes:
    """A crafted blob with a valid checksum: proves the checks after the checksum."""
    return body + hashlib.sha256(body).digest()


def test_bad_magic_and_version_are_named() -> None:
    blob = encode_delta(_sample())
    with pytest.raises(DeltaFormatError) as info:
        decode_delta(_reseal(b"XXXX" + blob[4:-32]))
    assert info.value.field == "magic"
    with pytest.raises(DeltaFormatError) as info:
        decode_delta(_reseal(blob[:4] + struct.pack("<H", 99) + blob[6:-32]))
    assert info.value.field == "version"


def _rebuild(header: dict[str, object], rest: bytes) -> bytes:
    import json

    h = json.dumps(header, separators=(",", ":")).encode()
    return _reseal(struct.pack("<4sHHI", b"SKDL", 1, 0, len(h)) + h + rest)


def _split(blob: bytes) -> tuple[dict[str, object], bytes]:
    import json

    (hl,) = struct.unpack_from("<I", blob, 8)
    return json.loads(blob[12 : 12 + hl]), blob[12 + hl : -32]


def test_nan_in_a_well_sealed_blob_is_rejected() -> None:
    c = _sample(n=2, dim=2)
    c.deletes = []
    header, rest = _split(encode_delta(c))
    ids_len = header["sizes"][0]  # type: ignore[index]
    vec = np.array([[1, 2], [np.nan, 4]], dtype="<f4").tobytes()
    tampered = rest[:ids_len] + vec + rest[ids_len + len(vec) :]
    with pytest.raises(DeltaFormatError) as info:
        decode_delta(_rebuild(header, tampered))
    assert info.value.field == "embeddings[1][0]"


@pytest.mark.parametrize(
    ("change", "fld"),
    [
        ({"upserts": 3}, "header.sizes"),
        ({"deletes": 2}, "deletes"),
        ({"sizes": [10**9, 24, 0, 0]}, "header.sizes"),
        ({"upserts": -1}, "header.upserts"),
        ({"dimension": 10**6}, "header.dimension"),
    ],
)
def test_wrong_counts_and_oversized_sections_are_rejected(change: dict[str, object], fld: str) -> None:
    header, rest = _split(encode_delta(_sample(n=2, dim=3)))
    with pytest.raises(DeltaFormatError) as info:
        decode_delta(_rebuild({**header, **change}, rest))
    assert info.value.field.startswith(fld), (change, info.value)


def test_collection_or_id_mismatch_with_the_key_is_rejected() -> None:
    c = _sample()
    blob = encode_delta(c)
    other = delta_key("other", c.delta_id)
    with pytest.raises(DeltaFormatError, match="stored at delta/other/"):
        decode_delta(blob, expect_key=other)
    with pytest.raises(DeltaFormatError, match="stored at"):
        decode_delta(blob, expect_key=delta_key(c.collection, new_delta_id()))
    header, rest = _split(blob)
    with pytest.raises(DeltaFormatError) as info:
        decode_delta(_rebuild({**header, "collection": "../etc"}, rest))
    assert info.value.field == "header.collection"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: setattr(c, "ids", ["a", "a", "b"]), "ids[1]"),
        (lambda c: c.embeddings.__setitem__((0, 1), np.inf), "embeddings[0][1]"),
        (lambda c: setattr(c, "metadatas", [{"k": "x" * 20000}, None, None]), "metadatas[0]"),
        (lambda c: setattr(c, "metadatas", [None, None]), "metadatas"),
        (lambda c: setattr(c, "collection", "../x"), "collection"),
        (lambda c: setattr(c, "deletes", ["d", "d"]), "deletes[1]"),
        (lambda c: setattr(c, "ids", ["ok", "bad\n", "z"]), "ids[1]"),
    ],
)
def test_encode_refuses_bad_content(mutate: object, field: str) -> None:
    c = _sample()
    mutate(c)  # type: ignore[operator]
    with pytest.raises(DeltaFormatError) as info:
        encode_delta(c)
    assert info.value.field == field


def test_size_is_within_1_1x_of_raw_payload() -> None:
    rng = np.random.default_rng(1)
    n, d = 200, 128
    c = DeltaContent(
        collection="docs",
        delta_id=new_delta_id(),
        created_at=datetime.now(UTC),
        ids=[f"doc-{i:06d}" for i in range(n)],
        embeddings=rng.standard_normal((n, d)).astype(np.float32),
        metadatas=[{"source": "web", "n": i} for i in range(n)],
        documents=[None] * n,
    )
    import json

    raw = n * d * 4 + sum(len(i.encode()) for i in c.ids) + len(json.dumps(c.metadatas).encode())
    assert len(encode_delta(c)) <= 1.1 * raw


def test_delta_ids_sort_by_creation_and_match_the_key_pattern() -> None:
    ids = [new_delta_id() for _ in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    fixed = new_delta_id(datetime(2024, 1, 2, tzinfo=UTC))
    assert fixed.startswith("1704153600000-")
    key = delta_key("docs", ids[0])
    assert DELTA_KEY_RE.fullmatch(key)
    assert parse_delta_key(key) == ("docs", ids[0])
    with pytest.raises(ValidationError):
        delta_key("Docs", ids[0])


@pytest.mark.parametrize(
    "bad", ["delta/docs/x.delta", "delta/../x/1704153600000-abcdef.delta", "snapshot/docs/a"]
)
def test_parse_delta_key_refuses_what_is_not_a_delta_key(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_delta_key(bad)


def test_write_list_read_on_a_store(tmp_path: object) -> None:
    from pathlib import Path

    store = LocalStore(Path(str(tmp_path)) / "bucket")
    written = [_sample(collection="docs") for _ in range(3)]
    notes = [write_delta(store, c) for c in reversed(written)]  # written newest first
    store.put("delta/docs/stray.txt", b"x")
    write_delta(store, _sample(collection="docs2"))
    pending = list_pending(store, "docs")
    assert [o.key for o in pending] == [c.key for c in written]
    n = notes[0]
    assert n.delta_key == written[-1].key
    assert n.upserts == 3
    assert n.deletes == 1
    assert n.sha256 == hashlib.sha256(store.get(n.delta_key).body).hexdigest()
    _assert_same(written[-1], read_delta(store, n.delta_key, expected_sha256=n.sha256))
    with pytest.raises(DeltaFormatError) as info:
        read_delta(store, n.delta_key, expected_sha256="0" * 64)
    assert info.value.field == "sha256"
    with pytest.raises(PreconditionFailed):  # immutable: create-only
        write_delta(store, written[-1])
    # a blob copied to another key is refused
    other = delta_key("docs", new_delta_id())
    store.put(other, store.get(n.delta_key).body)
    with pytest.raises(DeltaFormatError, match="stored at"):
        read_delta(store, other)
