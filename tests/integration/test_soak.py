"""Soak: two simulated days of a default deployment on SeaweedFS (S3) + moto_server (SQS, DynamoDB).

Time is accelerated by scaling the deployment's clocks together (two simulated hours = one tick of
a few real seconds): the grace floor (1 h -> 3 s), the reaper's ages, the coalescing interval
and the sweep age. Every tick: a trickle of puts through the producer handler (FIFO notifications),
Lambda's event source mapping delivering them to the compactor, the sweep schedule; every 3 ticks
the reaper schedule and the cleanup function draining its tasks. Day 1 is a default deployment
(the reaper only dry-runs: the compactor's own retention must keep storage bounded), on day 2 the
reaper's real runs are on. One delta is
damaged on the way (it must be quarantined, not dead-lettered). The run must end with bounded
versions, bounded bytes, nothing pending, every record exactly as last written, and empty DLQs."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from storekeeper.deltas import list_pending
from storekeeper.runtime import invoke
from storekeeper.stores.s3 import S3Store
from tests.compaction_support import assert_same_state, snapshot_state
from tests.servers.s3_servers import S3Server
from tests.sqs_mapping import REPO, Mapping

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICKS = 24  # of two simulated hours each: two days
REAPER_EVERY = 3  # the reaper's schedule: every 6 simulated hours
KEEP = 3  # COMPACTOR_KEEP_VERSIONS (the default)
COLLECTIONS = ("alpha", "beta")
IDS = 12  # per collection: puts update and delete the same records over and over
DIM = 4

# the bundled default policies with their ages scaled like the clock (1 h -> 3 s); the reports
# policy stands in for the bucket's lifecycle rule, which SeaweedFS does not run
POLICIES = """
stores:
  main: {}
defaults:
  grace: 3s
  max_deletions: 10000
  rate_limit: 1000
policies:
  - name: snapshot-retention
    resource: snapshot_version
    store: main
    filters: [{type: older-than, age: 3s}, {type: keep-newest, count: 3}]
  - name: orphan-snapshot-versions
    resource: snapshot_version
    store: main
    filters: [{type: unpublished}, {type: older-than, age: 60s}]
  - name: applied-deltas
    resource: delta
    store: main
    filters: [{type: applied}, {type: older-than, age: 3s}]
  - name: stale-temp-objects
    resource: object
    store: main
    prefix: tmp/
    filters: [{type: older-than, age: 60s}]
  - name: reports-lifecycle
    resource: object
    store: main
    prefix: reports/reaper/
    filters: [{type: older-than, age: 20s}]
"""


SCHEDULED = {  # an EventBridge scheduled event, as the reaper's schedule sends it
    "source": "aws.events",
    "detail-type": "Scheduled Event",
    "detail": {},
    "version": "0",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
}


def _queue(sqs: Any, name: str, *, fifo: bool, visibility: int) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    fifo_attrs = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=fifo_attrs)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = {
        **fifo_attrs,
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    }
    if fifo:
        attrs["ContentBasedDeduplication"] = "true"
    return sqs.create_queue(QueueName=f"{name}{suffix}", Attributes=attrs)["QueueUrl"], dlq


def _bytes(store: S3Store, prefix: str = "") -> int:
    return sum(o.size for o in store.list(prefix))


def _versions(store: S3Store, c: str) -> int:
    return len({o.key.split("/")[2] for o in store.list(f"snapshot/{c}/") if "/latest/" not in o.key})


def test_two_days_of_trickling_puts_stay_bounded(
    seaweed_s3: S3Server,
    moto_http: S3Server,
    fresh_bucket: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = fresh_bucket(seaweed_s3, "soak")
    aws = {**seaweed_s3.env(s3_only=True), "AWS_ENDPOINT_URL": moto_http.endpoint_url}
    for k, v in aws.items():
        monkeypatch.setenv(k, v)
    sqs = boto3.client("sqs", region_name="us-east-1")
    name = f"soak-{int(time.time() * 1000) % 10**9}"
    delta_q, delta_dlq = _queue(sqs, f"{name}-delta", fifo=True, visibility=360)
    cleanup_q, cleanup_dlq = _queue(sqs, f"{name}-cleanup", fifo=False, visibility=720)
    table = f"{name}-idem"
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    store = S3Store(bucket, client=seaweed_s3.client())
    env = {
        **aws,
        "STOREKEEPER_STORE": store.url,
        "DELTA_QUEUE_URL": delta_q,
        "CLEANUP_QUEUE_URL": cleanup_q,
        "IDEMPOTENCY_TABLE": table,
        "REAPER_POLICIES": str(policies),
        "REAPER_APPLY": "false",  # a default deployment: the reaper only plans (day 2 turns it on)
        "COMPACTOR_CACHE_DIR": str(tmp_path / "cache"),
        "COMPACTOR_MIN_INTERVAL_SECONDS": "1",  # 120 s scaled like the hour, rounded up
        "COMPACTOR_SWEEP_AGE_SECONDS": "1",
    }
    compactor = Mapping(sqs, delta_q, store, env)
    cleanup = Mapping(sqs, cleanup_q, store, env, function="cleanup")
    rng = random.Random(7)
    model: dict[str, dict[str, list[float]]] = {c: {} for c in COLLECTIONS}
    bytes_by_tick: list[int] = []
    versions_by_tick: list[int] = []
    failed = 0
    sent = {"false": 0, "true": 0}  # cleanup tasks the reaper sent, by REAPER_APPLY

    def run(function: str, event: dict[str, Any]) -> dict[str, Any]:
        res = invoke(function, event, root=REPO, store=store.url, env=env)
        assert res.ok, res.to_json()
        return dict(res.response)

    for tick in range(TICKS):
        for c in COLLECTIONS:  # the trickle: one small put per collection per hour
            ups = {f"r{rng.randrange(IDS)}": [rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(2)}
            dels = [f"r{rng.randrange(IDS)}" for _ in range(rng.randrange(2))]
            dels = [d for d in dels if d not in ups]
            records = [{"id": k, "embedding": v} for k, v in ups.items()]
            out = run("producer", {"collection": c, "upserts": records, "deletes": dels})
            assert out["statusCode"] == 200, out
            if tick == 5 and c == "beta":  # damaged on the way: quarantined, never applied
                store.put(out["deltas"][0]["delta_key"], b"SKDL" + b"\x00" * 40)
                continue
            for d in dels:
                model[c].pop(d, None)
            model[c].update(ups)
        failed += compactor.drain()
        run("compactor", {"sweep": True})
        if tick == TICKS // 2:  # day 2: an operator turns the reaper's real runs on
            env["REAPER_APPLY"] = "true"
        if tick % REAPER_EVERY == REAPER_EVERY - 1:
            report = run("reaper", {**SCHEDULED, "id": f"tick-{tick}"})
            assert report["errors"] == [], report
            sent[env["REAPER_APPLY"]] += report["sent"]
            failed += cleanup.drain()
        bytes_by_tick.append(_bytes(store) - _bytes(store, "reports/"))
        versions_by_tick.append(max(_versions(store, c) for c in COLLECTIONS))
        time.sleep(0.2)

    # the last notifications' deltas: the sweep collects whatever coalescing left
    time.sleep(1.1)
    run("compactor", {"sweep": True})
    assert failed == 0
    assert sent["false"] == 0  # dry runs send nothing
    assert sent["true"] > 0  # real runs did, and the cleanup function executed them (failed == 0)
    for c in COLLECTIONS:
        assert list_pending(store, c) == []
        assert_same_state(snapshot_state(store, c, tmp_path / f"rc-{c}"), model[c])
    assert len(list(store.list("delta-rejected/beta/"))) == 2  # the damaged delta and its reason

    # bounded: versions never pile up between reaper runs (the compactor's own retention keeps the
    # live one + KEEP, one more may be inside the grace floor), and the second day holds no more
    # bytes than the first
    assert max(versions_by_tick[3:]) <= KEEP + 2, versions_by_tick
    first_day, second_day = bytes_by_tick[3:12], bytes_by_tick[12:]
    assert max(second_day) <= 1.5 * max(first_day), bytes_by_tick
    for q in (delta_q, delta_dlq, cleanup_q, cleanup_dlq):
        attrs = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0", (q, attrs)
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0", (q, attrs)
