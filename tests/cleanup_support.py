"""Builders for protection, cleanup and reaper tests: cleanup tasks and stand-in snapshot versions.

A stand-in version is a real manifest next to a small stand-in archive (no chromadb): what
protection, retention and the executor read (pointer, manifest, applied deltas) is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from storekeeper.layout import pointer_key
from storekeeper.models.cleanup import CleanupTask
from storekeeper.models.snapshots import Manifest
from storekeeper.stores.base import ObjectStore

ARCHIVE = "chroma.tar.gz"
ZERO_SHA = "0" * 64


def cleanup_task(
    action: str,
    bucket: str,
    *,
    backend: str,
    planned_at: datetime,
    reason: str = "test",
    task_id: str | None = None,
    **fields: Any,
) -> CleanupTask:
    """A validated cleanup task (policy `test`), id `t-<action>` unless given."""
    return CleanupTask.model_validate(
        {
            "task_id": task_id or f"t-{action}",
            "action": action,
            "backend": backend,
            "bucket": bucket,
            "policy": "test",
            "reason": reason,
            "planned_at": planned_at,
            **fields,
        }
    )


def manifest(
    collection: str,
    version: str,
    *,
    created_at: datetime,
    parent: str | None = None,
    archive: str = ARCHIVE,
    sha256: str = ZERO_SHA,
    size: int = 1,
    dimension: int = 3,
    record_count: int = 1,
    deltas: Sequence[str] = (),
    applied: Sequence[str] = (),
) -> Manifest:
    """The manifest of a stand-in version (by default: 1 record of dimension 3, no deltas)."""
    return Manifest(
        collection=collection,
        version=version,
        parent=parent,
        archive=archive,
        sha256=sha256,
        size=size,
        dimension=dimension,
        record_count=record_count,
        deltas=list(deltas),
        applied=list(applied),
        created_at=created_at,
    )


def put_version(
    store: ObjectStore,
    collection: str,
    version: str,
    *,
    created_at: datetime,
    live: bool = True,
    archive: str = ARCHIVE,
    body: bytes = b"archive",
    extra: Mapping[str, bytes] | None = None,
    **manifest_fields: Any,
) -> str:
    """Write snapshot/<c>/<v>/: the archive `body`, any `extra` files, then the manifest, and (when
    `live`) point the collection's pointer at it, in the compactor's order. Returns the prefix."""
    prefix = f"snapshot/{collection}/{version}/"
    m = manifest(collection, version, created_at=created_at, archive=archive, **manifest_fields)
    store.put(prefix + archive, body)
    for name, data in (extra or {}).items():
        store.put(prefix + name, data)
    store.put(prefix + "manifest.json", m.model_dump_json().encode())
    if live:
        store.put(pointer_key(collection), prefix.encode())
    return prefix
