"""`storekeeper.Reader`: query the published snapshot of a collection, stay fresh, never serve nothing.

A reader opens the published version (checksum-verified, through the readers' own bounded cache),
answers queries from it, and `refresh()` moves it to a newer version with one pointer read at most
every `refresh_interval` seconds: the new version is opened beside the old one and swapped in
atomically; the old one is closed once the queries using it end. A new version that cannot be
opened (corrupt, missing, reaped while we looked) is logged and retried with backoff while the
current one keeps serving; a version whose archive failed its checksum is not downloaded again
until its manifest or archive changes. Errors reach the caller only when there is nothing to serve.
See docs/readers.md.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from storekeeper import config, layout
from storekeeper.errors import (
    BucketNotFound,
    CorruptObject,
    DeltaRejected,
    NotFound,
    NotVisible,
    PointerTargetMissing,
    ReaderClosed,
    SnapshotUnavailable,
    StoreError,
    UnknownCollection,
    ValidationError,
)
from storekeeper.layout import check_collection
from storekeeper.models.snapshots import Manifest
from storekeeper.snapshots.cache import SnapshotCache
from storekeeper.snapshots.manifest import load_manifest
from storekeeper.snapshots.pointer import read_pointer
from storekeeper.snapshots.reader import OpenVersion, open_version
from storekeeper.stores.base import ObjectStore

log = logging.getLogger(__name__)

DEFAULT_REFRESH_S = 5.0
MAX_BACKOFF_S = 300.0
MAX_K = 10_000
_SHAPE = "must be a non-empty list of numbers, or of equally long lists of numbers"

__all__ = ["QueryResult", "Reader"]


@dataclass(frozen=True)
class QueryResult:
    """One list per query vector, nearest first, and the version that answered (None: empty collection)."""

    ids: list[list[str]]
    distances: list[list[float]]
    metadatas: list[list[dict[str, Any] | None]]
    documents: list[list[str | None]]
    version: str | None


@dataclass
class _Handle:
    opened: OpenVersion
    refs: int = 0
    retired: bool = False


@dataclass
class _Failure:
    """A version that could not be opened: when to try again, and what must change first."""

    error: StoreError
    signature: tuple[str, str] | None  # (manifest sha256, archive etag) of a checksum failure
    attempts: int = 1
    retry_at: float = 0.0


# failures are per process, not per reader: a new Reader (a Lambda retrying its init) skips them too
_FAILURES: dict[tuple[str, str, str], _Failure] = {}
_FAILURES_LOCK = threading.Lock()


def _open_store(store: ObjectStore | str) -> ObjectStore:
    if not isinstance(store, str):
        return store
    from storekeeper.stores import open_store

    return open_store(store, create=False)  # a mistyped file:// path must not become an empty store


class Reader:
    """Queries one collection's published snapshot; thread-safe; use as a context manager or `close()`.

    `store` is a store URL (`s3://bucket`, `supabase://bucket`, `file:///path`) or a store object.
    `version` pins one version (then `refresh` does nothing). `refresh_interval` (default
    STOREKEEPER_READER_REFRESH_S, else 5 s) is the least time between two pointer reads;
    `auto_refresh` makes `query` call `refresh()` itself. Raises UnknownCollection, BucketNotFound,
    SnapshotUnavailable or InvalidName when there is nothing to serve.
    """

    def __init__(
        self,
        store: ObjectStore | str,
        collection: str,
        *,
        version: str | None = None,
        cache: SnapshotCache | None = None,
        refresh_interval: float | None = None,
        auto_refresh: bool = True,
    ) -> None:
        self.collection = check_collection(collection)
        self.store = _open_store(store)
        self.cache = cache or SnapshotCache.for_readers()
        if refresh_interval is None:
            raw = os.environ.get(config.READER_REFRESH_S) or str(DEFAULT_REFRESH_S)
            try:
                refresh_interval = float(raw)
            except ValueError:
                raise ValidationError(config.READER_REFRESH_S, "must be a number of seconds", raw) from None
        if not math.isfinite(refresh_interval) or refresh_interval < 0:
            raise ValidationError("refresh_interval", "must be finite seconds >= 0", refresh_interval)
        self.refresh_interval = refresh_interval
        self.auto_refresh = auto_refresh and version is None
        self.pinned = version
        self._lock = threading.Lock()  # guards _current and the handles' reference counts
        self._refreshing = threading.Lock()  # one refresh at a time
        self._current: _Handle | None = None
        self._closed = False
        self._next_check = 0.0
        self._reads = 0  # pointer reads so far
        self._confirmed = 0  # the last pointer read that named the version we serve
        self.last_error: StoreError | None = None  # why the newest version is not served (None: it is)
        if version is not None:
            self._swap(self._open_pinned(version))
        else:
            self.refresh(force=True)

    # -- what is served ----------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """The version queries are answered from; None for an empty collection."""
        handle = self._current
        return handle.opened.version if handle else None

    @property
    def manifest(self) -> Manifest | None:
        handle = self._current
        return handle.opened.manifest if handle else None

    def _acquire(self) -> _Handle:
        with self._lock:
            if self._closed or self._current is None:
                raise ReaderClosed(f"reader of {self.collection} is closed")
            self._current.refs += 1
            return self._current

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.refs -= 1
            close = handle.retired and handle.refs == 0
        if close:
            handle.opened.close()

    def _swap(self, opened: OpenVersion) -> None:
        with self._lock:
            if self._closed:
                old: _Handle | None = _Handle(opened, retired=True)
            else:
                old, self._current = self._current, _Handle(opened)
            close = old is not None and not old.refs
            if old is not None:
                old.retired = True
        if close and old is not None:
            old.opened.close()
        if old is not None and old.opened is not opened:
            log.info("reader %s: serving %s (was %s)", self.collection, opened.version, old.opened.version)

    # -- refresh -----------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> bool:
        """Read the pointer (at most once per `refresh_interval` unless `force`) and swap to a newer
        version; True if the served version changed. Never raises while a version is being served."""
        if self._closed:
            raise ReaderClosed(f"reader of {self.collection} is closed")
        if self.pinned is not None:
            return False
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        if not self._refreshing.acquire(blocking=force or self._current is None):
            return False  # another thread is refreshing; keep serving meanwhile
        try:
            if not force and time.monotonic() < self._next_check:
                return False
            self._next_check = time.monotonic() + self.refresh_interval
            return self._refresh()
        finally:
            self._refreshing.release()

    def _read_pointer(self) -> str | None:
        version, _ = read_pointer(self.store, self.collection)
        self._reads += 1
        return version

    def _refresh(self) -> bool:
        try:
            version = self._read_pointer()
        except StoreError as exc:
            return self._failed(exc)
        if self._current is not None and version == self.version:
            self._confirmed = self._reads
            self.last_error = None
            return False
        if version is None:
            if self._current is not None:  # the pointer is never removed while a collection lives
                return self._failed(NotFound(self.store.url, None, "the pointer disappeared"))
            self._check_known()
            self._swap(open_version(self.store, self.collection, None, self.cache))
            self._confirmed = self._reads
            return True
        try:
            opened = self._open(version, re_resolve=True)
        except StoreError as exc:
            return self._failed(exc)
        self._swap(opened)
        self._confirmed = self._reads
        self.last_error = None
        return True

    def _failed(self, exc: StoreError) -> bool:
        """Keep serving what we have; with nothing to serve, say why."""
        self.last_error = exc
        if isinstance(exc, BucketNotFound | UnknownCollection) and self._current is None:
            raise exc
        if self._current is None:
            raise SnapshotUnavailable(
                self.store.url, exc.key, f"no version of {self.collection} can be served: {exc}"
            ) from exc
        log.warning("reader %s: keeps serving %s: %s", self.collection, self.version, exc)
        return False

    def _check_known(self) -> None:
        """No pointer: an empty collection if its config or a pending delta exists, else unknown."""
        c = self.collection
        try:
            self.store.get(layout.collection_config_key(c))
            return
        except BucketNotFound:
            raise
        except NotFound:
            pass
        if next(iter(self.store.list(layout.delta_prefix(c))), None) is not None:
            return
        raise UnknownCollection(
            self.store.url, layout.snapshot_prefix(c), f"no collection {c!r} (no snapshot, config or delta)"
        )

    def _open(self, version: str, *, re_resolve: bool) -> OpenVersion:
        key = (self.store.url, self.collection, version)
        with _FAILURES_LOCK:
            failure = _FAILURES.get(key)
        if failure is not None and time.monotonic() < failure.retry_at:
            raise failure.error
        try:
            manifest = load_manifest(self.store, self.collection, version)
            if failure is not None and failure.signature == self._signature(manifest):
                self._note_failure(key, failure.error, failure.signature)  # unchanged: not downloaded again
                raise failure.error
            opened = open_version(self.store, self.collection, manifest, self.cache)
        except (PointerTargetMissing, NotFound) as exc:
            if isinstance(exc, BucketNotFound):
                raise
            if re_resolve:  # published and reaped since we read the pointer? look once more
                newer = self._read_pointer()
                if newer is not None and newer != version:
                    return self._open(newer, re_resolve=False)
            self._note_failure(key, exc, None)
            raise
        except CorruptObject as exc:
            try:
                signature = self._signature(load_manifest(self.store, self.collection, version))
            except StoreError:
                signature = None
            self._note_failure(key, exc, signature)
            raise
        with _FAILURES_LOCK:
            _FAILURES.pop(key, None)
        return opened

    def _signature(self, manifest: Manifest) -> tuple[str, str]:
        return manifest.sha256, self.store.head(manifest.archive_key).etag

    def _note_failure(
        self, key: tuple[str, str, str], exc: StoreError, signature: tuple[str, str] | None
    ) -> None:
        with _FAILURES_LOCK:
            old = _FAILURES.get(key)
            attempts = old.attempts + 1 if old else 1
            delay = min(MAX_BACKOFF_S, max(1.0, self.refresh_interval) * 2 ** (attempts - 1))
            _FAILURES[key] = _Failure(exc, signature, attempts, time.monotonic() + delay)
        log.warning("reader %s: cannot open %s (retry in %.0f s): %s", key[1], key[2], delay, exc)

    def _open_pinned(self, version: str) -> OpenVersion:
        if not isinstance(version, str) or not layout.VERSION_RE.fullmatch(version):
            raise ValidationError("version", "must be <12-digit sequence>-<8 chars>", version)
        try:
            return self._open(version, re_resolve=False)
        except PointerTargetMissing as exc:
            raise NotFound(self.store.url, exc.key, f"no such snapshot version {version}") from exc

    # -- queries -----------------------------------------------------------------------------------
    def query(
        self,
        embeddings: Any,
        k: int = 10,
        *,
        where: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """The `k` nearest records to each vector (one vector, or a list of them), filtered by
        chromadb's `where` (metadata) and `where_document` expressions. Raises ValidationError for
        bad input (naming the field), ReaderClosed after `close()`."""
        vectors = _vectors(embeddings)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValidationError("k", f"must be an integer from 1 to {MAX_K}", k)
        for name, value in (("where", where), ("where_document", where_document)):
            if value is not None and not isinstance(value, Mapping):
                raise ValidationError(name, "must be a JSON object (chromadb filter)", value)
        if self.auto_refresh:
            self.refresh()
        handle = self._acquire()
        try:
            opened = handle.opened
            manifest = opened.manifest
            empty: list[list[Any]] = [[] for _ in vectors]
            if manifest is None or manifest.record_count == 0:
                return QueryResult(empty, [[] for _ in vectors], [[] for _ in vectors], list(empty), None)
            if manifest.dimension is not None and len(vectors[0]) != manifest.dimension:
                raise ValidationError(
                    "embeddings", f"have dimension {len(vectors[0])}, the collection has {manifest.dimension}"
                )
            try:
                res = opened.collection.query(
                    query_embeddings=vectors,
                    n_results=min(k, manifest.record_count),
                    where=dict(where) if where else None,
                    where_document=dict(where_document) if where_document else None,
                    include=["distances", "metadatas", "documents"],
                )
            except (ValueError, TypeError, _chroma_argument_error()) as exc:  # chromadb's verdict on a filter
                field_ = "where_document" if where_document and "document" in str(exc).lower() else "where"
                raise ValidationError(field_, str(exc).splitlines()[0][:200]) from None
            return QueryResult(
                ids=[list(x) for x in res["ids"]],
                distances=[[float(d) for d in x] for x in (res.get("distances") or empty)],
                metadatas=[[dict(m) if m else None for m in x] for x in (res.get("metadatas") or empty)],
                documents=[list(x) for x in (res.get("documents") or empty)],
                version=manifest.version,
            )
        finally:
            self._release(handle)

    def embedding(self, record_id: str) -> list[float] | None:
        """The stored vector of one record in the served version (None if it is not there)."""
        handle = self._acquire()
        try:
            if handle.opened.manifest is None:
                return None
            got = handle.opened.collection.get(ids=[record_id], include=["embeddings"])
            embs = got.get("embeddings")
            if embs is None or len(got["ids"]) == 0:
                return None
            return [float(x) for x in embs[0]]
        finally:
            self._release(handle)

    # -- read-your-writes ----------------------------------------------------------------------------
    def wait_visible(
        self, delta_ids: Iterable[str], timeout: float = 30.0, *, poll: float = 0.5
    ) -> str | None:
        """Return the served version once it holds every delta in `delta_ids` (the ids a put returned).

        A delta is held when the served version's ledger names it, or when its blob was already
        removed (which happens only after a version holding it was published) before a pointer
        read that named the served version. Raises DeltaRejected if one was quarantined,
        NotVisible after `timeout` seconds.
        """
        pending = set()
        for d in delta_ids:
            if not isinstance(d, str) or not layout.DELTA_ID_RE.fullmatch(d):
                raise ValidationError("delta_ids", "each must be a delta id (<13-digit ms>-<suffix>)", d)
            pending.add(d)
        if not math.isfinite(timeout) or timeout < 0:
            raise ValidationError("timeout", "must be a finite number of seconds >= 0", timeout)
        deadline = time.monotonic() + timeout
        gone: dict[str, int] = {}  # delta -> pointer reads done before its blob was seen gone
        c = self.collection

        def covered() -> set[str]:
            return self._ledger() | {d for d, reads in gone.items() if self._confirmed > reads}

        while True:
            pending -= covered()
            if not pending:
                return self.version
            for d in sorted(pending - gone.keys()):
                if not self.store.exists(layout.delta_key(c, d)):
                    if self.store.exists(layout.rejected_key(c, d)):
                        why = layout.rejected_reason_key(c, d)
                        raise DeltaRejected(f"delta {d} of {c} was rejected (the reason is in {why})")
                    gone[d] = self._reads
            if time.monotonic() >= deadline:
                why = f"; newest version not served: {self.last_error}" if self.last_error else ""
                raise NotVisible(
                    f"{len(pending)} delta(s) of {c} not visible after {timeout:g} s "
                    f"(serving {self.version}), e.g. {sorted(pending)[0]}{why}"
                )
            if self.pinned is None:
                self.refresh(force=True)
            if pending - covered():
                time.sleep(max(0.0, min(poll, deadline - time.monotonic())))

    def _ledger(self) -> set[str]:
        manifest = self.manifest
        return set(manifest.applied) | set(manifest.deltas) if manifest else set()

    # -- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the served version (closed once running queries end); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle, self._current = self._current, None
            close = handle is not None and handle.refs == 0
            if handle is not None:
                handle.retired = True
        if close and handle is not None:
            handle.opened.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Reader {self.store.url} {self.collection}@{self.version}>"


@functools.cache
def _chroma_argument_error() -> type[Exception]:
    from chromadb.errors import InvalidArgumentError  # loaded already once a version is open

    return InvalidArgumentError


def _vectors(embeddings: Any) -> Any:
    """One vector or a list of equally long ones, of finite numbers: else a ValidationError."""
    import numpy as np

    try:
        arr = np.asarray(embeddings)
    except (ValueError, TypeError) as exc:
        raise ValidationError("embeddings", f"{_SHAPE}: {exc}") from None
    if arr.dtype.kind not in "fiu" or arr.size == 0 or arr.ndim not in (1, 2):
        raise ValidationError("embeddings", _SHAPE)
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if not np.isfinite(arr).all():
        raise ValidationError("embeddings", "values must be finite (no NaN or inf)")
    return arr  # a float32 matrix, one row per query: chromadb takes it as it is
