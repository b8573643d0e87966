"""Cleanup Lambda: SQS batches from CleanupQueue, each record one CleanupTask.

Thin on purpose: the work is in storekeeper.cleanup. Each record succeeds or
fails on its own (partial batch response): a malformed body, an unknown action,
a missing target field or a missing bucket fails that record only, which SQS
retries and then moves to the DLQ; each failure is logged once at ERROR with
the message id, the field and the reason. Executed once per task_id (Powertools
idempotency). Does not import chromadb.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from storekeeper import config, snapstart
from storekeeper.batch import partial_response, record_failure
from storekeeper.cleanup import (
    CleanupRunner,
    CleanupTaskRecord,
    TaskFailed,
    TaskOutcome,
    record_metrics,
    store_resolver,
)
from storekeeper.netconfig import with_deadline
from storekeeper.stores import env_store
from storekeeper.stores.vectors import VectorBackend
from storekeeper.tracing import make_tracer

if TYPE_CHECKING:  # a type only: its module is ~1 M instructions of a cold start
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on
snapstart.enable("cleanup", logger=logger)  # restore hooks; priming under SnapStart only


class CleanupBatch(BatchProcessor):
    """Metrics and the one ERROR line per failed record live in the processor's own hooks."""

    def success_handler(self, record: Any, result: Any) -> Any:
        outcome = TaskOutcome.model_validate(result)
        record_metrics(metrics, outcome)
        logger.info("cleanup task done", extra={"outcome": _brief(outcome)})
        return super().success_handler(record, result)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        exc = exception[1]
        why = record_failure(record, exc)
        if isinstance(exc, TaskFailed):
            record_metrics(metrics, exc.outcome)
            target = next(iter(exc.outcome.errors), "task")
            why.update(field=target, reason=exc.outcome.message, outcome=_brief(exc.outcome))
        else:
            metrics.add_metric(name="TaskFailures", unit=MetricUnit.Count, value=1)
        logger.error("cleanup record failed", extra=why)
        return super().failure_handler(record, exception)


processor = CleanupBatch(
    event_type=EventType.SQS, model=CleanupTaskRecord, raise_on_entire_batch_failure=False
)


def _vectors() -> VectorBackend | None:
    if not os.environ.get(config.SUPABASE_URL):
        return None
    from storekeeper.stores.vectors import open_vector_backend

    return open_vector_backend()


def _idempotency(store: Any) -> Any:
    """Imported on the first call: Powertools' idempotency package imports boto3 (DynamoDB) eagerly."""
    from storekeeper.idempotency import persistence_from_env

    return persistence_from_env(store, "cleanup")


def run_task(record: CleanupTaskRecord, runner: CleanupRunner) -> dict[str, Any]:
    """A record whose body parsed into a CleanupTask: execute it once (TaskFailed fails the record)."""
    return runner.run(record.body).model_dump(mode="json")


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId || id")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@with_deadline
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    store = env_store()
    runner = CleanupRunner(
        resolve_store=store_resolver(store),
        persistence=_idempotency(store),
        vector_backend=_vectors(),
        lambda_context=context,
    )
    return partial_response(event, partial(run_task, runner=runner), processor, context)


def _brief(outcome: TaskOutcome) -> dict[str, Any]:
    return outcome.compact(20).model_dump(mode="json")
