"""Cleanup tasks (reaper or a person -> CleanupQueue)."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from storekeeper.layout import COLLECTION_RE
from storekeeper.models.common import BucketName, ObjectKey, Prefix, Strict, Token, UtcDatetime, Version


class CleanupAction(StrEnum):
    delete_objects = "delete_objects"
    delete_prefix = "delete_prefix"
    delete_snapshot_version = "delete_snapshot_version"
    delete_bucket = "delete_bucket"
    delete_vector_index = "delete_vector_index"
    delete_vector_bucket = "delete_vector_bucket"
    create_overflow_bucket = "create_overflow_bucket"
    abort_uploads = "abort_uploads"  # incomplete multipart uploads: keys[i] with upload_ids[i]


class TaskGuard(Strict):
    """What the planner saw; the executor re-checks it and skips if the world changed."""

    etags: dict[str, str] = {}  # key -> etag seen at planning
    last_modified_before: UtcDatetime | None = None  # every target must still be older than this
    live_version: str | None = None  # pointer target seen at planning (snapshot deletions)
    max_objects: Annotated[int, Field(ge=0)] | None = None  # refuse to empty a bucket that grew past this
    # create_overflow_bucket: the executor re-reads the group's usage and creates nothing when a
    # member is still under the hard watermark (a ratio 0-1, never a percentage)
    capacity_bytes: Annotated[int, Field(gt=0)] | None = None
    hard_watermark: Annotated[float, Field(gt=0, le=1)] | None = None


class CleanupTask(Strict):
    task_id: Token
    action: CleanupAction
    backend: Literal["s3", "supabase", "file"]
    bucket: BucketName
    keys: list[ObjectKey] = []
    #: abort_uploads only: the upload id of each key, same order and length as `keys`
    upload_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]] = []
    prefix: Prefix | None = None
    index: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$")] | None = None
    version: Version | None = None
    collection: Annotated[str, StringConstraints(pattern=COLLECTION_RE.pattern)] | None = None
    policy: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    planned_at: UtcDatetime
    guard: TaskGuard = Field(default_factory=TaskGuard)
    dry_run: bool = False

    @model_validator(mode="after")
    def _target_present(self) -> Self:
        a = CleanupAction
        need: dict[CleanupAction, tuple[str, bool]] = {
            a.delete_objects: ("keys", bool(self.keys)),
            a.delete_prefix: ("prefix", bool(self.prefix)),
            a.delete_snapshot_version: ("version and collection", bool(self.version and self.collection)),
            a.delete_vector_index: ("index", bool(self.index)),
        }
        field, ok = need.get(self.action, ("", True))
        if not ok:
            raise ValueError(f"action {self.action.value} needs {field}")
        if self.action is a.abort_uploads and (not self.keys or len(self.keys) != len(self.upload_ids)):
            raise ValueError("action abort_uploads needs keys and upload_ids of the same length")
        if self.upload_ids and self.action is not a.abort_uploads:
            raise ValueError(f"upload_ids only apply to abort_uploads, not {self.action.value}")
        return self
