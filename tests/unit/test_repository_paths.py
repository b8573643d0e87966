"""No tracked file points outside the repository: a reader of a clone must find every cited rule in it.

The team's own files (its contract and lessons, the machine's work directories) are not part of a
clone; the contract is kept, in our words, in docs/design-notes.md and cited from there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# spelled in pieces so this file does not match itself
OUTSIDE = re.compile(
    "|".join(
        [
            r"/" + r"work/",  # the machine's work directories
            r"\.\./" + r"shared\b",  # the team's folder beside the clone
            r"\b(?:DESIGN|LESSONS)" + r"(?:\.md\b|\s*§)",  # the team's contract and lessons files
            r"\bDESIGN" + r"\s+\d",  # a section number of that file
        ]
    )
)
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")

#: files that may name an outside path, and why
ALLOWED = {
    ".ci/run": "CI's own layout: a fresh clone with the team's folder beside it",
}
#: benchmark reports record the interpreter of the run that measured them (data, not a reference)
ALLOWED_PREFIXES = ("docs/bench/",)


def tracked_text_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True
    ).stdout
    names = [n for n in out.split("\0") if n]
    assert names, "git ls-files listed nothing"
    return [n for n in names if (REPO / n).is_file() and b"\0" not in (REPO / n).read_bytes()[:8192]]


def test_no_tracked_file_mentions_a_path_outside_the_repository() -> None:
    hits = []
    for name in tracked_text_files():
        if name in ALLOWED or name.startswith(ALLOWED_PREFIXES):
            continue
        for n, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1):
            if m := OUTSIDE.search(line):
                hits.append(f"{name}:{n}: {m[0]!r} in {line.strip()[:100]!r}")
    assert hits == [], "cite docs/design-notes.md (or another in-repo doc) instead:\n" + "\n".join(hits)


def test_relative_links_in_markdown_stay_inside_the_repository() -> None:
    bad = []
    for name in tracked_text_files():
        if not name.endswith(".md"):
            continue
        here = (REPO / name).parent
        for target in LINK.findall((REPO / name).read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            resolved = (here / target).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                bad.append(f"{name}: ({target})")
    assert bad == []


@pytest.mark.parametrize(
    "line",
    [
        "see /" + "work/shared/x",
        "beside ../" + "shared",
        "DESIGN" + " §2",
        "LESSONS" + ".md says",
        "DESIGN" + " 2's",
    ],
)
def test_the_pattern_catches_each_kind_of_outside_reference(line: str) -> None:
    assert OUTSIDE.search(line)


@pytest.mark.parametrize("line", ["docs/design-notes.md#invariants", "design of the planner", "../README.md"])
def test_the_pattern_leaves_in_repository_text_alone(line: str) -> None:
    assert not OUTSIDE.search(line)
