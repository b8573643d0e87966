"""Hostile input to the ops commands: versions, run references, store URLs and report bodies give a
clear error (exit 1, one line) or are skipped, never a traceback, a hang or a write."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from storekeeper import history
from storekeeper.cli import app
from storekeeper.stores.local import LocalStore

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store")
    s.put("reports/reaper/20310101T000000000000Z.json", b"{}")
    return s


def clean_failure(args: list[str]) -> str:
    res = CliRunner().invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (0, 1, 2), res.output
    assert "Traceback" not in res.output
    return res.output


@pytest.mark.slow  # hypothesis through the CLI: >5 s here
@SETTINGS
@given(version=TEXT, collection=TEXT)
def test_rollback_and_snapshots_with_any_names(store: LocalStore, version: str, collection: str) -> None:
    before = sorted(i.key for i in store.list(""))
    out = clean_failure(["rollback", collection or "docs", version or "x", "--store", store.url, "--yes"])
    assert "error" in out.lower() or "usage" in out.lower()
    clean_failure(["snapshots", collection or "docs", "--store", store.url])
    assert sorted(i.key for i in store.list("")) == before  # nothing written


@pytest.mark.slow  # hypothesis through the CLI: >5 s here
@SETTINGS
@given(ref=TEXT)
def test_reports_show_with_any_reference(store: LocalStore, ref: str) -> None:
    clean_failure(["reports", "show", ref or "latest", "--store", store.url, "--json"])


@pytest.mark.slow  # hypothesis through the CLI: >5 s here
@SETTINGS
@given(src=TEXT, dst=TEXT)
def test_migrate_with_any_urls(store: LocalStore, src: str, dst: str, tmp_path: Path) -> None:
    clean_failure(["migrate", "--from", src or "x", "--to", dst or "y", "--journal", str(tmp_path / "j")])


@pytest.mark.slow  # hypothesis through the CLI: >5 s here
@SETTINGS
@given(body=st.binary(max_size=200) | TEXT.map(str.encode))
def test_a_broken_report_is_skipped_by_the_history(store: LocalStore, body: bytes) -> None:
    store.put("reports/reaper/20310102T000000000000Z.json", body)
    runs = history.load(store)
    assert all(r.info.run_id for r in runs)
    assert CliRunner().invoke(app, ["status", "--store", store.url, "--json"]).exit_code == 0
