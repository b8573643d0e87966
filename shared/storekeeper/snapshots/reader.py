"""Opening one version with chromadb for reading, without copying the snapshot.

Chroma writes its SQLite file when it opens a persist dir (the HNSW segment files are only read),
so a reader gets a *view*: a private dir holding a copy of the top-level files (the SQLite
database) and symlinks to the segment dirs of the leased, pristine cache entry. The lease keeps
the entry from being evicted or taken while the view is open; `close()` releases all of it.
`storekeeper.reader.Reader` builds on this; `open_snapshot` is the one-shot form.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storekeeper.errors import NotFound, PointerTargetMissing
from storekeeper.layout import manifest_key
from storekeeper.models.snapshots import Manifest
from storekeeper.names import check_collection
from storekeeper.snapshots.cache import Lease, SnapshotCache
from storekeeper.snapshots.manifest import load_manifest, resolve
from storekeeper.stores.base import ObjectStore


def _make_view(tree: Path, view: Path) -> None:
    for child in sorted(tree.iterdir()):
        if child.is_dir():
            (view / child.name).symlink_to(child.resolve(), target_is_directory=True)
        else:
            shutil.copyfile(child, view / child.name)


@dataclass
class OpenVersion:
    """A chromadb collection of one version (None: the empty collection), and what keeps it alive."""

    manifest: Manifest | None
    client: Any
    collection: Any
    view: Path
    lease: Lease | None

    @property
    def version(self) -> str | None:
        return self.manifest.version if self.manifest else None

    def close(self) -> None:
        """Close the client (its file handles and memory), release the entry, remove the view."""
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close()
        self.client = self.collection = None
        if self.lease is not None:
            self.lease.release()
        shutil.rmtree(self.view, ignore_errors=True)


def open_version(
    store: ObjectStore, collection: str, manifest: Manifest | None, cache: SnapshotCache
) -> OpenVersion:
    """Lease `manifest`'s verified tree and open a chromadb view of it (an empty one for None)."""
    from storekeeper import chroma

    view = cache.tempdir("live")
    lease: Lease | None = None
    client = None
    try:
        if manifest is not None:
            lease = cache.lease(store, manifest)
            _make_view(lease.tree, view)
        client = chroma.open_client(view)
        col = chroma.get(client, collection) if manifest else chroma.get_or_create(client, collection, "l2")
        return OpenVersion(manifest, client, col, view, lease)
    except BaseException:
        OpenVersion(manifest, client, None, view, lease).close()
        raise


_OPENED: list[OpenVersion] = []
_OPENED_LOCK = threading.Lock()


def _close_opened() -> None:
    with _OPENED_LOCK:
        while _OPENED:
            _OPENED.pop().close()


atexit.register(_close_opened)


def open_snapshot(
    store: ObjectStore | str,
    collection: str,
    version: str | None = None,
    *,
    cache: SnapshotCache | None = None,
) -> Any:
    """A chromadb Collection of the published (or the pinned) version, checksum-verified.

    No pointer means an empty collection. Writes to it never reach the store or the cache.
    It stays open until the process exits: long-lived programs use `storekeeper.Reader`.
    """
    from storekeeper.stores import open_store

    store = open_store(store) if isinstance(store, str) else store
    check_collection(collection)
    if version is None:
        published = resolve(store, collection)
        manifest = published.manifest if published else None
    else:
        try:
            manifest = load_manifest(store, collection, version)
        except PointerTargetMissing as exc:
            raise NotFound(store.url, manifest_key(collection, version), "no such snapshot version") from exc
    opened = open_version(store, collection, manifest, cache or SnapshotCache.for_readers())
    with _OPENED_LOCK:
        _OPENED.append(opened)
    return opened.collection
