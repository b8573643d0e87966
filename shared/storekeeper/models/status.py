"""What `storekeeper status` measures, and what every reaper report carries as `status`.

These models are read back from reports written by older and newer versions, so
unknown fields are ignored (not forbidden, unlike messages): history must keep
working across an upgrade.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Read(BaseModel):
    # built at import, in definition order, each schema once: every reaper run validates all of them,
    # and deferred, the measurement's and the status page's schemas each generated the collection,
    # version and vector models inline (only the reaper and the CLI import this module)
    model_config = ConfigDict(extra="ignore", frozen=True)


class VersionStat(_Read):
    """One snapshot version kept in the store: its bytes, and its manifest's figures when readable."""

    version: str
    bytes: int = 0
    objects: int = 0
    record_count: int | None = None
    parent: str | None = None
    created_at: datetime | None = None
    live: bool = False


class CollectionStatus(_Read):
    store: str = "main"
    collection: str
    live_version: str | None = None
    record_count: int | None = None
    dimension: int | None = None
    pointer_updated: datetime | None = None
    pointer_age_s: float | None = None
    pending_deltas: int = 0
    oldest_pending_age_s: float | None = None
    applied_deltas_present: int = 0
    versions: int = 0
    versions_bytes: int = 0
    history: list[VersionStat] = []
    error: str | None = None


BucketState = Literal["ok", "above-high", "above-hard", "no-capacity", "error"]


class BucketStatus(_Read):
    store: str
    bucket: str
    bytes: int = 0
    objects: int = 0
    capacity: int | None = None
    ratio: float | None = None
    high: float = 0.85
    low: float = 0.70
    hard: float = 0.95
    state: BucketState = "ok"
    error: str | None = None


class VectorStatus(_Read):
    store: str
    buckets: int = 0
    quota: int = 10
    names: list[str] = []
    error: str | None = None

    @property
    def state(self) -> str:
        return "error" if self.error else "at-quota" if self.buckets >= self.quota else "ok"


class Measurement(_Read):
    """One look at the stores: what the reaper records in its report on every run."""

    measured_at: datetime
    store: str
    collections: list[CollectionStatus] = []
    buckets: list[BucketStatus] = []
    vectors: list[VectorStatus] = []


class RunInfo(_Read):
    """One reaper run, as the history and `storekeeper reports` show it."""

    run_id: str
    report_key: str | None
    started_at: datetime
    apply: bool
    planned: int = 0
    protected: int = 0
    skipped: int = 0
    deferred: int = 0
    tasks: int = 0
    sent: int = 0
    errors: int = 0
    bytes_planned: int = 0


ForecastState = Literal[
    "ok", "not-enough-history", "not-rising", "beyond-horizon", "already-above", "no-limit"
]


class Forecast(_Read):
    """When a bucket crosses a watermark or the vector buckets reach the quota, from a robust fit."""

    store: str
    metric: Literal["usage", "vector-buckets"]
    target: Literal["high", "hard", "quota"]
    state: ForecastState
    limit: float | None = None  # bytes or bucket count the target stands for
    points: int = 0  # history points the fit used
    slope_per_day: float | None = None  # bytes/day or buckets/day
    eta: datetime | None = None
    days: float | None = None

    @property
    def text(self) -> str:
        if self.state == "ok" and self.days is not None and self.eta is not None:
            return f"in {self.days:.1f} d ({self.eta:%Y-%m-%d %H:%M}Z)"
        return {
            "not-enough-history": f"not enough history ({self.points} point(s))",
            "not-rising": "not rising",
            "beyond-horizon": "not within 10 years",
            "already-above": "already reached",
            "no-limit": "no limit set",
        }.get(self.state, self.state)

    @property
    def trend(self) -> str:
        """The fitted slope per day: bytes for usage, buckets for the quota."""
        if self.slope_per_day is None:
            return "-"
        if self.metric == "vector-buckets":
            return f"{self.slope_per_day:+.2f}/day"
        from storekeeper.policies.units import format_size

        sign = "+" if self.slope_per_day >= 0 else "-"
        return f"{sign}{format_size(abs(self.slope_per_day))}/day"


class HistoryPoint(_Read):
    """One reaper run's measurement reduced to what the charts plot."""

    at: datetime
    run_id: str
    usage: dict[str, int] = {}  # store -> bytes
    capacity: dict[str, int] = {}
    vector_buckets: dict[str, int] = {}
    pending: dict[str, int] = {}  # collection -> pending deltas


class StoreStatus(Measurement):
    """The measurement now, plus the last reaper run, the history and the forecasts."""

    last_run: RunInfo | None = None
    history: list[HistoryPoint] = []
    forecasts: list[Forecast] = []

    def problems(self) -> list[str]:
        """What `status --check` fails on: above a high watermark, at the vector quota, unreadable."""
        out = []
        for b in self.buckets:
            if b.state in ("above-high", "above-hard"):
                limit = f"hard {b.hard:.0%}" if b.state == "above-hard" else f"high {b.high:.0%}"
                out.append(f"{b.store} ({b.bucket}) is {b.state}: {b.ratio:.1%} of capacity ({limit})")
            elif b.state == "error":
                out.append(f"{b.store} ({b.bucket}) could not be measured: {b.error}")
        for v in self.vectors:
            if v.error:
                out.append(f"vector buckets of {v.store} could not be listed: {v.error}")
            elif v.buckets >= v.quota:
                out.append(f"vector buckets of {v.store}: {v.buckets} of {v.quota} (quota reached)")
        for c in self.collections:
            if c.error:
                out.append(f"collection {c.collection} in {c.store}: {c.error}")
        return out


class DeltaTally(BaseModel):
    """A collection's deltas as counted when they were listed (against the live manifest then)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    pending: int = Field(default=0, ge=0)
    applied: int = Field(default=0, ge=0)
    oldest_pending: AwareDatetime | None = None


class StoreTally(BaseModel):
    """What the status measure needs of one object store, summed over listed keys instead of kept
    as a listing: objects and bytes, per collection its versions' bytes and objects, its pointer's
    time and its deltas. A budgeted pass carries it in its continuation, run by run, and the run
    that completes the pass measures from it (storekeeper.status)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    objects: int = Field(default=0, ge=0)
    bytes: int = Field(default=0, ge=0)
    #: collection -> version -> [bytes, objects]
    versions: dict[str, dict[str, tuple[int, int]]] = Field({}, max_length=100_000)
    #: collection -> its pointer's last-modified
    pointers: dict[str, AwareDatetime] = Field({}, max_length=100_000)
    deltas: dict[str, DeltaTally] = Field({}, max_length=100_000)
