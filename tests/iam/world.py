"""Every handler path run against moto with the deployed resources' own names, every AWS call recorded.

The resources are created under the physical names the template gives them (moto's
account is the template's test account), and each function runs with exactly the
environment the translated template gives it, so a recorded call names the
deployed bucket, queue or table as it is. Only the snapshot cache directory is
moved under the test's temporary directory.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from storekeeper.runtime import InvocationResult, invoke
from storekeeper.stores.s3 import S3Store
from tests.compaction_support import delta, produce, vec
from tests.iam.deployed import REPO, Deployed
from tests.iam.recorder import Recorder

DIM = 4

#: the function each handler folder is deployed as
FUNCTIONS = {
    "producer": "ProducerFunction",
    "compactor": "CompactorFunction",
    "reaper": "ReaperFunction",
    "cleanup": "CleanupFunction",
    "query": "QueryFunction",  # optional (EnableQueryFunction): the scenario deploys it
}
#: the parameters the scenario deploys with: every optional function on
PARAMS = {"EnableQueryFunction": "true"}

#: reaper policies that make tasks of every object kind at once (age 0), so a real run sends them
APPLY_POLICIES = """
stores:
  main:
    capacity: 1KB
    watermarks: {high: 0.5, low: 0.4, hard: 0.6}
defaults: {grace: 0s, rate_limit: 1000}
policies:
  - name: stale-temp
    resource: object
    store: main
    prefix: tmp/
    filters: [{type: older-than, age: 0s}]
  - name: old-snapshots
    resource: snapshot_version
    store: main
    filters: [{type: older-than, age: 0s}, {type: keep-newest, count: 1}]
  - name: stale-uploads
    resource: upload
    store: main
    prefix: tmp/
    filters: [{type: older-than, age: 0s}]
  - name: labelled-buckets
    resource: bucket
    store: main
    filters: [{type: name-prefix, value: "STORE-"}, {type: label, key: "storekeeper:test"}]
  - name: overflow
    resource: bucket
    store: main
    filters: [{type: usage-ratio, gte: 0.6}]
    action: create-overflow
"""


@dataclass
class World:
    d: Deployed
    recorder: Recorder
    tmp: Path
    results: dict[str, list[InvocationResult]] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        """The store bucket: the one the functions' STOREKEEPER_STORE names."""
        store = self.d.environment(FUNCTIONS["producer"])["STOREKEEPER_STORE"]
        name = str(store).removeprefix("s3://")
        assert name in self._names("AWS::S3::Bucket"), name
        return name

    def _names(self, rtype: str) -> list[str]:
        return [self.d.physical_name(r) for r in self.d.of_type(rtype)]

    def store(self) -> S3Store:
        return S3Store(self.bucket)

    def env(self, function: str, **extra: str) -> dict[str, str]:
        env = {k: str(v) for k, v in self.d.environment(FUNCTIONS[function]).items()}
        if "COMPACTOR_CACHE_DIR" in env:
            env["COMPACTOR_CACHE_DIR"] = str(self.tmp / "compactor-cache")
        env.update(extra)
        return env

    def run(self, function: str, event: Any, label: str, **extra_env: str) -> InvocationResult:
        env = self.env(function, **extra_env)
        res = invoke(function, event, store=env.get("STOREKEEPER_STORE"), env=env)
        assert res.error_type is None, f"{label}: {res.to_json()}"
        self.results.setdefault(label, []).append(res)
        return res

    def queue_url(self, rid: str) -> str:
        return self.d.ref(rid)

    def receive(self, rid: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.queue_url(rid), MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return out
            for m in got:
                sqs.delete_message(QueueUrl=self.queue_url(rid), ReceiptHandle=m["ReceiptHandle"])
            out.extend(got)


def create_resources(d: Deployed) -> None:
    """The template's buckets, queues and tables, under their physical names, as configured."""
    s3 = boto3.client("s3", region_name="us-east-1")
    for rid, res in d.of_type("AWS::S3::Bucket").items():
        name = d.physical_name(rid)
        s3.create_bucket(Bucket=name)
        if res["Properties"].get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    sqs = boto3.client("sqs", region_name="us-east-1")
    for rid, res in d.of_type("AWS::SQS::Queue").items():
        attrs = {"FifoQueue": "true"} if res["Properties"].get("FifoQueue") else {}
        if res["Properties"].get("ContentBasedDeduplication"):
            attrs["ContentBasedDeduplication"] = "true"
        url = sqs.create_queue(QueueName=d.physical_name(rid), Attributes=attrs)["QueueUrl"]
        assert url == d.ref(rid), (url, d.ref(rid))
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    for rid, res in d.of_type("AWS::DynamoDB::Table").items():
        p = res["Properties"]
        ddb.create_table(
            TableName=d.physical_name(rid),
            KeySchema=p["KeySchema"],
            AttributeDefinitions=p["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )


def sqs_records(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def via_queue(w: World, rid: str, bodies: list[str]) -> dict[str, Any]:
    """Send the bodies through the real queue and receive them: the event carries SQS's own attributes."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    fifo = w.d.physical_name(rid).endswith(".fifo")
    for b in bodies:
        extra = {"MessageGroupId": "g", "MessageDeduplicationId": str(uuid.uuid4())} if fifo else {}
        sqs.send_message(QueueUrl=w.queue_url(rid), MessageBody=b, **extra)
    return sqs_records(w.receive(rid), w.d.arn(rid))


def put_event(collection: str, n: int, *, request_id: str | None = None, deletes: int = 0) -> dict[str, Any]:
    ups = [{"id": f"v{i}", "embedding": vec(i, DIM)} for i in range(n)]
    ev: dict[str, Any] = {
        "collection": collection,
        "upserts": ups,
        "deletes": [f"v{i}" for i in range(deletes)],
    }
    if request_id:
        ev["request_id"] = request_id
    return ev


def s3_event(bucket: str, key: str, version_id: str | None, size: int) -> dict[str, Any]:
    """The sample event of events/producer/, naming this upload."""
    ev = json.loads((REPO / "events/producer/s3-object-created.json").read_text())
    rec = ev["Records"][0]
    rec["eventTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    rec["s3"]["bucket"].update({"name": bucket, "arn": f"arn:aws:s3:::{bucket}"})
    rec["s3"]["object"].update({"key": key, "size": size})
    rec["s3"]["object"].pop("versionId", None)
    if version_id:
        rec["s3"]["object"]["versionId"] = version_id
    return dict(ev)


def run_every_path(w: World) -> None:
    """Producer (direct, S3), compactor (batch, replay, quarantine, sweep), reaper, every cleanup action."""
    s3 = boto3.client("s3", region_name="us-east-1")
    delta_queue = "DeltaQueue"
    delta_arn = w.d.arn(delta_queue)
    store = w.store()

    # producer, direct invoke: first write of a collection (no config, no pointer), then later writes,
    # a retried request_id (idempotency), and a delete-only put
    w.run("producer", put_event("docs", 3, request_id="r-1"), "producer direct first write")
    w.run("producer", put_event("docs", 3, request_id="r-1"), "producer direct retried request")
    w.run("producer", put_event("docs", 2, request_id="r-2"), "producer direct")
    w.run("producer", {"collection": "docs", "upserts": [], "deletes": ["v1"]}, "producer delete-only")

    # producer, S3 ObjectCreated for a bulk JSONL file under incoming/<c>/
    lines = "\n".join(json.dumps({"id": f"b{i}", "embedding": vec(100 + i, DIM)}) for i in range(5))
    key = "incoming/docs/batch-1.jsonl"
    put = s3.put_object(Bucket=w.bucket, Key=key, Body=lines.encode())
    w.run("producer", s3_event(w.bucket, key, put.get("VersionId"), len(lines)), "producer S3 event")

    # compactor: the notifications as the event source mapping delivers them (first compaction: no pointer)
    notes = w.receive(delta_queue)
    assert notes, "the producer sent no notification"
    w.run("compactor", sqs_records(notes, delta_arn), "compactor batch")
    # the same notifications again: their deltas were applied and removed by the first batch
    w.run("compactor", sqs_records(notes, delta_arn), "compactor already applied")

    # a delta that can never be applied (another dimension): quarantined under delta-rejected/
    bad = produce(store, delta("docs", {"x": vec(7, DIM * 2)}))
    w.run("compactor", via_queue(w, delta_queue, [bad.model_dump_json()]), "compactor quarantine")
    # ... and its notification delivered again after the quarantine
    w.run("compactor", via_queue(w, delta_queue, [bad.model_dump_json()]), "compactor quarantined replay")

    # the sweep: a delta whose notification never arrived, plus a new collection
    sqs = boto3.client("sqs", region_name="us-east-1")
    attrs = sqs.get_queue_attributes(QueueUrl=w.queue_url(delta_queue), AttributeNames=["All"])["Attributes"]
    sqs.delete_queue(QueueUrl=w.queue_url(delta_queue))  # the notification fails: the delta stays pending
    w.run("producer", put_event("docs", 2), "producer lost notification")
    keep = ("FifoQueue", "ContentBasedDeduplication")
    sqs.create_queue(
        QueueName=w.d.physical_name(delta_queue), Attributes={k: attrs[k] for k in keep if k in attrs}
    )
    produce(store, delta("fresh", {"f1": vec(1, DIM)}))
    w.run("compactor", {"sweep": True}, "compactor sweep", COMPACTOR_SWEEP_AGE_SECONDS="0")
    # retention: with a grace floor of 0 (the policies file the compactor shares with the reaper and
    # cleanup) and one version kept, the next publish removes the superseded ones with their versions
    policies = w.tmp / "apply-policies.yaml"
    policies.write_text(APPLY_POLICIES.replace("STORE", w.bucket))
    produce(store, delta("docs", {"r1": vec(11, DIM)}))
    w.run("compactor", {"sweep": True}, "compactor retention", COMPACTOR_SWEEP_AGE_SECONDS="0",
          COMPACTOR_KEEP_VERSIONS="1", REAPER_POLICIES=str(policies))  # fmt: skip
    w.receive(delta_queue)  # drop what the producer sent meanwhile

    # query (optional function): a published collection, a collection with only pending deltas, an unknown one
    ask = json.loads((REPO / "events/query/query.json").read_text())
    for body in (
        {"collection": "docs", "vector": vec(1, DIM), "k": 3},
        {"collection": "never-written", "vector": vec(1, DIM), "k": 3},
    ):
        w.run("query", {**ask, "body": json.dumps(body)}, f"query {body['collection']}")

    # reaper: the bundled default policies, dry run (the template's default) and applied
    tick = json.loads((REPO / "events/reaper/schedule.json").read_text())
    w.run("reaper", tick, "reaper default dry run")
    w.run("reaper", tick, "reaper default applied", REAPER_APPLY="true")
    # a policy set that plans real tasks (age 0), applied: the tasks are sent to the cleanup queue
    s3.put_object(Bucket=w.bucket, Key="tmp/left-over.part", Body=b"x")
    s3.create_multipart_upload(Bucket=w.bucket, Key="tmp/never-completed.bin")
    s3.create_bucket(
        Bucket=f"{w.bucket}-7"
    )  # an overflow member (the labelled-buckets policy reads its tags)
    s3.create_bucket(Bucket="another-team-bucket")  # not ours: the reaper must leave it alone
    w.run("reaper", tick, "reaper planning tasks", REAPER_APPLY="true", REAPER_POLICIES=str(policies))
    sent = w.receive("CleanupQueue")
    assert sent, "the reaper sent no cleanup task"

    # cleanup: the tasks the reaper sent, then one task of every action on S3
    done = w.run(
        "cleanup",
        sqs_records(sent, w.d.arn("CleanupQueue")),
        "cleanup reaper tasks",
        REAPER_POLICIES=str(policies),
    )
    assert done.response == {"batchItemFailures": []}, done.response
    now = datetime.now(UTC).isoformat()
    base = {
        "backend": "s3",
        "bucket": w.bucket,
        "policy": "iam-test",
        "reason": "iam conformance",
        "planned_at": now,
    }
    for k in ("tmp/a.part", "tmp/b.part", "old/x.bin"):
        s3.put_object(Bucket=w.bucket, Key=k, Body=b"x")
    overflow = f"{w.bucket}-7"  # the member made above; not empty, so the create task makes the next one
    s3.put_object(Bucket=overflow, Key="left/over.bin", Body=b"x")
    upload = s3.create_multipart_upload(Bucket=w.bucket, Key="tmp/big.bin")["UploadId"]
    versions = sorted(
        {
            o["Key"].split("/")[2]
            for o in s3.list_objects_v2(Bucket=w.bucket, Prefix="snapshot/docs/")["Contents"]
        }
        - {"latest"}
    )
    tasks: list[dict[str, Any]] = [
        {**base, "task_id": "t-objects", "action": "delete_objects", "keys": ["old/x.bin"]},
        {**base, "task_id": "t-prefix", "action": "delete_prefix", "prefix": "tmp/"},
        {
            **base,
            "task_id": "t-uploads",
            "action": "abort_uploads",
            "keys": ["tmp/big.bin"],
            "upload_ids": [upload],
        },
        {**base, "task_id": "t-overflow", "action": "create_overflow_bucket"},
    ]
    if len(versions) > 1:
        tasks.append(
            {
                **base,
                "task_id": "t-version",
                "action": "delete_snapshot_version",
                "collection": "docs",
                "version": versions[0],
            }
        )
    done = w.run(
        "cleanup",
        via_queue(w, "CleanupQueue", [json.dumps(t) for t in tasks]),
        "cleanup every action",
        REAPER_POLICIES=str(policies),
    )
    assert done.response == {"batchItemFailures": []}, done.response
    task = {**base, "bucket": overflow, "task_id": "t-bucket", "action": "delete_bucket"}
    done = w.run(
        "cleanup",
        via_queue(w, "CleanupQueue", [json.dumps(task)]),
        "cleanup delete overflow bucket",
        REAPER_POLICIES=str(policies),
    )
    assert done.response == {"batchItemFailures": []}, done.response
