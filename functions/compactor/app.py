"""Compactor Lambda: SQS batches from DeltaQueue, and the scheduled sweep of old pending deltas.

Thin on purpose: the work is in storekeeper.compactor / storekeeper.compaction.
Each SQS record succeeds or fails on its own (partial batch response): a
malformed body, a rejected delta or a failed compaction of its collection
fails that record only. The only function that imports chromadb.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from storekeeper import config
from storekeeper.compactor import (
    DEFAULT_SWEEP_AGE_SECONDS,
    Compactions,
    compact_for_notifications,
    is_sweep_event,
    judge,
    parse_notification,
    sweep,
)
from storekeeper.errors import CorruptObject, PointerTargetMissing
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores import env_store
from storekeeper.tracing import make_tracer

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

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
    else:
        logger.exception("compaction failed", extra={"collection": collection, "error": str(exc)})


def _count(done: Compactions) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for r in done.results():
        metrics.add_metric(name="DeltasApplied", unit=MetricUnit.Count, value=len(r.applied))
        metrics.add_metric(name="SnapshotsPublished", unit=MetricUnit.Count, value=int(bool(r.applied)))
        metrics.add_metric(name="RaceLost", unit=MetricUnit.Count, value=r.races_lost)
        metrics.add_metric(name="DeltasRejected", unit=MetricUnit.Count, value=len(r.rejected))
        logger.info("compaction done", extra={"collection": r.collection, "status": r.status,
                    "version": r.version, "applied": len(r.applied), "rejected": r.rejected,
                    "pending": len(r.pending), "races_lost": r.races_lost})  # fmt: skip
        summary[r.collection] = {"status": r.status, "version": r.version, "applied": len(r.applied)}
    for c, exc in done.errors().items():
        summary[c] = {"status": "error", "error": type(exc).__name__, "message": str(exc)}
    return summary


def _remaining(context: Any) -> Any:
    fn = getattr(context, "get_remaining_time_in_millis", None)
    return fn if callable(fn) else None


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId || id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    store = env_store()
    if is_sweep_event(event):
        age = config.env_int(config.COMPACTOR_SWEEP_AGE_SECONDS, DEFAULT_SWEEP_AGE_SECONDS)
        done = sweep(store, min_age_seconds=age, cache=_cache(), remaining_ms=_remaining(context),
                     on_error=_on_error)  # fmt: skip
        summary = _count(done)
        return {"sweep": True, "collections": summary, "failed": sorted(done.errors())}

    records = event.get("Records", []) if isinstance(event, dict) else []
    done = compact_for_notifications(
        store, [r.get("body", "") for r in records], cache=_cache(), remaining_ms=_remaining(context),
        on_error=_on_error,
    )  # fmt: skip
    _count(done)

    def record_handler(record: SQSRecord) -> str:
        note = parse_notification(record.body)  # ValidationError names the field
        return judge(store, note, done)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)  # fmt: skip
