"""Quota-safe test buckets: create, label, release and reap them the way the reaper would.

Supabase allows 10 vector buckets per project; test suites that leave buckets behind fill it.
A `TestBuckets` session names every bucket `<prefix><run>-<random>` (so the reaper's `test-<id>-`
convention gives it a `test-id` label), records `{run, expires, test}` for it in a labels registry
(a JSON object in a store, updated by compare-and-swap), and deletes it at teardown (indexes first,
through the cleanup executor). When the project is full it first reaps *expired* test buckets of
other runs: one policy planned by the reaper's own `Planner` (name prefix, the `ttl` filter on the
`expires` label, never this run's label) under the reaper's protection rules (protected names and
labels always win), a dry-run report printed, then the same tasks executed, each re-checked by the
cleanup executor. A live run's buckets are never expired: their expiry lies after the run's end.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from storekeeper.errors import (
    BucketAlreadyExists,
    BucketNotFound,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
    StoreError,
)
from storekeeper.stores.base import ObjectStore
from storekeeper.stores.vectors import VectorBackend

REGISTRY_KEY = "labels/vector-buckets.json"
SHARED_SUFFIX = "shared"  # the shared bucket `<prefix>shared`: protected by the default `*-shared` name rule


@dataclass
class QuotaSettings:
    prefix: str = "test-"
    ttl: timedelta = timedelta(hours=2)
    #: how long a fixture waits for room (other workers release theirs) before it skips
    wait: timedelta = timedelta(seconds=120)
    protect_names: tuple[str, ...] = ("*-shared", "shared-*")
    protect_labels: dict[str, str | None] = field(
        default_factory=lambda: {"storekeeper:protect": "true", "keep": None, "shared": "true"}
    )


@dataclass
class ReapReport:
    planned: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # name -> why not (protected, live, not expired)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = True

    def text(self) -> str:
        mode = "dry run" if self.dry_run else "applied"
        lines = [
            f"storekeeper test-bucket sweep ({mode}): {len(self.planned)} expired test bucket(s) to delete"
        ]
        lines += [f"  {'deleted' if n in self.deleted else 'delete'} {n}" for n in self.planned]
        lines += [f"  keep   {n}: {why}" for n, why in sorted(self.kept.items())]
        lines += [f"  error  {e}" for e in self.errors]
        return "\n".join(lines)


class Registry:
    """The labels registry object: `{bucket: {label: value}}`, changed only by compare-and-swap."""

    def __init__(self, store: ObjectStore, key: str = REGISTRY_KEY) -> None:
        self.store, self.key = store, key

    def read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.store.get(self.key).body)
        except NotFound:
            return {}
        return {
            str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items() if isinstance(v, dict)
        }

    def update(self, change: Callable[[dict[str, dict[str, str]]], object]) -> None:
        for _ in range(200):
            try:
                got = self.store.get(self.key)
                data, etag = json.loads(got.body), got.etag
            except NotFound:
                data, etag = {}, None
            change(data)
            body = json.dumps(data, sort_keys=True).encode()
            try:
                if etag is None:
                    self.store.put(self.key, body, if_none_match=True, content_type="application/json")
                else:
                    self.store.put(self.key, body, if_match=etag, content_type="application/json")
                return
            except PreconditionFailed:
                time.sleep(0.01 + 0.05 * (uuid.uuid4().int % 100) / 100)
        raise PreconditionFailed(self.store.url, self.key, "labels registry: too many concurrent updates")


class TestBuckets:
    """One run's vector and storage test buckets."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(
        self,
        vectors: VectorBackend,
        registry_store: ObjectStore,
        *,
        run_id: str,
        settings: QuotaSettings | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.vectors = vectors
        self.registry = Registry(registry_store)
        self.registry_store = registry_store
        self.run_id = run_id
        self.settings = settings or QuotaSettings()
        self.log = log
        self.expires = datetime.now(UTC) + self.settings.ttl

    # -- names and labels -----------------------------------------------------------------------
    def new_name(self) -> str:
        return f"{self.settings.prefix}{self.run_id}-{uuid.uuid4().hex[:8]}"

    @property
    def shared_name(self) -> str:
        return f"{self.settings.prefix}{SHARED_SUFFIX}"

    def _labels(self, test: str) -> dict[str, str]:
        return {"run": self.run_id, "expires": self.expires.isoformat(), "test": test[:200]}

    # -- vector buckets ---------------------------------------------------------------------------
    def create_vector_bucket(self, test: str = "") -> str:
        """A new labelled vector bucket; reaps expired ones of other runs when the project is full."""
        name = self.new_name()
        self.registry.update(lambda d: d.__setitem__(name, self._labels(test)))  # labelled before it exists
        deadline = time.monotonic() + self.settings.wait.total_seconds()
        delay = 0.2
        while True:
            try:
                self.vectors.create_bucket(name)
                return name
            except QuotaExceeded as full:
                report = self.reap(apply=True)
                if report.deleted:
                    continue
                if time.monotonic() >= deadline:
                    self.registry.update(lambda d: d.pop(name, None))
                    raise QuotaFull(self._blocked(full, report)) from full
                time.sleep(delay)  # others of this run release theirs at teardown
                delay = min(delay * 2, 2.0)

    def _blocked(self, full: QuotaExceeded, report: ReapReport) -> str:
        labels = self.registry.read()
        why = dict(report.kept)
        for b in self.vectors.list_buckets():
            if b.name not in why:
                lab = labels.get(b.name, {})
                if lab.get("run") == self.run_id:
                    why[b.name] = "held by this run"
                elif "expires" in lab:
                    why[b.name] = f"test bucket of run {lab.get('run')}, expires {lab['expires']}"
                else:
                    why[b.name] = "not a test bucket"
        held = ", ".join(f"{n} ({w})" for n, w in sorted(why.items())) or "none listed"
        return (
            f"vector-bucket quota reached ({full.cause}) and nothing may be reaped: {held}. "
            "Expired test buckets of other runs are reaped automatically; protected and live ones never."
        )

    def shared_vector_bucket(self) -> str:
        """Found or created once per run; protected by name, never reaped."""
        name = self.shared_name
        try:
            self.vectors.create_bucket(name)
        except BucketAlreadyExists:
            pass  # another worker or an earlier run made it: reuse
        except QuotaExceeded:
            if not any(b.name == name for b in self.vectors.list_buckets()):
                self.reap(apply=True)
                with contextlib.suppress(BucketAlreadyExists):
                    self.vectors.create_bucket(name)
        return name

    def release_vector_bucket(self, name: str) -> None:
        """Delete the bucket (indexes first, through the cleanup executor) and its registry entry."""
        from storekeeper.cleanup import execute_task

        out = execute_task(self._task("delete_vector_bucket", name), vector_backend=self.vectors)
        if out.status == "failed":
            raise RuntimeError(f"could not delete test vector bucket {name}: {out.message}")
        self.registry.update(lambda d: d.pop(name, None))

    # -- storage buckets --------------------------------------------------------------------------
    def create_storage_bucket(self, test: str = "") -> str:
        name = self.new_name()
        self.registry_store.create_bucket(name)
        self.registry_store.set_bucket_labels(name, self._labels(test))
        return name

    def release_storage_bucket(self, name: str) -> None:
        from storekeeper.cleanup import execute_task

        other = self.registry_store.for_bucket(name)
        out = execute_task(
            self._task("delete_bucket", name), resolve_store=lambda backend, bucket: other.for_bucket(bucket)
        )
        if out.status == "failed":
            raise RuntimeError(f"could not delete test storage bucket {name}: {out.message}")

    # -- the sweep ---------------------------------------------------------------------------------
    def _policies(self) -> Any:
        from storekeeper.policies.model import PolicyFile

        s = self.settings
        return PolicyFile.model_validate(
            {
                "stores": {
                    "registry": {"url": self.registry_store.url},
                    "vectors": {
                        "kind": "vectors",
                        "labels_registry": {"store": "registry", "key": self.registry.key},
                    },
                },
                "defaults": {"grace": "0s"},
                "protect": {"labels": s.protect_labels, "names": list(s.protect_names)},
                "policies": [
                    {
                        "name": "expired-test-vector-buckets",
                        "resource": "vector_bucket",
                        "store": "vectors",
                        "filters": [
                            {"type": "name-prefix", "value": s.prefix},
                            {"type": "ttl"},  # the `expires` label has passed
                            {"type": "label", "key": "run", "value": self.run_id, "absent": True},
                        ],
                    }
                ],
            }
        )

    def reap(self, *, apply: bool) -> ReapReport:
        """Plan with the reaper's Planner, print the dry-run report, then (apply) execute the tasks."""
        return reap_expired(self.vectors, self.registry_store, self._policies(), apply=apply, log=self.log)

    def _task(self, action: str, bucket: str) -> Any:
        from storekeeper.models.cleanup import CleanupTask

        return CleanupTask.model_validate(
            {
                "task_id": f"t-test-{uuid.uuid4().hex}",
                "action": action,
                "backend": "supabase",
                "bucket": bucket,
                "policy": "pytest-teardown",
                "reason": f"test bucket of run {self.run_id} released at teardown",
                "planned_at": datetime.now(UTC),
            }
        )


class QuotaFull(Exception):
    """The project is full and nothing may be reaped: the fixture skips with this message."""


def reap_expired(
    vectors: VectorBackend,
    registry_store: ObjectStore,
    policies: Any,
    *,
    apply: bool,
    log: Callable[[str], None],
) -> ReapReport:
    from storekeeper.cleanup import execute_task
    from storekeeper.policies.planner import Planner

    now = datetime.now(UTC)
    planner = Planner(policies, {"registry": registry_store}, now=now, vector_backends={"vectors": vectors})
    plan = planner.plan()
    report = ReapReport(dry_run=True)  # the plan is printed as a dry run first
    report.errors += plan.errors
    for d in plan.decisions:
        if d.verdict == "planned":
            report.planned.append(d.name)
        else:
            report.kept[d.name] = f"{d.verdict}: {d.reason}"
    log(report.text())
    if not apply:
        return report
    report.dry_run = False
    for t in plan.tasks:
        out = execute_task(t, vector_backend=vectors, now=now, dry_run=False, protection=planner.pconfig)
        if out.status == "executed":
            report.deleted.append(t.bucket)
            with contextlib.suppress(StoreError):
                Registry(registry_store).update(partial(_forget, name=t.bucket))
        elif out.status == "failed":
            report.errors.append(f"{t.bucket}: {out.message}")
    log(report.text())
    return report


def sweep_once(
    registry_url: str,
    prefix: str,
    *,
    apply: bool,
    confirm: Callable[[str], bool],
    log: Callable[[str], None],
) -> ReapReport:
    """`storekeeper reap --tests`: the fixtures' sweep as one command; a dry run unless `apply`."""
    from storekeeper.stores import open_store
    from storekeeper.stores.vectors import open_vector_backend

    buckets = TestBuckets(
        open_vector_backend(),
        open_store(registry_url),
        run_id="cli" + uuid.uuid4().hex[:8],
        settings=QuotaSettings(prefix=prefix),
        log=log,
    )
    report = buckets.reap(apply=False)
    if not apply or not report.planned:
        return report
    if not confirm(f"delete {len(report.planned)} expired test vector bucket(s)?"):
        log("not confirmed: this was a dry run, nothing was deleted")
        return report
    return buckets.reap(apply=True)


def _forget(data: dict[str, dict[str, str]], name: str) -> None:
    data.pop(name, None)


def run_id_from_env() -> str:
    """One id for the whole run: pytest-xdist's testrunuid on workers, else a fresh one."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    return "r" + uid[:10]


def ensure_registry(store: ObjectStore) -> None:
    with contextlib.suppress(BucketAlreadyExists):
        store.create_bucket(store.bucket)


__all__ = [
    "BucketNotFound",
    "QuotaFull",
    "QuotaSettings",
    "ReapReport",
    "Registry",
    "TestBuckets",
    "ensure_registry",
    "reap_expired",
    "run_id_from_env",
]
