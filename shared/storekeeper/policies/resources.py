"""Resource kinds a policy can select, and the one record type the planner evaluates.

Records are built from listing data only (key, size, etag, last-modified), so
planning 100k objects costs 100 list requests and no HEADs; labels are fetched
later, lazily, and only for candidates that passed every cheap filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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
    kind: ResourceKind
    store: str  # the store's name in the policy file
    bucket: str  # object-store bucket, or vector bucket
    name: str  # key, bucket name, index name or version: what a person recognises
    size: int = 0
    created: datetime | None = None  # creation, or last-modified where that is all a backend says
    etag: str | None = None
    collection: str | None = None
    version: str | None = None
    keys: tuple[str, ...] = ()  # objects a snapshot version consists of
    labels: dict[str, str] | None = None  # None: not fetched yet
    facts: dict[str, object] = field(default_factory=dict)  # published, applied, live_version, objects...

    @property
    def ident(self) -> str:
        """Unique across a run: the same resource matched by two policies is planned once."""
        return f"{self.kind}:{self.store}:{self.bucket}:{self.name}"  # a StrEnum formats as its value
