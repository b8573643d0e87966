"""Opening one version with chromadb for reading, without copying the snapshot.

Chroma writes its SQLite file when it opens a persist dir (the HNSW segment files are only read),
so a reader gets a *view*: a private dir holding a copy of the top-level files (the SQLite
database) and symlinks to the segment dirs of the leased, pristine cache entry. The lease keeps
the entry from being evicted or taken while the view is open.

One view per version per process: every `storekeeper.Reader` (and `open_snapshot`) of a version
shares one opened view, counted by reference; the last release closes its client and releases its
lease. Its dir is then *parked* — closed, not removed — while no other version of the collection is
open in the process, so the next open of that version reopens the same path: no SQLite copy, and
chromadb reopens a persist dir it opened before in a fraction of the time of a new one (measured in
docs/performance.md). One parked dir per collection at most; it goes when another version of the
collection opens, at exit, or (process killed) with the process's other temp dirs. Views that are
done with are renamed into `trash/` and removed by a background thread, off the request path.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storekeeper.errors import NotFound, PointerTargetMissing
from storekeeper.layout import manifest_key
from storekeeper.models.snapshots import Manifest
from storekeeper.names import check_collection
from storekeeper.snapshots.cache import Lease, SnapshotCache
from storekeeper.snapshots.manifest import load_manifest, resolve
from storekeeper.stores.base import ObjectStore

log = logging.getLogger(__name__)

_Key = tuple[str, str, str, str]  # cache root, collection, version, sha256


def _make_view(tree: Path, view: Path) -> None:
    for child in sorted(tree.iterdir()):
        if child.is_dir():
            (view / child.name).symlink_to(child.resolve(), target_is_directory=True)
        else:
            shutil.copyfile(child, view / child.name)


def _view_fits(tree: Path, view: Path) -> bool:
    """A parked view still matches the leased tree: the same names, its dirs linked to the tree's."""
    try:
        names = {c.name for c in view.iterdir()}
        for child in tree.iterdir():
            names.discard(child.name)
            mine = view / child.name
            if child.is_dir() and (not mine.is_symlink() or Path(os.readlink(mine)) != child.resolve()):
                return False
            if not child.is_dir() and (mine.is_symlink() or not mine.is_file()):
                return False
    except OSError:
        return False
    return not names


# -- removal off the request path ----------------------------------------------------------------
class _Remover:
    """One daemon thread removing dirs already renamed into `trash/` (a killed process's trash is
    pruned by the next one, like its other temp dirs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[Path] = queue.Queue()
        self._pid = 0

    def discard(self, root: Path, path: Path) -> None:
        trash = root / "trash" / path.name
        try:
            trash.parent.mkdir(parents=True, exist_ok=True)
            path.rename(trash)
        except FileNotFoundError:
            return
        except OSError:
            trash = path  # cannot rename (another file system?): remove it where it is
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: the thread is not ours
                self._queue = queue.Queue()
                worker = threading.Thread(target=self._run, args=(self._queue,), name="sk-views", daemon=True)
                worker.start()
                self._pid = os.getpid()
            self._queue.put(trash)

    @staticmethod
    def _run(q: queue.Queue[Path]) -> None:
        while True:
            path = q.get()
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                q.task_done()

    def wait(self) -> None:
        """Until every dir handed over so far is removed."""
        with self._lock:
            q = self._queue if self._pid == os.getpid() else None
        if q is not None:
            q.join()


_REMOVER = _Remover()


# -- views shared per process --------------------------------------------------------------------
@dataclass(eq=False)
class _View:
    key: _Key
    root: Path
    manifest: Manifest
    client: Any
    collection: Any
    path: Path
    lease: Lease
    refs: int = 1
    detached: bool = False  # replaced in the registry (its entry changed): never parked


@dataclass
class _Views:
    """The opened views of this process by (cache root, collection, version, sha256)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    open: dict[_Key, _View] = field(default_factory=dict)
    parked: dict[tuple[str, str], tuple[_Key, Path]] = field(default_factory=dict)
    opening: dict[_Key, threading.Lock] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)

    def _forked(self) -> None:
        """A forked child shares none of its parent's clients (nor their locks): start empty."""
        if self.pid != os.getpid():
            self.lock = threading.Lock()
            self.open, self.parked, self.opening, self.pid = {}, {}, {}, os.getpid()

    def acquire(self, store: ObjectStore, collection: str, manifest: Manifest, cache: SnapshotCache) -> _View:
        key = (str(cache.root), collection, manifest.version, manifest.sha256)
        self._forked()
        with self.lock:
            view = self._share(key, cache)
            if view is not None:
                return view
            gate = self.opening.setdefault(key, threading.Lock())
        with gate:  # one thread opens a version, the others of this process then share it
            with self.lock:
                view = self._share(key, cache)
                if view is not None:
                    return view
                parked = self._unpark(key)
            try:
                view = self._open(store, collection, manifest, cache, key, parked)
            finally:
                with self.lock:
                    self.opening.pop(key, None)
            with self.lock:
                self.open[key] = view
            return view

    def _share(self, key: _Key, cache: SnapshotCache) -> _View | None:
        """The open view of `key` with one more reference, if its entry is still intact (a stat of
        each file, no hashing); a changed one is left to its current users and replaced."""
        view = self.open.get(key)
        if view is None:
            return None
        if cache.intact(view.lease):
            view.refs += 1
            return view
        log.warning("snapshot view %s: its cache entry changed; opening it again", view.path)
        del self.open[key]
        view.detached = True
        return None

    def _unpark(self, key: _Key) -> Path | None:
        """The parked dir of `key`, if that is what is parked for its collection; another version's
        parked dir is removed (opening a version means the process has moved on)."""
        parked = self.parked.pop(key[:2], None)
        if parked is None:
            return None
        if parked[0] == key:
            return parked[1]
        _REMOVER.discard(Path(key[0]), parked[1])
        return None

    @staticmethod
    def _open(
        store: ObjectStore,
        collection: str,
        manifest: Manifest,
        cache: SnapshotCache,
        key: _Key,
        parked: Path | None,
    ) -> _View:
        lease, path, client, col = _open_view(store, collection, manifest, cache, parked)
        return _View(key, cache.root, manifest, client, col, path, lease)

    def release(self, view: _View) -> None:
        with self.lock:
            view.refs -= 1
            if view.refs > 0:
                return
            if self.open.get(view.key) is view:
                del self.open[view.key]
        with contextlib.suppress(Exception):
            view.client.close()
        view.client = view.collection = None
        view.lease.release()
        with self.lock:  # park it unless this collection is open in another view meanwhile
            park = not view.detached and self.pid == os.getpid()
            park = park and not any(k[:2] == view.key[:2] for k in (*self.open, *self.opening))
            old = self.parked.pop(view.key[:2], None) if park else None
            if park:
                self.parked[view.key[:2]] = (view.key, view.path)
        if old is not None:
            _REMOVER.discard(view.root, old[1])
        if not park:
            _REMOVER.discard(view.root, view.path)

    def clear_parked(self) -> None:
        """Remove every parked dir now (at exit; tests)."""
        with self.lock:
            parked = list(self.parked.items()) if self.pid == os.getpid() else []
            self.parked.clear()
        for (root, _), (_, path) in parked:
            _REMOVER.discard(Path(root), path)
        _REMOVER.wait()


_VIEWS = _Views()


def _open_view(
    store: ObjectStore, collection: str, manifest: Manifest, cache: SnapshotCache, parked: Path | None = None
) -> tuple[Lease, Path, Any, Any]:
    """Lease the verified tree, make a view of it (or reuse `parked` if it still fits) and open it:
    (lease, view dir, client, collection). On failure nothing is left held or behind."""
    from storekeeper import chroma

    lease = cache.lease(store, manifest)
    path = parked
    client = None
    try:
        if path is not None and not _view_fits(lease.tree, path):
            _REMOVER.discard(cache.root, path)
            path = None
        if path is None:
            path = cache.tempdir("live")
            _make_view(lease.tree, path)
        client = chroma.open_client(path)
        return lease, path, client, chroma.get(client, collection)
    except BaseException:
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()
        lease.release()
        if path is not None:
            _REMOVER.discard(cache.root, path)
        raise


def settle() -> None:
    """Wait until views released so far are removed from disk (tests measure disk after this)."""
    _REMOVER.wait()


@dataclass
class OpenVersion:
    """A chromadb collection of one version (None: the empty collection), and what keeps it alive.

    Versions are shared views (see the module's docstring); the empty collection is private."""

    manifest: Manifest | None
    client: Any
    collection: Any
    view: Path
    lease: Lease | None
    _shared: _View | None = None
    _closed: bool = False

    @property
    def version(self) -> str | None:
        return self.manifest.version if self.manifest else None

    def close(self) -> None:
        """Drop this reference; the last one closes the client and releases the entry. Idempotent."""
        if self._closed:
            return
        self._closed = True
        client, shared = self.client, self._shared
        self.client = self.collection = self._shared = None
        if shared is not None:
            _VIEWS.release(shared)
            return
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()
        if self.lease is not None:
            self.lease.release()
        shutil.rmtree(self.view, ignore_errors=True)


def open_version(
    store: ObjectStore,
    collection: str,
    manifest: Manifest | None,
    cache: SnapshotCache,
    *,
    shared: bool = True,
) -> OpenVersion:
    """A view of `manifest`'s verified tree (leased, downloaded on a miss); an empty collection for
    None. `shared`: the process's one view of that version, for users that only read (Readers);
    otherwise a private view, whose writes nobody else sees."""
    from storekeeper import chroma

    if manifest is not None and shared:
        view = _VIEWS.acquire(store, collection, manifest, cache)
        return OpenVersion(manifest, view.client, view.collection, view.path, view.lease, view)
    if manifest is not None:
        lease, path, client, col = _open_view(store, collection, manifest, cache)
        return OpenVersion(manifest, client, col, path, lease)
    path = cache.tempdir("live")
    client = None
    try:
        client = chroma.open_client(path)
        return OpenVersion(None, client, chroma.get_or_create(client, collection, "l2"), path, None)
    except BaseException:
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()
        shutil.rmtree(path, ignore_errors=True)
        raise


_OPENED: list[OpenVersion] = []
_OPENED_LOCK = threading.Lock()


def _close_opened() -> None:
    with _OPENED_LOCK:
        while _OPENED:
            _OPENED.pop().close()
    _VIEWS.clear_parked()


atexit.register(_close_opened)


def open_snapshot(
    store: ObjectStore | str,
    collection: str,
    version: str | None = None,
    *,
    cache: SnapshotCache | None = None,
) -> Any:
    """A chromadb Collection of the published (or the pinned) version, checksum-verified.

    No pointer means an empty collection. Writes to it never reach the store, the cache or any
    Reader (it is a private view). It stays open until the process exits: long-lived programs
    use `storekeeper.Reader`.
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
    opened = open_version(store, collection, manifest, cache or SnapshotCache.for_readers(), shared=False)
    with _OPENED_LOCK:
        _OPENED.append(opened)
    return opened.collection
