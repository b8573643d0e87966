"""Case: the compactor's ceiling — one snapshot per collection against Lambda's limits.

For each snapshot size in `ceiling` (x `dim`), a compaction of `ceiling_delta` new vectors is measured
warm (snapshot in the compactor's cache) and cold (downloaded and extracted), with the peak RSS of
this process above its level before the compaction (sampled every 20 ms: chromadb's memory is native),
the persist-dir and archive bytes, and the archive's download/extract times. A straight line is
fitted through each measured curve and extrapolated to `ceiling_target` (1,000,000), clearly
labelled as such, and compared with Lambda's limits: 10,240 MB memory, 10,240 MB /tmp, 900 s.
The curve is drawn as an SVG next to the report (`ceiling.svg`).

/tmp of a cold compaction is counted from measured parts: the downloaded archive + the extracted
persist dir (the cache entry the compactor then works in) + the new archive it packs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storekeeper.dev.bench import compactbench as cb
from storekeeper.dev.bench.context import BenchContext
from storekeeper.dev.bench.report import CaseResult, ParamValue, TargetResult
from storekeeper.dev.bench.timing import timed

NAME = "ceiling"
TITLE = "Compactor ceiling: compaction time, memory, /tmp and archive bytes vs snapshot size (Lambda limits)"
LAMBDA_MEMORY_MB = 10_240
LAMBDA_TMP_MB = 10_240
LAMBDA_SECONDS = 900
MB = 1024 * 1024
#: what a 15-minute invocation keeps for everything but the compaction (sweep, publish, retention)
SAFETY = 0.8


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Yields [peak bytes above the starting RSS]; filled when the block ends."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page

    base = rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            stop.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out = [0]
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out[0] = max(0, max(peak[0], rss()) - base)


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a x + b."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return a, my - a * mx


def run(ctx: BenchContext, result: CaseResult) -> None:
    import storekeeper.compaction  # noqa: F401

    s = ctx.sizes
    delta = s.ceiling_delta
    s3 = "seaweedfs" if "seaweedfs" in ctx.backends.available() else None
    result.parameters.update(
        sizes=list(s.ceiling),
        dimension=s.dim,
        delta=delta,
        extrapolated_to=s.ceiling_target,
        backend="local",
        transfer_backend=s3 or "none",
        base_cache=str(ctx.cache_dir) if ctx.cache_dir else "none",
    )
    result.notes.append(cb.cpu_note() + " at the start of the case")
    keys = ("n", "warm", "cold", "mem", "tmp", "archive", "down", "build", "case")
    rows: dict[str, list[float]] = {k: [] for k in keys}
    for n in s.ceiling:
        ctx.log(f"ceiling: {n} x {s.dim}")
        base = cb.base_snapshot(ctx, n)
        with timed() as case_t:
            vals = _measure(ctx, result, n, delta, s3)
        ctx.log(f"ceiling: {n} measured in {case_t.seconds:.0f}s (load {cb.cpu_note()})")
        vals.update(n=n, build=base.build_seconds, case=case_t.seconds)
        built = "chromadb add in max-batch chunks, from empty (summed over cached steps)"
        result.add("base_build_seconds", base.build_seconds, "s", "local", snapshot=n, note=built)
        for k in keys:
            rows[k].append(float(vals[k]))
    _extrapolate(ctx, result, rows)


def _measure(ctx: BenchContext, result: CaseResult, n: int, delta: int, s3: str | None) -> dict[str, float]:
    """Every figure of one snapshot size, all measured; returns the curve's values."""
    costs = cb.archive_costs(ctx, ["local"] + ([s3] if s3 else []), n, single_put=True)
    archive = costs["none"]["archive_bytes"]
    persist = costs["none"]["persist_dir_bytes"]
    down = costs["local"]["archive_download_seconds"] + costs["local"]["archive_extract_seconds"]
    with peak_rss() as mem:
        warm = cb.compaction(ctx, "local", n, delta, "warm", memo=False)
    cold = cb.compaction(ctx, "local", n, delta, "cold", memo=False)
    tmp = 2 * archive + persist
    p: dict[str, ParamValue] = {"snapshot": n, "delta": delta, "kind": "measured"}
    result.add("compaction_warm_seconds", warm.seconds, "s", "local", params=p)
    result.add("compaction_cold_seconds", cold.seconds, "s", "local", params=p)
    result.add("peak_rss_mb", mem[0] / MB, "MB", "local", params=p, note="warm compaction, above the start")
    result.add(
        "tmp_mb", tmp / MB, "MB", "local", params=p, note="cold: download + extracted tree + new archive"
    )
    result.add("archive_mb", archive / MB, "MB", "local", params=p)
    result.add("persist_dir_mb", persist / MB, "MB", "local", params=p)
    result.add("pack_seconds", costs["none"]["archive_pack_seconds"], "s", "local", params=p)
    result.add("download_extract_seconds", down, "s", "local", params=p, note="local disk: no network")
    if s3:
        t = costs[s3]
        parts = int(t.get("archive_upload_parts", 0))
        how = f"multipart, {parts} parts, create-only complete" if parts else "one create-only PUT"
        result.add("archive_upload_seconds", t["archive_upload_seconds"], "s", s3, params=p, note=how)
        result.add(
            "archive_upload_mb_per_s", archive / MB / t["archive_upload_seconds"], "MB/s", s3, params=p
        )
        if "archive_single_put_seconds" in t:
            result.add("archive_single_put_seconds", t["archive_single_put_seconds"], "s", s3, params=p,
                       note="the same archive as one streamed create-only PUT")  # fmt: skip
        result.add("archive_download_seconds", t["archive_download_seconds"], "s", s3, params=p,
                   note="parallel ranged GETs (16 MB, 16 threads)")  # fmt: skip
        result.add(
            "archive_download_mb_per_s", archive / MB / t["archive_download_seconds"], "MB/s", s3, params=p
        )
        result.add("archive_extract_seconds", t["archive_extract_seconds"], "s", s3, params=p)
    return {"warm": warm.seconds, "cold": cold.seconds, "mem": mem[0] / MB, "tmp": tmp / MB,
            "archive": archive / MB, "down": down}  # fmt: skip


def _extrapolate(ctx: BenchContext, result: CaseResult, rows: dict[str, list[float]]) -> None:
    """Lines through the measured points, extrapolated to the target only where it was not measured."""
    s = ctx.sizes
    target = float(s.ceiling_target)
    measured_target = target in rows["n"]
    limits = {"warm": LAMBDA_SECONDS, "cold": LAMBDA_SECONDS, "mem": LAMBDA_MEMORY_MB, "tmp": LAMBDA_TMP_MB}
    units = {"warm": "s", "cold": "s", "mem": "MB", "tmp": "MB", "archive": "MB", "down": "s",
             "build": "s", "case": "s"}  # fmt: skip
    fits: dict[str, tuple[float, float]] = {}
    for k in units:
        a, b = fit(rows["n"], rows[k])
        fits[k] = (a, b)
        if a <= 0 or a * target + b <= 0:
            result.notes.append(f"{k}: no growth measured across {rows['n']}: not extrapolated")
            continue
        if not measured_target:
            result.add(
                f"extrapolated_{k}",
                a * target + b,
                units[k],
                "local",
                snapshot=int(target),
                kind="extrapolated",
                note=f"EXTRAPOLATED: a line through {len(rows['n'])} measured sizes up to "
                f"{int(max(rows['n'])):,} ({k} = {a:.3g} n + {b:.3g})",
            )
        fits_up_to = (SAFETY * limits[k] - b) / a if k in limits else 0.0
        if fits_up_to > 0:
            result.add(
                f"largest_snapshot_by_{k}",
                fits_up_to,
                "vectors",
                "local",
                kind="extrapolated" if fits_up_to > max(rows["n"]) else "interpolated",
                note=f"where {k} reaches {SAFETY:.0%} of Lambda's {limits[k]} {units[k]} "
                "(a line through the measured sizes)",
            )
    # what measuring the target itself would take on this machine: the base built from the largest
    # cached one (the build line's growth) plus the measurements at that size
    if not measured_target and fits["build"][0] > 0 and fits["case"][0] > 0:
        grow = fits["build"][0] * (target - max(rows["n"]))
        run_at_target = grow + fits["case"][0] * target + fits["case"][1]
        result.add("estimated_seconds_to_measure_target", run_at_target, "s", "local", snapshot=int(target),
                   kind="extrapolated", note="build the target base from the largest cached one + warm, cold "
                   "and transfer runs at the target, at this run's load")  # fmt: skip
    if measured_target:
        i = rows["n"].index(target)
        cold_at: float | None = rows["cold"][i]
        how = "measured"
    else:
        cold_at = fits["cold"][0] * target + fits["cold"][1]
        how = "extrapolated"
        if fits["cold"][0] <= 0 or cold_at <= 0:
            cold_at = None  # no growth measured: nothing honest to extrapolate
    result.targets.append(
        TargetResult.check(
            "ceiling_cold_1m",
            f"cold compaction of {s.ceiling_delta} into {int(target)} x {s.dim} fits one Lambda run "
            f"({SAFETY:.0%} of {LAMBDA_SECONDS} s), {how}",
            backend="local",
            op="<=",
            threshold=SAFETY * LAMBDA_SECONDS,
            value=cold_at,
            unit="s",
        )
    )
    out = (ctx.out_dir or Path.cwd()) / "ceiling.svg"
    svg = plot(rows, fits, target)
    try:
        Path(out).write_text(svg)
        result.notes.append(f"plot written to {out}")
    except OSError as exc:
        result.notes.append(f"plot not written: {exc}")


def plot(rows: dict[str, list[float]], fits: dict[str, tuple[float, float]], target: float) -> str:
    """Two panels (seconds; MB) of measured points and dashed extrapolations, with Lambda's limits."""
    w, h, m = 720, 300, 60
    panels = [
        ("compaction seconds (limit 900 s)", ("warm", "cold"), LAMBDA_SECONDS, "s"),
        ("peak memory and /tmp, MB (limits 10,240 MB)", ("mem", "tmp"), LAMBDA_TMP_MB, "MB"),
    ]
    colors = {"warm": "#1f77b4", "cold": "#d62728", "mem": "#2ca02c", "tmp": "#9467bd"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{2 * h}" font-family="sans-serif" '
             'font-size="12">', f'<rect width="{w}" height="{2 * h}" fill="white"/>']  # fmt: skip
    for i, (title, keys, limit, unit) in enumerate(panels):
        top = i * h
        ymax = max(
            [limit * 1.1] + [fits[k][0] * target + fits[k][1] for k in keys] + [max(rows[k]) for k in keys]
        )

        def x(n: float) -> float:
            return m + (w - 2 * m) * n / target

        def y(v: float, top: int = top, ymax: float = ymax) -> float:
            return top + h - m + (-(h - 2 * m) * v / ymax)

        parts.append(f'<text x="{m}" y="{top + 24}" font-weight="bold">{title}</text>')
        parts.append(f'<line x1="{m}" y1="{y(0)}" x2="{w - m}" y2="{y(0)}" stroke="black"/>')
        parts.append(f'<line x1="{m}" y1="{y(0)}" x2="{m}" y2="{y(ymax)}" stroke="black"/>')
        parts.append(f'<line x1="{m}" y1="{y(limit)}" x2="{w - m}" y2="{y(limit)}" stroke="#999" '
                     'stroke-dasharray="2,3"/>')  # fmt: skip
        parts.append(
            f'<text x="{w - m - 120}" y="{y(limit) - 4}" fill="#666">Lambda limit {limit} {unit}</text>'
        )
        for frac in (0, 0.25, 0.5, 0.75, 1.0):
            parts.append(f'<text x="{x(frac * target) - 12}" y="{y(0) + 16}">{int(frac * target):,}</text>')
        parts.append(f'<text x="{m - 50}" y="{y(ymax) + 4}">{ymax:,.0f}</text>')
        for j, k in enumerate(keys):
            a, b = fits[k]
            c = colors[k]
            end = y(a * target + b)
            parts.append(f'<line x1="{x(0)}" y1="{y(b)}" x2="{x(target)}" y2="{end}" stroke="{c}" '
                         'stroke-dasharray="6,4"/>')  # fmt: skip
            for n, v in zip(rows["n"], rows[k], strict=True):
                parts.append(f'<circle cx="{x(n)}" cy="{y(v)}" r="3.5" fill="{c}"/>')
            label = (
                f"{k}: measured (dots), extrapolated (dashes): {a * target + b:,.0f} {unit} at {target:,.0f}"
            )
            parts.append(f'<text x="{m + 10}" y="{top + 44 + 16 * j}" fill="{c}">{label}</text>')
        last = max(rows["n"])
        parts.append(f'<line x1="{x(last)}" y1="{y(0)}" x2="{x(last)}" y2="{y(ymax)}" stroke="#bbb" '
                     'stroke-dasharray="1,3"/>')  # fmt: skip
        parts.append(f'<text x="{x(last) + 4}" y="{y(0) - 6}" fill="#666">measured up to {last:,.0f} | '
                     "extrapolated beyond</text>")  # fmt: skip
        parts.append(f'<text x="{w // 2 - 40}" y="{top + h - 20}">vectors in the snapshot</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
