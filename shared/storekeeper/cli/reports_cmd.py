"""`storekeeper reports list|show|diff`: what the reaper ran overnight, and what changed between two runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors, open_cli_store
from storekeeper.errors import NotFound, ValidationError, from_pydantic
from storekeeper.models.reports import ReaperReport
from storekeeper.policies.units import format_size
from storekeeper.stores.base import ObjectStore

RunArg = Annotated[str, typer.Argument(help="Run id, report key, `latest`, or `latest~N` (N runs back).")]


def _resolve(store: ObjectStore, ref: str) -> str:
    """A report key from a run id, a key, `latest` or `latest~N`."""
    from storekeeper.history import report_keys
    from storekeeper.layout import REPORT_KEY_RE, REPORT_PREFIX

    keys = report_keys(store)
    if not keys:
        raise NotFound(store.url, REPORT_PREFIX, "no reaper report in this store yet")
    if ref == "latest":
        return keys[-1]
    back = ref.removeprefix("latest~")
    if back != ref and back.isdigit():
        n = int(back)
        if n >= len(keys):
            raise ValidationError("run", f"only {len(keys)} report(s) in the store", ref)
        return keys[-1 - n]
    if REPORT_KEY_RE.fullmatch(ref):
        if ref not in keys:
            raise NotFound(store.url, ref, "no such report")
        return ref
    # run ids start with the report's timestamp to the second: <YYYYmmddTHHMMSSZ>-<hex>
    stamp = ref.split("-", 1)[0].rstrip("Z")
    for key in reversed(keys):
        if stamp and key.removeprefix(REPORT_PREFIX).startswith(stamp):
            report = _load(store, key)
            if report.run_id == ref:
                return key
    raise NotFound(store.url, ref, "no report with this run id (see `storekeeper reports list`)")


def _load(store: ObjectStore, key: str) -> ReaperReport:
    import pydantic

    try:
        return ReaperReport.model_validate_json(store.get(key).body)
    except pydantic.ValidationError as exc:
        raise ValidationError("report", f"{key} is not a valid reaper report: {from_pydantic(exc)}") from None


def diff_reports(a: ReaperReport, b: ReaperReport) -> dict[str, object]:
    """What run `b` decided differently from run `a`, by (policy, resource name)."""

    def index(r: ReaperReport) -> dict[tuple[str, str, str], str]:
        return {(d.policy, d.bucket, d.name): d.verdict for d in r.decisions}

    ia, ib = index(a), index(b)
    ta, tb = a.totals(), b.totals()
    changed = [
        {"policy": k[0], "bucket": k[1], "name": k[2], "before": ia[k], "after": ib[k]}
        for k in sorted(ia.keys() & ib.keys())
        if ia[k] != ib[k]
    ]
    return {
        "a": a.run_id,
        "b": b.run_id,
        "same_plan": a.plan_digest == b.plan_digest,
        "totals": {k: {"a": ta[k], "b": tb[k], "change": tb[k] - ta[k]} for k in ta},
        "new": [
            {"policy": k[0], "bucket": k[1], "name": k[2], "verdict": ib[k]}
            for k in sorted(ib.keys() - ia.keys())
        ],
        "gone": [
            {"policy": k[0], "bucket": k[1], "name": k[2], "verdict": ia[k]}
            for k in sorted(ia.keys() - ib.keys())
        ],
        "changed": changed,
    }


def register(app: typer.Typer) -> None:
    reports = typer.Typer(help="The reaper's reports in the store: list, show, diff.", no_args_is_help=True)
    app.add_typer(reports, name="reports")

    @reports.command("list")
    def list_reports(
        store: StoreOpt = None,
        as_json: JsonOpt = False,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N runs.")] = 20,
    ) -> None:
        """The newest reaper runs: when, dry run or apply, what each planned and sent."""
        from storekeeper.history import load

        with friendly_errors(as_json):
            runs = load(open_cli_store(store, writes=False), limit=limit)
        if as_json:
            emit_json([r.info.model_dump(mode="json") for r in runs])
            return
        if not runs:
            console.print("no reaper report in this store yet (run `storekeeper reap`)")
            return
        t = Table(title="reaper runs (newest last)", title_justify="left")
        t.add_column("run", no_wrap=True)
        for col in ("mode", "plan", "prot", "def", "sent", "bytes", "err"):
            t.add_column(col, justify="left" if col == "mode" else "right", overflow="fold")
        for r in runs:
            i = r.info
            t.add_row(
                i.run_id, "apply" if i.apply else "dry", str(i.planned), str(i.protected), str(i.deferred),
                str(i.sent), format_size(i.bytes_planned), f"[red]{i.errors}[/]" if i.errors else "0",
            )  # fmt: skip
        console.print(t)

    @reports.command("show")
    def show(run: RunArg = "latest", store: StoreOpt = None, as_json: JsonOpt = False) -> None:
        """One run's full report: every decision and why, per-policy summaries, errors."""
        from storekeeper.cli.reaper_cmd import print_report
        from storekeeper.stores import open_store

        with friendly_errors(as_json):
            st = open_store(store)
            report = _load(st, _resolve(st, run))
        if as_json:
            emit_json(report.model_dump(mode="json"))
        else:
            print_report(report)

    @reports.command("diff")
    def diff(
        a: Annotated[str, typer.Argument(help="Older run (id, key, `latest~1`...).")] = "latest~1",
        b: Annotated[str, typer.Argument(help="Newer run (default: latest).")] = "latest",
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """What changed between two runs: totals, newly planned, no longer seen, changed verdicts."""
        from storekeeper.stores import open_store

        with friendly_errors(as_json):
            st = open_store(store)
            d = diff_reports(_load(st, _resolve(st, a)), _load(st, _resolve(st, b)))
        if as_json:
            emit_json(d)
            return
        console.print(
            f"{d['a']} -> {d['b']}: " + ("same plan" if d["same_plan"] else "plans differ"), highlight=False
        )
        t = Table(title="totals", title_justify="left")
        for col in ("", "a", "b", "change"):
            t.add_column(col, justify="right")
        totals = d["totals"]
        assert isinstance(totals, dict)
        for k, v in totals.items():
            t.add_row(k, str(v["a"]), str(v["b"]), f"{v['change']:+d}")
        console.print(t)
        for label in ("new", "gone", "changed"):
            items = d[label]
            assert isinstance(items, list)
            if not items:
                console.print(f"{label}: none")
                continue
            console.print(f"{label}: {len(items)}")
            for it in items[:40]:
                verdict = it.get("verdict") or f"{it['before']} -> {it['after']}"
                console.print(f"  {it['policy']}  {it['name']}  {verdict}", highlight=False, markup=False)
            if len(items) > 40:
                console.print(f"  ... {len(items) - 40} more (see --json)")
