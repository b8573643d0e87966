"""Case 2: how compaction time scales — with snapshot size, delta size, and compactions already done.

Snapshot-size points reuse the warm compactions case 1 measured in the same run
(same data, same seeds); the delta-size axis compacts deltas of growing size into
one snapshot; the history axis runs small compactions one after another on the
same collection and times the 1st, 5th and 10th, to show the cost does not grow
with the number of versions, deltas or ledger entries behind it.
"""

from __future__ import annotations

from storekeeper.dev.bench import compactbench as cb
from storekeeper.dev.bench.context import BenchContext, CaseSkipped
from storekeeper.dev.bench.report import CaseResult, ParamValue
from storekeeper.dev.bench.timing import rate

NAME = "scaling"
TITLE = "Compaction scaling: snapshot size, delta size, history"
HISTORY_SEED = 1000


def _snapshot_axis(ctx: BenchContext, result: CaseResult, backend: str) -> None:
    count = ctx.sizes.delta
    for n in ctx.sizes.snapshots:
        r = cb.compaction(ctx, backend, n, count, "warm")
        p: dict[str, ParamValue] = {"axis": "snapshot", "snapshot": n, "delta": count, "mode": "warm"}
        result.add("compaction_seconds", r.seconds, "s", backend, params=p)
        result.add("compaction_rate", rate(count, r.seconds), "vectors/s", backend, params=p)


def _delta_axis(ctx: BenchContext, result: CaseResult, backend: str) -> None:
    n = ctx.sizes.delta_scale_snapshot
    for count in ctx.sizes.delta_scale:
        ctx.log(f"scaling: {count} into {n} on {backend}")
        r = cb.compaction(ctx, backend, n, count, "warm")
        p: dict[str, ParamValue] = {"axis": "delta", "snapshot": n, "delta": count, "mode": "warm"}
        result.add("compaction_seconds", r.seconds, "s", backend, params=p)
        result.add("compaction_rate", rate(count, r.seconds), "vectors/s", backend, params=p)


def _history_axis(ctx: BenchContext, result: CaseResult, backend: str) -> None:
    n, step, marks = ctx.sizes.delta_scale_snapshot, ctx.sizes.history_delta, ctx.sizes.history
    if n == 0:
        raise CaseSkipped("the history axis needs a non-empty base snapshot")
    ctx.log(f"scaling: {max(marks)} compactions of {step} in a row on {backend}")
    times: dict[int, float] = {}
    sizes: dict[int, int] = {}
    for k in range(1, max(marks) + 1):
        r = cb.compaction(
            ctx,
            backend,
            n,
            step,
            "warm",
            seed=HISTORY_SEED + k,
            memo=False,
            reset=k == 1,
            expect_records=n + k * step,
        )
        times[k], sizes[k] = r.seconds, r.archive_bytes
    for k in marks:
        p: dict[str, ParamValue] = {"axis": "history", "snapshot": n, "delta": step, "nth": k}
        result.add("compaction_seconds", times[k], "s", backend, params=p)
        result.add(
            "archive_bytes",
            sizes[k],
            "bytes",
            backend,
            params=p,
            note="size of the version this compaction published: does the snapshot carry its history?",
        )
    last, first = times[max(marks)], times[min(marks)]
    result.add(
        "history_growth",
        last / first,
        "ratio",
        backend,
        params={"axis": "history", "nth": f"{max(marks)}/{min(marks)}"},
        note="time of the last over the first compaction; ~1 means no growth with history",
    )


def run(ctx: BenchContext, result: CaseResult) -> None:
    import storekeeper.compaction  # noqa: F401  (skip cleanly if the compactor is missing)

    s = ctx.sizes
    backends = ctx.backends.available()
    result.parameters.update(
        snapshots=list(s.snapshots),
        snapshot_axis_delta=s.delta,
        delta_scale=list(s.delta_scale),
        delta_scale_snapshot=s.delta_scale_snapshot,
        history=list(s.history),
        history_delta=s.history_delta,
        backends=backends,
    )
    for backend in backends:
        _snapshot_axis(ctx, result, backend)
        _delta_axis(ctx, result, backend)
        _history_axis(ctx, result, backend)
    if len(s.snapshots) < 2:
        return
    top, mid = max(s.snapshots), sorted(s.snapshots)[-2]
    for backend in backends:
        a = result.find("compaction_seconds", backend, axis="snapshot", snapshot=mid)
        b = result.find("compaction_seconds", backend, axis="snapshot", snapshot=top)
        if a and b and mid:
            result.add(
                "snapshot_growth",
                b.value / a.value,
                "ratio",
                backend,
                params={"axis": "snapshot", "sizes": f"{top}/{mid}"},
                note=f"time ratio for a {top / mid:.0f}x larger snapshot",
            )
