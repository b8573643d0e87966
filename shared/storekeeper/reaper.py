"""One reaper run: load policies -> list -> evaluate -> plan -> report -> (apply) send tasks.

Dry run is the default and goes through exactly the same code as a real run:
the plan and the report are built first, identically; `apply` only decides
whether the tasks are then sent to the CleanupQueue. The cleanup function
re-checks every task's guard when it executes.

Under a deadline (the Lambda's remaining time, `reap --deadline`) planning is time-budgeted: the run
resumes the pass from its stored continuation, plans what the budget allows, sends those tasks and
only then stores where the next run resumes (`policies.budget`): a run killed before that point is
planned again by the next one, with the same task ids.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from storekeeper import config, history, netconfig
from storekeeper.errors import StorekeeperError
from storekeeper.layout import continuation_key, report_key
from storekeeper.models.common import utc_iso
from storekeeper.models.reports import BudgetReport, ReaperReport, plan_digest
from storekeeper.models.status import Measurement, StoreStatus, StoreTally
from storekeeper.policies import budget as passes
from storekeeper.policies.budget import Budget
from storekeeper.policies.model import LoadedPolicies, load_policies
from storekeeper.policies.planner import Planner, gc_paused
from storekeeper.stores import ObjectStore, open_store

if TYPE_CHECKING:  # the queue is imported by a run that sends tasks; vector stores by a file naming one
    from storekeeper.queues import Queue
    from storekeeper.stores.vectors import VectorBackend


class PlanPreview(NamedTuple):
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
    budget: Budget | None = None,
    max_objects: int | None = None,
) -> ReaperReport:
    """Plan (always), write the report (always), send the tasks (only when `apply`).

    `confirm` (the CLI's prompt) sees the plan before anything is sent; False makes the run a dry run.
    `budget` (default: from the process's deadline, `netconfig`, and the memory bound: `max_objects`,
    else `policies.budget.memory_bound()`) limits planning's time and the objects it holds; a limited
    run resumes and stores the pass's continuation.
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
    if budget is None:
        held = max_objects if max_objects is not None else passes.memory_bound()
        budget = Budget.from_remaining(netconfig.remaining(), max_objects=held)
    requested = apply
    resume = _load_continuation(home, apply, loaded.sha256) if budget.limited else None

    planner = Planner(
        loaded.spec,
        opened,
        now=started,
        vector_backends=vectors,
        max_deletions=max_deletions,
        inventory=inventory,
        budget=budget,
        resume=resume.continuation if resume else None,
    )
    with gc_paused():
        plan = planner.plan()
    # the measurement is the report's history point: a run that writes no report (the bench's
    # planning figure) does not pay for it; it reuses the planner's full listing when there is one
    knows_all = all(v.listed_whole for v in planner.views.values()) if resume else True
    # a budgeted pass sums the usage of each run's part and carries it: the run that completes the
    # pass measures from it (a run that listed the whole bucket measures from its own listing)
    carried = _carry(planner, resume) if resume is not None else None
    pass_done = resume is not None and all(p.finished for p in planner.progress()[0].values())
    measurable = knows_all or (pass_done and carried is not None)
    measure = write_report and measurable
    measured = (
        _measure(loaded, planner, opened, vectors, home, started, None if knows_all else carried)
        if measure
        else None
    )
    earlier = history.read(home, limit=history.MAX_INDEX) if measured else history.History([], [])
    outlook = (
        history.forecasts(measured, [*earlier.points, history.point_of(measured, "now")], now=started)
        if measured
        else []
    )
    errors = list(plan.errors)
    sent = 0
    send_failed = False
    if apply and plan.tasks and confirm is not None:
        preview = PlanPreview(
            tasks=len(plan.tasks),
            planned=sum(s.planned for s in plan.summaries),
            bytes_planned=sum(s.bytes_planned for s in plan.summaries),
        )
        apply = confirm(preview)
    if apply and plan.tasks:
        from storekeeper.queues import OutgoingMessage, QueueSendError, queue_from_env

        q = queue if queue is not None else queue_from_env(config.CLEANUP_QUEUE_URL, "cleanup")
        messages = [
            OutgoingMessage(t.model_dump_json(), group_id=t.bucket, dedup_id=t.task_id) for t in plan.tasks
        ]
        try:
            q.send_batch(messages)
            sent = len(messages)
        except QueueSendError as exc:
            sent = len(messages) - len(exc.failures)
            send_failed = True
            errors.append(f"cleanup queue {exc.queue}: {len(exc.failures)} task(s) not sent: {exc}")

    budget_report = None
    if resume is not None:
        unchanged = "not confirmed" if apply != requested else "tasks not all sent" if send_failed else None
        budget_report = _advance(planner, plan.waiting, home, resume, requested, loaded.sha256, started,
                                 unchanged=unchanged, measured=measurable, usage=carried)  # fmt: skip
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
        plan_digest="",  # set below: the digest is written by the report's serializer
        sent=sent,
        errors=errors,
        report_key=key if write_report else None,
        status=measured,
        forecasts=outlook,
        listings=plan.listings,
        budget=budget_report,
    )
    # built after the models it holds (status, forecasts, budget), the report's schema reuses theirs;
    # the digest then needs no schema of its own (no list adapters)
    with gc_paused():  # it runs over every decision the plan built
        report = report.model_copy(
            update={"plan_digest": plan_digest(plan.decisions, plan.tasks, plan.summaries)}
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


def _load_continuation(home: ObjectStore, apply: bool, policies_sha256: str) -> passes.Loaded:
    """This mode's continuation; unreadable (the store failed) is a fresh pass, said in the report."""
    try:
        return passes.load(home, apply=apply, policies_sha256=policies_sha256)
    except StorekeeperError as exc:
        key = continuation_key(passes.scope(apply))
        return passes.Loaded(None, key, None, f"continuation {key} not read ({exc}): the pass starts over")


def _advance(
    planner: Planner,
    waiting: list[str],
    home: ObjectStore,
    resume: passes.Loaded,
    apply: bool,
    policies_sha256: str,
    now: datetime,
    *,
    unchanged: str | None,
    measured: bool,
    usage: dict[str, StoreTally] | None,
) -> BudgetReport:
    """Store where the next run resumes (after the tasks were sent) and say what was deferred."""
    stores, reports = planner.progress()
    complete = all(p.finished for p in stores.values())
    prev = resume.continuation
    cont = passes.next_continuation(
        prev,
        apply=apply,
        policies_sha256=policies_sha256,
        now=now,
        # a cleared one keeps what the pass did (every store finished, the policies that decided):
        # `complete` alone makes the next run start a new pass, in every version's reader
        stores=stores,
        decided=planner.decided,
        complete=complete,
        usage=None if complete else usage,
    )
    notes = [resume.problem] if resume.problem else []
    if not measured and complete:
        notes.append("status not measured: this pass's usage was not carried from its start")
    elif not measured:
        notes.append(
            "status not measured: this run planned only part of the bucket; its usage is carried in the "
            "continuation and the run that completes the pass measures"
        )
    if unchanged:
        notes.append(f"{unchanged}: the continuation is left as it was; the next run plans this part again")
        stored = resume.etag is not None and prev is not None
    else:
        problem = passes.save(home, resume, cont)
        if problem:
            notes.append(problem)
        stored = problem is None and not complete
    return BudgetReport(
        seconds=planner.budget.seconds,
        max_objects=planner.budget.max_objects,
        ran_out=planner.budget.ran_out,
        pass_complete=complete,
        pass_started_at=cont.pass_started_at,
        run_in_pass=cont.runs,
        continuation_key=resume.key if stored else None,
        stores=reports,
        policies_waiting=waiting,
        notes=notes,
    )


def _carry(planner: Planner, resume: passes.Loaded) -> dict[str, StoreTally] | None:
    """The pass's usage so far: what the continuation carried plus this run's part of each store (the
    keys it planned). None when it cannot be known whole (a pass begun without it, a failed listing)."""
    from storekeeper.status import UsageSum, merge

    prev = resume.continuation
    if prev is not None and prev.usage is None:
        return None
    out = dict(prev.usage) if prev is not None and prev.usage is not None else {}
    for name, view in planner.views.items():
        if view.finished:
            continue
        try:
            part = UsageSum.of_table(view.table("")).settle(view.store, partial=True)
        except StorekeeperError:
            return None
        out[name] = merge(out[name], part) if name in out else part
    return out


def _measure(
    loaded: LoadedPolicies,
    planner: Planner,
    stores: Mapping[str, ObjectStore],
    vectors: Mapping[str, Any],
    home: ObjectStore,
    now: datetime,
    carried: dict[str, StoreTally] | None = None,
) -> Measurement:
    """The stores as the planner listed them, summed from its listing's columns (no second listing,
    no object built), or as a pass's runs carried them."""
    from storekeeper.status import UsageSum, measure

    def tally(name: str, store: ObjectStore) -> StoreTally:
        if carried is not None and name in carried:
            return carried[name]
        view = planner.views.get(name)
        whole = view.complete_table() if view is not None else None
        summed = UsageSum.of_table(whole) if whole is not None else UsageSum.of_listing(store.list(""))
        return summed.settle(store)

    return measure(loaded, stores, vectors, home=home, now=now, tallies=tally)


def _write_page(home: ObjectStore, st: StoreStatus) -> None:
    """reports/reaper/latest.html next to the report: the status page as of this run (best effort)."""
    from storekeeper.status_page import render_html

    # best effort: the report is what counts; the next run or `status --html` makes the page again
    with contextlib.suppress(StorekeeperError):
        home.put(history.LATEST_PAGE, render_html(st).encode(), content_type="text/html; charset=utf-8")


def describe_run(report: ReaperReport) -> str:
    t = report.totals()
    mode = "APPLY" if report.apply else "dry run"
    line = (
        f"{mode} {utc_iso(report.started_at)}: {t['planned']} planned, {t['protected']} protected, "
        f"{t['skipped']} skipped, {t['deferred']} deferred; {t['tasks']} task(s), {report.sent} sent"
    )
    return line + (f"; {describe_budget(report.budget)}" if report.budget is not None else "")


def describe_budget(b: BudgetReport) -> str:
    """One line: where the pass stands and what was left for the next run."""
    if b.pass_complete:
        return f"pass complete (run {b.run_in_pass} of the pass)"
    if b.ran_out == "memory":
        why = f"the objects held reached the memory bound of {b.max_objects}"
    else:
        why = f"the budget ran out during {b.ran_out or 'planning'}"
    parts = [f"pass continues (run {b.run_in_pass}; {why})"]
    for s in b.stores:
        if not s.finished:
            where = repr(s.resume_after) if s.resume_after else "the start"
            left = f", {s.left_unplanned} listed key(s) left unplanned" if s.left_unplanned else ""
            rest = "" if s.listing_complete else ", the rest not listed yet"
            ranges = f" in {s.ranges_left} ranges, the lowest" if s.ranges_left > 1 else ""
            parts.append(
                f"store {s.store} resumes{ranges} after {where} ({s.keys_planned} key(s) planned{left}{rest})"
            )
    if b.policies_waiting:
        parts.append("waiting: " + ", ".join(b.policies_waiting))
    return "; ".join(parts)
