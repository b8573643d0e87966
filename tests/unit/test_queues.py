"""queues.py: the local directory queue and SqsQueue on moto, including partial batch failures.

SQS can accept some entries of a SendMessageBatch and refuse others; moto never does,
so one test lets moto really store the batch and then rewrites the parsed answer
(a botocore after-call hook) to report chosen entries as failed — the way SQS does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storekeeper.queues import (
    LocalQueue,
    OutgoingMessage,
    QueueSendError,
    SqsQueue,
    open_queue,
    queue_from_env,
)


# -- local ----------------------------------------------------------------------------------------------
def test_local_queue_keeps_send_order_and_acks(tmp_path: Path) -> None:
    q = LocalQueue(tmp_path / "q")
    q.send_batch([OutgoingMessage(f"m{i}", group_id="g") for i in range(15)])
    assert len(q) == 15
    first = q.receive(10)
    assert [m.body for m in first] == [f"m{i}" for i in range(10)]
    assert all(m.group_id == "g" for m in first)
    for m in first:
        q.ack(m)
    assert [m.body for m in q.receive(10)] == [f"m{i}" for i in range(10, 15)]
    assert len(q) == 5


def test_local_queue_unacked_messages_come_back(tmp_path: Path) -> None:
    q = LocalQueue(tmp_path / "q")
    q.send("only")
    assert [m.body for m in q.receive()] == ["only"]
    again = q.receive()
    assert [m.body for m in again] == ["only"]  # not acked: still there (at-least-once)
    q.ack(again[0])
    q.ack(again[0])  # acking twice is harmless
    assert q.receive() == []


def test_local_queue_ignores_half_written_files(tmp_path: Path) -> None:
    q = LocalQueue(tmp_path / "q")
    (q.path / ".123.tmp").write_text("partial")
    q.send(json.dumps({"a": 1}))
    assert [json.loads(m.body) for m in q.receive()] == [{"a": 1}]


def test_open_queue_by_name_url_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "home"))
    q = open_queue("deltas")
    assert isinstance(q, LocalQueue)
    assert q.path == (tmp_path / "home" / "queues" / "deltas").resolve()
    q2 = open_queue(f"file://{tmp_path}/explicit")
    assert isinstance(q2, LocalQueue)
    assert q2.path == tmp_path / "explicit"
    monkeypatch.setenv("DELTA_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/d.fifo")
    sqs = queue_from_env("DELTA_QUEUE_URL", "deltas")
    assert isinstance(sqs, SqsQueue)
    assert sqs.fifo
    monkeypatch.delenv("DELTA_QUEUE_URL")
    assert isinstance(queue_from_env("DELTA_QUEUE_URL", "deltas"), LocalQueue)


# -- SQS on moto -----------------------------------------------------------------------------------------
@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _drain(client: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        resp = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        )
        msgs = resp.get("Messages", [])
        if not msgs:
            return out
        out.extend(msgs)
        for m in msgs:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_sqs_sends_in_batches_of_ten(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="plain")["QueueUrl"]
    calls: list[int] = []
    sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **_: calls.append(len(params["Entries"]))
    )
    SqsQueue(url, client=sqs).send_batch([OutgoingMessage(f"m{i}") for i in range(23)])
    assert calls == [10, 10, 3]
    assert sorted(m["Body"] for m in _drain(sqs, url)) == sorted(f"m{i}" for i in range(23))


def test_sqs_fifo_sets_group_and_dedup(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="d.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    )["QueueUrl"]
    q = SqsQueue(url, client=sqs)
    assert q.fifo
    q.send("a1", group_id="coll-a", dedup_id="same")
    q.send("a1-again", group_id="coll-a", dedup_id="same")  # deduplicated by SQS
    q.send("b1", group_id="coll-b")
    got = q.receive(10)
    assert sorted((m.body, m.group_id) for m in got) == [("a1", "coll-a"), ("b1", "coll-b")]
    for m in got:
        q.ack(m)
    assert q.receive(10) == []


def test_sqs_partial_batch_failure_raises_naming_failed_indexes(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="partial")["QueueUrl"]
    failing = {3, 17}

    def refuse_some(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        # SQS semantics: refused entries are in Failed, not stored; move them there
        keep = []
        for entry in parsed.get("Successful", []):
            if int(entry["Id"]) in failing:
                parsed.setdefault("Failed", []).append(
                    {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                )
            else:
                keep.append(entry)
        parsed["Successful"] = keep

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", refuse_some)
    with pytest.raises(QueueSendError) as info:
        SqsQueue(url, client=sqs).send_batch([OutgoingMessage(f"m{i}") for i in range(23)])
    assert info.value.queue == url
    assert info.value.failures == {3: "InternalError: try again", 17: "InternalError: try again"}
    assert "2 message(s) not sent" in str(info.value)
    # every chunk was still attempted: the third batch (indexes 20-22) went out after the failures
    assert {"m20", "m21", "m22"} <= {m["Body"] for m in _drain(sqs, url)}


def test_sqs_whole_request_failure_fails_every_entry(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(QueueSendError) as info:
        SqsQueue(url, client=sqs).send_batch([OutgoingMessage(f"m{i}") for i in range(12)])
    assert sorted(info.value.failures) == list(range(12))
    assert "NonExistentQueue" in info.value.failures[0] or "does not exist" in info.value.failures[0]
