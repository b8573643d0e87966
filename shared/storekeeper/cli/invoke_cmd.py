"""`storekeeper invoke`: run a function's handler locally, like `sam local invoke` without Docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors
from storekeeper.runtime import invoke, load_event, parse_env_pairs


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
        as_json: JsonOpt = False,
    ) -> None:
        """Call functions/<FUNCTION>/app.py handler(event, context) with a Lambda-like context.

        The store defaults to the embedded local store (or STOREKEEPER_STORE) and
        the queues to local directory queues unless DELTA_QUEUE_URL /
        CLEANUP_QUEUE_URL are set. Exit status 1 when the handler raises.
        """
        with friendly_errors(as_json):
            payload = load_event(event)
            overrides = parse_env_pairs(env or [])
            result = invoke(
                function, payload, root=root, store=store, env=overrides, timeout_s=timeout, memory_mb=memory
            )
        if as_json:
            emit_json(result.to_json())
        elif result.ok:
            sys.stdout.write(json.dumps(result.response, indent=2, default=str) + "\n")
            console.print(
                f"[green]{function}[/] ok  request {result.request_id}  {result.duration_ms:.0f} ms",
                highlight=False,
            )
        else:
            console.print(f"[bold red]{function} failed:[/] {result.error_type}: {result.error_message}")
            for line in result.stack:
                console.print(f"  {line}", highlight=False, markup=False)
        if not result.ok:
            raise typer.Exit(1)
