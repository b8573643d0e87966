"""Prove that every built artifact ships Python 3.12 bytecode Lambda can use as is.

Reads .aws-sam/build (run `make build`): in the layer (python/) and in every function, each .py an
import could load must have `__pycache__/<name>.cpython-312.pyc` with 3.12's magic, an unchecked-hash
header (PEP 552) and the hash of the source next to it. Lambda's /opt and /var/task are read-only, so a
missing or stale pyc means compiling that module on every cold start. Exits 1 naming every offender.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from storekeeper.dev.bytecode import bytecode_problems, importable_sources

REPO = Path(__file__).resolve().parents[1]
LAYER = "StorekeeperLayer"


def sys_path_roots(build: Path) -> dict[str, Path]:
    """Each built artifact -> the folder Lambda puts on sys.path (a layer's python/, a function's root)."""
    roots = {}
    for artifact in sorted(p for p in build.iterdir() if p.is_dir()):
        roots[artifact.name] = artifact / "python" if artifact.name == LAYER else artifact
    return roots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", type=Path, default=REPO / ".aws-sam" / "build")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (args.build / LAYER).is_dir():
        raise SystemExit(f"{args.build / LAYER} not found: run `make build` first")
    counts: dict[str, int] = {}
    bad: list[str] = []
    for name, root in sys_path_roots(args.build).items():
        counts[name] = sum(1 for _ in importable_sources(root))
        bad += [f"{name}/{line}" for line in bytecode_problems(root)]
    if args.json:
        print(json.dumps({"modules": counts, "problems": bad}, indent=2))
    else:
        for name, n in counts.items():
            missing = sum(1 for line in bad if line.startswith(f"{name}/"))
            print(f"{name}: {n} importable modules, {missing} without usable bytecode")
        if bad:
            print("NOT all precompiled (unchecked-hash cpython-312 pycs):\n  " + "\n  ".join(bad[:200]))
            if len(bad) > 200:
                print(f"  ... and {len(bad) - 200} more")
        else:
            print("every importable module ships an unchecked-hash cpython-312 pyc matching its source")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
