"""Typed errors: every failure names the store, the key (or field) and the cause.

Callers branch on the type (a lost race is retried, a missing object is a
decision, a full quota is a policy input); people read the message.
"""

from __future__ import annotations


class StorekeeperError(Exception):
    """Base of everything storekeeper raises on purpose."""


class ValidationError(StorekeeperError, ValueError):
    """Input rejected before any I/O; names the field and the reason."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f" (got {value!r:.80})"
        super().__init__(f"{field}: {reason}{shown}")


class InvalidName(ValidationError):
    """A bucket, collection or key that could escape its prefix or is malformed."""


class StoreError(StorekeeperError):
    """An operation on a store failed; says which store, which key and why."""

    def __init__(self, store: str, key: str | None, cause: str) -> None:
        self.store = store
        self.key = key
        self.cause = cause
        where = store if key is None else f"{store}/{key}"
        super().__init__(f"{type(self).__name__} at {where}: {cause}")


class NotFound(StoreError):
    """The object does not exist."""


class BucketNotFound(NotFound):
    """The bucket (or vector bucket / index) does not exist."""


class BucketAlreadyExists(StoreError):
    """Create-bucket lost to an existing bucket of that name."""


class BucketNotEmpty(StoreError):
    """Delete-bucket refused: objects (or vector indexes) remain."""


class PreconditionFailed(StoreError):
    """A conditional write lost its race (HTTP 412 / 409): re-read and rebase."""


class QuotaExceeded(StoreError):
    """The backend refused to create more of something (e.g. 10 vector buckets)."""


class CorruptObject(StoreError):
    """The object exists but its content fails validation or its checksum."""


class BackendError(StoreError):
    """Any other backend failure, with the backend's own code in the cause."""


class AccessDenied(BackendError):
    """The backend refused the credentials (a wrong or expired key): never reported as a missing bucket."""


class PointerTargetMissing(StoreError):
    """The published pointer names a snapshot whose manifest or archive is gone: alarm, never 'repair'."""


# -- readers (storekeeper.Reader; docs/readers.md says what to do about each) ------------------------
class UnknownCollection(NotFound):
    """Neither a published snapshot, a collection config nor a pending delta: a wrong name (or store)."""


class SnapshotUnavailable(StoreError):
    """A reader has no version it can serve: the published one is corrupt or missing (the cause says
    which) and nothing was open before. A reader already serving keeps serving and never raises this."""


class ReaderClosed(StorekeeperError):
    """The reader was closed."""


class NotVisible(StorekeeperError, TimeoutError):
    """`Reader.wait_visible` timed out before a published version held every given delta."""


class DeltaRejected(StorekeeperError):
    """A delta waited for was quarantined under delta-rejected/ (the reason says why): it never appears."""
