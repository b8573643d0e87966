"""Store adapters chosen by URL: `file:///abs/path`, `s3://bucket`, `supabase://bucket`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from storekeeper.errors import InvalidName
from storekeeper.lazy import lazy_exports
from storekeeper.names import check_bucket
from storekeeper.stores.base import RESULTS, GetResult, ObjectInfo, ObjectStore, RequestCounter

if TYPE_CHECKING:
    from storekeeper.stores.results import BucketInfo, DeleteResult, IncompleteUpload, Usage

__all__ = [
    "BucketInfo",
    "DeleteResult",
    "GetResult",
    "IncompleteUpload",
    "ObjectInfo",
    "ObjectStore",
    "RequestCounter",
    "Usage",
    "default_home",
    "default_store_url",
    "env_store",
    "open_store",
]

__getattr__, __dir__ = lazy_exports(__name__, RESULTS)


def default_home() -> Path:
    """Where the embedded default keeps its store and local queues."""
    return Path(os.environ.get("STOREKEEPER_HOME", Path.home() / ".storekeeper")).resolve()


def default_store_url() -> str:
    return os.environ.get("STOREKEEPER_STORE") or f"file://{default_home() / 'stores' / 'default'}"


#: directories a local store must never be (a typo like file:/// would walk and write the system)
SYSTEM_DIRS = frozenset(
    ["/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root",
     "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/mnt", "/media"]
)  # fmt: skip


def _check_local_path(url: str, rest: str) -> None:
    if not rest.startswith("/") or ".." in rest.split("/"):
        raise InvalidName("store", "file:// needs an absolute path without '..'", url)
    path = os.path.normpath(rest)
    if path in SYSTEM_DIRS or path == str(Path.home()) or path.startswith(("/proc/", "/sys/", "/dev/")):
        raise InvalidName(
            "store", f"refusing {path!r} as a local store: a root, home or system directory", url
        )


def check_store_url(url: str) -> str:
    """A store URL's scheme and bucket/path checked without opening it (policy files, options)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("s3", "supabase", "file"):
        shown = f"scheme {scheme!r}" if sep else "no scheme"
        raise InvalidName(
            "store", f"unsupported URL ({shown}): use s3://bucket, supabase://bucket or file:///abs/path", url
        )
    if scheme == "file":
        _check_local_path(url, rest)
        return url
    check_bucket(rest.rstrip("/"), "store")
    return url


def open_store(
    url: str | None = None, *, counter: RequestCounter | None = None, create: bool = True
) -> ObjectStore:
    """Open the store a URL names; no network I/O happens here. `create=False`: a file:// store that
    does not exist is not made (its operations raise BucketNotFound, as on the other backends)."""
    url = url or default_store_url()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidName(
            "store", "must be a URL like s3://bucket, supabase://bucket or file:///abs/path", url
        )
    if scheme == "file":
        _check_local_path(url, rest)
        from storekeeper.stores.local import LocalStore

        return LocalStore(Path(rest), counter=counter, create=create)
    bucket = check_bucket(rest.rstrip("/"), "store")
    if scheme == "s3":
        from storekeeper.stores.s3 import S3Store

        return S3Store(bucket, counter=counter)
    if scheme == "supabase":
        from storekeeper.stores.supabase import SupabaseStore

        return SupabaseStore(bucket, counter=counter)
    raise InvalidName("store", f"unknown scheme {scheme!r} (use s3, supabase or file)", url)


_env_stores: dict[str, ObjectStore] = {}


def env_store() -> ObjectStore:
    """The store the environment names, kept across warm Lambda invocations (its client and
    connection pool are reused); keyed by URL so a changed environment gets a new one."""
    url = default_store_url()
    if url not in _env_stores:
        _env_stores[url] = open_store(url)
    return _env_stores[url]
