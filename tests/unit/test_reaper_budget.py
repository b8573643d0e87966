"""Time-budgeted planning: a pass over a store split across runs by a stored continuation.

Budgets run on an injected clock that advances one tick each time it is read (every listed key and
every label lookup reads it once), so a run stops at a chosen point of its work without sleeping.
The reference is the plan of one run without a deadline over the same state: the runs of a pass,
put together, must plan exactly its keys, none twice, none left out.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper import reaper
from storekeeper.errors import PreconditionFailed, StorekeeperError
from storekeeper.layout import continuation_key
from storekeeper.models.reports import ReaperReport
from storekeeper.policies import budget as passes
from storekeeper.policies import parse_policies
from storekeeper.policies.budget import Budget
from storekeeper.queues import LocalQueue
from storekeeper.stores.base import ObjectStore
from storekeeper.stores.inventory import Inventory
from storekeeper.stores.listing import KeyRange, ParallelListing
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import NOW, delta_id, local_store, point, put_aged, write_delta, write_version
from tests.unit.test_listing_inventory import row, write_report

D = timedelta(days=1)

#: key-by-key policies only (object and delta item rules): every key of them can be planned in any run
ITEM_POLICIES = """\
defaults: {grace: 1h, rate_limit: 100000}
protect: {object_labels: true}
policies:
  - {name: old-tmp, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 7d}]}
  - {name: old-any, resource: object, store: main, filters: [{type: older-than, age: 20d}]}
  - {name: applied, resource: delta, store: main, filters: [{type: applied}]}
"""
#: plus a whole-bucket policy (keep the newest version): decides only in a run that knows it all
WITH_RETENTION = ITEM_POLICIES + (
    "  - {name: keep-one, resource: snapshot_version, store: main,\n"
    "     filters: [{type: keep-newest, count: 1}]}\n"
)


class Ticks:
    """A clock that moves one tick each time it is read (threads included)."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.n += 1
            return float(self.n)


def head_clock(store: LocalStore) -> Callable[[], float]:
    """A clock that moves one tick per HEAD the store answered: the listing never spends it."""
    return lambda: float(store.requests.counts.get("head", 0))


def ticks(n: int) -> Budget:
    return Budget(n, clock=Ticks())


def build(store: LocalStore, objects: int = 120) -> None:
    """Objects of every age under several prefixes, some protected by a label; a collection with two
    published versions and applied and pending deltas."""
    for i in range(objects):
        prefix = ("tmp/", "img/", "a/", "zz/")[i % 4]
        labels = {"storekeeper-protect": "true"} if i % 9 == 0 else None
        put_aged(store, f"{prefix}{i:05d}.bin", 10 + i, (i % 30) * D, metadata=labels)
    applied = [delta_id(n) for n in range(6)]
    for n in range(9):
        write_delta(store, "docs", n, 3 * D)
    write_version(store, "docs", 1, parent=None, applied=applied[:3], old=5 * D)
    write_version(store, "docs", 2, parent=1, applied=applied, old=4 * D)
    point(store, "docs", 2)


def run(store: ObjectStore, text: str, budget: Budget | None, **kw: Any) -> ReaperReport:
    kw.setdefault("apply", False)
    loaded = parse_policies(text)
    return reaper.run(
        policies=loaded, stores={"main": store}, now=NOW, write_report=False, budget=budget, **kw
    )


def planned(report: ReaperReport) -> list[tuple[str, str]]:
    return [(d.policy, d.name) for d in report.decisions if d.verdict == "planned"]


def assert_plans_exactly(reports: list[ReaperReport], whole: list[tuple[str, str]]) -> None:
    """The runs of a pass planned exactly `whole`: no key twice, none left out."""
    union = [p for r in reports for p in planned(r)]
    assert len(union) == len(set(union)), "a key was planned twice"
    assert sorted(union) == sorted(whole)


def run_pass(
    store: ObjectStore,
    text: str,
    n: int | Callable[[], Budget],
    limit: int = 400,
    ranges_before: int = 1,
    **kw: Any,
) -> list[ReaperReport]:
    """Budgeted runs (`n` ticks each, or budgets made by `n`) until the pass completes; each run
    must get further than the one before, and leaves at most one range per range it listed."""
    reports: list[ReaperReport] = []
    before: str | None = None
    previous = ranges_before  # ranges the stored continuation holds
    for _ in range(limit):
        r = run(store, text, ticks(n) if isinstance(n, int) else n(), **kw)
        assert r.budget is not None
        reports.append(r)
        if r.budget.pass_complete:
            return reports
        (main,) = r.budget.stores
        assert main.resume_after is not None, r.budget
        assert before is None or main.resume_after > before, r.budget
        # no more ranges than the run listed (an inventory: the ranges it was given, or one)
        listed = max(
            1, previous, *(li.ranges for li in r.listings if li.prefix == "" and li.source != "inventory")
        )
        assert 1 <= main.ranges_left <= listed, r
        previous = main.ranges_left
        assert main.keys_planned >= 1
        before = main.resume_after
    raise AssertionError(f"no complete pass in {limit} runs")


def with_workers(text: str, workers: int) -> str:
    """`text` with the store listed by `workers` ranges in parallel."""
    return text.replace("policies:\n", f"stores: {{main: {{list_workers: {workers}}}}}\npolicies:\n", 1)


@pytest.fixture
def split_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local stores listed like S3 ones: split at their prefixes, ranges listed in parallel (a local
    store is listed as one range otherwise: no pages, nothing to gain)."""
    monkeypatch.setattr(ParallelListing, "SEQUENTIAL_SCHEMES", frozenset())


# -- the pass equals one unbudgeted plan ----------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=2, max_value=400), workers=st.sampled_from([1, 3, 4, 16]))
def test_runs_of_a_pass_plan_exactly_what_one_unbudgeted_run_plans(
    tmp_path: Path, split_local: None, n: int, workers: int
) -> None:
    """With several ranges listed in parallel (`workers`), each stopped where the clock ran out."""
    store = local_store(tmp_path, f"pass-{n:03d}-{workers}")
    if not store.path.exists() or not any(store.path.iterdir()):
        build(store)
    text = with_workers(ITEM_POLICIES, workers)
    whole = planned(run(store, text, None))
    assert whole == planned(run(store, ITEM_POLICIES, None))  # the ranges change nothing
    assert len(whole) > 40  # the world gives every policy something to plan
    reports = run_pass(store, text, n)
    union = [p for r in reports for p in planned(r)]
    assert len(union) == len(set(union)), "a key was planned twice"
    assert sorted(union) == sorted(whole)
    # the tasks cover exactly the planned keys, each in one task of at most 1,000 keys
    keys = [k for r in reports for t in r.tasks for k in t.keys]
    assert sorted(keys) == sorted(name for _, name in whole)
    assert reports[-1].budget is not None
    assert reports[-1].budget.pass_complete
    # a completed pass cleared the continuation: the next run starts a new pass from the start
    fresh = run(store, text, ticks(100_000))
    assert fresh.budget is not None
    assert fresh.budget.run_in_pass == 1
    assert fresh.budget.pass_complete
    assert sorted(planned(fresh)) == sorted(whole)


def test_a_cleared_continuation_says_what_its_pass_did_and_starts_a_new_one(tmp_path: Path) -> None:
    """The run that completes a pass clears the continuation by a conditional write of a `complete`
    one (a conditional DELETE is not honoured everywhere). It was written with no stores and no
    decided policies, as if the pass had planned nothing; now it keeps what the pass did, in the
    same format every reader parses, and the next run still starts a new pass."""
    store = local_store(tmp_path)
    build(store)
    text = WITH_RETENTION
    reports = run_pass(store, text, 60)
    assert len(reports) > 1
    stored = passes.parse(store.get(continuation_key("dry-run")).body)
    assert stored.complete
    assert stored.runs == len(reports)
    assert set(stored.stores) == {"main"}
    assert stored.stores["main"].finished
    assert stored.stores["main"].intervals() == []
    last = reports[-1].budget
    assert last is not None
    # the whole-bucket policy decided in a run that listed it all, or waited to the end of the pass
    assert set(stored.decided) == {"keep-one"} - set(last.policies_waiting)
    assert stored.pass_started_at <= stored.updated_at
    fresh = run(store, text, ticks(100_000))
    assert fresh.budget is not None
    assert fresh.budget.run_in_pass == 1  # a cleared continuation: a new pass from the start


def test_a_budget_cut_run_says_what_it_deferred_and_where_the_next_run_resumes(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store)
    first = run(store, ITEM_POLICIES, ticks(60))
    b = first.budget
    assert b is not None
    assert not b.pass_complete
    assert b.run_in_pass == 1
    assert b.ran_out in ("listing", "label lookups")
    (main,) = b.stores
    assert main.resume_after is not None
    assert not main.finished
    assert b.continuation_key == continuation_key("dry-run")
    stored = passes.parse(store.get(continuation_key("dry-run")).body)
    assert [r.after for r in stored.stores["main"].intervals()] == [main.resume_after]
    assert main.ranges_left == 1  # a local store is listed as one range
    assert stored.runs == 1
    assert not stored.complete
    # nothing at or past the resume point was decided in this run
    assert all(d.name <= main.resume_after for d in first.decisions)
    line = reaper.describe_run(first)
    assert "pass continues" in line
    assert f"resumes after {main.resume_after!r}" in line
    second = run(store, ITEM_POLICIES, ticks(60))
    assert second.budget is not None
    assert second.budget.run_in_pass == 2
    assert all(d.name > main.resume_after for d in second.decisions)


def test_the_continuation_is_protected_from_a_policy_that_matches_everything(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store, objects=40)
    everything = (
        "policies: [{name: all, resource: object, store: main, filters: [{type: older-than, age: 0s}]}]"
    )
    run(store, everything, ticks(30))  # leaves a continuation behind
    key = continuation_key("dry-run")
    assert store.exists(key)
    later = [run(store, everything, ticks(30)) for _ in range(6)]
    verdicts = {d.verdict for r in later for d in r.decisions if d.name == key}
    assert verdicts == {"protected"}


def test_whole_bucket_policies_decide_only_in_a_run_that_knows_the_whole_bucket(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store)
    unbudgeted = run(store, WITH_RETENTION, None)
    retention = [p for p in planned(unbudgeted) if p[0] == "keep-one"]
    assert retention  # version 1 goes
    # a budget that lasts: one run, complete, the same plan
    roomy = run(store, WITH_RETENTION, ticks(1_000_000))
    assert roomy.budget is not None
    assert roomy.budget.pass_complete
    assert sorted(planned(roomy)) == sorted(planned(unbudgeted))
    # a short one: the first run is cut, so keep-one waits and never decides on part of the bucket
    reports = run_pass(store, WITH_RETENTION, 40)
    assert len(reports) > 1
    assert all(p[0] != "keep-one" for r in reports for p in planned(r))
    assert reports[0].budget is not None
    assert "keep-one" in reports[0].budget.policies_waiting
    # the item policies still planned exactly their keys
    items = sorted(p for p in planned(unbudgeted) if p[0] != "keep-one")
    assert sorted(p for r in reports for p in planned(r)) == items


# -- races, kills and bad state --------------------------------------------------------------------


def race_to_the_end(store: Any, run_once: Callable[[], ReaperReport], limit: int = 200) -> list[ReaperReport]:
    """Two runs at a time (released together) until a pass is complete; every report of them.
    Between rounds the stored continuation is always well-formed: never torn, never clobbered."""
    reports: list[ReaperReport] = []
    for _ in range(limit):
        barrier = threading.Barrier(2)
        out: list[ReaperReport] = []

        def one(barrier: threading.Barrier = barrier, out: list[ReaperReport] = out) -> None:
            barrier.wait()
            out.append(run_once())

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(out) == 2
        reports.extend(out)
        key = continuation_key("dry-run")
        stored = passes.parse(store.get(key).body) if store.exists(key) else None
        if any(r.budget is not None and r.budget.pass_complete for r in out) and (
            not stored or stored.complete
        ):
            return reports
    raise AssertionError("the racing runs never finished the pass")


def lost_races(reports: list[ReaperReport]) -> int:
    return sum(any("changed by a concurrent run" in n for n in r.budget.notes) for r in reports if r.budget)


@pytest.mark.slow
def test_concurrent_runs_racing_on_the_continuation_never_clobber_it_nor_skip_a_key(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store)
    whole = set(planned(run(store, ITEM_POLICIES, None)))
    reports = race_to_the_end(store, lambda: run(store, ITEM_POLICIES, ticks(50)))
    # a part planned twice by racing runs is fine (same task ids); none is skipped
    assert {p for r in reports for p in planned(r)} == whole
    assert lost_races(reports) > 0


class CrashBeforeContinuation(Exception):
    """Stands for the process dying after the tasks were sent, before the continuation is stored."""


class CrashingStore(LocalStore):
    crash = False

    def _put(self, key: str, data: bytes | Path, *args: Any) -> str:
        if self.crash and key.startswith("reaper-state/"):
            raise CrashBeforeContinuation(key)
        return super()._put(key, data, *args)


def test_a_run_killed_between_sending_and_the_continuation_is_planned_again_with_the_same_task_ids(
    tmp_path: Path,
) -> None:
    store = CrashingStore(tmp_path / "stores" / "main")
    build(store)
    whole = set(planned(run(store, ITEM_POLICIES, None)))
    queue = LocalQueue(tmp_path / "q")
    first = run(store, ITEM_POLICIES, ticks(80), apply=True, queue=queue)
    assert first.sent == len(first.tasks) > 0
    store.crash = True
    with pytest.raises(CrashBeforeContinuation):
        run(store, ITEM_POLICIES, ticks(80), apply=True, queue=queue)
    sent_by_killed = {json.loads(m.body)["task_id"] for m in queue.receive(10_000)}
    store.crash = False
    again = run(store, ITEM_POLICIES, ticks(80), apply=True, queue=queue)
    # the killed run's segment is planned again: same tasks, same ids (the executor dedups them)
    assert {t.task_id for t in again.tasks} <= sent_by_killed | {t.task_id for t in first.tasks}
    assert {t.task_id for t in again.tasks} - {t.task_id for t in first.tasks}
    reports = [first, again]
    while not (reports[-1].budget and reports[-1].budget.pass_complete):
        reports.append(run(store, ITEM_POLICIES, ticks(80), apply=True, queue=queue))
    union = [p for r in reports for p in planned(r)]
    assert set(union) == whole
    assert len(union) == len(set(union))


def test_an_unconfirmed_or_partly_sent_run_leaves_the_continuation_as_it_was(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store)
    queue = LocalQueue(tmp_path / "q")
    run(store, ITEM_POLICIES, ticks(60), apply=True, queue=queue)
    key = continuation_key("apply")
    before = store.get(key).body
    declined = run(store, ITEM_POLICIES, ticks(60), apply=True, queue=queue, confirm=lambda _p: False)
    assert not declined.apply
    assert declined.budget is not None
    assert any("not confirmed" in n for n in declined.budget.notes)
    assert store.get(key).body == before
    # a dry run keeps its own continuation: it never moves the real runs' position
    run(store, ITEM_POLICIES, ticks(60))
    assert store.get(key).body == before
    assert store.exists(continuation_key("dry-run"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = {
    "format": st.just("storekeeper.reaper-continuation/1") | JSON,
    "mode": st.sampled_from(["dry-run", "apply"]) | JSON,
    "policies_sha256": st.just("0" * 64) | JSON,
    "pass_started_at": st.just("2030-01-15T11:00:00Z") | JSON,
    "updated_at": st.just("2030-01-15T11:00:00Z") | JSON,
    "runs": st.integers(min_value=-2, max_value=3) | JSON,
    "stores": st.dictionaries(st.sampled_from(["main", ""]), st.fixed_dictionaries({}, optional={
        "after": st.text(max_size=5) | JSON, "finished": st.booleans() | JSON,
        "ranges": st.lists(st.fixed_dictionaries({}, optional={
            "after": st.sampled_from(["a", "b/1", "c", ""]) | st.none() | JSON,
            "through": st.sampled_from(["a", "b/1", "c", "d"]) | st.none() | JSON}), max_size=4) | JSON,
    })) | JSON,
    "decided": st.lists(st.text(max_size=5)) | JSON,
    "complete": st.booleans() | JSON,
}  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    doc=st.fixed_dictionaries({}, optional=FIELDS) | JSON,
    raw=st.none() | st.binary(max_size=40),
)
def test_a_malformed_continuation_is_refused_naming_the_field_and_the_pass_starts_over(
    doc: Any, raw: bytes | None
) -> None:
    body = raw if raw is not None else json.dumps(doc).encode()
    try:
        cont = passes.parse(body)
    except ValueError as exc:
        text = str(exc)
        assert text.startswith(("not JSON", "must be a JSON object", "field ")), text
        return
    assert cont.format == "storekeeper.reaper-continuation/1"
    assert cont.runs >= 1
    for progress in cont.stores.values():
        ranges = progress.intervals()
        assert bool(ranges) != progress.finished
        # what a run lists: non-empty intervals, disjoint and in key order
        for r in ranges:
            assert r.after is None or r.through is None or r.after < r.through
        for lower, upper in itertools.pairwise(ranges):
            assert lower.through is not None
            assert upper.after is not None
            assert lower.through <= upper.after
        if progress.ranges is None and not progress.finished:  # the older format: one key
            assert ranges == [KeyRange(progress.after, None)]


CONTINUATION = {
    "format": "storekeeper.reaper-continuation/1", "mode": "dry-run", "policies_sha256": "0" * 64,
    "pass_started_at": "2030-01-15T11:00:00Z", "updated_at": "2030-01-15T11:00:00Z", "runs": 1,
}  # fmt: skip


@pytest.mark.parametrize(
    ("progress", "says"),
    [
        ({"ranges": [{"after": "b", "through": "a"}]}, "stores.main.ranges.0: Value error, after must sort"),
        ({"ranges": [{"through": "c"}, {"after": "b"}]}, "ranges[1] overlaps ranges[0]"),
        ({"ranges": [{"after": "a"}, {"after": "b"}]}, "ranges[1] overlaps ranges[0]"),
        ({"ranges": []}, "ranges is empty but the store is not finished"),
        ({"ranges": [{"after": "a"}], "finished": True}, "ranges remain but the store is finished"),
        ({"after": "a", "ranges": [{"after": "b"}]}, "give after (one resume key) or ranges, not both"),
        ({"ranges": [{"after": "a", "from": "b"}]}, "stores.main.ranges.0.from: Extra inputs"),
    ],
)
def test_a_continuation_with_bad_ranges_is_refused_naming_the_field(progress: Any, says: str) -> None:
    body = json.dumps({**CONTINUATION, "stores": {"main": progress}}).encode()
    with pytest.raises(ValueError, match=r"^field stores\.main") as exc:
        passes.parse(body)
    assert says in str(exc.value)


def test_the_older_single_key_continuation_is_read_as_one_range_and_the_pass_goes_on(tmp_path: Path) -> None:
    """A continuation written before ranges existed (`after` only) resumes after its key, to the end."""
    store = local_store(tmp_path)
    build(store, objects=40)
    whole = planned(run(store, ITEM_POLICIES, None))
    first = run(store, ITEM_POLICIES, ticks(40))
    assert first.budget is not None
    (main,) = first.budget.stores
    key = continuation_key("dry-run")
    doc = json.loads(store.get(key).body)
    doc["stores"]["main"] = {"after": main.resume_after}  # as the older format wrote it
    store.put(key, json.dumps(doc).encode())
    assert passes.parse(store.get(key).body).stores["main"].intervals() == [KeyRange(main.resume_after, None)]
    reports = [first, *run_pass(store, ITEM_POLICIES, 40)]
    assert reports[1].budget is not None
    assert reports[1].budget.run_in_pass == 2
    assert_plans_exactly(reports, whole)


def test_a_malformed_stored_continuation_starts_the_pass_over_and_is_replaced(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    build(store, objects=40)
    key = continuation_key("dry-run")
    store.put(key, json.dumps({"format": "storekeeper.reaper-continuation/1", "runs": "many"}).encode())
    r = run(store, ITEM_POLICIES, ticks(30))
    assert r.budget is not None
    assert r.budget.run_in_pass == 1
    assert any(f"continuation {key} refused (field mode" in n for n in r.budget.notes), r.budget.notes
    assert passes.parse(store.get(key).body).runs == 1  # replaced by a good one (If-Match the bad one)


def test_save_is_conditional_on_what_was_read(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    sha = "a" * 64
    first = passes.load(store, apply=True, policies_sha256=sha)
    assert first.continuation is None
    assert first.etag is None
    cont = passes.next_continuation(None, apply=True, policies_sha256=sha, now=NOW, stores={}, decided=[])
    other = passes.load(store, apply=True, policies_sha256=sha)
    assert passes.save(store, first, cont) is None
    assert "changed by a concurrent run" in (passes.save(store, other, cont) or "")
    with pytest.raises(PreconditionFailed):
        store.put(first.key, b"{}", if_none_match=True)
    # another policies file: the stored pass is not resumed
    assert passes.load(store, apply=True, policies_sha256="b" * 64).continuation is None


def test_budget_from_remaining_keeps_a_reserve_and_listing_gets_a_share() -> None:
    clock: Callable[[], float] = lambda: 0.0  # noqa: E731
    b = Budget.from_remaining(100.0)
    assert b.seconds == pytest.approx(80.0)
    assert Budget.from_remaining(20.0).seconds == pytest.approx(10.0)
    assert Budget.from_remaining(5.0).seconds == 0.0
    assert not Budget.from_remaining(None).limited
    part = Budget(10.0, clock=clock).part(0.5)
    assert part.seconds == pytest.approx(5.0)
    assert not part.expired()


# -- fan-out: full bulk requests, as many tasks as a plan needs ----------------------------------------


@pytest.mark.slow
def test_a_big_plan_is_split_into_full_1000_key_tasks_and_each_is_one_bulk_delete(tmp_path: Path) -> None:
    """Deltas of 12 collections (100 each) and 2,500 loose objects: 2 + 3 tasks (not one per
    collection), and executing them costs exactly one DeleteObjects each."""
    from storekeeper.cleanup import execute_task, parse_task

    store = local_store(tmp_path)
    for c in range(12):
        name = f"c{c:02d}"
        ids = [delta_id(c * 1000 + n) for n in range(100)]
        for n in range(100):
            write_delta(store, name, c * 1000 + n, 3 * D)
        write_version(store, name, 1, parent=None, applied=ids, old=2 * D)
        point(store, name, 1)
    for i in range(2500):
        put_aged(store, f"tmp/{i:05d}.bin", 1, 30 * D)
    text = """\
protect: {object_labels: false}
policies:
  - {name: applied, resource: delta, store: main, filters: [{type: applied}]}
  - {name: old-tmp, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 7d}]}
"""
    queue = LocalQueue(tmp_path / "q")
    report = run(store, text, None, apply=True, queue=queue)
    sizes = {p: [len(t.keys) for t in report.tasks if t.policy == p] for p in ("applied", "old-tmp")}
    assert sizes == {"applied": [1000, 200], "old-tmp": [1000, 1000, 500]}
    assert {t.collection for t in report.tasks if t.policy == "applied"} == {None}  # spans collections
    store.requests.reset()
    for m in queue.receive(100):
        out = execute_task(parse_task(m.body), resolve_store=lambda b, n: store, now=NOW)
        assert out.status == "executed", out
    assert store.requests.counts.get("delete_batch") == len(report.tasks) == 5
    assert not [k for k in store.list("") if k.key.startswith(("tmp/", "delta/"))]


# -- where the budget comes from: the Lambda context, `reap --deadline` ----------------------------------


def test_the_lambda_handler_and_reap_deadline_budget_planning_from_their_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from storekeeper import netconfig
    from storekeeper.cli import app
    from storekeeper.runtime import invoke

    store = local_store(tmp_path)
    build(store, objects=20)
    pol = tmp_path / "p.yaml"
    pol.write_text(ITEM_POLICIES)
    event = json.loads((Path(__file__).resolve().parents[2] / "events/reaper/schedule.json").read_text())
    env = {"REAPER_POLICIES": str(pol), "CLEANUP_QUEUE_URL": LocalQueue(tmp_path / "q").url,
           "STOREKEEPER_STORE": store.url}  # fmt: skip
    out = invoke("reaper", event, env=env, timeout_s=60)
    assert out.error_type is None, out.error_message
    assert out.response["pass_complete"] is True
    report = ReaperReport.model_validate_json(store.get(out.response["report_key"]).body)
    # 60 s less the handler's 2 s reserve, less planning's reserve (a fifth, 10 s at least)
    assert report.budget is not None
    assert report.budget.seconds == pytest.approx(58 * 0.8, abs=5)
    monkeypatch.delenv("STOREKEEPER_DEADLINE", raising=False)
    res = CliRunner().invoke(
        app, ["reap", "--policies", str(pol), "--store", store.url, "--deadline", "30", "--json"]
    )
    assert res.exit_code == 0, res.output
    budget = json.loads(res.stdout)["budget"]
    assert budget["seconds"] == pytest.approx(20, abs=5)
    assert budget["pass_complete"] is True
    assert netconfig.remaining() is None  # the command's deadline ends with it
    # the memory bound: the Lambda's memory sets it (the local runtime sets the function's memory as
    # Lambda does); `reap --max-objects` and STOREKEEPER_REAPER_MAX_OBJECTS override it
    from storekeeper.runtime import DEFAULT_MEMORY_MB, FUNCTION_DEFAULTS

    memory = FUNCTION_DEFAULTS.get("reaper", (0, DEFAULT_MEMORY_MB))[1]
    assert report.budget.max_objects == passes.objects_for_memory(memory)
    res = CliRunner().invoke(
        app, ["reap", "--policies", str(pol), "--store", store.url, "--max-objects", "12", "--json"]
    )
    assert res.exit_code == 0, res.output
    budget = json.loads(res.stdout)["budget"]
    assert (budget["max_objects"], budget["ran_out"], budget["pass_complete"]) == (12, "memory", False)
    monkeypatch.setenv("STOREKEEPER_REAPER_MAX_OBJECTS", "none")
    res = CliRunner().invoke(app, ["reap", "--policies", str(pol), "--store", store.url, "--json"])
    assert res.exit_code != 0
    assert "STOREKEEPER_REAPER_MAX_OBJECTS must be a positive integer" in res.output


def test_a_pass_planned_from_an_inventory_resumes_by_key_and_plans_the_unbudgeted_plan(
    tmp_path: Path,
) -> None:
    """The report is read whole each run (its files are not in key order); the planner sorts it, so
    the key is the resume point, whatever file and row a key came from."""
    keys = [f"docs/{(n * 37) % 150:04d}.bin" for n in range(150)]  # a shuffled order, three files
    report = write_report(tmp_path, [[row(k) for k in keys[i : i + 50]] for i in range(0, 150, 50)])
    store = LocalStore(tmp_path / "stores" / "inv-src")
    store.put("marker", b"x")  # the store exists; its objects are only in the report
    text = """\
defaults: {rate_limit: 100000}
protect: {object_labels: true}
policies:
  - {name: old-docs, resource: object, store: main, prefix: docs/, filters: [{type: older-than, age: 7d}]}
"""

    def plan(budget: Budget | None) -> ReaperReport:
        return run(store, text, budget, inventory=str(report))

    whole = planned(plan(None))
    assert len(whole) == 150
    reports = run_pass(store, text, 40, inventory=str(report))
    assert len(reports) > 2
    assert {li.source for r in reports for li in r.listings} == {"inventory"}
    assert_plans_exactly(reports, whole)


def test_a_whole_bucket_policy_decides_in_a_cut_run_when_it_deletes_nothing_past_the_cut(
    tmp_path: Path,
) -> None:
    """The listing is whole (the clock counts HEADs only), the lookups are cut inside tmp/: keep-one
    decides on the whole listing in the first run, since every version it deletes sorts before the
    cut, and never again in the pass."""
    store = local_store(tmp_path)
    build(store)
    text = """\
defaults: {grace: 1h, rate_limit: 100000}
protect: {object_labels: true}
policies:
  - {name: old-tmp, resource: object, store: main, prefix: tmp/, filters: [{type: older-than, age: 7d}]}
  - {name: applied, resource: delta, store: main, filters: [{type: applied}]}
  - {name: keep-one, resource: snapshot_version, store: main, filters: [{type: keep-newest, count: 1}]}
"""
    whole = planned(run(store, text, None))
    retention = [p for p in whole if p[0] == "keep-one"]
    assert retention
    heads = head_clock(store)

    reports = run_pass(store, text, lambda: Budget(5, clock=heads))
    assert len(reports) > 1
    first = reports[0].budget
    assert first is not None
    assert first.ran_out == "label lookups"
    assert first.stores[0].resume_after is not None
    assert first.stores[0].resume_after.startswith("tmp/")
    assert [p for p in planned(reports[0]) if p[0] == "keep-one"] == retention
    assert not [p for r in reports[1:] for p in planned(r) if p[0] == "keep-one"]
    assert_plans_exactly(reports, whole)


def test_a_whole_bucket_policy_that_would_delete_past_the_cut_waits_and_nothing_is_planned_twice(
    tmp_path: Path,
) -> None:
    """Lookups cut the store inside a/ (before snapshot/): keep-one's plan would reach past the cut,
    so it waits; the item policies still plan exactly their keys over the pass."""
    store = local_store(tmp_path)
    build(store)
    whole = planned(run(store, WITH_RETENTION, None))
    heads = head_clock(store)

    reports = run_pass(store, WITH_RETENTION, lambda: Budget(3, clock=heads))
    first = reports[0].budget
    assert first is not None
    assert "keep-one" in first.policies_waiting
    assert (first.stores[0].resume_after or "") < "snapshot/"
    union = [p for r in reports for p in planned(r)]
    assert len(union) == len(set(union))
    assert sorted(p for p in union if p[0] != "keep-one") == sorted(p for p in whole if p[0] != "keep-one")


# -- the memory bound: a run holds at most `max_objects` listed objects -----------------------------------


def held(n: int) -> Callable[[], Budget]:
    """Budgets without a deadline, bounded to `n` objects held (the memory bound)."""
    return lambda: Budget(None, max_objects=n)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=200), workers=st.sampled_from([1, 3, 4]))
def test_a_pass_under_a_memory_bound_plans_exactly_the_unbudgeted_plan(
    tmp_path: Path, split_local: None, n: int, workers: int
) -> None:
    """The ranges count their objects together and each stops once the count reaches the bound
    (after one key at least): a run keeps every key they listed, so a pass takes about as many
    runs as the bound alone needs, not `workers` times as many."""
    store = local_store(tmp_path, f"held-{n:03d}-{workers}")
    if not store.path.exists() or not any(store.path.iterdir()):
        build(store)
    text = with_workers(ITEM_POLICIES, workers)
    whole = planned(run(store, text, None))
    reports = run_pass(store, text, held(n))
    assert_plans_exactly(reports, whole)
    total = len(list(store.list("")))
    # every run but the last holds the bound's worth of keys at least
    assert len(reports) <= -(-total // n) + 1
    for r in reports:
        assert r.budget is not None
        assert r.budget.max_objects == n
        (main,) = r.budget.stores
        # a run never plans more keys than the bound lets it hold (each range may take one more)
        assert sum(s.evaluated for s in r.summaries if s.policy == "old-any") <= n + workers - 1
        assert main.keys_planned <= n + workers - 1
        if not r.budget.pass_complete:
            assert r.budget.ran_out == "memory"
            assert not main.listing_complete
            assert f"memory bound of {n}" in reaper.describe_run(r)
    if n >= total:  # a bound above the bucket's size never stops a run
        assert len(reports) == 1


def test_the_memory_bound_comes_from_the_functions_memory_or_the_setting() -> None:
    assert passes.memory_bound({}) is None
    lambda_1g = passes.memory_bound({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"})
    assert lambda_1g == 1024 * 2**20 // 2 // passes.BYTES_PER_OBJECT
    assert passes.memory_bound({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}) == 3_495_253  # 10 GB
    both = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "STOREKEEPER_REAPER_MAX_OBJECTS": "5000"}
    assert passes.memory_bound(both) == 5000
    for bad in ("0", "-3", "lots", "1.5", "\u00b2", "\u0661\u0662", "+5", "0x10"):
        with pytest.raises(StorekeeperError, match="STOREKEEPER_REAPER_MAX_OBJECTS must be a positive"):
            passes.memory_bound({"STOREKEEPER_REAPER_MAX_OBJECTS": bad})
    assert Budget.from_remaining(None, max_objects=7).limited
    assert Budget.from_remaining(100.0).part(0.5).max_objects is None
    assert Budget.from_remaining(100.0, max_objects=7).part(0.5).max_objects == 7


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_any_max_objects_setting_is_a_clear_error_or_its_exact_value(raw: str) -> None:
    text = raw.strip()
    if text and not (text.isascii() and text.isdigit() and int(text) >= 1):
        with pytest.raises(StorekeeperError, match="STOREKEEPER_REAPER_MAX_OBJECTS must be a positive"):
            passes.memory_bound({"STOREKEEPER_REAPER_MAX_OBJECTS": raw})
        return
    got = passes.memory_bound({"STOREKEEPER_REAPER_MAX_OBJECTS": raw})
    assert got == (int(text) if text else None)  # plain ASCII digits, read exactly; blank: no bound


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=160), files=st.integers(min_value=1, max_value=5))
def test_a_pass_from_an_inventory_under_a_memory_bound_holds_at_most_the_bound(
    tmp_path_factory: pytest.TempPathFactory, n: int, files: int
) -> None:
    """Each run reads the report file by file and keeps only the `n` smallest keys after the resume
    point: never more than `n` rows (plus one file) held, and the pass plans the unbudgeted plan."""
    tmp = tmp_path_factory.mktemp("inv")
    keys = [f"docs/{(k * 37) % 150:04d}.bin" for k in range(150)]  # shuffled across the files
    per = -(-150 // files)
    report = write_report(tmp, [[row(k) for k in keys[i : i + per]] for i in range(0, 150, per)])
    store = LocalStore(tmp / "stores" / "inv-src")
    store.put("marker", b"x")
    text = """\
defaults: {rate_limit: 100000}
protect: {object_labels: true}
policies:
  - {name: old-docs, resource: object, store: main, prefix: docs/, filters: [{type: older-than, age: 7d}]}
"""
    whole = planned(run(store, text, None, inventory=str(report)))
    assert len(whole) == 150
    reports = run_pass(store, text, held(n), inventory=str(report))
    assert_plans_exactly(reports, whole)
    assert len(reports) == -(-150 // n)  # every run holds exactly n keys but the last
    assert all(r.budget is not None and r.budget.ran_out == "memory" for r in reports[:-1])
    # the reader itself: the n smallest keys after a resume point, and where it stopped
    inv = Inventory(str(report))
    table = inv.table(after="docs/0040.bin", limit=n)
    want = sorted(k for k in keys if k > "docs/0040.bin")[:n]
    assert table.keys == want
    assert inv.bound == (want[-1] if n < len([k for k in keys if k > "docs/0040.bin"]) else None)


def test_a_pass_begun_on_a_listing_of_several_ranges_goes_on_from_an_inventory(
    tmp_path: Path, split_local: None
) -> None:
    """A store switched to an inventory mid-pass: the report is read from the lowest range left, and
    only the ranges' keys are planned (the keys between them were planned by the listing's runs)."""
    keys = [f"{p}/{i:04d}.bin" for p in ("a", "b", "c", "d") for i in range(30)]
    report = write_report(tmp_path, [[row(k) for k in keys[i : i + 40]] for i in range(0, 120, 40)])
    store = LocalStore(tmp_path / "stores" / "inv-src")
    for k in keys:
        store.put(k, b"x")
    rule = "{name: bins, resource: object, store: main, filters: [{type: name-glob, pattern: '*.bin'}]}"
    text = with_workers(f"policies:\n  - {rule}\n", 4)
    whole = planned(run(store, text, None))
    assert whole == planned(run(store, text, None, inventory=str(report)))
    first = run(store, text, held(20)())
    assert first.budget is not None
    (main,) = first.budget.stores
    assert main.ranges_left == 4  # each range stopped with keys left
    rest = run_pass(store, text, held(25), ranges_before=4, inventory=str(report))
    assert {li.source for r in rest for li in r.listings} == {"inventory"}
    assert rest[0].budget is not None
    assert rest[0].budget.run_in_pass == 2
    assert_plans_exactly([first, *rest], whole)
