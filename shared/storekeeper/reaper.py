"""One reaper run: load policies -> list -> evaluate -> plan -> report -> (apply) send tasks.

Dry run is the default and goes through exactly the same code as a real run:
the plan and the report are built first, identically; `apply` only decides
whether the tasks are then sent to the CleanupQueue. The cleanup function
re-checks every task's guard when it executes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storekeeper import config, history
from storekeeper.errors import StorekeeperError
from storekeeper.layout import report_key
from storekeeper.models.common import utc_iso
from storekeeper.models.reports import ReaperReport, plan_digest
from storekeeper.models.status import Measurement, StoreStatus
from storekeeper.policies.model import LoadedPolicies, load_policies
from storekeeper.policies.planner import Planner, gc_paused
from storekeeper.queues import OutgoingMessage, Queue, QueueSendError, queue_from_env
from storekeeper.stores import ObjectStore, open_store
from storekeeper.stores.base import ObjectInfo
from storekeeper.stores.vectors import VectorBackend


@dataclass(frozen=True)
class PlanPreview:
    """What an --apply run is about to send, for a confirmation prompt."""

    tasks: int
    planned: int
    bytes_planned: int


def open_stores(
    loaded: LoadedPolicies, store_url: str | None, *, create: bool = True
) -> dict[str, ObjectStore]:
    """Object stores named in the file; a store without url is the run's store (--store / env / default).

    `create=False` for reading commands: a missing local store directory is not made."""
    out: dict[str, ObjectStore] = {}
    for name, spec in loaded.spec.stores.items():
        if spec.kind == "objects":
            out[name] = open_store(spec.url or store_url, create=create)
    return out


def open_vector_backends(loaded: LoadedPolicies) -> dict[str, VectorBackend]:
    """Vector stores need the Supabase adapter; it is imported only when a policy file asks for one."""
    specs = {n: s for n, s in loaded.spec.stores.items() if s.kind == "vectors"}
    if not specs:
        return {}
    from storekeeper.stores.vectors import open_vector_backend

    # one Supabase project per deployment (SUPABASE_URL / SUPABASE_SERVICE_KEY); url is informational
    return {name: open_vector_backend() for name in specs}


def run(
    *,
    policies: LoadedPolicies | None = None,
    policies_path: str | None = None,
    store_url: str | None = None,
    apply: bool | None = None,
    now: datetime | None = None,
    queue: Queue | None = None,
    stores: Mapping[str, ObjectStore] | None = None,
    vector_backends: Mapping[str, VectorBackend] | None = None,
    max_deletions: int | None = None,
    write_report: bool = True,
    confirm: Callable[[PlanPreview], bool] | None = None,
    inventory: str | None = None,
) -> ReaperReport:
    """Plan (always), write the report (always), send the tasks (only when `apply`).

    `confirm` (the CLI's prompt) sees the plan before anything is sent; False makes the run a dry run.
    """
    loaded = policies or load_policies(policies_path)
    apply = config.env_flag(config.REAPER_APPLY) if apply is None else apply
    if max_deletions is None and os.environ.get(config.REAPER_MAX_DELETIONS):
        max_deletions = config.env_int(config.REAPER_MAX_DELETIONS, loaded.spec.defaults.max_deletions)
    started = now or datetime.now(UTC)
    opened = dict(stores) if stores is not None else open_stores(loaded, store_url)
    vectors = dict(vector_backends) if vector_backends is not None else open_vector_backends(loaded)
    # the report goes to the run's store: --store / env, else the file's `main`, else the default
    home = open_store(store_url) if store_url or "main" not in opened else opened["main"]

    planner = Planner(
        loaded.spec,
        opened,
        now=started,
        vector_backends=vectors,
        max_deletions=max_deletions,
        inventory=inventory,
    )
    with gc_paused():  # the digest too: it runs over every decision the plan just built
        plan = planner.plan()
        digest = plan_digest(plan.decisions, plan.tasks, plan.summaries)
    # the measurement is the report's history point: a run that writes no report (the bench's
    # planning figure) does not pay for it; it reuses the planner's full listing when there is one
    measured = _measure(loaded, planner, opened, vectors, home, started) if write_report else None
    earlier = history.read(home, limit=history.MAX_INDEX) if measured else history.History([], [])
    outlook = (
        history.forecasts(measured, [*earlier.points, history.point_of(measured, "now")], now=started)
        if measured
        else []
    )
    errors = list(plan.errors)
    sent = 0
    if apply and plan.tasks and confirm is not None:
        preview = PlanPreview(
            tasks=len(plan.tasks),
            planned=sum(s.planned for s in plan.summaries),
            bytes_planned=sum(s.bytes_planned for s in plan.summaries),
        )
        apply = confirm(preview)
    if apply and plan.tasks:
        q = queue if queue is not None else queue_from_env(config.CLEANUP_QUEUE_URL, "cleanup")
        messages = [
            OutgoingMessage(t.model_dump_json(), group_id=t.bucket, dedup_id=t.task_id) for t in plan.tasks
        ]
        try:
            q.send_batch(messages)
            sent = len(messages)
        except QueueSendError as exc:
            sent = len(messages) - len(exc.failures)
            errors.append(f"cleanup queue {exc.queue}: {len(exc.failures)} task(s) not sent: {exc}")

    key = report_key(started)
    report = ReaperReport(
        run_id=f"{started.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}",
        started_at=started,
        finished_at=max(started, datetime.now(UTC)),
        apply=apply,
        policies_source=loaded.source,
        policies_sha256=loaded.sha256,
        summaries=plan.summaries,
        decisions=plan.decisions,
        tasks=plan.tasks,
        plan_digest=digest,
        sent=sent,
        errors=errors,
        report_key=key if write_report else None,
        status=measured,
        forecasts=outlook,
        listings=plan.listings,
    )
    if write_report:
        try:
            home.put(key, report.model_dump_json(indent=1).encode(), content_type="application/json")
        except StorekeeperError as exc:
            report = report.model_copy(
                update={"report_key": None, "errors": [*report.errors, f"report not written: {exc}"]}
            )
        else:
            if measured is not None:
                now_known = history.record(home, earlier, history.run_of(report))
                _write_page(home, history.status_from(measured, now_known))
    return report


def _measure(
    loaded: LoadedPolicies,
    planner: Planner,
    stores: Mapping[str, ObjectStore],
    vectors: Mapping[str, Any],
    home: ObjectStore,
    now: datetime,
) -> Measurement:
    """The stores as the planner listed them (its cached full listing: no second listing)."""
    from storekeeper.status import measure

    def listing(name: str, store: ObjectStore) -> list[ObjectInfo]:
        view = planner.views.get(name)
        return view.listing("") if view is not None else list(store.list(""))

    return measure(loaded, stores, vectors, home=home, now=now, lister=listing)


def _write_page(home: ObjectStore, st: StoreStatus) -> None:
    """reports/reaper/latest.html next to the report: the status page as of this run (best effort)."""
    from storekeeper.status_page import render_html

    # best effort: the report is what counts; the next run or `status --html` makes the page again
    with contextlib.suppress(StorekeeperError):
        home.put(history.LATEST_PAGE, render_html(st).encode(), content_type="text/html; charset=utf-8")


def describe_run(report: ReaperReport) -> str:
    t = report.totals()
    mode = "APPLY" if report.apply else "dry run"
    return (
        f"{mode} {utc_iso(report.started_at)}: {t['planned']} planned, {t['protected']} protected, "
        f"{t['skipped']} skipped, {t['deferred']} deferred; {t['tasks']} task(s), {report.sent} sent"
    )
