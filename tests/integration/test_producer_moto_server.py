"""Producer handler against moto_server over HTTP: DynamoDB idempotency, SQS FIFO notifications."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from storekeeper.deltas import list_pending
from storekeeper.idempotency import persistence_from_env
from storekeeper.models.deltas import DeltaNotification
from storekeeper.producer import RequestInProgress, parse_put_request, put
from storekeeper.queues import SqsQueue
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore
from tests.servers.common import VENV_BIN, free_port, start_process, stop_process, wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private moto_server (the shared `moto_http` fixture can replace this once it exists)."""
    import urllib.request

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = start_process([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: urllib.request.urlopen(f"{url}/moto-api/").status == 200,
            timeout=60,
            what="moto_server",
            proc=proc,
            log=log,
        )
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    name = tmp_path.name.replace("_", "-")[-40:]
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    table = f"idem-{name}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"d-{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    return {"AWS_ENDPOINT_URL": moto_endpoint, "IDEMPOTENCY_TABLE": table, "DELTA_QUEUE_URL": queue}


def _event(request_id: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "collection": "docs",
        "upserts": [{"id": f"v{i}", "embedding": [float(i), 1.0, 2.0]} for i in range(5)],
        "deletes": ["gone"],
    }
    if request_id:
        ev["request_id"] = request_id
    return ev


def test_retried_request_writes_nothing_new_and_notifies_once(aws: dict[str, str], tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    first = invoke("producer", _event("int-1"), root=REPO, store=store.url, env=aws)
    second = invoke("producer", _event("int-1"), root=REPO, store=store.url, env=aws)
    assert first.ok, first.to_json()
    assert second.response == first.response
    assert first.response["notified"] is True
    assert len(list_pending(store, "docs")) == 1
    assert list(store.list("idempotency/")) == []  # the records are in DynamoDB
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=aws["IDEMPOTENCY_TABLE"])[
        "Items"
    ]
    assert [i["status"]["S"] for i in items] == ["COMPLETED"]
    msgs = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=aws["DELTA_QUEUE_URL"], MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert len(msgs) == 1
    assert msgs[0]["Attributes"]["MessageGroupId"] == "docs"
    note = DeltaNotification.model_validate_json(msgs[0]["Body"])
    assert note.delta_key == first.response["deltas"][0]["delta_key"]
    assert (note.upserts, note.deletes) == (5, 1)


def test_concurrent_identical_requests_over_http(
    aws: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TABLE", aws["IDEMPOTENCY_TABLE"])
    store = LocalStore(tmp_path / "bucket")
    layer = persistence_from_env(store, "producer")
    queue = SqsQueue(aws["DELTA_QUEUE_URL"])
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        try:
            results.append(
                put(parse_put_request(_event("same")), store=store, queue=queue, persistence=layer)
            )
        except RequestInProgress as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert any(isinstance(r, dict) for r in results)
    assert len(list_pending(store, "docs")) == 1


def test_missing_queue_keeps_deltas_and_answers_not_notified(aws: dict[str, str], tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    env = {**aws, "DELTA_QUEUE_URL": aws["DELTA_QUEUE_URL"].replace("/d-", "/missing-")}
    res = invoke("producer", _event("int-2"), root=REPO, store=store.url, env=env)
    assert res.ok, res.to_json()
    assert res.response["statusCode"] == 200
    assert res.response["notified"] is False
    assert [p.key for p in list_pending(store, "docs")] == res.response["failed_notifications"]
