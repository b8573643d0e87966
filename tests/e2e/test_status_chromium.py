"""The `status --html` page opens in headless Chromium (Debian's `chromium`, installed by `make test`)
with no console error or blocked request, renders every chart, and a screenshot is kept as an
artifact (`$STOREKEEPER_ARTIFACTS`, default `test-artifacts/` in the repository)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.models.status import (
    BucketStatus,
    CollectionStatus,
    HistoryPoint,
    RunInfo,
    StoreStatus,
    VectorStatus,
    VersionStat,
)
from storekeeper.status_page import render_html
from tests.status_support import status_world

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("STOREKEEPER_ARTIFACTS", REPO / "test-artifacts"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOW = datetime(2031, 3, 1, 12, tzinfo=UTC)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    return path


def sample_status() -> StoreStatus:
    hist = [
        HistoryPoint(
            at=NOW - timedelta(days=6 - d),
            run_id=f"run-{d}",
            usage={"main": 300_000_000 + d * 90_000_000},
            capacity={"main": 1_000_000_000},
            vector_buckets={"vectors": 4 + d},
            pending={"docs": d % 3, "notes": 6 - d},
        )
        for d in range(7)
    ]
    versions = [
        VersionStat(
            version=f"{n:012d}-abcdefgh", bytes=n * 1_500_000, objects=2, record_count=n * 1000, live=n == 3
        )
        for n in (3, 2, 1)
    ]
    from storekeeper.history import forecasts

    m = {
        "measured_at": NOW,
        "store": "s3://prod-vectors",
        "collections": [
            CollectionStatus(collection="docs", live_version=versions[0].version, record_count=3000,
                             pending_deltas=0, versions=3, versions_bytes=9_000_000, history=versions,
                             pointer_age_s=3600),
            CollectionStatus(collection="notes", live_version=None, record_count=0, pending_deltas=1,
                             oldest_pending_age_s=7200, versions=0),
        ],
        "buckets": [BucketStatus(store="main", bucket="prod-vectors", bytes=840_000_000, objects=1234,
                              capacity=1_000_000_000, ratio=0.84, high=0.8, low=0.6, hard=0.9,
                              state="above-high")],
        "vectors": [VectorStatus(store="vectors", buckets=10, quota=10)],
    }  # fmt: skip
    from storekeeper.models.status import Measurement

    meas = Measurement(**m)
    return StoreStatus(
        **m,
        history=hist,
        forecasts=forecasts(meas, hist, now=NOW),
        last_run=RunInfo(
            run_id="20310301T120000Z-abcd", report_key=None, started_at=NOW, apply=False, planned=3
        ),
    )


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct colours in the first rows) from the PNG itself: a blank page has one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, _, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}[ctype]
    stride = width * bpp + 1
    # count distinct raw bytes (filtered rows still vary when the image does)
    return width, height, len(set(raw[: stride * min(height, 400)]))


def open_in_chromium(page: Path, shot: Path, profile: Path) -> str:
    """Open `page` headless: no console error or blocked request, the DOM as the browser parsed it;
    then a screenshot to `shot` (kept as an artifact), which must not be blank."""
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    common = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Refused" in line]
    assert not console, console  # no script error, no CSP violation, no blocked fetch
    # the browser parsed every chart the page holds
    assert len(re.findall(r"<svg ", dom.stdout)) == page.read_text().count("<svg ")
    shot_run = subprocess.run(
        [*common, "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot_run.returncode == 0, shot_run.stderr[-2000:]
    assert shot.is_file(), shot_run.stderr[-2000:]
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (1280, 2000)
    assert colours > 20  # charts and text, not a blank page
    return dom.stdout


@pytest.mark.slow
def test_status_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Every state the page can show (above a watermark, a quota reached, a forecast)."""
    page = tmp_path / "status.html"
    page.write_text(render_html(sample_status()), encoding="utf-8")
    dom = open_in_chromium(page, ARTIFACTS / "status-page.png", tmp_path / "profile")
    assert page.read_text().count("<svg ") == 5  # usage, vectors, pending, docs x2
    assert 'id="usage-main"' in dom
    assert 'id="vectors-vectors"' in dom
    assert "above-high" in dom
    assert "quota reached" in dom


@pytest.mark.slow
def test_status_html_of_a_real_store_renders_in_headless_chromium(tmp_path: Path) -> None:
    """`storekeeper status --html` of a store with two collections and four reaper runs."""
    store, pol, _ = status_world(tmp_path)
    page = tmp_path / "status.html"
    res = CliRunner().invoke(
        app, ["status", "--store", store.url, "--policies", str(pol), "--html", str(page), "--json"]
    )
    assert res.exit_code == 0, res.output
    st = StoreStatus.model_validate(json.loads(res.stdout))
    dom = open_in_chromium(page, ARTIFACTS / "status-page-store.png", tmp_path / "profile")
    for svg in ("usage-main", "pending", "snap-records-docs", "snap-bytes-docs", "snap-records-notes"):
        assert f'id="{svg}"' in dom, svg
    assert len(st.history) == 5  # four reaper runs and now, each a point of the usage chart
    usage = dom[dom.index('id="usage-main"') : dom.index("</svg>", dom.index('id="usage-main"'))]
    assert usage.count("<circle ") == len(st.history)
    assert st.collections[0].live_version in dom
