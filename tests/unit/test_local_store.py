"""LocalStore specifics the contract suite does not cover: on-disk layout, bookkeeping, locks, open_store."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from storekeeper.errors import BucketNotFound, InvalidName, NotFound, PreconditionFailed
from storekeeper.stores import default_store_url, open_store
from storekeeper.stores.local import META_DIR, LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "main")


def test_key_is_a_file_under_the_bucket(store: LocalStore) -> None:
    store.put("snapshot/c/v1/manifest.json", b"{}")
    assert (store.path / "snapshot" / "c" / "v1" / "manifest.json").read_bytes() == b"{}"


def test_bookkeeping_is_never_an_object_or_bucket(store: LocalStore) -> None:
    store.put("k", b"1", metadata={"a": "b"})
    store.set_bucket_labels("main", {"x": "y"})
    assert (store.root / META_DIR).is_dir()
    assert [i.key for i in store.list()] == ["k"]
    assert [b.name for b in store.list_buckets()] == ["main"]
    assert store.head("k").metadata == {"a": "b"}


def test_overwrite_without_metadata_drops_old_metadata(store: LocalStore) -> None:
    store.put("k", b"1", metadata={"a": "b"})
    store.put("k", b"2")
    assert store.get("k").metadata == {}


def test_etag_changes_on_every_write_even_same_content(store: LocalStore) -> None:
    e1 = store.put("k", b"same")
    e2 = store.put("k", b"same")
    assert e1 != e2  # unlike an MD5 etag, a rewrite is always visible to a CAS
    with pytest.raises(PreconditionFailed):
        store.put("k", b"x", if_match=e1)


def test_failed_conditional_put_leaves_no_temp_file(store: LocalStore) -> None:
    store.put("k", b"1")
    with pytest.raises(PreconditionFailed):
        store.put("k", b"2", if_none_match=True)
    assert list((store.root / META_DIR / "main" / "tmp").iterdir()) == []
    assert store.get("k").body == b"1"


def test_object_and_prefix_cannot_share_a_name(store: LocalStore) -> None:
    store.put("a/b", b"1")
    with pytest.raises(PreconditionFailed, match="prefix"):
        store.put("a", b"2")
    store.put("f", b"1")
    with pytest.raises(PreconditionFailed, match="parent"):
        store.put("f/g", b"2")
    with pytest.raises(NotFound):
        store.get("a")  # a prefix is not an object
    with pytest.raises(NotFound):
        store.head("f/g")


def test_delete_prunes_empty_directories(store: LocalStore) -> None:
    store.put("a/b/c/d", b"1")
    store.put("a/x", b"1")
    store.delete("a/b/c/d")
    assert not (store.path / "a" / "b").exists()
    assert (store.path / "a" / "x").exists()
    store.delete_many(["a/x"])
    assert list(store.path.iterdir()) == []
    assert store.path.is_dir()  # the bucket itself stays


def test_a_put_survives_a_delete_pruning_its_directory_before_the_rename(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving the compaction race test met under load: a compactor deleted the last delta of
    `delta/c/` (pruning the directory) after a producer's put had made it and before the put renamed
    its temp file into it. The put failed with FileNotFoundError before the fix."""
    store.put("delta/c/1.delta", b"old")
    real_replace = os.replace
    pruned: list[bool] = []

    def replace_after_a_prune(src: str, dst: str) -> None:
        if str(dst).endswith("2.delta") and not pruned:
            store.delete("delta/c/1.delta")  # another process's delete, at exactly this step
            pruned.append(not (store.path / "delta").exists())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_a_prune)
    store.put("delta/c/2.delta", b"new", if_none_match=True)
    assert pruned == [True]  # the directory really was gone when the rename ran
    assert [(i.key, store.get(i.key).body) for i in store.list()] == [("delta/c/2.delta", b"new")]


def test_puts_and_deletes_in_one_directory_race_without_errors(store: LocalStore) -> None:
    """Threads writing into a directory while others delete whatever they find there (each delete of
    the last object prunes it): every put lands, and fails with nothing but a real precondition."""
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []

    def write(w: int) -> None:
        try:
            for i in range(300):
                store.put(f"delta/c/{w}-{i}", b"x", if_none_match=True)
                written.append(f"{w}-{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    def delete() -> None:
        while not stop.is_set():
            for info in list(store.list("delta/")):
                store.delete(info.key)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    deleters = [threading.Thread(target=delete) for _ in range(2)]
    for t in [*writers, *deleters]:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in deleters:
        t.join()
    assert errors == []
    assert len(written) == 600


def test_list_prefix_walks_only_its_directory(store: LocalStore) -> None:
    for k in ("delta/a/1.delta", "delta/a/2.delta", "delta/ab/1.delta", "delta/b/1.delta", "deltax"):
        store.put(k, b"1")
    assert [i.key for i in store.list("delta/a/")] == ["delta/a/1.delta", "delta/a/2.delta"]
    assert [i.key for i in store.list("delta/a")] == [
        "delta/a/1.delta",
        "delta/a/2.delta",
        "delta/ab/1.delta",
    ]
    assert [i.key for i in store.list("delta")] == [
        "delta/a/1.delta",
        "delta/a/2.delta",
        "delta/ab/1.delta",
        "delta/b/1.delta",
        "deltax",
    ]


def test_concurrent_create_only_has_one_winner(store: LocalStore) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def go(i: int) -> None:
        barrier.wait()
        try:
            store.put("lock", str(i).encode(), if_none_match=True)
            winners.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.get("lock").body == str(winners[0]).encode()


def test_for_bucket_does_not_create(store: LocalStore) -> None:
    ghost = store.for_bucket("ghost")
    assert not (store.root / "ghost").exists()
    with pytest.raises(BucketNotFound):
        ghost.put("k", b"1")
    with pytest.raises(BucketNotFound):
        ghost.head("k")
    assert not (store.root / "ghost").exists()
    store.create_bucket("ghost")
    ghost.put("k", b"1")
    assert ghost.get("k").body == b"1"
    assert ghost.requests is store.requests  # one counter for the backend


def test_delete_bucket_removes_its_bookkeeping(store: LocalStore) -> None:
    store.create_bucket("other")
    other = store.for_bucket("other")
    other.put("k", b"1", metadata={"a": "b"})
    store.set_bucket_labels("other", {"t": "1"})
    other.delete("k")
    store.delete_bucket("other")
    assert not (store.root / META_DIR / "other").exists()
    store.create_bucket("other")
    assert store.get_bucket_labels("other") == {}  # no stale labels come back


def test_relative_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        LocalStore(Path("relative/dir"))


def test_open_store_default_is_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOREKEEPER_STORE", raising=False)
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "home"))
    assert default_store_url() == f"file://{tmp_path / 'home' / 'stores' / 'default'}"
    s = open_store(None)
    assert isinstance(s, LocalStore)
    assert s.path == (tmp_path / "home" / "stores" / "default").resolve()
    assert s.path.is_dir()


def test_open_store_honours_env_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_STORE", f"file://{tmp_path}/envstore")
    s = open_store()
    assert isinstance(s, LocalStore)
    assert s.path == tmp_path / "envstore"


@pytest.mark.parametrize(
    "url", ["nothing", "file://relative/x", "file:///a/../b", "ftp://bucket", "s3://Bad_Bucket", "s3://"]
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(InvalidName) as info:
        open_store(url)
    assert info.value.field == "store"
