"""One opened view per version per process: Readers of a version share it (counted by reference),
the last release closes it and parks its dir for the next open, a changed cache entry is not
shared, open_snapshot stays private, and old views leave the disk off the request path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from storekeeper import Reader
from storekeeper.snapshots import SnapshotCache, open_snapshot
from storekeeper.snapshots import reader as views
from storekeeper.stores.local import LocalStore
from tests.reader_support import entry_unlocked, publish_version, records

pytestmark = pytest.mark.slow  # real chromadb snapshots


@pytest.fixture
def cache(tmp_path: Path) -> SnapshotCache:
    return SnapshotCache.for_readers(tmp_path / "reader-cache")


def _live(cache: SnapshotCache) -> list[Path]:
    return sorted((cache.root / "live").iterdir())


def _view(r: Reader) -> Path:
    assert r._current is not None
    return r._current.opened.view


def test_two_readers_of_one_version_share_one_view_and_closing_one_leaves_the_other_serving(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs = records(40, 4)
    m = publish_version(store, tmp_path, "docs", recs)
    a = Reader(store, "docs", cache=cache, auto_refresh=False)
    b = Reader(store, "docs", cache=cache, auto_refresh=False)
    assert _view(a) == _view(b)
    assert a._current is not None
    assert b._current is not None
    assert a._current.opened.collection is b._current.opened.collection  # one chromadb client
    assert _live(cache) == [_view(a)]
    assert cache.downloads == 1
    a.close()
    assert not entry_unlocked(cache, m.version)  # b still holds the entry
    res = b.query(recs["embeddings"][:2], k=2)
    assert [ids[0] for ids in res.ids] == ["r0", "r1"]
    view = _view(b)
    b.close()  # the last reference: client closed, entry released, dir parked
    assert entry_unlocked(cache, m.version)
    assert _live(cache) == [view]


def _parked(store: LocalStore, cache: SnapshotCache, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """Publish a version, open and close a Reader of it: (its records, its parked view)."""
    recs = records(30, 4)
    publish_version(store, tmp_path, "docs", recs)
    with Reader(store, "docs", cache=cache, auto_refresh=False) as r:
        return recs, _view(r)


def test_a_warm_reopen_reuses_the_parked_view_and_another_version_removes_it(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs, first = _parked(store, cache, tmp_path)
    sqlite = first / "chroma.sqlite3"
    copied = sqlite.stat().st_ino
    with Reader(store, "docs", cache=cache, auto_refresh=False) as r:
        assert _view(r) == first
        assert sqlite.stat().st_ino == copied  # not copied again
        assert r.query(recs["embeddings"][3], k=1).ids == [["r3"]]
    assert cache.downloads == 1
    m2 = publish_version(store, tmp_path, "docs", records(30, 4, seed=1))
    with Reader(store, "docs", cache=cache, auto_refresh=False) as r:
        assert r.version == m2.version
        assert _view(r) != first
        assert not first.exists()  # the parked view of the old version is gone
        second = _view(r)
    views.settle()
    assert _live(cache) == [second]
    assert list((cache.root / "trash").iterdir()) == []  # removed in the background, not left


def test_a_parked_view_that_no_longer_fits_its_entry_is_replaced(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs, first = _parked(store, cache, tmp_path)
    next(p for p in first.iterdir() if p.is_symlink()).unlink()  # a parked view damaged meanwhile
    with Reader(store, "docs", cache=cache, auto_refresh=False) as r:
        assert _view(r) != first
        assert r.query(recs["embeddings"][5], k=1).ids == [["r5"]]


def test_a_changed_entry_is_not_shared_a_new_reader_gets_a_verified_copy(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs = records(30, 4)
    m = publish_version(store, tmp_path, "docs", recs)
    a = Reader(store, "docs", cache=cache, auto_refresh=False)
    victim = next(p for p in (cache.entry(m) / "tree").rglob("*") if p.is_file() and p.suffix == ".bin")
    victim.write_bytes(victim.read_bytes())  # same bytes, but the file changed: its stat stamp moves
    b = Reader(store, "docs", cache=cache, auto_refresh=False)
    assert _view(b) != _view(a)  # not shared: b re-verified and downloaded its own copy
    assert cache.downloads == 2
    assert b.query(recs["embeddings"][7], k=1).ids == [["r7"]]
    a.close()
    b.close()


def test_many_threads_opening_one_version_open_it_once(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    publish_version(store, tmp_path, "docs", records(200, 8))
    barrier = threading.Barrier(6)
    readers: list[Reader] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            readers.append(Reader(store, "docs", cache=cache, auto_refresh=False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({_view(r) for r in readers}) == 1
    assert len(_live(cache)) == 1
    assert cache.downloads == 1
    version = readers[0].version
    assert version is not None
    for r in readers[1:]:
        r.close()
    assert not entry_unlocked(cache, version)  # one reference left
    readers[0].close()
    assert entry_unlocked(cache, version)
    assert len(_live(cache)) == 1


def test_open_snapshot_is_private_its_writes_reach_no_reader(
    store: LocalStore, cache: SnapshotCache, tmp_path: Path
) -> None:
    recs = records(20, 4)
    publish_version(store, tmp_path, "docs", recs)
    with Reader(store, "docs", cache=cache, auto_refresh=False) as r:
        col = open_snapshot(store, "docs", cache=cache)
        col.delete(ids=["r0"])
        assert col.count() == 19
        assert r.query(recs["embeddings"][0], k=1).ids == [["r0"]]
        assert len(_live(cache)) == 2
