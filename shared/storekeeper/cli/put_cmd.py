"""`storekeeper put <c> --file records.jsonl`: the producer's code path, run locally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from storekeeper import config
from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors, open_cli_store
from storekeeper.idempotency import persistence_from_env
from storekeeper.layout import COLLECTION_PATTERN
from storekeeper.producer import FUNCTION_NAME, parse_jsonl, put
from storekeeper.queues import queue_from_env

PROGRESS_MIN_BYTES = 1024 * 1024  # smaller files finish before a bar is worth drawing


def _read_lines(path: Path, progress: Progress | None) -> Iterator[bytes]:
    task = progress.add_task("validating", total=path.stat().st_size) if progress else None
    with path.open("rb") as fh:
        for line in fh:
            if progress is not None and task is not None:
                progress.advance(task, len(line))
            yield line.rstrip(b"\r\n")


def _print(result: dict[str, Any]) -> None:
    table = Table(title=f"put {result['collection']}")
    for col in ("delta", "upserts", "deletes", "sha256"):
        table.add_column(col)
    for d in result["deltas"]:
        table.add_row(d["delta_key"], str(d["upserts"]), str(d["deletes"]), d["sha256"][:12])
    console.print(table)
    console.print(
        f"{result['upserts']} upserts, {result['deletes']} deletes in {len(result['deltas'])} delta(s); "
        + (
            "notified"
            if result["notified"]
            else "[yellow]notification failed[/]: deltas stay pending for the sweep"
        )
    )
    if "visible_in" in result:
        console.print(f"visible in version {result['visible_in']}")


def register(app: typer.Typer) -> None:
    """Add `put` to the app."""

    @app.command("put")
    def put_command(
        collection: Annotated[str, typer.Argument(help=f"Collection name ({escape(COLLECTION_PATTERN)}).")],
        file: Annotated[
            Path,
            typer.Option("--file", "-f", exists=True, dir_okay=False, readable=True, help="JSONL records."),
        ],
        request_id: Annotated[
            str | None, typer.Option("--request-id", help="Retrying with the same id writes nothing new.")
        ] = None,
        wait: Annotated[
            float | None,
            typer.Option(
                "--wait",
                min=0,
                help="Then wait up to this many seconds until a published version holds the write.",
            ),
        ] = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Validate a JSONL file, write it as deltas and notify the delta queue."""
        with friendly_errors(as_json):
            target = open_cli_store(store, writes=True)
            queue = queue_from_env(config.DELTA_QUEUE_URL, "delta")
            persistence = persistence_from_env(target, FUNCTION_NAME)
            show = not as_json and file.stat().st_size >= PROGRESS_MIN_BYTES
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                disable=not show,
                transient=True,
            ) as progress:
                request = parse_jsonl(
                    collection, _read_lines(file, progress if show else None), request_id=request_id
                )
                total = len(request.upserts) + len(request.deletes)
                task = progress.add_task("writing deltas", total=total)
                outcome = put(
                    request,
                    store=target,
                    queue=queue,
                    persistence=persistence,
                    on_delta=lambda n: progress.advance(task, n),
                )
                result = outcome.to_dict()
            if wait is not None and outcome.delta_ids:
                from storekeeper.reader import Reader

                with (
                    console.status(f"waiting for a version of {collection} with the write", spinner="dots"),
                    Reader(target, collection, auto_refresh=False) as reader,
                ):
                    result["visible_in"] = reader.wait_visible(outcome.delta_ids, wait)
        if as_json:
            emit_json(result)
        else:
            _print(result)
