"""Producer handler against moto_server over HTTP: DynamoDB idempotency, SQS FIFO notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from storekeeper.deltas import list_pending
from storekeeper.models.deltas import DeltaNotification
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore
from tests.s3_events import object_created
from tests.servers.s3_servers import S3Server

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(moto_http: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for k, v in moto_http.env().items():
        monkeypatch.setenv(k, v)
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
    return {**moto_http.env(), "IDEMPOTENCY_TABLE": table, "DELTA_QUEUE_URL": queue}


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
    # the records are in DynamoDB; the store keeps only the request's plan (storekeeper.put_plan)
    assert [o.key.split("/")[1] for o in store.list("idempotency/")] == ["plans"]
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


def test_missing_queue_keeps_deltas_and_answers_not_notified(aws: dict[str, str], tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    env = {**aws, "DELTA_QUEUE_URL": aws["DELTA_QUEUE_URL"].replace("/d-", "/missing-")}
    res = invoke("producer", _event("int-2"), root=REPO, store=store.url, env=env)
    assert res.ok, res.to_json()
    assert res.response["statusCode"] == 200
    assert res.response["notified"] is False
    assert [p.key for p in list_pending(store, "docs")] == res.response["failed_notifications"]


def test_s3_event_on_seaweedfs_store(
    aws: dict[str, str], seaweed_s3: S3Server, fresh_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk file in a real S3 bucket (SeaweedFS) -> deltas written there with a conditional put."""
    from storekeeper.stores.s3 import S3Store

    bucket = fresh_bucket(seaweed_s3)
    env = {**aws, **seaweed_s3.env(s3_only=True)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # this process resolved moto's credentials (the `aws` fixture's clients); the function's own come
    # from `env`, as a container's do. SeaweedFS knows only its own identity.
    store = S3Store(bucket, client=seaweed_s3.client())
    lines = "".join(f'{{"id": "f{i}", "embedding": [{i}, 0.5]}}\n' for i in range(3)) + '{"delete": "old"}\n'
    etag = store.put("incoming/docs/batch 1.jsonl", lines.encode())
    event = {
        "version": "0",
        "id": "ev-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": "incoming/docs/batch 1.jsonl",
                "size": len(lines),
                "etag": etag.strip('"'),
                "sequencer": "01",
            },
            "request-id": "r",
            "requester": "x",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }
    first = invoke("producer", event, root=REPO, store=store.url, env=env)
    again = invoke("producer", event, root=REPO, store=store.url, env=env)
    assert first.ok, first.to_json()
    name = f"{bucket}/incoming/docs/batch 1.jsonl"
    assert first.response["records"][name]["removed"] is True
    assert "already processed" in again.response["records"][name]["skipped"]
    [pending] = list_pending(store, "docs")
    from storekeeper.deltas import read_delta

    content = read_delta(store, pending.key)
    assert content.ids == ["f0", "f1", "f2"]
    assert content.deletes == ["old"]


def test_versioned_bucket_two_uploads_to_one_key_each_processed_once(
    aws: dict[str, str], moto_http: S3Server, fresh_bucket: Any
) -> None:
    """S3 events name the version: the first upload is read by its versionId even after a second
    upload replaced it, and each processed version (only that one) is deleted."""
    from storekeeper.deltas import read_delta
    from storekeeper.stores import open_store

    bucket = fresh_bucket(moto_http)
    client = moto_http.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "incoming/docs/same.jsonl"
    v1 = client.put_object(Bucket=bucket, Key=key, Body=b'{"id": "one", "embedding": [1, 0]}\n')
    v2 = client.put_object(Bucket=bucket, Key=key, Body=b'{"id": "two", "embedding": [0, 1]}\n')

    def event(put: dict[str, Any]) -> dict[str, Any]:
        return object_created((bucket, key, put["ETag"].strip('"'), put["VersionId"]))

    store_url = f"s3://{bucket}"
    for put in (v1, v2, v1):  # the first event is delivered twice
        res = invoke("producer", event(put), root=REPO, store=store_url, env=aws)
        assert res.ok, res.error_message
    store = open_store(store_url)
    got = sorted(tuple(read_delta(store, p.key).ids) for p in list_pending(store, "docs"))
    assert got == [("one",), ("two",)]
    versions = client.list_object_versions(Bucket=bucket, Prefix="incoming/").get("Versions", [])
    assert versions == []  # both processed versions deleted for good
