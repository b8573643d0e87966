"""Smoke test of `storekeeper bench --quick`: every case runs for real on tiny sizes.

No timing is asserted (the machine is shared); the test checks that the report
is complete and well-formed, that every figure is a real positive number, and
the invariants that do not depend on speed (request counts, byte counts).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from storekeeper.dev.bench.report import BenchReport
from storekeeper.dev.bench.runner import CASES

CLI = [sys.executable, "-c", "from storekeeper.cli import main; main()"]


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=280)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchReport, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "report.json"
    proc = _bench("--quick", "--backends", "local", "--out", str(out), "--json", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    stdout_doc = json.loads(proc.stdout)
    return BenchReport.model_validate_json(out.read_text()), stdout_doc


def test_report_has_every_case_ok_and_machine_info(
    quick_report: tuple[BenchReport, dict[str, object]],
) -> None:
    report, stdout_doc = quick_report
    assert report.quick is True
    assert [c.name for c in report.cases] == list(CASES)
    failed = {c.name: c.reason for c in report.cases if c.status != "ok"}
    assert not failed
    assert report.machine.cpu_count >= 1
    assert report.machine.chromadb
    assert report.machine.python.count(".") == 2
    assert "local" in report.backends
    # the JSON on stdout is the same report that was written to --out
    assert BenchReport.model_validate(stdout_doc) == report


def test_every_figure_is_a_positive_real_number_with_unit_and_backend(
    quick_report: tuple[BenchReport, dict[str, object]],
) -> None:
    report, _ = quick_report
    for case in report.cases:
        assert case.figures, f"case {case.name} measured nothing"
        assert case.seconds > 0
        for f in case.figures:
            where = f"{case.name}/{f.name} {f.params}"
            assert math.isfinite(f.value), where
            assert f.value > 0, where
            assert f.unit, where
            assert f.backend, where


def test_targets_have_verdicts_and_consistent_margins(
    quick_report: tuple[BenchReport, dict[str, object]],
) -> None:
    report, _ = quick_report
    names = {t.name for c in report.cases for t in c.targets}
    assert {
        "compaction_ratio_local",
        "delta_format_size",
        "plan_rate_local",
        "plan_requests_local",
        "cleanup_deletes_local",
        "import_cleanup",
        "first_invocation_producer",
        "compactor_artifact",
        "listing_inventory",
        "versions_billed",
        "ceiling_cold_1m",
    } <= names
    for c in report.cases:
        for t in c.targets:
            if t.verdict == "not measured":
                assert t.value is None
                continue
            assert t.value is not None
            ok = {"<=": t.value <= t.threshold, ">=": t.value >= t.threshold, "==": t.value == t.threshold}[
                t.op
            ]
            assert t.verdict == ("pass" if ok else "miss"), t
            assert (t.margin is None) == ok, t
    total = sum(len(c.targets) for c in report.cases)
    assert report.summary["pass"] + report.summary["miss"] + report.summary["not measured"] == total


def test_compaction_figures_cover_every_snapshot_and_mode(
    quick_report: tuple[BenchReport, dict[str, object]],
) -> None:
    report, _ = quick_report
    case = next(c for c in report.cases if c.name == "compaction")
    snapshots = case.parameters["snapshots"]
    assert isinstance(snapshots, list)
    assert len(snapshots) >= 3
    cold = case.parameters["cold_snapshots"]
    assert isinstance(cold, list)
    assert cold
    for n in snapshots:
        assert case.find("raw_upsert_seconds", "chromadb", snapshot=n) is not None
        for mode in ("warm", "cold") if n in cold else ("warm",) if n else ("empty",):
            assert case.find("compaction_vs_raw", "local", snapshot=n, mode=mode) is not None, (n, mode)


def test_request_and_byte_counts(quick_report: tuple[BenchReport, dict[str, object]]) -> None:
    report, _ = quick_report
    reaper = next(c for c in report.cases if c.name == "reaper")
    lists = reaper.find("plan_list_requests", "local")
    assert lists is not None
    assert lists.value == 1
    deletes = reaper.find("cleanup_delete_requests", "local")
    objects = reaper.figures[0].params["objects"]
    assert isinstance(objects, int)
    assert deletes is not None
    assert deletes.value == math.ceil(objects / 1000)

    producer = next(c for c in report.cases if c.name == "producer")
    encoded = producer.find("delta_bytes")
    raw_vec = producer.find("raw_float32_bytes_per_vector")
    assert encoded is not None
    assert raw_vec is not None
    vectors = encoded.params["vectors"]
    assert isinstance(vectors, int)
    assert encoded.value > raw_vec.value * vectors  # a delta holds at least its float32 vectors

    scaling = next(c for c in report.cases if c.name == "scaling")
    history = [
        f
        for f in scaling.figures
        if f.params.get("axis") == "history" and "nth" in f.params and f.name == "compaction_seconds"
    ]
    assert len(history) == 3


def test_unknown_case_is_rejected_with_the_known_names(tmp_path: Path) -> None:
    proc = _bench("--quick", "--cases", "compaction,nope", "--json", cwd=tmp_path)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)
    assert "nope" in err["message"]
    assert "compaction" in err["message"]
