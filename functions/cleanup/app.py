"""Cleanup Lambda: SQS batches from CleanupQueue, each record one CleanupTask.

Thin on purpose: the work is in storekeeper.cleanup. Each record succeeds or
fails on its own (partial batch response): a malformed body, an unknown action,
a missing target field or a missing bucket fails that record only, which SQS
retries and then moves to the DLQ. Executed once per task_id (Powertools
idempotency). Does not import chromadb.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from storekeeper import config
from storekeeper.cleanup import (
    CleanupRunner,
    TaskFailed,
    TaskOutcome,
    parse_task,
    record_metrics,
    store_resolver,
)
from storekeeper.cleanup.base import VectorBackend
from storekeeper.errors import ValidationError
from storekeeper.stores import env_store
from storekeeper.tracing import make_tracer

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _vectors() -> VectorBackend | None:
    if not os.environ.get(config.SUPABASE_URL):
        return None
    from storekeeper.stores.vectors import open_vector_backend

    return open_vector_backend()


def _idempotency(store: Any) -> Any:
    """Imported on the first call: Powertools' idempotency package imports boto3 (DynamoDB) eagerly."""
    from storekeeper.idempotency import persistence_from_env

    return persistence_from_env(store, "cleanup")


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId || id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    store = env_store()
    runner = CleanupRunner(
        resolve_store=store_resolver(store),
        persistence=_idempotency(store),
        vector_backend=_vectors(),
        lambda_context=context,
    )

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        try:
            task = parse_task(record.body)  # ValidationError names the field: this record fails alone
        except ValidationError as exc:
            metrics.add_metric(name="TaskFailures", unit=MetricUnit.Count, value=1)
            logger.error("malformed cleanup task", extra={"message_id": record.message_id, "error": str(exc)})
            raise
        logger.set_correlation_id(task.task_id)
        logger.append_keys(task_id=task.task_id, action=task.action.value, bucket=task.bucket)
        try:
            outcome = runner.run(task)
        except TaskFailed as exc:
            record_metrics(metrics, exc.outcome)
            logger.error("cleanup task failed", extra={"outcome": _brief(exc.outcome)})
            raise
        record_metrics(metrics, outcome)
        logger.info("cleanup task done", extra={"outcome": _brief(outcome)})
        return {"task_id": task.task_id, "status": outcome.status, "duplicate": outcome.duplicate}

    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)  # fmt: skip
    return dict(response)


def _brief(outcome: TaskOutcome) -> dict[str, Any]:
    return outcome.compact(20).model_dump(mode="json")
