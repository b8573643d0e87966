"""`storekeeper snapshots <c>` (the versions kept, which is live) and `storekeeper rollback <c> <version>`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from storekeeper.cli.common import (
    JsonOpt,
    StoreOpt,
    YesOpt,
    confirm,
    console,
    emit_json,
    friendly_errors,
    open_cli_store,
)
from storekeeper.policies.units import format_size

if TYPE_CHECKING:
    from storekeeper.rollback import RollbackPlan


def register(app: typer.Typer) -> None:
    @app.command("snapshots")
    def snapshots(
        collection: Annotated[str, typer.Argument(help="Collection name.")],
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List a collection's snapshot versions: records, bytes, parent, age, which one is live."""
        from storekeeper.cli.status_cmd import short_version
        from storekeeper.rollback import age_of, versions
        from storekeeper.status_page import human_age

        with friendly_errors(as_json):
            live, rows = versions(open_cli_store(store, writes=False), collection)
        if as_json:
            emit_json({"collection": collection, "live": live, "versions": [r.to_json() for r in rows]})
            return
        if not rows:
            console.print(f"no snapshot versions of {collection} in this store")
            return
        t = Table(title=f"snapshots of {collection}", title_justify="left")
        t.add_column("version", no_wrap=True)
        for col, just in (("records", "right"), ("bytes", "right"), ("parent", "left"), ("age", "right"),
                          ("", "left")):  # fmt: skip
            t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
        for r in rows:
            m = r.manifest
            mark = "[green]live[/]" if r.live else (f"[red]{r.problem}[/]" if r.problem else "")
            t.add_row(
                r.version,
                str(m.record_count) if m else "?",
                format_size(r.bytes),
                short_version(m.parent) if m else "?",
                human_age(age_of(r)),
                mark,
            )
        console.print(t)
        if live is None:
            console.print("no pointer: nothing is published")
        elif not any(r.live for r in rows):
            console.print(
                f"[bold red]the pointer names {live}, which is not in the store[/] (PointerTargetMissing)"
            )

    @app.command("rollback")
    def rollback(
        collection: Annotated[str, typer.Argument(help="Collection name.")],
        version: Annotated[str, typer.Argument(help="A retained version (see `storekeeper snapshots`).")],
        store: StoreOpt = None,
        yes: YesOpt = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Publish a retained version's content as a new version (the pointer never moves backwards)."""
        from storekeeper import rollback as rb
        from storekeeper.stores import open_store

        st = open_store(store)
        with tempfile.TemporaryDirectory(prefix="storekeeper-rollback-") as tmp, friendly_errors(as_json):
            p = rb.plan(st, collection, version, Path(tmp))
            if not as_json:
                _describe(p)
            if dry_run:
                if as_json:
                    emit_json(p.to_json() | {"published": None, "dry_run": True})
                else:
                    console.print(
                        f"dry run: nothing published (without --dry-run: asks, then publishes a new "
                        f"version of {collection} with {version}'s content)",
                        highlight=False,
                    )
                return
            confirm(
                f"publish {version}'s content as the new live version of {collection}?",
                yes=yes,
                required=True,
            )
            manifest = rb.apply(st, p)
        if as_json:
            emit_json(p.to_json() | {"published": manifest.version, "dry_run": False})
        else:
            console.print(
                f"[green]published[/] {manifest.version} "
                f"({manifest.record_count} records, content of {version})",
                highlight=False,
            )


def _describe(p: RollbackPlan) -> None:
    live = p.live_version or "nothing published"
    console.print(
        f"rollback of {p.collection}: live {live} -> content of {p.target.version}", highlight=False
    )
    if p.live_manifest is not None:
        console.print(
            f"  records: {p.live_manifest.record_count} -> {p.target.record_count}", highlight=False
        )
    if p.live_problem:
        console.print(f"  [yellow]the live version is unreadable:[/] {p.live_problem}", highlight=False)
    if p.skipped_versions:
        console.print(
            f"  versions whose changes are dropped: {', '.join(p.skipped_versions)}", highlight=False
        )
    if p.dropped:
        shown = ", ".join(p.dropped[:20]) + (
            f" and {len(p.dropped) - 20} more" if len(p.dropped) > 20 else ""
        )
        console.print(f"  [yellow]{len(p.dropped)} applied delta(s) dropped:[/] {shown}", highlight=False)
    elif p.live_manifest is not None:
        console.print("  no applied delta is dropped")
    if not p.chain_complete:
        console.print(
            "  [yellow]a version between them is already gone: the dropped deltas listed may be incomplete[/]"
        )
    console.print(
        f"  archive verified: sha256 {p.target.sha256[:16]}..., {format_size(p.target.size)}", highlight=False
    )
