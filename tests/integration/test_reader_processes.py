"""Readers across processes and over time (issue 14): many processes cold-opening one version at once,
a reader living through many version switches with flat disk, memory and open files, and the
leftovers of a killed reader removed by the next process."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from storekeeper import Reader, reader
from storekeeper.snapshots import SnapshotCache
from storekeeper.snapshots import reader as views
from storekeeper.stores.local import LocalStore
from tests.reader_support import build_archive, entry_unlocked, publish_built, publish_version, records

pytestmark = pytest.mark.slow

ROUNDS = 12
PROCESSES = 4


def _cold_open_worker(url: str, versions: list[str], root: str, barrier: Any, out: Any) -> None:
    from storekeeper import Reader
    from storekeeper.snapshots import SnapshotCache

    for version in versions:
        barrier.wait()  # all processes open the same uncached version at the same moment
        try:
            cache = SnapshotCache.for_readers(root)
            with Reader(url, "docs", version=version, cache=cache) as r:
                res = r.query([0.5] * 16, k=3)
                out.put((version, "ok", res.version, len(res.ids[0]), cache.downloads))
        except BaseException as exc:  # reported to the parent, which fails the test with it
            out.put((version, "error", f"{type(exc).__name__}: {exc}", 0, 0))


def test_many_processes_cold_open_the_same_version_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    versions = [
        publish_version(store, tmp_path, "docs", records(1500, 16, seed=i)).version for i in range(ROUNDS)
    ]
    root = tmp_path / "shared-cache"
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_cold_open_worker, args=(store.url, versions, str(root), barrier, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in range(ROUNDS * PROCESSES)]
    for p in procs:
        p.join(timeout=60)
    failures = [r for r in results if r[1] != "ok"]
    assert failures == []
    assert all(r[2] == r[0] and r[3] == 3 for r in results)
    cache = SnapshotCache.for_readers(root)
    assert not any((root / "live").iterdir())  # every view released
    assert not any((root / "staging").iterdir())  # no download left behind, adopted or installed
    assert len(cache.entries()) >= 1


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_reader_through_many_version_switches_stays_flat(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    trees = [records(5000, 96, seed=s) for s in range(2)]
    built = [build_archive(tmp_path, "docs", recs) for recs in trees]
    first = publish_built(store, "docs", built[0])
    limit = 3 * first.size
    cache = SnapshotCache.for_readers(tmp_path / "reader-cache", max_bytes=limit)
    r = Reader(store, "docs", cache=cache, refresh_interval=0, auto_refresh=False)
    samples: list[tuple[int, int, int]] = []
    served = [r.version]
    for i in range(24):
        m = publish_built(store, "docs", built[i % 2])  # same content, a new version each time
        assert r.refresh(force=True)
        res = r.query(trees[i % 2]["embeddings"][:4], k=5)
        assert res.version == m.version
        assert [ids[0] for ids in res.ids] == ["r0", "r1", "r2", "r3"]
        served.append(r.version)
        views.settle()  # old views are removed off the request path: count them once they are gone
        samples.append((_du(cache.root), _rss(), _fds()))
        assert cache.size() <= limit  # the entries stay within the configured bytes
        assert len(list((cache.root / "live").iterdir())) == 1  # only the served version's view
    disk, rss, fds = zip(*samples, strict=True)
    view_overhead = 2 * first.size  # the served view's SQLite copy, and one entry in use beyond the limit
    assert max(disk) <= limit + view_overhead, (max(disk), limit)
    assert max(fds[4:]) <= fds[3] + 4, fds  # a leaked client would add its files every switch
    assert rss[-1] - rss[3] < 64 * 1024**2, [x // 1024**2 for x in rss]  # ~4 MB of index per version
    for old in served[:-1]:  # every old version is released: nobody holds its lock
        assert entry_unlocked(cache, old), old
    last = r._current.opened.view  # type: ignore[union-attr]
    r.close()
    assert list((cache.root / "live").iterdir()) == [last]  # parked: closed, kept for a re-open
    assert entry_unlocked(cache, served[-1])  # ... released
    views._VIEWS.clear_parked()  # what exit does
    assert list((cache.root / "live").iterdir()) == []
    assert list((cache.root / "trash").iterdir()) == []


def test_leftovers_of_a_killed_reader_are_removed_by_the_next(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    publish_version(store, tmp_path, "docs", records(500, 8))
    root = tmp_path / "reader-cache"
    code = textwrap.dedent(
        f"""
        import sys, time
        from storekeeper import Reader
        from storekeeper.snapshots import SnapshotCache
        cache = SnapshotCache.for_readers({str(root)!r})
        r = Reader({store.url!r}, "docs", cache=cache)
        (cache.tempdir("staging") / "half-downloaded.tar").write_bytes(b"x" * 4096)
        (cache.tempdir("trash") / "chroma.sqlite3").write_bytes(b"x" * 4096)  # a removal not done yet
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert any((root / "live").iterdir())
        assert any((root / "staging").iterdir())
        # while it lives, a second process leaves its dirs alone
        SnapshotCache.for_readers(root)
        assert any((root / "live").iterdir())
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    reader._FAILURES.clear()
    cache = SnapshotCache.for_readers(root)  # the next process starts: the dead one's dirs go
    assert list((root / "live").iterdir()) == []
    assert list((root / "staging").iterdir()) == []
    assert list((root / "trash").iterdir()) == []
    with Reader(store, "docs", cache=cache) as r:  # its verified entry is reused, not downloaded
        assert r.query([0.0] * 8, k=1).version == r.version
    assert cache.downloads == 0
