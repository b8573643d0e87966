"""`storekeeper invoke`: run a function's handler locally, like `sam local invoke` without Docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors, store_url
from storekeeper.runtime import invoke, load_event, parse_env_pairs


def failures(response: Any) -> list[str]:
    """What a handler's response says failed, in each function's own shape: SQS partial batch
    responses (`batchItemFailures`), a producer rejection (`statusCode` >= 400), a compactor
    sweep's `failed` collections, a reaper run's `errors`."""
    if not isinstance(response, dict):
        return []
    out = [f"record {f.get('itemIdentifier', '?')}" for f in response.get("batchItemFailures") or []
           if isinstance(f, dict)]  # fmt: skip
    status = response.get("statusCode")
    if isinstance(status, int) and status >= 400:
        field = response.get("field")
        out.append(
            f"{response.get('error', 'error')} {status}"
            + (f" ({field}: {response.get('reason')})" if field else "")
        )
    out += [
        f"collection {c}" for c in response.get("failed") or [] if isinstance(response.get("failed"), list)
    ]
    out += [str(e) for e in response.get("errors") or [] if isinstance(response.get("errors"), list)]
    return out


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("invoke")
    def invoke_command(
        function: Annotated[
            str, typer.Argument(help="Function folder under functions/: producer, compactor...")
        ],
        event: Annotated[
            str | None, typer.Option("--event", "-e", help="Event JSON file (`-` for stdin); default {}.")
        ] = None,
        store: StoreOpt = None,
        env: Annotated[
            list[str] | None, typer.Option("--env", help="KEY=VALUE set for the call; repeatable; wins.")
        ] = None,
        timeout: Annotated[
            float | None, typer.Option("--timeout", help="Seconds before the call fails as timed out.")
        ] = None,
        memory: Annotated[
            int | None, typer.Option("--memory", help="memory_limit_in_mb in the context.")
        ] = None,
        root: Annotated[
            Path | None, typer.Option("--root", help="Repository root (default: found from the cwd).")
        ] = None,
        retarget: Annotated[
            bool,
            typer.Option(
                "--retarget/--no-retarget",
                help="Point the samples' deployed bucket at --store (and upload a sample's JSONL).",
            ),
        ] = True,
        as_json: JsonOpt = False,
    ) -> None:
        """Call functions/<FUNCTION>/app.py handler(event, context) with a Lambda-like context.

        The store defaults to the embedded local store (or STOREKEEPER_STORE) and
        the queues to local directory queues unless DELTA_QUEUE_URL /
        CLEANUP_QUEUE_URL are set. Exit status 1 when the handler raises, 2 when its response
        reports failed records (a partial batch response, a rejected put, reaper errors).
        """
        with friendly_errors(as_json):
            payload = load_event(event)
            if retarget:
                from storekeeper.sample_events import retarget as aim
                from storekeeper.stores import open_store

                aimed = aim(
                    payload, open_store(store_url(store)), Path(event) if event and event != "-" else None
                )
                payload = aimed.event
                for note in aimed.notes:
                    console.print(f"[dim]{escape(note)}[/]", highlight=False)
            overrides = parse_env_pairs(env or [])
            result = invoke(
                function, payload, root=root, store=store, env=overrides, timeout_s=timeout, memory_mb=memory
            )
        failed = failures(result.response) if result.ok else []
        if as_json:
            emit_json(result.to_json() | ({"failed": failed} if failed else {}))
        elif result.ok:
            sys.stdout.write(json.dumps(result.response, indent=2, default=str) + "\n")
            if failed:
                console.print(
                    f"[bold red]{function}: {len(failed)} failed[/]: "
                    + "; ".join(escape(f) for f in failed[:10]),
                    highlight=False,
                    markup=True,
                )
            else:
                console.print(
                    f"[green]{function}[/] ok  request {result.request_id}  {result.duration_ms:.0f} ms",
                    highlight=False,
                )
        else:
            console.print(
                f"[bold red]{function} failed:[/] {escape(f'{result.error_type}: {result.error_message}')}",
                highlight=False,
            )
            for line in result.stack:
                console.print(f"  {line}", highlight=False, markup=False)
        if not result.ok:
            raise typer.Exit(1)
        if failed:
            raise typer.Exit(2)
