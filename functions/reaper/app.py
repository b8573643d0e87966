"""Reaper Lambda: on an EventBridge schedule, plan every policy, write the report, send cleanup tasks.

Thin on purpose: parse the event, call storekeeper.reaper.run, emit metrics. A
dry run unless REAPER_APPLY=true. Accepts an EventBridge rule event (with or
without `version`), EventBridge Scheduler's input and a rule's constant input;
their overrides (`dry_run`, `policies`, `max_deletions`: storekeeper.models.schedule)
may force a dry run, never a real one. Must not import chromadb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser

from storekeeper import config, gauges, reaper, snapstart
from storekeeper.models.schedule import ReaperOverrides, ReaperTrigger
from storekeeper.netconfig import with_deadline
from storekeeper.tracing import make_tracer

if TYPE_CHECKING:  # its runtime-checkable protocols cost the cold start ~6 M instructions (~3 ms)
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on
snapstart.enable("reaper", logger=logger)  # restore hooks; priming under SnapStart only


@tracer.capture_method
def _run(overrides: ReaperOverrides) -> dict[str, Any]:
    apply = config.env_flag(config.REAPER_APPLY) and not overrides.dry_run
    report = reaper.run(apply=apply, policies_path=overrides.policies, max_deletions=overrides.max_deletions)
    totals = report.totals()
    matched = sum(s.matched for s in report.summaries)
    metrics.add_metric(name="Matched", unit=MetricUnit.Count, value=matched)
    metrics.add_metric(name="Planned", unit=MetricUnit.Count, value=totals["planned"])
    metrics.add_metric(name="Protected", unit=MetricUnit.Count, value=totals["protected"])
    # deferred by a cap, plus what the time budget left to the next run of the pass
    deferred = totals["deferred"] + (report.budget.deferred if report.budget is not None else 0)
    metrics.add_metric(name="Deferred", unit=MetricUnit.Count, value=deferred)
    metrics.add_metric(name="TasksSent", unit=MetricUnit.Count, value=report.sent)
    bytes_planned = sum(s.bytes_planned for s in report.summaries)
    metrics.add_metric(name="BytesPlanned", unit=MetricUnit.Bytes, value=bytes_planned)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=totals["errors"])
    if report.status is not None:
        gauges.emit(report.status, report.forecasts)
    gauges.emit_deferred(report.decisions)
    # 1 once the report is stored: the template alarms when a period passes without one
    metrics.add_metric(name="ReportsWritten", unit=MetricUnit.Count, value=int(report.report_key is not None))
    for s in report.summaries:
        logger.info(
            "policy evaluated", extra=s.model_dump(mode="json", exclude={"notes"}) | {"notes": s.notes[:5]}
        )
    for err in report.errors:
        logger.error("reaper error", extra={"error": err})
    logger.info(
        reaper.describe_run(report), extra={"report_key": report.report_key, "digest": report.plan_digest}
    )
    return {
        "run_id": report.run_id,
        "apply": report.apply,
        "report_key": report.report_key,
        "plan_digest": report.plan_digest,
        "totals": totals,
        "pass_complete": report.budget.pass_complete if report.budget is not None else True,
        "sent": report.sent,
        "errors": report.errors,
    }


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@with_deadline
@event_parser(model=ReaperTrigger)
def handler(event: ReaperTrigger, context: LambdaContext) -> dict[str, Any]:
    return _run(event.overrides)
