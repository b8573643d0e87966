"""The reaper -> cleanup path on real servers: SeaweedFS (S3), the Supabase Storage emulator, and
moto_server over HTTP for the SQS leg (reaper -> CleanupQueue -> cleanup Lambda handler).

Ages: S3 servers set last-modified themselves, so rules use `older-than 0s` with a planning clock a
minute ahead, and the watermark test controls "oldest first" by writing in groups more than a
second apart (SeaweedFS keeps last-modified at 1 s resolution) in reverse name order, so time order
and name order disagree and only a time ordering passes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storekeeper import reaper
from storekeeper.cleanup import TaskOutcome, execute_task, parse_task
from storekeeper.layout import pointer_key
from storekeeper.models.reports import ReaperReport
from storekeeper.overflow import least_full_bucket
from storekeeper.policies import parse_policies
from storekeeper.protection import ProtectionConfig
from storekeeper.queues import LocalQueue, SqsQueue
from storekeeper.stores import ObjectStore, RequestCounter
from storekeeper.stores.s3 import S3Store
from tests.cleanup_support import put_version
from tests.servers.s3_servers import S3Server, empty_and_delete_bucket
from tests.servers.supabase_server import SupabaseEmulatorServer
from tests.unit.reaper_world import delta_id

pytestmark = pytest.mark.integration
V1, V2, V3 = "000000000001-aaaaaaaa", "000000000002-bbbbbbbb", "000000000003-cccccccc"

AGGRESSIVE = """\
defaults: {grace: 0s}   # no grace floor: only the live-data protection stands between us and deletion
protect: {names: []}
policies:
  - {name: everything, resource: object, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: all-deltas, resource: delta, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: keep-one, resource: snapshot_version, store: main, filters: [{type: keep-newest, count: 1}]}
  - {name: orphans, resource: snapshot_version, store: main, filters: [{type: unpublished}]}
"""


def soon() -> datetime:
    """The planning clock: a minute ahead, so everything just written is 'older than 0s'."""
    return datetime.now(UTC) + timedelta(minutes=1)


@pytest.fixture
def sw(seaweed_s3: S3Server, fresh_bucket: Any) -> S3Store:
    client = seaweed_s3.client(max_pool_connections=16)
    return S3Store(fresh_bucket(seaweed_s3, "reap"), client=client, counter=RequestCounter())


def put_many(store: ObjectStore, keys: list[str], body: bytes = b"x") -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, body), keys))


def all_keys(store: ObjectStore) -> set[str]:
    return {i.key for i in store.list("")}


def publish(store: ObjectStore, version: str, parent: str | None, applied: list[str], live: bool) -> None:
    put_version(store, "docs", version, created_at=datetime.now(UTC), live=live, parent=parent, size=7,
                deltas=applied[-1:], applied=applied)  # fmt: skip


def world(store: ObjectStore) -> set[str]:
    """V1 <- V2 (live), V3 written but never published; deltas 0,1 applied, 2,3 not; loose objects.
    Returns the keys that must survive any policy."""
    ids = [delta_id(i) for i in range(4)]
    for d in ids:
        store.put(f"delta/docs/{d}.delta", b"d")
    publish(store, V1, None, ids[:1], live=False)
    publish(store, V2, V1, ids[:2], live=True)
    publish(store, V3, V2, ids[:3], live=False)  # newer than live: may be mid-publish
    store.put("tmp/old.tmp", b"t")
    store.put("img/a.png", b"i")
    live = {f"snapshot/docs/{V2}/chroma.tar.gz", f"snapshot/docs/{V2}/manifest.json", pointer_key("docs")}
    return live | {f"delta/docs/{d}.delta" for d in ids[2:]} | {k for k in all_keys(store) if V3 in k}


def plan_and_drain(
    store: ObjectStore, text: str, tmp_path: Path, *, now: datetime, dry_first: bool = True
) -> tuple[ReaperReport, set[str], list[TaskOutcome]]:
    """Dry run, then the real run (same plan asserted), then every task through the executor."""
    loaded = parse_policies(text)
    queue = LocalQueue(tmp_path / f"q-{time.monotonic_ns()}")
    kw: dict[str, Any] = {"policies": loaded, "stores": {"main": store}, "now": now, "write_report": False}
    real = reaper.run(apply=True, queue=queue, **kw)
    if dry_first:
        dry = reaper.run(apply=False, queue=queue, **kw)  # same state: planning changes nothing
        assert dry.plan_digest == real.plan_digest
        assert [d.model_dump() for d in dry.decisions] == [d.model_dump() for d in real.decisions]
    planned: set[str] = set()
    for t in real.tasks:
        planned.update(t.keys)
        if t.version:
            planned.update(i.key for i in store.list(f"snapshot/{t.collection}/{t.version}/"))
    protection = ProtectionConfig.from_protect(loaded.spec.protect)
    outcomes = []
    for m in queue.receive(10_000):
        outcomes.append(execute_task(parse_task(m.body), resolve_store=lambda b, n: store, now=now,
                                     protection=protection))  # fmt: skip
        queue.ack(m)
    assert len(outcomes) == real.sent == len(real.tasks)
    return real, planned, outcomes


# -- SeaweedFS ---------------------------------------------------------------------------------------


def test_dry_and_real_plan_match_and_the_real_run_deletes_exactly_it_on_seaweed(
    sw: S3Store, tmp_path: Path
) -> None:
    must_stay = world(sw)
    before = all_keys(sw)
    report, planned, outcomes = plan_and_drain(sw, AGGRESSIVE, tmp_path, now=soon())
    assert planned == before - must_stay  # match-everything: all but the protected
    assert {o.status for o in outcomes} <= {"executed", "noop"}
    assert all_keys(sw) == before - planned
    protected = {d.name: d.reason for d in report.decisions if d.verdict == "protected"}
    assert "live pointer" in protected[pointer_key("docs")]
    assert "not applied" in protected[f"delta/docs/{delta_id(3)}.delta"]
    assert "newer than the live" in protected[f"snapshot/docs/{V3}/"]


def test_plan_and_delete_request_arithmetic_on_seaweed(sw: S3Store, tmp_path: Path) -> None:
    """2,100 objects: 3 list pages to plan, 3 tasks, 3 list pages to re-check, 3 bulk deletes, 0 HEADs."""
    n = 2100
    put_many(sw, [f"bulk/{i:05d}" for i in range(n)])
    text = AGGRESSIVE.replace("protect: {names: []}", "protect: {names: [], object_labels: false}")
    text = text.split("  - {name: all-deltas")[0]  # only the object policy
    sw.requests.reset()
    report = reaper.run(policies=parse_policies(text), stores={"main": sw}, now=soon(), write_report=False)
    # the parallel listing's one delimiter request at the root (it finds bulk/ as the only part),
    # then bulk/ in full pages, never listed twice
    assert sw.requests.counts["list"] == 1 + math.ceil(n / 1000) == 4
    (listing,) = report.listings
    assert (listing.requests, listing.sequential_minimum, listing.split_requests) == (4, 3, 4)
    assert [len(t.keys) for t in report.tasks] == [1000, 1000, 100]
    sw.requests.reset()
    protection = ProtectionConfig(check_object_labels=False)
    for t in report.tasks:
        out = execute_task(t, resolve_store=lambda b, k: sw, now=soon(), protection=protection)
        assert out.status == "executed", out.message
    assert sw.requests.counts["delete_batch"] == 3
    assert sw.requests.counts["list"] == 3  # each task's keys are one page of the listing
    assert sw.requests.counts.get("head", 0) == 0
    assert list(sw.list("bulk/")) == []


WATERMARK = """\
stores:
  main: {capacity: 10000, watermarks: {high: 0.85, low: 0.70, hard: 0.95}}
policies:
  - {name: images-watermark, resource: object, store: main, prefix: img/, filters: [{type: watermark}]}
"""


def test_watermark_cleans_oldest_first_to_low_and_keeps_protected_on_seaweed(
    sw: S3Store, tmp_path: Path
) -> None:
    # written oldest -> newest in groups > 1 s apart, names in reverse: time order != name order
    sw.put("img/z0", b"x" * 900, metadata={"storekeeper-protect": "true"})
    sw.put("img/z1", b"x" * 900)
    time.sleep(1.2)
    put_many(sw, ["img/m0", "img/m1"], b"x" * 900)
    time.sleep(1.2)
    put_many(sw, [f"img/a{i}" for i in range(6)], b"x" * 900)  # 10 x 900 = 9000 of 10000: 0.90
    report, _, outcomes = plan_and_drain(sw, WATERMARK, tmp_path, now=soon())
    order = [d.name for d in report.decisions if d.verdict == "planned"]
    assert order == ["img/z1", "img/m0", "img/m1"]  # oldest first, the protected z0 passed over
    assert [d.name for d in report.decisions if d.verdict == "protected"] == ["img/z0"]
    assert any("0.900 -> 0.630" in n for n in report.summaries[0].notes)
    assert all(o.status == "executed" for o in outcomes)
    assert sw.usage("img/").bytes == 6300 <= 0.70 * 10_000
    assert all_keys(sw) == {"img/z0", *(f"img/a{i}" for i in range(6))}


OVERFLOW = """\
stores:
  main: {capacity: 1000, watermarks: {high: 0.85, low: 0.70, hard: 0.95}}
policies:
  - {name: overflow, resource: bucket, store: main, action: create-overflow,
     filters: [{type: usage-ratio, gte: hard}]}
"""


@pytest.fixture
def overflow_cleanup(seaweed_s3: S3Server, sw: S3Store) -> Iterator[None]:
    yield
    empty_and_delete_bucket(seaweed_s3.client(), f"{sw.bucket}-1")


def test_overflow_bucket_created_past_95_percent_and_new_writes_land_there_on_seaweed(
    sw: S3Store, tmp_path: Path, overflow_cleanup: None
) -> None:
    sw.put("img/big", b"x" * 940)
    _, _, none = plan_and_drain(sw, OVERFLOW, tmp_path, now=soon())
    assert none == []  # 0.94: below hard, no task
    sw.put("img/more", b"x" * 20)  # 0.96
    report, _, outcomes = plan_and_drain(sw, OVERFLOW, tmp_path, now=soon())
    assert [t.action.value for t in report.tasks] == ["create_overflow_bucket"]
    assert outcomes[0].created == [f"{sw.bucket}-1"]
    assert sw.bucket_exists(f"{sw.bucket}-1")
    bucket = least_full_bucket(sw, sw.bucket, 1000, incoming=100)
    assert bucket == f"{sw.bucket}-1"
    sw.for_bucket(bucket).put("img/new", b"y" * 100)
    assert sw.for_bucket(bucket).get("img/new").body == b"y" * 100
    # the group has room now: the next run plans nothing, a replayed task creates nothing
    again, _, _ = plan_and_drain(sw, OVERFLOW, tmp_path, now=soon())
    assert again.tasks == []
    replay = execute_task(report.tasks[0], resolve_store=lambda b, n: sw, now=soon())
    assert replay.status == "skipped"
    assert not sw.bucket_exists(f"{sw.bucket}-2")


def test_snapshot_published_between_planning_and_cleanup_survives_on_seaweed(
    sw: S3Store, tmp_path: Path
) -> None:
    world(sw)
    loaded = parse_policies(AGGRESSIVE)
    queue = LocalQueue(tmp_path / "q")
    now = soon()
    report = reaper.run(policies=loaded, stores={"main": sw}, now=now, apply=True, queue=queue,
                        write_report=False)  # fmt: skip
    v1_keys = {f"snapshot/docs/{V1}/chroma.tar.gz", f"snapshot/docs/{V1}/manifest.json"}
    assert v1_keys <= {k for t in report.tasks for k in t.keys}  # planned while V2 was live
    # between planning and cleanup V1 is published again (a rollback through the conditional pointer write)
    etag = sw.head(pointer_key("docs")).etag
    sw.put(pointer_key("docs"), f"snapshot/docs/{V1}/".encode(), if_match=etag)
    outcomes = [
        execute_task(parse_task(m.body), resolve_store=lambda b, n: sw, now=now,
                     protection=ProtectionConfig.from_protect(loaded.spec.protect))
        for m in queue.receive(10_000)
    ]  # fmt: skip
    skipped = {k: v for o in outcomes for k, v in o.skipped.items()}
    assert "live snapshot" in skipped[f"snapshot/docs/{V1}/manifest.json"]
    assert "became live after planning" in skipped[f"snapshot/docs/{V1}/"]
    assert v1_keys <= all_keys(sw)
    assert sw.get(pointer_key("docs")).body.decode() == f"snapshot/docs/{V1}/"


# -- Supabase Storage emulator -------------------------------------------------------------------------


def test_dry_and_real_plan_match_and_the_real_run_deletes_exactly_it_on_supabase(
    supabase_env: SupabaseEmulatorServer, tmp_path: Path
) -> None:
    from storekeeper.stores import open_store

    store = open_store("supabase://reap", counter=RequestCounter())
    store.create_bucket("reap")
    must_stay = world(store)
    before = all_keys(store)
    _, planned, outcomes = plan_and_drain(store, AGGRESSIVE, tmp_path, now=soon())
    assert planned == before - must_stay
    assert {o.status for o in outcomes} <= {"executed", "noop"}
    assert all_keys(store) == before - planned


# -- moto_server: reaper -> SQS CleanupQueue -> cleanup Lambda handler --------------------------------


def test_reaper_sends_to_sqs_and_the_cleanup_handler_executes_on_moto_server(
    moto_http: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storekeeper.runtime import invoke

    for k, v in moto_http.env().items():
        monkeypatch.setenv(k, v)
    s3, sqs = moto_http.client("s3"), moto_http.client("sqs")
    bucket = f"reap-sqs-{time.monotonic_ns() % 10**9}"
    s3.create_bucket(Bucket=bucket)
    url = sqs.create_queue(QueueName=f"cleanup-{bucket}")["QueueUrl"]
    policies = tmp_path / "policies.yaml"
    policies.write_text(AGGRESSIVE)
    monkeypatch.setenv("STOREKEEPER_STORE", f"s3://{bucket}")
    monkeypatch.setenv("CLEANUP_QUEUE_URL", url)
    monkeypatch.setenv("REAPER_POLICIES", str(policies))
    store = S3Store(bucket, client=moto_http.client("s3"))
    must_stay = world(store)
    before = all_keys(store)

    report = reaper.run(policies_path=str(policies), apply=True, now=soon(), write_report=False)
    assert report.sent == len(report.tasks) > 0
    queue = SqsQueue(url, client=sqs)
    records: list[dict[str, Any]] = []
    while batch := queue.receive(10):
        records += [_record(m.message_id, m.body) for m in batch]
        for m in batch:
            queue.ack(m)
    assert len(records) == report.sent
    bad = _record("bad-1", json.dumps({"task_id": "t-bad", "action": "shred", "backend": "s3"}))
    event = {"Records": [*records, bad]}
    result = invoke("cleanup", event, store=f"s3://{bucket}")
    assert result.ok, result.error_message
    assert [f["itemIdentifier"] for f in result.response["batchItemFailures"]] == ["bad-1"]
    planned = {k for t in report.tasks for k in t.keys}
    planned |= {k for k in before if any(t.version and t.version in k for t in report.tasks)}
    left = {k for k in all_keys(store) if not k.startswith("idempotency/")}
    assert left == before - planned
    assert must_stay <= left


def _record(mid: str, body: str) -> dict[str, Any]:
    """An SQS record as Lambda's event source mapping delivers it (every system attribute present)."""
    from storekeeper.batch import record_shell

    record = record_shell(body, mid)
    record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:CleanupQueue"
    return record
