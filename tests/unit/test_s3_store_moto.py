"""S3Store against moto in-process: error mapping, request counts, endpoint settings, transfers.

Where moto cannot produce an answer AWS gives (409 ConditionalRequestConflict, a 500,
per-key DeleteObjects errors) botocore's Stubber plays the server; the code under
test is always the real S3Store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from storekeeper.errors import (
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    NotFound,
    PreconditionFailed,
)
from storekeeper.stores import open_store
from storekeeper.stores import s3 as s3mod
from storekeeper.stores.s3 import S3Store, make_client


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def store(aws: None) -> S3Store:
    s = S3Store("unit-bucket")
    s.create_bucket("unit-bucket")
    s.requests.reset()
    return s


def test_client_uses_standard_retries_and_default_endpoint(aws: None) -> None:
    client = make_client()
    assert client.meta.config.retries["mode"] == "standard"
    assert "amazonaws.com" in client.meta.endpoint_url


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_endpoint_override_uses_path_style(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv(var, "http://127.0.0.1:9")
    store = open_store("s3://some-bucket")
    assert isinstance(store, S3Store)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert store.client.meta.config.s3["addressing_style"] == "path"


def test_s3_specific_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert make_client().meta.endpoint_url == "http://127.0.0.1:2"


def test_missing_object_and_bucket(store: S3Store) -> None:
    with pytest.raises(NotFound) as info:
        store.get("a/missing")
    assert type(info.value) is NotFound
    assert "s3://unit-bucket/a/missing" in str(info.value)
    assert "NoSuchKey" in info.value.cause
    with pytest.raises(BucketNotFound) as binfo:
        store.for_bucket("no-such-bucket").get("k")
    assert "s3://no-such-bucket/k" in str(binfo.value)
    assert "NoSuchBucket" in binfo.value.cause
    with pytest.raises(BucketNotFound):
        list(store.for_bucket("no-such-bucket").list())


def test_conditional_put_maps_412(store: S3Store) -> None:
    etag = store.put("p", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed) as info:
        store.put("p", b"2", if_none_match=True)
    assert "PreconditionFailed (HTTP 412)" in info.value.cause
    with pytest.raises(PreconditionFailed):
        store.put("p", b"2", if_match='"0123"')
    assert store.put("p", b"3", if_match=etag) != etag


def test_if_match_on_absent_object_is_precondition_failed(store: S3Store) -> None:
    # AWS (and moto) answer 404 NoSuchKey here; for a CAS that is a lost condition, not a missing read
    with pytest.raises(PreconditionFailed) as info:
        store.put("absent", b"1", if_match='"abc"')
    assert "absent" in info.value.cause
    assert "NoSuchKey" in info.value.cause


def _stubbed(store: S3Store) -> Stubber:
    return Stubber(store.client)


def test_409_conditional_request_conflict_is_precondition_failed(store: S3Store) -> None:
    with _stubbed(store) as stub:
        stub.add_client_error(
            "put_object",
            service_error_code="ConditionalRequestConflict",
            service_message="A conflicting operation occurred",
            http_status_code=409,
        )
        with pytest.raises(PreconditionFailed) as info:
            store.put("pointer.txt", b"x", if_match='"e"')
    assert "ConditionalRequestConflict (HTTP 409)" in info.value.cause
    assert info.value.key == "pointer.txt"


def test_other_errors_are_backend_errors_with_code(store: S3Store) -> None:
    with _stubbed(store) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(BackendError) as info:
            store.get("k")
    assert "AccessDenied (HTTP 403)" in str(info.value)
    assert "s3://unit-bucket/k" in str(info.value)


def test_delete_is_idempotent_and_conditional(store: S3Store) -> None:
    store.delete("never")
    old = store.put("k", b"1")
    store.put("k", b"2")
    with pytest.raises(PreconditionFailed):
        store.delete("k", if_match=old)
    assert store.exists("k")
    store.delete("k", if_match=store.head("k").etag)
    assert not store.exists("k")
    store.delete("k", if_match=old)  # already gone: 404 is success for a delete


def test_delete_batch_collects_per_key_errors(store: S3Store) -> None:
    with _stubbed(store) as stub:
        stub.add_response(
            "delete_objects",
            {"Errors": [{"Key": "b", "Code": "AccessDenied", "Message": "Access Denied"}]},
        )
        result = store.delete_many(["a", "b", "c"])
    assert result.deleted == ["a", "c"]
    assert result.errors == {"b": "AccessDenied: Access Denied"}
    assert result.requests == 1


def test_delete_batch_into_a_missing_bucket_is_bucket_not_found(store: S3Store) -> None:
    """Not "every key failed": the bucket is gone, as on every other operation (contract suite)."""
    with pytest.raises(BucketNotFound, match="NoSuchBucket"):
        store.for_bucket("no-such-bucket").delete_many(["a", "b"])


def test_delete_many_uses_1000_key_batches(store: S3Store) -> None:
    keys = [f"k/{i:04d}" for i in range(2001)]  # never written: S3 reports them deleted
    store.put(keys[1500], b"x")
    store.requests.reset()
    result = store.delete_many(keys)
    assert store.requests.counts == {"delete_batch": 3}
    assert result.requests == 3
    assert sorted(result.deleted) == keys
    assert not store.exists(keys[1500])


def test_list_follows_pages_and_counts_requests(store: S3Store) -> None:
    for i in range(7):
        store.put(f"d/{i}", b"x" * i)
    store.put("e/0", b"")
    store.list_page_size = 3
    store.requests.reset()
    infos = list(store.list("d/"))
    assert [i.key for i in infos] == [f"d/{i}" for i in range(7)]
    assert [i.size for i in infos] == list(range(7))
    assert store.requests.counts == {"list": 3}
    assert [i.key for i in store.list("d/", start_after="d/4")] == ["d/5", "d/6"]


def test_head_returns_user_metadata(store: S3Store) -> None:
    store.put("m", b"abc", metadata={"sha256": "00ff", "parent": "v1"}, content_type="text/plain")
    info = store.head("m")
    assert info.metadata == {"sha256": "00ff", "parent": "v1"}
    assert info.size == 3
    assert store.requests.counts == {"put": 1, "head": 1}


def test_bucket_errors(store: S3Store) -> None:
    with pytest.raises(BucketAlreadyExists):
        store.create_bucket("unit-bucket")  # us-east-1 answers 200 here; the adapter looks first
    store.put("x", b"1")
    with pytest.raises(BucketNotEmpty) as info:
        store.delete_bucket("unit-bucket")
    assert "BucketNotEmpty" in info.value.cause
    with pytest.raises(BucketNotFound):
        store.delete_bucket("never-made")


def test_bucket_already_owned_outside_us_east_1(aws: None) -> None:
    client = boto3.client("s3", region_name="eu-west-1")
    store = S3Store("eu-bucket", client=client)
    store.create_bucket("eu-bucket")
    with pytest.raises(BucketAlreadyExists) as info:
        store.create_bucket("eu-bucket")
    assert "BucketAlreadyOwnedByYou" in info.value.cause
    assert "head_bucket" not in store.requests.counts


def test_bucket_labels_via_tagging(store: S3Store) -> None:
    assert store.get_bucket_labels("unit-bucket") == {}  # NoSuchTagSet
    store.set_bucket_labels("unit-bucket", {"env": "test", "owner": "ci"})
    assert store.get_bucket_labels("unit-bucket") == {"env": "test", "owner": "ci"}
    store.set_bucket_labels("unit-bucket", {})
    assert store.get_bucket_labels("unit-bucket") == {}
    with pytest.raises(BucketNotFound):
        store.get_bucket_labels("never-made")


def test_list_buckets_counts_pages(store: S3Store) -> None:
    store.create_bucket("second-bucket")
    store.requests.reset()
    names = [b.name for b in store.list_buckets()]
    assert {"unit-bucket", "second-bucket"} <= set(names)
    assert store.requests.counts.get("list_buckets", 0) >= 1


def test_put_file_uses_multipart_for_large_files(
    store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)  # S3's smallest part size
    src = tmp_path / "big.tar"
    src.write_bytes(b"0123456789abcdef" * (6 * 1024 * 1024 // 16))  # 6 MiB -> 2 parts
    etag = store.put_file("snapshot/c/v/big.tar", src, metadata={"sha256": "x"})
    assert etag.strip('"').endswith("-2")  # a multipart upload's etag
    assert store.head("snapshot/c/v/big.tar").metadata == {"sha256": "x"}
    dst = tmp_path / "copy.tar"
    assert store.get_file("snapshot/c/v/big.tar", dst) == etag
    assert dst.read_bytes() == src.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_put_file_to_missing_bucket_is_typed(aws: None, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"1")
    with pytest.raises(BucketNotFound) as info:
        S3Store("never-made").put_file("k", src)
    assert "NoSuchBucket" in info.value.cause


def test_unreachable_endpoint_is_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.config import Config

    client: Any = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, s3={"addressing_style": "path"}),
    )
    with pytest.raises(BackendError) as info:
        S3Store("some-bucket", client=client).get("k")
    assert "s3://some-bucket/k" in str(info.value)
    assert "EndpointConnectionError" in info.value.cause
