"""One table of protection cases, run through every caller of `Protection.reason`.

The planner (what a dry run reports as `protected`) and the executor (what a
cleanup task keeps at delete time) must keep the same things for the same
reason, word for word: each case names its target and the exact reason text,
and each caller is asked about it on the same store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storekeeper.cleanup import execute_task
from storekeeper.layout import continuation_key, idempotency_record_key, pointer_key, put_plan_key
from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
from storekeeper.policies import parse_policies
from storekeeper.policies.planner import Planner
from storekeeper.policies.protect import protection_config
from storekeeper.protection import Protection
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

D, M = timedelta(days=1), timedelta(minutes=1)
V1, V2, V3 = version(1), version(2), version(3)
APPLIED, PENDING, YOUNG = delta_id(1), delta_id(2), delta_id(3)
LIVE_ARCHIVE, NEW_ARCHIVE = f"snapshot/docs/{V2}/chroma.tar.gz", f"snapshot/docs/{V3}/chroma.tar.gz"
IS_LIVE = f"snapshot {V2} is the live snapshot of 'docs' (the pointer's target)"
IS_NEWER = f"snapshot {V3} is newer than the live {V2} (it may be mid-publish)"
SIBLING = V2[:13] + "zzzzzzzz"  # the live sequence, sorts after the live one: a rollback's lost race
YOUNG_PLAN, OLD_RECORD = put_plan_key("producer", "req-1"), idempotency_record_key("cleanup", "cleanup#t-9")

POLICIES = (
    """\
defaults: {grace: 1h}
protect:
  names: ['keep/*', 'snapshot/docs/"""
    + V1
    + """/']
policies:
  - {name: objects, resource: object, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: deltas, resource: delta, store: main, filters: [{type: older-than, age: 0s}]}
  - {name: versions, resource: snapshot_version, store: main, filters: [{type: older-than, age: 0s}]}
"""
)

# (target kind, name, exact reason or None when it may go)
CASES: list[tuple[str, str, str | None]] = [
    ("key", pointer_key("docs"), f"{pointer_key('docs')} is the live pointer of collection 'docs'"),
    ("key", LIVE_ARCHIVE, f"{LIVE_ARCHIVE}: {IS_LIVE}"),
    ("key", NEW_ARCHIVE, f"{NEW_ARCHIVE}: {IS_NEWER}"),
    (
        "key",
        f"delta/docs/{PENDING}.delta",
        f"delta {PENDING} is not applied by the live snapshot (snapshot/docs/{V2}/)",
    ),
    (
        "key",
        f"delta/docs/{YOUNG}.delta",
        f"delta/docs/{YOUNG}.delta: younger than the grace period (1:00:00)",
    ),
    ("key", "keep/golden.bin", "matches protect list entry 'keep/*'"),
    ("key", "labelled/x.bin", "labelled/x.bin: label storekeeper-protect=true"),
    ("key", "tmp/old.bin", None),
    (
        "key",
        continuation_key("apply-0123abcd"),
        f"{continuation_key('apply-0123abcd')} is reaper state (a pass's continuation)",
    ),
    ("key", f"delta/docs/{APPLIED}.delta", None),
    ("key", YOUNG_PLAN, f"{YOUNG_PLAN} is idempotency state younger than 15 days (retries read it)"),
    ("key", OLD_RECORD, None),
    (
        "version",
        f"snapshot/docs/{V2}/",
        f"snapshot {V2} is the live snapshot of 'docs' (the pointer's target)",
    ),
    ("version", f"snapshot/docs/{V3}/", f"snapshot {V3} is newer than the live {V2} (it may be mid-publish)"),
    ("version", f"snapshot/docs/{V1}/", f"matches protect list entry 'snapshot/docs/{V1}/'"),
    ("version", f"snapshot/docs/{SIBLING}/", None),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    s = local_store(tmp_path_factory.mktemp("table"))
    write_version(s, "docs", 1, parent=None, applied=[], old=5 * D)
    write_version(s, "docs", 2, parent=1, applied=[APPLIED, YOUNG], old=4 * D)
    write_version(s, "docs", 3, parent=2, applied=[APPLIED], old=3 * D, manifest=False)  # mid-publish
    point(s, "docs", 2)
    write_delta(s, "docs", 1, 2 * D)
    write_delta(s, "docs", 2, 2 * D)
    write_delta(s, "docs", 3, M)  # applied or not, it is younger than the grace floor
    put_aged(s, "keep/golden.bin", 10, 2 * D)
    put_aged(s, "labelled/x.bin", 10, 2 * D, metadata={"storekeeper-protect": "true"})
    put_aged(s, "tmp/old.bin", 10, 2 * D)
    put_aged(s, continuation_key("apply-0123abcd"), 10, 2 * D)
    put_aged(s, f"snapshot/docs/{SIBLING}/chroma.tar.gz", 10, 3 * D)  # lost its race: never a manifest
    put_aged(s, YOUNG_PLAN, 10, 2 * D)
    put_aged(s, OLD_RECORD, 10, 16 * D)
    return s


_PLANS: dict[str, dict[str, str | None]] = {}


def planner_reasons(world: LocalStore) -> dict[str, str | None]:
    """Every name the planner saw, with its `protected` reason (None when it planned it); one plan."""
    if world.url in _PLANS:
        return _PLANS[world.url]
    plan = Planner(parse_policies(POLICIES).spec, {"main": world}, now=NOW).plan()
    out: dict[str, str | None] = {}
    for d in plan.decisions:
        if d.verdict == "protected":
            out[d.name] = d.reason
        elif d.verdict == "planned":
            out.setdefault(d.name, None)
    _PLANS[world.url] = out
    return out


def executor_reason(world: LocalStore, kind: str, name: str) -> str | None:
    """What a dry-run cleanup task for `name` keeps, and why (None when it would delete it)."""
    config = protection_config(parse_policies(POLICIES).spec)
    if kind == "version":
        v = name.split("/")[2]
        task = CleanupTask(
            task_id="t-1", action=CleanupAction.delete_snapshot_version, backend="file", bucket="main",
            collection="docs", version=v, policy="table", reason="table", planned_at=NOW,
            guard=TaskGuard(live_version=V2),
        )  # fmt: skip
    else:
        task = CleanupTask(
            task_id="t-1", action=CleanupAction.delete_objects, backend="file", bucket="main",
            keys=[name], policy="table", reason="table", planned_at=NOW,
        )  # fmt: skip
    out = execute_task(task, resolve_store=lambda b, n: world, now=NOW, dry_run=True, protection=config)
    assert out.status in ("dry_run", "skipped"), out
    if name in out.skipped:
        return out.skipped[name]
    assert name in out.would_delete or any(k.startswith(name) for k in out.would_delete), out
    return None


def direct_reason(world: LocalStore, kind: str, name: str) -> str | None:
    config = protection_config(parse_policies(POLICIES).spec)
    info = world.head(name) if kind == "key" else None
    created = info.last_modified if info else max(i.last_modified for i in world.list(name))
    labels = info.metadata if info else None
    return Protection(world, config, NOW).reason(kind, name, created=created, labels=labels)  # type: ignore[arg-type]


CALLERS: dict[str, Callable[[LocalStore, str, str], str | None]] = {
    "planner": lambda world, kind, name: planner_reasons(world)[name],
    "executor": executor_reason,
    "protection": direct_reason,
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize(("kind", "name", "expected"), CASES, ids=[f"{k}:{n}" for k, n, _ in CASES])
def test_every_caller_keeps_the_same_things_for_the_same_reason(
    world: LocalStore, caller: str, kind: str, name: str, expected: str | None
) -> None:
    assert CALLERS[caller](world, kind, name) == expected


def test_the_table_covers_every_rule() -> None:
    """Live pointer, live and mid-publish versions, unapplied delta, protect list, label, grace, may go."""
    reasons = " | ".join(r or "" for _, _, r in CASES)
    rules = ("live pointer", "live snapshot", "mid-publish", "not applied", "protect list", "label ", "grace")
    rules += ("reaper state", "idempotency state")
    for rule in rules:
        assert rule in reasons
    assert any(r is None for _, _, r in CASES)


def test_executor_builds_its_protection_config_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The policies file is read once per cold start, not once per task."""
    from storekeeper.policies import protect

    calls: list[str | None] = []
    real = protect.load_protection_config

    def counting(path: str | None = None) -> object:
        calls.append(path)
        return real(path)

    policies = tmp_path / "p.yaml"
    policies.write_text("policies: []\n")
    monkeypatch.setenv("REAPER_POLICIES", str(policies))
    monkeypatch.setattr(protect, "load_protection_config", counting)
    protect._cached.cache_clear()
    store = LocalStore(tmp_path / "main")
    store.put("a", b"x")
    for n in range(3):
        task = CleanupTask(
            task_id=f"t-{n}", action=CleanupAction.delete_objects, backend="file", bucket="main",
            keys=["a"], policy="p", reason="r", planned_at=datetime.now(UTC),
        )  # fmt: skip
        execute_task(task, resolve_store=lambda b, n: store, dry_run=True)
    assert calls == [str(policies)]
