"""100,000 objects: planned from the listing alone, and deleted through the whole path
(reaper plan -> tasks of <= 1000 keys -> cleanup executor re-check -> batched deletes)
with the request count of each stage checked through RequestCounter.

The objects are written straight into the local store's layout (`<root>/<bucket>/<key>`, the
files are the objects): that is setup, not a stand-in, and keeps 100k objects cheap. S3 page
arithmetic (one list request per 1,000 keys, one delete request per 1,000 keys) is proven on
the real SeaweedFS server with a smaller n in tests/integration/test_reaper_seaweed.py, and on
moto here for the page-sharing between policies.
"""

from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from storekeeper import reaper
from storekeeper.cleanup import execute_task, store_resolver
from storekeeper.policies import parse_policies
from storekeeper.protection import ProtectionConfig
from storekeeper.stores import RequestCounter
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import NOW

pytestmark = pytest.mark.slow  # planning and deleting 100,000 objects: not in `make test-fast`

N = 100_000

POLICY = """\
protect: {object_labels: false}
defaults: {max_deletions: 1000000}
policies:
  - {name: cache-age, resource: object, store: main, prefix: cache/, filters: [{type: older-than, age: AGE}]}
"""


@pytest.fixture
def big(tmp_path: Path) -> LocalStore:
    """cache/<dd>/<iiii>.bin, 100 folders x 1000 files; even i are 3 days old, odd i 1 hour.
    Writing 100,000 files is most of this module's time (10-25 s), so one test plans the world
    (which reads it only) and then deletes it; two tests sharing one world would make the
    planning test's result depend on which of them ran first."""
    store = LocalStore(tmp_path / "stores" / "main", counter=RequestCounter())
    old = (NOW - timedelta(days=3)).timestamp()
    new = (NOW - timedelta(hours=1)).timestamp()
    started = time.perf_counter()
    for d in range(100):
        folder = store.path / "cache" / f"{d:02d}"
        folder.mkdir(parents=True)
        for i in range(N // 100):
            f = folder / f"{i:04d}.bin"
            f.write_bytes(b"")
            t = old if i % 2 == 0 else new
            os.utime(f, (t, t))
    print(f"setup: {N} objects in {time.perf_counter() - started:.1f}s")
    return store


@pytest.mark.timeout(600)  # writing, planning and deleting 100,000 files: minutes on a loaded machine's disk
def test_100k_objects_planned_from_listing_only_then_deleted_in_batches(big: LocalStore) -> None:
    planned_from_listing_only(big)
    deleted_through_plan_executor_and_batched_deletes(big)


def planned_from_listing_only(big: LocalStore) -> None:
    """An age policy plans exactly the old half, in full tasks, from the listing alone."""
    big.requests.reset()
    started = time.perf_counter()
    report = reaper.run(
        policies=parse_policies(POLICY.replace("AGE", "48h")),
        stores={"main": big},
        now=NOW,
        write_report=False,
    )
    elapsed = time.perf_counter() - started
    s = report.summaries[0]
    assert (s.evaluated, s.matched, s.planned) == (N, N // 2, N // 2)
    assert len(report.tasks) == N // 2 // 1000 == 50
    assert all(len(t.keys) == 1000 for t in report.tasks)
    keys = [k for t in report.tasks for k in t.keys]
    assert len(set(keys)) == len(keys) == N // 2
    assert all(int(k[-8:-4]) % 2 == 0 for k in keys)  # exactly the old half
    assert big.requests.counts.get("head", 0) == 0  # nothing but the listing was read
    print(f"planned {N} objects in {elapsed:.2f}s = {N / elapsed:,.0f} objects/s")


def deleted_through_plan_executor_and_batched_deletes(big: LocalStore) -> None:
    """Everything is older than 0s now: the whole world is planned and deleted."""
    assert sum(1 for _ in big.list("cache/")) == N
    report = reaper.run(
        policies=parse_policies(POLICY.replace("AGE", "0s")),
        stores={"main": big},
        now=NOW,
        write_report=False,
    )
    assert len(report.tasks) == math.ceil(N / 1000) == 100
    big.requests.reset()
    started = time.perf_counter()
    deleted = 0
    for t in report.tasks:
        out = execute_task(
            t,
            resolve_store=store_resolver(big),
            now=NOW,
            protection=ProtectionConfig(check_object_labels=False),
        )
        assert out.status == "executed", out.message
        deleted += out.deleted_count
    elapsed = time.perf_counter() - started
    assert deleted == N
    counts = big.requests.counts
    assert counts["delete_batch"] == math.ceil(N / 1000) == 100  # one bulk delete per 1000 keys
    assert counts.get("head", 0) == 0  # the re-check reads listings, never a HEAD per key
    assert counts.get("delete", 0) == 0
    assert list(big.list("cache/")) == []
    print(f"deleted {N} objects in {elapsed:.2f}s; requests {dict(counts)}")


@mock_aws
def test_s3_listing_follows_every_page_once_per_run() -> None:
    from storekeeper.stores.s3 import S3Store

    n, page = 250, 100  # the store's page-size knob keeps moto fast; ceil(n / page) requests either way
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="bigbucket")
    for i in range(n):
        client.put_object(Bucket="bigbucket", Key=f"cache/{i:05d}", Body=b"")
    store = S3Store("bigbucket", client=client, counter=RequestCounter(), list_page_size=page)
    text = POLICY.replace("AGE", "0s") + (
        "  - {name: also, resource: object, store: main, prefix: cache/001, filters: [{type: size, lt: 1}]}\n"
    )
    report = reaper.run(
        policies=parse_policies(text),
        stores={"main": store},
        now=NOW + timedelta(days=3650),
        write_report=False,
    )
    # both policies share one full listing (the report accounts for every request; nothing is listed twice)
    (listing,) = report.listings
    assert (listing.prefix, listing.objects, listing.sequential_minimum) == ("", n, math.ceil(n / page))
    # one delimiter request at the root (it finds only cache/), then cache/'s own pages, all full but the last
    assert store.requests.counts["list"] == listing.requests == math.ceil(n / page) + 1
    assert report.summaries[0].planned == n
    assert report.summaries[1].skipped == 100  # cache/001xx: already planned by the first policy


CAPPED = """\
defaults: {max_deletions: 7}
policies:
  - {name: tmp-age, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 1h}]}
"""


def test_caps_apply_before_label_lookups(tmp_path: Path) -> None:
    """300 candidates, a cap of 7: only the 7 that may be planned are HEAD-ed for labels (one of them
    protected by a label, so an 8th is looked at); the rest are deferred without a request each."""
    store = LocalStore(tmp_path / "stores" / "main", counter=RequestCounter())
    old = (NOW - timedelta(days=3)).timestamp()
    for i in range(300):
        store.put(f"tmp/{i:04d}", b"x", metadata={"storekeeper-protect": "true"} if i == 3 else None)
        os.utime(store.path / f"tmp/{i:04d}", (old, old))
    store.requests.reset()
    report = reaper.run(policies=parse_policies(CAPPED), stores={"main": store}, now=NOW, write_report=False)
    s = report.summaries[0]
    assert (s.matched, s.planned, s.protected, s.deferred) == (300, 7, 1, 292)
    assert store.requests.counts.get("head", 0) == 8
    planned = sorted(k for t in report.tasks for k in t.keys)
    assert "tmp/0003" not in planned
    assert len(planned) == 7


def test_deltas_are_never_headed_for_labels(tmp_path: Path) -> None:
    """Only the producer writes deltas, without metadata: an orphaned-delta policy reads listings only."""
    from storekeeper.compaction import compact
    from storekeeper.snapshots import SnapshotCache
    from tests.compaction_support import delta, produce, vec

    store = LocalStore(tmp_path / "stores" / "main", counter=RequestCounter())
    applied = [produce(store, delta("docs", {f"r{i}": vec(i, 4)})) for i in range(5)]
    blobs = {n.delta_key: store.get(n.delta_key).body for n in applied}
    compact(store, "docs", cache=SnapshotCache(tmp_path / "c"))
    for key, body in blobs.items():  # applied, yet still there (a removal that failed): candidates
        store.put(key, body)
    for i in range(5, 25):
        produce(store, delta("docs", {f"r{i}": vec(i, 4)}))  # pending: protected without a lookup
    policy = """\
policies:
  - {name: deltas, resource: delta, store: main, filters: [{type: older-than, age: 0s}]}
"""
    store.requests.reset()
    report = reaper.run(policies=parse_policies(policy), stores={"main": store}, now=NOW + timedelta(days=1),
                        write_report=False)  # fmt: skip
    assert (report.summaries[0].planned, report.summaries[0].protected) == (5, 20)
    assert store.requests.counts.get("head", 0) == 0
