"""Reaper on the local store: protection always wins, dry run == real run, watermarks, caps, overflow.

Real runs go all the way: the reaper sends tasks to a local queue and the real
cleanup executor drains it, so "deletes exactly the plan" is checked on disk.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from storekeeper import reaper
from storekeeper.cleanup import execute_task, parse_task, store_resolver
from storekeeper.models.reports import ReaperReport
from storekeeper.policies import load_policies, parse_policies
from storekeeper.queues import LocalQueue
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import (
    NOW,
    delta_id,
    local_store,
    point,
    put_aged,
    version,
    write_delta,
    write_version,
)

H, D = timedelta(hours=1), timedelta(days=1)


def all_keys(store: LocalStore) -> set[str]:
    return {i.key for i in store.list("")}


def drain(queue: LocalQueue, base: LocalStore) -> list[str]:
    statuses = []
    while msgs := queue.receive(10):
        for m in msgs:
            outcome = execute_task(parse_task(m.body), resolve_store=store_resolver(base), now=NOW)
            statuses.append(outcome.status)
            queue.ack(m)
    return statuses


def planned_keys(report: ReaperReport, store: LocalStore) -> set[str]:
    keys: set[str] = set()
    for t in report.tasks:
        keys.update(t.keys)
        if t.version:
            keys.update(k for k in all_keys(store) if k.startswith(f"snapshot/{t.collection}/{t.version}/"))
    return keys


@pytest.fixture
def world(tmp_path: Path) -> LocalStore:
    """docs: versions 1..6 (live = 5, 6 never published, 7 a crashed half-write older than live's child);
    deltas 0..7 of which 0..4 are applied by the live manifest; plus temp files and reports."""
    s = local_store(tmp_path)
    ds = [delta_id(i) for i in range(8)]
    for i in range(8):
        write_delta(s, "docs", i, 3 * D if i < 5 else 2 * D)
    for seq in range(1, 7):
        write_version(s, "docs", seq, parent=seq - 1 or None, applied=ds[:seq], old=(9 - seq) * D)
    point(s, "docs", 5)
    # a crashed compactor: archive written, manifest never, on an old parent (older than live, unreachable)
    s.put(f"snapshot/docs/{version(3)[:-2]}zz/chroma.tar.gz", b"y" * 10)
    from tests.unit.reaper_world import age

    age(s, f"snapshot/docs/{version(3)[:-2]}zz/chroma.tar.gz", 5 * D)
    put_aged(s, "tmp/old.tmp", 10, 3 * D)
    put_aged(s, "tmp/kept.tmp", 10, 3 * D, metadata={"storekeeper-protect": "true"})
    put_aged(s, "tmp/new.tmp", 10, 2 * H)
    return s


def live_keys(store: LocalStore) -> set[str]:
    live = f"snapshot/docs/{version(5)}/"
    unapplied = {f"delta/docs/{delta_id(i)}.delta" for i in (5, 6, 7)}
    return (
        {k for k in all_keys(store) if k.startswith(live)} | {"snapshot/docs/latest/pointer.txt"} | unapplied
    )


AGGRESSIVE = """\
protect:
  names: []
policies:
  - {name: everything, resource: object, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: all-deltas, resource: delta, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: keep-one, resource: snapshot_version, store: main, filters: [{type: keep-newest, count: 1}]}
  - {name: orphans, resource: snapshot_version, store: main, filters: [{type: unpublished}]}
"""


def test_live_snapshot_and_unapplied_deltas_survive_every_policy(world: LocalStore, tmp_path: Path) -> None:
    must_stay = live_keys(world)
    assert len(must_stay) == 6  # archive + manifest + pointer + 3 unapplied deltas
    queue = LocalQueue(tmp_path / "q")
    report = reaper.run(
        policies=parse_policies(AGGRESSIVE), stores={"main": world}, now=NOW, apply=True, queue=queue
    )
    protected = {d.name for d in report.decisions if d.verdict == "protected"}
    assert must_stay <= protected  # each one was matched by "everything" and kept for a reason
    assert not must_stay & planned_keys(report, world)
    reasons = {d.name: d.reason for d in report.decisions if d.verdict == "protected"}
    assert "live pointer" in reasons["snapshot/docs/latest/pointer.txt"]
    assert "not applied" in reasons[f"delta/docs/{delta_id(6)}.delta"]
    assert "newer than the live" in reasons[f"snapshot/docs/{version(6)}/"]
    statuses = drain(queue, world)
    # versions whose objects the object policy already removed are noop; nothing failed or was refused
    assert "executed" in statuses
    assert set(statuses) <= {"executed", "noop"}
    left = all_keys(world)
    assert must_stay <= left
    assert "tmp/kept.tmp" in left  # metadata label protects
    # what was planned is gone, the newer-than-live version stays (mid-publish rule)
    assert not planned_keys(report, world) & left
    assert any(k.startswith(f"snapshot/docs/{version(6)}/") for k in left)


def test_dry_run_and_real_run_make_the_same_plan_and_the_real_run_deletes_exactly_it(
    world: LocalStore, tmp_path: Path
) -> None:
    before = all_keys(world)
    queue = LocalQueue(tmp_path / "q")
    dry = reaper.run(policies=load_policies(), stores={"main": world}, now=NOW, queue=queue)
    assert dry.apply is False
    assert dry.sent == 0
    assert len(queue) == 0
    # a dry run only writes its report, and next to it the status page and the history index
    assert all_keys(world) - before == {
        dry.report_key,
        "reports/reaper/latest.html",
        "reports/reaper/history.json",
    }
    world.delete(dry.report_key or "")  # same state for the real run (the fake clock would age the report)
    world.delete("reports/reaper/latest.html")  # and what was written with it
    world.delete("reports/reaper/history.json")
    real = reaper.run(policies=load_policies(), stores={"main": world}, now=NOW, apply=True, queue=queue)
    assert real.plan_digest == dry.plan_digest
    assert [t.model_dump(exclude={"planned_at"}) for t in real.tasks] == [
        t.model_dump(exclude={"planned_at"}) for t in dry.tasks
    ]
    assert [d.model_dump() for d in real.decisions] == [d.model_dump() for d in dry.decisions]
    assert real.sent == len(real.tasks) == len(queue) > 0
    plan = planned_keys(real, world)
    expected = (
        {f"snapshot/docs/{version(s)}/chroma.tar.gz" for s in (1, 2)}
        | {f"snapshot/docs/{version(s)}/manifest.json" for s in (1, 2)}
        | {f"snapshot/docs/{version(3)[:-2]}zz/chroma.tar.gz"}
        | {f"delta/docs/{delta_id(i)}.delta" for i in range(5)}
        | {"tmp/old.tmp"}
    )
    assert plan == expected
    present = all_keys(world)
    drain(queue, world)
    assert all_keys(world) == present - plan
    # the report is in the store and parses back to the same plan
    stored = ReaperReport.model_validate_json(world.get(real.report_key or "").body)
    assert stored.plan_digest == real.plan_digest
    assert stored.apply is True


def _images(tmp_path: Path, n: int = 20, size: int = 450, capacity: int = 10_000) -> tuple[LocalStore, str]:
    s = local_store(tmp_path)
    for i in range(n):  # images/000 is the oldest
        meta = {"storekeeper:protect": "true"} if i == 1 else None
        put_aged(s, f"images/{i:03d}.png", size, (n - i) * D, metadata=meta)
    text = f"""\
stores:
  main: {{capacity: {capacity}, watermarks: {{high: 0.85, low: 0.70, hard: 0.95}}}}
policies:
  - {{name: images-watermark, resource: object, store: main, prefix: images/, filters: [{{type: watermark}}]}}
"""
    return s, text


def test_watermark_cleans_oldest_first_to_the_low_watermark_and_skips_protected(tmp_path: Path) -> None:
    s, text = _images(tmp_path)  # 20 x 450 = 9000 of 10000 = 0.90 >= 0.85
    queue = LocalQueue(tmp_path / "q")
    report = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW, apply=True, queue=queue)
    planned = [d.name for d in report.decisions if d.verdict == "planned"]
    # oldest first, skipping the protected images/001: free > 2000 bytes -> 5 objects
    assert planned == [
        "images/000.png",
        "images/002.png",
        "images/003.png",
        "images/004.png",
        "images/005.png",
    ]
    assert [d.name for d in report.decisions if d.verdict == "protected"] == ["images/001.png"]
    assert any("0.900 -> 0.675" in n for n in report.summaries[0].notes)
    drain(queue, s)
    assert s.usage("images/").bytes <= 0.70 * 10_000
    assert s.exists("images/001.png")
    assert s.exists("images/006.png")
    assert not s.exists("images/000.png")


def test_watermark_stops_and_reports_when_nothing_is_eligible(tmp_path: Path) -> None:
    s, text = _images(tmp_path)
    text = text.replace("policies:", "protect:\n  names: ['images/*']\npolicies:")
    report = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW, write_report=False)
    assert report.tasks == []
    assert {d.verdict for d in report.decisions} == {"protected"}
    assert any(n.startswith("stopped: nothing more eligible") for n in report.summaries[0].notes)


def test_watermark_below_high_plans_nothing(tmp_path: Path) -> None:
    s, text = _images(tmp_path, n=10)  # 4500 / 10000
    report = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW, write_report=False)
    assert report.tasks == []
    assert report.decisions == []
    assert "below high watermark" in report.summaries[0].notes[0]


OVERFLOW = """\
stores:
  main: {capacity: 1000, watermarks: {high: 0.85, low: 0.7, hard: 0.95}}
policies:
  - {name: overflow, resource: bucket, store: main, action: create-overflow,
     filters: [{type: usage-ratio, gte: hard}]}
"""


def test_hard_watermark_plans_an_overflow_bucket_only_when_the_whole_group_is_full(tmp_path: Path) -> None:
    s = local_store(tmp_path)
    s.put("images/a", b"x" * 960)
    queue = LocalQueue(tmp_path / "q")
    report = reaper.run(
        policies=parse_policies(OVERFLOW),
        stores={"main": s},
        now=NOW,
        apply=True,
        queue=queue,
        write_report=False,
    )
    assert [
        (t.action.value, t.bucket, t.guard.capacity_bytes, t.guard.hard_watermark) for t in report.tasks
    ] == [("create_overflow_bucket", "main", 1000, 0.95)]
    assert "every member full" in report.summaries[0].notes[-1]
    drain(queue, s)
    assert (tmp_path / "stores" / "main-1").is_dir()
    # main-1 has room now: nothing more to plan
    again = reaper.run(policies=parse_policies(OVERFLOW), stores={"main": s}, now=NOW, write_report=False)
    assert again.tasks == []
    assert [(d.name, d.verdict) for d in again.decisions] == [("main", "skipped")]
    assert "room" in again.decisions[0].reason


def test_run_cap_and_policy_limit_defer_the_excess(tmp_path: Path) -> None:
    s = local_store(tmp_path)
    for i in range(30):
        put_aged(s, f"cache/{i:02d}", 5, 3 * D)
    text = """\
defaults: {max_deletions: 12}
policies:
  - {name: a, resource: object, store: main, prefix: cache/0, filters: [{type: older-than, age: 48h}],
     limits: {max_deletions: 4}}
  - {name: b, resource: object, store: main, prefix: cache/, filters: [{type: older-than, age: 48h}]}
"""
    report = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW, write_report=False)
    by = {(x.policy): x for x in report.summaries}
    assert (by["a"].planned, by["a"].deferred) == (4, 6)
    # b: the 4 of a are already planned (skipped), 8 more fit under the run cap of 12, the rest deferred
    assert (by["b"].planned, by["b"].skipped, by["b"].deferred) == (8, 4, 18)
    deferred = next(d for d in report.decisions if d.policy == "b" and d.verdict == "deferred")
    assert "run cap of 12" in deferred.reason
    assert sum(len(t.keys) for t in report.tasks) == 12


def test_bucket_ttl_labels_protection_and_configured_stores(tmp_path: Path) -> None:
    s = local_store(tmp_path)
    for name, labels in {
        "test-a": {"ttl": "1h"},
        "test-b": {"ttl": "1h", "keep": "yes"},
        "test-c": {},
        "test-shared": {"ttl": "1h"},
        "test-d": {"expires": "2099-01-01T00:00:00Z"},
        "test-e": {"expires": "2029-01-01T00:00:00Z", "storekeeper:protect-until": "2031-01-01T00:00:00Z"},
    }.items():
        s.create_bucket(name)
        s.set_bucket_labels(name, labels)
    s.for_bucket("test-a").put("leftover", b"z")
    text = """\
protect: {names: ["*-shared"]}
policies:
  - {name: ttl, resource: bucket, store: main, filters: [{type: name-prefix, value: test-}, {type: ttl}]}
"""
    queue = LocalQueue(tmp_path / "q")
    report = reaper.run(
        policies=parse_policies(text),
        stores={"main": s},
        now=NOW,
        apply=True,
        queue=queue,
        write_report=False,
    )
    verdicts = {d.name: d.verdict for d in report.decisions}
    assert verdicts == {
        "test-a": "planned",
        "test-b": "protected",
        "test-shared": "protected",
        "test-e": "protected",
    }
    assert [(t.action.value, t.bucket, t.guard.max_objects) for t in report.tasks] == [
        ("delete_bucket", "test-a", 1)
    ]
    drain(queue, s)
    assert not (tmp_path / "stores" / "test-a").exists()
    assert (tmp_path / "stores" / "test-shared").is_dir()
    assert (tmp_path / "stores" / "main").is_dir()


def test_unreadable_live_manifest_protects_the_whole_collection(world: LocalStore) -> None:
    world.put(f"snapshot/docs/{version(5)}/manifest.json", b"{not json")
    report = reaper.run(
        policies=parse_policies(AGGRESSIVE), stores={"main": world}, now=NOW, write_report=False
    )
    docs = [d for d in report.decisions if d.name.startswith(("snapshot/docs/", "delta/docs/"))]
    assert docs
    assert {d.verdict for d in docs} == {"protected"}
    assert all("docs" in d.reason for d in docs)


def test_grace_is_a_floor_no_policy_can_lower(tmp_path: Path) -> None:
    """A policy matching everything (older-than 0s) still cannot plan a version or an applied delta
    younger than `defaults.grace`; once they age past it, the same policy plans them."""
    s = local_store(tmp_path)
    applied = [delta_id(0), delta_id(1)]
    for seq in (1, 2):
        write_version(s, "docs", seq, parent=seq - 1 or None, applied=applied, old=10 * timedelta(minutes=1))
    point(s, "docs", 2)
    write_delta(s, "docs", 0, 10 * timedelta(minutes=1))  # applied, 10 minutes old
    text = """\
defaults: {grace: 30m}
policies:
  - {name: versions, resource: snapshot_version, store: main, filters: [{type: keep-newest, count: 1}]}
  - {name: deltas, resource: delta, store: main, filters: [{type: older-than, age: 0s}]}
"""
    young = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW, apply=False)
    verdicts = {d.name: (d.verdict, d.reason) for d in young.decisions}
    assert not young.tasks
    grace_kept = [n for n, (v, why) in verdicts.items() if v == "protected" and "grace period" in why]
    assert any(version(1) in n for n in grace_kept), verdicts
    assert f"delta/docs/{delta_id(0)}.delta" in grace_kept, verdicts

    later = reaper.run(policies=parse_policies(text), stores={"main": s}, now=NOW + H, apply=False)
    planned = {d.name for d in later.decisions if d.verdict == "planned"}
    assert any(version(1) in n for n in planned), planned
    assert f"delta/docs/{delta_id(0)}.delta" in planned
    assert not any(version(2) in n for n in planned)  # the live one, never


@pytest.mark.parametrize("objects_first", [True, False])
def test_a_key_matched_by_an_object_and_a_delta_policy_is_one_task(
    world: LocalStore, tmp_path: Path, objects_first: bool
) -> None:
    """An `object` policy over delta/ and a `delta` policy name the same keys: the planner kept
    one namespace per resource kind, so each applied delta was planned (and sent) twice. Now the
    first policy plans it and the other says it was already planned; the task's guard is what either
    would carry (the listed etag, the plan's cutoff; protection is asked again when it runs)."""
    objects = (
        "  - {name: objects, resource: object, store: main, prefix: delta/,"
        " filters: [{type: older-than, age: 0s}]}"
    )
    deltas = "  - {name: merged, resource: delta, store: main, filters: [{type: applied}]}"
    order = [objects, deltas] if objects_first else [deltas, objects]
    text = "protect: {names: []}\npolicies:\n" + "\n".join(order) + "\n"
    queue = LocalQueue(tmp_path / "q")
    report = reaper.run(
        policies=parse_policies(text),
        stores={"main": world},
        now=NOW,
        apply=True,
        queue=queue,
        write_report=False,
    )
    applied = {f"delta/docs/{delta_id(i)}.delta" for i in range(5)}
    keys = [k for t in report.tasks for k in t.keys]
    assert sorted(keys) == sorted(applied)  # each applied delta in exactly one task
    first, second = ("objects", "merged") if objects_first else ("merged", "objects")
    by = {s.policy: s for s in report.summaries}
    assert (by[first].planned, by[second].planned, by[second].skipped) == (5, 0, 5)
    skipped = [d for d in report.decisions if d.policy == second and d.verdict == "skipped"]
    assert {d.reason for d in skipped} == {f"already planned by policy {first}"}
    for t in report.tasks:
        assert t.policy == first
        assert set(t.guard.etags) == set(t.keys)
        assert t.guard.last_modified_before == NOW
    statuses = drain(queue, world)
    assert statuses
    assert all(s == "executed" for s in statuses)
    assert not applied & all_keys(world)
    assert live_keys(world) <= all_keys(world)
