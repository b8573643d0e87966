"""End to end on the embedded default: the demo script, and put -> compact -> query through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STOREKEEPER_STORE", "DELTA_QUEUE_URL")}
    env.update(STOREKEEPER_HOME=str(home), COMPACTOR_CACHE_DIR=str(home / "cache"), COLUMNS="200")
    return env


def test_demo_runs_every_step_and_checks_it(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--home", str(home), "--records", "400",
         "--dim", "16"],
        cwd=REPO, env=_env(home), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is its own nearest neighbour" in proc.stderr
    out = " ".join(proc.stderr.split())  # rich wraps long lines
    # the reap + clean step really ran (not a placeholder) and every one of its checks held
    assert "ok reap + clean: dry run and --apply plan digest equal" in out, out[-3000:]
    for check in ("deleted exactly the plan", "5 versions -> 2 kept", "1 unapplied delta(s) kept",
                  "applied delta(s) left by the crash removed", "query still answers"):  # fmt: skip
        assert check in out
    assert "skipped: reaper/cleanup" not in out
    assert '"_aws"' not in proc.stderr  # a line per step, not the handlers' EMF log lines
    # it ends saying how to look at what it left, one whole command per line
    assert f"  export STOREKEEPER_HOME={home}\n" in proc.stderr
    assert "storekeeper snapshots demo\n" in proc.stderr
    assert (home / "stores" / "default" / "snapshot" / "demo" / "latest" / "pointer.txt").is_file()


def test_cli_put_compact_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from storekeeper.cli import app

    home = tmp_path / "home"
    for k, v in _env(home).items():
        monkeypatch.setenv(k, v)
    for k in ("STOREKEEPER_STORE", "DELTA_QUEUE_URL"):
        monkeypatch.delenv(k, raising=False)
    records = tmp_path / "records.jsonl"
    lines = [json.dumps({"id": f"r{i}", "embedding": [float(i), float(i % 3), 1.0]}) for i in range(30)]
    records.write_text("\n".join(lines) + "\n")
    deletes = tmp_path / "deletes.jsonl"
    deletes.write_text(json.dumps({"delete": "r5"}) + "\n")
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> dict:
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == code, res.output
        return json.loads(res.stdout)

    cli("put", "docs", "--file", str(records))
    cli("put", "docs", "--file", str(deletes))
    out = cli("compact", "docs")
    assert out["status"] == "published"
    assert out["record_count"] == 29
    hits = cli("query", "docs", "--id", "r7", "-k", "3")
    assert hits["version"] == out["version"]
    assert hits["hits"][0]["id"] == "r7"
    near = cli("query", "docs", "--vector", "[5.0, 2.0, 1.0]", "-k", "1")
    assert near["hits"][0]["id"] != "r5"  # deleted by the second delta, in the same compaction
    assert "r5" in cli("query", "docs", "--id", "r5", code=1)["message"]
    assert cli("compact", "docs")["status"] == "noop"
