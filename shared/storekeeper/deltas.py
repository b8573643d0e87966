"""The delta blob: one immutable, versioned, checksummed object per producer write.

Layout (all integers little-endian)::

    "SKDL" | u16 format version | u16 flags (0) | u32 header length
    header   compact JSON: collection, delta_id, created_at, dimension, counts, section sizes
    ids      per upsert: u16 byte length + UTF-8
    vectors  upserts x dimension float32
    extras   compact JSON {"metadatas": [...], "documents": [...]} (empty when all are null),
             plus "updates": [{"id", "metadata"?, "document"?}] when the delta carries partial updates
    deletes  per delete: u16 byte length + UTF-8
    sha256   32 bytes over everything before it

Why this shape: float32 does not compress, so the vectors are stored raw (the
blob stays within ~1.1x of the raw bytes); no pickle, nothing is allocated
before its size has been checked against the bytes actually present, and the
checksum is verified before anything is parsed, so a torn or bit-flipped
object is rejected as a whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
import threading
import time
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from storekeeper.errors import CorruptObject, NotFound, PreconditionFailed, ValidationError
from storekeeper.layout import (
    DELTA_ID_RE,
    delta_key,
    delta_prefix,
    match_delta_key,
    parse_delta_key,
    random_suffix,
)
from storekeeper.models.deltas import (
    MAX_DIMENSION,
    DeltaNotification,
    document_problem,
    metadata_problem,
    text_problem,
)
from storekeeper.names import check_collection
from storekeeper.stores.base import ObjectInfo, ObjectStore

if TYPE_CHECKING:  # numpy is imported where vectors are (de)coded: ~150-200 ms off a cold start
    import numpy as np
    import numpy.typing as npt

MAGIC = b"SKDL"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHHI")
_LEN = struct.Struct("<H")
_DIGEST_BYTES = 32
MAX_HEADER_BYTES = 64 * 1024
MAX_DELTA_BYTES = 256 * 1024 * 1024
MAX_ID_BYTES = 1024  # RecordId is <= 256 characters: at most 1024 UTF-8 bytes
MAX_RECORDS = 1_000_000
_SUFFIX_LEN = 10

Metadata = dict[str, str | int | float | bool]
MetadataPatch = dict[str, str | int | float | bool | None]


class DeltaFormatError(CorruptObject):
    """A delta blob (or the content about to be encoded) is malformed; names the field."""

    def __init__(self, store: str, key: str | None, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(store, key, f"{field}: {reason}")


class PackedVectors:
    """Rows of float32 values packed with the standard library, for encoding only.

    The producer encodes vectors it has just validated; importing numpy to do so would
    add ~150-200 ms to its cold start. Carries the `shape`, `ndim` and `size` the checks
    read; `as_array` turns it (or an array) into numpy for code that computes.
    """

    ndim = 2

    def __init__(self, rows: Sequence[Sequence[float]]) -> None:
        dim = len(rows[0]) if rows else 0
        values = array("f")
        for i, row in enumerate(rows):
            if len(row) != dim:
                raise ValueError(f"row {i} has {len(row)} values, row 0 has {dim}")
            values.extend(row)  # a value beyond float32 becomes inf: first_non_finite reports it
        self.values = values
        self.shape = (len(rows), dim)

    @property
    def size(self) -> int:
        return len(self.values)

    def first_non_finite(self) -> tuple[int, int, float] | None:
        """(row, column, value) of the first NaN or infinity, if any."""
        if math.isfinite(sum(self.values)):  # one C loop: a NaN or an inf anywhere makes the sum one
            return None
        i = next(i for i, v in enumerate(self.values) if not math.isfinite(v))
        return i // self.shape[1], i % self.shape[1], self.values[i]

    def tobytes(self) -> bytes:
        """Little-endian float32, the delta's vector section."""
        if sys.byteorder == "little":
            return self.values.tobytes()
        swapped = array("f", self.values)
        swapped.byteswap()
        return swapped.tobytes()


def as_array(vectors: npt.NDArray[np.float32] | PackedVectors) -> npt.NDArray[np.float32]:
    """A numpy float32 array of `vectors` (imports numpy: for code that computes with vectors)."""
    import numpy as np

    if isinstance(vectors, PackedVectors):
        return np.frombuffer(vectors.tobytes(), dtype="<f4").astype(np.float32).reshape(vectors.shape)
    return vectors


def _first_non_finite(vectors: npt.NDArray[np.float32] | PackedVectors) -> tuple[int, int, float] | None:
    if isinstance(vectors, PackedVectors):
        return vectors.first_non_finite()
    import numpy as np

    bad = ~np.isfinite(vectors)
    if not bad.any():
        return None
    row, col = (int(x) for x in np.argwhere(bad)[0])
    return row, col, float(vectors[row, col])


class RecordUpdate(NamedTuple):
    """A partial update: metadata keys merged (None removes a key); the document set when `sets_document`."""

    id: str
    metadata: MetadataPatch | None = None
    document: str | None = None
    sets_document: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.sets_document:
            out["document"] = self.document
        return out

    def merged(self, metadata: Metadata | None, document: str | None) -> tuple[Metadata | None, str | None]:
        """The record's metadata and document after this update."""
        meta: dict[str, Any] = dict(metadata or {})
        for k, v in (self.metadata or {}).items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        return (meta or None), (self.document if self.sets_document else document)


class DeltaContent:
    """What one delta carries: upserts (ids, vectors, metadata, documents), deletes and partial updates.

    Written out, not a dataclass (~3.5 M instructions of the producer's cold start to create: Python
    3.11 compiles each generated method on its own), with a dataclass's constructor, equality and repr.
    """

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "collection",
        "delta_id",
        "created_at",
        "ids",
        "embeddings",
        "metadatas",
        "documents",
        "deletes",
        "updates",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __init__(
        self,
        collection: str,
        delta_id: str,
        created_at: datetime,
        ids: list[str] | None = None,
        embeddings: npt.NDArray[np.float32] | PackedVectors | None = None,
        metadatas: list[Metadata | None] | None = None,
        documents: list[str | None] | None = None,
        deletes: list[str] | None = None,
        updates: list[RecordUpdate] | None = None,
    ) -> None:
        self.collection = collection
        self.delta_id = delta_id
        self.created_at = created_at
        self.ids: list[str] = [] if ids is None else ids
        self.embeddings: npt.NDArray[np.float32] | PackedVectors = (
            PackedVectors([]) if embeddings is None else embeddings
        )
        self.metadatas: list[Metadata | None] = [] if metadatas is None else metadatas
        self.documents: list[str | None] = [] if documents is None else documents
        self.deletes: list[str] = [] if deletes is None else deletes
        self.updates: list[RecordUpdate] = [] if updates is None else updates

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"DeltaContent({shown})"

    @property
    def dimension(self) -> int | None:
        return int(self.embeddings.shape[1]) if self.ids else None

    @property
    def key(self) -> str:
        return delta_key(self.collection, self.delta_id)


# -- ids and keys ----------------------------------------------------------------
_id_lock = threading.Lock()
_last_ms = 0


def new_delta_id(now: datetime | None = None) -> str:
    """13-digit epoch ms + random suffix; strictly increasing within this process when `now` is None."""
    global _last_ms
    if now is not None:
        ms = int(now.timestamp() * 1000)
    else:
        with _id_lock:
            ms = max(time.time_ns() // 1_000_000, _last_ms + 1)
            _last_ms = ms
    return f"{ms:013d}-{random_suffix(_SUFFIX_LEN)}"


# -- checks shared by encode and decode -----------------------------------------------
def _check_record_id(value: object, fld: str, err: _Err) -> str:
    if not isinstance(value, str) or not value:
        raise err(fld, "must be a non-empty string")
    if len(value) > 256:
        raise err(fld, "longer than 256 characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise err(fld, "must not contain control characters")
    reason = text_problem(value)
    if reason is not None:
        raise err(fld, reason)
    return value


def _check_metadata(value: object, fld: str, err: _Err, *, patch: bool = False) -> None:
    if value is None:
        return
    found = metadata_problem(value, patch=patch)
    if found is not None:
        raise err(f"{fld}{found[0]}", found[1])


def _check_document(value: object, fld: str, err: _Err) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise err(fld, f"must be a string or null, got {type(value).__name__}")
    reason = document_problem(value)
    if reason is not None:
        raise err(fld, reason)


class _Err:
    """Builds DeltaFormatErrors for one source/key."""

    def __init__(self, store: str, key: str | None) -> None:
        self.store = store
        self.key = key

    def __call__(self, fld: str, reason: str) -> DeltaFormatError:
        return DeltaFormatError(self.store, self.key, fld, reason)


def _check_content(c: DeltaContent, err: _Err) -> None:
    try:
        check_collection(c.collection)
    except ValidationError as exc:
        raise err("collection", exc.reason) from None
    if not isinstance(c.delta_id, str) or not DELTA_ID_RE.fullmatch(c.delta_id):
        raise err("delta_id", f"{c.delta_id!r:.60} is not <13-digit ms>-<suffix>")
    if c.created_at.tzinfo is None:
        raise err("created_at", "must be timezone-aware")
    n = len(c.ids)
    if n + len(c.deletes) + len(c.updates) == 0:
        raise err("ids", "a delta needs at least one upsert, delete or update")
    if n > MAX_RECORDS or len(c.deletes) > MAX_RECORDS or len(c.updates) > MAX_RECORDS:
        raise err("ids", f"more than {MAX_RECORDS} records")
    emb = c.embeddings
    if n:
        if emb.ndim != 2 or emb.shape[0] != n:
            raise err("embeddings", f"shape {emb.shape} does not match {n} ids")
        if not 1 <= emb.shape[1] <= MAX_DIMENSION:
            raise err("embeddings", f"dimension {emb.shape[1]} outside 1..{MAX_DIMENSION}")
        bad = _first_non_finite(emb)
        if bad is not None:
            row, col, value = bad
            raise err(f"embeddings[{row}][{col}]", f"is {value}: values must be finite (no NaN or inf)")
    elif emb.size:
        raise err("embeddings", "present but there are no ids")
    if len(c.metadatas) != n:
        raise err("metadatas", f"has {len(c.metadatas)} entries for {n} ids")
    if len(c.documents) != n:
        raise err("documents", f"has {len(c.documents)} entries for {n} ids")
    seen: set[str] = set()
    for i, rid in enumerate(c.ids):
        _check_record_id(rid, f"ids[{i}]", err)
        if rid in seen:
            raise err(f"ids[{i}]", f"{rid!r} is duplicated")
        seen.add(rid)
    for i, m in enumerate(c.metadatas):
        _check_metadata(m, f"metadatas[{i}]", err)
    for i, d in enumerate(c.documents):
        _check_document(d, f"documents[{i}]", err)
    dels: set[str] = set()
    for i, rid in enumerate(c.deletes):
        _check_record_id(rid, f"deletes[{i}]", err)
        if rid in dels:
            raise err(f"deletes[{i}]", f"{rid!r} is duplicated")
        dels.add(rid)
    touched = seen | dels
    for i, u in enumerate(c.updates):
        _check_record_id(u.id, f"updates[{i}].id", err)
        if u.id in touched:
            raise err(f"updates[{i}].id", f"{u.id!r} is duplicated")
        touched.add(u.id)
        if u.metadata is None and not u.sets_document:
            raise err(f"updates[{i}]", "changes nothing: give metadata or document")
        _check_metadata(u.metadata, f"updates[{i}].metadata", err, patch=True)
        _check_document(u.document, f"updates[{i}].document", err)


def _parse_update(raw: object, i: int, err: _Err) -> RecordUpdate:
    if not isinstance(raw, dict) or "id" not in raw or not set(raw) <= {"id", "metadata", "document"}:
        raise err(f"updates[{i}]", "must be an object with id and metadata and/or document")
    meta = raw.get("metadata")
    if "metadata" in raw and not isinstance(meta, dict):
        raise err(f"updates[{i}].metadata", "must be an object")
    doc = raw.get("document")
    if doc is not None and not isinstance(doc, str):
        raise err(f"updates[{i}].document", f"must be a string or null, got {type(doc).__name__}")
    return RecordUpdate(raw["id"], meta, doc, "document" in raw)


# -- encode ------------------------------------------------------------------------
def _pack_strings(values: list[str]) -> bytes:
    parts: list[bytes] = []
    for v in values:
        b = v.encode()
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def _utc_iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_delta(content: DeltaContent) -> bytes:
    """Validate `content` and serialise it; raises DeltaFormatError naming the bad field."""
    _check_content(content, _Err("<encode>", delta_key(content.collection, content.delta_id, check=False)))
    n = len(content.ids)
    dim = content.dimension
    ids_blob = _pack_strings(content.ids)
    vec_blob = b""
    if isinstance(content.embeddings, PackedVectors):
        vec_blob = content.embeddings.tobytes()
    elif n:
        import numpy as np

        vec_blob = np.ascontiguousarray(content.embeddings, dtype="<f4").tobytes()
    extras: dict[str, Any] = {}
    if any(m is not None for m in content.metadatas) or any(d is not None for d in content.documents):
        extras = {"metadatas": content.metadatas, "documents": content.documents}
    if content.updates:
        extras = {
            "metadatas": content.metadatas,
            "documents": content.documents,
            "updates": [u.to_json() for u in content.updates],
        }
    extras_blob = (
        json.dumps(extras, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        if extras
        else b""
    )
    del_blob = _pack_strings(content.deletes)
    header = json.dumps(
        {
            "collection": content.collection,
            "delta_id": content.delta_id,
            "created_at": _utc_iso(content.created_at),
            "dimension": dim,
            "upserts": n,
            "deletes": len(content.deletes),
            **({"updates": len(content.updates)} if content.updates else {}),
            "sizes": [len(ids_blob), len(vec_blob), len(extras_blob), len(del_blob)],
        },
        separators=(",", ":"),
    ).encode()
    body = b"".join(
        [
            _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header)),
            header,
            ids_blob,
            vec_blob,
            extras_blob,
            del_blob,
        ]
    )
    if len(body) + _DIGEST_BYTES > MAX_DELTA_BYTES:
        raise DeltaFormatError(
            "<encode>", None, "size", f"delta would exceed {MAX_DELTA_BYTES} bytes: split it"
        )
    return body + hashlib.sha256(body).digest()


# -- decode ------------------------------------------------------------------------
def _unpack_strings(buf: memoryview, count: int, fld: str, err: _Err) -> list[str]:
    out: list[str] = []
    pos = 0
    for i in range(count):
        if pos + 2 > len(buf):
            raise err(f"{fld}[{i}]", "section ends before the length prefix")
        (ln,) = _LEN.unpack_from(buf, pos)
        pos += 2
        if ln > MAX_ID_BYTES or pos + ln > len(buf):
            raise err(f"{fld}[{i}]", f"length {ln} overruns the section or the {MAX_ID_BYTES}-byte id limit")
        try:
            out.append(bytes(buf[pos : pos + ln]).decode())
        except UnicodeDecodeError:
            raise err(f"{fld}[{i}]", "is not valid UTF-8") from None
        pos += ln
    if pos != len(buf):
        raise err(fld, f"{len(buf) - pos} trailing bytes after {count} entries")
    return out


def _header_int(header: dict[str, Any], name: str, err: _Err, lo: int, hi: int) -> int:
    v = header.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise err(f"header.{name}", f"must be an integer in {lo}..{hi}, got {v!r:.40}")
    return v


def decode_delta(data: bytes, *, expect_key: str | None = None, store: str = "<bytes>") -> DeltaContent:
    """Parse and fully validate a delta blob; any malformation raises DeltaFormatError."""
    err = _Err(store, expect_key)
    total = len(data)
    if total > MAX_DELTA_BYTES:
        raise err("size", f"{total} bytes is more than the {MAX_DELTA_BYTES}-byte limit")
    if total < _PREFIX.size + _DIGEST_BYTES:
        raise err("size", f"truncated: {total} bytes is shorter than the fixed prefix and checksum")
    magic, version, flags, header_len = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise err("magic", f"{magic!r} is not {MAGIC!r}: not a storekeeper delta")
    if version != FORMAT_VERSION:
        raise err(
            "version", f"format version {version} is not supported (this reader knows {FORMAT_VERSION})"
        )
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise err("sha256", "checksum mismatch: the object is truncated or corrupt")
    if flags != 0:
        raise err("flags", f"unknown flags {flags:#x}")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(body):
        raise err("header", f"length {header_len} overruns the object or the {MAX_HEADER_BYTES}-byte limit")
    try:
        header = json.loads(bytes(data[_PREFIX.size : _PREFIX.size + header_len]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise err("header", f"not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise err("header", "must be a JSON object")

    collection = header.get("collection")
    delta_id = header.get("delta_id")
    try:
        check_collection(collection)
    except ValidationError as exc:
        raise err("header.collection", exc.reason) from None
    if not isinstance(delta_id, str) or not DELTA_ID_RE.fullmatch(delta_id):
        raise err("header.delta_id", f"{delta_id!r:.60} is not <13-digit ms>-<suffix>")
    assert isinstance(collection, str)
    if expect_key is not None:
        own = delta_key(collection, delta_id)
        if own != expect_key:
            raise err("header", f"names {own} but the object is stored at {expect_key}")
    try:
        created_at = datetime.fromisoformat(str(header.get("created_at")))
    except ValueError:
        raise err("header.created_at", "not an ISO-8601 timestamp") from None
    if created_at.tzinfo is None:
        raise err("header.created_at", "must carry a timezone")

    n = _header_int(header, "upserts", err, 0, MAX_RECORDS)
    n_del = _header_int(header, "deletes", err, 0, MAX_RECORDS)
    n_upd = _header_int(header, "updates", err, 0, MAX_RECORDS) if "updates" in header else 0
    if n + n_del + n_upd == 0:
        raise err("header", "a delta needs at least one upsert, delete or update")
    dim_raw = header.get("dimension")
    if n:
        dim = _header_int(header, "dimension", err, 1, MAX_DIMENSION)
    elif dim_raw is not None:
        raise err("header.dimension", "must be null when there are no upserts")
    else:
        dim = 0
    sizes = header.get("sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) != 4
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes)
    ):
        raise err("header.sizes", "must be four non-negative integers")
    ids_len, vec_len, extras_len, del_len = sizes
    if vec_len != n * dim * 4:
        raise err("header.sizes", f"vector section is {vec_len} bytes, expected {n}x{dim}x4 = {n * dim * 4}")
    start = _PREFIX.size + header_len
    if start + ids_len + vec_len + extras_len + del_len != len(body):
        raise err(
            "header.sizes",
            f"sections add up to {start + ids_len + vec_len + extras_len + del_len} "
            f"bytes but the body has {len(body)}",
        )

    view = memoryview(data)
    ids = _unpack_strings(view[start : start + ids_len], n, "ids", err)
    pos = start + ids_len
    import numpy as np

    if n:
        emb = np.frombuffer(data, dtype="<f4", count=n * dim, offset=pos).reshape(n, dim).astype(np.float32)
    else:
        emb = np.zeros((0, 0), dtype=np.float32)
    pos += vec_len
    metadatas: list[Metadata | None] = [None] * n
    documents: list[str | None] = [None] * n
    updates: list[RecordUpdate] = []
    if extras_len:
        try:
            extras = json.loads(bytes(view[pos : pos + extras_len]))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise err("extras", f"not valid JSON: {exc}") from None
        expected = {"metadatas", "documents", "updates"} if n_upd else {"metadatas", "documents"}
        if not isinstance(extras, dict) or set(extras) != expected:
            raise err("extras", f"must be an object with exactly {', '.join(sorted(expected))}")
        raw_updates = extras.get("updates", [])
        if not isinstance(raw_updates, list) or len(raw_updates) != n_upd:
            raise err("updates", f"must be a list of {n_upd} entries")
        updates = [_parse_update(u, i, err) for i, u in enumerate(raw_updates)]
        metas, docs = extras["metadatas"], extras["documents"]
        if not isinstance(metas, list) or len(metas) != n:
            raise err("metadatas", f"must be a list of {n} entries")
        if not isinstance(docs, list) or len(docs) != n:
            raise err("documents", f"must be a list of {n} entries")
        metadatas, documents = metas, docs
    elif n_upd:
        raise err("extras", f"missing: the header announces {n_upd} updates")
    pos += extras_len
    deletes = _unpack_strings(view[pos : pos + del_len], n_del, "deletes", err)
    content = DeltaContent(collection, delta_id, created_at, ids, emb, metadatas, documents, deletes, updates)
    _check_content(content, err)
    return content


# -- store helpers -------------------------------------------------------------------
def write_delta(
    store: ObjectStore, content: DeltaContent, *, blob: bytes | None = None, rewrite_ok: bool = False
) -> DeltaNotification:
    """Create-only put (a delta is immutable); returns the notification to send for it.

    `blob` is `encode_delta(content)` when the caller already encoded it (to validate a
    whole request before writing anything). `rewrite_ok`: the delta id is derived from
    the request (a retried put), so finding the very same bytes already there is success;
    other bytes under that key are a PreconditionFailed.
    """
    if blob is None:
        blob = encode_delta(content)
    key = content.key
    try:
        store.put(key, blob, if_none_match=True, content_type="application/vnd.storekeeper.delta")
    except PreconditionFailed:
        if not rewrite_ok:
            raise
        try:
            same = store.get(key).body == blob
        except NotFound:  # compacted and removed meanwhile: it was written, and applied
            same = True
        if not same:
            raise PreconditionFailed(store.url, key, "a different delta already has this id") from None
    return DeltaNotification(
        collection=content.collection,
        delta_key=key,
        sha256=hashlib.sha256(blob).hexdigest(),
        upserts=len(content.ids),
        deletes=len(content.deletes),
        created_at=content.created_at,
    )


def list_pending(store: ObjectStore, collection: str) -> list[ObjectInfo]:
    """Every delta object of the collection (all pages), oldest first; stray keys are ignored."""
    found = [o for o in store.list(delta_prefix(collection)) if match_delta_key(o.key)]
    return sorted(found, key=lambda o: parse_delta_key(o.key)[1])


def fetch_delta(store: ObjectStore, key: str) -> tuple[DeltaContent, str]:
    """Fetch and decode one delta (verified by its own trailing checksum); also its blob's sha256."""
    parse_delta_key(key)
    data = store.get(key).body
    return decode_delta(data, expect_key=key, store=store.url), hashlib.sha256(data).hexdigest()


def read_delta(store: ObjectStore, key: str, expected_sha256: str | None = None) -> DeltaContent:
    """Fetch, verify against the notified sha256 (if given) and decode one delta."""
    content, digest = fetch_delta(store, key)
    if expected_sha256 is not None and digest != expected_sha256:
        raise DeltaFormatError(store.url, key, "sha256", "object does not match the notified sha256")
    return content
