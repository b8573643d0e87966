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
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from storekeeper import config
from storekeeper.errors import ValidationError
from storekeeper.idempotency import persistence_from_env
from storekeeper.producer import (
    FUNCTION_NAME,
    RequestIdReused,
    RequestInProgress,
    S3RecordsFailed,
    handle_s3_event,
    parse_put_request,
    put,
)
from storekeeper.queues import Queue, queue_from_env
from storekeeper.stores import ObjectStore, default_store_url, open_store

logger = Logger()
metrics = Metrics()
tracer = Tracer()

CORRELATION_PATH = 'request_id || Records[0].responseElements."x-amz-request-id" || detail."request-id" || id'

_deps: dict[tuple[str, str, str], tuple[ObjectStore, Queue, Any]] = {}


def _dependencies() -> tuple[ObjectStore, Queue, Any]:
    """Store, queue and idempotency layer, reused across warm invocations with the same settings."""
    cache_key = (
        default_store_url(),
        os.environ.get(config.DELTA_QUEUE_URL, ""),
        os.environ.get(config.IDEMPOTENCY_TABLE, ""),
    )
    if cache_key not in _deps:
        store = open_store(None)
        queue = queue_from_env(config.DELTA_QUEUE_URL, "delta")
        _deps[cache_key] = (store, queue, persistence_from_env(store, FUNCTION_NAME))
    return _deps[cache_key]


def _count(result: dict[str, Any]) -> None:
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
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    store, queue, persistence = _dependencies()
    if _is_s3_event(event):
        try:
            out = handle_s3_event(
                event, store=store, queue=queue, persistence=persistence, lambda_context=context
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
        result = put(request, store=store, queue=queue, persistence=persistence, lambda_context=context)
    except RequestIdReused as exc:
        return _rejected(exc, 409)
    except ValidationError as exc:
        return _rejected(exc)
    except RequestInProgress as exc:
        return {"statusCode": 409, "error": "RequestInProgress", "field": "request_id", "reason": str(exc)}
    _count(result)
    return {"statusCode": 200, **result}
