"""Unzipped size of each built function and of the layer, against Lambda's 250 MB limit.

Lambda counts a function's unzipped code plus all its layers against 250 MB (262,144,000 bytes), so
the number that matters is function + StorekeeperLayer. Reads .aws-sam/build (run `make build`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 262_144_000  # AWS: "250 MB (unzipped, including layers)" = 250 MiB
LAYER = "StorekeeperLayer"
FUNCTIONS = ["ProducerFunction", "CompactorFunction", "ReaperFunction", "CleanupFunction", "QueryFunction"]


def tree_size(path: Path) -> int:
    """Bytes of every regular file below path (symlinks not followed, as in a zip)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(build: Path) -> dict[str, object]:
    layer_dir = build / LAYER
    if not layer_dir.is_dir():
        raise SystemExit(f"{layer_dir} not found: run `make build` first")
    layer = tree_size(layer_dir)
    rows = []
    for name in FUNCTIONS:
        fn_dir = build / name
        if not fn_dir.is_dir():
            rows.append({"function": name, "built": False})
            continue
        size = tree_size(fn_dir)
        total = size + layer
        rows.append(
            {
                "function": name,
                "built": True,
                "function_bytes": size,
                "total_with_layer_bytes": total,
                "limit_bytes": LIMIT_BYTES,
                "headroom_bytes": LIMIT_BYTES - total,
                "within_limit": total <= LIMIT_BYTES,
            }
        )
    return {"layer": {"name": LAYER, "bytes": layer}, "functions": rows, "limit_bytes": LIMIT_BYTES}


def mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB"


def print_table(report: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    layer = report["layer"]
    assert isinstance(layer, dict)
    table = Table(title=f"Unzipped artifact sizes (limit {mb(LIMIT_BYTES)} per function incl. layers)")
    for col in ("artifact", "own size", "with layer", "headroom", "ok"):
        table.add_column(col, justify="left" if col == "artifact" else "right")
    table.add_row(f"{LAYER} (layer)", mb(layer["bytes"]), "", "", "")
    functions = report["functions"]
    assert isinstance(functions, list)
    for row in functions:
        if not row["built"]:
            table.add_row(row["function"], "not built", "", "", "[red]no[/]")
            continue
        ok = "[green]yes[/]" if row["within_limit"] else "[red]NO[/]"
        table.add_row(
            row["function"],
            mb(row["function_bytes"]),
            mb(row["total_with_layer_bytes"]),
            mb(row["headroom_bytes"]),
            ok,
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    report = measure(args.build_dir)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_table(report)
    rows = report["functions"]
    assert isinstance(rows, list)
    return 0 if all(r.get("within_limit") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
