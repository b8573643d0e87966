"""Cleanup against real S3 semantics on SeaweedFS (the 100k path: tests/unit/test_reaper_scale.py;
S3 request arithmetic of plan -> executor -> delete: tests/integration/test_reaper_seaweed.py)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from storekeeper.cleanup import execute_task
from storekeeper.cleanup.base import TaskOutcome
from storekeeper.layout import pointer_key
from storekeeper.models.cleanup import CleanupTask, TaskGuard
from storekeeper.protection import ProtectionConfig
from storekeeper.stores.base import RequestCounter
from storekeeper.stores.s3 import S3Store
from tests.cleanup_support import cleanup_task, put_version
from tests.servers.s3_servers import S3Server

pytestmark = pytest.mark.integration
NOW = datetime(2030, 1, 1, tzinfo=UTC)
V1, V2 = "000000000001-aaaaaaaa", "000000000002-bbbbbbbb"


def task(action: str, bucket: str, **kw: Any) -> CleanupTask:
    return cleanup_task(action, bucket, backend="s3", planned_at=NOW, reason="integration", **kw)


@pytest.fixture
def sw_store(seaweed_s3: S3Server, fresh_bucket: Any) -> S3Store:
    return S3Store(fresh_bucket(seaweed_s3, "clean"), client=seaweed_s3.client(), counter=RequestCounter())


def run(store: S3Store, t: CleanupTask, **kw: Any) -> TaskOutcome:
    def resolve(backend: str, bucket: str) -> S3Store:
        return store if bucket == store.bucket else store.for_bucket(bucket)

    return execute_task(t, resolve_store=resolve, now=NOW, **kw)


def put_many(store: S3Store, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put(k, b"x"), keys))


def test_2500_objects_three_delete_requests_on_seaweed(sw_store: S3Store) -> None:
    keys = [f"bulk/{i:05d}" for i in range(2500)]
    put_many(sw_store, keys)
    sw_store.requests.reset()
    out = run(sw_store, task("delete_objects", sw_store.bucket, keys=keys))
    assert out.status == "executed"
    assert out.deleted_count == 2500
    assert out.requests["delete_batch"] == 3
    assert list(sw_store.list("bulk/")) == []


def test_prefix_delete_follows_every_page_on_seaweed(sw_store: S3Store) -> None:
    put_many(sw_store, [f"tmp/{i:04d}" for i in range(1200)])
    out = run(
        sw_store,
        task("delete_prefix", sw_store.bucket, prefix="tmp/"),
        protection=ProtectionConfig(check_object_labels=False),
    )
    assert out.deleted_count == 1200
    assert (
        out.requests["list"] >= 2
        or out.requests.get("list_page", 0) >= 2
        or out.requests["delete_batch"] == 2
    )
    assert out.requests["delete_batch"] == 2
    assert list(sw_store.list("tmp/")) == []


def test_etag_guard_on_real_server(sw_store: S3Store) -> None:
    planned = sw_store.put("img/a", b"v1")
    sw_store.put("img/a", b"v2")  # modified after planning
    out = run(
        sw_store,
        task("delete_objects", sw_store.bucket, keys=["img/a"], guard=TaskGuard(etags={"img/a": planned})),
    )
    assert out.status == "skipped"
    assert "changed after planning" in out.skipped["img/a"]
    assert sw_store.get("img/a").body == b"v2"


def test_snapshot_published_between_planning_and_cleanup_survives(sw_store: S3Store) -> None:
    put_version(sw_store, "docs", V1, created_at=NOW, live=True)
    put_version(sw_store, "docs", V2, created_at=NOW, live=False)
    # planned while V1 was live: delete V1 (an old version by the plan's view of the world)... but
    # the plan also targeted V2 as "unpublished garbage", and V2 got published before cleanup ran
    t = task("delete_snapshot_version", sw_store.bucket, collection="docs", version=V2,
             guard=TaskGuard(live_version=V1))  # fmt: skip
    sw_store.put(pointer_key("docs"), f"snapshot/docs/{V2}/".encode())
    out = run(sw_store, t)
    assert out.status == "skipped"
    assert "became live after planning" in out.skipped[f"snapshot/docs/{V2}/"]
    assert sw_store.exists(f"snapshot/docs/{V2}/manifest.json")
    old = run(
        sw_store, task("delete_snapshot_version", sw_store.bucket, collection="docs", version=V1, task_id="o")
    )
    assert old.status == "executed"
    assert list(sw_store.list(f"snapshot/docs/{V1}/")) == []


@pytest.fixture
def scratch_bucket(seaweed_s3: S3Server) -> Iterator[str]:
    from tests.servers.s3_servers import empty_and_delete_bucket, unique_bucket_name

    name = unique_bucket_name("scratch")
    seaweed_s3.client().create_bucket(Bucket=name)
    yield name
    empty_and_delete_bucket(seaweed_s3.client(), name)


def test_delete_bucket_on_seaweed_empties_first_and_respects_tags(
    seaweed_s3: S3Server, scratch_bucket: str
) -> None:
    store = S3Store(scratch_bucket, client=seaweed_s3.client(), counter=RequestCounter())
    put_many(store, [f"x/{i}" for i in range(30)])
    store.set_bucket_labels(scratch_bucket, {"storekeeper:protect": "true"})
    kept = run(store, task("delete_bucket", scratch_bucket))
    assert kept.status == "skipped"
    assert "storekeeper:protect=true" in kept.skipped[f"bucket:{scratch_bucket}"]
    store.set_bucket_labels(scratch_bucket, {})
    out = run(store, task("delete_bucket", scratch_bucket, guard=TaskGuard(max_objects=30)))
    assert out.status == "executed", out.message
    assert f"bucket:{scratch_bucket}" in out.deleted
    assert not store.bucket_exists(scratch_bucket)
    again = run(store, task("delete_bucket", scratch_bucket))
    assert again.status == "noop"


def test_missing_bucket_fails_naming_it_on_seaweed(seaweed_s3: S3Server) -> None:
    store = S3Store("no-such-bucket-here", client=seaweed_s3.client(), counter=RequestCounter())
    out = run(store, task("delete_objects", "no-such-bucket-here", keys=["a"]))
    assert out.status == "failed"
    assert "no-such-bucket-here" in out.message
