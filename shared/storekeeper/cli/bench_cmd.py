"""`storekeeper bench`: measure speed, cost and scale against the targets; JSON report + table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors

if TYPE_CHECKING:
    from storekeeper.dev.bench.context import Sizes


def register(app: typer.Typer) -> None:
    """Add `bench` to the app."""

    @app.command("bench")
    def bench(
        out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report here.")] = None,
        quick: Annotated[bool, typer.Option("--quick", help="Tiny sizes: seconds, for smoke tests.")] = False,
        cases: Annotated[
            str | None,
            typer.Option(
                "--cases", help="Comma-separated: compaction,scaling,producer,reaper,coldstart,readers."
            ),
        ] = None,
        backends: Annotated[
            str,
            typer.Option(
                "--backends",
                help="Comma-separated backends: local,seaweedfs,moto (moto in-process: reaper case only).",
            ),
        ] = "local,seaweedfs,moto",
        markdown: Annotated[
            Path | None, typer.Option("--markdown", help="Also write the report as Markdown tables here.")
        ] = None,
        ceiling: Annotated[
            str | None,
            typer.Option(
                "--ceiling",
                help="Comma-separated snapshot sizes the ceiling case measures (e.g. 100000,200000,400000).",
            ),
        ] = None,
        ceiling_target: Annotated[
            int | None,
            typer.Option("--ceiling-target", help="The size the ceiling case extrapolates to (or measures)."),
        ] = None,
        cache_dir: Annotated[
            Path | None,
            typer.Option("--cache-dir", help="Keep base snapshots here across runs (built once, reused)."),
        ] = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run the benchmark cases side by side and report figures, ratios and target verdicts.

        The bench makes its own throw-away stores (a local directory and a SeaweedFS it
        starts), so `--store` is accepted for uniformity but never written to.
        """
        from storekeeper.dev.bench import runner, table

        del store  # the bench never touches a user's store
        names = [c.strip() for c in cases.split(",") if c.strip()] if cases else None
        wanted = [b.strip() for b in backends.split(",") if b.strip()]
        with friendly_errors(as_json):
            try:
                runner.select_cases(names)
                _sizes(quick, ceiling, ceiling_target)
                if not wanted or any(b not in runner.BACKENDS for b in wanted):
                    raise ValueError(f"backends: use some of {list(runner.BACKENDS)}, got {backends!r}")
            except ValueError as exc:
                if as_json:
                    emit_json({"error": "ValidationError", "message": str(exc)})
                else:
                    console.print(f"[bold red]error:[/] {exc}")
                raise typer.Exit(2) from exc
            log = (lambda msg: None) if as_json else (lambda msg: console.print(f"[dim]{msg}[/]"))
            report = runner.run(
                quick=quick,
                cases=names,
                backends=wanted,
                out=out,
                log=log,
                sizes=_sizes(quick, ceiling, ceiling_target),
                cache_dir=cache_dir,
            )
        if markdown is not None:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(table.markdown(report))
        if as_json:
            emit_json(report.model_dump(mode="json"))
        else:
            table.render(report, console)
            if out is not None:
                console.print(f"report written to {out}")
        if report.summary.get("cases_failed", 0) and any(c.status == "error" for c in report.cases):
            raise typer.Exit(1)


def _sizes(quick: bool, ceiling: str | None, target: int | None) -> Sizes:
    """The run's sizes, the ceiling case's asked for on the command line (ValueError names the option)."""
    from dataclasses import replace

    from storekeeper.dev.bench.context import FULL, QUICK

    sizes = QUICK if quick else FULL
    if ceiling is not None:
        try:
            points = tuple(sorted({int(x.replace("_", "")) for x in ceiling.split(",") if x.strip()}))
        except ValueError:
            raise ValueError(f"--ceiling: comma-separated whole numbers, got {ceiling!r}") from None
        if not points or points[0] < 1 or len(points) < 2:
            raise ValueError(f"--ceiling: at least two sizes >= 1 (a line needs two points), got {ceiling!r}")
        sizes = replace(sizes, ceiling=points)
    if target is not None:
        if target < 1:
            raise ValueError(f"--ceiling-target: a size >= 1, got {target}")
        sizes = replace(sizes, ceiling_target=target)
    return sizes
