"""Put requests (producer input) and delta notifications (producer -> DeltaQueue)."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from storekeeper.models.common import CollectionName, RecordId, Strict, Token, UtcDatetime

MAX_METADATA_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DIMENSION = 8192
MetadataValue = str | int | float | bool
DELTA_KEY_RE = re.compile(r"^delta/(?P<c>[a-z0-9][a-z0-9_-]{0,62})/(?P<id>\d{13}-[a-z0-9]{6,32})\.delta$")


class UpsertRecord(Strict):
    id: RecordId
    embedding: Annotated[list[float], Field(min_length=1, max_length=MAX_DIMENSION)]
    metadata: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], MetadataValue] | None = (
        None
    )
    document: str | None = None

    @field_validator("embedding")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        for i, x in enumerate(v):
            if not math.isfinite(x):
                raise ValueError(f"embedding[{i}] is {x}: values must be finite (no NaN or inf)")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, v: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        if v is None:
            return v
        for k, x in v.items():
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError(f"metadata[{k!r}] is {x}: numbers must be finite")
        size = len(json.dumps(v, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes, more than the {MAX_METADATA_BYTES}-byte limit")
        return v

    @field_validator("document")
    @classmethod
    def _document_size(cls, v: str | None) -> str | None:
        if v is not None and len(v.encode()) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"document is larger than the {MAX_DOCUMENT_BYTES}-byte limit")
        return v


class PutRequest(Strict):
    """A direct-invoke put: upserts and deletes for one collection."""

    collection: CollectionName
    upserts: list[UpsertRecord] = Field(default_factory=list)
    deletes: list[RecordId] = Field(default_factory=list)
    request_id: Token | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.upserts and not self.deletes:
            raise ValueError("upserts and deletes are both empty: nothing to do")
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
        m = DELTA_KEY_RE.fullmatch(self.delta_key)
        if not m:
            raise ValueError(
                f"delta_key {self.delta_key!r} is not delta/<collection>/<13-digit-ms>-<suffix>.delta"
            )
        if m["c"] != self.collection:
            raise ValueError(f"delta_key {self.delta_key!r} is not under collection {self.collection!r}")
        return self

    @property
    def delta_id(self) -> str:
        m = DELTA_KEY_RE.fullmatch(self.delta_key)
        assert m is not None
        return m["id"]
