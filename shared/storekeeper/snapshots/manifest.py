"""Manifests: `snapshot/<c>/<version>/manifest.json`, written create-only after the archive, read
and checked before any archive is trusted; `resolve` joins the pointer to its manifest.

The Manifest model is imported where a manifest is read or written: `resolve` on a collection with
nothing published (a producer's first put) never needs it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pydantic

from storekeeper.errors import CorruptObject, NotFound, PointerTargetMissing, from_pydantic
from storekeeper.layout import manifest_key
from storekeeper.snapshots.pointer import read_pointer
from storekeeper.stores.base import ObjectStore

if TYPE_CHECKING:
    from storekeeper.models.snapshots import Manifest


def load_manifest(store: ObjectStore, collection: str, version: str) -> Manifest:
    """The manifest of one version; a missing one is PointerTargetMissing, a bad one CorruptObject."""
    from storekeeper.models.snapshots import Manifest

    key = manifest_key(collection, version)
    try:
        body = store.get(key).body
    except NotFound:
        raise PointerTargetMissing(store.url, key, f"manifest of version {version} does not exist") from None
    try:
        manifest = Manifest.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise CorruptObject(
            store.url, key, f"invalid manifest: {from_pydantic(exc, root='<root>')}"
        ) from None
    if manifest.collection != collection or manifest.version != version:
        raise CorruptObject(
            store.url,
            key,
            f"manifest names {manifest.collection}/{manifest.version}, expected {collection}/{version}",
        )
    return manifest


class Published(NamedTuple):
    version: str
    etag: str
    manifest: Manifest


def resolve(store: ObjectStore, collection: str) -> Published | None:
    """Pointer + its manifest; None when nothing is published (an empty collection)."""
    version, etag = read_pointer(store, collection)
    if version is None or etag is None:
        return None
    return Published(version, etag, load_manifest(store, collection, version))


def write_snapshot(
    store: ObjectStore,
    *,
    collection: str,
    version: str,
    parent: str | None,
    archive: Path,
    dimension: int | None,
    distance: str,
    record_count: int,
    deltas: list[str],
    applied: list[str],
    hooks: Any = None,
    sha256: str | None = None,
    size: int | None = None,
    delta_sha256: dict[str, str] | None = None,
) -> Manifest:
    """Upload the archive, then the manifest, both create-only; the pointer is not touched here.

    `sha256`/`size` as returned by `pack_archive` save reading the archive again. The archive's
    name follows its compression (`chroma.tar` or `chroma.tar.gz`) and it is streamed from disk.
    """
    from storekeeper.models.snapshots import Manifest
    from storekeeper.snapshots.archive import compression, sha256_file  # tarfile: only the compactor writes

    archive = Path(archive)
    comp = compression(archive.name, str(archive))
    if sha256 is None or size is None:
        sha256, size = sha256_file(archive), archive.stat().st_size
    manifest = Manifest(
        collection=collection,
        version=version,
        parent=parent,
        archive="chroma.tar" + (f".{comp}" if comp else ""),
        sha256=sha256,
        size=size,
        dimension=dimension,
        distance=distance,
        record_count=record_count,
        deltas=deltas,
        applied=applied,
        delta_sha256=delta_sha256 or {},
        created_at=datetime.now(UTC),
    )
    store.put_file(
        manifest.archive_key,
        archive,
        if_none_match=True,
        content_type="application/gzip" if comp else "application/x-tar",
    )
    if hooks is not None:
        hooks("after_archive_upload")
    store.put(
        manifest_key(collection, version),
        manifest.model_dump_json(indent=2).encode(),
        if_none_match=True,
        content_type="application/json",
    )
    if hooks is not None:
        hooks("after_manifest")
    return manifest
