"""Snapshots, one concern per module (the names below stay importable from here):

* `pointer`  — `snapshot/<c>/latest/pointer.txt`: read, conditional publish, version names
* `manifest` — `snapshot/<c>/<version>/manifest.json`: load, check, write (after the archive)
* `archive`  — pack a Chroma persist dir into a tar, extract one safely
* `cache`    — extracted, verified versions shared by the processes of a machine
* `reader`   — open one version with chromadb without copying it (`open_snapshot`)

Layout::

    snapshot/<c>/<version>/manifest.json   immutable, written after the archive
    snapshot/<c>/<version>/chroma.tar      tar of a Chroma persist dir holding one collection
                                           (older versions: chroma.tar.gz; readers go by the suffix)
    snapshot/<c>/latest/pointer.txt        exactly `snapshot/<c>/<version>/`

Nothing here imports chromadb at module level (the reaper reads pointers too).
"""

from __future__ import annotations

from storekeeper.layout import manifest_key
from storekeeper.snapshots.archive import ARCHIVE_NAME, pack_archive, safe_extract
from storekeeper.snapshots.cache import DEFAULT_CACHE_DIR, Lease, SnapshotCache
from storekeeper.snapshots.manifest import Published, load_manifest, resolve, write_snapshot
from storekeeper.snapshots.pointer import new_version, pointer_key, publish, read_pointer, version_prefix
from storekeeper.snapshots.reader import open_snapshot

__all__ = [
    "ARCHIVE_NAME",
    "DEFAULT_CACHE_DIR",
    "Lease",
    "Published",
    "SnapshotCache",
    "load_manifest",
    "manifest_key",
    "new_version",
    "open_snapshot",
    "pack_archive",
    "pointer_key",
    "publish",
    "read_pointer",
    "resolve",
    "safe_extract",
    "version_prefix",
    "write_snapshot",
]
