"""storekeeper.Reader: queries, refresh and swap, failures that keep the current version serving,
unknown collections and stores, read-your-writes, input edges."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper import Reader, reader
from storekeeper.errors import (
    BucketNotFound,
    CorruptObject,
    DeltaRejected,
    NotFound,
    NotVisible,
    PointerTargetMissing,
    ReaderClosed,
    SnapshotUnavailable,
    UnknownCollection,
    ValidationError,
)
from storekeeper.snapshots import SnapshotCache, pointer_key
from storekeeper.stores.base import GetResult
from storekeeper.stores.local import LocalStore
from tests.reader_support import entry_unlocked, publish_version, records

pytestmark = pytest.mark.slow  # real chromadb snapshots, published and read: not in `make test-fast`


@pytest.fixture
def cache(tmp_path: Path) -> SnapshotCache:
    return SnapshotCache.for_readers(tmp_path / "reader-cache")


def _corrupt_archive(store: LocalStore, key: str) -> None:
    body = bytearray(store.get(key).body)
    body[len(body) // 2] ^= 0xFF
    store.put(key, bytes(body))


def test_query_returns_ids_distances_metadata_documents_and_version(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs = records(60, 4)
    m = publish_version(store, tmp_path, "docs", recs)
    with Reader(store.url, "docs", cache=cache) as r:  # a URL works as well as a store object
        assert r.version == m.version
        res = r.query(recs["embeddings"][:2], k=3)
        assert res.version == m.version
        assert [ids[0] for ids in res.ids] == ["r0", "r1"]  # each vector finds itself first
        assert res.distances[0][0] == pytest.approx(0.0, abs=1e-5)
        assert res.metadatas[0][0] == {"g": 0, "tag": "v"}
        assert res.documents[1][0] == "doc 1 odd"
        only = r.query(recs["embeddings"][0], k=60, where={"g": 1})
        assert len(only.ids) == 1
        assert len(only.ids[0]) == 20
        assert all(md == {"g": 1, "tag": "v"} for md in only.metadatas[0] if md)
        even = r.query(recs["embeddings"][0], k=60, where_document={"$contains": "even"})
        assert sorted(even.ids[0]) == sorted(f"r{i}" for i in range(0, 60, 2))
        assert r.query(recs["embeddings"][0], k=500).ids[0][0] == "r0"  # k above the count: all


def test_refresh_is_rate_limited_swaps_atomically_and_releases_the_old_version(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    m1 = publish_version(store, tmp_path, "docs", records(30, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=3600, auto_refresh=True)
    m2 = publish_version(store, tmp_path, "docs", records(40, 4, seed=1, tag="two"))
    store.requests.reset()
    assert r.refresh() is False  # inside the interval: not even a pointer read
    assert r.query([0.1, 0.2, 0.3, 0.4], k=1).version == m1.version
    assert store.requests.total() == 0
    old_view = r._current.opened.view  # type: ignore[union-attr]
    assert r.refresh(force=True) is True
    assert r.version == m2.version
    assert r.query([0.1, 0.2, 0.3, 0.4], k=1).metadatas[0][0]["tag"] == "two"  # type: ignore[index]
    assert not old_view.exists()  # the old version's view is gone, its client closed
    assert [p.name for p in (cache.root / "live").iterdir()] == [r._current.opened.view.name]  # type: ignore[union-attr]
    store.requests.reset()
    assert r.refresh(force=True) is False
    assert store.requests.counts == {"get": 1}  # unchanged pointer: one read, nothing else
    view = r._current.opened.view  # type: ignore[union-attr]
    r.close()
    assert list((cache.root / "live").iterdir()) == [view]  # closed, parked for the next open of m2
    assert entry_unlocked(cache, m2.version)  # its client is closed and its entry released
    with pytest.raises(ReaderClosed):
        r.query([0.1, 0.2, 0.3, 0.4], k=1)
    r.close()  # idempotent


def test_a_query_running_during_a_swap_finishes_on_its_version(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    publish_version(store, tmp_path, "docs", records(30, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=0, auto_refresh=False)
    handle = r._acquire()  # a query in flight
    publish_version(store, tmp_path, "docs", records(30, 4, seed=2))
    assert r.refresh(force=True)
    assert handle.retired
    assert handle.opened.view.exists()
    assert handle.opened.collection.count() == 30
    r._release(handle)
    assert not handle.opened.view.exists()
    r.close()


def test_corrupt_new_version_keeps_serving_and_is_not_downloaded_again_until_it_changes(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    m1 = publish_version(store, tmp_path, "docs", records(30, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=0, auto_refresh=False)
    good = publish_version(store, tmp_path, "docs", records(30, 4, seed=3, tag="new"))
    pristine = store.get(good.archive_key).body
    _corrupt_archive(store, good.archive_key)
    downloads = cache.downloads
    assert r.refresh(force=True) is False
    assert r.version == m1.version
    assert isinstance(r.last_error, CorruptObject)
    assert cache.downloads == downloads + 1
    assert r.query([0.0, 0.0, 0.0, 0.0], k=1).version == m1.version
    assert r.refresh(force=True) is False  # backing off: no download
    for failure in reader._FAILURES.values():
        failure.retry_at = 0.0  # the backoff has passed
    assert r.refresh(force=True) is False  # unchanged archive: still not downloaded again
    assert cache.downloads == downloads + 1
    # a second reader in the process does not download it either, and says why it cannot serve
    # the new version only when it has nothing else (here it has nothing else)
    for failure in reader._FAILURES.values():
        failure.retry_at = 0.0
    with pytest.raises(SnapshotUnavailable, match="does not match the manifest"):
        Reader(store, "docs", cache=cache)
    assert cache.downloads == downloads + 1
    store.put(good.archive_key, pristine)  # repaired: the archive changed
    for failure in reader._FAILURES.values():
        failure.retry_at = 0.0
    assert r.refresh(force=True) is True
    assert r.version == good.version
    assert r.last_error is None
    r.close()


class _ReapAfterPointerRead(LocalStore):
    """A store where, right after a reader reads the pointer, a compactor publishes a newer version
    and the reaper removes the one the reader just saw (the race of issue 14.3)."""

    action: Any = None

    def _get(self, key: str) -> GetResult:
        res = super()._get(key)
        if key.endswith("latest/pointer.txt") and self.action is not None:
            action, self.action = self.action, None
            action()
        return res


def test_reap_race_re_resolves_once(tmp_path: Path, cache: SnapshotCache) -> None:
    store = _ReapAfterPointerRead(tmp_path / "bucket")
    publish_version(store, tmp_path, "docs", records(20, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=0, auto_refresh=False)
    m2 = publish_version(store, tmp_path, "docs", records(20, 4, seed=5))
    newest: list[str] = []

    def publish_then_reap() -> None:
        m3 = publish_version(store, tmp_path, "docs", records(25, 4, seed=6))
        newest.append(m3.version)
        for info in list(store.list(m2.prefix)):
            store.delete(info.key)

    store.action = publish_then_reap
    assert r.refresh(force=True) is True
    assert r.version == newest[0]
    assert r.last_error is None
    r.close()


def test_missing_new_version_keeps_serving_and_nothing_to_serve_raises(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    m1 = publish_version(store, tmp_path, "docs", records(20, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=0, auto_refresh=False)
    m2 = publish_version(store, tmp_path, "docs", records(20, 4, seed=7))
    store.delete(m2.archive_key)
    assert r.refresh(force=True) is False
    assert r.version == m1.version
    assert isinstance(r.last_error, PointerTargetMissing)
    with pytest.raises(SnapshotUnavailable, match="archive of version"):
        Reader(store, "docs", cache=cache)
    r.close()


def test_unknown_collection_and_store_are_errors_an_empty_collection_is_not(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    with pytest.raises(UnknownCollection, match="no collection 'nope' "):
        Reader(store, "nope", cache=cache)
    with pytest.raises(BucketNotFound):
        Reader(f"file://{tmp_path}/no-such-bucket", "docs", cache=cache)
    assert not (tmp_path / "no-such-bucket").exists()  # a mistyped path is not created
    store.put("collection/fresh/config.json", b'{"dimension": 4, "distance": "l2"}')
    with Reader(store, "fresh", cache=cache) as r:  # exists, nothing published yet: empty, not unknown
        assert r.version is None
        res = r.query([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]], k=3)
        assert res.ids == [[], []]
        assert res.version is None
    store.put("delta/pending/0000000000001-abcdef.delta", b"x")  # a collection from before configs
    with Reader(store, "pending", cache=cache) as r:
        assert r.version is None


def test_pinned_version(store: LocalStore, cache: SnapshotCache, tmp_path: Path) -> None:
    m1 = publish_version(store, tmp_path, "docs", records(10, 4))
    publish_version(store, tmp_path, "docs", records(12, 4, seed=9))
    with Reader(store, "docs", version=m1.version, cache=cache) as r:
        assert r.version == m1.version
        assert r.refresh(force=True) is False
        assert r.embedding("r3") is not None
        assert r.embedding("missing") is None
    with pytest.raises(NotFound, match="no such snapshot version"):
        Reader(store, "docs", version="000000000099-zzzzzzzz", cache=cache)
    with pytest.raises(ValidationError, match="version"):
        Reader(store, "docs", version="../../etc", cache=cache)


def test_concurrent_queries_while_versions_switch(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    publish_version(store, tmp_path, "docs", records(50, 4))
    r = Reader(store, "docs", cache=cache, refresh_interval=0.05)
    errors: list[BaseException] = []
    seen: set[str | None] = set()
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                res = r.query([0.5, 0.5, 0.5, 0.5], k=5)
                assert len(res.ids[0]) == 5
                seen.add(res.version)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    published = [publish_version(store, tmp_path, "docs", records(50, 4, seed=s)).version for s in range(3)]
    r.refresh(force=True)
    assert r.version == published[-1]
    deadline = time.monotonic() + 30
    while published[-1] not in seen and not errors and time.monotonic() < deadline:
        time.sleep(0.01)  # the queries move to the newest version
    stop.set()
    for t in threads:
        t.join()
    r.close()
    assert errors == []
    assert len(seen) >= 2  # served by more than one version while they switched
    assert len(list((cache.root / "live").iterdir())) == 1  # the last version's view, parked
    assert all(entry_unlocked(cache, v) for v in published)


def test_wait_visible_follows_the_ledger_removed_deltas_and_rejections(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    d1, d2, d3 = "1700000000001-aaaaaa", "1700000000002-bbbbbb", "1700000000003-cccccc"
    store.put(f"delta/docs/{d1}.delta", b"pending")
    store.put(f"delta/docs/{d2}.delta", b"pending")
    r = Reader(store, "docs", cache=cache, refresh_interval=3600)  # empty: only deltas so far
    with pytest.raises(NotVisible, match=r"not visible after 0\.2 s"):
        r.wait_visible([d1], timeout=0.2, poll=0.05)
    publish_version(store, tmp_path, "docs", records(5, 4), deltas=[d1])
    assert r.wait_visible([d1], timeout=5, poll=0.05) == r.version is not None
    # d2 applied in a later version whose ledger no longer names it, its blob removed after publish
    publish_version(store, tmp_path, "docs", records(6, 4, seed=1), deltas=[d2])
    store.delete(f"delta/docs/{d2}.delta")
    publish_version(store, tmp_path, "docs", records(7, 4, seed=2), deltas=[])
    version = r.wait_visible([d2], timeout=5, poll=0.05)
    assert version == r.version
    assert r.manifest is not None
    assert r.manifest.record_count == 7
    store.put(f"delta-rejected/docs/{d3}.delta", b"bad")
    with pytest.raises(DeltaRejected, match=d3):
        r.wait_visible([d3], timeout=5, poll=0.05)
    with pytest.raises(ValidationError, match="delta_ids"):
        r.wait_visible(["../x"], timeout=1)
    r.close()


def test_garbage_pointer_with_nothing_to_serve_is_unavailable(
    store: LocalStore, cache: SnapshotCache
) -> None:
    store.put(pointer_key("docs"), b"snapshot/docs/../../x/")
    with pytest.raises(SnapshotUnavailable, match="pointer must be"):
        Reader(store, "docs", cache=cache)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    tmp = tmp_path_factory.mktemp("served")
    store = LocalStore(tmp / "bucket")
    publish_version(store, tmp, "docs", records(20, 3))
    return Reader(store, "docs", cache=SnapshotCache.for_readers(tmp / "cache"), auto_refresh=False)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(embeddings=_json, k=_json, where=_json, where_document=_json)
def test_any_query_input_is_a_clear_error_or_a_result(
    served: Reader, embeddings: Any, k: Any, where: Any, where_document: Any
) -> None:
    try:
        res = served.query(embeddings, k, where=where, where_document=where_document)
    except ValidationError as exc:
        failed: ValidationError | None = exc
    else:
        failed = None
    if failed is not None:
        assert failed.field in ("embeddings", "k", "where", "where_document")
        return
    arr = np.asarray(embeddings, dtype=np.float32)
    assert arr.shape[-1] == 3
    assert isinstance(k, int)
    assert len(res.ids) == (1 if arr.ndim == 1 else arr.shape[0])
    assert all(len(ids) <= k for ids in res.ids)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=_json, where_document=_json)
def test_any_filter_is_a_clear_error_or_a_result(served: Reader, where: Any, where_document: Any) -> None:
    try:
        res = served.query([0.1, 0.2, 0.3], 5, where=where, where_document=where_document)
    except ValidationError as exc:
        failed: ValidationError | None = exc
    else:
        failed = None
    if failed is not None:
        assert failed.field in ("where", "where_document")
        return
    assert len(res.ids) == 1
    assert len(res.ids[0]) <= 5


@pytest.mark.parametrize(
    ("embeddings", "k", "field"),
    [
        ([[1.0, 2.0], [1.0]], 1, "embeddings"),
        ([float("nan"), 0.0, 0.0], 1, "embeddings"),
        ([True, False, True], 1, "embeddings"),
        (["a", "b", "c"], 1, "embeddings"),
        ([1.0, 2.0], 1, "embeddings"),  # dimension 2, the collection has 3
        ([1.0, 2.0, 3.0], 0, "k"),
        ([1.0, 2.0, 3.0], True, "k"),
    ],
)
def test_bad_query_input_names_the_field(served: Reader, embeddings: Any, k: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        served.query(embeddings, k)
    assert info.value.field == field


def test_bad_filter_names_where(served: Reader) -> None:
    with pytest.raises(ValidationError) as info:
        served.query([1.0, 2.0, 3.0], 2, where={"$bogus": 1})
    assert info.value.field == "where"
