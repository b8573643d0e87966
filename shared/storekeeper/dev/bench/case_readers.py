"""Readers: `storekeeper.Reader` side by side with a bare `chromadb.PersistentClient` on an extracted copy.

The same archive on the local backend, four operations, each with its own bare baseline:

* cold open — ours: pointer + manifest, fetch, sha256, extract, install, view, open;
  bare: extract the archive + open a PersistentClient on it (target <= 2.5x)
* warm re-open — ours: a new Reader on a version already in the cache, no other Reader of it open
  (the process's parked view of it is reopened); bare: reopen the already-extracted copy
  (target <= 2x). Also reported, without a target: `warm_reopen_shared` (another Reader of the
  version is open: the new one shares its view) and `warm_reopen_unparked` (the parked view
  removed first: a new view, its SQLite copied and opened at a new path)
* query p50 — the same vectors, k=10, interleaved (target <= 1.1x)
* version switch — ours: `refresh()` onto a newly published version (fetch, verify, extract,
  open, swap, close the old one); bare: fetch + extract + open the new archive, close the old
  client (target <= 1.5x)
"""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from storekeeper.dev.bench import data
from storekeeper.dev.bench.context import BenchContext
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.dev.bench.timing import median, timed

NAME = "readers"
TITLE = "Readers: cold open, warm re-open, query and version switch vs bare chromadb"
SEED = 14
TARGETS = {"cold_open": 2.5, "warm_reopen": 2.0, "query_p50": 1.1, "switch": 1.5}
QUERIES = 200


def _sizes(ctx: BenchContext) -> tuple[int, int, int]:
    """(records, dimension, repeats): the issue's 20,000 x 384, tiny under --quick."""
    return (200, ctx.sizes.dim, 2) if ctx.quick else (20_000, ctx.sizes.dim, 3)


def _bare_open(path: Path, collection: str) -> tuple[Any, Any]:
    """chromadb as an application would call it: a client with its own Settings per open (storekeeper
    builds one Settings per process and copies it; chromadb's PersistentClient writes the path into
    the Settings it is given, so reusing one is not what a bare program does)."""
    import chromadb
    from chromadb.config import Settings

    from storekeeper import chroma

    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )
    return client, chroma.get(client, collection)


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:") as tf:
        tf.extractall(dest, filter="data")


def run(ctx: BenchContext, result: CaseResult) -> None:
    from storekeeper import chroma
    from storekeeper.reader import Reader
    from storekeeper.snapshots import ARCHIVE_NAME, new_version, pack_archive, publish, read_pointer
    from storekeeper.snapshots.cache import SnapshotCache
    from storekeeper.snapshots.manifest import write_snapshot
    from storekeeper.stores.local import LocalStore

    n, dim, repeats = _sizes(ctx)
    c = "bench-readers"
    work = ctx.scratch("readers")
    store = LocalStore(work / "bucket")
    vecs = data.vectors(n, dim, SEED)
    tree = work / "tree"
    with chroma.persistent_client(tree) as client:
        col = chroma.get_or_create(client, c, "l2")
        step = ctx.sizes.chroma_batch
        for i in range(0, n, step):
            col.add(
                ids=data.ids("r", min(step, n - i), i),
                embeddings=vecs[i : i + step],
                metadatas=data.metadatas(min(step, n - i), i),
            )
    archive = work / ARCHIVE_NAME
    sha, size = pack_archive(tree, archive)
    shutil.rmtree(tree)

    def publish_next() -> str:
        parent, etag = read_pointer(store, c)
        version = new_version(parent)
        write_snapshot(
            store, collection=c, version=version, parent=parent, archive=archive, dimension=dim,
            distance="l2", record_count=n, deltas=[], applied=[], sha256=sha, size=size,
        )  # fmt: skip
        publish(store, c, version, etag)
        return version

    publish_next()
    params = {"records": n, "dimension": dim, "archive_bytes": size, "repeats": repeats}
    result.parameters.update({"records": n, "dimension": dim, "archive_bytes": size})

    def cache_at(i: int) -> SnapshotCache:
        return SnapshotCache.for_readers(work / f"cache-{i}", max_bytes=8 * size)

    # -- cold open -------------------------------------------------------------------------------
    ours_cold, bare_cold = [], []
    for i in range(repeats):
        cache = cache_at(i)
        with timed() as t:
            reader = Reader(store, c, cache=cache, auto_refresh=False)
        ours_cold.append(t.seconds)
        reader.close()
        dest = work / f"bare-{i}"
        with timed() as t:
            _extract(archive, dest)
            client, _ = _bare_open(dest, c)
        bare_cold.append(t.seconds)
        client.close()
    # -- warm re-open (the cache of the last cold open holds the version) ----------------------------
    ours_warm, bare_warm = [], []
    for _ in range(repeats + 2):
        with timed() as t:
            reader = Reader(store, c, cache=cache, auto_refresh=False)
        ours_warm.append(t.seconds)
        reader.close()
        with timed() as t:
            client, _ = _bare_open(dest, c)
        bare_warm.append(t.seconds)
        client.close()
    # -- informational: a Reader sharing an open view, and one after the parked view is gone ---------
    from storekeeper.snapshots import reader as views

    ours_shared, ours_unparked = [], []
    holder = Reader(store, c, cache=cache, auto_refresh=False)
    for _ in range(repeats + 2):
        with timed() as t:
            reader = Reader(store, c, cache=cache, auto_refresh=False)
        ours_shared.append(t.seconds)
        reader.close()
    holder.close()
    for _ in range(repeats + 2):
        views._VIEWS.clear_parked()
        with timed() as t:
            reader = Reader(store, c, cache=cache, auto_refresh=False)
        ours_unparked.append(t.seconds)
        reader.close()
    result.add("warm_reopen_shared_reader", median(ours_shared), "s", "local", params=params)
    result.add("warm_reopen_unparked_reader", median(ours_unparked), "s", "local", params=params)
    # -- query p50, interleaved so load on the machine hits both alike ----------------------------
    reader = Reader(store, c, cache=cache, refresh_interval=3600)
    client, bare_col = _bare_open(dest, c)
    queries = data.vectors(QUERIES, dim, SEED + 1)
    reader.query(queries[0], 10)  # both load their index before timing
    bare_col.query(
        query_embeddings=queries[:1], n_results=10, include=["distances", "metadatas", "documents"]
    )
    ours_q, bare_q = [], []
    for q in queries:
        t0 = time.perf_counter()
        reader.query(q, 10)
        t1 = time.perf_counter()
        bare_col.query(
            query_embeddings=q.reshape(1, -1), n_results=10, include=["distances", "metadatas", "documents"]
        )
        t2 = time.perf_counter()
        ours_q.append(t1 - t0)
        bare_q.append(t2 - t1)
    client.close()
    # -- version switch ------------------------------------------------------------------------------
    ours_switch, bare_switch = [], []
    old_client, _ = _bare_open(dest, c)
    for i in range(repeats):
        publish_next()
        with timed() as t:
            changed = reader.refresh(force=True)
        assert changed, reader.last_error
        ours_switch.append(t.seconds)
        fetched = work / f"switch-{i}.tar"
        new_dest = work / f"bare-switch-{i}"
        with timed() as t:
            shutil.copyfile(store.path / f"snapshot/{c}/{reader.version}/{ARCHIVE_NAME}", fetched)
            _extract(fetched, new_dest)
            new_client, _ = _bare_open(new_dest, c)
            old_client.close()
        bare_switch.append(t.seconds)
        old_client = new_client
    old_client.close()
    reader.close()

    pairs = {
        "cold_open": (ours_cold, bare_cold, "s"),
        "warm_reopen": (ours_warm, bare_warm, "s"),
        "query_p50": (ours_q, bare_q, "s"),
        "switch": (ours_switch, bare_switch, "s"),
    }
    for name, (ours, bare, unit) in pairs.items():
        ours_m, bare_m = median(ours), median(bare)
        result.add(f"{name}_reader", ours_m, unit, "local", params=params)
        result.add(f"{name}_bare_chromadb", bare_m, unit, "local", params=params)
        ratio = ours_m / max(bare_m, 1e-9)
        result.add(f"{name}_ratio", ratio, "ratio", "local", params=params)
        result.targets.append(
            TargetResult.check(
                f"reader_{name}",
                f"Reader {name.replace('_', ' ')} <= {TARGETS[name]}x bare chromadb.PersistentClient",
                backend="local",
                op="<=",
                threshold=TARGETS[name],
                value=ratio,
                unit="ratio",
                note=f"medians: reader {ours_m * 1000:.2f} ms, bare {bare_m * 1000:.2f} ms",
            )
        )
