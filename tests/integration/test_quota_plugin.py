"""The pytest plugin (issue 16) on the Supabase emulator: a full project, 4 xdist workers, interrupted runs.

The demo suite in tests/quota_demo/ runs as a real pytest subprocess with `-n 4`. Before it, the
project holds 7 expired test buckets of an earlier run and 2 protected buckets (one by label, one
by name), so 9 of 10 are taken: the fixtures must reap the expired ones (never the protected) to
give 26 tests a bucket each, without skipping and without ever exceeding the quota.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storekeeper.dev.testing.quota import Registry
from storekeeper.stores import open_store
from storekeeper.stores.vectors import open_vector_backend
from tests.servers.supabase_server import SupabaseEmulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "quota_demo"
OLD_RUN = "rold000001"
STALE = [f"test-{OLD_RUN}-stale{i}" for i in range(7)]
PROTECTED_BY_LABEL = f"test-{OLD_RUN}-keepme"  # expired, a test bucket, but labelled protected
PROTECTED_BY_NAME = "shared-fixtures"


def _seed(expired: bool = True) -> None:
    vb = open_vector_backend()
    registry = open_store("supabase://storekeeper-tests")
    registry.create_bucket("storekeeper-tests")
    when = (datetime.now(UTC) - timedelta(hours=1 if expired else -1)).isoformat()
    labels = {n: {"run": OLD_RUN, "expires": when} for n in [*STALE, PROTECTED_BY_LABEL]}
    labels[PROTECTED_BY_LABEL]["storekeeper:protect"] = "true"
    Registry(registry).update(lambda d: d.update(labels))
    for name in [*STALE, PROTECTED_BY_LABEL, PROTECTED_BY_NAME]:
        vb.create_bucket(name)
    vb.create_index(PROTECTED_BY_NAME, "data", 3, "cosine")


def _run_demo(
    *args: str, env: dict[str, str] | None = None, targets: tuple[str, ...] = (str(DEMO),)
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(DEMO / "pytest.ini"),
            "--rootdir",
            str(DEMO),
            *args,
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=DEMO,
        env={**os.environ, **(env or {})},
    )


def _names() -> list[str]:
    return sorted(b.name for b in open_vector_backend().list_buckets())


def test_25_tests_on_4_workers_in_a_full_project(supabase_env: SupabaseEmulatorServer) -> None:
    _seed()
    assert len(_names()) == 9
    result = _run_demo("-n", "4")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "28 passed" in out, out[-2000:]
    assert "skipped" not in out
    assert "storekeeper test-bucket sweep (dry run)" in out  # the plan, printed before acting
    assert "storekeeper test-bucket sweep (applied)" in out
    assert all(f"deleted {n}" in out for n in STALE)
    assert f"delete {PROTECTED_BY_LABEL}" not in out
    assert (
        supabase_env.emulator.vectors.most_buckets <= 10
    )  # never over the quota (the server enforces it too)
    # protected buckets intact, the shared one kept for the next run, nothing else left behind
    assert _names() == sorted([PROTECTED_BY_LABEL, PROTECTED_BY_NAME, "test-shared"])
    storage = sorted(b.name for b in open_store("supabase://storekeeper-tests").list_buckets())
    assert storage == ["storekeeper-tests"]  # the storage test's bucket was emptied and deleted
    assert [i.name for i in open_vector_backend().list_indexes(PROTECTED_BY_NAME)] == ["data"]
    left = Registry(open_store("supabase://storekeeper-tests")).read()
    assert set(left) == {PROTECTED_BY_LABEL}  # the reaped and released buckets' entries are gone


OWN = f"{DEMO}/demo_vector_buckets.py::test_each_gets_its_own_vector_bucket"


def test_an_interrupted_run_leaves_a_bucket_reaped_only_once_expired(
    supabase_env: SupabaseEmulatorServer,
) -> None:
    """The leftover's TTL is an hour, so the next run sees it unexpired however loaded the machine;
    then its `expires` label is moved into the past (what an hour does; the registry write `_seed`
    makes too) rather than waited for: the test once slept out a 150 s TTL, the longest wait of the
    suite. The TTL itself is checked on the label: it counts from the interrupted run's start."""
    began = datetime.now(UTC)
    # a run whose worker dies inside test 3: its bucket stays, labelled with its run and expiry
    killed = _run_demo(
        "-n", "2", "-o", "storekeeper_ttl=1h", env={"DEMO_KILL_WORKER": "3"}, targets=(f"{OWN}[3]",)
    )
    assert killed.returncode != 0
    (leftover,) = _names()
    registry = Registry(open_store("supabase://storekeeper-tests"))
    labels = registry.read()[leftover]
    assert labels["run"] != ""
    hour = timedelta(hours=1)
    assert began + hour <= datetime.fromisoformat(labels["expires"]) <= datetime.now(UTC) + hour
    # fill the project (10 of 10) with buckets that are no test buckets of anybody
    vb = open_vector_backend()
    for i in range(9):
        vb.create_bucket(f"keep-{i}")
    two = (f"{OWN}[1]", f"{OWN}[2]")
    early = _run_demo("-n", "2", "-o", "storekeeper_wait=3s", targets=two)
    out = early.stdout + early.stderr
    assert leftover in _names(), "an unexpired bucket of another run was reaped"
    assert "2 skipped" in out, out[-3000:]  # and the skip says what blocks: the leftover and its expiry
    assert f"{leftover} (test bucket of run" in out
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    registry.update(lambda d: d[leftover].update(expires=past))  # the hour has passed
    late = _run_demo("-n", "2", targets=two)
    out = late.stdout + late.stderr
    assert late.returncode == 0, out[-3000:]
    assert "2 passed" in out
    assert "skipped" not in out
    assert leftover not in _names()
    assert len(_names()) == 9  # the two tests' buckets were released again


def test_reap_tests_command_is_a_dry_run_unless_applied(supabase_env: SupabaseEmulatorServer) -> None:
    _seed()
    exe = str(Path(sys.executable).parent / "storekeeper")
    dry = subprocess.run([exe, "reap", "--tests"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "(dry run): 7 expired test bucket(s)" in dry.stdout
    assert len(_names()) == 9  # nothing deleted
    real = subprocess.run(
        [exe, "reap", "--tests", "--apply", "--yes"], capture_output=True, text=True, timeout=120
    )
    assert real.returncode == 0, real.stderr
    assert _names() == sorted([PROTECTED_BY_LABEL, PROTECTED_BY_NAME])
