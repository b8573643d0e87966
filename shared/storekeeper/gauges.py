"""Metrics with their own dimension (`bucket`, `vector_store`, `collection`) as EMF.

The reaper's gauges (what `status` shows, as metrics CloudWatch alarms can use), the
compactor's CompactionSeconds per collection, and BytesFreed per bucket (cleanup and the
compactor's own removals). The dimension varies per record, so each set is its own EMF
document, through Powertools' EphemeralMetrics: nothing mixes with the handler's metric set
(whose only dimension is `service`). Names are listed in docs/operations.md with what to do
when their alarm fires.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from storekeeper.compaction import CompactionResult
    from storekeeper.models.reports import Decision
    from storekeeper.models.status import Forecast, Measurement

#: forecast targets -> metric name; a gauge only exists while there is a forecast to give
FORECAST_METRICS = {
    ("usage", "high"): "DaysToHighWatermark",
    ("usage", "hard"): "DaysToHardWatermark",
    ("vector-buckets", "quota"): "DaysToVectorQuota",
}


def emit_set(dimensions: dict[str, str], values: list[tuple[str, MetricUnit, float]]) -> None:
    """One EMF document: `values` (name, unit, value) under `dimensions` (plus `service`)."""
    if not values:
        return
    m = EphemeralMetrics()
    for name, value in dimensions.items():
        m.add_dimension(name=name, value=value)
    for name, unit, v in values:
        m.add_metric(name=name, unit=unit, value=v)
    m.flush_metrics()


def emit(m: Measurement, forecasts: list[Forecast]) -> None:
    """Print the gauges of one measurement as EMF (stdout: the function's log)."""
    days = {
        (f.store, FORECAST_METRICS[f.metric, f.target]): f.days
        for f in forecasts
        if (f.metric, f.target) in FORECAST_METRICS and f.days is not None
    }
    for b in m.buckets:
        if b.state == "error":
            continue
        values: list[tuple[str, MetricUnit, float]] = [
            ("UsageBytes", MetricUnit.Bytes, float(b.bytes)),
            ("UsageObjects", MetricUnit.Count, float(b.objects)),
        ]
        if b.ratio is not None:
            values.append(("UsageRatio", MetricUnit.NoUnit, b.ratio))
            values.append(("HighWatermark", MetricUnit.NoUnit, b.high))
        for name in ("DaysToHighWatermark", "DaysToHardWatermark"):
            if (b.store, name) in days:
                values.append((name, MetricUnit.Count, float(days[b.store, name] or 0.0)))
        emit_set({"bucket": b.bucket}, values)
    for v in m.vectors:
        if v.error:
            continue
        values = [
            ("VectorBuckets", MetricUnit.Count, float(v.buckets)),
            ("VectorBucketQuota", MetricUnit.Count, float(v.quota)),
            ("VectorQuotaRatio", MetricUnit.NoUnit, v.buckets / v.quota),
        ]
        if (v.store, "DaysToVectorQuota") in days:
            values.append(
                ("DaysToVectorQuota", MetricUnit.Count, float(days[v.store, "DaysToVectorQuota"] or 0.0))
            )
        emit_set({"vector_store": v.store}, values)
    # one set without a per-bucket dimension: the alarms need no bucket or store name, and
    # overflow buckets and vector stores named only in the policies file are covered too
    emit_set(
        {},
        [
            ("BucketsAboveHighWatermark", MetricUnit.Count,
             float(sum(b.state in ("above-high", "above-hard") for b in m.buckets))),
            ("BucketsAboveHardWatermark", MetricUnit.Count,
             float(sum(b.state == "above-hard" for b in m.buckets))),
            ("VectorStoresAtQuota", MetricUnit.Count,
             float(sum(not v.error and v.buckets >= v.quota for v in m.vectors))),
        ],
    )  # fmt: skip
    for c in m.collections:
        emit_set(
            {"collection": c.collection},
            [
                ("PendingDeltas", MetricUnit.Count, float(c.pending_deltas)),
                ("OldestPendingDeltaAge", MetricUnit.Seconds, float(c.oldest_pending_age_s or 0.0)),
                ("SnapshotBytes", MetricUnit.Bytes, float(c.versions_bytes)),
                ("SnapshotVersions", MetricUnit.Count, float(c.versions)),
                ("SnapshotRecords", MetricUnit.Count, float(c.record_count or 0)),
                ("PointerAge", MetricUnit.Seconds, float(c.pointer_age_s or 0.0)),
            ],
        )


def emit_bytes_freed(bucket: str, freed: int) -> None:
    """BytesFreed of one run of deletes in `bucket` (a cleanup task, a compaction's removals)."""
    emit_set({"bucket": bucket}, [("BytesFreed", MetricUnit.Bytes, float(freed))])


def emit_compaction(r: CompactionResult, bucket: str) -> None:
    """CompactionSeconds per collection, split into its phases (`fetch` -> CompactionFetchSeconds,
    ...: storekeeper.compaction.PHASES), for a run that published a version; BytesFreed in
    `bucket` for a run whose removal of applied deltas or retired versions freed bytes."""
    if r.applied:
        values = [("CompactionSeconds", MetricUnit.Seconds, r.seconds)]
        phases = r.phase_seconds.items()
        values += [(f"Compaction{p.title()}Seconds", MetricUnit.Seconds, s) for p, s in phases]
        emit_set({"collection": r.collection}, values)
    if r.bytes_freed:
        emit_bytes_freed(bucket, r.bytes_freed)


def emit_deferred(decisions: Iterable[Decision]) -> None:
    """Deferred per bucket: deletions a run planned beyond `max_deletions`, left for the next run
    (the run's total, `Deferred` with `service` only, is what the reaper-deferring alarm watches)."""
    per_bucket = Counter(d.bucket for d in decisions if d.verdict == "deferred")
    for bucket, n in sorted(per_bucket.items()):
        emit_set({"bucket": bucket}, [("Deferred", MetricUnit.Count, float(n))])
