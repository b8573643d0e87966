"""Case: bytes billed per compaction on a versioned bucket (SeaweedFS, versioning on).

A collection of `versions_snapshot` vectors is compacted `versions_compactions` times (a small delta
each) with the compactor's retention on (newest 2 superseded versions kept, no grace), so every
compaction publishes one archive and retires one. Afterwards, what the bucket bills under `snapshot/`
and `delta/` (current objects and every noncurrent version, from ListObjectVersions) is divided by the
versions still retained: the bytes each compaction leaves billed. Target: <= 1.1x its own archive.
The report also says what a versioning-unaware delete would have left billed (the retired archives).
"""

from __future__ import annotations

from storekeeper.dev.bench import compactbench as cb
from storekeeper.dev.bench.context import BenchContext, CaseSkipped
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.stores.base import ObjectStore

NAME = "versions"
TITLE = "Versioned bucket: bytes billed per compaction, noncurrent versions included"
RATIO_TARGET = 1.1
KEEP = 2
SMALL_DELTA = 100


def run(ctx: BenchContext, result: CaseResult) -> None:
    if "seaweedfs" in ctx.backends.available():
        measure(ctx, result, ctx.backends.store("seaweedfs", "versions"), "seaweedfs")
        return
    result.notes.append("SeaweedFS not in this run: measured on moto in-process (versioning on) instead")
    with ctx.backends.moto_store("versions") as store:
        measure(ctx, result, store, "moto")


def measure(ctx: BenchContext, result: CaseResult, store: ObjectStore, backend: str) -> None:
    from storekeeper.compaction import compact
    from storekeeper.snapshots import SnapshotCache

    s = ctx.sizes
    client = getattr(store, "client", None)
    if client is None:
        raise CaseSkipped("not an S3 store")
    client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})
    if not store.versioned:
        raise RuntimeError(f"{backend} bucket does not report versioning Enabled")
    c = "versions"
    cache = SnapshotCache(ctx.scratch("versions-cache"))
    result.parameters.update(
        snapshot=s.versions_snapshot,
        compactions=s.versions_compactions,
        keep_versions=KEEP,
        delta=SMALL_DELTA,
    )
    ctx.log(f"versions: first compaction of {s.versions_snapshot} vectors on a versioned SeaweedFS bucket")
    cb.write_deltas(ctx, store, c, s.versions_snapshot, seed=7, chunk=s.delta_chunk)
    first = compact(store, c, cache=cache, keep_versions=KEEP, retention_grace_s=0, max_deltas=10_000)
    archives = {str(first.version): int(first.size or 0)}
    retired = 0
    for i in range(s.versions_compactions):
        cb.write_deltas(ctx, store, c, SMALL_DELTA, seed=100 + i, chunk=SMALL_DELTA)
        r = compact(store, c, cache=cache, keep_versions=KEEP, retention_grace_s=0)
        if r.status != "published":
            raise RuntimeError(f"versions: compaction {i + 1} ended {r.status}")
        archives[str(r.version)] = int(r.size or 0)
        retired += len(r.retired)
    live = {v.key.split("/")[2] for v in store.list_versions(f"snapshot/{c}/") if v.is_latest}
    live.discard("latest")
    snap, deltas = store.usage("snapshot/"), store.usage("delta/")
    billed = snap.billed_bytes + deltas.billed_bytes
    kept_archives = [archives[v] for v in live if v in archives]
    if not kept_archives:
        raise RuntimeError(f"versions: no retained version found among {sorted(live)}")
    per = billed / len(kept_archives)
    mean_archive = sum(kept_archives) / len(kept_archives)
    ratio = per / mean_archive
    gone = [size for v, size in archives.items() if v not in live]
    p = {"compactions": s.versions_compactions + 1, "retained": len(kept_archives)}
    noncurrent = snap.noncurrent_bytes + deltas.noncurrent_bytes
    old_versions = snap.noncurrent_versions + deltas.noncurrent_versions
    markers = snap.delete_markers + deltas.delete_markers
    b = backend
    result.add("archive_bytes", mean_archive, "bytes", b, params=p, note="mean of the retained archives")
    result.add("billed_bytes", billed, "bytes", b, params=p, note="snapshot/ + delta/, every version")
    result.add("billed_per_compaction_vs_archive", ratio, "ratio", b, params=p)
    result.add(
        "unaware_would_bill_bytes",
        billed + sum(gone),
        "bytes",
        b,
        params=p,
        note=f"{len(gone)} retired archive(s) a plain delete would leave noncurrent (general 30-day rule)",
    )
    if noncurrent:
        result.add("noncurrent_bytes", noncurrent, "bytes", b, params=p, note=f"{old_versions} version(s)")
    result.notes.append(
        f"{backend}: {retired} archive(s) retired by retention and purged; left under snapshot/ + delta/: "
        f"{old_versions} noncurrent version(s) ({noncurrent} bytes: the pointer's overwritten versions), "
        f"{markers} delete marker(s)"
    )
    result.targets.append(
        TargetResult.check(
            "versions_billed",
            f"bytes billed per compaction (noncurrent included, retention + cleanup run) <= {RATIO_TARGET}x "
            f"its archive, versioned {backend} bucket",
            backend=backend,
            op="<=",
            threshold=RATIO_TARGET,
            value=ratio,
            unit="ratio",
        )
    )
