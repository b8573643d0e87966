"""The `storekeeper` command: every command takes `--store` and `--json`.

Each concern registers its own commands from a small module, so no module
knows everything.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from storekeeper.cli import (
    bench_cmd,
    cleanup_cmd,
    devstack_cmd,
    invoke_cmd,
    migrate_cmd,
    pipeline_cmd,
    policies_cmd,
    put_cmd,
    reaper_cmd,
    reports_cmd,
    snapshots_cmd,
    status_cmd,
    supabase_cmd,
)
from storekeeper.cli.common import JsonOpt, StoreOpt

app = typer.Typer(
    name="storekeeper",
    help="Keep vector stores on object storage healthy: deltas, snapshots, quotas, cleanup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sys.stdout.write(f"storekeeper {version('storekeeper')}\n")
        except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
            sys.stdout.write("storekeeper (not installed)\n")
        raise typer.Exit()


def _defaults_for(command: Any, values: dict[str, Any]) -> dict[str, Any]:
    """A default_map giving every (sub)command that has these options these values."""
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):
        return {name: _defaults_for(sub, values) for name, sub in subcommands.items()}
    names = {p.name for p in command.params}
    return {k: v for k, v in values.items() if k in names}


@app.callback()
def _group(
    ctx: typer.Context,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    _version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """`--store` and `--json` work before the subcommand too (`storekeeper --store s3://b status`)."""
    given: dict[str, Any] = {}
    if store is not None:
        given["store"] = store
    if as_json:
        given["as_json"] = True
    if given:
        ctx.default_map = _defaults_for(ctx.command, given)


for module in (
    pipeline_cmd,
    put_cmd,
    status_cmd,
    snapshots_cmd,
    reaper_cmd,
    reports_cmd,
    policies_cmd,
    migrate_cmd,
    invoke_cmd,
    bench_cmd,
    cleanup_cmd,
    supabase_cmd,
    devstack_cmd,
):
    module.register(app)


_display_type_rich = TyperOption.display_type_rich


def _flag_display_type(self: TyperOption, ctx: Any) -> str | None:
    """Boolean flags are shown as flags (`--apply`), not as `--apply <bool>`."""
    if self.is_flag and self.metavar is None:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign]


def main() -> None:
    app()
