"""Builders for reader tests: publish snapshot versions straight into a store (no compactor needed)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
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
from storekeeper.snapshots.cache import SnapshotCache, _flock, _unlock
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


@dataclass(frozen=True)
class Built:
    """A packed archive of a Chroma persist dir, ready to publish (again) as new versions."""

    archive: Path
    sha256: str
    size: int
    count: int
    dimension: int


def build_archive(work: Path, collection: str, recs: dict[str, Any]) -> Built:
    """Build a Chroma persist dir holding `recs` and pack it."""
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
    shutil.rmtree(tree)
    return Built(archive, sha, size, len(recs["ids"]), int(recs["embeddings"].shape[1]))


def publish_built(
    store: ObjectStore, collection: str, built: Built, *, deltas: list[str] | None = None
) -> Manifest:
    """Upload `built` as the next version and move the pointer (conditional write)."""
    parent, etag = read_pointer(store, collection)
    manifest = write_snapshot(
        store, collection=collection, version=new_version(parent), parent=parent, archive=built.archive,
        dimension=built.dimension, distance="l2", record_count=built.count,
        deltas=deltas or [], applied=deltas or [], sha256=built.sha256, size=built.size,
    )  # fmt: skip
    publish(store, collection, manifest.version, etag)
    return manifest


def publish_version(
    store: ObjectStore, work: Path, collection: str, recs: dict[str, Any], *, deltas: list[str] | None = None
) -> Manifest:
    """Build a Chroma persist dir holding `recs`, upload it as the next version and move the pointer."""
    built = build_archive(work, collection, recs)
    manifest = publish_built(store, collection, built, deltas=deltas)
    built.archive.unlink()
    return manifest


def entry_unlocked(cache: SnapshotCache, version: str, collection: str = "docs") -> bool:
    """Nobody holds the version's cache entry (no open view leases it)."""
    fd = _flock(cache.root / "locks" / collection / f"{version}.lock", shared=False, blocking=False)
    _unlock(fd)
    return fd is not None
