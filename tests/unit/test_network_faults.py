"""Network faults end quickly and clearly.

A socket that accepts connections and never answers (the worst case: no refusal, no
reset), and a closed port: every command that talks to the store ends within a bounded
time, exit code non-zero, with a message naming the endpoint and no traceback. The bound
is generous on purpose (a shared 2-core machine): before the fix `put` and `status` took
about 6 minutes here and `reap` more than 15.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 150


@pytest.fixture(scope="module")
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    server.close()


@pytest.fixture(scope="module")
def closed_endpoint() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}"


COMMANDS = [
    ["status", "--check"],
    ["put", "c", "--file", "{records}"],
    ["query", "c", "--id", "a"],
    ["compact", "c"],
    ["reap"],
]


def _run(endpoint: str, args: list[str], tmp_path: Path) -> tuple[int, str, float]:
    records = tmp_path / "r.jsonl"
    records.write_text('{"id": "a", "embedding": [1, 2]}\n')
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STOREKEEPER_HOME": str(tmp_path / "home"),
        "DELTA_QUEUE_URL": f"file://{tmp_path / 'q'}",
        # the defaults (3 s connect, 10 s read, 3 attempts) work the same, only slower
        "STOREKEEPER_CONNECT_TIMEOUT": "1",
        "STOREKEEPER_READ_TIMEOUT": "1",
    }
    env.pop("STOREKEEPER_STORE", None)
    argv = [str(REPO / ".venv/bin/storekeeper"), *(a.replace("{records}", str(records)) for a in args)]
    start = time.monotonic()
    proc = subprocess.run(
        [*argv, "--store", "s3://bkt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_S * 2,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_each_command_fails_within_a_bound_naming_the_endpoint(
    kind: str, args: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    endpoint = request.getfixturevalue(f"{kind}_endpoint")
    rc, out, took = _run(endpoint, args, tmp_path)
    assert rc != 0, out
    assert took < BOUND_S, f"{args[0]} took {took:.0f}s"
    assert endpoint.removeprefix("http://") in out, out
    assert "Traceback" not in out, out


def test_every_client_gets_bounded_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    from storekeeper.queues import SqsQueue
    from storekeeper.stores.s3 import make_client

    monkeypatch.setenv("STOREKEEPER_READ_TIMEOUT", "7")
    for client in (
        make_client("http://127.0.0.1:9"),
        SqsQueue("https://sqs.us-east-1.amazonaws.com/1/q").client,
    ):
        cfg = client.meta.config
        assert (cfg.connect_timeout, cfg.read_timeout) == (3.0, 7.0)
        assert cfg.retries["total_max_attempts"] == 3
    monkeypatch.setenv("STOREKEEPER_READ_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="STOREKEEPER_READ_TIMEOUT"):
        make_client("http://127.0.0.1:9")


def test_the_deadline_stops_a_run_before_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from storekeeper import netconfig
    from storekeeper.stores.s3 import S3Store, make_client

    store = S3Store("bkt", client=make_client("http://127.0.0.1:9"))
    netconfig.set_deadline(0)
    try:
        with pytest.raises(netconfig.DeadlineExceeded, match=r"127\.0\.0\.1:9"):
            store.get("k")
    finally:
        netconfig.set_deadline(None)


@pytest.mark.slow
def test_a_handler_stops_at_the_lambdas_remaining_time(silent_endpoint: str, tmp_path: Path) -> None:
    """Inside Lambda the deadline is the invocation's remaining time: the producer stops before a
    call it has no time for (DeadlineExceeded naming the endpoint), not killed by the timeout."""
    from storekeeper.runtime import invoke

    env = {
        "AWS_ENDPOINT_URL": silent_endpoint,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DELTA_QUEUE_URL": f"file://{tmp_path / 'q'}",
        "STOREKEEPER_CONNECT_TIMEOUT": "3",
        "STOREKEEPER_READ_TIMEOUT": "3",
    }
    event = {"collection": "c", "upserts": [{"id": "a", "embedding": [1.0, 2.0]}]}
    res = invoke("producer", event, root=REPO, store="s3://bkt", env=env, timeout_s=8)
    assert res.error_type == "DeadlineExceeded", (res.error_type, res.error_message)
    assert silent_endpoint.removeprefix("http://") in (res.error_message or "")
