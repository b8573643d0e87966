"""The cleanup Lambda handler (run as Lambda would, via storekeeper.runtime.invoke) and the CLI drain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.queues import LocalQueue
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore


def sqs_event(bodies: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": mid,
                "receiptHandle": f"rh-{mid}",
                "body": body,
                "attributes": {  # what SQS always sends (Powertools' SqsRecordModel requires them)
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1700000000000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1700000000000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:CleanupQueue",
                "awsRegion": "us-east-1",
            }
            for mid, body in bodies
        ]
    }


def body(task_id: str, action: str = "delete_objects", bucket: str = "main", **kw: Any) -> str:
    data = {
        "task_id": task_id,
        "action": action,
        "backend": "file",
        "bucket": bucket,
        "policy": "test",
        "reason": "handler test",
        "planned_at": "2030-01-01T00:00:00Z",
        **kw,
    }
    return json.dumps(data)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path))
    monkeypatch.delenv("STOREKEEPER_STORE", raising=False)
    monkeypatch.delenv("CLEANUP_QUEUE_URL", raising=False)
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    (tmp_path / "stores").mkdir()
    return tmp_path


def test_bad_records_fail_alone_good_ones_execute(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = LocalStore(home / "stores" / "main")
    for i in range(4):
        store.put(f"img/{i}", b"x")
    event = sqs_event(
        [
            ("ok-1", body("t1", keys=["img/0", "img/1"])),
            ("bad-json", "{oops"),
            ("bad-action", body("t2", action="shred", keys=["img/2"])),
            ("no-target", body("t3", action="delete_prefix")),
            ("no-bucket", body("t4", bucket="missing-bucket", keys=["img/2"])),
            ("ok-2", body("t5", keys=["img/2"])),
        ]
    )
    result = invoke("cleanup", event, store=f"file://{home / 'stores' / 'main'}")
    assert result.ok, result.error_message
    failed = {f["itemIdentifier"] for f in result.response["batchItemFailures"]}
    assert failed == {"bad-json", "bad-action", "no-target", "no-bucket"}
    assert [k.key for k in store.list("img/")] == ["img/3"]
    # each failure logged once at ERROR, with the message id, the field and the reason
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    why = {r.message_id: (r.field, r.reason) for r in errors}  # type: ignore[attr-defined]
    assert len(errors) == 4, errors
    assert set(why) == failed
    assert why["bad-json"][0] == "body"
    assert why["bad-json"][1].startswith("not valid JSON")
    assert why["bad-action"][0] == "action"
    assert "delete_objects" in why["bad-action"][1]
    assert "needs prefix" in why["no-target"][1]
    assert "missing-bucket" in why["no-bucket"][1]
    caplog.clear()
    # redelivery of the whole batch: the good tasks are duplicates now, nothing more is deleted
    store.put("img/0", b"back")
    again = invoke("cleanup", event, store=f"file://{home / 'stores' / 'main'}")
    assert {f["itemIdentifier"] for f in again.response["batchItemFailures"]} == failed
    assert store.exists("img/0")
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 4


def test_cli_drains_queue_and_dead_letters_failures(home: Path) -> None:
    store = LocalStore(home / "stores" / "default")
    store.put("tmp/a", b"x")
    store.put("tmp/b", b"x")
    q = LocalQueue(home / "queues" / "cleanup")
    q.send(body("c1", bucket="default", prefix="tmp/", action="delete_prefix"))
    q.send(body("c2", bucket="gone-bucket", keys=["x"]))
    runner = CliRunner()
    dry = runner.invoke(app, ["cleanup", "--json", "--dry-run"])
    out = json.loads(dry.stdout)
    assert out["counts"] == {"dry_run": 1, "failed": 1}
    assert len(q) == 2
    assert store.exists("tmp/a")
    real = runner.invoke(app, ["cleanup", "--json"])
    assert real.exit_code == 1  # one task failed
    out = json.loads(real.stdout)
    rows = {r.get("task_id", r["message_id"]): r for r in out["tasks"]}
    assert rows["c1"]["status"] == "executed"
    assert rows["c1"]["deleted_count"] == 2
    assert "gone-bucket" in rows["c2"]["error"]
    assert len(q) == 0
    assert len(LocalQueue(home / "queues" / "cleanup-dlq")) == 1
    assert not store.exists("tmp/a")
    empty = runner.invoke(app, ["cleanup"])
    assert empty.exit_code == 0
    assert "no tasks queued" in empty.stderr


def test_bytes_freed_per_bucket_counts_what_the_task_deleted_not_what_it_kept(
    home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(home / "stores" / "main")
    sizes = {"img/a": 10, "img/b": 200, "img/c": 3000, "img/changed": 7}
    for key, n in sizes.items():
        store.put(key, b"x" * n)
    guard = {"etags": {"img/changed": '"planned-before-it-changed"'}}  # kept: changed since planning
    event = sqs_event([("m1", body("t-bytes", keys=sorted(sizes), guard=guard))])
    capfd.readouterr()
    result = invoke("cleanup", event, store=f"file://{home / 'stores' / 'main'}")
    assert result.ok, result.error_message
    assert [o.key for o in store.list("img/")] == ["img/changed"]
    captured = capfd.readouterr()
    docs = [json.loads(x) for x in (captured.out + captured.err).splitlines() if x.startswith('{"_aws"')]
    freed = [d for d in docs if "BytesFreed" in d]
    assert [(d["bucket"], d["BytesFreed"]) for d in freed] == [("main", [3210.0])]
    assert freed[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["bucket", "service"]]
    assert freed[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "BytesFreed", "Unit": "Bytes"}]
    # the same message again: answered from the idempotency record, nothing freed twice
    assert invoke("cleanup", event, store=f"file://{home / 'stores' / 'main'}").ok
    again = capfd.readouterr()
    assert "BytesFreed" not in again.out + again.err
