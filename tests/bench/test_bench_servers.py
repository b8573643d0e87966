"""`storekeeper bench --quick` against the real servers: SeaweedFS (S3), moto_server (SQS), moto in-process.

Proves the bench starts SeaweedFS itself through storekeeper.dev.devservers, reports
every figure per backend, and counts real S3 requests (list pages, bulk deletes).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from storekeeper.dev.bench.report import BenchReport

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from storekeeper.cli import main; main()"]


def test_quick_bench_on_seaweedfs_and_moto(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            *CLI,
            "bench",
            "--quick",
            "--cases",
            "compaction,producer,reaper",
            "--backends",
            "seaweedfs,moto",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets:" in proc.stderr  # the people's table went to the console
    report = BenchReport.model_validate_json(out.read_text())
    assert report.backends["seaweedfs"].startswith("SeaweedFS")
    assert report.backends["moto_server"].startswith("moto_server")
    assert {c.name: c.status for c in report.cases} == {"compaction": "ok", "producer": "ok", "reaper": "ok"}

    compaction = next(c for c in report.cases if c.name == "compaction")
    # "none": the backend-free archive figures (persist dir and archive bytes, pack time)
    assert {f.backend for f in compaction.figures} == {"chromadb", "seaweedfs", "none"}
    assert compaction.find("archive_upload_seconds", "seaweedfs") is not None
    cold = compaction.find("compaction_requests", "seaweedfs", mode="cold")
    assert cold is not None
    assert cold.note is not None
    assert "get_file" in cold.note or "get " in cold.note  # the cold run downloaded the archive

    producer = next(c for c in report.cases if c.name == "producer")
    put = producer.find("put_seconds", "seaweedfs")
    assert put is not None
    assert put.params["queue"] == "sqs fifo (moto_server over HTTP)"

    reaper = next(c for c in report.cases if c.name == "reaper")
    for backend in ("seaweedfs", "moto"):
        lists = reaper.find("plan_list_requests", backend)
        deletes = reaper.find("cleanup_delete_requests", backend)
        assert lists is not None
        assert deletes is not None
        n = lists.params["objects"]
        assert isinstance(n, int)
        assert n > 1000  # more than one page: paging is really exercised
        # every page read once, plus the parallel listing's delimiter request at the root (it finds the
        # one prefix the keys are under; that prefix's delimiter listing is its full pages)
        assert lists.value == math.ceil(n / 1000) + 1
        assert deletes.value == math.ceil(n / 1000)
    json.loads(out.read_text())  # plain JSON, readable without pydantic
