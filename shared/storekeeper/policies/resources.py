"""Resource kinds a policy can select, and the typed records the planner evaluates.

Records are built from listing data only (key, size, etag, last-modified), so
planning 100k objects costs 100 list requests and no HEADs; labels are fetched
later, lazily, and only for candidates that passed every cheap filter. Each
kind is its own record type with typed fields (what a filter may ask about it);
`storekeeper.policies.kinds` says how each kind is listed, protected and deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(slots=True)
class Resource:
    kind: ClassVar[ResourceKind]
    store: str  # the store's name in the policy file
    bucket: str  # object-store bucket, or vector bucket
    name: str  # key, bucket name, index name or version: what a person recognises
    size: int = 0
    created: datetime | None = None  # creation, or last-modified where that is all a backend says
    etag: str | None = None
    labels: dict[str, str] | None = None  # None: not fetched yet

    @property
    def ident(self) -> str:
        """Unique across a run: the same resource matched by two policies is planned once."""
        return f"{self.kind}:{self.store}:{self.bucket}:{self.name}"  # a StrEnum formats as its value


@dataclass(slots=True)
class StoredObject(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.object


@dataclass(slots=True)
class Delta(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.delta
    collection: str = ""
    delta_id: str = ""
    #: in the live manifest's `applied` ledger (merged, not yet removed)
    applied: bool = False
    live_version: str | None = None


@dataclass(slots=True)
class SnapshotVersion(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.snapshot_version
    collection: str = ""
    version: str = ""
    keys: tuple[str, ...] = ()  # the objects the version consists of
    #: reached from the pointer through manifest parents
    published: bool = False
    live_version: str | None = None
    live_error: str | None = None


@dataclass(slots=True)
class Upload(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.upload
    key: str = ""
    upload_id: str = ""


@dataclass(slots=True)
class Bucket(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.bucket


@dataclass(slots=True)
class VectorBucket(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.vector_bucket


@dataclass(slots=True)
class VectorIndex(Resource):
    kind: ClassVar[ResourceKind] = ResourceKind.vector_index
    index: str = ""
