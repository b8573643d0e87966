"""`storekeeper invoke`: handlers loaded by path, Lambda-like context, env, errors, timeout; sample events."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.errors import ValidationError
from storekeeper.runtime import LambdaContext, find_repo_root, invoke, parse_env_pairs

REPO = Path(__file__).resolve().parents[2]

ECHO_HANDLER = """
    import os
    import helper  # a sibling module: the function dir is on sys.path like /var/task

    def handler(event, context):
        return {
            "event": event,
            "helper": helper.VALUE,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb,
            "request_id": context.aws_request_id,
            "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "store": os.environ.get("STOREKEEPER_STORE"),
            "custom": os.environ.get("SK_TEST_CUSTOM"),
            "lambda_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        }
"""


def make_function(root: Path, name: str, code: str, **extra: str) -> Path:
    fn = root / "functions" / name
    fn.mkdir(parents=True, exist_ok=True)
    (root / "shared").mkdir(exist_ok=True)
    (fn / "app.py").write_text(textwrap.dedent(code))
    for filename, text in extra.items():
        (fn / filename).write_text(textwrap.dedent(text))
    return fn


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    make_function(root, "echo", ECHO_HANDLER, **{"helper.py": "VALUE = 42\n"})
    make_function(root, "boom", "def handler(event, context):\n    raise RuntimeError('bad delta key x')\n")
    make_function(
        root, "slow", "import time\ndef handler(event, context):\n    while True:\n        time.sleep(0.01)\n"
    )
    make_function(root, "nohandler", "VALUE = 1\n")
    make_function(root, "badresponse", "def handler(event, context):\n    return {'x': object()}\n")
    return root


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["invoke", *args])
    return result.exit_code, result.stdout


def test_cli_calls_handler_with_lambda_context_and_env(fake_repo: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"collection": "docs", "n": 3}))
    store = f"file://{tmp_path / 'store'}"
    code, out = run_cli(
        "echo", "--event", str(event), "--root", str(fake_repo), "--store", store,
        "--env", "SK_TEST_CUSTOM=a=b", "--timeout", "7", "--memory", "256", "--json",
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"] is True
    resp = doc["response"]
    assert resp["event"] == {"collection": "docs", "n": 3}
    assert resp["helper"] == 42
    assert resp["function_name"] == "echo" == resp["lambda_name"]
    assert resp["function_version"] == "$LATEST"
    assert resp["arn"].startswith("arn:aws:lambda:")
    assert resp["arn"].endswith(":function:echo")
    assert resp["memory"] == 256
    assert str(uuid.UUID(resp["request_id"])) == resp["request_id"] == doc["request_id"]
    assert resp["log_group"] == "/aws/lambda/echo"
    assert resp["log_stream"].endswith(resp["request_id"].replace("-", ""))
    assert 0 < resp["remaining_ms"] <= 7000
    assert resp["store"] == store
    assert resp["custom"] == "a=b"  # only the first '=' splits


def test_default_store_is_embedded_local_and_env_is_restored(fake_repo: Path, tmp_path: Path) -> None:
    assert "SK_TEST_CUSTOM" not in os.environ
    result = invoke("echo", {}, root=fake_repo, env={"SK_TEST_CUSTOM": "1"})
    assert result.ok, result.error_message
    assert result.response["store"] == f"file://{tmp_path / 'home' / 'stores' / 'default'}"
    assert result.response["remaining_ms"] <= 30_000  # unknown function: the 30 s default
    assert "SK_TEST_CUSTOM" not in os.environ
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_plain_output_is_the_response_json(fake_repo: Path, tmp_path: Path) -> None:
    event = tmp_path / "e.json"
    event.write_text('{"a": [1, 2]}')
    code, out = run_cli("echo", "-e", str(event), "--root", str(fake_repo))
    assert code == 0
    assert json.loads(out)["event"] == {"a": [1, 2]}


def test_repo_root_found_from_cwd(fake_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = fake_repo / "functions" / "echo"
    monkeypatch.chdir(sub)
    assert find_repo_root() == fake_repo
    code, out = run_cli("echo", "--json")
    assert code == 0, out
    assert json.loads(out)["response"]["event"] == {}


def test_handler_error_exits_nonzero_with_summary(fake_repo: Path) -> None:
    code, out = run_cli("boom", "--root", str(fake_repo), "--json")
    assert code == 1
    err = json.loads(out)["error"]
    assert err["errorType"] == "RuntimeError"
    assert err["errorMessage"] == "bad delta key x"
    assert any("app.py" in line and "handler" in line for line in err["stackTrace"])


def test_timeout_fails_the_call(fake_repo: Path) -> None:
    result = invoke("slow", {}, root=fake_repo, timeout_s=0.2)
    assert not result.ok
    assert result.error_type == "InvocationTimeout"
    assert "timed out" in (result.error_message or "")


def test_missing_handler_and_unserialisable_response_fail(fake_repo: Path) -> None:
    r1 = invoke("nohandler", {}, root=fake_repo)
    assert r1.error_type == "AttributeError"
    assert "handler" in (r1.error_message or "")
    r2 = invoke("badresponse", {}, root=fake_repo)
    assert r2.error_type == "TypeError"


@pytest.mark.parametrize("name", ["../echo", "Echo", "echo/..", ""])
def test_function_names_cannot_escape(fake_repo: Path, name: str) -> None:
    with pytest.raises(ValidationError, match="function"):
        invoke(name, {}, root=fake_repo)


def test_unknown_function_lists_known_ones(fake_repo: Path) -> None:
    code, out = run_cli("nope", "--root", str(fake_repo), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["error"] == "ValidationError"
    assert "echo" in doc["message"]
    assert "boom" in doc["message"]


def test_bad_event_and_env_are_rejected(fake_repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, out = run_cli("echo", "--event", str(bad), "--root", str(fake_repo), "--json")
    assert code == 1
    assert "not JSON" in json.loads(out)["message"]
    code, out = run_cli("echo", "--event", str(tmp_path / "missing.json"), "--root", str(fake_repo), "--json")
    assert code == 1
    assert "cannot read" in json.loads(out)["message"]
    with pytest.raises(ValidationError, match=r"env\[1\]"):
        parse_env_pairs(["A=1", "no-equals"])


def test_context_counts_down() -> None:
    ctx = LambdaContext("producer", 512, timeout_s=5)
    first = ctx.get_remaining_time_in_millis()
    assert 0 < first <= 5000
    ctx.timeout_s = 0
    ctx.start_clock()
    assert ctx.get_remaining_time_in_millis() == 0


# --- the sample events under events/ match the models the handlers validate with ------------------


def _sqs_bodies(path: str) -> list[str]:
    event = json.loads((REPO / "events" / path).read_text())
    records = event["Records"]
    assert records
    assert all(r["eventSource"] == "aws:sqs" for r in records)
    return [r["body"] for r in records]


def test_sample_put_event_is_a_valid_put_request() -> None:
    from storekeeper.models import PutRequest

    req = PutRequest.model_validate_json((REPO / "events/producer/put.json").read_text())
    assert req.request_id
    assert req.dimension == 4
    assert len(req.upserts) >= 2


def test_sample_s3_event_names_an_incoming_jsonl() -> None:
    event = json.loads((REPO / "events/producer/s3-object-created.json").read_text())
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    key = record["s3"]["object"]["key"]
    assert key.startswith("incoming/")
    assert key.endswith(".jsonl")
    assert key.count("/") == 2


def test_sample_compactor_events() -> None:
    from storekeeper.models import DeltaNotification

    bodies = _sqs_bodies("compactor/sqs-delta-notification.json")
    notes = [DeltaNotification.model_validate_json(b) for b in bodies]
    assert [n.delta_id for n in notes] == sorted(n.delta_id for n in notes)
    sweep = json.loads((REPO / "events/compactor/sweep.json").read_text())
    assert sweep == {"sweep": True}  # exactly the Input of the compactor's Schedule event in template.yaml


def test_sample_reaper_and_cleanup_events() -> None:
    from storekeeper.models import CleanupAction, CleanupTask

    schedule = json.loads((REPO / "events/reaper/schedule.json").read_text())
    assert schedule["detail-type"] == "Scheduled Event"
    assert schedule["source"] == "aws.events"
    tasks = [CleanupTask.model_validate_json(b) for b in _sqs_bodies("cleanup/sqs-cleanup-task.json")]
    assert tasks
    assert all(t.action is CleanupAction.delete_objects and t.keys for t in tasks)


# --- the real handlers, on the embedded local store and queues ------------------------------------


def test_real_producer_then_compactor_through_invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """put.json -> delta + local queue message -> that message as an SQS batch -> a published snapshot."""
    from storekeeper.queues import open_queue
    from storekeeper.snapshots import resolve
    from storekeeper.stores import open_store

    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path))
    for var in ("STOREKEEPER_STORE", "DELTA_QUEUE_URL", "IDEMPOTENCY_TABLE"):
        monkeypatch.delenv(var, raising=False)
    code, out = run_cli(
        "producer", "--event", str(REPO / "events/producer/put.json"), "--root", str(REPO), "--json"
    )
    assert code == 0, out
    produced = json.loads(out)["response"]
    assert produced["upserts"] == 3

    (message,) = open_queue("delta").receive()
    sqs_event = json.loads((REPO / "events/compactor/sqs-delta-notification.json").read_text())
    record = {**sqs_event["Records"][0], "messageId": message.message_id, "body": message.body}
    event_file = tmp_path / "sqs.json"
    event_file.write_text(json.dumps({"Records": [record]}))
    code, out = run_cli("compactor", "--event", str(event_file), "--root", str(REPO), "--json")
    assert code == 0, out
    assert json.loads(out)["response"]["batchItemFailures"] == []

    published = resolve(open_store(None), "docs")
    assert published is not None
    assert published.manifest.record_count == 3
