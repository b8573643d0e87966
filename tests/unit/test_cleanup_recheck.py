"""delete_objects re-checks from listing pages, not one HEAD per key (S3Store on moto, small pages)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storekeeper.cleanup import execute_task
from storekeeper.models.cleanup import CleanupTask, TaskGuard
from storekeeper.protection import ProtectionConfig
from storekeeper.stores import RequestCounter
from storekeeper.stores.base import key_before as _just_before

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PAGE = 100


@pytest.fixture
def s3() -> Any:
    from storekeeper.stores.s3 import S3Store

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="recheck")
        for i in range(300):
            meta = {"storekeeper-protect": "true"} if i == 60 else {}
            client.put_object(Bucket="recheck", Key=f"k/{i:04d}", Body=b"x", Metadata=meta)
        yield S3Store("recheck", client=client, counter=RequestCounter(), list_page_size=PAGE)


def run(store: Any, keys: list[str], *, labels: bool, guard: TaskGuard | None = None) -> Any:
    t = CleanupTask(
        task_id="t-recheck", action="delete_objects", backend="s3", bucket=store.bucket, keys=keys,
        policy="p", reason="r", planned_at=NOW, guard=guard or TaskGuard(),
    )  # fmt: skip
    store.requests.reset()
    return execute_task(
        t, resolve_store=lambda b, n: store, now=NOW, protection=ProtectionConfig(check_object_labels=labels)
    )


@pytest.mark.slow  # 300 moto objects written: >5 s here
def test_a_page_of_contiguous_keys_costs_one_list_request_and_no_head(s3: Any) -> None:
    keys = [f"k/{i:04d}" for i in range(100, 200)]
    out = run(s3, keys, labels=False)
    assert out.status == "executed"
    assert sorted(out.deleted) == keys
    # bucket labels once, the page starting at k/0100 (it holds them all), one bulk delete, and
    # versioning once after it (on a versioned bucket a plain delete frees no bytes: BytesFreed)
    assert out.requests == {"get_bucket_tagging": 1, "list": 1, "delete_batch": 1, "get_bucket_versioning": 1}
    assert out.bytes_freed == 100  # 100 objects of 1 byte, sizes as this execution listed them


@pytest.mark.slow  # 300 moto objects written: >5 s here
def test_labels_cost_heads_only_for_keys_that_passed_the_listing_checks(s3: Any) -> None:
    keys = [f"k/{i:04d}" for i in range(50, 70)] + ["k/9999"]  # one never existed
    planned = {"k/0051": '"not-the-etag"'}
    out = run(s3, keys, labels=True, guard=TaskGuard(etags=planned))
    assert "changed after planning" in out.skipped["k/0051"]  # guard from the listing: no HEAD for it
    assert "storekeeper-protect=true" in out.skipped["k/0060"]  # metadata label: needs the HEAD
    assert out.missing == ["k/9999"]
    assert sorted(out.deleted) == sorted(set(keys) - {"k/0051", "k/0060", "k/9999"})
    assert out.requests["head"] == 19  # 21 keys - the missing one - the etag-guarded one
    assert out.requests["list"] == 3  # k/0050..k/0299 in pages of 100: the end proves k/9999 is gone
    assert s3.exists("k/0060")
    assert s3.exists("k/0051")


@pytest.mark.slow  # 300 moto objects written: >5 s here
def test_missing_keys_between_and_after_the_listing_are_noop(s3: Any) -> None:
    out = run(s3, ["k/0010", "k/0010x", "k/0299", "k/0300", "zzz"], labels=False)
    assert sorted(out.missing) == ["k/0010x", "k/0300", "zzz"]
    assert sorted(out.deleted) == ["k/0010", "k/0299"]


@pytest.mark.slow  # 300 moto objects written: >5 s here
def test_a_sparse_key_set_stops_scanning_and_heads_the_rest(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import storekeeper.cleanup.base as base

    # budget = slack x keys + base unrelated objects; lowered so a 300-object bucket exceeds it
    monkeypatch.setattr(base, "LIST_SCAN_SLACK", 0)
    monkeypatch.setattr(base, "LIST_SCAN_BASE", 100)
    keys = ["k/0000", "k/0150", "k/0299"]
    out = run(s3, keys, labels=False)
    assert sorted(out.deleted) == keys
    assert out.requests["list"] == 2  # k/0000 found, then 100 unrelated objects scanned: give up
    assert out.requests["head"] == 2  # k/0150 and k/0299 looked up one by one


@pytest.mark.parametrize("key", ["a", "k/0001", "k/é", "x!", "k/0010x"])
def test_just_before_sorts_strictly_before_the_key(key: str) -> None:
    before = _just_before(key)
    assert before is None or before < key
