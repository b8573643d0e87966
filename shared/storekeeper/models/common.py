"""Shared field types."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from storekeeper.layout import DELTA_ID_RE, VERSION_RE
from storekeeper.names import check_bucket, check_collection, check_key, check_prefix

CollectionName = Annotated[str, AfterValidator(check_collection)]
BucketName = Annotated[str, AfterValidator(check_bucket)]
ObjectKey = Annotated[str, AfterValidator(check_key)]
Prefix = Annotated[str, AfterValidator(check_prefix)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
UtcDatetime = AwareDatetime
#: a snapshot version and a delta id (here, not with the Manifest: a cleanup task names a version
#: without importing the manifest model)
Version = Annotated[str, StringConstraints(pattern=VERSION_RE.pattern)]
DeltaId = Annotated[str, StringConstraints(pattern=DELTA_ID_RE.pattern)]


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a message must not be silently ignored."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


def utc_iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")
