"""`storekeeper devstack` as a person runs it, and the 4 x 4 race on its supabase:// store.

The command is started as a subprocess; its `export` lines are read up to `ready` and handed to
4 producer and 4 compactor processes working on `supabase://storekeeper-dev` (the Storage emulator
for objects, the real PostgreSQL for every conditional write). Then SIGTERM must stop everything.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from storekeeper.dev.devservers import port_open
from tests.integration.test_compaction_race import run_race

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _read_exports(proc: subprocess.Popen[str], timeout: float = 180) -> dict[str, str]:
    assert proc.stdout is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line == "ready":
            return env
        assert line.startswith("export "), f"unexpected line before ready: {line!r}"
        name, _, value = line[len("export ") :].partition("=")
        env[name] = shlex.split(value)[0] if value else ""
        assert time.monotonic() < deadline
    raise AssertionError(f"devstack exited before ready (code {proc.wait()})")


def test_devstack_serves_a_supabase_store_raced_by_4_producers_and_4_compactors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "storekeeper"), "devstack"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # nothing of the checkout is needed: the emulator is in the package
        env={**os.environ, "PYTHONPATH": str(REPO / "shared")},
    )
    try:
        exports = _read_exports(proc)
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_KEY",
            "SUPABASE_DB_URL",
            "DELTA_QUEUE_URL",
            "CLEANUP_QUEUE_URL",
            "STOREKEEPER_STORE",
        ):
            assert exports.get(name), name
        for name, value in exports.items():
            monkeypatch.setenv(name, value)  # this process checks the result on the same store
        env = {**os.environ, **exports}
        run_race(tmp_path, "supabase://storekeeper-dev", env, producers=4, compactors=4)
        ports = [
            urlparse(exports[n]).port for n in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "SUPABASE_URL")
        ]
        ports.append(urlparse(exports["SUPABASE_DB_URL"]).port)
        assert all(p is not None and port_open("127.0.0.1", p) for p in ports)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not [p for p in ports if p is not None and port_open("127.0.0.1", p)], (
            "a server outlived devstack"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
