"""Run the selected cases in one process, one after another, and assemble the report.

A case that fails or cannot run is recorded with its reason and the run goes
on: one missing server must not hide the other figures.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType

from storekeeper.dev.bench.context import FULL, QUICK, BenchContext, CaseSkipped, Sizes
from storekeeper.dev.bench.report import BenchReport, CaseResult, MachineInfo
from storekeeper.dev.bench.timing import timed

#: case name -> module; the order is the order they run (and appear) in
CASES: dict[str, str] = {
    "compaction": "storekeeper.dev.bench.case_compaction",
    "scaling": "storekeeper.dev.bench.case_scaling",
    "producer": "storekeeper.dev.bench.case_producer",
    "reaper": "storekeeper.dev.bench.case_reaper",
    "coldstart": "storekeeper.dev.bench.case_coldstart",
    "readers": "storekeeper.dev.bench.case_readers",
    "listing": "storekeeper.dev.bench.case_listing",
    "versions": "storekeeper.dev.bench.case_versions",
    "ceiling": "storekeeper.dev.bench.case_ceiling",
}
BACKENDS = ("local", "seaweedfs", "moto")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> MachineInfo:
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return MachineInfo(
        cpu_count=os.cpu_count() or 1,
        python=sys.version.split()[0],
        platform=platform.platform(),
        chromadb=_version("chromadb"),
        numpy=_version("numpy") or "?",
        storekeeper=_version("storekeeper") or "?",
        date=datetime.now(UTC),
        load_average=[round(x, 2) for x in load] if load else None,
    )


def select_cases(names: Sequence[str] | None) -> list[str]:
    """Validate `--cases`; unknown names are an error that lists the known ones."""
    if not names:
        return list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"cases: unknown {unknown}; known cases are {list(CASES)}")
    return [n for n in CASES if n in names]


def run_case(name: str, ctx: BenchContext) -> CaseResult:
    module: ModuleType | None = None
    try:
        module = importlib.import_module(CASES[name])
    except ImportError as exc:
        return CaseResult(name=name, title=name, status="skipped", reason=f"cannot import the case: {exc}")
    result = CaseResult(name=name, title=str(getattr(module, "TITLE", name)))
    ctx.log(f"case {name}: {result.title}")
    with timed() as t:
        try:
            module.run(ctx, result)
        except CaseSkipped as exc:
            result.status, result.reason = "skipped", str(exc)
        except ImportError as exc:  # a storekeeper module the case drives is not there yet
            result.status, result.reason = "skipped", f"needs a module that is not available: {exc}"
        except Exception as exc:
            result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"
            result.notes.append(traceback.format_exc(limit=6)[-1500:])
    result.seconds = round(t.seconds, 3)
    ctx.log(
        f"case {name}: {result.status} in {result.seconds:.1f}s"
        + (f" ({result.reason})" if result.reason else "")
    )
    return result


def run(
    *,
    quick: bool = False,
    cases: Sequence[str] | None = None,
    backends: Sequence[str] = BACKENDS,
    out: Path | None = None,
    log: Callable[[str], None] = print,
    workdir: Path | None = None,
    sizes: Sizes | None = None,
    cache_dir: Path | None = None,
) -> BenchReport:
    """Run `cases` (all by default) and write the JSON report to `out` if given."""
    from storekeeper.dev.bench.backends import Backends

    selected = select_cases(cases)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"backends: unknown {bad}; known backends are {list(BACKENDS)}")
    machine = machine_info()
    with (
        tempfile.TemporaryDirectory(prefix="storekeeper-bench-", dir=workdir) as tmp,
        Backends(Path(tmp) / "backends", list(backends), log=log) as bk,
        timed() as total,
    ):
        ctx = BenchContext(
            sizes=sizes or (QUICK if quick else FULL),
            quick=quick,
            workdir=Path(tmp),
            backends=bk,
            log=log,
            out_dir=out.parent if out is not None else None,
            cache_dir=cache_dir,
        )
        results: list[CaseResult] = []
        for name in selected:
            results.append(run_case(name, ctx))
            if out is not None and len(results) < len(selected):  # a partial report survives an abort
                _write(out, _report(quick, machine, bk.info, results, total.elapsed()))
        backend_info = dict(bk.info)
    report = _report(quick, machine, backend_info, results, total.seconds)
    if out is not None:
        _write(out, report)
    return report


def _report(
    quick: bool, machine: MachineInfo, backends: dict[str, str], results: list[CaseResult], seconds: float
) -> BenchReport:
    report = BenchReport(
        quick=quick, machine=machine, backends=dict(backends), cases=list(results), seconds=round(seconds, 3)
    )
    report.summarise()
    return report


def _write(out: Path, report: BenchReport) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(report.model_dump_json(indent=2) + "\n")
    tmp_out.replace(out)
