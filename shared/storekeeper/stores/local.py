"""Local-directory backend: `file:///abs/root/bucket` keeps key K as `<root>/<bucket>/K`.

Sibling directories of the bucket are the other buckets of this "backend".
Bookkeeping (metadata, labels, locks, temp files) lives in `<root>/.storekeeper/`
so it never shows up as an object. Conditional puts take an exclusive `flock`
per key, compare, then `os.replace`: atomic across processes on one host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import heapq
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storekeeper.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    NotFound,
    PreconditionFailed,
)
from storekeeper.names import check_bucket
from storekeeper.stores.base import (
    GetResult,
    ObjectInfo,
    ObjectStore,
    RequestCounter,
)

if TYPE_CHECKING:
    from storekeeper.stores.results import BucketInfo, DeleteResult, IncompleteUpload

META_DIR = ".storekeeper"
_TMP_NAME = re.compile(r"[0-9a-f]{32}")
#: renames retried when concurrent deletes keep pruning the target's directory (see _move_into_place)
_PLACE_ATTEMPTS = 100


def _etag(st: os.stat_result) -> str:
    # inode changes on every os.replace, mtime_ns and size on any in-place change
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
    """One object's stat (a function of its own so tests can count them)."""
    return entry.stat(follow_symlinks=False)


def _walk(
    d: Path | str, rel: str, prefix: str, start_after: str | None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(key, entry) of every file under `d` (whose keys start with `rel`), in binary key order.

    Siblings sort by `name + "/"` for directories and `name` for files: every key under a
    directory starts with `name/`, so this order is the global key order. Entries that cannot
    match `prefix` or sort after `start_after` are dropped while the directory is read, and
    the rest come off a heap, so a caller that stops after k keys pays O(n + k log n) for a
    directory of n entries, not a full sort.
    """
    found: list[tuple[str, os.DirEntry[str]]] = []
    try:
        with os.scandir(d) as it:
            for e in it:
                is_dir = e.is_dir(follow_symlinks=False)
                key = rel + e.name + ("/" if is_dir else "")
                if is_dir:  # its keys are key + something
                    if not (key.startswith(prefix) or prefix.startswith(key)):
                        continue
                    if start_after is not None and key <= start_after and not start_after.startswith(key):
                        continue  # every key under it sorts before start_after
                elif not key.startswith(prefix) or (start_after is not None and key <= start_after):
                    continue
                found.append((key, e))
    except (FileNotFoundError, NotADirectoryError):  # removed since its parent was read
        return
    heapq.heapify(found)  # keys are unique within a directory: entries are never compared
    while found:
        key, e = heapq.heappop(found)
        if key.endswith("/"):
            later = start_after if start_after is not None and key <= start_after else None
            yield from _walk(e.path, key, prefix, later)
        else:
            yield key, e


class LocalStore(ObjectStore):
    scheme = "file"
    max_delete_batch = 1000

    def __init__(
        self, path: str | Path, *, counter: RequestCounter | None = None, create: bool = True
    ) -> None:
        """`create=False` opens a bucket that may not exist (then calls raise BucketNotFound, as on S3)."""
        path = Path(path)
        if not path.is_absolute():
            raise ValueError(f"file:// store needs an absolute path, got {path}")
        super().__init__(path.name, counter=counter)
        self.root = path.parent
        self.path = path
        if create:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def for_bucket(self, bucket: str) -> LocalStore:
        check_bucket(bucket)
        # opening another bucket must not create it: create_bucket is the only way, as on S3
        return LocalStore(self.root / bucket, counter=self.requests, create=False)

    def _missing(self, key: str | None, cause: str) -> NotFound:
        """NotFound, or BucketNotFound when the bucket directory itself is gone."""
        if not self.path.is_dir():
            return BucketNotFound(self.url, key, "no such bucket")
        return NotFound(self.url, key, cause)

    # -- bookkeeping paths -----------------------------------------------------
    def _side(self, bucket: str, kind: str) -> Path:
        d = self.root / META_DIR / bucket / kind
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _file(self, key: str) -> Path:
        return self.path / key

    def _meta_file(self, key: str) -> Path:
        return self._side(self.bucket, "meta") / (hashlib.sha1(key.encode()).hexdigest() + ".json")  # noqa: S324

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self._side(self.bucket, "locks") / (hashlib.sha1(key.encode()).hexdigest() + ".lock")  # noqa: S324
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _stat(self, key: str) -> os.stat_result:
        f = self._file(key)
        try:
            st = f.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(key, "no such object") from None
        if not f.is_file():
            raise NotFound(self.url, key, "no such object (a prefix, not an object)")
        return st

    # -- objects ---------------------------------------------------------------
    def _get(self, key: str) -> GetResult:
        self.requests.add("get")
        f = self._file(key)
        try:
            with open(f, "rb") as fh:
                st = os.fstat(fh.fileno())
                body = fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key, "no such object") from None
        return GetResult(body=body, etag=_etag(st), metadata=self._read_meta(key))

    def _get_file(self, key: str, path: Path) -> str:
        """Stream the file (objects are replaced by rename, so one open fd reads one version)."""
        self.requests.add("get_file")
        try:
            src = open(self._file(key), "rb")  # noqa: SIM115 - closed below, after the fstat
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key, "no such object") from None
        with src, open(path, "wb") as dst:
            etag = _etag(os.fstat(src.fileno()))
            try:  # copied by the kernel, as `shutil.copyfile` does (a snapshot archive: hundreds of MB)
                while os.sendfile(dst.fileno(), src.fileno(), None, 64 * 1024**2) > 0:
                    pass
            except OSError:  # no sendfile between these two: through user space, from where it stopped
                shutil.copyfileobj(src, dst, 1024 * 1024)
        return etag

    def _read_meta(self, key: str) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self._meta_file(key).read_text())
        except FileNotFoundError:
            return {}
        return data

    def _put(
        self,
        key: str,
        data: bytes | Path,
        if_none_match: bool,
        if_match: str | None,
        content_type: str,
        metadata: dict[str, str],
    ) -> str:
        """`data` may be a local file (put_file): copied by the kernel, never held in memory."""
        self.requests.add("put")
        if not self.path.is_dir():
            raise BucketNotFound(self.url, key, "no such bucket")
        target = self._file(key)
        tmp = self._side(self.bucket, "tmp") / uuid.uuid4().hex
        if isinstance(data, Path):
            shutil.copyfile(data, tmp)
        else:
            tmp.write_bytes(data)
        try:
            with self._locked(key):
                if if_none_match or if_match is not None:
                    try:
                        current: str | None = _etag(self._stat(key))
                    except NotFound:
                        current = None
                    if if_none_match and current is not None:
                        raise PreconditionFailed(self.url, key, "If-None-Match: * but the object exists")
                    if if_match is not None and current != if_match:
                        raise PreconditionFailed(
                            self.url, key, f"If-Match {if_match} but current etag is {current or 'absent'}"
                        )
                if metadata:
                    self._meta_file(key).write_text(json.dumps(metadata))
                else:
                    self._meta_file(key).unlink(missing_ok=True)
                self._move_into_place(key, tmp, target)
                return _etag(target.stat())
        finally:
            tmp.unlink(missing_ok=True)

    def _move_into_place(self, key: str, tmp: Path, target: Path) -> None:
        """`os.replace` the temp file to `target`, making its directories first. A delete of another key
        prunes the directories it empties (S3 has no empty folders) and holds no lock of ours, so it can
        remove them between our mkdir and our rename: the rename then finds no directory (ENOENT; the temp
        file is ours and never pruned), and we make them again. Each retry follows another's prune."""
        for _ in range(_PLACE_ATTEMPTS):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                if any(p.is_file() for p in target.parents if p.is_relative_to(self.path)):
                    raise PreconditionFailed(self.url, key, "a parent path segment is an object") from None
                continue  # mkdir saw the directory, which was pruned before it checked it
            except FileNotFoundError:  # a parent pruned while mkdir made the next level
                continue
            if target.is_dir():
                raise PreconditionFailed(self.url, key, "the key is a prefix of existing objects")
            try:
                os.replace(tmp, target)
                return
            except FileNotFoundError:
                continue
        raise OSError(errno.EAGAIN, f"{key}: its directory was removed {_PLACE_ATTEMPTS} times while writing")

    def _put_file(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str], if_none_match: bool
    ) -> str:
        """Same locking and conditions as `put`; the file is copied, not read into memory."""
        return self._put(key, path, if_none_match, None, content_type, metadata)

    def _head(self, key: str) -> ObjectInfo:
        self.requests.add("head")
        st = self._stat(key)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=_etag(st),
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            metadata=self._read_meta(key),
        )

    def _require_bucket(self) -> None:
        if not self.path.is_dir():
            raise BucketNotFound(self.url, None, "no such bucket")

    def _delete(self, key: str, if_match: str | None) -> None:
        self.requests.add("delete")
        self._require_bucket()
        with self._locked(key):
            if if_match is not None:
                try:
                    current = _etag(self._stat(key))
                except NotFound:
                    return
                if current != if_match:
                    raise PreconditionFailed(
                        self.url, key, f"If-Match {if_match} but current etag is {current}"
                    )
            self._unlink(key)

    def _unlink(self, key: str) -> None:
        f = self._file(key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            f.unlink()
        self._meta_file(key).unlink(missing_ok=True)
        # prune empty parents up to the bucket root, like S3 has no empty "folders"
        parent = f.parent
        while parent != self.path:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _delete_batch(self, keys: list[str], result: DeleteResult) -> None:
        self.requests.add("delete_batch")
        self._require_bucket()
        for key in keys:
            try:
                self._unlink(key)
                result.deleted.append(key)
            except OSError as exc:  # pragma: no cover - permissions and the like
                result.errors[key] = str(exc)

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        """A lazy depth-first walk in key order: a listing that starts late or stops early (the
        cleanup executor's re-check) reads only the directories on its way and stats only the
        objects it yields, not the whole tree."""
        self.requests.add("list")
        # walk only the directory the prefix names, then filter on the partial last segment
        base = prefix.rpartition("/")[0]
        base_dir = self.path / base if base else self.path
        if not base_dir.is_dir():
            if not self.path.is_dir():
                raise BucketNotFound(self.url, prefix or None, "no such bucket")
            return
        for rel, entry in _walk(base_dir, base + "/" if base else "", prefix, start_after):
            try:
                st = _entry_stat(entry)
            except FileNotFoundError:  # deleted since the directory was read
                continue
            yield ObjectInfo(
                key=rel,
                size=st.st_size,
                etag=_etag(st),
                last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            )

    # -- incomplete uploads: temp files of puts that never finished (a crash between write and rename) --
    def _list_incomplete_uploads(self, prefix: str) -> list[IncompleteUpload]:
        """Temp files under `.storekeeper/<bucket>/tmp/`; key and upload id are the file name (a temp
        file does not know its key, so a non-empty prefix matches none). A put in flight owns its temp
        file for milliseconds: policies select stale ones with older-than."""
        from storekeeper.stores.results import IncompleteUpload

        self.requests.add("list_uploads")
        d = self.root / META_DIR / self.bucket / "tmp"
        if prefix or not d.is_dir():
            return []
        out = []
        with os.scandir(d) as it:
            for e in it:
                if e.is_file() and _TMP_NAME.fullmatch(e.name):
                    with contextlib.suppress(FileNotFoundError):
                        mtime = datetime.fromtimestamp(e.stat().st_mtime, UTC)
                        out.append(IncompleteUpload(e.name, e.name, mtime))
        return sorted(out)

    def _abort_upload(self, key: str, upload_id: str) -> None:
        self.requests.add("abort_upload")
        if key != upload_id or not _TMP_NAME.fullmatch(upload_id):
            raise NotFound(
                self.url, key, f"no incomplete upload {upload_id!r} (local temp files are hex names)"
            )
        (self.root / META_DIR / self.bucket / "tmp" / upload_id).unlink(missing_ok=True)

    # -- buckets -----------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]:
        from storekeeper.stores.results import BucketInfo

        self.requests.add("list_buckets")
        out = []
        for e in sorted(os.scandir(self.root), key=lambda e: e.name):
            if e.is_dir() and not e.name.startswith("."):
                st = e.stat()
                out.append(BucketInfo(name=e.name, created_at=datetime.fromtimestamp(st.st_ctime, UTC)))
        return out

    def _create_bucket(self, name: str) -> BucketInfo:
        from storekeeper.stores.results import BucketInfo

        self.requests.add("create_bucket")
        d = self.root / name
        try:
            d.mkdir(parents=False)
        except FileExistsError:
            raise BucketAlreadyExists(f"file://{d}", None, "bucket already exists") from None
        return BucketInfo(name=name, created_at=datetime.now(UTC))

    def _delete_bucket(self, name: str) -> None:
        self.requests.add("delete_bucket")
        d = self.root / name
        if not d.is_dir():
            raise BucketNotFound(f"file://{d}", None, "no such bucket")
        try:
            d.rmdir()
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise BucketNotEmpty(f"file://{d}", None, "bucket still holds objects") from None
            raise
        shutil.rmtree(self.root / META_DIR / name, ignore_errors=True)

    def _labels_file(self, name: str) -> Path:
        return self.root / META_DIR / name / "labels.json"

    def _get_bucket_labels(self, name: str) -> dict[str, str]:
        if not (self.root / name).is_dir():
            raise BucketNotFound(f"file://{self.root / name}", None, "no such bucket")
        try:
            labels: dict[str, str] = json.loads(self._labels_file(name).read_text())
        except FileNotFoundError:
            return {}
        return labels

    def _set_bucket_labels(self, name: str, labels: dict[str, str]) -> None:
        if not (self.root / name).is_dir():
            raise BucketNotFound(f"file://{self.root / name}", None, "no such bucket")
        f = self._labels_file(name)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(labels, sort_keys=True))
        tmp.replace(f)
