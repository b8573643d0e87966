"""Time-budgeted planning on a real S3 server (SeaweedFS): the parallel listing resumed with
`StartAfter`, real object-metadata HEADs in the budget, the continuation written by real
conditional puts, and two runs racing on it.

The budget's clock moves one tick each time it is read (every listed key, every label lookup), so a
run stops at a chosen point of its work without sleeping.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storekeeper import reaper
from storekeeper.layout import continuation_key
from storekeeper.models.reports import ReaperReport
from storekeeper.policies import budget as passes
from storekeeper.policies import parse_policies
from storekeeper.policies.budget import Budget
from storekeeper.stores import RequestCounter
from storekeeper.stores.s3 import S3Store
from tests.servers.s3_servers import S3Server
from tests.unit.test_reaper_budget import Ticks, lost_races, race_to_the_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICIES = """\
defaults: {grace: 0s, rate_limit: 100000}
protect: {object_labels: true}
stores: {main: {list_workers: 4}}
policies:
  - {name: old-tmp, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 0s}]}
  - {name: images, resource: object, store: main, filters: [{type: name-glob, pattern: "*.png"}]}
"""


@pytest.fixture
def sw(seaweed_s3: S3Server, fresh_bucket: Any) -> S3Store:
    client = seaweed_s3.client(max_pool_connections=16)
    # small pages: every range of the parallel listing takes several requests, so budgets stop mid-range
    return S3Store(
        fresh_bucket(seaweed_s3, "budget"), client=client, counter=RequestCounter(), list_page_size=25
    )


def fill(store: S3Store) -> None:
    keys = [
        f"{p}/{i:04d}.{ext}"
        for p in ("tmp", "img", "logs", "zz")
        for i in range(30)
        for ext in ("png", "txt")
    ]
    protected = {k for n, k in enumerate(keys) if n % 7 == 0}
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda k: store.put(
                    k, b"x", metadata={"storekeeper-protect": "true"} if k in protected else None
                ),
                keys,
            )
        )


def run(store: S3Store, budget: Budget | None, now: datetime) -> ReaperReport:
    kw: dict[str, Any] = {"policies": parse_policies(POLICIES), "stores": {"main": store}, "now": now}
    return reaper.run(apply=False, write_report=False, budget=budget, **kw)


def planned(report: ReaperReport) -> list[tuple[str, str]]:
    return [(d.policy, d.name) for d in report.decisions if d.verdict == "planned"]


def test_a_pass_of_budgeted_runs_on_seaweed_plans_exactly_the_unbudgeted_plan(sw: S3Store) -> None:
    fill(sw)
    now = datetime.now(UTC) + timedelta(minutes=1)
    whole = planned(run(sw, None, now))
    assert len(whole) > 50
    reports: list[ReaperReport] = []
    for _ in range(200):
        r = run(sw, Budget(40, clock=Ticks()), now)
        assert r.budget is not None
        reports.append(r)
        if r.budget.pass_complete:
            break
    else:
        raise AssertionError("no complete pass")
    assert len(reports) > 2  # it really was split
    assert {r.budget.ran_out for r in reports[:-1] if r.budget} <= {"listing", "label lookups"}
    union = [p for r in reports for p in planned(r)]
    assert len(union) == len(set(union)), "a key was planned twice"
    assert sorted(union) == sorted(whole)
    # the continuation was cleared by a real conditional put: the next run starts a new pass
    assert passes.parse(sw.get(continuation_key("dry-run")).body).complete


def test_runs_racing_on_the_continuation_on_seaweed_skip_nothing(sw: S3Store) -> None:
    fill(sw)
    now = datetime.now(UTC) + timedelta(minutes=1)
    whole = set(planned(run(sw, None, now)))
    reports = race_to_the_end(sw, lambda: run(sw, Budget(40, clock=Ticks()), now))
    assert {p for r in reports for p in planned(r)} == whole
    assert lost_races(reports) > 0  # the server refused a stale If-Match / a second create-only put


@pytest.mark.parametrize("bound", [30, 75])
def test_a_pass_under_a_memory_bound_on_seaweed_holds_at_most_the_bound_and_plans_the_whole(
    sw: S3Store, bound: int
) -> None:
    """The parallel listing's 4 ranges count their objects together and all stop at the bound (each
    may take one key more after the count reached it); the run keeps all they listed, the next run
    lists each range's remainder; the pass plans exactly the unbudgeted plan."""
    fill(sw)
    now = datetime.now(UTC) + timedelta(minutes=1)
    whole = planned(run(sw, None, now))
    reports: list[ReaperReport] = []
    for _ in range(100):
        r = run(sw, Budget(None, max_objects=bound), now)
        assert r.budget is not None
        reports.append(r)
        assert all(li.objects <= bound + 4 for li in r.listings), r.listings
        if r.budget.pass_complete:
            break
    else:
        raise AssertionError("no complete pass")
    assert len(reports) > 1
    # every key the 4 ranges listed is kept: about as many runs as the bound alone needs (a run kept
    # only the lowest range's keys before, and took up to 4 times as many)
    total = len(list(sw.list("")))
    assert len(reports) <= -(-total // bound) + 1, [r.budget for r in reports]
    assert {r.budget.ran_out for r in reports[:-1] if r.budget} == {"memory"}
    union = [p for r in reports for p in planned(r)]
    assert len(union) == len(set(union)), "a key was planned twice"
    assert sorted(union) == sorted(whole)
