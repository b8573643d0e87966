"""The `storekeeper` command: every command takes `--store` and `--json`.

Each concern registers its own commands from a small module, so no module
knows everything.
"""

from __future__ import annotations

import typer

from storekeeper.cli import (
    bench_cmd,
    cleanup_cmd,
    invoke_cmd,
    pipeline_cmd,
    policies_cmd,
    put_cmd,
    reaper_cmd,
    reports_cmd,
    snapshots_cmd,
    status_cmd,
    supabase_cmd,
)

app = typer.Typer(
    name="storekeeper",
    help="Keep vector stores on object storage healthy: deltas, snapshots, quotas, cleanup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Keep `storekeeper` a command group even while only one command is registered."""


for module in (
    pipeline_cmd,
    put_cmd,
    status_cmd,
    snapshots_cmd,
    reaper_cmd,
    reports_cmd,
    policies_cmd,
    invoke_cmd,
    bench_cmd,
    cleanup_cmd,
    supabase_cmd,
):
    module.register(app)


def main() -> None:
    app()
