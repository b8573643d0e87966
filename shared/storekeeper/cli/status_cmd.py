"""`storekeeper status`: collections, usage against the watermarks, vector quota, last reaper run,
forecasts. A table for people (fits 80 columns), `--json`, `--html FILE`, and `--check` for cron/CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from storekeeper.cli.common import (
    JsonOpt,
    StoreOpt,
    console,
    emit_json,
    friendly_errors,
    open_cli_store,
    store_url,
)
from storekeeper.models.status import StoreStatus
from storekeeper.policies.units import format_size
from storekeeper.status_page import human_age as age


def short_version(version: str | None) -> str:
    """`000000000042-k3j9x0aa` -> `42-k3j9x0aa`: the sequence without its zero padding."""
    if not version:
        return "-"
    seq, _, rest = version.partition("-")
    return f"{seq.lstrip('0') or '0'}-{rest}"


def print_status(st: StoreStatus) -> None:
    """Tables narrow enough for an 80-column terminal; empty sections say so."""
    console.print(f"[bold]{st.store}[/]", highlight=False)
    if st.collections:
        t = Table(title="collections", title_justify="left")
        for col, just in (
            ("collection", "left"),
            ("live", "left"),
            ("records", "right"),
            ("ptr age", "right"),
            ("pending", "right"),
            ("oldest", "right"),
            ("kept", "right"),
        ):
            t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
        for c in st.collections:
            live = (
                short_version(c.live_version)
                if c.live_version
                else ("[red]error[/]" if c.error else "[dim]none[/]")
            )
            t.add_row(
                c.collection if c.store == "main" else f"{c.store}:{c.collection}",
                live,
                str(c.record_count if c.record_count is not None else "?"),
                age(c.pointer_age_s),
                str(c.pending_deltas),
                age(c.oldest_pending_age_s),
                f"{c.versions} ({format_size(c.versions_bytes)})",
            )
        console.print(t)
    else:
        console.print("no collections in this store yet")
    u = Table(title="usage", title_justify="left")
    for col in ("store", "used", "capacity", "usage", "high/hard", "state"):
        u.add_column(col, overflow="fold")
    for b in st.buckets:
        style = {"ok": "green", "above-high": "yellow", "above-hard": "red", "error": "red"}.get(b.state, "")
        u.add_row(
            f"{b.store} ({b.bucket})",
            format_size(b.bytes),
            format_size(b.capacity) if b.capacity else "-",
            f"{b.ratio:.1%}" if b.ratio is not None else "-",  # as the page and the problems say it
            f"{b.high:.0%}/{b.hard:.0%}",
            f"[{style}]{b.state}[/]" if style else b.state,
        )
    console.print(u)
    for b in st.buckets:
        if b.error:  # say why (e.g. the endpoint that did not answer), not just "error"
            console.print(f"[bold red]{b.store} ({b.bucket}):[/] {escape(b.error)}", highlight=False)
    for v in st.vectors:
        line = f"vector buckets in {v.store}: {v.buckets} of {v.quota}"
        console.print(line + (f" [red]{v.error}[/]" if v.error else ""), highlight=False)
    if st.forecasts:
        f = Table(title="forecast", title_justify="left")
        for col in ("store", "reaches", "when", "trend"):
            f.add_column(col, overflow="fold")
        for fc in st.forecasts:
            f.add_row(fc.store, f"{fc.target} ({fc.metric})", fc.text, fc.trend)
        console.print(f)
    r = st.last_run
    if r is None:
        console.print("last reaper run: none recorded in this store")
    else:
        console.print(
            f"last reaper run {r.started_at:%Y-%m-%d %H:%M}Z ({'apply' if r.apply else 'dry run'}): "
            f"{r.planned} planned, {r.protected} protected, {r.deferred} deferred, {r.sent} sent, "
            f"{r.errors} error(s)",
            highlight=False,
        )
    for c in st.collections:
        if c.error:
            console.print(f"[bold red]{c.collection}:[/] {c.error}", highlight=False)


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
        html: Annotated[
            Path | None, typer.Option("--html", help="Also write a self-contained HTML page with charts.")
        ] = None,
        check: Annotated[
            bool,
            typer.Option("--check", help="Exit 3 when a bucket is above its high watermark or at a quota."),
        ] = False,
        history_runs: Annotated[
            int, typer.Option("--history", min=0, help="Reaper runs used for the charts and the forecast.")
        ] = 750,
    ) -> None:
        """Show each collection, usage against the watermarks, the vector quota, history and forecasts."""
        from storekeeper import reaper
        from storekeeper.policies import load_policies
        from storekeeper.status import store_status
        from storekeeper.status_page import render_html

        with friendly_errors(as_json):
            loaded = load_policies(str(policies) if policies else None)
            backends = reaper.open_vector_backends(loaded)
            stores = reaper.open_stores(loaded, store_url(store), create=False)
            home = open_cli_store(store, writes=False)
            if "main" in stores:
                stores["main"] = home
            with console.status("measuring stores and reading reaper history..."):
                st = store_status(home, loaded, backends, stores=stores, history_runs=history_runs)
        if html is not None:
            try:
                html.write_text(render_html(st), encoding="utf-8")
            except OSError as exc:
                console.print(f"[bold red]error:[/] cannot write {html}: {exc.strerror or exc}")
                raise typer.Exit(1) from None
        if as_json:
            emit_json(st.model_dump(mode="json") | {"problems": st.problems()})
        else:
            print_status(st)
            if html is not None:
                console.print(f"page written to {html}", highlight=False)
        if check:
            problems = st.problems()
            for p in problems:
                console.print(f"[bold red]check:[/] {p}", highlight=False)
            if problems:
                raise typer.Exit(3)
