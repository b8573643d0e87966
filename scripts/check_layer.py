"""Prove that what `sam build` made is production code only, and measure it.

Reads .aws-sam/build (run `make build`): the layer and every function must hold no
benchmark, dev server, emulator, CLI, local runtime, test package or test-only helper.
Prints the layer's size and, with --python, each handler's cold import time from the
built artifacts alone (median of --runs fresh interpreters). Exits 1 naming every offender.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYER = "StorekeeperLayer"
FUNCTIONS = {
    "ProducerFunction": "producer",
    "CompactorFunction": "compactor",
    "ReaperFunction": "reaper",
    "CleanupFunction": "cleanup",
}
#: paths (relative to an artifact's python/ or root) that must not be deployed
FORBIDDEN_PATHS = (
    "storekeeper/dev",
    "storekeeper/bench",
    "storekeeper/cli",
    "storekeeper/runtime.py",
    "storekeeper/devservers.py",
    "storekeeper/devstack.py",
    "storekeeper/emulators",
    "tests",
)
#: definitions that exist only for tests; none may be deployed
FORBIDDEN_DEFS = re.compile(r"^(def (sqs_event|failed_ids|route_write)\b|class OverflowWriter\b)", re.M)


def tree_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def offenders(artifact: Path) -> list[str]:
    found = []
    for root in (artifact, artifact / "python"):
        for rel in FORBIDDEN_PATHS:
            if (root / rel).exists():
                found.append(str((root / rel).relative_to(artifact.parent)))
    for py in artifact.rglob("storekeeper/**/*.py"):
        for m in FORBIDDEN_DEFS.finditer(py.read_text(errors="replace")):
            found.append(f"{py.relative_to(artifact.parent)}: {m[0]}")
    return found


def import_ms(python: str, fn_dir: Path, layer: Path, runs: int) -> dict[str, float]:
    """Median wall and CPU time of `import app` in a fresh interpreter, from the artifacts alone
    (CPU time is the steadier figure on a shared machine)."""
    code = (
        "import time; t, c = time.perf_counter(), time.process_time(); import app; "
        "print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(fn_dir), str(layer / "python")]),
        PYTHONDONTWRITEBYTECODE="1",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="storekeeper",
        CHROMA_TELEMETRY_IMPL="none",
        ANONYMIZED_TELEMETRY="False",
        AWS_DEFAULT_REGION="us-east-1",
    )
    wall, cpu = [], []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-c", code], cwd=fn_dir, env=env, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise SystemExit(f"{fn_dir.name}: import app failed:\n{out.stderr[-2000:]}")
        w, c = out.stdout.strip().splitlines()[-1].split()
        wall.append(float(w))
        cpu.append(float(c))
    return {"wall": round(statistics.median(wall), 1), "cpu": round(statistics.median(cpu), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", type=Path, default=REPO / ".aws-sam" / "build")
    ap.add_argument("--python", help="python3.12 to time each handler's import with (skipped if unset)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    layer = args.build / LAYER
    if not layer.is_dir():
        raise SystemExit(f"{layer} not found: run `make build` first")
    bad = offenders(layer)
    for name in FUNCTIONS:
        if (args.build / name).is_dir():
            bad += offenders(args.build / name)
    report: dict[str, object] = {
        "layer_bytes": tree_size(layer),
        "storekeeper_bytes": tree_size(layer / "python" / "storekeeper"),
        "offenders": bad,
    }
    if args.python:
        report["import_ms"] = {
            short: import_ms(args.python, args.build / name, layer, args.runs)
            for name, short in FUNCTIONS.items()
            if (args.build / name).is_dir()
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"layer {report['layer_bytes'] / 2**20:.1f} MiB (storekeeper package "
              f"{report['storekeeper_bytes'] / 2**10:.0f} KiB)")  # fmt: skip
        for fn, ms in dict(report.get("import_ms") or {}).items():  # type: ignore[call-overload]
            print(f"  import {fn}: {ms['wall']} ms wall, {ms['cpu']} ms CPU (median of {args.runs})")
        if bad:
            print("NOT production-only; deployed dev/test code:\n  " + "\n  ".join(bad))
        else:
            print("production code only: no bench, dev servers, emulators, CLI, runtime or test helpers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
