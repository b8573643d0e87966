"""Case 1: compaction vs the raw limit — the full compactor against bare chromadb upserts.

For each starting snapshot size, the same new vectors are upserted by a bare
`chromadb.PersistentClient` into a copy of the snapshot's persist dir (the raw
limit), and compacted by `storekeeper.compaction.compact` from deltas in a store
(load, apply, archive, upload, publish, remove deltas), warm (snapshot in the
compactor's cache) and cold (downloaded and extracted).
"""

from __future__ import annotations

from storekeeper.dev.bench import compactbench as cb
from storekeeper.dev.bench.context import BenchContext, CaseSkipped
from storekeeper.dev.bench.report import CaseResult, ParamValue, TargetResult
from storekeeper.dev.bench.timing import rate

NAME = "compaction"
TITLE = "Compaction vs raw chromadb upsert (warm and cold)"
RATIO_TARGET = 1.2


def run(ctx: BenchContext, result: CaseResult) -> None:
    import storekeeper.compaction  # noqa: F401  (skip the case cleanly if the compactor is missing)

    sizes = ctx.sizes
    backends = ctx.backends.available()
    if not backends:
        raise CaseSkipped("no backend available")
    result.parameters.update(
        dimension=sizes.dim,
        delta_vectors=sizes.delta,
        vectors_per_delta=sizes.delta_chunk,
        snapshots=list(sizes.snapshots),
        cold_snapshots=list(sizes.cold),
        backends=backends,
        distance=cb.DISTANCE,
    )
    result.notes.append(cb.cpu_note() + " at the start of the case")
    count = sizes.delta
    for n in sizes.snapshots:
        if n:
            base = cb.base_snapshot(ctx, n)
            result.add(
                "base_build_seconds",
                base.build_seconds,
                "s",
                "chromadb",
                snapshot=n,
                note="chromadb add() of the base snapshot, once per run",
            )
        raw = cb.raw_upsert(ctx, n, count)
        result.add("raw_upsert_seconds", raw, "s", "chromadb", snapshot=n, delta=count)
        result.add("raw_upsert_rate", rate(count, raw), "vectors/s", "chromadb", snapshot=n, delta=count)
        for backend in backends:
            for mode in ("empty",) if not n else ("warm", "cold") if n in sizes.cold else ("warm",):
                ctx.log(f"compaction: {count} into {n} on {backend} ({mode})")
                run_ = cb.compaction(ctx, backend, n, count, "warm" if mode == "empty" else mode)
                p: dict[str, ParamValue] = {"snapshot": n, "delta": count, "mode": mode}
                result.add("compaction_seconds", run_.seconds, "s", backend, params=p)
                result.add("compaction_rate", rate(count, run_.seconds), "vectors/s", backend, params=p)
                result.add("compaction_vs_raw", run_.seconds / raw, "ratio", backend, params=p)
                result.add(
                    "compaction_requests",
                    sum(run_.requests.values()),
                    "requests",
                    backend,
                    params=p,
                    note=", ".join(f"{k} {v}" for k, v in sorted(run_.requests.items())),
                )
                for phase, sec in run_.phases.items():
                    result.add("compaction_phase_seconds", sec, "s", backend, phase=phase, params=p)
    top = max(sizes.snapshots)
    ctx.log(f"compaction: archive costs of the {top} snapshot")
    for backend, costs in cb.archive_costs(ctx, backends, top).items():
        for name, value in costs.items():
            unit = "bytes" if name.endswith("bytes") else "parts" if name.endswith("parts") else "s"
            result.add(
                name,
                value,
                unit,
                backend,
                snapshot=top,
                note="the snapshot's bytes without chromadb: the part of a compaction that is not apply",
            )
    for backend in backends:
        fig = result.find("compaction_vs_raw", backend, snapshot=top, mode="warm")
        result.targets.append(
            TargetResult.check(
                f"compaction_ratio_{backend}",
                f"warm compaction of {count} into {top} <= {RATIO_TARGET}x raw chromadb upsert",
                backend=backend,
                op="<=",
                threshold=RATIO_TARGET,
                value=fig.value if fig else None,
                unit="ratio",
            )
        )
