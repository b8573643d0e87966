"""Several compactor processes and producer processes at once on one store.

Proves atomic publish and exactly-once under real concurrency: the published snapshot equals the
model state of all deltas applied in delta_id order, each delta id appears in
exactly one manifest of the version chain, and the chain is linear (every
successful publish is in it: no pointer was overwritten).

Each producer owns its record ids and writes its deltas one after another, so
per record the delta_id order is also the order in which deltas become visible;
across producers, conflicting writes would be ordered by arrival, which is the
documented semantics and not what this test is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storekeeper import rollback
from storekeeper.deltas import list_pending
from storekeeper.stores import open_store
from tests.compaction_support import assert_same_state, snapshot_state, version_chain

REPO = Path(__file__).resolve().parents[2]
DIM = 8
PRODUCERS = 3
DELTAS_PER_PRODUCER = 8
COMPACTORS = 4

PRODUCER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import UTC, datetime
    import numpy as np
    from storekeeper.deltas import DeltaContent, new_delta_id, write_delta
    from storekeeper.stores import open_store

    url, pid, n, dim, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    store = open_store(url)
    rng = np.random.default_rng(pid)
    log = []
    for k in range(n):
        ids = [f"p{pid}-r{(k * 3 + j) % 8}" for j in range(4)]
        deletes = [f"p{pid}-r{(k * 3 + 5) % 8}"] if k else []
        deletes = [d for d in deletes if d not in ids]
        emb = rng.standard_normal((len(ids), dim)).astype(np.float32)
        c = DeltaContent("race", new_delta_id(), datetime.now(UTC), ids, emb,
                         [{"p": pid, "k": k}] * len(ids), [None] * len(ids), deletes)
        write_delta(store, c)
        log.append({"delta_id": c.delta_id, "ids": ids, "emb": emb.tolist(), "deletes": deletes})
        time.sleep(0.25)
    with open(out, "w") as fh:
        json.dump(log, fh)
    """
)

COMPACTOR = textwrap.dedent(
    """
    import json, os, sys, time
    import storekeeper.chroma  # import chromadb before saying ready
    from storekeeper.compaction import compact
    from storekeeper.deltas import list_pending
    from storekeeper.snapshots import SnapshotCache
    from storekeeper.stores import open_store

    url, cache_dir, done_flag, out, ready = sys.argv[1:6]
    store = open_store(url)
    open(ready, "w").close()
    cache = SnapshotCache(cache_dir)
    runs = []
    while True:
        finished = os.path.exists(done_flag)
        r = compact(store, "race", cache=cache, max_attempts=50)
        runs.append({"status": r.status, "version": r.version if r.applied else None,
                     "applied": r.applied, "races_lost": r.races_lost})
        if finished and not list_pending(store, "race"):
            break
        time.sleep(0.1 if r.status == "noop" else 0)
    with open(out, "w") as fh:
        json.dump(runs, fh)
    """
)


@pytest.fixture(params=["local", "seaweed"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_bucket: Any
) -> str:
    """A local directory store, or a fresh bucket on the real SeaweedFS S3 server (env for subprocesses)."""
    if request.param == "local":
        return f"file://{tmp_path / 'bucket'}"
    server = request.getfixturevalue("seaweed_s3")
    for k, v in server.env(s3_only=True).items():
        monkeypatch.setenv(k, v)
    return f"s3://{fresh_bucket(server, 'race')}"


def test_concurrent_compactors_and_producers(tmp_path: Path, store_url: str) -> None:
    run_race(tmp_path, store_url, dict(os.environ), producers=PRODUCERS, compactors=COMPACTORS)


def run_race(tmp_path: Path, store_url: str, env: dict[str, str], *, producers: int, compactors: int) -> None:
    """Producer and compactor processes on one store; asserts model state, exactly-once, linear chain."""
    PRODUCERS, COMPACTORS = producers, compactors  # the module's defaults, overridden
    env = {**env, "PYTHONPATH": f"{REPO}:{REPO / 'shared'}"}
    (tmp_path / "producer.py").write_text(PRODUCER)
    (tmp_path / "compactor.py").write_text(COMPACTOR)
    done_flag = tmp_path / "producers-done"
    compactor_procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "compactor.py"),
                store_url,
                str(tmp_path / f"cache{i}"),
                str(done_flag),
                str(tmp_path / f"compactor{i}.json"),
                str(tmp_path / f"ready{i}"),
            ],
            env=env,
            cwd=REPO,
        )
        for i in range(COMPACTORS)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(COMPACTORS)):
        assert time.monotonic() < deadline, "compactors did not start"
        assert all(c.poll() is None for c in compactor_procs), "a compactor died while starting"
        time.sleep(0.1)
    producer_procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "producer.py"),
                store_url,
                str(p),
                str(DELTAS_PER_PRODUCER),
                str(DIM),
                str(tmp_path / f"producer{p}.json"),
            ],
            env=env,
            cwd=REPO,
        )
        for p in range(PRODUCERS)
    ]
    try:
        for p in producer_procs:
            assert p.wait(timeout=240) == 0
        done_flag.touch()
        for c in compactor_procs:
            assert c.wait(timeout=240) == 0
    finally:
        for proc in [*producer_procs, *compactor_procs]:
            if proc.poll() is None:
                proc.kill()

    store = open_store(store_url)
    produced = [d for p in range(PRODUCERS) for d in json.loads((tmp_path / f"producer{p}.json").read_text())]
    assert len(produced) == PRODUCERS * DELTAS_PER_PRODUCER
    runs = [r for i in range(COMPACTORS) for r in json.loads((tmp_path / f"compactor{i}.json").read_text())]

    # the model: every delta once, in delta_id order
    want: dict[str, list[float]] = {}
    for d in sorted(produced, key=lambda d: d["delta_id"]):
        for rid in d["deletes"]:
            want.pop(rid, None)
        for rid, e in zip(d["ids"], d["emb"], strict=True):
            want[rid] = [float(x) for x in np.float32(e)]
    assert_same_state(snapshot_state(store, "race", tmp_path / "reader"), want)

    chain = version_chain(store, "race")
    in_chain = [d for m in chain for d in m.deltas]
    assert sorted(in_chain) == sorted(d["delta_id"] for d in produced)  # each exactly once
    assert len(in_chain) == len(set(in_chain))
    seqs = [int(m.version.split("-")[0]) for m in chain]
    assert seqs == list(range(len(chain), 0, -1))  # linear: parent's sequence + 1 all the way down
    published = sorted(r["version"] for r in runs if r["version"])
    assert published == sorted(m.version for m in chain)  # every successful publish survived
    left = sorted(row.version for row in rollback.versions(store, "race")[1])
    assert left == published  # ... and nothing else: each loser removed the version it wrote
    applied_by_runs = sorted(d for r in runs for d in r["applied"])
    assert applied_by_runs == sorted(in_chain)
    assert list_pending(store, "race") == []
    print(f"versions={len(chain)} runs={len(runs)} races_lost={sum(r['races_lost'] for r in runs)}")
