"""`storekeeper cleanup`: drain the cleanup queue through the same runner the Lambda uses.

Locally the queue is the directory queue `cleanup` (or CLEANUP_QUEUE_URL). A
task that fails (bad body, missing bucket, delete errors) is moved to
`<queue>-dlq` locally, as SQS redrive would after its retries; on SQS it is
left for redrive. `--dry-run` runs every task as a dry run and removes nothing
from the queue.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich.table import Table

from storekeeper import config
from storekeeper.cleanup import CleanupRunner, TaskFailed, TaskOutcome, parse_task, store_resolver
from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors, store_url
from storekeeper.errors import ValidationError
from storekeeper.idempotency import persistence_from_env
from storekeeper.queues import LocalQueue, Queue, ReceivedMessage, open_queue, queue_from_env
from storekeeper.stores import open_store

STATUS_STYLE = {"executed": "green", "dry_run": "cyan", "noop": "dim", "skipped": "yellow", "failed": "red"}


def _dead_letter(queue: Queue, message: ReceivedMessage) -> str | None:
    if not isinstance(queue, LocalQueue):
        return None  # SQS: the redrive policy moves it after maxReceiveCount
    dlq = open_queue(f"file://{queue.path.parent / (queue.path.name + '-dlq')}")
    dlq.send(message.body)
    queue.ack(message)
    return dlq.url


def drain(
    queue: Queue, runner: CleanupRunner, *, dry_run: bool = False, limit: int | None = None
) -> list[dict[str, Any]]:
    """Run every queued task once; returns one row per message (outcome or error)."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while limit is None or len(rows) < limit:
        batch = queue.receive(10_000 if isinstance(queue, LocalQueue) else 10)
        fresh = [m for m in batch if m.message_id not in seen]
        if not fresh:
            return rows
        for message in fresh:
            seen.add(message.message_id)
            rows.append(_one(queue, runner, message, dry_run))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _one(queue: Queue, runner: CleanupRunner, message: ReceivedMessage, dry_run: bool) -> dict[str, Any]:
    try:
        task = parse_task(message.body)
        outcome: TaskOutcome = runner.run(task, dry_run=True if dry_run else None)
    except (ValidationError, TaskFailed) as exc:
        row: dict[str, Any] = {"message_id": message.message_id, "status": "failed", "error": str(exc)}
        if isinstance(exc, TaskFailed):
            row.update(exc.outcome.compact(20).model_dump(mode="json"))
            row["error"] = str(exc)
        if not dry_run:
            row["dead_letter"] = _dead_letter(queue, message)
        return row
    if not dry_run:
        queue.ack(message)
    return {"message_id": message.message_id, **outcome.compact(20).model_dump(mode="json")}


def _table(rows: list[dict[str, Any]], dry_run: bool) -> Table:
    table = Table(title="cleanup (dry run)" if dry_run else "cleanup")
    for col in ("task", "action", "bucket", "status", "deleted", "kept", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        status = r["status"] + (" (duplicate)" if r.get("duplicate") else "")
        n_del = r.get("would_delete_count") if dry_run else r.get("deleted_count")
        table.add_row(
            str(r.get("task_id", r["message_id"])),
            str(r.get("action", "?")),
            str(r.get("bucket", "?")),
            f"[{STATUS_STYLE.get(r['status'], 'white')}]{status}[/]",
            str(n_del or 0),
            str(len(r.get("skipped") or {})),
            str(r.get("error") or r.get("message") or ""),
        )
    return table


def register(app: typer.Typer) -> None:
    """Add `cleanup` to the app."""

    @app.command("cleanup")
    def cleanup_command(
        store: StoreOpt = None,
        as_json: JsonOpt = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Run every task as a dry run; leave the queue as it is.")
        ] = False,
        queue: Annotated[
            str | None,
            typer.Option(
                "--queue", help="Queue URL or local name (default: CLEANUP_QUEUE_URL or 'cleanup')."
            ),
        ] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", min=1, help="Stop after this many messages.")
        ] = None,
    ) -> None:
        """Drain cleanup tasks (reaper --apply sends them) and execute each once, re-checking every guard."""
        with friendly_errors(as_json):
            base = open_store(store_url(store))
            q = open_queue(queue) if queue else queue_from_env(config.CLEANUP_QUEUE_URL, "cleanup")
            runner = CleanupRunner(
                resolve_store=store_resolver(base), persistence=persistence_from_env(base, "cleanup")
            )
            with console.status("running cleanup tasks...", spinner="dots") if not as_json else nullcontext():
                rows = drain(q, runner, dry_run=dry_run, limit=limit)
        failed = [r for r in rows if r["status"] == "failed"]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        if as_json:
            emit_json({"queue": q.url, "dry_run": dry_run, "counts": counts, "tasks": rows})
        else:
            if rows:
                console.print(_table(rows, dry_run))
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks queued"
            console.print(f"{q.url}: {summary}")
        if failed:
            raise typer.Exit(1)
