"""Put requests (producer input) and delta notifications (producer -> DeltaQueue)."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import json
import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from storekeeper.layout import match_delta_key
from storekeeper.models.common import CollectionName, RecordId, Strict, Token, UtcDatetime

#: the largest finite float32: chromadb stores embeddings as float32, so a larger value would become inf
FLOAT32_MAX = 3.4028234663852886e38

MAX_METADATA_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DIMENSION = 8192
MAX_KEY_CHARS = 256
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: metadata keys chromadb refuses (`chroma:document`, `$...`, `#...`) or silently drops (other `chroma:...`)
RESERVED_KEY_PREFIXES = ("chroma:", "$", "#")
MetadataValue = str | int | float | bool
Distance = Literal["l2", "cosine", "ip"]
DEFAULT_DISTANCE: Distance = "l2"


# -- what chromadb stores exactly (measured against the real client; see docs/records.md) -------------
def text_problem(value: str) -> str | None:
    """Lone surrogates (JSON allows "\\ud800") are not UTF-8: chromadb and the delta blob refuse them."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode (contains a lone surrogate)"
    return None


def metadata_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        return f"keys must be strings of 1-{MAX_KEY_CHARS} characters"
    if key.startswith(RESERVED_KEY_PREFIXES):
        return "keys starting with 'chroma:', '$' or '#' are reserved by chromadb"
    return text_problem(key)


def metadata_value_problem(value: object, *, allow_null: bool = False) -> str | None:
    if value is None and allow_null:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return "integers must fit in 64 bits (chromadb would store a float)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, str):
        return text_problem(value)
    allowed = "a string, number, boolean or null" if allow_null else "a string, number or boolean"
    return f"must be {allowed}, got {type(value).__name__}"


def metadata_problem(value: object, *, patch: bool = False) -> tuple[str, str] | None:
    """(field suffix, reason) for the first thing chromadb would refuse, drop or change; None if fine.

    `patch` is an update's metadata: null values remove a key there.
    """
    if not isinstance(value, dict):
        return "", f"must be an object, got {type(value).__name__}"
    for k, v in value.items():
        reason = metadata_key_problem(k)
        if reason is not None:
            return f"[{k!r:.60}]", reason
        reason = metadata_value_problem(v, allow_null=patch)
        if reason is not None:
            return f"[{k!r:.60}]", reason
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        return "", f"is {size} bytes, more than the {MAX_METADATA_BYTES}-byte limit"
    return None


def document_problem(value: str) -> str | None:
    reason = text_problem(value)
    if reason is None and len(value.encode()) > MAX_DOCUMENT_BYTES:
        reason = f"is larger than the {MAX_DOCUMENT_BYTES}-byte limit"
    return reason


def _valid_id(value: str) -> str:
    reason = text_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _valid_document(value: str) -> str:
    reason = document_problem(value)
    if reason is not None:
        raise ValueError(f"document {reason}")
    return value


def _metadata_validator(patch: bool) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        found = metadata_problem(value, patch=patch)
        if found is not None:
            suffix, reason = found
            raise ValueError(f"key {suffix[1:-1]}: {reason}" if suffix else f"metadata {reason}")
        return value

    return AfterValidator(check)


ChromaId = Annotated[RecordId, AfterValidator(_valid_id)]
Document = Annotated[str, AfterValidator(_valid_document)]


def _float32_value(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{x} is not allowed: values must be finite (no NaN or inf)")
    if abs(x) > FLOAT32_MAX:
        raise ValueError(f"{x} does not fit in float32 (|x| <= {FLOAT32_MAX:.8g})")
    return x


#: each value is checked where it stands, so an error names its index (upserts[3].embedding[7])
Embedding = Annotated[
    list[Annotated[StrictFloat, AfterValidator(_float32_value)]],
    Field(min_length=1, max_length=MAX_DIMENSION),
]
StrictMetadataValue = StrictStr | StrictBool | StrictInt | StrictFloat
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_CHARS)]
Metadata = Annotated[dict[MetadataKey, StrictMetadataValue], _metadata_validator(patch=False)]
#: an update's metadata: null removes a key
MetadataPatch = Annotated[dict[MetadataKey, StrictMetadataValue | None], _metadata_validator(patch=True)]


class UpsertRecord(Strict):
    """A put: replaces the whole record (metadata keys and document not given are gone)."""

    id: ChromaId
    embedding: Embedding
    metadata: Metadata | None = None
    document: Document | None = None


class UpdateRecord(Strict):
    """An explicit partial update: merges metadata keys (null removes one); document set if given.

    `{"update": id, "metadata": {...}, "document": ...}` in JSONL; an update of an id that
    does not exist when its delta is applied changes nothing.
    """

    id: ChromaId
    metadata: MetadataPatch | None = None
    document: Document | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.metadata is None and "document" not in self.model_fields_set:
            raise ValueError("an update needs metadata (an object) or document (null removes it)")
        if self.metadata is not None and not self.metadata and "document" not in self.model_fields_set:
            raise ValueError("metadata is empty: nothing to update")
        return self

    @property
    def sets_document(self) -> bool:
        """`document` was given (null included: it removes the document)."""
        return "document" in self.model_fields_set


class PutRequest(Strict):
    """A direct-invoke put: upserts and deletes for one collection."""

    collection: CollectionName
    upserts: list[UpsertRecord] = []
    deletes: list[ChromaId] = []
    updates: list[UpdateRecord] = []
    request_id: Token | None = None
    #: only used by a collection's first write (its config); a later put naming another is refused
    distance: Distance | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.upserts and not self.deletes and not self.updates:
            raise ValueError("upserts, deletes and updates are all empty: nothing to do")
        seen: set[str] = set()
        for i, r in enumerate(self.upserts):
            if r.id in seen:
                raise ValueError(f"upserts[{i}].id {r.id!r} is duplicated in this request")
            seen.add(r.id)
        dups = seen.intersection(self.deletes)
        if dups:
            raise ValueError(f"ids both upserted and deleted in one request: {sorted(dups)[:5]}")
        if len(set(self.deletes)) != len(self.deletes):
            raise ValueError("deletes contains duplicate ids")
        touched = seen.union(self.deletes)
        for i, u in enumerate(self.updates):
            if u.id in touched:
                raise ValueError(f"updates[{i}].id {u.id!r} appears more than once in this request")
            touched.add(u.id)
        if self.upserts:
            dim = len(self.upserts[0].embedding)
            for i, r in enumerate(self.upserts):
                if len(r.embedding) != dim:
                    raise ValueError(
                        f"upserts[{i}].embedding has dimension {len(r.embedding)}, "
                        f"expected {dim} like upserts[0]"
                    )
        return self

    @property
    def dimension(self) -> int | None:
        return len(self.upserts[0].embedding) if self.upserts else None


class DeltaNotification(Strict):
    """Producer -> DeltaQueue (FIFO, MessageGroupId = collection)."""

    collection: CollectionName
    delta_key: str
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    upserts: Annotated[int, Field(ge=0)]
    deletes: Annotated[int, Field(ge=0)]
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _key_matches(self) -> Self:
        parts = match_delta_key(self.delta_key)
        if parts is None:
            raise ValueError(
                f"delta_key {self.delta_key!r} is not delta/<collection>/<13-digit-ms>-<suffix>.delta"
            )
        if parts[0] != self.collection:
            raise ValueError(f"delta_key {self.delta_key!r} is not under collection {self.collection!r}")
        return self

    @property
    def delta_id(self) -> str:
        parts = match_delta_key(self.delta_key)
        assert parts is not None
        return parts[1]
