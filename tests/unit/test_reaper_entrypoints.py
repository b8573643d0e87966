"""The reaper Lambda handler (through the local Lambda runtime) and the `reap` / `status` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.queues import LocalQueue
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events/reaper/schedule.json").read_text())
POLICY = (
    "policies:\n"
    "  - {name: tmp, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 0s}]}\n"
)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[LocalStore, LocalQueue, Path]:
    store = LocalStore(tmp_path / "stores" / "main")
    store.put("tmp/a.tmp", b"a")
    store.put("keep/b", b"b")
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    return store, LocalQueue(tmp_path / "q"), pol


def test_handler_dry_run_by_default_and_apply_from_env(setup: tuple[LocalStore, LocalQueue, Path]) -> None:
    store, queue, pol = setup
    env = {"REAPER_POLICIES": str(pol), "CLEANUP_QUEUE_URL": queue.url, "STOREKEEPER_STORE": store.url}
    dry = invoke("reaper", EVENT, env=env)
    assert dry.error_type is None, dry.error_message
    assert dry.response["apply"] is False
    assert dry.response["totals"]["planned"] == 1
    assert len(queue) == 0
    assert store.exists(dry.response["report_key"])
    real = invoke("reaper", EVENT, env={**env, "REAPER_APPLY": "true"})
    assert real.response["apply"] is True
    assert real.response["sent"] == 1 == len(queue)
    assert real.response["plan_digest"] != ""
    assert store.exists("tmp/a.tmp")
    forced = invoke("reaper", {**EVENT, "detail": {"dry_run": True}}, env={**env, "REAPER_APPLY": "true"})
    assert forced.response["apply"] is False
    bad = invoke("reaper", {"not": "an eventbridge event"}, env=env)
    assert bad.error_type is not None


def test_reap_and_status_commands(
    setup: tuple[LocalStore, LocalQueue, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, queue, pol = setup
    monkeypatch.setenv("CLEANUP_QUEUE_URL", queue.url)
    runner = CliRunner()
    res = runner.invoke(app, ["reap", "--policies", str(pol), "--store", store.url, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["apply"] is False
    assert [d["name"] for d in report["decisions"]] == ["tmp/a.tmp"]
    assert len(queue) == 0
    res = runner.invoke(app, ["reap", "--policies", str(pol), "--store", store.url, "--apply", "--json"])
    assert json.loads(res.stdout)["sent"] == 1 == len(queue)
    bad = pol.parent / "bad.yaml"
    bad.write_text("stores:\n  main: {watermarks: {high: 85}}\n")
    res = runner.invoke(app, ["reap", "--policies", str(bad), "--store", store.url, "--json"])
    assert res.exit_code == 1
    assert "bad.yaml:2: store 'main': watermarks.high" in json.loads(res.stdout)["message"]
    res = runner.invoke(app, ["status", "--store", store.url, "--json", "--policies", str(pol)])
    assert res.exit_code == 0, res.output
    st = json.loads(res.stdout)
    assert st["buckets"][0]["objects"] >= 2
    assert st["collections"] == []


def test_deferred_deletions_are_counted_per_bucket(
    setup: tuple[LocalStore, LocalQueue, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    store, queue, pol = setup
    for i in range(4):
        store.put(f"tmp/more-{i}.tmp", b"x")  # 5 planned under tmp/, 2 allowed per run
    env = {"REAPER_POLICIES": str(pol), "CLEANUP_QUEUE_URL": queue.url, "STOREKEEPER_STORE": store.url}
    capfd.readouterr()
    res = invoke("reaper", {**EVENT, "detail": {"max_deletions": 2}}, env=env)
    assert res.error_type is None, res.error_message
    assert res.response["totals"]["deferred"] == 3
    captured = capfd.readouterr()
    docs = [json.loads(x) for x in (captured.out + captured.err).splitlines() if x.startswith('{"_aws"')]
    deferred = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in docs if "Deferred" in d}
    assert deferred[("bucket", "service")]["bucket"] == "main"
    assert deferred[("bucket", "service")]["Deferred"] == [3.0]
    assert deferred[("service",)]["Deferred"] == [3.0]  # the run's total, the alarm's metric
