"""Incomplete uploads: listed by the store, planned by an `upload` policy, aborted by the executor.

S3: a real multipart upload begun (one part sent) and never completed, on SeaweedFS and on moto;
local: a temp file left by a put that crashed between writing and renaming.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storekeeper import reaper
from storekeeper.cleanup import execute_task
from storekeeper.policies import parse_policies
from storekeeper.stores import ObjectStore, RequestCounter
from storekeeper.stores.local import META_DIR, LocalStore
from storekeeper.stores.s3 import S3Store
from tests.servers.s3_servers import S3Server

POLICY = """\
defaults: {grace: 0s}   # the test drives age with the policy's own older-than
protect: {names: ["keep/*"]}
policies:
  - {name: stale-uploads, resource: upload, store: main, filters: [{type: older-than, age: AGE}]}
"""


def begin_upload(client: Any, bucket: str, key: str) -> str:
    """A multipart upload with one part sent and never completed."""
    upload_id = str(client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * 1024)
    return upload_id


def reap_uploads(store: ObjectStore, age: str, now: datetime) -> tuple[Any, list[Any]]:
    """Plan twice over the same state (same digest), then every task through the executor."""
    loaded = parse_policies(POLICY.replace("AGE", age))
    kw: dict[str, Any] = {"policies": loaded, "stores": {"main": store}, "now": now, "write_report": False}
    first = reaper.run(apply=False, **kw)
    real = reaper.run(apply=False, **kw)
    assert first.plan_digest == real.plan_digest
    from storekeeper.protection import ProtectionConfig

    protection = ProtectionConfig.from_protect(loaded.spec.protect)
    outcomes = [
        execute_task(t, resolve_store=lambda b, n: store, now=now, protection=protection) for t in real.tasks
    ]
    return real, outcomes


def check_s3(store: S3Store, client: Any) -> None:
    stale = begin_upload(client, store.bucket, "big/archive.tar")
    kept = begin_upload(client, store.bucket, "keep/archive.tar")
    listed = {(u.key, u.upload_id) for u in store.list_incomplete_uploads()}
    assert listed == {("big/archive.tar", stale), ("keep/archive.tar", kept)}
    assert [u.key for u in store.list_incomplete_uploads("big/")] == ["big/archive.tar"]

    report, outcomes = reap_uploads(store, "0s", datetime.now(UTC) + timedelta(minutes=1))
    verdicts = {d.name: d.verdict for d in report.decisions}
    assert verdicts == {f"big/archive.tar?uploadId={stale}": "planned",
                        f"keep/archive.tar?uploadId={kept}": "protected"}  # fmt: skip
    [t] = report.tasks
    assert (t.action.value, t.keys, t.upload_ids) == ("abort_uploads", ["big/archive.tar"], [stale])
    [out] = outcomes
    assert out.status == "executed", out.message
    assert out.deleted == [f"big/archive.tar?uploadId={stale}"]
    assert [(u.key, u.upload_id) for u in store.list_incomplete_uploads()] == [("keep/archive.tar", kept)]
    assert not store.exists("big/archive.tar")  # aborting never creates the object
    again = execute_task(t, resolve_store=lambda b, n: store, now=datetime.now(UTC) + timedelta(minutes=1))
    assert again.status == "noop"  # already aborted: idempotent
    # a younger rule plans nothing: the remaining upload is seconds old
    young, _ = reap_uploads(store, "1h", datetime.now(UTC))
    assert young.tasks == []


@pytest.mark.integration
def test_incomplete_multipart_uploads_reaped_on_seaweed(seaweed_s3: S3Server, fresh_bucket: Any) -> None:
    client = seaweed_s3.client()
    store = S3Store(fresh_bucket(seaweed_s3, "uploads"), client=client, counter=RequestCounter())
    try:
        check_s3(store, client)
    finally:
        for u in store.list_incomplete_uploads():
            store.abort_upload(u.key, u.upload_id)


@mock_aws
def test_incomplete_multipart_uploads_reaped_on_moto() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="uploads")
    check_s3(S3Store("uploads", client=client, counter=RequestCounter()), client)


def test_stale_local_temp_files_reaped_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "stores" / "main")
    store.put("a", b"x")  # creates the bookkeeping dirs; a finished put leaves no temp file
    assert store.list_incomplete_uploads() == []
    tmp = tmp_path / "stores" / META_DIR / "main" / "tmp"
    stale, fresh = tmp / ("a" * 32), tmp / ("b" * 32)
    stale.write_bytes(b"half")
    fresh.write_bytes(b"in flight")
    old = time.time() - 3 * 3600
    os.utime(stale, (old, old))
    assert [u.key for u in store.list_incomplete_uploads()] == ["a" * 32, "b" * 32]
    report, outcomes = reap_uploads(store, "1h", datetime.now(UTC))
    assert [d.name for d in report.decisions if d.verdict == "planned"] == [f"{'a' * 32}?uploadId={'a' * 32}"]
    assert [o.status for o in outcomes] == ["executed"]
    assert not stale.exists()
    assert fresh.exists()
    assert store.get("a").body == b"x"
