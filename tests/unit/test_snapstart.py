"""SnapStart hooks (storekeeper.snapstart), proved in real processes: a restore is approximated by
forking an initialised interpreter and running the registered after-restore hooks in the child, as
the Lambda runtime does after resuming a snapshot; priming runs the registered before-snapshot hooks
the way the runtime does before taking one (reverse order of registration)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = ("producer", "reaper", "cleanup")

#: runs in a fresh interpreter from functions/<fn>/: init (import app), then argv[1] says what to do
PROBE = r"""
import json, os, random, sys
import app
import snapshot_restore_py as hooks

def run_after_restore():
    for func, args, kwargs in hooks.get_after_restore():
        func(*args, **kwargs)

def run_before_snapshot():
    todo = hooks.get_before_snapshot()
    while todo:
        func, args, kwargs = todo.pop()
        func(*args, **kwargs)

def forked(child):
    # a restore: one initialised parent, each child resumes from its memory
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = child()
        except BaseException as exc:
            out = {"error": repr(exc)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)

mode = sys.argv[1]
if mode == "random":
    random.random()
    state = random.getstate()  # what a snapshot of the parent's memory would hold
    def draw(restore):
        def child():
            # os.fork reseeds `random` in the child (its at-fork hook); a microVM snapshot does not:
            # the child starts from the parent's state, as a restored environment would
            random.setstate(state)
            if restore:
                run_after_restore()
            return [random.random() for _ in range(3)]
        return child
    out = {"restored": [forked(draw(True)) for _ in range(2)],
           "plain": [forked(draw(False)) for _ in range(2)]}
elif mode == "sampling":
    state = random.getstate()
    def level(restore):
        def child():
            random.setstate(state)
            if restore:
                run_after_restore()
            return app.logger.log_level
        return child
    out = {"restored": [forked(level(True)) for _ in range(16)],
           "plain": [forked(level(False)) for _ in range(16)]}
elif mode == "clients":
    import boto3
    from storekeeper.stores import env_store
    store = env_store()  # built at init: its boto3 client and pool would be in the snapshot
    session = boto3.DEFAULT_SESSION
    loader = session._session.get_component("data_loader")
    def child():
        run_after_restore()
        fresh = env_store()
        new_session = boto3.DEFAULT_SESSION
        return {"same_store": fresh is store,
                "same_client": fresh.client is store.client,
                "same_session": new_session is session,
                "same_loader": new_session._session.get_component("data_loader") is loader,
                "again_same": env_store() is fresh}
    out = forked(child)
elif mode == "prime":
    registered = len(hooks.get_before_snapshot())
    before = set(sys.modules)
    run_before_snapshot()
    out = {"registered": registered, "loaded": sorted(set(sys.modules) - before), "all": sorted(sys.modules)}
elif mode == "first-call":
    before = set(sys.modules)
    event = json.load(open(sys.argv[2]))
    class Ctx:
        function_name = "probe"; function_version = "1"; memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:probe"
        aws_request_id = "probe"; log_group_name = "/aws/lambda/probe"; log_stream_name = "probe"
        def get_remaining_time_in_millis(self): return 900000
    app.handler(event, Ctx())
    out = {"loaded": sorted(set(sys.modules) - before)}
print(json.dumps(out))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    # an allowlist, not a filter: nothing an earlier test (or the developer's shell) left in the
    # environment reaches the child, so the outcome cannot depend on test order
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(
        PYTHONPATH=str(REPO / "shared"),
        STOREKEEPER_HOME=str(tmp_path / "home"),
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="storekeeper",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # a placeholder: clients are built, never sent
    )
    env.update(extra)
    return env


def _probe(fn: str, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO / "functions" / fn,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fn", SMALL)
def test_restored_environments_draw_different_random_numbers(tmp_path: Path, fn: str) -> None:
    out = _probe(fn, _env(tmp_path), "random")
    a, b = out["restored"]
    assert a != b, "two restored environments drew the same numbers: random was not reseeded"
    # the control: without the hook, two forks of one snapshot share the generator's state
    assert out["plain"][0] == out["plain"][1]


@pytest.mark.parametrize("fn", SMALL)
def test_restored_environments_draw_their_own_log_sampling(tmp_path: Path, fn: str) -> None:
    # Powertools draws DEBUG-or-not at Logger() (init): without the hook, every environment restored
    # from one snapshot logs its first invocation at the snapshot's draw
    out = _probe(fn, _env(tmp_path, POWERTOOLS_LOGGER_SAMPLE_RATE="0.5"), "sampling")
    assert len(set(out["plain"])) == 1
    # 16 independent draws at 0.5 all alike: probability 2 * 0.5**16 (3e-5)
    assert len(set(out["restored"])) == 2, out["restored"]


def test_after_restore_drops_the_store_client_and_boto3_session_built_at_init(tmp_path: Path) -> None:
    # an s3:// store opens a real boto3 client (no request is made: construction only)
    env = _env(tmp_path, STOREKEEPER_STORE="s3://snapstart-test", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    out = _probe("cleanup", env, "clients")
    assert "error" not in out, out
    assert out["same_store"] is False
    assert out["same_client"] is False
    assert out["same_session"] is False  # credentials are resolved again
    assert out["same_loader"] is True  # the parsed service models are kept
    assert out["again_same"] is True  # after the restore the new store is cached as before


@pytest.mark.parametrize("fn", SMALL)
def test_priming_is_registered_only_in_a_snapstart_init(tmp_path: Path, fn: str) -> None:
    out = _probe(fn, _env(tmp_path), "prime")
    assert out["registered"] == 0
    assert out["loaded"] == []


@pytest.mark.slow
@pytest.mark.parametrize("fn", SMALL)
def test_priming_writes_nothing_and_loads_what_the_first_call_imports(tmp_path: Path, fn: str) -> None:
    from storekeeper.dev.bench.case_coldstart import FIRST_EVENTS, local_sample_event
    from storekeeper.snapstart import FIRST_CALL_MODULES

    home = tmp_path / "home"
    # an unreachable queue URL: priming builds its SQS client (no request) and must not send
    queue = {"producer": "DELTA_QUEUE_URL", "reaper": "CLEANUP_QUEUE_URL"}.get(fn)
    extra = {queue: "http://127.0.0.1:9/000000000000/q"} if queue else {}
    if fn in ("producer", "cleanup"):
        extra["IDEMPOTENCY_TABLE"] = "snapstart-test"  # deployed: Powertools' DynamoDB layer (no call)
    primed = _probe(fn, _env(tmp_path, AWS_LAMBDA_INITIALIZATION_TYPE="snap-start", **extra), "prime")
    assert primed["registered"] == 1
    assert not home.exists() or not any(home.rglob("*")), "priming wrote to the store or a local queue"
    for name in FIRST_CALL_MODULES[fn]:
        assert name in primed["all"]
    if queue:
        assert "storekeeper.queues" in primed["all"]
        assert "botocore.client" in primed["all"]
    if "IDEMPOTENCY_TABLE" in extra:
        assert "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb" in primed["all"]

    # the real first call, in a fresh interpreter without priming: what it imports, priming had loaded
    event = local_sample_event(REPO / "events" / fn / FIRST_EVENTS[fn], home)
    first = _probe(fn, _env(tmp_path), "first-call", str(event))
    ours = [m for m in first["loaded"] if m.startswith(("storekeeper", "aws_lambda_powertools"))]
    assert ours, "the first call imported nothing of ours: the comparison would prove nothing"
    missing = sorted(set(ours) - set(primed["all"]))
    assert missing == [], f"{fn}: the first call imports {missing}, which priming does not"


def test_enable_refuses_a_function_it_cannot_prime() -> None:
    from storekeeper.snapstart import enable

    with pytest.raises(ValueError, match="compactor"):
        enable("compactor")


@pytest.mark.slow
def test_bench_restore_proxy_primes_forks_and_runs_the_first_call_in_the_child(tmp_path: Path) -> None:
    from storekeeper.dev.bench import case_coldstart

    fn_dir = REPO / "functions" / "reaper"
    env = {**case_coldstart._env(REPO, fn_dir, tmp_path), "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    home = tmp_path / "home"
    event = case_coldstart.local_sample_event(REPO / "events" / "reaper" / "schedule.json", home)
    env["STOREKEEPER_HOME"] = str(home)
    got = case_coldstart._run_probe([case_coldstart._RESTORE_PROBE, str(event)], fn_dir, env, 300, "probe")
    assert got["primed"] == 1
    assert got["error"] is None, got
    assert float(got["hooks"]) > 0
    assert float(got["total"]) >= float(got["call"]) > 0
    assert float(got["init_cpu"]) > 0
    assert list(home.rglob("reports/reaper/*.json")), "the restored child's call wrote no report"
