"""The immutable snapshot manifest (snapshot/<c>/<version>/manifest.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from storekeeper.layout import archive_key, version_prefix
from storekeeper.models.common import CollectionName, DeltaId, Strict, UtcDatetime, Version


class Manifest(Strict):
    format: Literal["storekeeper.snapshot/1"] = "storekeeper.snapshot/1"
    collection: CollectionName
    version: Version
    parent: Version | None
    archive: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+\.tar(\.gz|\.zst|\.xz)?$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]
    dimension: Annotated[int, Field(ge=1)] | None
    distance: Literal["l2", "cosine", "ip"] = "l2"
    record_count: Annotated[int, Field(ge=0)]
    #: delta ids this version applied, in the order applied
    deltas: list[DeltaId]
    #: every applied delta id that may still exist in the store (this version's and earlier
    #: ones whose removal was not yet seen): the exactly-once ledger across crashes
    applied: list[DeltaId] = []
    #: sha256 of each delta blob in `deltas`: a notification that arrives after its delta was
    #: removed is still checked against it (empty in versions written before it existed)
    delta_sha256: dict[DeltaId, Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = {}
    created_at: UtcDatetime

    @property
    def prefix(self) -> str:
        return version_prefix(self.collection, self.version)

    @property
    def archive_key(self) -> str:
        return archive_key(self.collection, self.version, self.archive)
