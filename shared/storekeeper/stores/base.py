"""One interface for every object-store backend.

Correctness of the whole product rests on `put(..., if_none_match=True)` and
`put(..., if_match=etag)`: each backend must make them atomic (server-side
conditional PUT on S3, a lock + compare on the local disk) and surface a lost
race as `PreconditionFailed`, never as a silent overwrite.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from storekeeper.lazy import lazy_exports
from storekeeper.names import check_bucket, check_key, check_prefix

if TYPE_CHECKING:
    from storekeeper.stores.results import BucketInfo as BucketInfo
    from storekeeper.stores.results import DeleteResult as DeleteResult
    from storekeeper.stores.results import IncompleteUpload as IncompleteUpload
    from storekeeper.stores.results import ObjectVersion as ObjectVersion
    from storekeeper.stores.results import Usage as Usage

#: named here as before, created on first use (storekeeper.stores.results says why)
RESULTS = dict.fromkeys(
    ("BucketInfo", "DeleteResult", "IncompleteUpload", "ObjectVersion", "Usage"), "storekeeper.stores.results"
)
__getattr__, __dir__ = lazy_exports(__name__, RESULTS)


class ObjectInfo(NamedTuple):
    key: str
    size: int
    etag: str
    last_modified: datetime
    metadata: dict[str, str] | None = None  # only filled by head(); listings leave it None


class GetResult(NamedTuple):
    body: bytes
    etag: str
    metadata: dict[str, str]  # the object's user metadata ({} when it has none)


def key_before(key: str) -> str | None:
    """A string that sorts before `key` and after almost everything smaller.

    S3's StartAfter / KeyMarker are exclusive: listing from `key_before(k)` starts at `k`.
    """
    last = ord(key[-1])
    if last > 33 and not 0xDC00 <= last - 1 <= 0xDFFF:
        return key[:-1] + chr(last - 1)
    return key[:-1] or None


class RequestCounter:
    """Counts backend requests by operation; benchmarks and tests read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.counts[op] = self.counts.get(op, 0) + n

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class ObjectStore(ABC):
    """A bucket on one backend. Keys are validated here, before any I/O."""

    scheme: str = ""
    #: the largest number of keys one bulk-delete request may carry
    max_delete_batch: int = 1

    def __init__(self, bucket: str, *, counter: RequestCounter | None = None) -> None:
        self.bucket = check_bucket(bucket) if self.scheme != "file" else bucket
        self.requests = counter or RequestCounter()

    # -- identity -----------------------------------------------------------
    def own_attempts(self) -> int:
        """Tries one call makes by itself (a client's retry mode): a retry loop around it divides
        `netconfig.max_attempts()` by this (`netconfig.outer_attempts`)."""
        return 1

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @abstractmethod
    def for_bucket(self, bucket: str) -> ObjectStore:
        """The same backend and credentials, another bucket (overflow buckets)."""

    # -- objects ------------------------------------------------------------
    def get(self, key: str) -> GetResult:
        return self._get(check_key(key))

    def get_version(self, key: str, version_id: str) -> GetResult:
        """One version of an object (an S3 event names the version it is about)."""
        return self._get_version(check_key(key), version_id)

    def delete_version(self, key: str, version_id: str) -> None:
        """Delete exactly one version for good (a newer upload to the key stays)."""
        self._delete_version(check_key(key), version_id)

    def _get_version(self, key: str, version_id: str) -> GetResult:
        from storekeeper.errors import BackendError

        raise BackendError(
            self.url, key, f"{self.scheme}:// has no object versions (asked for {version_id!r})"
        )

    def _delete_version(self, key: str, version_id: str) -> None:
        from storekeeper.errors import BackendError

        raise BackendError(
            self.url, key, f"{self.scheme}:// has no object versions (asked for {version_id!r})"
        )

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write `data`; returns the new etag. Conditional forms raise PreconditionFailed on a lost race."""
        if if_none_match and if_match is not None:
            raise ValueError("if_none_match and if_match are exclusive")
        return self._put(check_key(key), data, if_none_match, if_match, content_type, metadata or {})

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Upload a (large) local file; backends stream it where they can.

        `if_none_match=True` is create-only, as for `put` (PreconditionFailed if the key exists).
        """
        return self._put_file(check_key(key), Path(path), content_type, metadata or {}, if_none_match)

    def _put_file(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str], if_none_match: bool
    ) -> str:
        """Backend hook for put_file (key already checked); by default the file goes through `_put`."""
        return self._put(key, path.read_bytes(), if_none_match, None, content_type, metadata)

    def get_file(self, key: str, path: Path) -> str:
        """Download to `path` (written whole via a unique temp file, then renamed); returns the etag.
        Backends stream it: a snapshot archive is never held in memory whole."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            etag = self._get_file(check_key(key), tmp)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return etag

    def _get_file(self, key: str, path: Path) -> str:
        """Backend hook for get_file (key already checked): write the body to `path`, return its etag.
        By default the body goes through `_get` (in memory); backends override it to stream."""
        res = self._get(key)
        path.write_bytes(res.body)
        return res.etag

    def head(self, key: str) -> ObjectInfo:
        return self._head(check_key(key))

    def exists(self, key: str) -> bool:
        from storekeeper.errors import BucketNotFound, NotFound

        try:
            self.head(key)
        except BucketNotFound:
            raise  # a missing bucket is not a missing object
        except NotFound:
            return False
        return True

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete one object; deleting a missing object is not an error (idempotent)."""
        self._delete(check_key(key), if_match)

    def delete_many(self, keys: Iterable[str], *, sizes: Mapping[str, int] | None = None) -> DeleteResult:
        """Delete in the largest batches the backend allows; per-key errors are collected, not raised.

        `sizes` (key -> bytes, as listed when the delete was decided) count `bytes_freed`.
        """
        from storekeeper.stores.results import DeleteResult

        checked = [check_key(k) for k in keys]
        result = DeleteResult()
        for i in range(0, len(checked), self.max_delete_batch):
            self._delete_batch(checked[i : i + self.max_delete_batch], result)
            result.requests += 1
        if sizes and result.deleted and not self.versioned:
            result.bytes_freed = sum(sizes.get(k, 0) for k in result.deleted)
        return result

    def purge_many(
        self,
        keys: Iterable[str],
        *,
        etags: Mapping[str, str] | None = None,
        sizes: Mapping[str, int] | None = None,
    ) -> DeleteResult:
        """Delete for good: on a versioned bucket every version of each key goes (by VersionId).

        For what the layout says is finished with (applied deltas, reaped snapshot versions)
        once its guards have passed: a plain delete there would only add a delete marker and
        leave the bytes billed. Only the versions seen by the listing are deleted, so a write
        that lands meanwhile survives; a key whose current etag is no longer `etags[key]` is
        kept whole (`DeleteResult.kept`; `""` keeps any current object: only delete-marked
        leftovers go). Unversioned backends: the same as `delete_many` (`sizes` as there); on a
        versioned bucket `bytes_freed` is the size of every version removed, as the version listing
        made here says.
        """
        from storekeeper.stores.results import DeleteResult

        checked = sorted({check_key(k) for k in keys})
        if not checked:
            return DeleteResult()
        if not self.versioned:
            return self.delete_many(checked, sizes=sizes)
        return self._purge(checked, dict(etags or {}))

    @property
    def versioned(self) -> bool:
        """True when the bucket keeps older versions (versioning enabled or suspended)."""
        return False

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, in key order, following every page."""
        return self._list(check_prefix(prefix), start_after)

    def list_level(
        self, prefix: str = "", *, limit: int | None = None
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str]] | None:
        """One '/'-delimited level: the objects directly under `prefix` and its sub-prefixes, in key order.

        `limit`: None once more than that many entries (objects and sub-prefixes) were listed, so a
        flat prefix of millions of keys is never held whole by a listing nothing budgets."""
        return self._list_delimited(check_prefix(prefix), limit)

    def _list_delimited(
        self, prefix: str, limit: int | None = None
    ) -> tuple[builtins.list[ObjectInfo], builtins.list[str]] | None:
        """Backends without a delimiter listing derive the level from a full listing (`limit`: of the
        keys read)."""
        objects: builtins.list[ObjectInfo] = []
        subs: builtins.list[str] = []
        for n, info in enumerate(self._list(prefix, None), 1):
            if limit is not None and n > limit:
                return None
            slash = info.key.find("/", len(prefix))
            if slash < 0:
                objects.append(info)
            elif not subs or subs[-1] != info.key[: slash + 1]:
                subs.append(info.key[: slash + 1])
        return objects, subs

    def list_versions(self, prefix: str = "", *, key_marker: str | None = None) -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix` (keys after `key_marker`), key order, newest first
        within a key. Unversioned backends list their current objects as the only versions."""
        from storekeeper.stores.results import ObjectVersion

        check_prefix(prefix)
        if self.versioned:
            return self._list_versions(prefix, key_marker)
        return (
            ObjectVersion(i.key, "null", i.size, i.etag, i.last_modified, is_latest=True)
            for i in self._list(prefix, key_marker)
        )

    def usage(self, prefix: str = "") -> Usage:
        """Current bytes and objects; on a versioned bucket noncurrent versions and delete markers too."""
        from storekeeper.stores.results import Usage

        total = count = old_bytes = old = markers = 0
        if self.versioned:
            for v in self.list_versions(prefix):
                if v.delete_marker:
                    markers += 1
                elif v.is_latest:
                    total += v.size
                    count += 1
                else:
                    old_bytes += v.size
                    old += 1
        else:
            for info in self.list(prefix):
                total += info.size
                count += 1
        return Usage(total, count, old_bytes, old, markers)

    # -- incomplete uploads (optional capability) -----------------------------
    def list_incomplete_uploads(self, prefix: str = "") -> builtins.list[IncompleteUpload]:
        """Uploads begun and never completed, every page. Backends without them return []."""
        return self._list_incomplete_uploads(check_prefix(prefix))

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one incomplete upload (its parts are freed); an upload already gone is not an error."""
        self._abort_upload(check_key(key), upload_id)

    def _list_incomplete_uploads(self, prefix: str) -> builtins.list[IncompleteUpload]:
        return []

    def _abort_upload(self, key: str, upload_id: str) -> None:
        from storekeeper.errors import BackendError

        raise BackendError(self.url, key, f"{self.scheme} has no incomplete uploads to abort ({upload_id})")

    # -- buckets (same backend) ----------------------------------------------
    @abstractmethod
    def list_buckets(self) -> builtins.list[BucketInfo]: ...

    def create_bucket(self, name: str) -> BucketInfo:
        """Create-only: raises BucketAlreadyExists if the name is taken (the race-safe form)."""
        return self._create_bucket(check_bucket(name))

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket; raises BucketNotEmpty / BucketNotFound."""
        self._delete_bucket(check_bucket(name))

    def bucket_exists(self, name: str) -> bool:
        return any(b.name == name for b in self.list_buckets())

    def get_bucket_labels(self, name: str) -> dict[str, str]:
        """Labels/tags of a bucket (S3 tagging; a sidecar where the backend has none)."""
        return self._get_bucket_labels(check_bucket(name))

    def set_bucket_labels(self, name: str, labels: dict[str, str]) -> None:
        self._set_bucket_labels(check_bucket(name), dict(labels))

    # -- backend hooks --------------------------------------------------------
    @abstractmethod
    def _get(self, key: str) -> GetResult: ...

    @abstractmethod
    def _put(
        self,
        key: str,
        data: bytes,
        if_none_match: bool,
        if_match: str | None,
        content_type: str,
        metadata: dict[str, str],
    ) -> str: ...

    @abstractmethod
    def _head(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _delete(self, key: str, if_match: str | None) -> None: ...

    @abstractmethod
    def _delete_batch(self, keys: builtins.list[str], result: DeleteResult) -> None: ...

    @abstractmethod
    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]: ...

    def _list_versions(self, prefix: str, key_marker: str | None) -> Iterator[ObjectVersion]:
        raise NotImplementedError(f"{self.scheme} stores are not versioned")

    def _purge(self, keys: builtins.list[str], etags: dict[str, str]) -> DeleteResult:
        raise NotImplementedError(f"{self.scheme} stores are not versioned")

    @abstractmethod
    def _create_bucket(self, name: str) -> BucketInfo: ...

    @abstractmethod
    def _delete_bucket(self, name: str) -> None: ...

    @abstractmethod
    def _get_bucket_labels(self, name: str) -> dict[str, str]: ...

    @abstractmethod
    def _set_bucket_labels(self, name: str, labels: dict[str, str]) -> None: ...
