"""A stopped pass keeps everything its ranges listed: the listing requests of a whole pass.

The parallel listing lists up to `list_workers` key ranges at once; a run stopped by its time budget
or its memory bound keeps every key any range listed, and the continuation holds each range's
remainder, so the next run lists only that. Counted on S3 (moto, pages of 5 keys) from the
responses themselves: over a pass of K runs each key is listed once, plus at most one page per range
per run (the page in flight when a range stopped), and the pass takes about as many runs as the
bound alone needs. Before, a stopped run kept only the lowest range's keys, and the higher ranges'
keys were listed again by later runs: a pass took up to `list_workers` times as many runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storekeeper.layout import continuation_key
from storekeeper.policies import budget as passes
from storekeeper.policies.budget import Budget
from storekeeper.stores.base import RequestCounter
from storekeeper.stores.listing import KeyRange
from storekeeper.stores.s3 import S3Store
from tests.unit.test_reaper_budget import Ticks, assert_plans_exactly, planned, run, run_pass

PAGE = 5
WORKERS = 4
PREFIXES = 8
PER_PREFIX = 25
POLICIES = f"""\
defaults: {{grace: 1h, rate_limit: 100000}}
stores: {{main: {{list_workers: {WORKERS}}}}}
policies:
  - {{name: all, resource: object, store: main, filters: [{{type: older-than, age: 1d}}]}}
"""


class Listed:
    """What the server's ListObjectsV2 answers held: requests and keys (from the parsed responses)."""

    def __init__(self) -> None:
        self.requests = 0
        self.keys = 0

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        self.requests += 1
        self.keys += len(parsed.get("Contents", []))


@pytest.fixture
def s3() -> Iterator[tuple[S3Store, Listed]]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ranges")
        store = S3Store("ranges", client=client, counter=RequestCounter(), list_page_size=PAGE)
        for p in range(PREFIXES):
            for i in range(PER_PREFIX):
                store.put(f"p{p}/{i:04d}.bin", b"x")
        listed = Listed()
        client.meta.events.register("after-call.s3.ListObjectsV2", listed)
        yield store, listed


@pytest.mark.slow  # ~15 budgeted runs over moto
@pytest.mark.parametrize(
    "budget",
    [lambda: Budget(None, max_objects=40), lambda: Budget(60, clock=Ticks())],
    ids=["memory-bound", "time-budget"],
)
def test_a_pass_across_runs_lists_each_key_once_plus_a_page_per_range_per_run(
    s3: tuple[S3Store, Listed], budget: Callable[[], Budget]
) -> None:
    store, listed = s3
    whole = planned(run(store, POLICIES, None))
    assert len(whole) == PREFIXES * PER_PREFIX
    listed.requests = listed.keys = 0
    reports = run_pass(store, POLICIES, budget)
    assert_plans_exactly(reports, whole)
    keys, requests = listed.keys, listed.requests
    n = len(list(store.list("")))  # the keys, the continuation included (it is listed too)
    ranges = [li.ranges for r in reports for li in r.listings if li.prefix == ""]
    split = sum(li.split_requests for r in reports for li in r.listings)
    assert len(ranges) == len(reports)
    assert ranges[0] == WORKERS  # the first run splits the key space, the later ones list remainders
    assert max(ranges) <= WORKERS
    # each key listed once, plus at most the page in flight of each range of each run
    assert keys <= n + PAGE * sum(ranges), (keys, n, ranges)
    # and the requests: full pages but the last of each range and the page in flight
    assert requests <= math.ceil(n / PAGE) + 2 * sum(ranges) + split, (requests, ranges)
    assert len(reports) > 2  # the pass really spanned runs, with ranges stopped in each
    bounded = reports[0].budget is not None and reports[0].budget.max_objects is not None
    for r in reports[:-1]:
        assert r.budget is not None
        (main,) = r.budget.stores
        listed_here = sum(li.objects for li in r.listings if li.prefix == "")
        assert main.keys_planned + main.left_unplanned == listed_here
        if bounded:  # every key a run listed is planned (only a label lookup's cut leaves some)
            assert not main.listing_complete
            assert main.left_unplanned == 0
    if bounded:  # about as many runs as the bound alone needs (each range may take one key past it)
        assert len(reports) <= math.ceil(n / 40) + 1


def test_a_range_stopped_at_its_own_last_key_leaves_nothing_of_it() -> None:
    """A range ends at the next range's first part, which is a key too where a console "folder"
    object exists: a range stopped right on it has nothing left (no empty interval is stored)."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="folders")
        store = S3Store("folders", client=client, counter=RequestCounter(), list_page_size=PAGE)
        for k in ("a/1", "b/", "b/1", "b/2"):
            store.put(k, b"x")
        # one worker: the ranges are listed one after the other, so where each stops is certain
        text = POLICIES.replace("type: older-than, age: 1d", "type: name-glob, pattern: '*'")
        text = text.replace(f"list_workers: {WORKERS}", "list_workers: 1")
        unbudgeted = run(store, text, None)
        whole = planned(unbudgeted)
        key = continuation_key("dry-run")
        doc = {
            "format": "storekeeper.reaper-continuation/1", "mode": "dry-run", "runs": 1,
            "policies_sha256": unbudgeted.policies_sha256, "pass_started_at": "2030-01-15T11:00:00Z",
            "updated_at": "2030-01-15T11:00:00Z", "usage": None,
            "stores": {"main": {"ranges": [{"through": "b/"}, {"after": "b/"}]}},
        }  # fmt: skip
        store.put(key, json.dumps(doc).encode())
        # the first range lists a/1 and b/ and stops on b/ (two objects held), its own last key
        second = run(store, text, Budget(None, max_objects=2))
        assert second.budget is not None
        (main,) = second.budget.stores
        assert main.ranges_left == 1
        left = passes.parse(store.get(key).body).stores["main"].intervals()
        assert left == [KeyRange("b/1", None)]
        rest = run_pass(store, text, lambda: Budget(None, max_objects=2))
        assert_plans_exactly([second, *rest], whole)


def test_a_budgeted_run_over_a_bucket_the_split_listed_whole_plans_all_of_it() -> None:
    """Keys only at the root, fewer than the split reads of a level: the split's delimiter listing
    is the whole listing, no range is left to list, and a budgeted run plans every key."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="flat")
        store = S3Store("flat", client=client, counter=RequestCounter(), list_page_size=PAGE)
        for i in range(12):
            store.put(f"k{i:02d}", b"x")
        text = POLICIES.replace("type: older-than, age: 1d", "type: name-glob, pattern: '*'")
        whole = planned(run(store, text, None))
        assert len(whole) == 12
        report = run(store, text, Budget(None, max_objects=100))
        assert report.budget is not None
        assert report.budget.pass_complete
        assert sorted(planned(report)) == sorted(whole)
