"""Typed errors: every failure names the store, the key (or field) and the cause.

Callers branch on the type (a lost race is retried, a missing object is a
decision, a full quota is a policy input); people read the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pydantic


class StorekeeperError(Exception):
    """Base of everything storekeeper raises on purpose."""


class ValidationError(StorekeeperError, ValueError):
    """Input rejected before any I/O; names the field and the reason."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        #: where in the input, when converted from pydantic (from_pydantic)
        self.loc: tuple[str | int, ...] = ()
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


def dotted(loc: tuple[str | int, ...]) -> str:
    """A pydantic error location as `a.b.0.c`."""
    return ".".join(str(p) for p in loc)


def from_pydantic(
    exc: pydantic.ValidationError,
    *,
    root: str = "input",
    prefix: str = "",
    strip: str | None = None,
    loc: Callable[[tuple[str | int, ...]], str] = dotted,
    with_input: bool = False,
) -> ValidationError:
    """The first error of a pydantic ValidationError as ours: the field's path and the reason.

    One conversion for every boundary (messages, records, manifests, configs, reports):
    `root` names the whole input when the error is at its top, `prefix` goes before the
    path (`prefix:` then a space, else a dot), `strip` drops a leading wrapper segment
    (e.g. an SQS record's `body`), `loc` formats the path, `with_input` keeps the bad value.
    The location stays available as `.loc`.
    """
    first = exc.errors()[0]
    parts = tuple(first["loc"])
    if strip is not None and parts[:1] == (strip,) and len(parts) > 1:
        parts = parts[1:]
    where = loc(parts)
    reason = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "json_invalid":
        reason = f"not valid JSON: {first.get('ctx', {}).get('error', reason)}"
    joiner = (" " if prefix.endswith(":") else ".") if prefix and where else ""
    value = first.get("input") if with_input and first["type"] != "missing" else None
    err = ValidationError(f"{prefix}{joiner}{where}" or root, reason, value)
    err.loc = parts
    return err
