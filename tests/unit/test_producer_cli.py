"""`storekeeper put`: the producer's code path with the local store and the local `delta` queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app, put_cmd
from storekeeper.deltas import list_pending, read_delta
from storekeeper.queues import open_queue
from storekeeper.stores import open_store


def _file(tmp_path: Path, lines: list[object]) -> Path:
    f = tmp_path / "records.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f


RECORDS: list[object] = [{"id": f"r{i}", "embedding": [i, 1.5], "metadata": {"n": i}} for i in range(4)] + [
    {"delete": "old"}
]


def test_put_json_writes_deltas_and_notifies_the_local_queue(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["put", "docs", "--file", str(_file(tmp_path, RECORDS)), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["upserts"], out["deletes"], out["notified"]) == (4, 1, True)
    store = open_store(None)
    [pending] = list_pending(store, "docs")
    content = read_delta(store, pending.key)
    assert content.ids == ["r0", "r1", "r2", "r3"]
    assert content.deletes == ["old"]
    assert len(open_queue("delta").receive()) == 1


def test_put_with_request_id_is_idempotent(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["put", "docs", "--file", str(_file(tmp_path, RECORDS)), "--request-id", "batch-7", "--json"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert len(list_pending(open_store(None), "docs")) == 1


def test_put_bad_line_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    bad = [*RECORDS[:2], {"id": "x", "embedding": [1, float("inf")]}]
    res = CliRunner().invoke(app, ["put", "docs", "--file", str(_file(tmp_path, bad)), "--json"])
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert err["error"] == "ValidationError"
    assert "line 3: embedding" in err["message"]
    assert list(open_store(None).list("")) == []


def test_put_table_output_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(put_cmd, "PROGRESS_MIN_BYTES", 0)
    res = CliRunner().invoke(app, ["put", "docs", "--file", str(_file(tmp_path, RECORDS))])
    assert res.exit_code == 0, res.output
    assert "4 upserts, 1 deletes in 1 delta(s); notified" in res.output
