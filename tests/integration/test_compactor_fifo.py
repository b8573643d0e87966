"""The compactor on a FIFO queue (moto_server over HTTP), driven the way Lambda's event source mapping
drives it: receive up to 10, invoke, delete what did not fail. A failed record holds back its whole
message group until it is visible again (moto implements this like SQS), so the compactor fails only
what a person must see: quarantined, already-applied and merely pending deltas never freeze a group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from storekeeper.deltas import list_pending
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore
from tests.compaction_support import snapshot_state
from tests.servers.s3_servers import S3Server
from tests.sqs_mapping import Mapping

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
VISIBILITY = 360  # what template.yaml sets: the compactor's timeout + a minute


@pytest.fixture
def world(moto_http: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    for k, v in moto_http.env().items():
        monkeypatch.setenv(k, v)
    sqs = boto3.client("sqs", region_name="us-east-1")
    name = tmp_path.name.replace("_", "-")[-30:]
    dlq = sqs.create_queue(QueueName=f"dlq-{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"q-{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "VisibilityTimeout": str(VISIBILITY),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    store = LocalStore(tmp_path / "bucket")
    env = {**moto_http.env(), "COMPACTOR_CACHE_DIR": str(tmp_path / "cache")}
    return {
        "sqs": sqs,
        "url": url,
        "dlq": dlq,
        "store": store,
        "env": env,
        "esm": Mapping(sqs, url, store, env),
    }


def put(world: dict[str, Any], collection: str, rid: str, seed: float) -> dict[str, Any]:
    """A put through the real producer handler, which notifies the FIFO queue (group = collection)."""
    event = {"collection": collection, "upserts": [{"id": rid, "embedding": [seed, 1.0, 2.0]}]}
    env = {**world["env"], "DELTA_QUEUE_URL": world["url"]}
    res = invoke("producer", event, root=REPO, store=world["store"].url, env=env)
    assert res.ok, res.to_json()
    assert res.response["notified"] is True, res.response
    return res.response["deltas"][0]


def test_only_bad_messages_hold_a_collection_back(world: dict[str, Any], tmp_path: Path) -> None:
    esm, store, sqs = world["esm"], world["store"], world["sqs"]

    # 1. an applied delta and a quarantined one (its blob damaged after the put): both records succeed
    put(world, "docs", "a", 1.0)
    broken = put(world, "docs", "broken", 2.0)
    store.put(broken["delta_key"], b"SKDL" + b"\x00" * 64)
    batch = esm.receive()
    assert len(batch) == 2
    assert esm.deliver(batch) == set()
    assert store.exists(broken["delta_key"].replace("delta/", "delta-rejected/", 1))

    # 2. coalesced (published moments ago): the record succeeds and the group is free at once
    put(world, "docs", "b", 3.0)
    assert esm.deliver(esm.receive(), COMPACTOR_MIN_INTERVAL_SECONDS="3600") == set()
    assert len(list_pending(store, "docs")) == 1  # left for the sweep
    put(world, "docs", "c", 4.0)
    batch = esm.receive()  # no visibility timeout to wait out: the previous record was deleted
    assert [json.loads(m["Body"])["collection"] for m in batch] == ["docs"]
    assert esm.deliver(batch, COMPACTOR_MIN_INTERVAL_SECONDS="3600") == set()

    # 3. a bad message (wrong sha256) fails, and only it: while it is in flight its group waits
    c_key = json.loads(batch[0]["Body"])["delta_key"]
    good = json.loads(batch[0]["Body"])
    lying = {**good, "sha256": "f" * 64}
    sqs.send_message(QueueUrl=world["url"], MessageBody=json.dumps(lying), MessageGroupId="docs")
    bad = esm.receive()
    assert esm.deliver(bad, COMPACTOR_MIN_INTERVAL_SECONDS="3600") == {bad[0]["MessageId"]}
    put(world, "docs", "d", 5.0)
    put(world, "other", "x", 6.0)
    held = esm.receive()
    assert [json.loads(m["Body"])["collection"] for m in held] == ["other"]  # docs is held back
    assert esm.deliver(held) == set()

    # 4. the sweep applies every pending delta whatever happened to the messages
    res = invoke("compactor", {"sweep": True}, root=REPO, store=store.url,
                 env={**world["env"], "COMPACTOR_SWEEP_AGE_SECONDS": "0"})  # fmt: skip
    assert res.ok, res.to_json()
    assert list_pending(store, "docs") == []
    assert sorted(snapshot_state(store, "docs", tmp_path / "rc")) == ["a", "b", "c", "d"]
    assert not store.exists(c_key)

    # 5. the bad message keeps failing on each receive (its delta is gone: the manifest's sha256
    #    judges it) until SQS moves it to the DLQ; the records behind it succeed as they come
    bad_id, handle, receives = bad[0]["MessageId"], bad[0]["ReceiptHandle"], 1
    for _ in range(8):
        sqs.change_message_visibility(QueueUrl=world["url"], ReceiptHandle=handle, VisibilityTimeout=0)
        batch = esm.receive()
        ours = [m for m in batch if m["MessageId"] == bad_id]
        if not ours:
            break
        receives += 1
        handle = ours[0]["ReceiptHandle"]
        assert esm.deliver(batch) == {bad_id}  # d's notification in the same batch: already applied
    assert receives == 5
    assert esm.receive() == []  # nothing left in the queue
    dead = sqs.receive_message(QueueUrl=world["dlq"], MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["sha256"] for m in dead] == ["f" * 64]
