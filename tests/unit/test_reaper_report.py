"""The report's fast paths: decisions built without validation must equal validated ones, the
digest must ignore only the planning clock, and skipped decisions past the listing cap are
counted, not listed."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storekeeper import reaper
from storekeeper.models.cleanup import CleanupTask, TaskGuard
from storekeeper.models.reports import Decision, plan_digest, trusted_decision
from storekeeper.policies import parse_policies
from storekeeper.policies.planner import MAX_LISTED
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import NOW, local_store

VALUES = {
    "policy": "age",
    "store": "main",
    "resource": "object",
    "bucket": "main",
    "name": "cache/a.bin",
    "verdict": "planned",
    "reason": "older than 2d",
    "size": 3,
    "created": datetime(2030, 1, 1, tzinfo=UTC),
    "task_id": "t-" + "a" * 32,
}


def test_trusted_decision_is_indistinguishable_from_a_validated_one() -> None:
    fast, checked = trusted_decision(VALUES), Decision.model_validate(VALUES)
    assert fast == checked
    assert hash(fast) == hash(checked)
    assert fast.model_dump_json() == checked.model_dump_json()
    assert fast.model_fields_set == checked.model_fields_set
    assert Decision.model_validate_json(fast.model_dump_json()) == checked
    with pytest.raises(Exception, match="frozen"):
        fast.verdict = "skipped"  # type: ignore[misc]


def test_trusted_decision_is_still_validated() -> None:
    with pytest.raises(ValueError, match="verdict"):
        trusted_decision({**VALUES, "verdict": "maybe"})
    with pytest.raises(ValueError, match="name"):
        trusted_decision({k: v for k, v in VALUES.items() if k != "name"})


def _task(at: datetime, keys: list[str]) -> CleanupTask:
    return CleanupTask(
        task_id="t-" + "b" * 32,
        action="delete_objects",
        backend="file",
        bucket="main",
        keys=keys,
        policy="age",
        reason="older than 2d",
        planned_at=at,
        guard=TaskGuard(etags=dict.fromkeys(keys, '"e"'), last_modified_before=at),
    )


def test_plan_digest_ignores_the_planning_clock_and_nothing_else() -> None:
    d = [trusted_decision(VALUES)]
    base = plan_digest(d, [_task(NOW, ["cache/a.bin"])])
    assert plan_digest(d, [_task(NOW + timedelta(minutes=5), ["cache/a.bin"])]) == base
    assert plan_digest(d, [_task(NOW, ["cache/b.bin"])]) != base
    other = [trusted_decision({**VALUES, "reason": "older than 3d"})]
    assert plan_digest(other, [_task(NOW, ["cache/a.bin"])]) != base
    assert plan_digest(d, []) != base


def test_plan_digest_hashes_the_bytes_list_adapters_wrote_before() -> None:
    """Digests of earlier reports stay comparable: the report's serializer writes the same bytes."""
    import hashlib

    from pydantic import TypeAdapter

    from storekeeper.models.reports import PolicySummary

    d = [trusted_decision(VALUES), trusted_decision({**VALUES, "name": "cache/b.bin", "size": None})]
    tasks = [_task(NOW, ["cache/a.bin", "cache/b.bin"]), _task(NOW, ["cache/c.bin"])]
    summaries = [PolicySummary(policy="age", resource="object", store="main", planned=2, notes=["n"])]
    when = {"planned_at": True, "dry_run": True, "guard": {"last_modified_before", "etags"}}
    for ss in (summaries, None):
        h = hashlib.sha256(b'{"decisions":' + TypeAdapter(list[Decision]).dump_json(d))
        h.update(b',"tasks":' + TypeAdapter(list[CleanupTask]).dump_json(tasks, exclude={"__all__": when}))
        h.update(b',"etags":')
        for t in tasks:
            h.update("\n".join(t.guard.etags).encode() + b"\x00")
            h.update("\n".join(t.guard.etags.values()).encode() + b"\x00")
        if ss is not None:
            h.update(b',"summaries":' + TypeAdapter(list[PolicySummary]).dump_json(ss))
        h.update(b"}")
        assert plan_digest(d, tasks, ss) == h.hexdigest()


def _objects(store: LocalStore, n: int, age: timedelta) -> None:
    folder = store.path / "cache"
    folder.mkdir(parents=True)
    t = (NOW - age).timestamp()
    for i in range(n):
        f = folder / f"{i:05d}.bin"
        f.write_bytes(b"xy")
        os.utime(f, (t, t))


TWO_POLICIES = """\
protect: {object_labels: false}
defaults: {max_deletions: 100000}
policies:
  - {name: first, resource: object, store: main, prefix: cache/, filters: [{type: older-than, age: 1d}]}
  - {name: second, resource: object, store: main, prefix: cache/, filters: [{type: older-than, age: 1d}]}
"""


def test_decisions_past_the_bound_are_counted_not_listed_and_decisions_are_valid(tmp_path: Path) -> None:
    n = MAX_LISTED + 5
    store = local_store(tmp_path)
    _objects(store, n, timedelta(days=2))
    report = reaper.run(
        policies=parse_policies(TWO_POLICIES), stores={"main": store}, now=NOW, write_report=False
    )
    first, second = report.summaries
    assert (first.planned, first.bytes_planned, first.omitted_decisions) == (n, 2 * n, 5)
    assert (second.planned, second.skipped, second.omitted_decisions) == (0, n, 5)
    assert report.totals()["planned"] == report.totals()["skipped"] == n
    listed = [d for d in report.decisions if d.policy == "second"]
    assert len(listed) == MAX_LISTED
    assert {d.reason for d in listed} == {"already planned by policy first"}
    assert [d.name for d in listed] == [f"cache/{i:05d}.bin" for i in range(MAX_LISTED)]
    # every listed planned decision names its task; the tasks hold every planned key once
    planned = [d for d in report.decisions if d.verdict == "planned"]
    assert [d.name for d in planned] == [f"cache/{i:05d}.bin" for i in range(MAX_LISTED)]
    by_task = {t.task_id: t.keys for t in report.tasks}
    every = [k for keys in by_task.values() for k in keys]
    assert every == [f"cache/{i:05d}.bin" for i in range(n)]
    assert all(d.name in by_task[d.task_id or ""] for d in planned)
    # what the planner built without validation passes validation unchanged
    for d in report.decisions[:50] + report.decisions[-50:]:
        assert Decision.model_validate(d.model_dump()) == d
        assert d.created is not None
        assert d.created.tzinfo is not None
