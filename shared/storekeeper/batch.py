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
    message_id = getattr(record, "messageId", None) or getattr(record, "message_id", None)
    body = getattr(record, "body", None)
    about = {k: getattr(body, k) for k in ("collection", "delta_key", "task_id") if hasattr(body, k)}
    if isinstance(exc, pydantic.ValidationError):
        where, reason = describe_error(exc)
    elif isinstance(exc, RecordFailed | ValidationError):
        where, reason = exc.field, exc.reason
    else:
        where, reason = "record", f"{type(exc).__name__}: {exc}"
    return {"message_id": message_id, "field": where, "reason": reason, **about}


def partial_response(
    event: Any, record_handler: Callable[..., Any], processor: BatchProcessor, context: Any
) -> PartialItemFailureResponse:
    """Powertools' `process_partial_response`, except that an event with no records (no `Records`
    key, an empty list, not a dict) is an empty batch with nothing failed, as the handlers have
    always answered, where Powertools 3.x raises UnexpectedBatchTypeError."""
    if not isinstance(event, dict) or not event.get("Records"):
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
