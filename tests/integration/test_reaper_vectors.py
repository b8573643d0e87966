"""Vector-bucket quota against the Supabase emulator over real HTTP, then the real cleanup executor.

12 test buckets in a project whose policy quota is 10: reap --apply + cleanup
leaves the project under quota, deletes oldest first (indexes first, by the
executor), and never the shared bucket even though it is the oldest `test-` one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storekeeper import reaper
from storekeeper.cleanup import execute_task, parse_task
from storekeeper.policies import parse_policies
from storekeeper.queues import LocalQueue
from storekeeper.stores.local import LocalStore
from storekeeper.stores.vectors import open_vector_backend
from tests.servers.supabase_server import SupabaseEmulatorServer

pytestmark = pytest.mark.integration

POLICIES = """\
stores:
  main: {}
  vectors: {kind: vectors, quota: 10}
protect:
  names: ["*-shared"]
policies:
  - name: vector-bucket-quota
    resource: vector_bucket
    store: vectors
    filters:
      - {type: name-prefix, value: test-}
      - {type: older-than, age: 1h}
      - {type: count-above-quota, threshold: 0.9, target: 0.8}
"""


@pytest.fixture
def project(supabase_env: SupabaseEmulatorServer):  # type: ignore[no-untyped-def]
    """12 buckets: test-shared (the oldest), 11 test-<id>-NN with one index each, hours to days old."""
    state = supabase_env.emulator.vectors
    state.max_buckets = 12  # a project already over the quota the policy enforces
    backend = open_vector_backend()
    now = time.time()
    names = ["test-shared"] + [f"test-run{i:02d}-bucket" for i in range(11)]
    for age_h, name in zip(range(100, 0, -8), names, strict=False):
        backend.create_bucket(name)
        backend.create_index(name, "idx", 3, "cosine")
        state.buckets[name].created = now - age_h * 3600
    try:
        yield backend, names
    finally:
        state.max_buckets = 10
        supabase_env.reset()


def test_quota_reap_and_cleanup_brings_the_project_under_quota(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend, names = project
    assert len(backend.list_buckets()) == 12
    loaded = parse_policies(POLICIES)
    main = LocalStore(tmp_path / "stores" / "main")
    queue = LocalQueue(tmp_path / "q")
    kw = {"policies": loaded, "stores": {"main": main}, "vector_backends": {"vectors": backend}}
    dry = reaper.run(**kw, queue=queue)
    assert len(queue) == 0
    real = reaper.run(**kw, apply=True, queue=queue)
    assert real.plan_digest == dry.plan_digest
    planned = [d.name for d in real.decisions if d.verdict == "planned"]
    # oldest first, skipping test-shared: 12 -> 8 (target 0.8 x 10)
    assert planned == names[1:5]
    assert [(d.name, d.verdict) for d in real.decisions if d.verdict == "protected"] == [
        ("test-shared", "protected")
    ]
    assert [t.action.value for t in real.tasks] == ["delete_vector_bucket"] * 4
    statuses = []
    while msgs := queue.receive(10):
        for m in msgs:
            outcome = execute_task(parse_task(m.body), vector_backend=backend)
            statuses.append(outcome.status)
            queue.ack(m)
    assert statuses == ["executed"] * 4
    left = sorted(b.name for b in backend.list_buckets())
    assert len(left) == 8 < 10
    assert "test-shared" in left
    assert not set(planned) & set(left)
    # a second run finds nothing to do: 8 is under the 9-bucket threshold
    again = reaper.run(**kw, queue=queue, write_report=False)
    assert again.tasks == []
    assert "below threshold" in again.summaries[0].notes[0]


def test_status_counts_vector_buckets_against_the_quota_and_check_fails_at_it(
    project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """`status` lists the project's vector buckets over real HTTP; 12 of 10 fails `--check`."""
    import json

    from typer.testing import CliRunner

    from storekeeper.cli import app

    pol = tmp_path / "p.yaml"
    pol.write_text(POLICIES)
    store = LocalStore(tmp_path / "main")
    res = CliRunner().invoke(
        app, ["status", "--store", store.url, "--policies", str(pol), "--json", "--check"]
    )
    assert res.exit_code == 3, res.output
    data = json.loads(res.stdout)
    [vec] = data["vectors"]
    assert (vec["store"], vec["buckets"], vec["quota"]) == ("vectors", 12, 10)
    assert sorted(vec["names"]) == sorted(project[1])
    assert any("12 of 10 (quota reached)" in p for p in data["problems"])
    assert {(f["store"], f["target"], f["state"]) for f in data["forecasts"]} >= {
        ("vectors", "quota", "already-above")
    }
