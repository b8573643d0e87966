"""Case 4: reaper planning and cleanup over many objects — throughput and request counts.

The real reaper run (`storekeeper.reaper.run`, dry run, same code as a real
run) plans an age rule over n objects; the cleanup executor then carries out
every task it planned. The store's RequestCounter says how many backend
requests each side made, compared with the minimum the backend allows: one
listing page per 1,000 keys and one bulk delete per 1,000 keys on S3 (one
listing call on the local directory backend, which has no pages).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from storekeeper.dev.bench.context import BenchContext
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.dev.bench.timing import rate, timed
from storekeeper.stores.base import ObjectStore
from storekeeper.stores.local import LocalStore

NAME = "reaper"
TITLE = "Reaper planning and cleanup: objects/s and requests vs the backend minimum"
PLAN_RATE_TARGET = 20_000.0
PAGE = 1000
PREFIX = "bench/"

#: also the listing case's policy, with its parallel-listing setting as `store`
POLICIES = """
stores:
  main: {store}
defaults:
  max_deletions: {n}
protect:
  object_labels: false   # label protection costs one HEAD per candidate: measured apart below
policies:
  - name: bench-age
    resource: object
    store: main
    prefix: {prefix}
    filters:
      - {{type: older-than, age: 1h}}
"""


def min_list_requests(store: ObjectStore, n: int) -> int:
    """Listing n keys: one page per 1,000 on S3-like backends, one call on the local directory."""
    return 1 if store.scheme == "file" else max(1, math.ceil(n / PAGE))


def fill(store: ObjectStore, n: int) -> float:
    """Create n small objects under PREFIX; returns seconds (setup, not a measured figure).

    On the local backend the files are written straight into the bucket directory
    (`file:///path` keeps key K as the file `<path>/K`; with no metadata
    that is exactly what `put` leaves), because 100,000 locked puts take minutes
    on a busy 2-core machine. Network backends get real PUTs from 16 threads.
    """
    body = b"x" * 16
    keys = [f"{PREFIX}obj-{i:07d}.bin" for i in range(n)]
    with timed() as t:
        if isinstance(store, LocalStore):
            (store.path / PREFIX).mkdir(parents=True, exist_ok=True)
            for k in keys:
                (store.path / k).write_bytes(body)
        else:
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda k: store.put(k, body), keys))
    return t.seconds


def measure(ctx: BenchContext, result: CaseResult, backend: str, store: ObjectStore, n: int) -> None:
    from storekeeper import reaper
    from storekeeper.cleanup.executor import execute_task, store_resolver
    from storekeeper.policies.model import parse_policies
    from storekeeper.protection import ProtectionConfig

    ctx.log(f"reaper: creating {n} objects on {backend}")
    setup = fill(store, n)
    p = {"objects": n}
    result.add("setup_put_rate", rate(n, setup), "objects/s", backend, params=p, note="creating the objects")
    policies = parse_policies(POLICIES.format(n=n, prefix=PREFIX, store="{}"), "<bench>")
    now = datetime.now(UTC) + timedelta(hours=2)  # every object is past the 1h age rule

    # the raw limit planning sits on: one bare listing of the same keys (its requests are not counted)
    with timed() as lt:
        listed = sum(1 for _ in store.list(PREFIX))
    if listed != n:
        raise RuntimeError(f"reaper on {backend}: listed {listed} of {n} objects")
    store.requests.reset()
    cpu = time.process_time()
    with timed() as t:
        report = reaper.run(
            policies=policies, stores={"main": store}, apply=False, now=now, write_report=False
        )
    cpu = time.process_time() - cpu
    planned = sum(len(task.keys) for task in report.tasks)
    if planned != n or report.errors:
        raise RuntimeError(
            f"reaper on {backend}: planned {planned} of {n} objects; errors {report.errors[:3]}"
        )
    plan_requests = dict(store.requests.counts)
    lists = plan_requests.get("list", 0)
    list_min = min_list_requests(store, n)
    ctx.log(f"reaper: planned {n} objects on {backend} in {t.seconds:.2f} s ({plan_requests})")
    result.add("plan_seconds", t.seconds, "s", backend, params=p)
    result.add(
        "plan_cpu_seconds",
        max(cpu, 1e-6),
        "s",
        backend,
        params=p,
        note="this process's CPU time (a server in another process is not in it); wall time on a "
        "shared machine includes waiting for a core",
    )
    result.add("list_seconds", lt.seconds, "s", backend, params=p, note="a bare listing of the same keys")
    result.add(
        "list_share_of_plan",
        100 * lt.seconds / max(t.seconds, 1e-6),
        "%",
        backend,
        params=p,
        note="the bare listing's time as a share of the planning time",
    )
    result.add("plan_rate", rate(n, t.seconds), "objects/s", backend, params=p)
    result.add("plan_list_requests", lists, "requests", backend, params=p, note=f"minimum {list_min}")
    result.add(
        "plan_requests_total",
        sum(plan_requests.values()),
        "requests",
        backend,
        params=p,
        note=", ".join(f"{k} {v}" for k, v in sorted(plan_requests.items())),
    )
    result.add("plan_tasks", len(report.tasks), "tasks", backend, params=p)
    result.targets.append(
        TargetResult.check(
            f"plan_rate_{backend}",
            f"reaper planning over {n} objects >= 20,000 objects/s",
            backend=backend,
            op=">=",
            threshold=PLAN_RATE_TARGET,
            value=rate(n, t.seconds),
            unit="objects/s",
        )
    )
    result.targets.append(
        TargetResult.check(
            f"plan_requests_{backend}",
            f"planning requests = backend minimum ({list_min} list)",
            backend=backend,
            op="==",
            threshold=list_min,
            value=sum(plan_requests.values()),
            unit="requests",
        )
    )

    store.requests.reset()
    resolve = store_resolver(store)
    protection = ProtectionConfig.from_env(check_object_labels=False)
    deleted = 0
    with timed() as t:
        for task in report.tasks:
            outcome = execute_task(task, resolve_store=resolve, now=now, dry_run=False, protection=protection)
            deleted += len(outcome.deleted)
    if deleted != n:
        raise RuntimeError(f"cleanup on {backend}: deleted {deleted} of {n} objects")
    counts = dict(store.requests.counts)
    batches = counts.get("delete_batch", 0) + counts.get("delete", 0)
    del_min = math.ceil(n / store.max_delete_batch)
    ctx.log(f"reaper: cleanup of {n} objects on {backend} in {t.seconds:.2f} s ({counts})")
    result.add("cleanup_seconds", t.seconds, "s", backend, params=p)
    result.add("cleanup_rate", rate(n, t.seconds), "objects/s", backend, params=p)
    result.add("cleanup_delete_requests", batches, "requests", backend, params=p, note=f"minimum {del_min}")
    result.add(
        "cleanup_requests_total",
        sum(counts.values()),
        "requests",
        backend,
        params=p,
        note=", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + " (the executor re-reads every key before deleting it)",
    )
    result.targets.append(
        TargetResult.check(
            f"cleanup_deletes_{backend}",
            f"cleanup delete requests = ceil({n}/{store.max_delete_batch})",
            backend=backend,
            op="==",
            threshold=del_min,
            value=batches,
            unit="requests",
        )
    )
    left = sum(1 for _ in store.list(PREFIX))
    if left:
        raise RuntimeError(f"cleanup on {backend}: {left} objects still listed under {PREFIX}")


def run(ctx: BenchContext, result: CaseResult) -> None:
    import storekeeper.reaper  # noqa: F401  (skip cleanly if the reaper is missing)

    sizes = ctx.sizes.reaper_objects
    result.parameters.update(objects_per_backend=str(sizes), page=PAGE, policy="older-than 1h under bench/")
    for backend in ctx.backends.available():
        measure(ctx, result, backend, ctx.backends.store(backend, "reaper"), sizes[backend])
    if "moto" in ctx.backends.wanted:
        with ctx.backends.moto_store("reaper") as store:
            measure(ctx, result, "moto", store, sizes["moto"])
