"""Shared machinery of the compaction cases: base snapshots, the raw chromadb baseline, timed compactions.

The raw baseline and the compaction start from the same persist directory and
apply the same records, so their ratio is the overhead storekeeper adds
(load, archive, upload, publish) over the chromadb work it cannot avoid.
Measurements are memoised in the run's context, so the scaling case reuses the
points the compaction case already measured.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storekeeper.dev.bench import data
from storekeeper.dev.bench.context import BenchContext
from storekeeper.dev.bench.timing import timed
from storekeeper.stores.base import ObjectStore

DISTANCE = "l2"
BASE_SEED = 1
DELTA_SEED = 2
#: base records generated per numpy draw (each draw seeded by its start: any prefix is reproducible)
BASE_STEP = 10_000


def collection_for(n: int) -> str:
    return f"base{n}"


@dataclass(frozen=True)
class BaseSnapshot:
    n: int
    collection: str
    path: Path  # pristine persist dir: copied, never opened in place
    build_seconds: float


@dataclass
class Published:
    """A base snapshot published in one store, and the version to roll the pointer back to."""

    store: ObjectStore
    collection: str
    version: str | None
    n: int


@dataclass
class CompactionRun:
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    record_count: int = 0
    deltas: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    archive_bytes: int = 0  # size of the version this compaction published (from its manifest)


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def _delta_records(ctx: BenchContext, count: int, seed: int) -> tuple[list[str], Any, list[Any]]:
    """The records a measurement upserts: new ids (so every upsert grows the collection)."""
    return (
        data.ids(f"d{seed}", count),
        data.vectors(count, ctx.sizes.dim, seed),
        data.metadatas(count),
    )


def base_snapshot(ctx: BenchContext, n: int) -> BaseSnapshot:
    """A persist dir with `n` vectors, built once per run with the plain chromadb client.

    With `ctx.cache_dir` the tree is kept across runs (the records are fixed by their seeds, so a
    cached tree holds exactly what a fresh build would): a size already built is reused as is,
    and a larger one starts from a copy of the largest smaller one and adds only the rest.
    """

    def build() -> BaseSnapshot:
        c = collection_for(n)
        if ctx.cache_dir is None:
            path = ctx.scratch(f"base-{n}") / "tree"
            ctx.log(f"building a {n}-vector base snapshot (once per run)")
            with timed() as t:
                _fill(ctx, path, c, 0, n)
            return BaseSnapshot(n, c, path, t.seconds)
        return _cached_base(ctx, n)

    snap: BaseSnapshot = ctx.once(("base", n), build)
    return snap


def _fill(ctx: BenchContext, path: Path, collection: str, start: int, n: int) -> None:
    """Add records `start`..`n` of the base data set to the collection in `path` (created if new)."""
    from storekeeper import chroma

    with chroma.persistent_client(path) as client:
        col = chroma.get_or_create(client, collection, DISTANCE)
        batch = min(ctx.sizes.chroma_batch, int(client.get_max_batch_size()))
        for lo in range(start, n, BASE_STEP):
            k = min(BASE_STEP, n - lo)
            vecs = data.vectors(k, ctx.sizes.dim, BASE_SEED * 1_000_003 + lo)
            ids, metas = data.ids("base", k, lo), data.metadatas(k, lo)
            for i in range(0, k, batch):
                col.add(
                    ids=ids[i : i + batch], embeddings=vecs[i : i + batch], metadatas=metas[i : i + batch]
                )
        if int(col.count()) != n:
            raise RuntimeError(f"base snapshot {collection}: built {col.count()} vectors, expected {n}")


def _cached_base(ctx: BenchContext, n: int) -> BaseSnapshot:
    """The `n` base from `ctx.cache_dir`, built there first when missing (atomically: temp + rename)."""
    import json
    import uuid

    assert ctx.cache_dir is not None
    root = Path(ctx.cache_dir)
    c = collection_for(n)
    final = root / _cache_name(ctx, n)
    marker = final / "built.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        ctx.log(f"base snapshot of {n} reused from {final}")
        return BaseSnapshot(n, c, final / "tree", float(info["build_seconds"]))
    # only sizes on a draw boundary: records start..n then come from the same seeded draws as a fresh build
    smaller = [m for m in _cached_sizes(ctx, root) if m < n and m % BASE_STEP == 0]
    tmp = root / f".building-{n}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        with timed() as t:
            start, from_seconds = 0, 0.0
            if smaller:
                start = max(smaller)
                prev = root / _cache_name(ctx, start)
                ctx.log(f"building a {n}-vector base snapshot from the cached {start} (adds {n - start})")
                shutil.copytree(prev / "tree", tmp / "tree")
                from_seconds = float(json.loads((prev / "built.json").read_text())["build_seconds"])
                _rename_collection(tmp / "tree", collection_for(start), c)
            else:
                ctx.log(f"building a {n}-vector base snapshot into the cache {root}")
            _fill(ctx, tmp / "tree", c, start, n)
        info = {"n": n, "dim": ctx.sizes.dim, "seed": BASE_SEED, "from": start,
                "build_seconds": from_seconds + t.seconds, "this_step_seconds": t.seconds}  # fmt: skip
        (tmp / "built.json").write_text(json.dumps(info))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BaseSnapshot(n, c, final / "tree", float(info["build_seconds"]))


def _cache_name(ctx: BenchContext, n: int) -> str:
    return f"base-d{ctx.sizes.dim}-s{BASE_SEED}-n{n}"


def _cached_sizes(ctx: BenchContext, root: Path) -> list[int]:
    prefix = f"base-d{ctx.sizes.dim}-s{BASE_SEED}-n"
    if not root.is_dir():
        return []
    return [
        int(p.name[len(prefix) :])
        for p in root.iterdir()
        if p.name.startswith(prefix) and p.name[len(prefix) :].isdigit() and (p / "built.json").exists()
    ]


def _rename_collection(path: Path, old: str, new: str) -> None:
    """A copied base keeps its collection; the larger base is named for its own size."""
    from storekeeper import chroma

    with chroma.persistent_client(path) as client:
        col = chroma.get(client, old)
        col.modify(name=chroma.chroma_name(new), metadata={chroma.COLLECTION_KEY: new})


def raw_upsert(ctx: BenchContext, n: int, count: int) -> float:
    """Seconds for a bare PersistentClient to open a copy of the `n` base, upsert `count` vectors, close."""

    def measure() -> float:
        import chromadb

        base = base_snapshot(ctx, n)
        work = ctx.scratch(f"raw-{n}-{count}") / "tree"
        shutil.copytree(base.path, work)
        ids, vecs, metas = _delta_records(ctx, count, DELTA_SEED)
        from storekeeper.chroma import chroma_name

        # timed from opening the persist dir to closing it: a compactor pays both too
        with timed() as t:
            client: Any = chromadb.PersistentClient(path=str(work), settings=_settings())
            try:
                col = client.get_collection(chroma_name(base.collection), embedding_function=None)
                batch = int(client.get_max_batch_size())
                for i in range(0, count, batch):
                    col.upsert(
                        ids=ids[i : i + batch], embeddings=vecs[i : i + batch], metadatas=metas[i : i + batch]
                    )
                got = int(col.count())
            finally:
                client.close()
        shutil.rmtree(work.parent, ignore_errors=True)
        if got != n + count:
            raise RuntimeError(f"raw chromadb upsert: collection has {got} vectors, expected {n + count}")
        return t.seconds

    seconds: float = ctx.once(("raw", n, count), measure)
    return seconds


def published_base(ctx: BenchContext, backend: str, n: int) -> Published:
    """The `n` base snapshot packed and published in a store of `backend` (once per run)."""

    def publish_it() -> Published:
        from storekeeper import snapshots

        store = ctx.backends.store(backend, f"compaction-{n}")
        c = collection_for(n)
        if n == 0:
            return Published(store, c, None, 0)
        base = base_snapshot(ctx, n)
        version = snapshots.new_version(None)
        archive = ctx.scratch(f"archive-{backend}-{n}") / snapshots.ARCHIVE_NAME
        snapshots.pack_archive(base.path, archive)
        snapshots.write_snapshot(
            store,
            collection=c,
            version=version,
            parent=None,
            archive=archive,
            dimension=ctx.sizes.dim,
            distance=DISTANCE,
            record_count=n,
            deltas=[],
            applied=[],
        )
        snapshots.publish(store, c, version, None)
        shutil.rmtree(archive.parent, ignore_errors=True)
        return Published(store, c, version, n)

    pub: Published = ctx.once(("published", backend, n), publish_it)
    return pub


def _reset(pub: Published) -> str:
    """Point `latest` back at the base version (a conditional write, like any publish); returns c.

    For the empty base there is no pointer to roll back to, so each run gets a
    fresh collection name instead.
    """
    from storekeeper import snapshots

    if pub.version is None:
        return f"empty{time.time_ns() % 10**12}"
    version, etag = snapshots.read_pointer(pub.store, pub.collection)
    if version != pub.version:
        snapshots.publish(pub.store, pub.collection, pub.version, etag)
    return pub.collection


def write_deltas(
    ctx: BenchContext, store: ObjectStore, collection: str, count: int, seed: int, chunk: int
) -> int:
    """`count` upserts as deltas of `chunk` records, the way producers write them; returns how many."""
    from datetime import UTC, datetime

    from storekeeper import deltas

    ids, vecs, metas = _delta_records(ctx, count, seed)
    made = 0
    for i in range(0, count, chunk):
        content = deltas.DeltaContent(
            collection=collection,
            delta_id=deltas.new_delta_id(),
            created_at=datetime.now(UTC),
            ids=ids[i : i + chunk],
            embeddings=vecs[i : i + chunk],
            metadatas=list(metas[i : i + chunk]),
            documents=[None] * len(ids[i : i + chunk]),
        )
        deltas.write_delta(store, content)
        made += 1
    return made


def compaction(
    ctx: BenchContext,
    backend: str,
    n: int,
    count: int,
    mode: str,
    *,
    seed: int = DELTA_SEED,
    chunk: int | None = None,
    memo: bool = True,
    reset: bool = True,
    expect_records: int | None = None,
) -> CompactionRun:
    """One timed `compact()` of `count` vectors into the `n` base on `backend`.

    `mode` "warm": the base is already in the compactor's cache (a warm Lambda);
    "cold": an empty cache, so the archive is downloaded and extracted (a cold one).
    `reset=False` compacts on top of whatever is published now (a history of compactions).
    """

    def measure() -> CompactionRun:
        from storekeeper.compaction import compact
        from storekeeper.snapshots import SnapshotCache, load_manifest

        pub = published_base(ctx, backend, n)
        c = _reset(pub) if reset else pub.collection
        cache_dir = ctx.workdir / f"cache-{backend}" if mode == "warm" else ctx.scratch(f"cold-{backend}")
        cache = SnapshotCache(cache_dir)
        if mode == "warm" and pub.version is not None and reset:
            cache.fetch(pub.store, load_manifest(pub.store, c, pub.version))  # untimed: the warm start
        made = write_deltas(ctx, pub.store, c, count, seed, chunk or ctx.sizes.delta_chunk)
        marks: dict[str, float] = {}
        start = time.perf_counter()

        def hook(step: str) -> None:
            marks.setdefault(step, time.perf_counter() - start)

        pub.store.requests.reset()
        with timed() as t:
            result = compact(pub.store, c, cache=cache, hooks=hook, max_deltas=max(made, 1))
        expected = n + count if expect_records is None else expect_records
        if result.status != "published" or result.record_count != expected or len(result.applied) != made:
            raise RuntimeError(
                f"compaction of {count} into {n} on {backend}: status {result.status}, "
                f"{result.record_count} records (expected {expected}), {len(result.applied)}/{made} deltas"
            )
        if mode != "warm":
            shutil.rmtree(cache_dir, ignore_errors=True)
        requests = dict(pub.store.requests.counts)  # read before the manifest read below adds to it
        manifest = load_manifest(pub.store, c, str(result.version))
        return CompactionRun(
            t.seconds, _phases(marks, t.seconds), int(result.record_count or 0), made, requests, manifest.size
        )

    if not memo:
        return measure()
    run: CompactionRun = ctx.once(("compaction", backend, n, count, mode, seed), measure)
    return run


def _phases(marks: dict[str, float], total: float) -> dict[str, float]:
    """Split the total at the compactor's hooks: load, apply+archive, upload, publish, cleanup."""
    load = marks.get("after_download", 0.0)
    uploaded = marks.get("after_archive_upload", load)
    manifest = marks.get("after_manifest", uploaded)
    published = marks.get("after_pointer_write", manifest)
    return {
        "load": load,
        "apply_and_archive_and_upload": uploaded - load,
        "manifest_and_publish": published - uploaded,
        "cleanup": total - published,
    }


def cpu_note() -> str:
    return f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def archive_costs(
    ctx: BenchContext, backends: list[str], n: int, *, single_put: bool = False
) -> dict[str, dict[str, float]]:
    """What the snapshot's bytes cost apart from chromadb: pack, upload, download, extract.

    The compactor's hooks cannot split "apply" from "pack + upload"; timing the same
    steps (the same `snapshots` functions) on the base snapshot can. The upload is the
    compactor's (create-only; multipart past the threshold: the parts are counted); with
    `single_put`, S3 backends also time one streamed create-only PUT of the same archive.
    """
    from storekeeper import snapshots

    base = base_snapshot(ctx, n)
    work = ctx.scratch(f"archive-cost-{n}")
    archive = work / snapshots.ARCHIVE_NAME
    with timed() as pack:
        _, size = snapshots.pack_archive(base.path, archive)
    out: dict[str, dict[str, float]] = {
        "none": {
            "persist_dir_bytes": tree_bytes(base.path),
            "archive_bytes": size,
            "archive_pack_seconds": pack.seconds,
        }
    }
    name = snapshots.ARCHIVE_NAME  # its suffix says how it is compressed
    for backend in backends:
        store = ctx.backends.store(backend, f"archive-{n}")
        key = f"snapshot/x/{time.time_ns()}/{name}"
        store.requests.reset()
        with timed() as up:  # the compactor's upload: create-only, from the file
            store.put_file(key, archive, if_none_match=True)
        parts = store.requests.counts.get("upload_part", 0)
        with timed() as down:
            store.get_file(key, work / f"{backend}-{name}")
        tree = work / f"{backend}-tree"
        tree.mkdir()
        with timed() as extract:
            snapshots.safe_extract(work / f"{backend}-{name}", tree)
        out[backend] = {
            "archive_upload_seconds": up.seconds,
            "archive_download_seconds": down.seconds,
            "archive_extract_seconds": extract.seconds,
        }
        if parts:  # it went up multipart
            out[backend]["archive_upload_parts"] = parts
            if single_put:  # time one PUT of it too
                out[backend]["archive_single_put_seconds"] = _single_put_seconds(store, archive, name)
        shutil.rmtree(tree, ignore_errors=True)
        (work / f"{backend}-{name}").unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _single_put_seconds(store: ObjectStore, archive: Path, name: str) -> float:
    """One streamed create-only PUT of `archive` (the multipart threshold raised past its size)."""
    from storekeeper.stores import multipart

    old = os.environ.get(multipart.THRESHOLD_ENV)
    os.environ[multipart.THRESHOLD_ENV] = str(archive.stat().st_size // multipart.MiB + 1024)
    try:
        with timed() as t:
            store.put_file(f"snapshot/x/{time.time_ns()}/{name}", archive, if_none_match=True)
    finally:
        if old is None:
            os.environ.pop(multipart.THRESHOLD_ENV, None)
        else:
            os.environ[multipart.THRESHOLD_ENV] = old
    return t.seconds
