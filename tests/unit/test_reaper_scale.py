"""Planning at scale: 100,000 objects listed (every page) and planned from listing data alone,
and on S3 (moto in-process) one list request per 1,000 keys, shared by every policy of a run."""

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
from storekeeper.policies import parse_policies
from storekeeper.stores import RequestCounter
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import NOW

#: 100,000 on a quiet machine (REAPER_SCALE_N=100000); the default keeps `make test` fast
N = int(os.environ.get("REAPER_SCALE_N", "10000"))

POLICY = """\
protect: {object_labels: false}
defaults: {max_deletions: 1000000}
policies:
  - {name: cache-48h, resource: object, store: main, prefix: cache/, filters: [{type: older-than, age: 48h}]}
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "home"))


def test_100k_objects_planned_from_listing_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "stores" / "main", counter=RequestCounter())
    old = (NOW - timedelta(days=3)).timestamp()
    new = (NOW - timedelta(hours=1)).timestamp()
    for d in range(100):
        folder = store.path / "cache" / f"{d:02d}"
        folder.mkdir(parents=True)
        for i in range(N // 100):
            f = folder / f"{i:04d}.bin"
            f.write_bytes(b"")
            t = old if i % 2 == 0 else new
            os.utime(f, (t, t))
    started = time.perf_counter()
    report = reaper.run(policies=parse_policies(POLICY), stores={"main": store}, now=NOW, write_report=False)
    elapsed = time.perf_counter() - started
    s = report.summaries[0]
    assert (s.evaluated, s.matched, s.planned) == (N, N // 2, N // 2)
    assert len(report.tasks) == N // 2 // 1000
    assert all(len(t.keys) == 1000 for t in report.tasks)
    keys = {k for t in report.tasks for k in t.keys}
    assert len(keys) == N // 2
    assert all(int(k[-8:-4]) % 2 == 0 for k in keys)  # only the old half
    assert store.requests.counts.get("head", 0) == 0  # nothing but the listing was read
    print(f"planned {N} objects in {elapsed:.2f}s = {N / elapsed:,.0f} objects/s")


@mock_aws
def test_s3_listing_follows_every_page_once_per_run() -> None:
    from storekeeper.stores.s3 import S3Store

    n, page = 250, 100  # the store's page-size knob keeps moto fast; ceil(n / page) requests either way
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="bigbucket")
    for i in range(n):
        client.put_object(Bucket="bigbucket", Key=f"cache/{i:05d}", Body=b"")
    store = S3Store("bigbucket", client=client, counter=RequestCounter(), list_page_size=page)
    text = POLICY.replace("48h", "0s") + (
        "  - {name: also, resource: object, store: main, prefix: cache/001, filters: [{type: size, lt: 1}]}\n"
    )
    report = reaper.run(
        policies=parse_policies(text),
        stores={"main": store},
        now=NOW + timedelta(days=3650),
        write_report=False,
    )
    assert store.requests.counts["list"] == math.ceil(n / page)  # both policies share one full listing
    assert report.summaries[0].planned == n
    assert report.summaries[1].skipped == 100  # cache/001xx: already planned by the first policy
