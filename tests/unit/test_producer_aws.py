"""Producer against AWS APIs (moto in-process): SQS FIFO notifications and DynamoDB idempotency."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from storekeeper.deltas import list_pending
from storekeeper.idempotency import StorePersistenceLayer, persistence_from_env
from storekeeper.models.deltas import DeltaNotification
from storekeeper.producer import parse_put_request, put
from storekeeper.queues import LocalQueue, SqsQueue
from storekeeper.stores.local import LocalStore


def request(n: int, dim: int = 3, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    ups = [{"id": f"v{i}", "embedding": rng.standard_normal(dim).tolist()} for i in range(n)]
    return {"collection": "docs", "upserts": ups, **extra}


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_fifo_notifications_group_by_collection_and_dedup_by_delta_id(aws: None, store: LocalStore) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="deltas.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    out = put(parse_put_request(request(2100)), store=store, queue=SqsQueue(url))
    assert out.notified is True
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert len(got) == 3
    keys = [d.delta_key for d in out.deltas]
    for msg, key in zip(got, keys, strict=True):  # FIFO: in send order
        note = DeltaNotification.model_validate_json(msg["Body"])
        assert note.delta_key == key
        assert msg["Attributes"]["MessageGroupId"] == "docs"
        assert msg["Attributes"]["MessageDeduplicationId"] == note.delta_id


def test_missing_queue_leaves_deltas_pending_and_reports_not_notified(aws: None, store: LocalStore) -> None:
    queue = SqsQueue("https://sqs.us-east-1.amazonaws.com/123456789012/missing.fifo")
    out = put(parse_put_request(request(5)), store=store, queue=queue)
    assert out.notified is False
    assert out.failed_notifications == [d.delta_key for d in out.deltas]
    assert [p.key for p in list_pending(store, "docs")] == out.failed_notifications


@pytest.fixture
def table(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="idem",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idem")
    return "idem"


def test_persistence_from_env_picks_dynamodb_or_the_store(
    table: str, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    layer = persistence_from_env(store, "producer")
    assert isinstance(layer, DynamoDBPersistenceLayer)
    assert layer.table_name == table
    monkeypatch.delenv("IDEMPOTENCY_TABLE")
    assert isinstance(persistence_from_env(store, "producer"), StorePersistenceLayer)


def test_a_new_process_builds_the_dynamodb_layer_as_its_first_persistence(tmp_path: Path) -> None:
    """In a new container nothing else may have made Powertools' idempotency package whole yet
    (storekeeper.idempotency defers its __init__): the DynamoDB layer must still import. In this
    process an earlier test may already have done it, so a fresh interpreter asks (it failed with
    "partially initialized module" when the random order ran a DynamoDB producer test first)."""
    code = (
        "import pathlib\n"
        "from storekeeper.idempotency import persistence_from_env\n"
        "from storekeeper.stores.local import LocalStore\n"
        f"layer = persistence_from_env(LocalStore(pathlib.Path({str(tmp_path / 's')!r})), 'producer')\n"
        "print(type(layer).__name__, layer.table_name)\n"
    )
    env = {**os.environ, "IDEMPOTENCY_TABLE": "idem", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["DynamoDBPersistenceLayer", "idem"]


def test_dynamodb_idempotency_retry(table: str, store: LocalStore, tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q")
    layer = persistence_from_env(store, "producer")
    first = put(parse_put_request(request(4, request_id="d-1")), store=store, queue=queue, persistence=layer)
    again = put(parse_put_request(request(4, request_id="d-1")), store=store, queue=queue, persistence=layer)
    assert again == first
    assert len(list_pending(store, "docs")) == 1
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"]
    assert [i["status"]["S"] for i in items] == ["COMPLETED"]
    # records went to DynamoDB; the store keeps only the request's plan (storekeeper.put_plan)
    assert [o.key.split("/")[1] for o in store.list("idempotency/")] == ["plans"]

    # No thread race here: moto's DynamoDB does not make conditional puts atomic across
    # threads, so a race against it would prove nothing (and flake). Concurrency is proven
    # on the store-backed layer, whose conditional puts are atomic (tests/unit/test_idempotency.py).
