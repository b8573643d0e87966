"""The forecast: a Theil-Sen fit over the report history finds a known trend exactly, ignores an
outlier, and says "not enough history" instead of guessing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storekeeper import history
from storekeeper.models.status import BucketStatus, HistoryPoint, Measurement, VectorStatus

NOW = datetime(2031, 3, 1, tzinfo=UTC)
GB = 1_000_000_000


def series(days: int, start: float, per_day: float) -> list[tuple[datetime, float]]:
    return [(NOW - timedelta(days=days - 1 - i), start + per_day * i) for i in range(days)]


def test_known_linear_trend_gives_the_exact_crossing_time() -> None:
    # 10 GB capacity, 2 GB now, +0.5 GB/day -> high (8.5 GB) in 13 days, hard (9.5 GB) in 15 days
    s = series(10, 2 * GB - 9 * 0.5 * GB, 0.5 * GB)
    high = history.forecast_series(s, 8.5 * GB, now=NOW, store="main", metric="usage", target="high")
    hard = history.forecast_series(s, 9.5 * GB, now=NOW, store="main", metric="usage", target="hard")
    assert high.state == "ok"
    assert hard.state == "ok"
    assert high.days == pytest.approx(13.0, abs=1e-6)
    assert hard.days == pytest.approx(15.0, abs=1e-6)
    assert high.eta == NOW + timedelta(days=13)
    assert high.slope_per_day == pytest.approx(0.5 * GB)
    assert high.points == 10
    assert "13.0 d" in high.text


def test_one_outlier_does_not_bend_the_fit() -> None:
    s = series(12, 1 * GB, 0.25 * GB)
    s[5] = (s[5][0], 9 * GB)  # one run measured during a burst
    f = history.forecast_series(s, 8 * GB, now=NOW, store="main", metric="usage", target="high")
    assert f.state == "ok"
    assert f.slope_per_day == pytest.approx(0.25 * GB, rel=0.02)  # least squares would say ~0.1 GB/day


def test_too_little_history_says_so() -> None:
    three = series(3, 1 * GB, 1 * GB)
    f = history.forecast_series(three, 8 * GB, now=NOW, store="main", metric="usage", target="high")
    assert f.state == "not-enough-history"
    assert f.eta is None
    assert f.points == 3
    assert f.text == "not enough history (3 point(s))"
    # enough points, but all within minutes: no trend can be read from them
    burst = [(NOW - timedelta(minutes=i), float(GB * i)) for i in range(6)]
    f = history.forecast_series(burst, 100 * GB, now=NOW, store="main", metric="usage", target="high")
    assert f.state == "not-enough-history"
    # points older than the window do not count
    old = [(t - timedelta(days=90), v) for t, v in series(10, GB, GB)]
    f = history.forecast_series(old, 100 * GB, now=NOW, store="main", metric="usage", target="high")
    assert f.state == "not-enough-history"
    assert f.points == 0


def test_flat_or_falling_is_not_rising_and_above_is_already_reached() -> None:
    flat = series(8, 5 * GB, 0)
    assert history.forecast_series(flat, 8 * GB, now=NOW, store="m", metric="usage", target="high").state == (
        "not-rising"
    )
    crawl = series(8, 1 * GB, 1000)  # +1 kB/day towards 8 GB: centuries away
    f = history.forecast_series(crawl, 8 * GB, now=NOW, store="m", metric="usage", target="high")
    assert f.state == "beyond-horizon"
    assert f.eta is None
    assert f.text == "not within 10 years"
    above = series(2, 9 * GB, 0)
    f = history.forecast_series(above, 8 * GB, now=NOW, store="m", metric="usage", target="high")
    assert f.state == "already-above"
    assert f.days == 0


def test_forecasts_cover_both_watermarks_and_the_vector_quota() -> None:
    pts = [
        HistoryPoint(at=t, run_id=f"r{i}", usage={"main": int(v)}, vector_buckets={"vec": 2 + i})
        for i, (t, v) in enumerate(series(6, 1 * GB, 1 * GB))
    ]
    m = Measurement(
        measured_at=NOW,
        store="file:///x",
        buckets=[BucketStatus(store="main", bucket="b", bytes=6 * GB, capacity=10 * GB, high=0.8, hard=0.9)],
        vectors=[VectorStatus(store="vec", buckets=7, quota=10)],
    )
    out = {(f.store, f.target): f for f in history.forecasts(m, pts, now=NOW)}
    assert out["main", "high"].days == pytest.approx(2.0)
    assert out["main", "hard"].days == pytest.approx(3.0)
    assert out["vec", "quota"].days == pytest.approx(3.0)  # 7 buckets now, +1/day, quota 10


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0, max_value=1e15, allow_nan=False), min_size=0, max_size=30),
    limit=st.floats(min_value=1, max_value=1e15),
)
def test_any_history_gives_a_state_never_an_exception(values: list[float], limit: float) -> None:
    s = [(NOW - timedelta(hours=6 * (len(values) - i)), v) for i, v in enumerate(values)]
    f = history.forecast_series(s, limit, now=NOW, store="m", metric="usage", target="high")
    assert f.state in ("ok", "not-enough-history", "not-rising", "beyond-horizon", "already-above")
    if f.state == "ok":
        assert f.days is not None
        assert f.days >= 0
        assert f.eta is not None
        assert f.eta >= NOW
