"""Resource kinds a policy can select, and the typed records the planner evaluates.

Records are built from listing data only (key, size, etag, last-modified), so
planning 100k objects costs 100 list requests and no HEADs; labels are fetched
later, lazily, and only for candidates that passed every cheap filter. Each
kind is its own record type with typed fields (what a filter may ask about it);
`storekeeper.policies.kinds` says how each kind is listed, protected and deleted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar


class ResourceKind(StrEnum):
    bucket = "bucket"  # a bucket of the store's backend
    object = "object"  # an object under the policy's prefix
    vector_bucket = "vector_bucket"  # a Supabase vector bucket of the project
    vector_index = "vector_index"  # an index inside a vector bucket
    snapshot_version = "snapshot_version"  # snapshot/<c>/<version>/ as a unit
    delta = "delta"  # delta/<c>/<id>.delta
    upload = "upload"  # an incomplete multipart upload, named `<key>?uploadId=<id>`


class Resource:
    """A listed resource. Plain slotted classes, not dataclasses: Python 3.11 compiles each generated
    method of a dataclass on its own, and these seven cost the reaper's cold start ~20 M instructions
    (~8 ms) as dataclasses, ~1 M written out (docs/performance.md, cold start)."""

    __slots__ = ("store", "bucket", "name", "size", "created", "etag", "labels")  # noqa: RUF023 (repr order)
    kind: ClassVar[ResourceKind]

    def __init__(
        self,
        store: str,  # the store's name in the policy file
        bucket: str,  # object-store bucket, or vector bucket
        name: str,  # key, bucket name, index name or version: what a person recognises
        size: int = 0,
        created: datetime | None = None,  # creation, or last-modified where that is all a backend says
        etag: str | None = None,
        labels: dict[str, str] | None = None,  # None: not fetched yet
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.name = name
        self.size = size
        self.created = created
        self.etag = etag
        self.labels = labels

    def _values(self) -> list[tuple[str, object]]:
        return [(n, getattr(self, n)) for c in reversed(type(self).__mro__[:-1]) for n in c.__slots__]  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in self._values())})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Resource)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable (labels are fetched later), as a dataclass

    @property
    def ident(self) -> str:
        """Unique across a run: the same resource matched by two policies is planned once."""
        return f"{self.kind}:{self.store}:{self.bucket}:{self.name}"  # a StrEnum formats as its value


class StoredObject(Resource):
    __slots__ = ()
    kind: ClassVar[ResourceKind] = ResourceKind.object


class Delta(Resource):
    __slots__ = ("collection", "delta_id", "applied", "live_version")  # noqa: RUF023 (repr order)
    kind: ClassVar[ResourceKind] = ResourceKind.delta

    def __init__(
        self,
        store: str,
        bucket: str,
        name: str,
        size: int = 0,
        created: datetime | None = None,
        etag: str | None = None,
        labels: dict[str, str] | None = None,
        *,
        collection: str = "",
        delta_id: str = "",
        applied: bool = False,  # in the live manifest's `applied` ledger (merged, not yet removed)
        live_version: str | None = None,
    ) -> None:
        super().__init__(store, bucket, name, size, created, etag, labels)
        self.collection = collection
        self.delta_id = delta_id
        self.applied = applied
        self.live_version = live_version


class SnapshotVersion(Resource):
    __slots__ = ("collection", "version", "keys", "published", "live_version", "live_error")  # noqa: RUF023 (repr order)
    kind: ClassVar[ResourceKind] = ResourceKind.snapshot_version

    def __init__(
        self,
        store: str,
        bucket: str,
        name: str,
        size: int = 0,
        created: datetime | None = None,
        etag: str | None = None,
        labels: dict[str, str] | None = None,
        *,
        collection: str = "",
        version: str = "",
        keys: tuple[str, ...] = (),  # the objects the version consists of
        published: bool = False,  # reached from the pointer through manifest parents
        live_version: str | None = None,
        live_error: str | None = None,
    ) -> None:
        super().__init__(store, bucket, name, size, created, etag, labels)
        self.collection = collection
        self.version = version
        self.keys = keys
        self.published = published
        self.live_version = live_version
        self.live_error = live_error


class Upload(Resource):
    __slots__ = ("key", "upload_id")
    kind: ClassVar[ResourceKind] = ResourceKind.upload

    def __init__(
        self,
        store: str,
        bucket: str,
        name: str,
        size: int = 0,
        created: datetime | None = None,
        etag: str | None = None,
        labels: dict[str, str] | None = None,
        *,
        key: str = "",
        upload_id: str = "",
    ) -> None:
        super().__init__(store, bucket, name, size, created, etag, labels)
        self.key = key
        self.upload_id = upload_id


class Bucket(Resource):
    __slots__ = ()
    kind: ClassVar[ResourceKind] = ResourceKind.bucket


class VectorBucket(Resource):
    __slots__ = ()
    kind: ClassVar[ResourceKind] = ResourceKind.vector_bucket


class VectorIndex(Resource):
    __slots__ = ("index",)
    kind: ClassVar[ResourceKind] = ResourceKind.vector_index

    def __init__(
        self,
        store: str,
        bucket: str,
        name: str,
        size: int = 0,
        created: datetime | None = None,
        etag: str | None = None,
        labels: dict[str, str] | None = None,
        *,
        index: str = "",
    ) -> None:
        super().__init__(store, bucket, name, size, created, etag, labels)
        self.index = index
