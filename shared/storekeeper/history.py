"""History and forecasts from the reaper's reports (`reports/reaper/<timestamp>.json`).

Every report carries the run's measurement (`status`); the charts plot them and the
forecast fits a Theil-Sen line (the median of pairwise slopes: one odd run, a cleanup
or a burst, does not bend it) through the recent ones. Too few points give "not enough
history", never a guess.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import contextlib
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import REPORT_INDEX_KEY, REPORT_KEY_RE, REPORT_PAGE_KEY, REPORT_PREFIX
from storekeeper.models.status import Forecast, HistoryPoint, Measurement, RunInfo, StoreStatus
from storekeeper.stores.base import ObjectStore

LATEST_PAGE, INDEX_KEY = REPORT_PAGE_KEY, REPORT_INDEX_KEY
#: runs kept in the index: 30 days of hourly runs, the forecast's window
MAX_INDEX = 750
DEFAULT_RUNS = MAX_INDEX
#: full reports read when there is no index yet (reports can be large: one decision per object)
REPORTS_READ = 60
#: the fit looks at this much recent history, and needs at least MIN_POINTS points over MIN_SPAN
FIT_WINDOW = timedelta(days=30)
MIN_POINTS = 4
MIN_SPAN = timedelta(hours=1)
#: crossings further out than this are reported as such, not as a date (a near-flat trend)
HORIZON = timedelta(days=3650)
SECONDS_PER_DAY = 86400.0


class _Summary(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    planned: int = 0
    protected: int = 0
    skipped: int = 0
    deferred: int = 0
    bytes_planned: int = 0


class _ReportHead(BaseModel):
    """The parts of a report the history needs; the decisions are not validated one by one."""

    model_config = ConfigDict(defer_build=True, extra="ignore")
    run_id: str
    started_at: datetime
    apply: bool
    summaries: list[_Summary] = []
    tasks: list[object] = []
    sent: int = 0
    errors: list[str] = []
    status: Measurement | None = None


class Run(NamedTuple):
    key: str
    info: RunInfo
    status: Measurement | None


def report_keys(store: ObjectStore) -> list[str]:
    """Every report's key, oldest first (the timestamp names sort in time order)."""
    return sorted(i.key for i in store.list(REPORT_PREFIX) if REPORT_KEY_RE.fullmatch(i.key))


def read_run(store: ObjectStore, key: str) -> Run | None:
    """One report's summary; None for a report that vanished or does not parse (history skips it)."""
    try:
        head = _ReportHead.model_validate_json(store.get(key).body)
    except (NotFound, ValidationError):
        return None
    return run_of(head, key)


def run_of(report: Any, key: str | None = None) -> Run:
    """The history entry of a report (a full ReaperReport or the head read back from the store)."""
    s = report.summaries
    info = RunInfo(
        run_id=report.run_id,
        report_key=key or getattr(report, "report_key", None),
        started_at=report.started_at,
        apply=report.apply,
        planned=sum(x.planned for x in s),
        protected=sum(x.protected for x in s),
        skipped=sum(x.skipped for x in s),
        deferred=sum(x.deferred for x in s),
        tasks=len(report.tasks),
        sent=report.sent,
        errors=len(report.errors),
        bytes_planned=sum(x.bytes_planned for x in s),
    )
    return Run(info.report_key or "", info, report.status)


def load(store: ObjectStore, *, limit: int = REPORTS_READ) -> list[Run]:
    """The newest `limit` runs, oldest first. An unreadable store gives no history, not an error."""
    try:
        keys = report_keys(store)[-limit:] if limit > 0 else []
        runs = [read_run(store, k) for k in keys]
    except StorekeeperError:
        return []
    return [r for r in runs if r is not None]


def point_of(m: Measurement, run_id: str) -> HistoryPoint:
    return HistoryPoint(
        at=m.measured_at,
        run_id=run_id,
        usage={b.store: b.bytes for b in m.buckets if b.state != "error"},
        capacity={b.store: b.capacity for b in m.buckets if b.capacity},
        vector_buckets={v.store: v.buckets for v in m.vectors if not v.error},
        pending={_coll_label(c.store, c.collection): c.pending_deltas for c in m.collections},
    )


def _coll_label(store: str, collection: str) -> str:
    return collection if store == "main" else f"{store}:{collection}"


def points(runs: list[Run]) -> list[HistoryPoint]:
    return [point_of(r.status, r.info.run_id) for r in runs if r.status is not None]


# -- the fit -------------------------------------------------------------------------------------


def theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line: median pairwise slope, median residual intercept."""
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i])
        for i in range(len(xs))
        for j in range(i + 1, len(xs))
        if xs[j] != xs[i]
    ]
    if not slopes:
        raise ValueError("theil_sen needs two distinct x values")
    slope = statistics.median(slopes)
    intercept = statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))
    return slope, intercept


def forecast_series(
    series: list[tuple[datetime, float]],
    limit: float,
    *,
    now: datetime,
    store: str,
    metric: str,
    target: str,
) -> Forecast:
    """When `series` (time, value) reaches `limit`, fitted over the recent window."""
    recent = sorted(p for p in series if p[0] >= now - FIT_WINDOW)
    base = {"store": store, "metric": metric, "target": target, "limit": limit, "points": len(recent)}
    if recent and recent[-1][1] >= limit:
        return Forecast(**base, state="already-above", days=0.0, eta=recent[-1][0])
    if len(recent) < MIN_POINTS or recent[-1][0] - recent[0][0] < MIN_SPAN:
        return Forecast(**base, state="not-enough-history")
    xs = [t.timestamp() for t, _ in recent]
    slope, intercept = theil_sen(xs, [v for _, v in recent])
    per_day = slope * SECONDS_PER_DAY
    if slope <= 0:
        return Forecast(**base, state="not-rising", slope_per_day=per_day)
    at = max((limit - intercept) / slope, now.timestamp())
    if at - now.timestamp() > HORIZON.total_seconds():
        return Forecast(**base, state="beyond-horizon", slope_per_day=per_day)
    eta = datetime.fromtimestamp(at, UTC)
    days = (at - now.timestamp()) / SECONDS_PER_DAY
    return Forecast(**base, state="ok", slope_per_day=per_day, eta=eta, days=days)


def forecasts(m: Measurement, history: list[HistoryPoint], *, now: datetime) -> list[Forecast]:
    """High and hard watermark per bucket with a capacity; the quota per vector store."""
    out: list[Forecast] = []
    for b in m.buckets:
        if b.state == "error":
            continue
        if not b.capacity:
            out.append(Forecast(store=b.store, metric="usage", target="high", state="no-limit"))
            continue
        series = [(p.at, float(p.usage[b.store])) for p in history if b.store in p.usage]
        for target, ratio in (("high", b.high), ("hard", b.hard)):
            out.append(
                forecast_series(
                    series, ratio * b.capacity, now=now, store=b.store, metric="usage", target=target
                )
            )
    for v in m.vectors:
        if v.error:
            continue
        series = [(p.at, float(p.vector_buckets[v.store])) for p in history if v.store in p.vector_buckets]
        out.append(
            forecast_series(
                series, float(v.quota), now=now, store=v.store, metric="vector-buckets", target="quota"
            )
        )
    return out


class History:
    """What the charts and the forecast need: the runs (newest last) and their measurements.

    The mutable records a reaper run creates are plain slotted classes: a dataclass costs a cold
    start ~2-3 M instructions to create (Python 3.11 compiles each generated method on its own)."""

    __slots__ = ("points", "runs")

    def __init__(self, runs: list[RunInfo], points: list[HistoryPoint]) -> None:
        self.runs = runs
        self.points = points

    def last(self, n: int) -> "History":
        return History(self.runs[-n:] if n > 0 else [], self.points[-n:] if n > 0 else [])


class _Index(BaseModel):
    """reports/reaper/history.json: the runs and points of the last MAX_INDEX runs, one small object."""

    model_config = ConfigDict(defer_build=True, extra="ignore")
    format: str = "storekeeper.reaper-history/1"
    runs: list[RunInfo] = []
    points: list[HistoryPoint] = []


def read(store: ObjectStore, *, limit: int = DEFAULT_RUNS) -> History:
    """The history from the index (one small read); from the newest reports when there is none yet."""
    try:
        idx = _Index.model_validate_json(store.get(INDEX_KEY).body)
    except (StorekeeperError, ValidationError):
        runs = load(store, limit=min(limit, REPORTS_READ))
        return History([r.info for r in runs], points(runs))
    return History(idx.runs, idx.points).last(limit)


def record(store: ObjectStore, before: History, run: Run) -> History:
    """Append one run to the index (best effort: a lost write loses one point, never a report)."""
    runs = [r for r in before.runs if r.run_id != run.info.run_id] + [run.info]
    pts = [p for p in before.points if p.run_id != run.info.run_id]
    if run.status is not None:
        pts.append(point_of(run.status, run.info.run_id))
    after = History(runs, pts).last(MAX_INDEX)
    body = _Index(runs=after.runs, points=after.points).model_dump_json().encode()
    with contextlib.suppress(StorekeeperError):
        store.put(INDEX_KEY, body, content_type="application/json")
    return after


def status_from(m: Measurement, hist: History, *, now: datetime | None = None) -> StoreStatus:
    """The measurement `m` with the history (plus `m` itself, once) and the forecasts."""
    now = now or m.measured_at
    pts = list(hist.points)
    if not any(p.at == m.measured_at for p in pts):
        pts.append(point_of(m, "now"))
    return StoreStatus(
        **dict(m),
        last_run=hist.runs[-1] if hist.runs else None,
        history=pts,
        forecasts=forecasts(m, pts, now=now),
    )
