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

Nothing here imports chromadb at module level (the reaper reads pointers too), and the names
below load with their module on first use: the producer and the reaper read manifests and
pointers without importing the archive (tarfile), cache and reader modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storekeeper.lazy import lazy_exports

if TYPE_CHECKING:
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

_WHERE = {
    "manifest_key": "storekeeper.layout",
    **dict.fromkeys(("ARCHIVE_NAME", "pack_archive", "safe_extract"), "storekeeper.snapshots.archive"),
    **dict.fromkeys(("DEFAULT_CACHE_DIR", "Lease", "SnapshotCache"), "storekeeper.snapshots.cache"),
    **dict.fromkeys(
        ("Published", "load_manifest", "resolve", "write_snapshot"), "storekeeper.snapshots.manifest"
    ),
    **dict.fromkeys(
        ("new_version", "pointer_key", "publish", "read_pointer", "version_prefix"),
        "storekeeper.snapshots.pointer",
    ),
    "open_snapshot": "storekeeper.snapshots.reader",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
