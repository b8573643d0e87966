"""The local snapshot cache: extracted, checksum-verified versions shared by the processes of one machine.

Layout under the root::

    entries/<c>/<version>/{tree/, entry.json}   pristine trees, installed by one atomic rename
    locks/<c>/<version>.lock                    flock: shared while in use, exclusive to install/evict/take
    procs/<token>.lock                          held (exclusive) by each live process using the cache
    staging/ work/ live/ trash/ <token>-...     temp dirs, named after the process that owns them

Why locks: a process may only replace or remove an entry under its exclusive lock, and users hold a
shared lock for as long as they read an entry, so an install never deletes a valid entry someone
else installed and an entry in use is never evicted or taken. Temp dirs of a process that died
(kill -9, a Lambda timeout) are found by their free `procs/` lock and removed by the next process.
The bytes themselves are verified once, against the manifest's sha256, when an entry is made; a
stat stamp of every file (`_tree_stamp`) is checked before each use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storekeeper import config
from storekeeper.errors import CorruptObject
from storekeeper.models.snapshots import Manifest
from storekeeper.snapshots.archive import extract_verified, fetch_archive
from storekeeper.stores.base import ObjectStore

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = "/tmp/storekeeper-cache"  # the compactor's
DEFAULT_CACHE_ENTRIES = 3
DEFAULT_READER_CACHE_DIR = "/tmp/storekeeper-reader"
#: Lambda's /tmp is 512 MB unless configured: leave room for one download in flight beside the cache
DEFAULT_READER_CACHE_BYTES = 384 * 1024**2
DEFAULT_READER_CACHE_ENTRIES = 16
STALE_TEMP_SECONDS = 3600.0  # temp dirs of an unknown owner this old are abandoned (no run lasts an hour)
_TEMP_KINDS = ("staging", "work", "live", "readers", "trash")
_LEASE_ATTEMPTS = 4
_TOKENS: dict[tuple[str, int], str] = {}  # (cache root, pid) -> this process's token there
_TOKENS_LOCK = threading.Lock()


# -- file locks ----------------------------------------------------------------------------------
def _flock(path: Path, *, shared: bool, blocking: bool) -> int | None:
    """An fd holding flock on `path` (created if missing); None if non-blocking and busy.

    A lock file may be unlinked by whoever holds it exclusively (eviction): after locking we check
    that the path still names the inode we locked, else we lock the new file instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the last fd of an open file description drops its flock


# -- trees ---------------------------------------------------------------------------------------
def _tree_stamp(tree: Path) -> dict[str, list[int]]:
    """Per file: size, inode, mtime_ns and ctime_ns. Any write, truncate, replace or chmod moves one
    of them (ctime cannot be set back from user space), so it detects what a per-file sha256 would
    for a private /tmp cache — changed, missing or extra files — without reading 200+ MB per use."""
    out: dict[str, list[int]] = {}
    for p in sorted(tree.rglob("*")):
        st = p.lstat()
        if not p.is_dir() or p.is_symlink():
            out[p.relative_to(tree).as_posix()] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    return out


def _rmtree_atomic(path: Path) -> None:
    """Rename away first, so nobody sees a half-deleted entry."""
    trash = path.with_name(f".trash-{uuid.uuid4().hex}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


@dataclass
class Lease:
    """A verified tree of one version, safe to read until `release()`: shared-locked in the cache, or
    a private copy (when the shared entry could not be installed) removed on release."""

    manifest: Manifest
    tree: Path
    _fd: int | None = None
    _private: Path | None = None
    released: bool = field(default=False)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        _unlock(self._fd)
        self._fd = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SnapshotCache:
    """Extracted snapshots by version, bounded by entries and (optionally) bytes, least recently used
    first; entries in use are never evicted. Entries are pristine: nobody opens Chroma inside them
    (Chroma writes on open). The compactor `take`s the parent it builds on and `adopt`s what it
    publishes; readers `lease` (see `storekeeper.reader`)."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        max_bytes: int | None = None,
    ) -> None:
        self.root = Path(root or os.environ.get(config.COMPACTOR_CACHE_DIR) or DEFAULT_CACHE_DIR)
        self.max_entries = max(1, max_entries)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.downloads = 0  # archives fetched from the store (tests and logs read it)
        self._prune_abandoned()

    @classmethod
    def for_readers(cls, root: Path | str | None = None, *, max_bytes: int | None = None) -> SnapshotCache:
        """The readers' own cache: STOREKEEPER_READER_CACHE_DIR and STOREKEEPER_READER_CACHE_BYTES."""
        return cls(
            root or os.environ.get(config.READER_CACHE_DIR) or DEFAULT_READER_CACHE_DIR,
            max_entries=DEFAULT_READER_CACHE_ENTRIES,
            max_bytes=max_bytes
            if max_bytes is not None
            else config.env_int(config.READER_CACHE_BYTES, DEFAULT_READER_CACHE_BYTES),
        )

    # -- process ownership of temp dirs ------------------------------------------------------------
    @property
    def token(self) -> str:
        """This process's name in temp dirs (one per cache root and process); its `procs/` lock is
        held for the life of the process, so others can tell it lives."""
        key = (str(self.root), os.getpid())
        with _TOKENS_LOCK:
            if key not in _TOKENS:
                token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
                _flock(self.root / "procs" / f"{token}.lock", shared=False, blocking=True)  # kept open
                _TOKENS[key] = token
            return _TOKENS[key]

    def _prune_abandoned(self, older_than_s: float = STALE_TEMP_SECONDS) -> None:
        """Remove temp dirs whose owner died: its procs lock is free (or, unowned, very old).

        Liveness is judged after a dir was seen: an owner makes its dirs only once it holds its
        lock, so a dir whose owner's lock we can take belongs to a dead process.
        """
        procs = self.root / "procs"
        verdicts: dict[str, bool] = {}  # owner -> dead
        now = time.time()
        for kind in _TEMP_KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for d in base.iterdir():
                owner = "-".join(d.name.split("-", 2)[:2])
                lock = procs / f"{owner}.lock"
                if owner not in verdicts:
                    fd = _flock(lock, shared=False, blocking=False) if lock.exists() else None
                    verdicts[owner] = fd is not None
                    _unlock(fd)
                with contextlib.suppress(OSError):
                    if verdicts[owner] or (not lock.exists() and now - d.stat().st_mtime > older_than_s):
                        shutil.rmtree(d, ignore_errors=True)
        if procs.is_dir():
            for lock in procs.glob("*.lock"):  # then the locks of the dead (their dirs are gone)
                fd = _flock(lock, shared=False, blocking=False)
                if fd is not None:
                    with contextlib.suppress(OSError):
                        lock.unlink()
                    _unlock(fd)

    def tempdir(self, kind: str) -> Path:
        base = self.root / kind
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{self.token}-", dir=base))

    # -- entries -----------------------------------------------------------------------------------
    def entry(self, manifest: Manifest) -> Path:
        return self.root / "entries" / manifest.collection / manifest.version

    def _lock_path(self, collection: str, version: str) -> Path:
        return self.root / "locks" / collection / f"{version}.lock"

    def _valid(self, entry: Path, manifest: Manifest) -> bool:
        try:
            marker = json.loads((entry / "entry.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return False
        if marker.get("sha256") != manifest.sha256:
            return False
        try:
            return bool(marker.get("stat") == _tree_stamp(entry / "tree"))
        except FileNotFoundError:  # evicted while we looked
            return False

    def intact(self, lease: Lease) -> bool:
        """The leased tree is as it was verified (a stat of each file, no hashing): a private copy is
        ours alone; a shared entry is checked against its stamp."""
        return lease._private is not None or self._valid(lease.tree.parent, lease.manifest)

    def entries(self) -> list[tuple[Path, int]]:
        """(entry, bytes) of every installed entry, least recently used first."""
        found = []
        for p in (self.root / "entries").glob("*/*"):
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                marker = json.loads((p / "entry.json").read_text())
                found.append((p.stat().st_mtime, p, int(marker.get("bytes", 0))))
            except (OSError, ValueError):
                continue
        return [(p, size) for _, p, size in sorted(found, key=lambda t: t[0])]

    def size(self) -> int:
        """Bytes held by installed entries."""
        return sum(size for _, size in self.entries())

    def _install(self, staging: Path, manifest: Manifest) -> bool:
        """Rename `staging` into place under the entry's exclusive lock. A valid entry already there
        (another process won) is kept and ours discarded; an invalid one is replaced. False when the
        lock is held by users of the current entry (then it stays as it is)."""
        stamp = _tree_stamp(staging / "tree")
        (staging / "entry.json").write_text(
            json.dumps({"sha256": manifest.sha256, "bytes": sum(s[0] for s in stamp.values()), "stat": stamp})
        )
        final = self.entry(manifest)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd = _flock(self._lock_path(manifest.collection, manifest.version), shared=False, blocking=False)
        if fd is None:  # in use: whoever holds it verified it; the caller adopts or goes private
            return self._valid(final, manifest)
        try:
            if self._valid(final, manifest):
                return True  # another process installed it first: keep theirs
            if final.exists():
                _rmtree_atomic(final)  # stale or corrupt, and nobody uses it (we hold the lock)
            staging.rename(final)
        finally:
            _unlock(fd)
        self._evict(keep=final)
        return True

    def _evict(self, keep: Path, room: int = 0) -> None:
        """Remove least recently used entries nobody uses until both limits (and `room` more bytes) fit."""
        entries = self.entries()
        total = sum(size for _, size in entries)
        count = len(entries)
        for path, size in entries:
            over_bytes = self.max_bytes is not None and total + room > self.max_bytes
            if count <= self.max_entries and not over_bytes:
                return
            if path == keep:
                continue
            if not self._evict_unused(path):
                continue  # in use
            total -= size
            count -= 1
        if self.max_bytes is not None and total + room > self.max_bytes:
            log.warning(
                "snapshot cache %s: %d bytes in use, over its limit of %d", self.root, total, self.max_bytes
            )

    def _evict_unused(self, path: Path) -> bool:
        """Remove one entry under its exclusive lock; False (nothing done) when someone uses it."""
        lock = self._lock_path(path.parent.name, path.name)
        fd = _flock(lock, shared=False, blocking=False)
        if fd is None:
            return False
        try:
            _rmtree_atomic(path)
            with contextlib.suppress(OSError):
                lock.unlink()  # waiters re-check the inode (see _flock)
        finally:
            _unlock(fd)
        return True

    def make_room(
        self, free_needed: int, *, keep: Path | None = None, free_bytes: Callable[[Path], int] | None = None
    ) -> int:
        """Before a compaction: remove temp dirs of dead processes, then evict least recently used
        entries nobody uses (never `keep`) until `free_needed` bytes are free on the cache's disk.
        Returns the free bytes then (the caller decides what too little means)."""
        free_of = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._prune_abandoned()
        free = free_of(self.root)
        for path, _size in self.entries():
            if free >= free_needed:
                break
            if path == keep:
                continue
            if not self._evict_unused(path):
                continue  # in use
            free = free_of(self.root)
        return free

    def _download(self, store: ObjectStore, manifest: Manifest) -> Path:
        """Fetch, then extract and verify (in one pass over the archive) into a fresh staging dir
        (`<staging>/tree`), removed on any failure; the caller installs it."""
        if self.max_bytes is not None:  # the archive and its tree land beside the cache
            self._evict(keep=self.entry(manifest), room=2 * manifest.size)
        staging = self.tempdir("staging")
        try:
            archive = staging / manifest.archive
            try:
                fetch_archive(store, manifest, archive)
            finally:
                if archive.exists():  # fetched, verified or not (a corrupt one counts too)
                    self.downloads += 1
            (staging / "tree").mkdir()
            extract_verified(store, manifest, archive, staging / "tree")  # nothing kept unless it matches
            archive.unlink()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def lease(self, store: ObjectStore, manifest: Manifest) -> Lease:
        """The verified tree of `manifest`, downloaded on a miss, safe to read until released.

        Concurrent cold opens of one version by many processes all succeed: the first install wins,
        the others adopt it (their own download is dropped). If the shared entry cannot be used
        (replaced or evicted each time we looked) the tree is served from a private copy instead.
        """
        lock = self._lock_path(manifest.collection, manifest.version)
        entry = self.entry(manifest)
        staging: Path | None = None
        try:
            for _ in range(_LEASE_ATTEMPTS):
                fd = _flock(lock, shared=True, blocking=True)
                if self._valid(entry, manifest):
                    with contextlib.suppress(OSError):
                        os.utime(entry)
                    return Lease(manifest, entry / "tree", _fd=fd)
                _unlock(fd)
                if staging is None:
                    staging = self._download(store, manifest)
                if self._install(staging, manifest) and not staging.exists():
                    staging = None  # renamed into place; otherwise ours is dropped below
            if staging is None:
                staging = self._download(store, manifest)
            log.warning("snapshot cache entry %s kept changing; serving a private copy", entry)
            private, staging = staging, None
            return Lease(manifest, private / "tree", _private=private)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def fetch(self, store: ObjectStore, manifest: Manifest) -> Path:
        """The verified pristine tree of `manifest` (downloaded and extracted on a miss). Do not open
        it, and prefer `lease`: without one the entry may be evicted at any time."""
        with self.lease(store, manifest) as lease:
            if lease._private is None:
                return lease.tree
        raise CorruptObject(str(self.root), str(self.entry(manifest)), "cache entry kept changing")

    def checkout(self, store: ObjectStore, manifest: Manifest, dest: Path) -> None:
        """Copy the verified tree of `manifest` into `dest` (which must not exist) for private use."""
        with self.lease(store, manifest) as lease:
            shutil.copytree(lease.tree, dest)

    def take(self, store: ObjectStore, manifest: Manifest, dest: Path) -> None:
        """Move the verified tree of `manifest` to `dest` (which must not exist): the entry leaves
        the cache. For a compactor, which adopts the tree it publishes next, this saves copying the
        whole snapshot. An entry in use by readers is copied instead (they keep theirs)."""
        lock = self._lock_path(manifest.collection, manifest.version)
        entry = self.entry(manifest)
        for _ in range(_LEASE_ATTEMPTS):
            fd = _flock(lock, shared=False, blocking=False)
            if fd is None:
                break  # readers use it
            try:
                if self._valid(entry, manifest):
                    claimed = entry.with_name(f".taken-{uuid.uuid4().hex}")
                    entry.rename(claimed)
                    (claimed / "tree").rename(dest)
                    shutil.rmtree(claimed, ignore_errors=True)
                    return
            finally:
                _unlock(fd)
            staging = self._download(store, manifest)
            try:
                self._install(staging, manifest)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self.checkout(store, manifest, dest)

    def adopt(self, manifest: Manifest, tree: Path) -> None:
        """Take a tree we just packed and published as the entry for its version (saves a download)."""
        staging = self.tempdir("staging")
        try:
            tree.rename(staging / "tree")
            self._install(staging, manifest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
