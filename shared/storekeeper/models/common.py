"""Shared field types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from storekeeper.names import check_bucket, check_collection, check_key, check_prefix

CollectionName = Annotated[str, AfterValidator(check_collection)]
BucketName = Annotated[str, AfterValidator(check_bucket)]
ObjectKey = Annotated[str, AfterValidator(check_key)]
Prefix = Annotated[str, AfterValidator(check_prefix)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
UtcDatetime = AwareDatetime


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a message must not be silently ignored."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


def utc_iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")
