"""`storekeeper status`: a real local store with two collections (compacted by the real compactor)
and a reaper history (real reaper runs at different clocks): the table, --json, --check and the
--html page carry the same figures, and the reaper writes latest.html next to its report."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.history import INDEX_KEY, LATEST_PAGE, load
from storekeeper.models.status import StoreStatus
from storekeeper.policies import parse_policies
from storekeeper.status import store_status
from storekeeper.stores.local import LocalStore
from tests.status_support import POLICIES, status_world


class Cells(HTMLParser):
    """Text of every <td> per table class, and the ids of every svg."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td":
            self._cell = []
        elif tag == "svg":
            self.svgs.append(a.get("id") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rows(page: str, table: str) -> list[list[str]]:
    p = Cells()
    p.feed(page)
    return [r for r in p.tables[table] if r]


@pytest.fixture
def world(tmp_path: Path) -> tuple[LocalStore, Path, datetime]:
    """tests.status_support.status_world: two collections and four reaper runs one day apart."""
    return status_world(tmp_path)


def test_status_measures_collections_and_reads_the_reaper_history(
    world: tuple[LocalStore, Path, datetime],
) -> None:
    store, pol, start = world
    st = store_status(store, parse_policies(pol.read_text(), str(pol)))
    by = {c.collection: c for c in st.collections}
    assert set(by) == {"docs", "notes"}
    assert (by["docs"].record_count, by["docs"].versions, by["docs"].pending_deltas) == (12, 3, 0)
    assert (by["notes"].record_count, by["notes"].versions, by["notes"].pending_deltas) == (4, 1, 1)
    assert by["notes"].oldest_pending_age_s is not None
    assert by["notes"].oldest_pending_age_s < 600
    assert [h.record_count for h in by["docs"].history] == [12, 8, 4]  # newest first
    assert by["docs"].history[0].live
    assert not by["docs"].history[1].live
    assert by["docs"].versions_bytes == sum(h.bytes for h in by["docs"].history) > 0
    [bucket] = st.buckets
    listed = sum(i.size for i in store.list(""))
    assert bucket.bytes == listed
    assert bucket.capacity == 40_000_000
    # 4 reaper runs + now; each run recorded what the store held then
    assert [p.run_id for p in st.history][-1] == "now"
    assert len(st.history) == 5
    assert [p.at for p in st.history[:4]] == [start + timedelta(days=d) for d in range(4)]
    assert st.history[0].usage["main"] < st.history[2].usage["main"]
    assert st.last_run is not None
    assert st.last_run.started_at == start + timedelta(days=3)
    assert {(f.store, f.target) for f in st.forecasts} == {("main", "high"), ("main", "hard")}


def test_status_html_page_carries_the_figures(
    world: tuple[LocalStore, Path, datetime], tmp_path: Path
) -> None:
    store, pol, _ = world
    page_path = tmp_path / "status.html"
    res = CliRunner().invoke(
        app, ["status", "--store", store.url, "--policies", str(pol), "--html", str(page_path), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    st = StoreStatus.model_validate(data)
    page = page_path.read_text()
    coll = {r[0]: r for r in rows(page, "collections")}
    assert coll["docs"][1] == st.collections[0].live_version
    assert coll["docs"][2] == "12"
    assert coll["notes"][2] == "4"
    assert coll["notes"][4] == "1"
    [b] = rows(page, "buckets")
    assert b[4] == "40.0MB"
    assert b[5] == f"{st.buckets[0].ratio:.1%}"
    assert b[7] == "ok"
    assert [r[1] for r in rows(page, "versions-docs")] == ["12", "8", "4"]
    svgs = Cells()
    svgs.feed(page)
    assert {"usage-main", "pending", "snap-records-docs", "snap-bytes-notes"} <= set(svgs.svgs)
    # the usage chart plots each run as a ratio of the capacity, with the three watermarks
    usage_svg = page[page.index('id="usage-main"') : page.index("</svg>", page.index('id="usage-main"'))]
    limits = dict(re.findall(r'data-limit="(\w+)" data-value="([0-9.]+)"', usage_svg))
    assert limits == {"low": "0.6", "high": "0.8", "hard": "0.9"}
    plotted = [float(v) for v in re.findall(r'<circle [^>]*data-value="([0-9.e-]+)"', usage_svg)]
    assert plotted == pytest.approx([p.usage["main"] / 40_000_000 for p in st.history], rel=1e-4)
    # self-contained: no script, no external reference, a CSP that forbids any fetch
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "default-src 'none'" in page
    assert "storekeeper status" in page
    assert "Last reaper run" in page


def test_reaper_writes_latest_html_next_to_its_report(world: tuple[LocalStore, Path, datetime]) -> None:
    store, _, _start = world
    page = store.get(LATEST_PAGE).body.decode()
    runs = load(store)
    assert len(runs) == 4
    assert runs[-1].status is not None
    assert runs[-1].info.run_id in page  # the last run's id in the "last reaper run" table
    assert 'id="usage-main"' in page


def test_check_exits_non_zero_above_the_high_watermark(
    world: tuple[LocalStore, Path, datetime], tmp_path: Path
) -> None:
    store, _, _ = world
    used = sum(i.size for i in store.list(""))
    tight = tmp_path / "tight.yaml"
    tight.write_text(POLICIES.format(cap=int(used / 0.85)))  # ratio 0.85: above high (0.8), below hard
    ok = CliRunner().invoke(
        app, ["status", "--store", store.url, "--policies", str(tight.with_name("policies.yaml")), "--check"]
    )
    assert ok.exit_code == 0, ok.output
    res = CliRunner().invoke(
        app, ["status", "--store", store.url, "--policies", str(tight), "--check", "--json"]
    )
    assert res.exit_code == 3, res.output
    problems = json.loads(res.stdout)["problems"]
    assert len(problems) == 1
    assert "above-high" in problems[0]


def test_empty_store_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    store = LocalStore(tmp_path / "empty")
    res = CliRunner().invoke(app, ["status", "--store", store.url])
    assert res.exit_code == 0, res.output
    assert "no collections in this store yet" in res.output
    assert "last reaper run: none recorded" in res.output
    assert all(len(line) <= 80 for line in res.output.splitlines())


def test_history_comes_from_the_index_and_falls_back_to_the_reports(
    world: tuple[LocalStore, Path, datetime],
) -> None:
    store, pol, start = world
    loaded = parse_policies(pol.read_text(), str(pol))
    index = store.get(INDEX_KEY).body
    assert len(json.loads(index)["points"]) == 4
    # the index alone carries the history: reports removed (e.g. by the 30-day policy), charts stay
    for key in [i.key for i in store.list("reports/reaper/") if i.key.endswith("Z.json")]:
        store.delete(key)
    st = store_status(store, loaded)
    assert [p.at for p in st.history[:4]] == [start + timedelta(days=d) for d in range(4)]
    assert st.last_run is not None
    # a broken index: the newest reports are read instead (here: none left)
    store.put(INDEX_KEY, b"{not json")
    st = store_status(store, loaded)
    assert [p.run_id for p in st.history] == ["now"]
    assert st.last_run is None


@pytest.mark.parametrize(
    ("top", "whole", "ticks"),
    [
        (0.9, False, [0, 0.25, 0.5, 0.75]),  # was 0 %, 22 %, 45 %, 68 %, 90 %
        (0.023, False, [0, 0.01, 0.02]),
        (936_600, False, [0, 250_000, 500_000, 750_000]),
        (40e6, False, [0, 10e6, 20e6, 30e6, 40e6]),
        (10, True, [0, 5, 10]),  # counts: whole steps
        (6, True, [0, 2, 4, 6]),
        (1, True, [0, 1]),
    ],
)
def test_chart_axes_use_round_steps(top: float, whole: bool, ticks: list[float]) -> None:
    from storekeeper.status_page import axis_ticks

    assert axis_ticks(top, whole=whole) == pytest.approx(ticks)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=True)))
def test_status_page_escapes_as_html_escape_does(value: object) -> None:
    """The page escapes with its own table (no `import html` on the reaper's cold path): same text."""
    from html import escape

    from storekeeper.status_page import _e

    assert _e(value) == escape(str(value), quote=True)


def test_status_models_are_built_at_import_each_schema_once() -> None:
    """Every reaper run validates all of them; deferred, the measurement's and the status page's schemas
    each generated the collection, version and vector models again (docs/performance.md, cold start)."""
    import subprocess
    import sys

    code = (
        "import pydantic\n"
        "from storekeeper.models import status as m\n"
        "models = [v for v in vars(m).values() if isinstance(v, type) and issubclass(v, m._Read)]\n"
        "print(len(models), all(c.__pydantic_complete__ for c in models))\n"
    )
    shared = str(Path(__file__).resolve().parents[2] / "shared")
    out = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": shared}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    count, complete = out.stdout.split()
    assert int(count) >= 10
    assert complete == "True"
