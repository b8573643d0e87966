"""The one module that imports chromadb: persist dirs opened, written and queried here.

Import it lazily (inside functions): the producer, reaper and cleanup must not
pay chromadb's import time. Every client is closed when its block ends, so file
handles are released and the next open of the same path sees fresh data.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("CHROMA_TELEMETRY_IMPL", "none")
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import chromadb
import chromadb.errors
from chromadb.config import Settings

if TYPE_CHECKING:
    from storekeeper.deltas import RecordUpdate

#: what chromadb raises for a record it refuses (not for I/O or a broken persist dir)
RECORD_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, chromadb.errors.InvalidArgumentError)
_CHROMA_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
COLLECTION_KEY = "storekeeper_collection"


def chroma_name(collection: str) -> str:
    """Chroma wants 3+ chars ending alphanumeric; our names allow `a` or `x_`, so those are wrapped.

    The archive still holds exactly one collection, and its metadata names ours.
    """
    if _CHROMA_NAME_RE.fullmatch(collection):
        return collection
    return f"storekeeper-{collection}-collection"


@functools.cache
def _settings_template() -> Settings:
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _settings() -> Settings:
    """A fresh copy of one Settings built per process: building it (pydantic-settings reads the
    environment and a .env file) took longer than opening a warm persist dir (docs/performance.md);
    a copy each, because PersistentClient writes the path into the Settings it is given."""
    return _settings_template().model_copy()


@contextmanager
def persistent_client(path: Path) -> Iterator[Any]:
    """A PersistentClient on `path`, closed (and its shared system dropped) on exit."""
    client: Any = chromadb.PersistentClient(path=str(path), settings=_settings())
    try:
        yield client
    finally:
        client.close()  # drops the shared per-path system once no client uses it


def open_client(path: Path) -> Any:
    """A client left open for a reader (closed when the process ends)."""
    return chromadb.PersistentClient(path=str(path), settings=_settings())


def get_or_create(client: Any, collection: str, distance: str) -> Any:
    return client.get_or_create_collection(
        name=chroma_name(collection),
        embedding_function=None,
        configuration={"hnsw": {"space": distance}},
        metadata={COLLECTION_KEY: collection},
    )


def get(client: Any, collection: str) -> Any:
    return client.get_collection(name=chroma_name(collection), embedding_function=None)


@dataclass(frozen=True)
class Hit:
    id: str
    distance: float
    metadata: dict[str, Any] | None
    document: str | None


def apply(
    col: Any,
    *,
    deletes: Sequence[str],
    ids: Sequence[str],
    embeddings: Any,
    metadatas: Sequence[dict[str, Any] | None],
    documents: Sequence[str | None],
    batch: int,
    updates: Sequence[RecordUpdate] = (),
) -> None:
    """Deletes, then puts that *replace* whole records, then partial updates; in batches Chroma accepts.

    A put is delete + add: chromadb's `upsert` merges metadata keys and keeps an old
    document, and `add` of an existing id is silently ignored (both measured). Deleting
    an id that does not exist is a no-op. An update reads the record, merges and
    replaces it the same way (an update of a missing id changes nothing).
    """
    gone = existing(col, [*deletes, *ids], batch)
    for i in range(0, len(gone), batch):
        col.delete(ids=gone[i : i + batch])
    for i in range(0, len(ids), batch):
        col.add(
            ids=list(ids[i : i + batch]),
            embeddings=embeddings[i : i + batch],
            metadatas=list(metadatas[i : i + batch]),
            documents=list(documents[i : i + batch]),
        )
    for i in range(0, len(updates), batch):
        _apply_updates(col, updates[i : i + batch])


def existing(col: Any, ids: Sequence[str], batch: int) -> list[str]:
    """Which of `ids` the collection holds (each once). A delete costs chromadb time for every id
    it is given, found or not: 10 deletes of 1,000 new ids took ~10x the `get` that finds none
    (docs/performance.md, "Compaction: where the time over a raw upsert went")."""
    wanted = list(dict.fromkeys(ids))
    found: list[str] = []
    for i in range(0, len(wanted), batch):
        found.extend(col.get(ids=wanted[i : i + batch], include=[])["ids"])
    return found


def _apply_updates(col: Any, part: Sequence[RecordUpdate]) -> None:
    got = col.get(ids=[u.id for u in part], include=["embeddings", "metadatas", "documents"])
    current = {
        rid: (emb, meta, doc)
        for rid, emb, meta, doc in zip(
            got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True
        )
    }
    present = [u for u in part if u.id in current]
    if not present:
        return
    merged = [u.merged(current[u.id][1], current[u.id][2]) for u in present]
    col.delete(ids=[u.id for u in present])
    col.add(
        ids=[u.id for u in present],
        embeddings=[current[u.id][0] for u in present],
        metadatas=[m for m, _ in merged],
        documents=[d for _, d in merged],
    )


def max_batch(client: Any) -> int:
    return max(1, int(client.get_max_batch_size()))


def query(col: Any, vector: Sequence[float], k: int) -> list[Hit]:
    n = col.count()
    if n == 0:
        return []
    res = col.query(
        query_embeddings=[list(map(float, vector))],
        n_results=min(k, n),
        include=["distances", "metadatas", "documents"],
    )
    metas = (res.get("metadatas") or [[None] * len(res["ids"][0])])[0]
    docs = (res.get("documents") or [[None] * len(res["ids"][0])])[0]
    dists = (res.get("distances") or [[0.0] * len(res["ids"][0])])[0]
    return [
        Hit(id=i, distance=float(d), metadata=dict(m) if m else None, document=doc)
        for i, d, m, doc in zip(res["ids"][0], dists, metas, docs, strict=True)
    ]


def embedding_of(col: Any, record_id: str) -> list[float] | None:
    got = col.get(ids=[record_id], include=["embeddings"])
    embs = got.get("embeddings")
    if embs is None or len(got["ids"]) == 0:
        return None
    return [float(x) for x in embs[0]]
