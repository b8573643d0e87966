"""execute_task: one task, re-checked at execution time, with a TaskOutcome whatever happens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from storekeeper.cleanup.base import ACTIONS, Context, StoreResolver, TaskOutcome, log
from storekeeper.errors import BucketNotFound, StorekeeperError
from storekeeper.models.cleanup import CleanupTask
from storekeeper.protection import ProtectionConfig
from storekeeper.stores import open_store
from storekeeper.stores.base import ObjectStore
from storekeeper.stores.vectors import VectorBackend


def store_resolver(base: ObjectStore | None = None) -> StoreResolver:
    """(backend, bucket) -> store. `file` buckets are siblings of the base (default: the embedded store).

    A local bucket that does not exist raises BucketNotFound instead of being created
    by opening it (LocalStore creates its directory).
    """

    def resolve(backend: str, bucket: str) -> ObjectStore:
        if backend == "file":
            from storekeeper.stores.local import LocalStore

            root = base if base is not None else open_store(None)
            if not isinstance(root, LocalStore):
                raise StorekeeperError(f"task names backend file but the base store is {root.url}")
            path = Path(root.root) / bucket
            if not path.is_dir():
                raise BucketNotFound(f"file://{path}", None, f"bucket {bucket} does not exist")
            return root.for_bucket(bucket)
        if base is not None and base.scheme == backend:
            return base.for_bucket(bucket)
        return open_store(f"{backend}://{bucket}")

    return resolve


def _request_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in sorted(after.items()) if n - before.get(k, 0)}


def execute_task(
    task: CleanupTask,
    *,
    resolve_store: StoreResolver | None = None,
    vector_backend: VectorBackend | None = None,
    now: datetime | None = None,
    dry_run: bool | None = None,
    protection: ProtectionConfig | None = None,
) -> TaskOutcome:
    """Run one task. A dry run (the argument, else task.dry_run) stops before every destructive call.

    Never raises for a task-level problem: failures come back as status `failed`
    with the bucket/key and cause in `errors` (the caller decides to retry).
    """
    now = now or datetime.now(UTC)
    dry = task.dry_run if dry_run is None else dry_run
    outcome = TaskOutcome(task_id=task.task_id, action=task.action.value, bucket=task.bucket, dry_run=dry)
    action_cls = ACTIONS.get(task.action)
    if action_cls is None:  # pragma: no cover - every CleanupAction is registered (tested)
        outcome.errors["action"] = f"no handler registered for action {task.action.value}"
        return outcome.finish()
    if protection is None:  # the policies file's, built once per cold start
        from storekeeper.policies.protect import default_protection_config

        protection = default_protection_config()
    resolve = resolve_store or store_resolver()
    counted: ObjectStore | None = None
    before: dict[str, int] = {}
    try:
        store = resolve(task.backend, task.bucket) if action_cls.needs_store else None
        if store is not None:
            counted = store
            before = dict(store.requests.counts)
        ctx = Context(
            task=task,
            config=protection,
            now=now,
            dry_run=dry,
            outcome=outcome,
            object_store=store,
            vectors=vector_backend,
        )
        action_cls().run(ctx)
    except BucketNotFound as exc:
        if action_cls.missing_bucket_is_noop:
            outcome.missing.append(f"bucket:{task.bucket}")
        else:
            outcome.errors[f"bucket:{task.bucket}"] = (
                f"bucket {task.bucket} ({task.backend}) does not exist: {exc}"
            )
    except StorekeeperError as exc:
        outcome.errors[task.action.value] = str(exc)
    if counted is not None:
        outcome.requests = _request_delta(before, dict(counted.requests.counts))
    outcome.finish()
    log.info(
        "cleanup %s %s on %s: %s (%s)",
        task.task_id,
        task.action.value,
        task.bucket,
        outcome.status,
        outcome.message,
    )
    return outcome
