"""The optional query function's logic (functions/query/app.py stays thin): a typed request, one warm
`Reader` per collection kept across invocations, and an answer shaped like `QueryResult`."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import pydantic
from pydantic import Field

from storekeeper.errors import from_pydantic
from storekeeper.layout import COLLECTION_PATTERN
from storekeeper.models.common import Strict
from storekeeper.reader import MAX_K, QueryResult, Reader

MAX_VECTORS = 100


class QueryRequest(Strict):
    """POST /query body: `vector` (one query) or `vectors` (several), `k`, chromadb filters."""

    collection: Annotated[str, Field(pattern=f"^{COLLECTION_PATTERN}$")]
    vector: list[float] | None = None
    vectors: Annotated[list[list[float]], Field(min_length=1, max_length=MAX_VECTORS)] | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    where: dict[str, Any] | None = None
    where_document: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> QueryRequest:
        if (self.vector is None) == (self.vectors is None):
            raise ValueError("give exactly one of vector or vectors")
        return self

    @property
    def embeddings(self) -> list[list[float]]:
        return self.vectors if self.vectors is not None else [self.vector or []]


def parse_request(body: Any) -> QueryRequest:
    """The request, or a ValidationError naming the first bad field."""
    try:
        return QueryRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, root="body") from None


_readers: dict[tuple[str, str], Reader] = {}
_lock = threading.Lock()


def reader_for(store_url: str, collection: str) -> Reader:
    """One Reader per (store, collection), kept warm across invocations; failures are not kept."""
    key = (store_url, collection)
    with _lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = Reader(store_url, collection)
        return reader


def answer(store_url: str, request: QueryRequest) -> dict[str, Any]:
    res: QueryResult = reader_for(store_url, request.collection).query(
        request.embeddings, request.k, where=request.where, where_document=request.where_document
    )
    return {
        "collection": request.collection,
        "version": res.version,
        "ids": res.ids,
        "distances": res.distances,
        "metadatas": res.metadatas,
        "documents": res.documents,
    }
