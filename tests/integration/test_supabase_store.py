"""SupabaseStore through the real supabase client over HTTP against the Storage emulator."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from storekeeper.errors import (
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    PreconditionFailed,
)
from storekeeper.stores import RequestCounter, open_store
from storekeeper.stores.supabase import LABELS_KEY, LEASES_PREFIX, SupabaseStore
from tests.servers.supabase_server import SupabaseEmulatorServer

pytestmark = pytest.mark.integration


@pytest.fixture
def store(supabase_env: SupabaseEmulatorServer) -> SupabaseStore:
    s = SupabaseStore("sk-test", counter=RequestCounter())
    s.create_bucket("sk-test")
    return s


def test_open_store_reads_env_and_round_trips(store: SupabaseStore) -> None:
    opened = open_store("supabase://sk-test")
    assert isinstance(opened, SupabaseStore)
    etag = opened.put("a/b.txt", b"hello", metadata={"owner": "t1"}, content_type="text/plain")
    got = store.get("a/b.txt")
    assert got.body == b"hello"
    assert got.etag == etag
    assert got.metadata == {"owner": "t1"}
    info = store.head("a/b.txt")
    assert (info.size, info.etag, info.metadata) == (5, etag, {"owner": "t1"})


def test_create_only_put_loses_to_existing_object(store: SupabaseStore) -> None:
    store.put("p.txt", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed) as err:
        store.put("p.txt", b"2", if_none_match=True)
    assert "p.txt" in str(err.value)
    assert "supabase://sk-test" in str(err.value)
    assert store.get("p.txt").body == b"1"


def test_compare_and_swap_accepts_current_and_refuses_stale_or_absent(store: SupabaseStore) -> None:
    first = store.put("ptr", b"v1")
    second = store.put("ptr", b"v2", if_match=first)
    assert second != first
    with pytest.raises(PreconditionFailed):
        store.put("ptr", b"v3", if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put("missing", b"x", if_match=first)
    assert store.get("ptr").body == b"v2"
    # the lease is released after each conditional write
    assert list(store.list(LEASES_PREFIX)) == []


def test_compare_and_swap_race_has_exactly_one_winner(store: SupabaseStore) -> None:
    etag = store.put("pointer.txt", b"v0")
    wins: list[int] = []
    losses: list[int] = []
    barrier = threading.Barrier(6)

    def contender(i: int) -> None:
        s = store.for_bucket("sk-test")
        barrier.wait()
        try:
            s.put("pointer.txt", f"v-{i}".encode(), if_match=etag)
            wins.append(i)
        except PreconditionFailed:
            losses.append(i)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(losses) == 5
    assert store.get("pointer.txt").body == f"v-{wins[0]}".encode()


def test_expired_lease_is_taken_over_but_live_one_blocks(store: SupabaseStore) -> None:
    import hashlib

    etag = store.put("k", b"v1")
    lease_key = LEASES_PREFIX + hashlib.sha256(b"k").hexdigest() + ".json"
    live = {"key": "k", "token": "other", "expires_at": time.time() + 60}
    store.put(lease_key, json.dumps(live).encode())
    store.lease_wait_seconds = 0.2
    with pytest.raises(PreconditionFailed, match="lease"):
        store.put("k", b"v2", if_match=etag)
    crashed = {"key": "k", "token": "crashed", "expires_at": time.time() - 1}
    store.put(lease_key, json.dumps(crashed).encode())
    store.put("k", b"v2", if_match=etag)
    assert store.get("k").body == b"v2"


def test_conditional_delete(store: SupabaseStore) -> None:
    etag = store.put("d", b"1")
    newer = store.put("d", b"2")
    with pytest.raises(PreconditionFailed):
        store.delete("d", if_match=etag)
    store.delete("d", if_match=newer)
    assert not store.exists("d")
    store.delete("d")  # idempotent


def test_listing_pages_every_level_and_yields_byte_order(store: SupabaseStore) -> None:
    store.list_page_size = 3
    keys = [
        "a-c",
        "a/b",
        "a/c/d",
        "a/c/e",
        "a0",
        "b/x1",
        "b/x2",
        "b/x3",
        "b/x4",
        "b/x5",
        "b/y/z",
        "c",
        "snap_1/m",
        "snapX/m",
    ]
    for k in keys:
        store.put(k, k.encode())
    store.set_bucket_labels("sk-test", {"env": "test"})
    store.requests.reset()
    listed = [i.key for i in store.list()]
    assert listed == sorted(keys)
    assert store.requests.counts["list"] > 6  # several pages per level, every folder visited
    assert [i.key for i in store.list("b/")] == ["b/x1", "b/x2", "b/x3", "b/x4", "b/x5", "b/y/z"]
    assert [i.key for i in store.list("b/x")] == ["b/x1", "b/x2", "b/x3", "b/x4", "b/x5"]
    # '_' is a LIKE wildcard on the server: the adapter must drop the wider match "snapX"
    assert [i.key for i in store.list("snap_")] == ["snap_1/m"]
    assert [i.key for i in store.list(start_after="a/c/d")] == [k for k in sorted(keys) if k > "a/c/d"]
    sizes = {i.key: i.size for i in store.list("a")}
    assert sizes == {"a-c": 3, "a/b": 3, "a/c/d": 5, "a/c/e": 5, "a0": 2}
    assert store.usage("b/").objects == 6


def test_labels_are_hidden_and_removed_with_the_bucket(store: SupabaseStore) -> None:
    assert store.get_bucket_labels("sk-test") == {}
    store.set_bucket_labels("sk-test", {"purpose": "test", "owner": "ci"})
    assert store.get_bucket_labels("sk-test") == {"owner": "ci", "purpose": "test"}
    assert list(store.list()) == []
    assert [i.key for i in store.list(".storekeeper/")] == [LABELS_KEY]
    store.delete_bucket("sk-test")
    assert not store.bucket_exists("sk-test")
    with pytest.raises(BucketNotFound):
        store.get_bucket_labels("sk-test")


def test_bucket_errors_are_typed(store: SupabaseStore) -> None:
    with pytest.raises(BucketAlreadyExists):
        store.create_bucket("sk-test")
    store.put("x", b"1")
    with pytest.raises(BucketNotEmpty) as err:
        store.delete_bucket("sk-test")
    assert "sk-test" in str(err.value)
    with pytest.raises(BucketNotFound):
        store.delete_bucket("never-made")
    names = [b.name for b in store.list_buckets()]
    assert names == ["sk-test"]


def test_lookup_errors_are_not_all_not_found(
    store: SupabaseStore, supabase_env: SupabaseEmulatorServer
) -> None:
    with pytest.raises(NotFound) as missing:
        store.get("nope/x")
    assert not isinstance(missing.value, BucketNotFound)
    assert "nope/x" in str(missing.value)
    with pytest.raises(BucketNotFound):
        store.for_bucket("no-such-bucket").put("k", b"1")
    bad_client = SupabaseStore("sk-test", client=_client(supabase_env.url, "wrong-key"))
    with pytest.raises(BackendError) as denied:
        bad_client.head("x")
    assert not isinstance(denied.value, NotFound)
    assert "SUPABASE_SERVICE_KEY" in str(denied.value)
    with pytest.raises(InvalidName):
        store.put("bad\u00e9key", b"1")  # Storage accepts only S3-safe ASCII key characters


def test_bulk_delete_uses_batches_of_1000(store: SupabaseStore) -> None:
    real = ["del/1", "del/2", "del/3"]
    for k in real:
        store.put(k, b"x")
    keys = real + [f"gone/{i}" for i in range(998)]  # 1001 keys: missing ones are fine (idempotent)
    result = store.delete_many(keys)
    assert result.requests == 2
    assert not result.errors
    assert len(result.deleted) == 1001
    assert list(store.list("del/")) == []
    # the server itself refuses a batch over 1000, so the figure is the real limit
    with pytest.raises(Exception, match="limited to 1000"):
        store.storage.from_("sk-test").remove([f"k{i}" for i in range(1001)])


def test_signed_url_downloads_without_credentials(store: SupabaseStore) -> None:
    store.put("share/report.json", b'{"ok": true}')
    url = store.signed_url("share/report.json", expires_in=60)
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b'{"ok": true}'
    tampered = url.replace("report.json", "other.json")
    assert httpx.get(tampered).status_code == 400
    with pytest.raises(NotFound):
        store.signed_url("share/missing.json")


def _client(url: str, key: str):  # type: ignore[no-untyped-def]
    from supabase import create_client

    return create_client(url, key)
