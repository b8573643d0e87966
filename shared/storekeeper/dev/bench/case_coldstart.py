"""Case 5: cold-start proxy — handler import time in a fresh interpreter, and artifact sizes.

A Lambda cold start pays the handler module's imports; timing `import app` in a
new `python` process (median of a few) is the closest local proxy. The producer,
reaper and cleanup must not pull in chromadb, so the probe also reports whether
it did. Imports deferred to first use (boto3 via Powertools idempotency, numpy)
are still paid by the first invocation, so a second probe times import + one
handler call with the function's sample event (events/<fn>/) against a fresh
local store and local queues: the cold start a caller actually waits for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storekeeper.dev.bench.context import BenchContext, CaseSkipped
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.dev.bench.timing import median
from storekeeper.runtime import LAMBDA_FIXED_ENV

NAME = "coldstart"
TITLE = "Cold start: handler import time and artifact size"
HANDLERS = ("producer", "compactor", "reaper", "cleanup")
NO_CHROMA = ("producer", "reaper", "cleanup")
#: issue 12 item 4, best of `import_repeats` runs, each in a fresh interpreter
FIRST_INVOCATION_TARGET_S = {"producer": 0.250, "reaper": 0.250}
IMPORT_TARGET_S = {"cleanup": 0.150}
#: the functions template.yaml's SnapStart parameter turns it on for (storekeeper.snapstart)
SNAPSTART = ("producer", "reaper", "cleanup")
COMPACTOR_ARTIFACT_TARGET_MIB = 250.0  # Lambda: 250 MB unzipped incl. layers = 262,144,000 bytes
MIB = 1024 * 1024

_PROBE = (
    "import json, sys, time\n"
    "t = time.perf_counter(); c = time.process_time()\n"
    "import app\n"
    "dt = time.perf_counter() - t; dc = time.process_time() - c\n"
    "print(json.dumps({'seconds': dt, 'cpu': dc, 'chromadb': 'chromadb' in sys.modules,\n"
    "                  'modules': len(sys.modules)}))\n"
)


FIRST_EVENTS = {
    "producer": "put.json",
    "compactor": "sweep.json",
    "reaper": "schedule.json",
    "cleanup": "sqs-cleanup-task.json",
}
WATCHED = ("aws_xray_sdk", "boto3", "numpy", "pydantic", "chromadb")

_FIRST_PROBE = (
    "import json, sys, time\n"
    "t0 = time.perf_counter(); c0 = time.process_time()\n"
    "import app\n"
    "t1 = time.perf_counter()\n"
    "event = json.load(open(sys.argv[1]))\n"
    "class Ctx:\n"
    "    function_name = 'coldstart'; function_version = '$LATEST'; memory_limit_in_mb = 512\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:000000000000:function:coldstart'\n"
    "    aws_request_id = 'coldstart-probe'; log_group_name = '/aws/lambda/coldstart'\n"
    "    log_stream_name = 'probe'\n"
    "    def get_remaining_time_in_millis(self): return 900000\n"
    "ctx = Ctx()\n"
    f"after_import = {{m: m in sys.modules for m in {WATCHED!r}}}\n"
    "t2 = time.perf_counter()\n"
    "try:\n"
    "    app.handler(event, ctx); error = None\n"
    "except Exception as exc:\n"
    "    error = f'{type(exc).__name__}: {exc}'[:200]\n"
    "t3 = time.perf_counter(); c3 = time.process_time()\n"
    f"after_call = {{m: m in sys.modules for m in {WATCHED!r}}}\n"
    "print(json.dumps({'import': t1 - t0, 'call': t3 - t2, 'error': error, 'cpu': c3 - c0,\n"
    "                  'after_import': after_import, 'after_call': after_call}))\n"
)


_POWERTOOLS = "from aws_lambda_powertools import Logger, Metrics\nLogger(); Metrics()\n"
#: what any handler of this stack pays before a line of ours runs: Powertools' Logger and Metrics,
#: pydantic's import and first model, and the Powertools utility the handler is built on
#: (producer: none; reaper: the event parser; cleanup and compactor: BatchProcessor with an SQS model)
STACK_FLOOR = {
    "producer": _POWERTOOLS + "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)\n",
    "reaper": _POWERTOOLS + "from aws_lambda_powertools.utilities.parser import BaseModel, event_parser\n"
    "class M(BaseModel):\n    x: int\n"
    "@event_parser(model=M)\ndef handler(event, context):\n    return event\n"
    "handler({'x': 1}, None)\n",
    "cleanup": _POWERTOOLS + "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType\n"
    "from aws_lambda_powertools.utilities.parser.models import SqsRecordModel\n"
    "BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)\n",
}
STACK_FLOOR["compactor"] = STACK_FLOOR["cleanup"]
_FLOOR_PROBE = (
    "import json, time\n"
    "t0 = time.perf_counter(); c0 = time.process_time()\n"
    "exec(compile({code!r}, 'floor', 'exec'))\n"
    "print(json.dumps({{'seconds': time.perf_counter() - t0, 'cpu': time.process_time() - c0}}))\n"
)


def stack_floor(h: str, env: dict[str, str], repeats: int) -> tuple[float, float]:
    """(best wall, best CPU) seconds of STACK_FLOOR[h] in fresh interpreters, like the probes."""
    code = _FLOOR_PROBE.format(code=STACK_FLOOR[h])
    runs = [_run_probe([code], None, env, 120, f"{h}: the stack floor probe") for _ in range(repeats)]
    return min(float(r["seconds"]) for r in runs), min(float(r["cpu"]) for r in runs)


def repo_root() -> Path:
    """The checkout the bench runs from: shared/storekeeper/dev/bench/ is four levels below it."""
    return Path(__file__).resolve().parents[4]


def _env(root: Path, fn_dir: Path, scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(LAMBDA_FIXED_ENV)  # as template.yaml's Globals set them on every function
    env.update(
        PYTHONPATH=os.pathsep.join([str(fn_dir), str(root / "shared")]),
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="storekeeper",
        AWS_DEFAULT_REGION=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        STOREKEEPER_HOME=str(scratch),
    )
    return env


def _probe(fn_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    return _run_probe([_PROBE], fn_dir, env, 120, f"importing {fn_dir / 'app.py'}")


def local_sample_event(event: Path, home: Path) -> Path:
    """`event` aimed at the local store under `home`, as `storekeeper invoke` aims it; the copy's path.

    The cleanup sample's task names the deployed S3 bucket: run as is, its first call
    would time boto3 and a credentials error, not a cleanup on the local store.
    """
    from storekeeper.sample_events import retarget
    from storekeeper.stores import open_store

    store = open_store(f"file://{home / 'stores' / 'default'}", create=False)
    aimed = retarget(json.loads(event.read_text()), store, event)
    out = home.with_name(f"{home.name}-{event.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(aimed.event))
    return out


def _first_invocation(fn_dir: Path, env: dict[str, str], event: Path, home: Path) -> dict[str, object]:
    """Import + one handler call in a fresh interpreter, with its own empty STOREKEEPER_HOME."""
    args = [_FIRST_PROBE, str(local_sample_event(event, home))]
    env = {**env, "STOREKEEPER_HOME": str(home)}
    return _run_probe(args, fn_dir, env, 300, f"first invocation of {fn_dir / 'app.py'}")


def _run_probe(
    args: list[str],
    cwd: Path | None,
    env: dict[str, str],
    timeout: int,
    what: str,
    interpreter: Sequence[str] = (sys.executable,),
) -> dict[str, Any]:
    """`python -c ARGS...` in a fresh interpreter -> the JSON object its last line prints."""
    out = subprocess.run(
        [*interpreter, "-c", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{what} failed: {tail[0]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def _loaded(flags: object) -> str:
    names = [m for m, on in flags.items() if on] if isinstance(flags, dict) else []
    return ", ".join(names) or "none of " + "/".join(WATCHED)


def top_imports(fn_dir: Path, env: dict[str, str], n: int = 4) -> list[tuple[str, float]]:
    """The `n` packages with the largest cumulative import time under `app` (`python -X importtime`).

    A package is counted where it is entered from a different package, so
    `boto3` imported by `storekeeper` shows up under both (times are cumulative).
    """
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        cwd=fn_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = parse_importtime(out.stderr)
    totals: dict[str, float] = {}
    for i, (depth, module, cumulative) in enumerate(rows):
        # -X importtime prints children before their parent: the parent is the next shallower line
        parent = next((m for d, m, _ in rows[i + 1 :] if d < depth), None)
        top = module.split(".")[0]
        if top != "app" and (parent is None or parent.split(".")[0] != top):
            totals[top] = totals.get(top, 0.0) + cumulative
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]


def parse_importtime(stderr: str) -> list[tuple[int, str, float]]:
    """(depth, module, cumulative seconds) per `import time:` line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cum, name = line.split("|")
        if not cum.strip().isdigit():
            continue  # the header line
        body = name[1:] if name.startswith(" ") else name
        depth = (len(body) - len(body.lstrip(" "))) // 2
        rows.append((depth, body.strip(), int(cum) / 1e6))
    return rows


def _artifact_sizes(root: Path) -> dict[str, dict[str, float]] | str:
    """MiB per built function (its own code, and with the layer), or why there are none."""
    build = root / ".aws-sam" / "build"
    script = root / "scripts" / "artifact_sizes.py"
    if not build.is_dir():
        return "not built: run `make build` (sam build), then the bench again"
    if not script.is_file():
        return "scripts/artifact_sizes.py is missing"
    out = subprocess.run(
        [sys.executable, str(script), "--json"], cwd=root, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        return f"scripts/artifact_sizes.py --json failed: {out.stderr.strip()[-200:]}"
    return parse_artifact_sizes(json.loads(out.stdout))


def parse_artifact_sizes(data: object) -> dict[str, dict[str, float]]:
    """scripts/artifact_sizes.py --json -> {function: {"with_layer": MiB, "function": MiB}} for built ones."""
    rows = data.get("functions", []) if isinstance(data, dict) else []
    sizes: dict[str, dict[str, float]] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not row.get("built"):
            continue
        name = str(row.get("function", "?")).removesuffix("Function").lower()
        entry = {}
        for key, label in (("total_with_layer_bytes", "with_layer"), ("function_bytes", "function")):
            v = row.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool):
                entry[label] = v / MIB
        if entry:
            sizes[name] = entry
    return sizes


def _measure_first_invocation(
    ctx: BenchContext, result: CaseResult, root: Path, h: str, env: dict[str, str], scratch: Path
) -> None:
    event = root / "events" / h / FIRST_EVENTS[h]
    if not event.is_file():
        result.notes.append(f"{h}: no sample event {event} for the first-invocation probe")
        return
    try:
        runs = [
            _first_invocation(root / "functions" / h, env, event, scratch / f"first-{h}-{i}")
            for i in range(ctx.sizes.import_repeats)
        ]
    except RuntimeError as exc:
        result.notes.append(str(exc))
        return
    imp = median([float(str(r["import"])) for r in runs])
    call = median([float(str(r["call"])) for r in runs])
    totals = [float(str(r["import"])) + float(str(r["call"])) for r in runs]
    total, best = median(totals), min(totals)
    params = {"handler": h, "event": f"events/{h}/{FIRST_EVENTS[h]}"}
    result.add("first_invocation_seconds", total, "s", "local", params=params, note="median")
    result.add("first_invocation_best_seconds", best, "s", "local", params=params, note="best of the runs")
    result.add("first_call_seconds", call, "s", "local", params=params)
    cpu = min(float(str(r["cpu"])) for r in runs)
    result.add(
        "first_invocation_cpu_seconds",
        cpu,
        "s",
        "local",
        params=params,
        note="best of the runs, CPU time of the fresh interpreter: on a shared machine wall time also "
        "holds the wait for a core, CPU time does not",
    )
    try:
        floor, floor_cpu = stack_floor(h, env, len(runs))
    except RuntimeError as exc:
        result.notes.append(str(exc))
    else:
        result.add(
            "stack_floor_seconds",
            floor,
            "s",
            "none",
            params=params,
            note="best of the runs: Powertools Logger/Metrics + pydantic's first model (+ the handler's "
            "Powertools utility) in a fresh interpreter, no storekeeper code",
        )
        result.add("stack_floor_cpu_seconds", floor_cpu, "s", "none", params=params, note="best of the runs")
        utility = {"producer": "", "reaper": ", event parser"}.get(h, ", BatchProcessor")
        result.notes.append(
            f"{h}: the stack alone (Powertools Logger/Metrics, pydantic's first model{utility}) takes "
            f"{floor * 1000:.0f} ms best ({floor_cpu * 1000:.0f} ms CPU): storekeeper's own share of the "
            f"best first invocation is ~{(best - floor) * 1000:.0f} ms "
            f"({(cpu - floor_cpu) * 1000:.0f} ms CPU)"
        )
    first = runs[0]
    result.notes.append(
        f"{h}: import {imp * 1000:.0f} ms + first call {call * 1000:.0f} ms = {total * 1000:.0f} ms median, "
        f"{best * 1000:.0f} ms best of {len(runs)}, CPU {cpu * 1000:.0f} ms (local store, local queues); "
        "loaded after import: "
        f"{_loaded(first['after_import'])}; after the call: {_loaded(first['after_call'])}"
        + (f"; the call raised {first['error']}" if first.get("error") else "")
    )
    if h in FIRST_INVOCATION_TARGET_S:
        limit = FIRST_INVOCATION_TARGET_S[h]
        result.targets.append(
            TargetResult.check(
                f"first_invocation_{h}",
                f"{h} first invocation (import + first call, sample event) <= {limit * 1000:.0f} ms, best of "
                f"{len(runs)}",
                backend="local",
                op="<=",
                threshold=limit,
                value=best,
                unit="s",
            )
        )


# -- SnapStart: the first invocation after a restore (the restore proxy) --------------------------------
#: a parent interpreter runs init with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start and the before-snapshot
#: hooks (priming), then forks: the child is the restored environment, it runs the after-restore hooks
#: and the first call. os.fork reseeds `random` in the child; the after-restore hook reseeds it anyway.
_RESTORE_PROBE = (
    "import json, os, sys, time\n"
    "c0 = time.process_time()\n"
    "import app\n"
    "import snapshot_restore_py as hooks\n"
    "todo = hooks.get_before_snapshot()\n"
    "primed = len(todo)\n"
    "while todo:\n"
    "    func, args, kwargs = todo.pop()\n"
    "    func(*args, **kwargs)\n"
    "init_cpu = time.process_time() - c0\n"
    "event = json.load(open(sys.argv[1]))\n"
    "class Ctx:\n"
    "    function_name = 'coldstart'; function_version = '1'; memory_limit_in_mb = 512\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:000000000000:function:coldstart:live'\n"
    "    aws_request_id = 'coldstart-restore-probe'; log_group_name = '/aws/lambda/coldstart'\n"
    "    log_stream_name = 'probe'\n"
    "    def get_remaining_time_in_millis(self): return 900000\n"
    "r, w = os.pipe()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.close(r)\n"
    "    t0 = time.perf_counter(); c0 = time.process_time()\n"
    "    for func, args, kwargs in hooks.get_after_restore():\n"
    "        func(*args, **kwargs)\n"
    "    t1 = time.perf_counter()\n"
    "    try:\n"
    "        app.handler(event, Ctx()); error = None\n"
    "    except Exception as exc:\n"
    "        error = f'{type(exc).__name__}: {exc}'[:200]\n"
    "    t2 = time.perf_counter(); c2 = time.process_time()\n"
    "    os.write(w, json.dumps({'hooks': t1 - t0, 'call': t2 - t1, 'total': t2 - t0, 'cpu': c2 - c0,\n"
    "                            'error': error}).encode())\n"
    "    os._exit(0)\n"
    "os.close(w)\n"
    "with os.fdopen(r) as f:\n"
    "    child = json.loads(f.read() or '{}')\n"
    "os.waitpid(pid, 0)\n"
    "print(json.dumps({**child, 'primed': primed, 'init_cpu': init_cpu}))\n"
)


def _measure_restored_invocation(
    ctx: BenchContext, result: CaseResult, root: Path, h: str, env: dict[str, str], scratch: Path
) -> None:
    """SnapStart's first invocation after a restore, best of `import_repeats` fresh parents: the
    after-restore hooks + the first call with the sample event, init and priming excluded (done
    before the snapshot). Lambda's own restore (Restore Duration) is not in it."""
    if not hasattr(os, "fork"):
        result.notes.append(f"{h}: no os.fork here: the SnapStart restore proxy needs it")
        return
    event = root / "events" / h / FIRST_EVENTS[h]
    env = {**env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    what = f"SnapStart restore proxy of {root / 'functions' / h / 'app.py'}"
    runs = []
    try:
        for i in range(ctx.sizes.import_repeats):
            home = scratch / f"restore-{h}-{i}"
            args = [_RESTORE_PROBE, str(local_sample_event(event, home))]
            runs.append(
                _run_probe(args, root / "functions" / h, {**env, "STOREKEEPER_HOME": str(home)}, 300, what)
            )
    except RuntimeError as exc:
        result.notes.append(str(exc))
        return
    if not runs[0].get("primed"):
        result.notes.append(f"{h}: app.py registers no SnapStart priming (storekeeper.snapstart.enable)")
        return
    params = {"handler": h, "event": f"events/{h}/{FIRST_EVENTS[h]}"}
    best = min(float(r["total"]) for r in runs)
    cpu = min(float(r["cpu"]) for r in runs)
    hooks = min(float(r["hooks"]) for r in runs)
    init_cpu = min(float(r["init_cpu"]) for r in runs)
    note = "best of the runs; after-restore hooks + first call in a fork of a primed interpreter, "
    note += "without Lambda's own restore (Restore Duration)"
    result.add("restored_first_invocation_seconds", best, "s", "local", params=params, note=note)
    result.add("restored_first_invocation_cpu_seconds", cpu, "s", "local", params=params, note=note)
    result.add("after_restore_hooks_seconds", hooks, "s", "none", params=params, note="best of the runs")
    once = "best of the runs: import + priming, paid once per published version"
    result.add("snapstart_init_cpu_seconds", init_cpu, "s", "none", params=params, note=once)
    errors = [r["error"] for r in runs if r.get("error")]
    result.notes.append(
        f"{h}: SnapStart restore proxy (after-restore hooks {hooks * 1000:.1f} ms + first call, local "
        f"store): {best * 1000:.0f} ms best of {len(runs)}, CPU {cpu * 1000:.0f} ms; init + priming "
        f"before the snapshot {init_cpu * 1000:.0f} ms CPU; Lambda's restore itself (Restore Duration) "
        "not included" + (f"; the call raised {errors[0]}" if errors else "")
    )


# --- the built artifacts (`make build`) under the Lambda runtime's interpreter, with their shipped
# bytecode and with it hidden: what precompiling the layer and the functions gives a cold start
BUILT = {"producer": "ProducerFunction", "reaper": "ReaperFunction", "cleanup": "CleanupFunction"}
BUILT_IMPORT_ONLY = {"compactor": "CompactorFunction"}
LAYER_ARTIFACT = "StorekeeperLayer"
#: runs first in the artifact probe: the function's folder, then the layer's python/, as Lambda orders them
_ARTIFACT_SYS_PATH = "import sys\nsys.path[:0] = sys.argv[-2:]\n"


def artifact_interpreter(python: str) -> tuple[str, ...]:
    """`python` as Lambda runs a handler from read-only /var/task and /opt: isolated (-I: no PYTHON*
    variables, no user site, no cwd on sys.path), without site-packages (-S: the artifacts alone) and
    writing no bytecode (-B), so a module without a usable pyc is compiled on every start."""
    return (python, "-I", "-S", "-B")


def artifact_probe_args(code: str, args: Sequence[str], fn_dir: Path, layer_python: Path) -> list[str]:
    """`-c` arguments running `code` with sys.path = function folder + layer python/ first."""
    return [_ARTIFACT_SYS_PATH + code, *args, str(fn_dir), str(layer_python)]


def _hide_bytecode(build: Path, scratch: Path) -> Path:
    """A copy of the built layer and functions without __pycache__ (hard links where possible)."""
    from storekeeper.dev.bytecode import copy_without_bytecode

    bare = scratch / "artifacts-without-bytecode"
    for name in (LAYER_ARTIFACT, *BUILT.values(), *BUILT_IMPORT_ONLY.values()):
        if (build / name).is_dir():
            copy_without_bytecode(build / name, bare / name)
    return bare


def _artifact_runs(
    python: str,
    trees: dict[str, Path],
    name: str,
    event: Path | None,
    env: dict[str, str],
    scratch: Path,
    repeats: int,
) -> dict[str, list[dict[str, Any]]]:
    """`repeats` fresh runs from each tree's artifact `name`, interleaved (A/B in one shell): import +
    first call with `event` on a fresh local store (each run its own STOREKEEPER_HOME), or `import app`."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in trees}
    for i in range(repeats):
        for kind, tree in trees.items():
            code, args, run_env = _PROBE, [], env
            if event is not None:
                home = scratch / f"artifact-{name}-{kind}-{i}"
                code, args = _FIRST_PROBE, [str(local_sample_event(event, home))]
                run_env = {**env, "STOREKEEPER_HOME": str(home)}
            all_args = artifact_probe_args(code, args, tree / name, tree / LAYER_ARTIFACT / "python")
            what = f"{name} ({kind} bytecode) under {python}"
            runs[kind].append(
                _run_probe(all_args, tree / name, run_env, 300, what, artifact_interpreter(python))
            )
    return runs


def _report_artifact(
    result: CaseResult, h: str, python: str, runs: dict[str, list[dict[str, Any]]], first_call: bool
) -> None:
    """Best CPU and wall time per variant, the CPU the shipped bytecode saves, and a note saying so."""
    what = "first_invocation" if first_call else "import"
    backend = "local" if first_call else "none"
    n = min(len(rs) for rs in runs.values())
    best = {kind: min(float(r["cpu"]) for r in rs) for kind, rs in runs.items()}
    wall = {
        kind: min(float(r["import"]) + float(r["call"]) if first_call else float(r["seconds"]) for r in rs)
        for kind, rs in runs.items()
    }
    note = f"best of {n}, the built artifact under python3.12 -I -S -B"
    for kind in runs:
        params = {"handler": h, "bytecode": kind, "python": python}
        for metric, values in ((f"artifact_{what}_cpu_seconds", best), (f"artifact_{what}_seconds", wall)):
            result.add(metric, values[kind], "s", backend, params=params, note=note)
    saved = best["hidden"] - best["shipped"]
    result.add(
        f"artifact_{what}_cpu_hidden_over_shipped",
        best["hidden"] / best["shipped"],
        "ratio",
        "none",
        params={"handler": h},
        note="best CPU time with the bytecode hidden over with it shipped",
    )
    if saved > 0:  # a figure is positive; a loaded machine's noise can hide a small saving
        result.add(
            f"artifact_{what}_bytecode_saves_cpu_seconds",
            saved,
            "s",
            "none",
            params={"handler": h},
            note="best CPU time with the bytecode hidden minus with it shipped",
        )
    errors = sorted({str(r["error"]) for rs in runs.values() for r in rs if r.get("error")})
    share = saved / best["hidden"] if best["hidden"] > 0 else 0.0
    result.notes.append(
        f"{h}: built artifact, {what.replace('_', ' ')} under python3.12: {best['shipped'] * 1000:.0f} ms "
        f"CPU with the shipped bytecode, {best['hidden'] * 1000:.0f} ms with it hidden (compiled on every "
        f"cold start): the bytecode saves {saved * 1000:.0f} ms CPU ({share:.0%}); wall "
        f"{wall['shipped'] * 1000:.0f} / {wall['hidden'] * 1000:.0f} ms; best of {n}"
        + (f"; the call raised {errors[0]}" if errors else "")
    )


def _measure_built_artifacts(ctx: BenchContext, result: CaseResult, root: Path, scratch: Path) -> None:
    """First invocation of each small function and the compactor's import from the BUILT artifacts, with
    the shipped bytecode and with it hidden, best CPU time of `import_repeats` each."""
    from storekeeper.dev.bytecode import lambda_python

    build = root / ".aws-sam" / "build"
    if not (build / LAYER_ARTIFACT / "python").is_dir():
        result.notes.append("built artifacts: not built: run make build")
        return
    python = lambda_python()
    if python is None:
        result.notes.append("built artifacts: python3.12 (the Lambda runtime) not found: pyenv install 3.12")
        return
    trees = {"shipped": build, "hidden": _hide_bytecode(build, scratch)}
    env = _env(root, build, scratch)
    env.pop("PYTHONPATH", None)  # -I ignores it anyway; the probe sets sys.path
    probes: list[tuple[str, str, Path | None]] = [
        (h, name, root / "events" / h / FIRST_EVENTS[h]) for h, name in BUILT.items()
    ]
    probes += [(h, name, None) for h, name in BUILT_IMPORT_ONLY.items()]
    for h, name, event in probes:
        if not (build / name).is_dir() or (event is not None and not event.is_file()):
            result.notes.append(f"built artifacts: {name} or its sample event missing")
            continue
        try:
            runs = _artifact_runs(python, trees, name, event, env, scratch, ctx.sizes.import_repeats)
        except RuntimeError as exc:
            result.notes.append(f"built artifacts: {exc}")
            continue
        _report_artifact(result, h, python, runs, first_call=event is not None)


def run(ctx: BenchContext, result: CaseResult) -> None:
    root = repo_root()
    scratch = ctx.scratch("coldstart")
    result.parameters.update(repeats=ctx.sizes.import_repeats, python=sys.executable)
    found = [h for h in HANDLERS if (root / "functions" / h / "app.py").is_file()]
    if not found:
        raise CaseSkipped(f"no functions/*/app.py under {root}")
    for h in HANDLERS:
        fn_dir = root / "functions" / h
        if h not in found:
            result.notes.append(f"{h}: functions/{h}/app.py not found")
            continue
        env = _env(root, fn_dir, scratch)
        try:
            runs = [_probe(fn_dir, env) for _ in range(ctx.sizes.import_repeats)]
        except RuntimeError as exc:
            result.notes.append(str(exc))
            value = None
        else:
            value = min(float(r["seconds"]) for r in runs)
            chroma = bool(runs[0]["chromadb"])
            result.add(
                "import_seconds",
                median([float(r["seconds"]) for r in runs]),
                "s",
                "none",
                handler=h,
                imports_chromadb=chroma,
                note="median",
            )
            result.add("import_best_seconds", value, "s", "none", handler=h, note=f"best of {len(runs)}")
            tops = ", ".join(f"{name} {sec * 1000:.0f} ms" for name, sec in top_imports(fn_dir, env))
            result.notes.append(f"{h}: heaviest imports: {tops}")
            if h in NO_CHROMA and chroma:
                result.notes.append(f"{h}: imports chromadb, which it must not (cold start)")
        if h in IMPORT_TARGET_S:
            result.targets.append(
                TargetResult.check(
                    f"import_{h}",
                    f"{h} handler import <= {IMPORT_TARGET_S[h] * 1000:.0f} ms, best of "
                    f"{ctx.sizes.import_repeats} (no chromadb)",
                    backend="none",
                    op="<=",
                    threshold=IMPORT_TARGET_S[h],
                    value=value,
                    unit="s",
                )
            )
        if h in FIRST_EVENTS and h in found:
            _measure_first_invocation(ctx, result, root, h, env, scratch)
        if h in SNAPSTART and h in found:
            _measure_restored_invocation(ctx, result, root, h, env, scratch)
    _measure_built_artifacts(ctx, result, root, scratch)
    sizes = _artifact_sizes(root)
    compactor_mib = None
    if isinstance(sizes, str):
        result.notes.append(f"artifact sizes: {sizes}")
    else:
        for name, entry in sorted(sizes.items()):
            for part, mib in entry.items():
                result.add("artifact_unzipped_mib", mib, "MiB", "none", function=name, part=part)
        compactor_mib = sizes.get("compactor", {}).get("with_layer")
        result.notes.append(
            "artifact sizes from scripts/artifact_sizes.py over .aws-sam/build (last `make build`)"
        )
    result.targets.append(
        TargetResult.check(
            "compactor_artifact",
            "compactor artifact (function + layer) <= 250 MiB unzipped",
            backend="none",
            op="<=",
            threshold=COMPACTOR_ARTIFACT_TARGET_MIB,
            value=compactor_mib,
            unit="MiB",
            note=None if compactor_mib is not None else "run `make build` to measure",
        )
    )
