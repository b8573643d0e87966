"""Rich tables of a report: the targets first (what a reader wants to know), then every figure."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from storekeeper.dev.bench.report import BenchReport, Figure, TargetResult

_VERDICT_STYLE = {"pass": "green", "miss": "bold red", "not measured": "yellow"}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.3g} {unit}".strip()


def _params(f: Figure) -> str:
    return " ".join(f"{k}={v}" for k, v in f.params.items())


def targets_table(report: BenchReport) -> Table:
    t = Table(title="storekeeper bench: targets", title_justify="left")
    for col in ("case", "target", "backend", "value", "threshold", "verdict", "miss by"):
        t.add_column(col)
    for case in report.cases:
        for tr in case.targets:
            t.add_row(
                case.name,
                tr.description,
                tr.backend,
                fmt(tr.value, tr.unit),
                f"{tr.op} {fmt(tr.threshold, tr.unit)}",
                _verdict(tr),
                f"{tr.margin:.0%}" if tr.margin is not None else "",
            )
    return t


def _verdict(tr: TargetResult) -> str:
    return f"[{_VERDICT_STYLE[tr.verdict]}]{tr.verdict}[/]"


def figures_tables(report: BenchReport) -> list[Table]:
    """One table per case, so parameters stay readable on a narrow terminal."""
    tables = []
    for case in report.cases:
        title = f"{case.name}: {case.title} ({case.seconds:.0f} s)"
        t = Table(title=title, title_justify="left")
        for col in ("figure", "backend", "parameters", "value"):
            t.add_column(col, overflow="fold")
        if case.status != "ok":
            t.add_row(f"[yellow]{case.status}[/]", "", case.reason or "", "")
        for f in case.figures:
            t.add_row(f.name, f.backend, _params(f), fmt(f.value, f.unit))
        tables.append(t)
    return tables


def render(report: BenchReport, console: Console) -> None:
    m = report.machine
    console.print(
        f"[bold]storekeeper bench[/] {'(quick) ' if report.quick else ''}{m.date:%Y-%m-%d %H:%M} UTC, "
        f"{m.cpu_count} CPUs, Python {m.python}, chromadb {m.chromadb}, {report.seconds:.0f} s"
    )
    for name, what in report.backends.items():
        console.print(f"  backend {name}: {what}")
    for t in figures_tables(report):
        console.print(t)
    console.print(targets_table(report))
    for case in report.cases:
        for note in case.notes:
            if "Traceback" not in note:
                console.print(f"[dim]{case.name}: {note}[/]")
    s = report.summary
    console.print(
        f"targets: {s.get('pass', 0)} pass, {s.get('miss', 0)} miss, "
        f"{s.get('not measured', 0)} not measured; cases failed or skipped: {s.get('cases_failed', 0)}"
    )


def markdown(report: BenchReport) -> str:
    """The report as Markdown tables (for docs/performance.md): targets, then each case's figures."""
    m = report.machine
    lines = [
        f"Measured {m.date:%Y-%m-%d %H:%M} UTC{' (quick sizes)' if report.quick else ''}: "
        f"{m.cpu_count} CPUs, "
        f"Python {m.python}, chromadb {m.chromadb}, numpy {m.numpy}, load average at start "
        f"{', '.join(str(x) for x in m.load_average or [])}; whole run {report.seconds:.0f} s.",
        "",
        *(f"- backend `{name}`: {what}" for name, what in report.backends.items()),
        "",
        "| case | target | backend | value | threshold | verdict | miss by |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in report.cases:
        for tr in case.targets:
            miss = f"{tr.margin:.0%}" if tr.margin is not None else ""
            lines.append(
                f"| {case.name} | {tr.description} | {tr.backend} | {fmt(tr.value, tr.unit)} | "
                f"{tr.op} {fmt(tr.threshold, tr.unit)} | {tr.verdict} | {miss} |"
            )
    for case in report.cases:
        lines += ["", f"#### {case.name}: {case.title} ({case.seconds:.0f} s)", ""]
        if case.status != "ok":
            lines += [f"*{case.status}*: {case.reason}", ""]
        lines += ["| figure | backend | parameters | value |", "|---|---|---|---|"]
        lines += [f"| {f.name} | {f.backend} | {_params(f)} | {fmt(f.value, f.unit)} |" for f in case.figures]
        notes = [n for n in case.notes if "Traceback" not in n]
        if notes:
            lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"
