"""The README's "Using the CLI" commands run as written, in order, on a fresh embedded store
(examples/ and events/ are what makes them runnable)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Using the CLI") :]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    out = []
    for line in block[1].splitlines():
        line = line.split("  #", 1)[0].strip()
        if line.startswith("storekeeper "):
            out.append(shlex.split(line)[1:])
    return out


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for d in ("examples", "events"):
        (tmp_path / d).symlink_to(REPO / d)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPACTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing may reach AWS
    commands = readme_commands()
    assert len(commands) >= 15
    other = Path("/tmp/storekeeper-readme")
    try:
        for args in commands:
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, f"storekeeper {shlex.join(args)}:\n{res.output[-3000:]}"
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert (tmp_path / "status.html").read_text().startswith("<!DOCTYPE html>")
    store = tmp_path / "home" / "stores" / "default"
    assert (store / "snapshot" / "docs" / "latest" / "pointer.txt").is_file()
    assert list((store / "reports" / "reaper").glob("*.json"))
