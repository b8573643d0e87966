"""SupabaseStore through the real supabase client over HTTP against the Storage emulator."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from storekeeper.errors import (
    AccessDenied,
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    PreconditionFailed,
)
from storekeeper.stores import RequestCounter, open_store
from storekeeper.stores.supabase import LABELS_KEY, SupabaseStore
from storekeeper.stores.supabase_cas import AtomicWritesUnavailable
from tests.contract.backends import every_operation
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
    # the compare-and-swap row holds the etag of what Storage holds, and no claim is left behind
    row = store.cas().read("sk-test", "ptr")
    assert row is not None
    assert (row.etag, row.claim) == (second.strip('"'), None)


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


def test_a_live_claim_blocks_and_a_crashed_one_is_settled(store: SupabaseStore) -> None:
    """A writer that crashed between its claim and its upload leaves a claim; once its lease is
    over the next writer settles it from Storage and goes on; before that it must wait."""
    etag = store.put("k", b"v1")
    cas = store.cas()
    cas.adopt("sk-test", "k", etag)
    assert cas.claim_swap("sk-test", "k", etag, "00000000-0000-0000-0000-000000000001", 60)
    with pytest.raises(PreconditionFailed, match="another conditional writer"):
        store.put("k", b"v2", if_match=etag)
    cas._run(
        "UPDATE storekeeper.object_versions SET lease_until = now() - interval '1 second' WHERE key = 'k'",
        None,
        fetch=False,
    )
    store.put("k", b"v2", if_match=etag)
    assert store.get("k").body == b"v2"
    # the same for create-only: a crashed creator's claim blocks until its lease is over
    assert cas.claim_new("sk-test", "new", "00000000-0000-0000-0000-000000000002", 60)
    with pytest.raises(PreconditionFailed, match="another writer is creating it"):
        store.put("new", b"x", if_none_match=True)
    cas._run(
        "UPDATE storekeeper.object_versions SET lease_until = now() - interval '1 second' WHERE key = 'new'",
        None,
        fetch=False,
    )
    store.put("new", b"x", if_none_match=True)
    assert store.get("new").body == b"x"


def test_without_a_database_conditional_writes_refuse(
    store: SupabaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never silently non-atomic: no SUPABASE_DB_URL, no create-only or compare-and-swap write."""
    etag = store.put("exists", b"1")
    monkeypatch.delenv("SUPABASE_DB_URL")
    bare = SupabaseStore("sk-test")
    for call in (
        lambda: bare.put("fresh", b"1", if_none_match=True),
        lambda: bare.put("exists", b"2", if_match=etag),
        lambda: bare.delete("exists", if_match=etag),
    ):
        with pytest.raises(AtomicWritesUnavailable, match="SUPABASE_DB_URL"):
            call()
    assert not bare.exists("fresh")
    assert bare.get("exists").body == b"1"
    bare.put("plain", b"ok")  # unconditional writes need no database
    assert [i.key for i in bare.list()] == ["exists", "plain"]


def test_writes_that_bypass_the_table_are_picked_up(store: SupabaseStore) -> None:
    """An unconditional write after a conditional one: the next compare-and-swap uses Storage's etag."""
    first = store.put("p", b"1", if_none_match=True)
    second = store.put("p", b"2")  # no condition: bypasses the table
    with pytest.raises(PreconditionFailed):
        store.put("p", b"3", if_match=first)
    third = store.put("p", b"3", if_match=second)
    assert store.get("p").etag == third
    store.delete("p")  # unconditional delete: the row is stale until the next create
    store.put("p", b"4", if_none_match=True)
    assert store.get("p").body == b"4"


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
    assert store.requests.counts["list"] == 5  # 15 objects (labels included) in pages of 3
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


def test_a_bad_key_is_access_denied_on_every_operation(
    store: SupabaseStore, supabase_env: SupabaseEmulatorServer, tmp_path: Path
) -> None:
    """A wrong or forged service key: AccessDenied naming the key's variable, never BucketNotFound
    (the server's public read routes answer "Bucket not found" for it; the adapter must not)."""
    store.put("k", b"1")
    key = supabase_env.service_key
    forged = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    for token in ("wrong-key", forged):
        bad = SupabaseStore("sk-test", client=_client(supabase_env.url, token))
        wrong = {}
        for op, call in every_operation(bad, bad, tmp_path).items():
            try:
                call()
            except AccessDenied as exc:
                if "SUPABASE_SERVICE_KEY" not in str(exc):
                    wrong[op] = str(exc)
            except Exception as exc:
                wrong[op] = f"{type(exc).__name__}: {exc}"
            else:
                wrong[op] = "no error"
        assert wrong == {}, token
    assert store.get("k").body == b"1"  # nothing was changed by the refused calls


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
