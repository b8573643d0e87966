"""Producer Lambda: direct-invoke puts and S3 ObjectCreated events for `incoming/<c>/*.jsonl`.

Thin on purpose: parse, call storekeeper.producer, shape the answer. Bad input
gets a 4xx-style body naming the field and writes nothing. Store failures are
raised (the caller, or Lambda's async retry, tries again; request_id makes
that safe). For S3 events see storekeeper.producer: every record is
processed, then the event fails if any record did, so retries and the DLQ see
only what still needs attention. Must not import chromadb (cold start).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from storekeeper import config, snapstart
from storekeeper.errors import ValidationError
from storekeeper.netconfig import with_deadline
from storekeeper.producer import (
    FUNCTION_NAME,
    RequestIdReused,
    S3RecordsFailed,
    handle_s3_event,
    parse_put_request,
    put,
)
from storekeeper.queues import Queue, queue_from_env
from storekeeper.stores import ObjectStore, default_store_url, open_store
from storekeeper.tracing import make_tracer

if TYPE_CHECKING:  # a type only: its module is ~1 M instructions of a cold start
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on

CORRELATION_PATH = 'request_id || Records[0].responseElements."x-amz-request-id" || detail."request-id" || id'

_deps: dict[tuple[str, str, str], tuple[ObjectStore, Queue]] = {}
_persistence: dict[tuple[str, str, str], Any] = {}
snapstart.enable("producer", _deps, _persistence, logger=logger)  # restore hooks; priming on SnapStart


def _settings() -> tuple[str, str, str]:
    return (
        default_store_url(),
        os.environ.get(config.DELTA_QUEUE_URL, ""),
        os.environ.get(config.IDEMPOTENCY_TABLE, ""),
    )


def _dependencies() -> tuple[ObjectStore, Queue]:
    """Store and queue, reused across warm invocations with the same settings."""
    cache_key = _settings()
    if cache_key not in _deps:
        _deps[cache_key] = (open_store(None), queue_from_env(config.DELTA_QUEUE_URL, "delta"))
    return _deps[cache_key]


def _idempotency(store: ObjectStore) -> Any:
    """The idempotency layer, built by the first request that has a request_id (or an S3 event).

    Importing it pulls in Powertools' idempotency package, which imports boto3
    for its DynamoDB layer: a put without request_id does not pay that.
    """
    cache_key = _settings()
    if cache_key not in _persistence:
        from storekeeper.idempotency import persistence_from_env

        _persistence[cache_key] = persistence_from_env(store, FUNCTION_NAME)
    return _persistence[cache_key]


def _count(result: dict[str, Any]) -> None:
    if "skipped" in result:  # an incoming file already processed, or replaced by a newer upload
        metrics.add_metric(name="FilesSkipped", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="DeltasWritten", unit=MetricUnit.Count, value=len(result["deltas"]))
    metrics.add_metric(name="VectorsAccepted", unit=MetricUnit.Count, value=result["upserts"])
    metrics.add_metric(name="DeletesAccepted", unit=MetricUnit.Count, value=result["deletes"])
    failed = len(result.get("failed_notifications", []))
    metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=failed)
    if failed:
        logger.error(
            "notification failed; deltas stay pending", extra={"failed": result["failed_notifications"]}
        )


def _rejected(exc: ValidationError, status: int = 400) -> dict[str, Any]:
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    logger.warning("request rejected", extra={"field": exc.field, "reason": exc.reason})
    return {"statusCode": status, "error": type(exc).__name__, "field": exc.field, "reason": exc.reason}


def _is_s3_event(event: Any) -> bool:
    return isinstance(event, dict) and ("Records" in event or event.get("source") == "aws.s3")


@logger.inject_lambda_context(correlation_id_path=CORRELATION_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@with_deadline
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store, queue = _dependencies()
    if _is_s3_event(event):
        try:
            out = handle_s3_event(
                event, store=store, queue=queue, persistence=_idempotency(store), lambda_context=context
            )
        except S3RecordsFailed as exc:
            for result in exc.results.values():
                _count(result)
            metrics.add_metric(name="FilesRejected", unit=MetricUnit.Count, value=len(exc.failures))
            raise
        except ValidationError as exc:  # the event itself is malformed: a retry cannot help
            logger.error("malformed S3 event", extra={"field": exc.field, "reason": exc.reason})
            raise
        for result in out["records"].values():
            _count(result)
        return {"statusCode": 200, **out}

    try:
        request = parse_put_request(event)
        persistence = _idempotency(store) if request.request_id is not None else None
        result = put(
            request, store=store, queue=queue, persistence=persistence, lambda_context=context
        ).to_dict()
    except RequestIdReused as exc:
        return _rejected(exc, 409)
    except ValidationError as exc:
        return _rejected(exc)
    _count(result)
    return {"statusCode": 200, **result}
