"""`storekeeper status`: collections (live version, records, pending deltas), usage, vector quota."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors
from storekeeper.policies.units import format_size


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        store: StoreOpt = None,
        as_json: JsonOpt = False,
        policies: Annotated[
            Path | None,
            typer.Option(
                "--policies", help="Policies YAML for capacity/watermarks/quota (default: bundled)."
            ),
        ] = None,
    ) -> None:
        """Show each collection's live snapshot and pending deltas, and usage against the limits."""
        from storekeeper import reaper
        from storekeeper.policies import load_policies
        from storekeeper.status import store_status
        from storekeeper.stores import open_store

        with friendly_errors(as_json):
            loaded = load_policies(str(policies) if policies else None)
            backends = reaper.open_vector_backends(loaded)
            st = store_status(open_store(store), loaded, backends)
        if as_json:
            emit_json(st.model_dump(mode="json"))
            return
        t = Table(title=f"collections in {st.store}")
        for col in (
            "collection",
            "live version",
            "records",
            "dim",
            "versions",
            "pending deltas",
            "applied left",
        ):
            t.add_column(col)
        for c in st.collections:
            live = c.live_version or ("[red]error[/]" if c.error else "[dim]none[/]")
            t.add_row(
                c.collection,
                live,
                str(c.record_count if c.record_count is not None else "?"),
                str(c.dimension or "-"),
                str(c.versions),
                str(c.pending_deltas),
                str(c.applied_deltas_present),
            )
        console.print(t)
        for c in st.collections:
            if c.error:
                console.print(f"[bold red]{c.collection}:[/] {c.error}")
        u = Table(title="usage")
        for col in ("store", "bucket", "bytes", "objects", "capacity", "ratio", "high/low/hard", "state"):
            u.add_column(col)
        for b in st.buckets:
            ratio = f"{b.ratio:.3f}" if b.ratio is not None else "-"
            cap = format_size(b.capacity) if b.capacity else "-"
            u.add_row(
                b.store,
                b.bucket,
                format_size(b.bytes),
                str(b.objects),
                cap,
                ratio,
                f"{b.high}/{b.low}/{b.hard}",
                b.state,
            )
        console.print(u)
        for v in st.vectors:
            line = f"vector buckets in {v.store}: {v.buckets} of {v.quota}"
            console.print(line + (f" [red]{v.error}[/]" if v.error else ""))
