"""Executor building blocks: the outcome model, the per-task context and the action registry.

Cloud Custodian style: one small class per action, registered by name, all
sharing the same re-check-then-delete helpers. A dry run walks the identical
path and stops right before the destructive call.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel

from storekeeper.errors import NotFound, StorekeeperError
from storekeeper.layout import purged_on_delete
from storekeeper.models.cleanup import CleanupAction, CleanupTask
from storekeeper.protection import Protection, ProtectionConfig
from storekeeper.stores.base import ObjectInfo, ObjectStore, key_before
from storekeeper.stores.vectors import VectorBackend

log = logging.getLogger("storekeeper.cleanup")

Status = Literal["executed", "skipped", "noop", "dry_run", "failed"]
#: how many keys an outcome keeps when it is stored (idempotency record) or printed
OUTCOME_LIST_LIMIT = 200
HEAD_WORKERS = 8

#: a key-set re-check scans at most SLACK x targets + BASE unrelated objects before HEADing the rest
LIST_SCAN_SLACK = 2
LIST_SCAN_BASE = 1000

StoreResolver = Callable[[str, str], ObjectStore]


class TaskFailed(StorekeeperError):
    """The task could not be carried out; the SQS record fails and is retried, then lands in the DLQ."""

    def __init__(self, outcome: TaskOutcome) -> None:
        self.outcome = outcome
        super().__init__(
            f"task {outcome.task_id} ({outcome.action}) on {outcome.bucket} failed: {outcome.message}"
        )


class TaskOutcome(BaseModel):
    """What one task did (or, in a dry run, would do), and why anything was left alone."""

    task_id: str
    action: str
    bucket: str
    status: Status = "noop"
    dry_run: bool = False
    duplicate: bool = False  # answered from the idempotency record: this delivery did nothing
    deleted: list[str] = []
    deleted_count: int = 0
    would_delete: list[str] = []
    would_delete_count: int = 0
    created: list[str] = []
    would_create: list[str] = []
    missing: list[str] = []  # already gone: nothing to do (idempotent)
    skipped: dict[str, str] = {}  # target -> reason kept
    errors: dict[str, str] = {}  # target -> cause
    requests: dict[str, int] = {}  # backend requests by operation
    versions_removed: int = 0  # versions deleted for good by VersionId (versioned buckets)
    bytes_freed: int = 0  # bytes the deletes removed, as the store confirmed them (DeleteResult)
    message: str = ""

    def finish(self) -> TaskOutcome:
        self.deleted_count = max(self.deleted_count, len(self.deleted))
        self.would_delete_count = max(self.would_delete_count, len(self.would_delete))
        if self.errors:
            self.status = "failed"
        elif self.dry_run:
            self.status = "dry_run"
        elif self.deleted or self.created:
            self.status = "executed"
        elif self.skipped:
            self.status = "skipped"
        else:
            self.status = "noop"
        if not self.message:
            self.message = self.summary()
        return self

    def summary(self) -> str:
        parts = []
        if self.deleted_count:
            parts.append(f"deleted {self.deleted_count}")
        if self.would_delete_count:
            parts.append(f"would delete {self.would_delete_count}")
        if self.created:
            parts.append(f"created {', '.join(self.created)}")
        if self.would_create:
            parts.append(f"would create {', '.join(self.would_create)}")
        if self.missing:
            parts.append(f"{len(self.missing)} already gone")
        if self.skipped:
            first = next(iter(self.skipped.values()))
            parts.append(f"kept {len(self.skipped)} ({first})")
        if self.errors:
            k, v = next(iter(self.errors.items()))
            parts.append(f"{len(self.errors)} error(s): {k}: {v}")
        return "; ".join(parts) or "nothing to do"

    def compact(self, limit: int = OUTCOME_LIST_LIMIT) -> TaskOutcome:
        """A bounded copy (idempotency records and logs must stay small for 100k-key tasks)."""
        return self.model_copy(
            update={
                "deleted": self.deleted[:limit],
                "would_delete": self.would_delete[:limit],
                "missing": self.missing[:limit],
                "skipped": dict(list(self.skipped.items())[:limit]),
                "errors": dict(list(self.errors.items())[:limit]),
            }
        )


@dataclass
class Context:
    task: CleanupTask
    config: ProtectionConfig
    now: datetime
    dry_run: bool
    outcome: TaskOutcome
    object_store: ObjectStore | None = None  # the task's bucket (None for vector actions)
    vectors: VectorBackend | None = None
    head_workers: int = HEAD_WORKERS
    _protection: Protection | None = None

    @property
    def store(self) -> ObjectStore:
        if self.object_store is None:
            raise StorekeeperError(f"task {self.task.task_id}: {self.task.action.value} has no object store")
        return self.object_store

    @property
    def protection(self) -> Protection:
        if self._protection is None:
            self._protection = Protection(self.store, self.config, self.now)
        return self._protection

    @property
    def vector_protection(self) -> Protection:
        """Protection of vector buckets and indexes: names only, no object store."""
        return Protection(None, self.config, self.now)

    def skip(self, target: str, reason: str) -> None:
        log.info("cleanup %s: keeping %s: %s", self.task.task_id, target, reason)
        self.outcome.skipped[target] = reason

    # -- shared re-checks -------------------------------------------------------------------
    def guard_reason(self, info: ObjectInfo) -> str | None:
        """The planner's guard, re-checked against what the object looks like now."""
        g = self.task.guard
        planned = g.etags.get(info.key)
        if planned is not None and planned.strip('"') != info.etag.strip('"'):
            return f"{info.key} changed after planning (etag {info.etag} != planned {planned})"
        if g.last_modified_before is not None and info.last_modified >= g.last_modified_before:
            return (
                f"{info.key} was modified at {info.last_modified.isoformat()}, "
                f"not before the planned cutoff {g.last_modified_before.isoformat()}"
            )
        return None

    def heads(self, keys: Iterable[str]) -> dict[str, ObjectInfo | None]:
        """HEAD each key (a few in parallel); None where the object is gone."""

        def one(key: str) -> tuple[str, ObjectInfo | None]:
            try:
                return key, self.store.head(key)
            except NotFound:
                return key, None

        keys = list(keys)
        if len(keys) <= 1 or self.head_workers <= 1:
            return dict(one(k) for k in keys)
        with ThreadPoolExecutor(max_workers=self.head_workers) as pool:
            return dict(pool.map(one, keys))

    def listed(self, keys: Iterable[str]) -> dict[str, ObjectInfo | None]:
        """Find `keys` by listing (None where gone): list pages, not one HEAD per key.

        One key-ordered scan from just before the smallest key to the largest; keys
        the scan passes without seeing are gone. A sparse key set that would make the
        scan read more than LIST_SCAN_SLACK x len(keys) + LIST_SCAN_BASE other objects stops
        scanning and HEADs the rest, so the cost stays bounded either way.
        """
        want = sorted(set(keys))
        found: dict[str, ObjectInfo | None] = {}
        if not want:
            return found
        first, last = want[0], want[-1]  # sorted: their common prefix is everyone's
        n = next(
            (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
            min(len(first), len(last)),
        )
        folder = first[:n].rpartition("/")[0]
        prefix = folder + "/" if folder else ""
        budget = LIST_SCAN_SLACK * len(want) + LIST_SCAN_BASE
        i = extra = 0
        for info in self.store.list(prefix, start_after=key_before(want[0])):
            while i < len(want) and want[i] < info.key:
                found[want[i]] = None  # the scan passed it: gone
                i += 1
            if i == len(want):
                break
            if info.key == want[i]:
                found[info.key] = info
                i += 1
                if i == len(want):
                    break  # the last wanted key: do not fetch another page
            else:
                extra += 1
                if extra > budget:
                    found.update(self.heads(want[i:]))
                    return found
        for key in want[i:]:
            found[key] = None  # the listing ended before them: gone
        return found

    def key_reason(self, info: ObjectInfo, headed: bool) -> str | None:
        """Protection of one object as listed (or HEADed: then its metadata labels count too)."""
        labels = info.metadata if headed else None
        return self.protection.reason("key", info.key, created=info.last_modified, labels=labels)

    def check_objects(self, infos: Iterable[ObjectInfo], *, headed: bool) -> list[ObjectInfo]:
        """Keep what may be deleted; record the rest with reasons.

        Protection by name/structure and the guard are checked on what the listing says;
        only the survivors get a HEAD, and only when object labels are checked (metadata is
        not in listings); the guard is then re-checked on the fresher HEAD.
        """
        allowed = []
        for info in infos:
            reason = self.key_reason(info, headed) or self.guard_reason(info)
            if reason:
                self.skip(info.key, reason)
            else:
                allowed.append(info)
        if headed or not self.protection.needs_head() or not allowed:
            return allowed
        fresh = self.heads(i.key for i in allowed)
        out = []
        for info in allowed:
            h = fresh[info.key]
            if h is None:
                self.outcome.missing.append(info.key)
                continue
            reason = self.key_reason(h, True) or self.guard_reason(h)
            if reason:
                self.skip(h.key, reason)
            else:
                out.append(h)
        return out

    def delete_keys(self, infos: list[ObjectInfo], *, purge_all: bool = False) -> bool:
        """Batched delete of checked objects (or, in a dry run, a record of it); True when every key went.

        On a versioned bucket, keys the layout is finished with (`purged_on_delete`, or every key
        when `purge_all`) go with all their versions, each only if its current etag is still the
        one checked; everything else gets a plain delete and keeps versioning's protection.
        """
        if not infos:
            return True
        if self.dry_run:
            self.outcome.would_delete.extend(i.key for i in infos)
            return True
        purge = {i.key: i.etag for i in infos if purge_all or purged_on_delete(i.key)}
        plain = [i.key for i in infos if i.key not in purge]
        sizes = {i.key: i.size for i in infos}  # as listed (or HEADed) by this execution's checks
        ok = True
        for res in (
            self.store.purge_many(purge, etags=purge, sizes=sizes),
            self.store.delete_many(plain, sizes=sizes),
        ):
            self.outcome.deleted.extend(res.deleted)
            self.outcome.versions_removed += res.versions_removed
            self.outcome.bytes_freed += res.bytes_freed
            for k, why in res.kept.items():
                self.skip(k, why)
            for k, cause in res.errors.items():
                self.outcome.errors[k] = cause
            ok = ok and not res.errors and not res.kept
        return ok


class Action(ABC):
    """One cleanup action; `run` re-checks everything it relies on at execution time."""

    name: ClassVar[CleanupAction]
    #: a missing bucket means "already done" for the actions that delete buckets
    missing_bucket_is_noop: ClassVar[bool] = False
    #: vector actions work on the vector backend, not on an object store
    needs_store: ClassVar[bool] = True

    @abstractmethod
    def run(self, ctx: Context) -> None: ...


ACTIONS: dict[CleanupAction, type[Action]] = {}


def register(cls: type[Action]) -> type[Action]:
    if cls.name in ACTIONS:
        raise ValueError(f"cleanup action {cls.name.value} registered twice")
    ACTIONS[cls.name] = cls
    return cls
