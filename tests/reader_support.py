"""Builders for reader tests: publish snapshot versions straight into a store (no compactor needed)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np

from storekeeper import chroma
from storekeeper.models.snapshots import Manifest
from storekeeper.snapshots import (
    ARCHIVE_NAME,
    new_version,
    pack_archive,
    publish,
    read_pointer,
    write_snapshot,
)
from storekeeper.stores.base import ObjectStore


def records(n: int, dim: int, *, seed: int = 0, tag: str = "v") -> dict[str, Any]:
    """`n` records of `dim` floats with metadata {"g": i % 3, "tag": tag} and a document each."""
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"r{i}" for i in range(n)],
        "embeddings": rng.random((n, dim), dtype=np.float32),
        "metadatas": [{"g": i % 3, "tag": tag} for i in range(n)],
        "documents": [f"doc {i} {'even' if i % 2 == 0 else 'odd'}" for i in range(n)],
    }


def publish_version(
    store: ObjectStore, work: Path, collection: str, recs: dict[str, Any], *, deltas: list[str] | None = None
) -> Manifest:
    """Build a Chroma persist dir holding `recs`, upload it as the next version and move the pointer."""
    tree = work / f"tree-{uuid.uuid4().hex[:8]}"
    with chroma.persistent_client(tree) as client:
        col = chroma.get_or_create(client, collection, "l2")
        n = len(recs["ids"])
        for i in range(0, n, 5000):
            col.upsert(
                ids=recs["ids"][i : i + 5000],
                embeddings=recs["embeddings"][i : i + 5000],
                metadatas=recs["metadatas"][i : i + 5000],
                documents=recs["documents"][i : i + 5000],
            )
    archive = work / f"{tree.name}-{ARCHIVE_NAME}"
    sha, size = pack_archive(tree, archive)
    parent, etag = read_pointer(store, collection)
    manifest = write_snapshot(
        store, collection=collection, version=new_version(parent), parent=parent, archive=archive,
        dimension=int(recs["embeddings"].shape[1]), distance="l2", record_count=len(recs["ids"]),
        deltas=deltas or [], applied=deltas or [], sha256=sha, size=size,
    )  # fmt: skip
    publish(store, collection, manifest.version, etag)
    archive.unlink()
    return manifest
