"""The README's code map names every module and package of shared/storekeeper, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "shared" / "storekeeper"
ENTRY = re.compile(r"^((?:[a-z_]+(?:\.py|/))(?:, [a-z_]+(?:\.py|/))*)\s{2,}\S")


def code_map_names() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Code map", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    names: list[str] = []
    for line in block.strip().splitlines():
        m = ENTRY.match(line)
        assert m, f"code map line is not `name[, name]  description`: {line!r}"
        names.extend(m[1].split(", "))
    return names


def tree_names() -> set[str]:
    out = set()
    for p in PACKAGE.iterdir():
        if p.name.startswith(("_", ".")) or p.name == "py.typed":
            continue
        if p.is_dir():
            out.add(p.name + "/")
        elif p.suffix == ".py":
            out.add(p.name)
    return out


def test_the_readme_code_map_matches_the_tree() -> None:
    names = code_map_names()
    assert len(names) == len(set(names)), "a module is listed twice"
    assert set(names) == tree_names()
