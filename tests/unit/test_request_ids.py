"""Idempotency keys (issue 8.4): a reused request_id with another body is refused, a put killed
part-way completes on retry, a reused cleanup task_id fails alone and never blocks the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.compaction import compact
from storekeeper.deltas import list_pending
from storekeeper.idempotency import StorePersistenceLayer
from storekeeper.producer import PutResult, RequestIdReused, parse_put_request, put
from storekeeper.queues import LocalQueue
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]


def event(n: int = 3, dim: int = 4, *, seed: int = 0, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ups = [
        {"id": f"id-{i}", "embedding": rng.standard_normal(dim).tolist(), "metadata": {"i": i}}
        for i in range(n)
    ]
    return {"collection": "docs", "upserts": ups, **extra}


@pytest.mark.parametrize("with_records", [True, False])
@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["upserts"][0].update(embedding=[9.0, 9.0, 9.0, 9.0]),
        lambda e: e["upserts"][1].update(metadata={"i": 99}),
        lambda e: e["upserts"][2].update(document="new"),
        lambda e: e.update(deletes=["other"]),
    ],
    ids=["vector", "metadata", "document", "deletes"],
)
def test_same_request_id_with_another_body_is_refused(
    tmp_path: Path, change: Any, with_records: bool
) -> None:
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    layer = StorePersistenceLayer(store, "producer") if with_records else None
    first = put(parse_put_request(event(request_id="r-1")), store=store, queue=queue, persistence=layer)
    changed = event(request_id="r-1")
    change(changed)
    with pytest.raises(RequestIdReused) as info:
        put(parse_put_request(changed), store=store, queue=queue, persistence=layer)
    assert info.value.field == "request_id"
    assert "different body" in str(info.value)
    again = put(parse_put_request(event(request_id="r-1")), store=store, queue=queue, persistence=layer)
    assert again.deltas == first.deltas
    assert [p.key for p in list_pending(store, "docs")] == [d.delta_key for d in first.deltas]


def test_a_refused_request_leaves_its_request_id_free(tmp_path: Path) -> None:
    """A put refused by validation wrote nothing: the corrected body may use the same request_id."""
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    put(parse_put_request(event(dim=4)), store=store, queue=queue)
    with pytest.raises(Exception, match="dimension"):
        put(parse_put_request(event(dim=5, request_id="fix-me")), store=store, queue=queue)
    put(parse_put_request(event(dim=4, seed=3, request_id="fix-me")), store=store, queue=queue)


KILLER = """
import os, signal, sys
from storekeeper.producer import parse_put_request, put
from storekeeper.idempotency import StorePersistenceLayer
from storekeeper.queues import LocalQueue
from storekeeper.stores.local import LocalStore

class Killed(LocalStore):
    deltas = 0
    def _put(self, key, *args, **kwargs):
        if key.startswith("delta/"):
            if Killed.deltas == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)  # a real kill -9 between two delta writes
            Killed.deltas += 1
        return super()._put(key, *args, **kwargs)

store = Killed(sys.argv[1])
event = {"collection": "docs", "request_id": "big-1",
         "upserts": [{"id": f"id-{i}", "embedding": [float(i), 1.0]} for i in range(2500)]}
put(parse_put_request(event), store=store, queue=LocalQueue(sys.argv[2]),
    persistence=StorePersistenceLayer(store, "producer"))
"""


@pytest.mark.slow  # a killed process per case: >5 s here
@pytest.mark.parametrize("killed_after", [0, 1, 2])
def test_a_put_killed_part_way_completes_on_retry(tmp_path: Path, killed_after: int) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'shared'}"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "b"), str(tmp_path / "q"), str(killed_after)],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    assert len(list_pending(store, "docs")) == killed_after
    event = {
        "collection": "docs",
        "request_id": "big-1",
        "upserts": [{"id": f"id-{i}", "embedding": [float(i), 1.0]} for i in range(2500)],
    }
    layer = StorePersistenceLayer(store, "producer")
    out = put(parse_put_request(event), store=store, queue=queue, persistence=layer)  # not "in progress"
    assert [p.key for p in list_pending(store, "docs")] == [d.delta_key for d in out.deltas]
    assert len(out.deltas) == 3  # 1000 + 1000 + 500: the same three keys, none written twice
    again = put(parse_put_request(event), store=store, queue=queue, persistence=layer)
    assert again.deltas == out.deltas
    r = compact(store, "docs", cache=SnapshotCache(tmp_path / "cache"))
    assert r.record_count == 2500


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    second=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    v1=st.floats(-2, 2, allow_nan=False),
    v2=st.floats(-2, 2, allow_nan=False),
    doc=st.one_of(st.none(), st.text(max_size=3)),
)
def test_a_reused_request_id_is_the_same_answer_or_a_clear_refusal(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[str],
    second: list[str],
    v1: float,
    v2: float,
    doc: str | None,
) -> None:
    tmp = tmp_path_factory.mktemp("rid")
    store, queue = LocalStore(tmp / "b"), LocalQueue(tmp / "q")
    layer = StorePersistenceLayer(store, "producer")

    def body(ids: list[str], v: float, d: str | None) -> dict[str, Any]:
        ups = [{"id": i, "embedding": [v, 1.0], **({"document": d} if d is not None else {})} for i in ids]
        return {"collection": "docs", "request_id": "same", "upserts": ups}

    one = put(parse_put_request(body(first, v1, None)), store=store, queue=queue, persistence=layer)
    b2 = body(second, v2, doc)
    if b2 == body(first, v1, None):
        assert put(parse_put_request(b2), store=store, queue=queue, persistence=layer) == one
    else:
        with pytest.raises(RequestIdReused):
            put(parse_put_request(b2), store=store, queue=queue, persistence=layer)
    assert isinstance(one, PutResult)
    assert len(list_pending(store, "docs")) == 1


def test_a_reused_cleanup_task_id_fails_alone_and_never_blocks_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path))
    for name in ("STOREKEEPER_STORE", "CLEANUP_QUEUE_URL", "IDEMPOTENCY_TABLE"):
        monkeypatch.delenv(name, raising=False)
    store = LocalStore(tmp_path / "stores" / "default")
    for k in ("tmp/a", "tmp/b", "tmp/c"):
        store.put(k, b"x")
    q = LocalQueue(tmp_path / "queues" / "cleanup")

    def task(task_id: str, keys: list[str]) -> str:
        return json.dumps(
            {
                "task_id": task_id,
                "action": "delete_objects",
                "backend": "file",
                "bucket": "default",
                "keys": keys,
                "policy": "test",
                "reason": "reuse test",
                "planned_at": "2030-01-01T00:00:00Z",
            }
        )

    q.send(task("t-1", ["tmp/a"]))
    assert CliRunner().invoke(app, ["cleanup", "--json"]).exit_code == 0
    q.send(task("t-1", ["tmp/b"]))  # the same id, another target
    q.send(task("t-2", ["tmp/c"]))
    res = CliRunner().invoke(app, ["cleanup", "--json"])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    rows = {r.get("task_id", r["message_id"]): r for r in json.loads(res.stdout)["tasks"]}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(failed) == 1
    assert "task_id" in failed[0]["error"]
    assert "another target" in failed[0]["error"]
    assert rows["t-2"]["status"] == "executed"
    assert store.exists("tmp/b")  # the reused id did nothing
    assert not store.exists("tmp/c")
    assert len(q) == 0  # nothing left to block later tasks
    assert len(LocalQueue(tmp_path / "queues" / "cleanup-dlq")) == 1
