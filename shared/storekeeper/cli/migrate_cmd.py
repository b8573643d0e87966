"""`storekeeper migrate --from URL --to URL`: copy a whole store, dry run unless --apply."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from storekeeper.cli.common import JsonOpt, YesOpt, confirm, console, emit_json, friendly_errors
from storekeeper.policies.units import format_size

if TYPE_CHECKING:
    from storekeeper.migrate import MigrationPlan


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate(
        source: Annotated[
            str, typer.Option("--from", help="Store to copy from (s3://, supabase://, file://).")
        ],
        destination: Annotated[str, typer.Option("--to", help="Store to copy to.")],
        apply: Annotated[
            bool, typer.Option("--apply", help="Copy (default: a dry run that only lists).")
        ] = False,
        journal: Annotated[
            Path | None, typer.Option("--journal", help="Resume journal (default: under STOREKEEPER_HOME).")
        ] = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Copy every object, sha256-verified and resumable; pointers last, create-only."""
        from storekeeper import migrate as mg
        from storekeeper.stores import default_home, open_store

        with friendly_errors(as_json):
            src, dst = open_store(source), open_store(destination)
            if src.url == dst.url:
                console.print("[bold red]error:[/] --from and --to are the same store")
                raise typer.Exit(1)
            path = journal or mg.journal_path(default_home(), src.url, dst.url)
            p = mg.plan(src, dst, path)
        if not as_json or not apply:
            _describe(p, as_json)
        if not apply:
            if not as_json:
                console.print("dry run: nothing copied (--apply to copy)")
            return
        confirm(f"copy {len(p.missing)} object(s) ({format_size(p.bytes_to_copy)}) to {dst.url}?", yes=yes)
        total = sum(o.size for o in [*p.objects, *p.pointers])
        with friendly_errors(as_json), Progress(
            TextColumn("copying"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console, disable=as_json,
        ) as bar:  # fmt: skip
            task = bar.add_task("copy", total=total)
            result = mg.apply(src, dst, p, path, progress=lambda _key, size: bar.advance(task, size))
        if as_json:
            emit_json(p.to_json() | {"result": result.to_json()})
        else:
            console.print(
                f"copied {len(result.copied)} ({format_size(result.bytes_copied)}), "
                f"{len(result.verified_present)} already there and verified, "
                f"{len(result.skipped_journaled)} verified by an earlier run, "
                f"{len(result.pointers_written)} pointer(s) written",
                highlight=False,
            )
            for key, why in {**result.conflicts, **result.failed}.items():
                console.print(f"[red]{key}[/]: {why}", highlight=False)
            if result.pointers_held:
                console.print("[yellow]pointers not written[/]: fix the above and run again (it resumes)")
        if not result.ok:
            raise typer.Exit(2)


def _describe(p: MigrationPlan, as_json: bool) -> None:
    if as_json:
        emit_json(p.to_json())
        return
    console.print(
        f"{p.source} -> {p.destination}: {len(p.objects)} object(s) and {len(p.pointers)} pointer(s); "
        f"{len(p.missing)} to copy ({format_size(p.bytes_to_copy)}), {len(p.present_same_size)} already "
        f"there (verified by sha256 when applied), {len(p.journaled)} verified by an earlier run",
        highlight=False,
    )
    for key in p.conflicts[:20]:
        console.print(f"[red]conflict[/]: {key} exists in the destination with another size", highlight=False)
