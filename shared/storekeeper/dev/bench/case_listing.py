"""Case: reaper planning at S3 scale — parallel listing behind S3's round trip, and an S3 Inventory.

1. SeaweedFS behind a loopback proxy that adds `listing_delay` (100 ms) to every request, so a
   listing costs what it costs against AWS: n objects in `listing_prefixes` prefixes. Side by side in
   one run: a bare sequential `ListObjectsV2` pass over the keys, and the reaper's dry run (parallel
   listing + planning). Target: the dry run <= 0.5x the bare listing. The report's listing summary
   says how many requests the plan took against the sequential minimum.
2. An S3 Inventory report of `inventory_objects` rows in `inventory_files` gzip CSV files (AWS's
   layout, URL-encoded keys). Side by side: a bare Python `csv` pass over the same files, and the
   reaper's dry run planning from the report. Target: <= 3x the bare pass.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import importlib
import io
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storekeeper.dev.bench.case_reaper import POLICIES
from storekeeper.dev.bench.context import BenchContext, CaseSkipped
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.dev.bench.timing import rate, timed
from storekeeper.stores.base import ObjectStore

NAME = "listing"
TITLE = "Reaper planning at S3 scale: parallel listing behind a 100 ms link, and from an S3 Inventory"
PROXY_RATIO_TARGET = 0.5
INVENTORY_RATIO_TARGET = 3.0
PREFIX = "bench/"


def _keys(n: int, prefixes: int) -> list[str]:
    return [f"{PREFIX}p{i % prefixes:03d}/obj-{i:07d}.bin" for i in range(n)]


def _put_all(endpoint: str, access: str, secret: str, bucket: str, keys: list[str]) -> int:
    """One process's share of the set-up: bare put_object calls from 32 threads."""
    import boto3
    from botocore.config import Config

    cfg = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5})
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
        region_name="us-east-1", config=cfg,
    )  # fmt: skip
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x" * 16), keys))
    return len(keys)


def _fill(server: Any, bucket: str, keys: list[str]) -> float:
    """Create the objects in parallel processes (boto3's per-request CPU is the limit, not the
    server): the set-up of 40,000 objects must not be what the case spends its time on."""
    procs = max(2, min(4, os.cpu_count() or 1))
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
    args = (server.endpoint_url, server.access_key, server.secret_key, bucket)
    with timed() as t, ProcessPoolExecutor(max_workers=procs, mp_context=ctx) as pool:
        done = sum(pool.map(_put_all, *zip(*[(*args, keys[i::procs]) for i in range(procs)], strict=True)))
    if done != len(keys):
        raise RuntimeError(f"listing: created {done} of {len(keys)} objects")
    return t.seconds


def _plan(store: ObjectStore, n: int, workers: int, **kw: Any) -> tuple[Any, float, float]:
    from storekeeper import reaper
    from storekeeper.policies.model import parse_policies

    # imported before the clock starts, as in a warm reaper: imports are the cold-start case's figure
    for module in ("storekeeper.policies.fastpath", "storekeeper.stores.inventory"):
        importlib.import_module(module)

    policies = parse_policies(
        POLICIES.format(n=n, prefix=PREFIX, store=f"{{list_workers: {workers}}}"), "<bench>"
    )
    now = datetime.now(UTC) + timedelta(hours=2)
    cpu = time.process_time()
    with timed() as t:
        report = reaper.run(
            policies=policies, stores={"main": store}, apply=False, now=now, write_report=False, **kw
        )
    return report, t.seconds, time.process_time() - cpu


def proxied_listing(ctx: BenchContext, result: CaseResult) -> None:
    from storekeeper.dev.bench.latency_proxy import latency_proxy
    from storekeeper.policies.access import Access
    from storekeeper.stores.base import RequestCounter
    from storekeeper.stores.s3 import S3Store

    sizes = ctx.sizes
    n, prefixes, delay = sizes.listing_objects, sizes.listing_prefixes, sizes.listing_delay
    if "seaweedfs" not in ctx.backends.available():
        raise CaseSkipped("SeaweedFS is not available")
    server = ctx.backends._server("seaweedfs")
    direct = ctx.backends.store("seaweedfs", "listing")
    ctx.log(f"listing: creating {n} objects in {prefixes} prefixes on SeaweedFS")
    setup = _fill(server, direct.bucket, _keys(n, prefixes))
    p = {"objects": n, "prefixes": prefixes, "delay_ms": round(delay * 1000)}
    result.add("setup_seconds", setup, "s", "seaweedfs", params=p, note="creating the objects (not measured)")
    with latency_proxy(server.endpoint_url, delay) as proxy:
        client = dataclasses.replace(server, endpoint_url=proxy.url).client(
            "s3", max_pool_connections=sizes.listing_workers * 2
        )
        store = S3Store(direct.bucket, client=client, counter=RequestCounter())
        # sequential, resuming after the last key if the loaded link drops a page (as planning does)
        resumable = Access(rate=1000.0, retries=5)
        with timed() as lt:
            listed = sum(1 for _ in resumable.list(store, PREFIX))
        if listed != n:
            raise RuntimeError(f"listing: listed {listed} of {n}")
        bare_requests = store.requests.total()
        store.requests.reset()
        report, seconds, cpu = _plan(store, n, sizes.listing_workers)
        planned = sum(len(t.keys) for t in report.tasks)
        if planned != n or report.errors:
            raise RuntimeError(f"listing: planned {planned} of {n}; errors {report.errors[:3]}")
    (li,) = report.listings
    ratio = seconds / max(lt.seconds, 1e-6)
    ctx.log(f"listing: bare {lt.seconds:.2f} s, dry run {seconds:.2f} s ({ratio:.2f}x); {li}")
    result.add(
        "bare_list_seconds", lt.seconds, "s", "seaweedfs+proxy", params=p, note="sequential ListObjectsV2"
    )
    result.add("bare_list_requests", bare_requests, "requests", "seaweedfs+proxy", params=p)
    result.add(
        "plan_seconds", seconds, "s", "seaweedfs+proxy", params=p, note="reaper dry run, parallel listing"
    )
    result.add("plan_cpu_seconds", cpu, "s", "seaweedfs+proxy", params=p, note="this process's CPU time")
    result.add("plan_vs_bare_list", ratio, "ratio", "seaweedfs+proxy", params=p)
    result.add("plan_rate", rate(n, seconds), "objects/s", "seaweedfs+proxy", params=p)
    result.add(
        "plan_list_requests",
        li.requests,
        "requests",
        "seaweedfs+proxy",
        params=p,
        note=f"sequential minimum {li.sequential_minimum}; {li.ranges} ranges in parallel "
        f"({sizes.listing_workers} workers), {li.split_requests} delimiter requests to split",
    )
    result.targets.append(
        TargetResult.check(
            "listing_proxy",
            f"dry run over {n} objects in {prefixes} prefixes behind +{delay * 1000:.0f} ms per request "
            f"<= {PROXY_RATIO_TARGET}x a bare sequential listing",
            backend="seaweedfs+proxy",
            op="<=",
            threshold=PROXY_RATIO_TARGET,
            value=ratio,
            unit="ratio",
        )
    )


def write_inventory(root: Path, bucket: str, n: int, files: int) -> Path:
    """An S3 Inventory report in AWS's layout; keys URL-encoded (a space in every key)."""
    base = root / bucket / "bench-inventory"
    (base / "data").mkdir(parents=True)
    schema = "Bucket, Key, Size, LastModifiedDate, ETag, IsLatest, IsDeleteMarker"
    when = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    per = math.ceil(n / files)
    entries = []
    for f in range(files):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for i in range(f * per, min(n, (f + 1) * per)):
            w.writerow(
                [bucket, f"{PREFIX}p{i % 97:03d}/obj+{i:07d}.bin", "16", when, f"e{i:x}", "true", "false"]
            )
        body = gzip.compress(buf.getvalue().encode(), compresslevel=6)
        name = f"{f:02d}.csv.gz"
        (base / "data" / name).write_bytes(body)
        entries.append({"key": f"inv/{bucket}/bench-inventory/data/{name}", "size": len(body),
                        "MD5checksum": hashlib.md5(body, usedforsecurity=False).hexdigest()})  # fmt: skip
    day = base / "2030-01-01T00-00Z"
    day.mkdir()
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::inventory-dest",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": entries,
    }
    (day / "manifest.json").write_text(json.dumps(manifest))
    return day / "manifest.json"


def bare_csv_pass(manifest: Path) -> tuple[int, float, float]:
    """Rows, wall seconds and CPU seconds of gzip + csv.reader over the report's files."""
    data = manifest.parent.parent / "data"
    rows = 0
    cpu = time.process_time()
    with timed() as t:
        for path in sorted(data.glob("*.csv.gz")):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
                for _ in csv.reader(fh):
                    rows += 1
    return rows, t.seconds, time.process_time() - cpu


def reset_peak_rss() -> int | None:
    """Linux: reset this process's peak RSS (VmHWM) to its current RSS, returned in bytes (None where
    /proc does not allow it)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return proc_status_bytes("VmRSS")


def proc_status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status in bytes (None when there is none)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def inventory_planning(ctx: BenchContext, result: CaseResult) -> None:
    from storekeeper.stores.local import LocalStore

    n, files = ctx.sizes.inventory_objects, ctx.sizes.inventory_files
    scratch = ctx.scratch("inventory")
    store = LocalStore(scratch / "bucket")
    ctx.log(f"listing: writing an inventory of {n} objects in {files} files")
    manifest = write_inventory(scratch / "reports", store.bucket, n, files)
    rows, bare, bare_cpu = bare_csv_pass(manifest)
    if rows != n:
        raise RuntimeError(f"inventory: {rows} rows, expected {n}")
    rss_before = reset_peak_rss()
    report, seconds, cpu = _plan(store, n, 1, inventory=str(manifest))
    peak = proc_status_bytes("VmHWM")
    planned = sum(len(t.keys) for t in report.tasks)
    if planned != n or report.errors:
        raise RuntimeError(f"inventory: planned {planned} of {n}; errors {report.errors[:3]}")
    ratio = seconds / max(bare, 1e-6)
    ctx.log(f"listing: inventory bare csv {bare:.2f} s, plan {seconds:.2f} s ({ratio:.2f}x)")
    p = {"objects": n, "files": files}
    result.add(
        "inventory_bare_csv_seconds", bare, "s", "inventory", params=p, note="gzip + csv.reader, nothing else"
    )
    result.add(
        "inventory_plan_seconds", seconds, "s", "inventory", params=p, note="reaper dry run from the report"
    )
    result.add("inventory_bare_csv_cpu_seconds", bare_cpu, "s", "inventory", params=p)
    result.add("inventory_plan_cpu_seconds", cpu, "s", "inventory", params=p)
    result.add(
        "inventory_plan_vs_csv_cpu",
        cpu / max(bare_cpu, 1e-6),
        "ratio",
        "inventory",
        params=p,
        note="CPU time, less sensitive than wall time to a loaded machine (the target is on wall time)",
    )
    result.add("inventory_plan_vs_csv", ratio, "ratio", "inventory", params=p)
    result.add("inventory_plan_rate", rate(n, seconds), "objects/s", "inventory", params=p)
    if rss_before is not None and peak is not None and peak > rss_before:
        result.add(
            "inventory_plan_peak_rss_per_million",
            (peak - rss_before) / n * 1e6 / 2**20,
            "MiB",
            "inventory",
            params=p,
            note="peak RSS growth of the dry run per million objects (Linux VmHWM, reset before it): "
            "what the reaper's memory bound (policies.budget.BYTES_PER_OBJECT) must cover",
        )
    result.targets.append(
        TargetResult.check(
            "listing_inventory",
            f"planning from a {n}-object inventory ({files} gzip CSV files) <= {INVENTORY_RATIO_TARGET}x "
            "a bare Python csv pass over the same files",
            backend="inventory",
            op="<=",
            threshold=INVENTORY_RATIO_TARGET,
            value=ratio,
            unit="ratio",
        )
    )


def run(ctx: BenchContext, result: CaseResult) -> None:
    s = ctx.sizes
    result.parameters.update(
        listing_objects=s.listing_objects,
        listing_prefixes=s.listing_prefixes,
        listing_delay_ms=round(s.listing_delay * 1000),
        listing_workers=s.listing_workers,
        inventory_objects=s.inventory_objects,
        inventory_files=s.inventory_files,
    )
    try:
        proxied_listing(ctx, result)
    except CaseSkipped as exc:
        result.notes.append(f"proxied listing skipped: {exc}")
    inventory_planning(ctx, result)
