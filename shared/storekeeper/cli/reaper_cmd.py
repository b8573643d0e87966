"""`storekeeper reap`: plan every policy, show the decisions, and (with --apply) send the tasks.

The dry run (default) and --apply run the same planner and print the same
table; --apply only adds the sending. Locally the tasks land in the local
cleanup queue, which `storekeeper cleanup` drains.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from storekeeper.cli.common import JsonOpt, StoreOpt, YesOpt, ask, console, emit_json, friendly_errors
from storekeeper.models.reports import ReaperReport
from storekeeper.policies.units import format_size

MAX_ROWS = 60
STYLE = {"planned": "bold red", "protected": "green", "skipped": "dim", "deferred": "yellow"}


def print_report(report: ReaperReport) -> None:
    from storekeeper.reaper import describe_run

    shown = [d for d in report.decisions if d.verdict != "skipped"][:MAX_ROWS]
    table = Table(title="reaper plan" + (" (APPLY)" if report.apply else " (dry run: nothing is sent)"))
    # two narrow columns and one wide: the name and, under it, the reason read whole at 80 columns
    table.add_column("verdict", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("policy: resource / why", overflow="fold")
    group: tuple[str, str] | None = None
    for d in shown:
        if (d.policy, d.resource) != group:
            if group is not None:
                table.add_section()
            group = (d.policy, d.resource)
            table.add_row("", "", f"[bold]{escape(d.policy)}[/]: {escape(d.resource)}")
        v = f"[{STYLE[d.verdict]}]{d.verdict}[/]"
        table.add_row(v, format_size(d.size or 0), f"{escape(d.name)}\n[dim]{escape(d.reason)}[/]")
    if shown:
        console.print(table)
    else:
        console.print("nothing to do: no resource was planned, protected or deferred by any policy")
    hidden = len(report.decisions) - len(shown)
    if hidden:
        console.print(f"[dim]{hidden} more decision(s) (skipped or beyond {MAX_ROWS} rows): see --json[/]")
    summary = Table(title="per policy (seen, matched, planned, protected, skipped, deferred)")
    summary.add_column("policy", overflow="fold", min_width=12)
    for col in ("seen", "match", "plan", "prot", "skip", "def", "bytes"):
        summary.add_column(col, justify="right")
    for s in report.summaries:
        summary.add_row(
            s.policy, str(s.evaluated), str(s.matched), str(s.planned), str(s.protected), str(s.skipped),
            str(s.deferred), format_size(s.bytes_planned),
        )  # fmt: skip
    console.print(summary)
    for s in report.summaries:  # under the table, whole lines: a notes column would fold every word
        for note in s.notes:
            console.print(f"{escape(s.policy)}: {escape(note)}", highlight=False)
        for e in s.errors:
            console.print(f"[red]{escape(s.policy)}: {escape(e)}[/]", highlight=False)
    for li in report.listings:
        console.print(
            f"listing {li.store}:{li.prefix or '/'} ({li.source}): {li.objects} objects, {li.requests} "
            f"requests (sequential minimum {li.sequential_minimum}, {li.ranges} ranges) in {li.seconds:.2f} s"
        )
    if report.budget is not None:
        for note in report.budget.notes:
            console.print(f"[yellow]budget:[/] {note}")
    for err in report.errors:
        console.print(f"[bold red]error:[/] {err}")
    console.print(describe_run(report) + (f"; report {report.report_key}" if report.report_key else ""))


def register(app: typer.Typer) -> None:
    @app.command("reap")
    def reap(
        policies: Annotated[
            Path | None,
            typer.Option("--policies", help="Policies YAML (env REAPER_POLICIES; default: bundled)."),
        ] = None,
        apply: Annotated[
            bool,
            typer.Option(
                "--apply", help="Send the planned cleanup tasks (default: dry run, or REAPER_APPLY)."
            ),
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", help="Plan and report only (the default; wins over REAPER_APPLY)."),
        ] = False,
        yes: YesOpt = False,
        max_deletions: Annotated[
            int | None, typer.Option("--max-deletions", help="Cap on deletions planned in this run.")
        ] = None,
        inventory: Annotated[
            str | None,
            typer.Option(
                "--inventory",
                help="Plan from this S3 Inventory manifest.json (s3://bucket/key or a path) instead of "
                "listing the store; deletions still re-check every object.",
            ),
        ] = None,
        deadline: Annotated[
            float | None,
            typer.Option(
                "--deadline",
                min=1,
                max=7 * 24 * 3600,
                help="Seconds this run may take: planning stops in time, stores where the next run "
                "resumes and says what it deferred (env STOREKEEPER_DEADLINE).",
            ),
        ] = None,
        max_objects: Annotated[
            int | None,
            typer.Option(
                "--max-objects",
                min=1,
                help="Objects this run may hold while planning (the memory bound): past it, planning "
                "stops and stores where the next run resumes (env STOREKEEPER_REAPER_MAX_OBJECTS; in "
                "Lambda derived from the function's memory).",
            ),
        ] = None,
        tests: Annotated[
            bool,
            typer.Option(
                "--tests",
                help="Sweep expired test vector buckets of earlier runs instead (the pytest plugin's "
                "sweep; docs/testing-with-quota.md).",
            ),
        ] = False,
        prefix: Annotated[str, typer.Option("--prefix", help="With --tests: test bucket prefix.")] = "test-",
        registry: Annotated[
            str, typer.Option("--registry", help="With --tests: store URL of the labels registry.")
        ] = "supabase://storekeeper-tests",
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Evaluate the reaper policies and show (or, with --apply, send) the cleanup plan."""
        from storekeeper import netconfig, reaper

        if apply and dry_run:
            console.print("[bold red]error:[/] --apply and --dry-run contradict each other")
            raise typer.Exit(1)
        if tests:
            from storekeeper.dev.testing.quota import sweep_once

            with friendly_errors(as_json):
                swept = sweep_once(
                    registry,
                    prefix,
                    apply=apply and not dry_run,
                    confirm=lambda q: ask(q, yes=yes),
                    log=print,
                )
            if as_json:
                emit_json({"planned": swept.planned, "deleted": swept.deleted, "kept": swept.kept})
            raise typer.Exit(2 if swept.errors else 0)

        status = console.status("listing and planning...") if not as_json else None

        def prompt(plan: reaper.PlanPreview) -> bool:
            if status is not None:
                status.stop()  # the question must not be drawn over by the spinner
            question = (
                f"send {plan.tasks} cleanup task(s) ({plan.planned} deletion(s), "
                f"{format_size(plan.bytes_planned)})?"
            )
            return ask(question, yes=yes)

        if deadline is not None:
            netconfig.set_deadline(deadline)  # network calls stop there too; planning keeps a reserve
        try:
            with friendly_errors(as_json), status if status is not None else nullcontext():
                report = reaper.run(
                    policies_path=str(policies) if policies else None,
                    store_url=store,
                    apply=False if dry_run else True if apply else None,
                    max_deletions=max_deletions,
                    confirm=prompt,
                    inventory=inventory,
                    max_objects=max_objects,
                )
        finally:
            if deadline is not None:
                netconfig.set_deadline_from_env()  # back to the process's own (none, or the env's)
        if as_json:
            emit_json(report.model_dump(mode="json"))
        else:
            print_report(report)
            if apply and not report.apply:
                console.print("not confirmed: this was a dry run, nothing was sent")
        if report.errors:
            raise typer.Exit(2)
