"""Compactor Lambda: SQS batches from DeltaQueue, and the scheduled sweep of old pending deltas.

Thin on purpose: the work is in storekeeper.compactor / storekeeper.compaction
(see storekeeper.compactor for which records succeed and why). Each SQS record
succeeds or fails on its own (partial batch response). The only function that
imports chromadb.

Why BatchProcessor and not SqsFifoPartialProcessor on a FIFO queue: the FIFO
processor stops at the first failure and fails every later record of the batch,
to keep a group's order. Our order lives in the store, not in the queue: a
compaction applies every pending delta of the collection in delta_id order,
whatever the notifications say, so one bad message must not fail the records
after it (which would freeze the collection's group for another visibility
timeout).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from storekeeper import config, gauges
from storekeeper.batch import RecordFailed, partial_response, record_failure
from storekeeper.compaction import CompactionResult, CompactionSettings, RacesLost
from storekeeper.compaction_budget import CompactionTooLarge
from storekeeper.compactor import (
    DEFAULT_SWEEP_AGE_SECONDS,
    Compactions,
    DeltaNotificationRecord,
    RecordOutcome,
    is_sweep_event,
    judge,
    sweep,
)
from storekeeper.errors import CorruptObject, PointerTargetMissing
from storekeeper.netconfig import with_deadline
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores import env_store
from storekeeper.tracing import make_tracer

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on

#: record outcome -> the metric it counts (docs/compaction.md lists them)
OUTCOME_METRICS: dict[RecordOutcome, str] = {
    "applied": "NotificationsApplied",
    "already_applied": "DeltasAlreadyApplied",
    "quarantined": "DeltasQuarantined",
    "left_to_sweep": "DeltasLeftToSweep",
}
#: an invocation that ends with less than this share of its time left counts as NearTimeout
NEAR_TIMEOUT_SHARE = 0.2


class CompactorBatch(BatchProcessor):
    """Metrics and the one ERROR line per failed record live in the processor's own hooks."""

    def success_handler(self, record: Any, result: Any) -> Any:
        metrics.add_metric(name=OUTCOME_METRICS[result], unit=MetricUnit.Count, value=1)
        return super().success_handler(record, result)

    def failure_handler(self, record: Any, exception: Any) -> Any:
        why = record_failure(record, exception[1])
        failed_compaction = why["field"] == "collection" and isinstance(exception[1], RecordFailed)
        metrics.add_metric(
            name="CompactionFailures" if failed_compaction else "BadMessages", unit=MetricUnit.Count, value=1
        )
        logger.error("record failed", extra=why)
        return super().failure_handler(record, exception)


processor = CompactorBatch(
    event_type=EventType.SQS, model=DeltaNotificationRecord, raise_on_entire_batch_failure=False
)
_caches: dict[str, SnapshotCache] = {}


def _cache() -> SnapshotCache:
    """Kept across warm invocations: an unchanged snapshot is not downloaded again."""
    root = os.environ.get(config.COMPACTOR_CACHE_DIR) or "/tmp/storekeeper-cache"
    if root not in _caches:
        _caches[root] = SnapshotCache(root)
    return _caches[root]


def _on_error(collection: str, exc: Exception) -> None:
    if isinstance(exc, PointerTargetMissing | CorruptObject):
        metrics.add_metric(name="PointerTargetMissing", unit=MetricUnit.Count, value=1)
        logger.error("published snapshot missing or corrupt: compaction stopped, nothing published",
                     extra={"collection": collection, "error": str(exc)})  # fmt: skip
    elif isinstance(exc, RacesLost):  # contention, not a bug: no traceback; its records are retried
        logger.error("compaction lost every pointer race: nothing published",
                     extra={"collection": collection, "error": str(exc)})  # fmt: skip
    elif isinstance(exc, CompactionTooLarge):  # a sizing problem, not a bug: no traceback
        logger.error("collection too large for one compaction: nothing published",
                     extra={"collection": collection, "error": str(exc)})  # fmt: skip
    else:
        logger.exception("compaction failed", extra={"collection": collection, "error": str(exc)})


def _races(r: CompactionResult) -> None:
    """Lost pointer races and the versions they left behind, for a compaction that published or not."""
    metrics.add_metric(name="RaceLost", unit=MetricUnit.Count, value=r.races_lost)
    metrics.add_metric(name="LostVersionsKept", unit=MetricUnit.Count, value=len(r.lost_kept))
    if r.lost_kept:  # versions of lost pointer races it could not remove: the reaper's orphan rule will
        logger.warning("lost versions left behind", extra={"collection": r.collection,
                       "versions": r.lost_kept})  # fmt: skip


def _count(done: Compactions) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for r in done.results():
        metrics.add_metric(name="DeltasApplied", unit=MetricUnit.Count, value=len(r.applied))
        metrics.add_metric(name="SnapshotsPublished", unit=MetricUnit.Count, value=int(bool(r.applied)))
        _races(r)
        metrics.add_metric(name="DeltasRejected", unit=MetricUnit.Count, value=len(r.rejected))
        metrics.add_metric(name="VersionsRemoved", unit=MetricUnit.Count, value=len(r.retired))
        gauges.emit_compaction(r, done.store.bucket)  # CompactionSeconds, BytesFreed: own dimensions
        if r.retention_errors:
            logger.warning("retention left versions behind", extra={"collection": r.collection,
                           "errors": r.retention_errors})  # fmt: skip
        logger.info("compaction done", extra={"collection": r.collection, "status": r.status,
                    "version": r.version, "applied": len(r.applied), "rejected": r.rejected,
                    "pending": len(r.pending), "races_lost": r.races_lost,
                    "lost_removed": r.lost_removed, "seconds": round(r.seconds, 3),
                    "phase_seconds": r.phase_seconds, "bytes_freed": r.bytes_freed})  # fmt: skip
        summary[r.collection] = {"status": r.status, "version": r.version, "applied": len(r.applied)}
    for c, exc in done.errors().items():
        if isinstance(exc, RacesLost):  # it gave up after losing every race: those count too
            _races(exc.result)
        summary[c] = {"status": "error", "error": type(exc).__name__, "message": str(exc)}
    return summary


def _compactions(context: LambdaContext | None) -> Compactions:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    remaining_ms = remaining if callable(remaining) else None
    settings = CompactionSettings(
        min_interval_s=config.env_int(
            config.COMPACTOR_MIN_INTERVAL_SECONDS, config.DEFAULT_MIN_INTERVAL_SECONDS
        ),
        keep_versions=config.env_int(config.COMPACTOR_KEEP_VERSIONS, config.DEFAULT_KEEP_VERSIONS),
    )
    return Compactions(
        env_store(),
        _cache(),
        settings,
        remaining_ms=remaining_ms,
        total_ms=remaining_ms() if remaining_ms is not None else None,
        on_error=_on_error,
    )


def _near_timeout(done: Compactions) -> None:
    if done.remaining_ms is None or not done.total_ms:
        return
    near = done.remaining_ms() < NEAR_TIMEOUT_SHARE * done.total_ms
    metrics.add_metric(name="NearTimeout", unit=MetricUnit.Count, value=int(near))
    if near:
        logger.warning("invocation ended close to its timeout", extra={"remaining_ms": done.remaining_ms()})


def judge_record(record: DeltaNotificationRecord, compactions: Compactions) -> RecordOutcome:
    """A record whose body parsed (Powertools parsed it once, into the model): judge it."""
    return judge(compactions, record.body)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId || id")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@with_deadline
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | PartialItemFailureResponse:
    done = _compactions(context)
    if is_sweep_event(event):
        age = config.env_int(config.COMPACTOR_SWEEP_AGE_SECONDS, DEFAULT_SWEEP_AGE_SECONDS)
        pending = sweep(done, min_age_seconds=age)
        metrics.add_metric(name="PendingDeltas", unit=MetricUnit.Count, value=pending.count)
        metrics.add_metric(name="OldestPendingDeltaAge", unit=MetricUnit.Seconds, value=pending.oldest_age_s)
        summary = _count(done)
        _near_timeout(done)
        return {"sweep": True, "collections": summary, "failed": sorted(done.errors()),
                "pending": pending.count, "oldest_pending_age_s": pending.oldest_age_s}  # fmt: skip

    # each collection is compacted on its first record, every record judged
    response = partial_response(event, partial(judge_record, compactions=done), processor, context)
    _count(done)
    _near_timeout(done)
    return response
