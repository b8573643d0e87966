"""What the SQS handlers share: one ERROR line per failed record, naming the message, field and reason.

Messages that fail reach the DLQ after their retries; whoever reads the DLQ finds
why in the function's log by the message id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pydantic

from storekeeper.errors import StorekeeperError, ValidationError, from_pydantic

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse


class RecordFailed(StorekeeperError):
    """This record fails (SQS retries it, then the DLQ); `field` and `reason` go into the ERROR line."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def describe_error(exc: pydantic.ValidationError) -> tuple[str, str]:
    """(field, reason) of a record model's first error; the field is relative to the body."""
    err = from_pydantic(exc, root="body", strip="body")
    return err.field, err.reason


def record_failure(record: Any, exc: BaseException | None) -> dict[str, Any]:
    """The ERROR line's fields for a failed record. `record` is the parsed model, or Powertools'
    SQSRecord when the body did not parse."""
    message_id = _attr(record, "messageId") or _attr(record, "message_id")
    body = _attr(record, "body")
    about = {k: getattr(body, k) for k in ("collection", "delta_key", "task_id") if hasattr(body, k)}
    if isinstance(exc, pydantic.ValidationError):
        where, reason = describe_error(exc)
    elif isinstance(exc, RecordFailed | ValidationError):
        where, reason = exc.field, exc.reason
    else:
        where, reason = "record", f"{type(exc).__name__}: {exc}"
    return {"message_id": message_id, "field": where, "reason": reason, **about}


def _attr(record: Any, name: str) -> Any:
    """`record.name`, or None: Powertools' SQSRecord raises KeyError for a field the record lacks."""
    try:
        return getattr(record, name, None)
    except KeyError:
        return None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def event_records(event: Any, id_field: str | None = None) -> list[dict[str, Any]]:
    """The event's `Records`: absent or empty is no records; anything but a list of objects (each
    with a non-empty string `id_field`, by which a failed record is reported) is a ValidationError
    naming the field, never a traceback or an empty batch that silently succeeds. Such a record
    cannot fail alone (there is nothing to report it by), so the whole event is refused."""
    if not isinstance(event, dict) or "Records" not in event:
        return []
    records = event["Records"]
    if not isinstance(records, list):
        raise ValidationError("Records", f"must be a list of records, not {_kind(records)}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValidationError(f"Records[{i}]", f"must be a record object, not {_kind(record)}")
        if id_field is not None:
            rid = record.get(id_field)
            if not isinstance(rid, str) or not rid:
                raise ValidationError(
                    f"Records[{i}].{id_field}", f"must be a non-empty string, not {_kind(rid)}"
                )
    return records


def partial_response(
    event: Any, record_handler: Callable[..., Any], processor: BatchProcessor, context: Any
) -> PartialItemFailureResponse:
    """Powertools' `process_partial_response`, except that an event with no records (no `Records`
    key, an empty list, not a dict) is an empty batch with nothing failed, as the handlers have
    always answered, where Powertools 3.x raises UnexpectedBatchTypeError; a `Records` that is
    not a list of SQS records is a ValidationError naming it (`event_records`)."""
    if not event_records(event, "messageId"):
        return {"batchItemFailures": []}
    # imported here: the handlers have loaded Powertools' batch package already; the CLI need not
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def record_shell(body: str, message_id: str = "local") -> dict[str, Any]:
    """An SQS record around `body`, for parsing a bare body with a record model (CLI, local queues)."""
    return {
        "messageId": message_id,
        "receiptHandle": f"local-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "0",
            "SenderId": "local",
            "ApproximateFirstReceiveTimestamp": "0",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:local",
        "awsRegion": "us-east-1",
    }
