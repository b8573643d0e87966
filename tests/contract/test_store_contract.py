"""One behaviour contract for every ObjectStore backend (local, moto_server, SeaweedFS, Supabase emulator).

What the rest of storekeeper relies on: conditional writes that lose cleanly,
listings that follow every page, idempotent and batched deletes, bucket
semantics with typed errors, and names rejected before any I/O.
"""

from __future__ import annotations

import math
import multiprocessing
import queue as queue_mod
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

from storekeeper.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    PreconditionFailed,
)
from storekeeper.stores.base import ObjectStore, Usage
from tests.contract import race
from tests.contract.backends import S3_KINDS, Backend, every_operation, open_spec

pytestmark = pytest.mark.integration


def _names_store_and_key(exc: Exception, store: ObjectStore, key: str) -> None:
    text = str(exc)
    assert store.bucket in text, text
    assert key in text, text


# -- objects ---------------------------------------------------------------------------------------------
def test_put_get_head_roundtrip_with_metadata(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4
    meta = {"owner": "alice", "purpose": "contract-test"}
    etag = store.put("dir/sub/blob.bin", data, content_type="application/x-test", metadata=meta)
    assert etag

    got = store.get("dir/sub/blob.bin")
    assert got.body == data
    assert got.etag == etag
    assert got.metadata == meta

    info = store.head("dir/sub/blob.bin")
    assert info.key == "dir/sub/blob.bin"
    assert info.size == len(data)
    assert info.etag == etag
    assert info.metadata == meta
    assert isinstance(info.last_modified, datetime)
    assert info.last_modified.tzinfo is not None
    assert store.exists("dir/sub/blob.bin")


def test_overwrite_changes_etag_and_body(store: ObjectStore) -> None:
    e1 = store.put("k", b"one")
    e2 = store.put("k", b"two")
    assert e1 != e2
    assert store.get("k").body == b"two"


def test_missing_key_is_not_found_naming_store_and_key(store: ObjectStore) -> None:
    for call in (store.get, store.head):
        with pytest.raises(NotFound) as info:
            call("no/such/key")
        assert info.value.key == "no/such/key"
        _names_store_and_key(info.value, store, "no/such/key")
    assert not store.exists("no/such/key")


def test_create_only_put_wins_once(store: ObjectStore) -> None:
    store.put("lock", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed) as info:
        store.put("lock", b"second", if_none_match=True)
    _names_store_and_key(info.value, store, "lock")
    assert store.get("lock").body == b"first"


def test_compare_and_swap(store: ObjectStore) -> None:
    e1 = store.put("pointer.txt", b"v1")
    e2 = store.put("pointer.txt", b"v2", if_match=e1)
    assert e2 != e1
    with pytest.raises(PreconditionFailed) as info:
        store.put("pointer.txt", b"v3-stale", if_match=e1)
    _names_store_and_key(info.value, store, "pointer.txt")
    assert store.get("pointer.txt").body == b"v2"
    # the etag read by get() is the one a CAS needs
    e3 = store.put("pointer.txt", b"v3", if_match=store.get("pointer.txt").etag)
    assert store.head("pointer.txt").etag == e3


def test_if_match_on_missing_object_fails(store: ObjectStore) -> None:
    etag = store.put("elsewhere", b"x")
    with pytest.raises(PreconditionFailed):
        store.put("absent", b"y", if_match=etag)
    assert not store.exists("absent")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.delete("never-existed")
    store.put("a/b", b"1")
    store.delete("a/b")
    assert not store.exists("a/b")
    store.delete("a/b")


def test_conditional_delete(store: ObjectStore) -> None:
    old = store.put("k", b"1")
    new = store.put("k", b"2")
    with pytest.raises(PreconditionFailed):
        store.delete("k", if_match=old)
    assert store.get("k").body == b"2"
    store.delete("k", if_match=new)
    assert not store.exists("k")


def test_put_file_and_get_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "archive.tar"
    src.write_bytes(b"\x00\x01archive" * 30_000)  # ~270 kB
    etag = store.put_file("snapshot/c/v1/archive.tar", src, metadata={"kind": "archive"})
    assert store.head("snapshot/c/v1/archive.tar").etag == etag
    dst = tmp_path / "out" / "copy.tar"
    dst.parent.mkdir()
    store.requests.reset()
    assert store.get_file("snapshot/c/v1/archive.tar", dst) == etag
    assert "get" not in store.requests.counts  # streamed to disk, not read whole through get()
    assert dst.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dst.parent.iterdir()) == ["copy.tar"]  # no temp file left
    with pytest.raises(NotFound):
        store.get_file("snapshot/c/v1/missing.tar", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_put_file_create_only(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "chroma.tar"
    src.write_bytes(b"\x00tar" * 50_000)
    etag = store.put_file("snapshot/c/v2/chroma.tar", src, if_none_match=True)
    assert store.head("snapshot/c/v2/chroma.tar").etag == etag
    other = tmp_path / "other.tar"
    other.write_bytes(b"another archive")
    with pytest.raises(PreconditionFailed):
        store.put_file("snapshot/c/v2/chroma.tar", other, if_none_match=True)
    assert store.get("snapshot/c/v2/chroma.tar").body == src.read_bytes()


# -- listing ---------------------------------------------------------------------------------------------
def _fill_prefix(store: ObjectStore, n: int) -> list[str]:
    keys = [f"p/{i:02d}" for i in range(n)]
    for k in keys:
        store.put(k, k.encode())
    for other in ("q/x", "pz", "p-x"):  # near misses that a prefix filter must leave out
        store.put(other, b"-")
    return keys


def test_list_by_prefix_follows_every_page(backend: Backend, store: ObjectStore) -> None:
    keys = _fill_prefix(store, 25)
    paging = hasattr(store, "list_page_size")
    if paging:
        store.list_page_size = 10  # type: ignore[attr-defined]
    store.requests.reset()

    infos = list(store.list("p/"))
    assert [i.key for i in infos] == keys
    assert all(i.size == len(i.key) for i in infos)
    lists = store.requests.counts.get("list", 0)
    if backend.kind in S3_KINDS:
        assert lists == math.ceil(25 / 10)  # one list_objects_v2 call per page: 10 + 10 + 5
    elif paging:
        assert lists >= 3
    assert sorted(i.key for i in store.list()) == sorted([*keys, "q/x", "pz", "p-x"])


ORDER_KEYS = ["a-b/1", "a/1", "a0"]  # binary key order: '-' (0x2d) < '/' (0x2f) < '0' (0x30)


def test_list_is_in_binary_key_order(backend: Backend, store: ObjectStore) -> None:
    """S3 lists in UTF-8 binary order; a tree walk that lists a 'directory' before its siblings does not."""
    for k in reversed(ORDER_KEYS):
        store.put(k, b"x")
    listed = [i.key for i in store.list()]
    if backend.kind == "seaweedfs" and listed != ORDER_KEYS:
        # a known server deviation, checked (not assumed) on every run; the strict check holds elsewhere
        pytest.xfail(f"SeaweedFS lists in filer tree order, not binary key order: {listed}")
    assert listed == ORDER_KEYS
    assert [i.key for i in store.list(start_after="a-b/1")] == ORDER_KEYS[1:]


def test_list_start_after(store: ObjectStore) -> None:
    keys = _fill_prefix(store, 12)
    if hasattr(store, "list_page_size"):
        store.list_page_size = 3  # type: ignore[attr-defined]
    assert [i.key for i in store.list("p/", start_after="p/04")] == keys[5:]
    assert [i.key for i in store.list("p/", start_after="p/11")] == []
    assert [i.key for i in store.list("p/0")] == keys[:10]


def test_list_of_empty_prefix_is_empty(store: ObjectStore) -> None:
    assert list(store.list("nothing/here/")) == []


def test_usage(store: ObjectStore) -> None:
    store.put("a", b"1")
    store.put("b/c", b"22")
    store.put("b/d", b"333")
    assert store.usage() == Usage(bytes=6, objects=3)
    assert store.usage("b/") == Usage(bytes=5, objects=2)


# -- deletes in batches --------------------------------------------------------------------------------
def test_delete_many_in_batches(store: ObjectStore) -> None:
    batch = store.max_delete_batch  # the real limit, so the server proves it accepts a full batch
    n = batch + 1
    keys = [f"d/{i:05d}" for i in range(n)]
    real = keys[:: max(1, n // 5)]  # a few real objects spread over every batch; the rest never existed
    for k in real:
        store.put(k, b"x")
    store.put("keep/me", b"k")
    store.requests.reset()

    result = store.delete_many(keys)

    assert result.errors == {}
    assert sorted(result.deleted) == keys
    assert result.requests == math.ceil(n / batch) == 2
    assert store.requests.total() == 2  # one backend request per batch, nothing else
    assert [i.key for i in store.list()] == ["keep/me"]


def test_deletes_count_the_bytes_they_freed_from_the_sizes_given(store: ObjectStore) -> None:
    """BytesFreed (docs/operations.md): on an unversioned bucket, the sizes the caller listed for
    the keys the store deleted; nothing claimed without sizes."""
    sizes = {"f/a": 3, "f/b": 40}
    for key, n in sizes.items():
        store.put(key, b"x" * n)
    assert store.delete_many(list(sizes), sizes=sizes).bytes_freed == 43
    store.put("f/c", b"y" * 5)
    assert store.purge_many(["f/c"], sizes={"f/c": 5}).bytes_freed == 5
    store.put("f/d", b"z")
    assert store.delete_many(["f/d"]).bytes_freed == 0
    assert list(store.list("f/")) == []


def test_delete_many_rejects_bad_key_before_any_delete(store: ObjectStore) -> None:
    store.put("ok", b"1")
    store.requests.reset()
    with pytest.raises(InvalidName):
        store.delete_many(["ok", "../escape"])
    assert store.requests.total() == 0
    assert store.exists("ok")


# -- buckets ---------------------------------------------------------------------------------------------
def test_bucket_lifecycle(backend: Backend, store: ObjectStore) -> None:
    name = backend.unique_name("cb")
    store.create_bucket(name)
    other = store.for_bucket(name)
    backend.made.append(other)  # removed at teardown even if an assert fails
    assert name in [b.name for b in store.list_buckets()]
    assert store.bucket_exists(name)

    with pytest.raises(BucketAlreadyExists) as exists:
        store.create_bucket(name)
    assert name in str(exists.value)

    other.put("x/y", b"1")
    with pytest.raises(BucketNotEmpty) as not_empty:
        store.delete_bucket(name)
    assert name in str(not_empty.value)
    assert other.get("x/y").body == b"1"

    other.delete("x/y")
    store.delete_bucket(name)
    assert name not in [b.name for b in store.list_buckets()]
    with pytest.raises(BucketNotFound) as missing:
        store.delete_bucket(name)
    assert name in str(missing.value)


def test_missing_bucket_is_bucket_not_found_on_every_operation(
    backend: Backend, store: ObjectStore, tmp_path: Path
) -> None:
    """Never an empty listing, never a "deleted" key, never a "missing" object: the bucket is gone."""
    name = backend.unique_name("nb")
    ghost = store.for_bucket(name)  # opening a bucket never creates it
    wrong: dict[str, str] = {}
    for op, call in every_operation(ghost, store, tmp_path).items():
        try:
            call()
        except BucketNotFound as exc:
            if name not in str(exc):
                wrong[op] = f"does not name the bucket: {exc}"
        except Exception as exc:
            wrong[op] = f"{type(exc).__name__}: {exc}"
        else:
            wrong[op] = "no error"
    assert wrong == {}
    assert not store.bucket_exists(name)
    assert name not in [b.name for b in store.list_buckets()]


MIXED_CASE = ["a/1", "a/2", "A/3", "Docs/x", "docs/y", "b.txt", "B.txt"]


def test_list_keys_that_differ_only_in_case(backend: Backend, store: ObjectStore) -> None:
    """Exact listing: every key, no invented one, byte order, even when keys differ only in case."""
    for key in MIXED_CASE:
        store.put(key, key.encode())
    if hasattr(store, "list_page_size"):
        store.list_page_size = 2  # type: ignore[attr-defined]
    listed = [i.key for i in store.list()]
    if backend.kind == "seaweedfs" and listed != sorted(MIXED_CASE) and sorted(listed) == sorted(MIXED_CASE):
        pytest.xfail(f"SeaweedFS lists in filer tree order, not binary key order: {listed}")
    assert listed == sorted(MIXED_CASE)
    for info in store.list():
        assert store.get(info.key).body == info.key.encode()
    assert [i.key for i in store.list("a/")] == ["a/1", "a/2"]
    assert [i.key for i in store.list("A/")] == ["A/3"]
    assert [i.key for i in store.list("docs/")] == ["docs/y"]
    assert [i.key for i in store.list("Docs")] == ["Docs/x"]
    assert [i.key for i in store.list("b")] == ["b.txt"]
    assert [i.key for i in store.list(start_after="Docs/x")] == [
        k for k in sorted(MIXED_CASE) if k > "Docs/x"
    ]


def test_bucket_labels_roundtrip(store: ObjectStore) -> None:
    assert store.get_bucket_labels(store.bucket) == {}
    store.set_bucket_labels(store.bucket, {"purpose": "test", "owner": "ci"})
    assert store.get_bucket_labels(store.bucket) == {"purpose": "test", "owner": "ci"}
    store.set_bucket_labels(store.bucket, {"purpose": "prod"})  # replaces, never merges
    assert store.get_bucket_labels(store.bucket) == {"purpose": "prod"}
    store.set_bucket_labels(store.bucket, {})
    assert store.get_bucket_labels(store.bucket) == {}


# -- names ------------------------------------------------------------------------------------------------
BAD_KEYS = ["../x", "/abs", "a//b", "a/./b", "a/../../b", "", "back\\slash", "ctl\x00char"]
BAD_BUCKETS = ["UPPER", "ab", "under_score", "../x", "dots.in.name", "-lead", "trail-", "a--b"]


def test_bad_names_rejected_before_io(backend: Backend) -> None:
    store = backend.admin()  # no bucket needed: nothing may reach the backend
    for key in BAD_KEYS:
        calls = [
            partial(store.get, key),
            partial(store.put, key, b"x"),
            partial(store.put, key, b"x", if_none_match=True),
            partial(store.put, key, b"x", if_match='"etag"'),
            partial(store.head, key),
            partial(store.exists, key),
            partial(store.delete, key),
            partial(store.delete_many, ["fine", key]),
            partial(store.put_file, key, Path(__file__), if_none_match=True),
        ]
        if key:  # "" is the whole bucket as a prefix
            calls.append(partial(store.list, key))
        for call in calls:
            with pytest.raises(InvalidName):
                call()
    for name in BAD_BUCKETS:
        for call in (
            partial(store.create_bucket, name),
            partial(store.delete_bucket, name),
            partial(store.get_bucket_labels, name),
            partial(store.set_bucket_labels, name, {"a": "b"}),
            partial(store.for_bucket, name),
        ):
            with pytest.raises(InvalidName) as info:
                call()
            assert info.value.field == "bucket"
    assert store.requests.total() == 0


# -- the compare-and-swap race ---------------------------------------------------------------------------
PROCS = 4
ROUNDS = 3


def test_cas_race_between_processes(backend: Backend, store: ObjectStore) -> None:
    """4 processes contend on the same etag each round: exactly one CAS and one create wins per round."""
    store.put(race.COUNTER_KEY, b"0")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCS)
    results = ctx.Queue()
    spec = backend.spec(store.bucket)
    procs = [
        ctx.Process(target=race.worker, args=(spec, who, ROUNDS, barrier, results), daemon=True)
        for who in range(PROCS)
    ]
    for p in procs:
        p.start()
    rows = []
    try:
        for _ in range(PROCS * ROUNDS):
            row = results.get(timeout=120)
            assert row[5] is None, f"worker {row[0]} failed:\n{row[5]}"
            rows.append(row)
    except queue_mod.Empty:
        pytest.fail(f"workers stopped reporting after {len(rows)} results")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

    by_round: dict[int, list[tuple[int, int, bool, bool, int, str | None]]] = {}
    for row in rows:
        by_round.setdefault(row[1], []).append(row)
    assert sorted(by_round) == list(range(ROUNDS))
    cas_wins = 0
    for r, round_rows in sorted(by_round.items()):
        assert len(round_rows) == PROCS
        assert {row[4] for row in round_rows} == {r}, f"round {r}: contenders read different values"
        cas_winners = [row[0] for row in round_rows if row[2]]
        create_winners = [row[0] for row in round_rows if row[3]]
        assert len(cas_winners) == 1, f"round {r}: CAS winners {cas_winners}"
        assert len(create_winners) == 1, f"round {r}: create-only winners {create_winners}"
        assert store.get(race.round_key(r)).body == str(create_winners[0]).encode()
        cas_wins += len(cas_winners)
    final = int(open_spec(spec).get(race.COUNTER_KEY).body)
    assert final == cas_wins == ROUNDS
