"""`make demo`: the whole flow on the embedded default, with progress and a summary.

produce (the producer's code path) -> compact (the compactor handler draining
the local delta queue, like Lambda's SQS event source) -> query (the reader,
checksum-verified) -> reap -> clean. Runs on a fresh STOREKEEPER_HOME under
`.demo/` with a local directory store, local queues and the real chromadb.
Exits non-zero if any step's check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CHROMA_TELEMETRY_IMPL", "none")
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "storekeeper")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(file=sys.stderr)  # this stream, even while a handler's log is captured (compact)
COLLECTION = "demo"


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Demo:
    home: Path
    records: int
    dim: int
    seed: int
    steps: list[Step] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], tuple[bool, str]]) -> bool:
        started = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as exc:  # a step's failure is reported in the summary, then the demo stops
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.steps.append(Step(name, ok, detail, time.perf_counter() - started))
        mark = "[green]ok[/]" if ok else "[bold red]FAILED[/]"
        console.print(f"{mark} {name}: {detail}")
        return ok


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def setup_home(home: Path) -> None:
    """A fresh embedded default: local store and local queues under `home`."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["STOREKEEPER_HOME"] = str(home)
    for var in ("STOREKEEPER_STORE", "DELTA_QUEUE_URL", "CLEANUP_QUEUE_URL", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["COMPACTOR_CACHE_DIR"] = str(home / "cache")


# -- steps ---------------------------------------------------------------------------------
def produce(demo: Demo) -> tuple[bool, str]:
    from storekeeper.models.deltas import PutRequest, UpsertRecord
    from storekeeper.producer import put_unchecked
    from storekeeper.queues import open_queue
    from storekeeper.stores import open_store

    rng = np.random.default_rng(demo.seed)
    vectors = rng.standard_normal((demo.records, demo.dim)).astype(np.float32)
    ids = [f"vec-{i:05d}" for i in range(demo.records)]
    deleted = ids[:: max(1, demo.records // 30)][1:]  # a few, to show deletes
    demo.state.update(vectors=vectors, ids=ids, deleted=set(deleted))
    store, queue = open_store(None), open_queue("delta")
    chunk = 500
    deltas = 0
    with progress() as bar:
        task = bar.add_task("producing", total=demo.records + len(deleted))
        for start in range(0, demo.records, chunk):
            upserts = [
                UpsertRecord(id=ids[i], embedding=vectors[i].tolist(), metadata={"cluster": i % 10})
                for i in range(start, min(start + chunk, demo.records))
            ]
            res = put_unchecked(PutRequest(collection=COLLECTION, upserts=upserts), store=store, queue=queue)
            deltas += len(res.deltas)
            bar.advance(task, len(upserts))
        res = put_unchecked(PutRequest(collection=COLLECTION, deletes=deleted), store=store, queue=queue)
        deltas += len(res.deltas)
        bar.advance(task, len(deleted))
    demo.state["deltas"] = deltas
    queued = len(queue)  # type: ignore[arg-type]
    return (
        queued == deltas,
        f"{demo.records} vectors x {demo.dim} and {len(deleted)} deletes in {deltas} deltas",
    )


def compact(demo: Demo) -> tuple[bool, str]:
    from storekeeper.deltas import list_pending
    from storekeeper.queues import open_queue
    from storekeeper.runtime import failed_ids, invoke, sqs_event
    from storekeeper.stores import open_store

    queue, store = open_queue("delta"), open_store(None)
    handled = failures = 0
    with progress() as bar:
        task = bar.add_task("compacting (compactor handler)", total=len(queue))  # type: ignore[arg-type]
        for _ in range(1000):
            batch = queue.receive(10)
            if not batch:
                break
            # the handler's log (JSON lines, EMF metrics) is Lambda's, not the demo's: shown on failure
            with contextlib.redirect_stderr(io.StringIO()) as lambda_log:
                res = invoke("compactor", sqs_event((m.message_id, m.body) for m in batch))
            if not res.ok:
                console.print(lambda_log.getvalue()[-3000:], markup=False, highlight=False)
                return False, f"handler error {res.error_type}: {res.error_message}"
            failed = failed_ids(res.response)
            for m in batch:
                if m.message_id not in failed:
                    queue.ack(m)
            if failed:
                failures += len(failed)
                break  # a local queue has no redrive: stop and report
            handled += len(batch)
            bar.advance(task, len(batch))
    pending = list_pending(store, COLLECTION)
    ok = failures == 0 and not pending and len(queue) == 0  # type: ignore[arg-type]
    return ok, f"{handled} messages, {failures} failed, {len(pending)} deltas still pending"


def query(demo: Demo) -> tuple[bool, str]:
    from storekeeper import chroma, open_snapshot
    from storekeeper.snapshots import load_manifest, read_pointer
    from storekeeper.stores import open_store

    store = open_store(None)
    version, _ = read_pointer(store, COLLECTION)
    if version is None:
        return False, "nothing published"
    manifest = load_manifest(store, COLLECTION, version)
    col = open_snapshot(store, COLLECTION)
    expected = demo.records - len(demo.state["deleted"])
    ids, vectors = demo.state["ids"], demo.state["vectors"]
    probe = next(i for i in range(demo.records // 2, demo.records) if ids[i] not in demo.state["deleted"])
    hits = chroma.query(col, vectors[probe].tolist(), 5)
    gone = next(iter(demo.state["deleted"]))
    checks = {
        f"record count {col.count()} == {expected}": col.count() == expected == manifest.record_count,
        f"{ids[probe]} is its own nearest neighbour": bool(hits) and hits[0].id == ids[probe],
        f"deleted {gone} is gone": chroma.embedding_of(col, gone) is None,
    }
    failed = [k for k, v in checks.items() if not v]
    table = Table(title=f"query {COLLECTION} @ {version}: neighbours of {ids[probe]}")
    for c in ("#", "id", "distance", "cluster"):
        table.add_column(c)
    for n, h in enumerate(hits, 1):
        table.add_row(str(n), h.id, f"{h.distance:.5f}", str((h.metadata or {}).get("cluster", "")))
    console.print(table)
    return not failed, "; ".join(failed) if failed else "; ".join(checks)


DEMO_POLICIES = """\
# the demo's reaper policies: aggressive on purpose, to show that protection always wins
defaults: {grace: 0s}
policies:
  - name: snapshot-retention          # keep the newest 2 published versions (and always the live one)
    resource: snapshot_version
    store: main
    filters: [{type: keep-newest, count: 2}]
  - name: every-delta                 # matches every delta: applied ones go, unapplied ones are protected
    resource: delta
    store: main
    filters: [{type: older-than, age: 0s}]
"""


def _more_history(demo: Demo) -> dict[str, Any]:
    """A few more versions (so retention has work), a compactor that crashed after publishing
    (its applied deltas are left behind) and one delta not compacted yet (it must survive)."""
    from storekeeper.compaction import compact
    from storekeeper.models.deltas import PutRequest, UpsertRecord
    from storekeeper.producer import put_unchecked
    from storekeeper.queues import open_queue
    from storekeeper.snapshots import SnapshotCache
    from storekeeper.stores import open_store

    store, queue = open_store(None), open_queue("delta")
    cache = SnapshotCache(demo.home / "cache")
    rng = np.random.default_rng(demo.seed + 1)

    def put(tag: str, n: int = 3) -> list[str]:
        ups = [
            UpsertRecord(id=f"{tag}-{i}", embedding=rng.standard_normal(demo.dim).astype(np.float32).tolist())
            for i in range(n)
        ]
        res = put_unchecked(PutRequest(collection=COLLECTION, upserts=ups), store=store, queue=queue)
        return [d.delta_key for d in res.deltas]

    for n in range(3):  # three more published versions
        put(f"extra{n}")
        compact(store, COLLECTION, cache=cache)

    def crash(step: str) -> None:
        if step == "after_pointer_write":
            raise RuntimeError("simulated crash after publishing, before removing applied deltas")

    leftover = put("crashed")
    try:
        compact(store, COLLECTION, cache=cache, hooks=crash)
    except RuntimeError:
        pass  # published, applied deltas left behind: the reaper's job now
    else:
        raise RuntimeError("the simulated compactor crash did not happen")
    pending = put("pending")  # never compacted: unapplied
    for m in queue.receive(10_000):  # the demo drives compaction itself; drop the notifications
        queue.ack(m)
    return {"leftover": leftover, "pending": pending}


def reap_and_clean(demo: Demo) -> tuple[bool, str]:
    """Reaper dry run, then --apply (same plan digest), then the cleanup runner drains the local queue.

    Checks: the live snapshot and the unapplied delta survived, exactly the planned
    objects (old versions beyond retention, applied deltas left by a crash) are gone,
    and a query still answers from the live snapshot.
    """
    from storekeeper import chroma, open_snapshot, reaper
    from storekeeper.cleanup import CleanupRunner, store_resolver
    from storekeeper.cli.cleanup_cmd import drain
    from storekeeper.idempotency import persistence_from_env
    from storekeeper.layout import match_version_key, snapshot_prefix, version_prefix
    from storekeeper.queues import open_queue
    from storekeeper.snapshots import read_pointer
    from storekeeper.stores import open_store

    history = _more_history(demo)
    store = open_store(None)
    policies = demo.home / "policies.yaml"
    policies.write_text(DEMO_POLICIES)
    os.environ["REAPER_POLICIES"] = str(policies)  # the cleanup executor protects what the file protects
    live, _ = read_pointer(store, COLLECTION)
    assert live is not None
    live_keys = {i.key for i in store.list(version_prefix(COLLECTION, live))}
    versions = sorted(
        {cv[1] for i in store.list(snapshot_prefix(COLLECTION)) if (cv := match_version_key(i.key))}
    )

    dry = reaper.run(policies_path=str(policies), apply=False)
    real = reaper.run(policies_path=str(policies), apply=True)
    planned: set[str] = set()
    for t in real.tasks:
        planned.update(t.keys)
        if t.version:
            planned.update(i.key for i in store.list(version_prefix(COLLECTION, t.version)))
    before = {i.key for i in store.list("")}

    queue = open_queue("cleanup")
    runner = CleanupRunner(
        resolve_store=store_resolver(store), persistence=persistence_from_env(store, "cleanup")
    )
    rows = drain(queue, runner)
    after = {i.key for i in store.list("")}
    removed = {k for k in before - after if not k.startswith("idempotency/")}

    col = open_snapshot(store, COLLECTION)
    probe = demo.state["ids"][demo.records // 2 + 1]
    if probe in demo.state["deleted"]:
        probe = demo.state["ids"][demo.records // 2 + 2]
    hits = chroma.query(col, demo.state["vectors"][demo.state["ids"].index(probe)].tolist(), 3)
    kept_versions = sorted({cv[1] for k in after if (cv := match_version_key(k)) and cv[0] == COLLECTION})
    checks = {
        f"dry run and --apply plan digest equal ({dry.plan_digest[:12]})": dry.plan_digest
        == real.plan_digest,
        f"{real.sent} task(s) sent, {len(rows)} drained, none failed": real.sent == len(rows) > 0
        and all(r["status"] == "executed" for r in rows),
        f"deleted exactly the plan ({len(planned)} objects)": removed == planned,
        f"{len(versions)} versions -> {len(kept_versions)} kept": len(kept_versions) == 2
        and live in kept_versions,
        f"live snapshot {live} intact": live_keys <= after and read_pointer(store, COLLECTION)[0] == live,
        f"{len(history['leftover'])} applied delta(s) left by the crash removed": not set(history["leftover"])
        & after,
        f"{len(history['pending'])} unapplied delta(s) kept": set(history["pending"]) <= after,
        f"query still answers ({probe} -> {hits[0].id if hits else None})": bool(hits)
        and hits[0].id == probe,
    }
    table = Table(title="reaper plan (applied)")
    for c in ("policy", "planned", "protected", "skipped", "notes"):
        table.add_column(c)
    for s in real.summaries:
        table.add_row(s.policy, str(s.planned), str(s.protected), str(s.skipped), "; ".join(s.notes))
    console.print(table)
    failed = [k for k, v in checks.items() if not v]
    return not failed, "FAILED: " + "; ".join(failed) if failed else "; ".join(checks)


STEPS: list[tuple[str, Callable[[Demo], tuple[bool, str]]]] = [
    ("produce", produce),
    ("compact", compact),
    ("query", query),
    ("reap + clean", reap_and_clean),
]


def summary(demo: Demo) -> None:
    table = Table(title="storekeeper demo")
    for c in ("step", "result", "seconds", "detail"):
        table.add_column(c)
    for s in demo.steps:
        table.add_row(s.name, "[green]ok[/]" if s.ok else "[red]FAILED[/]", f"{s.seconds:.2f}", s.detail)
    console.print(table)
    sk = os.path.relpath(REPO / ".venv" / "bin" / "storekeeper")
    console.print(f"the demo's store: file://{demo.home / 'stores' / 'default'}", highlight=False)
    console.print("look at it (README, 'Using the CLI'):", highlight=False)
    for line in (f"export STOREKEEPER_HOME={demo.home}", f"{sk} status", f"{sk} snapshots {COLLECTION}",
                 f"{sk} reports show", f"{sk} query {COLLECTION} --id vec-00001 -k 5"):  # fmt: skip
        console.print(f"  {line}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=REPO / ".demo" / "home")
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    demo = Demo(home=args.home.resolve(), records=args.records, dim=args.dim, seed=args.seed)
    setup_home(demo.home)
    for name, fn in STEPS:
        if not demo.run(name, lambda fn=fn: fn(demo)):  # type: ignore[misc]
            break
    summary(demo)
    return 0 if len(demo.steps) == len(STEPS) and all(s.ok for s in demo.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
