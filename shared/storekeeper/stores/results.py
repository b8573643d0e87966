"""What a store's bucket, version, upload, usage and bulk-delete operations return.

Apart from `storekeeper.stores.base` (which names them lazily): a put, get or listing
never uses them, and creating them costs a cold start ~6 M instructions (a NamedTuple
~1 M, a dataclass ~3 M: Python 3.11 compiles their generated methods at import).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class IncompleteUpload(NamedTuple):
    """An upload begun and never completed (S3 multipart upload; a local temp file)."""

    key: str
    upload_id: str
    initiated: datetime


class BucketInfo(NamedTuple):
    name: str
    created_at: datetime | None = None
    public: bool = False
    size_limit: int | None = None  # bytes, where the backend enforces one (Supabase file_size_limit)


class ObjectVersion(NamedTuple):
    """One version of a key in a versioned bucket (a delete marker has size 0 and etag "")."""

    key: str
    version_id: str
    size: int
    etag: str
    last_modified: datetime
    is_latest: bool
    delete_marker: bool = False


class Usage(NamedTuple):
    """What a prefix holds: current objects, plus (versioned buckets) the older versions still billed."""

    bytes: int
    objects: int
    noncurrent_bytes: int = 0
    noncurrent_versions: int = 0
    delete_markers: int = 0

    @property
    def billed_bytes(self) -> int:
        """Bytes the provider bills: current objects and every noncurrent version."""
        return self.bytes + self.noncurrent_bytes


@dataclass
class DeleteResult:
    deleted: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # key -> cause
    kept: dict[str, str] = field(
        default_factory=dict
    )  # key -> why it was not deleted (changed since checked)
    requests: int = 0
    #: versions removed for good by `purge_many` (VersionId deletes; 0 on unversioned buckets)
    versions_removed: int = 0
    #: bytes no longer stored (BytesFreed): on an unversioned bucket the `sizes` the caller listed
    #: for the keys deleted; on a versioned one the size of every version removed for good (a
    #: plain delete there frees nothing: the object stays billed as a noncurrent version)
    bytes_freed: int = 0
