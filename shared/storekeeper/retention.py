"""The compactor's own retention: superseded snapshot versions beyond the newest N go after publishing.

Not a reaper policy: it keeps storage bounded in a default deployment, where the
reaper only dry-runs. It chooses nothing by itself beyond "older than the live version and not
among the newest N": whether a version may go is decided by the one protection function
(`Protection.reason`: never the live or a newer, maybe mid-publish, version; never inside the
grace floor; never one carrying a protect label or on the protect list), and the removal is the
cleanup executor's `delete_snapshot_version`, which asks it again right before deleting and
removes the manifest last. The same code runs when a reaper task removes a version, and when a
compaction or a rollback loses its pointer race (`publish_or_discard`): the loser removes the
version it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from storekeeper.errors import PreconditionFailed
from storekeeper.layout import match_version_key, snapshot_prefix
from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
from storekeeper.protection import ProtectionConfig
from storekeeper.snapshots import publish, read_pointer
from storekeeper.stores.base import ObjectStore

if TYPE_CHECKING:
    from storekeeper.cleanup.base import TaskOutcome

POLICY = "compactor-retention"


@dataclass
class Retired:
    """What one retention pass removed, kept, or failed to remove (version -> reason)."""

    removed: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    bytes_freed: int = 0  # what the removed versions' deletes freed (TaskOutcome.bytes_freed)


def superseded(
    store: ObjectStore, collection: str, keep: int
) -> tuple[str | None, list[tuple[str, datetime]]]:
    """(live version, [(version, newest object time)] older than live beyond the newest `keep`)."""
    live, _ = read_pointer(store, collection)
    if live is None:
        return None, []
    newest: dict[str, datetime] = {}
    for info in store.list(snapshot_prefix(collection)):
        hit = match_version_key(info.key)
        if hit is None:
            continue
        v = hit[1]
        if v < live and (v not in newest or info.last_modified > newest[v]):
            newest[v] = info.last_modified
    older = sorted(newest.items(), reverse=True)  # versions sort in publish order
    return live, older[keep:]


def retire(
    store: ObjectStore,
    collection: str,
    *,
    keep: int,
    protection: ProtectionConfig | None = None,
    now: datetime | None = None,
) -> Retired:
    """Remove superseded versions of `collection` beyond the newest `keep`, each only if the
    protection function lets it go when it is deleted."""
    now = now or datetime.now(UTC)
    if protection is None:
        from storekeeper.policies.protect import default_protection_config

        protection = default_protection_config()
    out = Retired()
    live, candidates = superseded(store, collection, keep)
    for version, _created in candidates:
        outcome = remove_version(
            store,
            collection,
            version,
            task_id=f"retire-{collection}-{version}",
            live=live,
            policy=POLICY,
            reason=f"superseded: older than live {live} and beyond the newest {keep}",
            protection=protection,
            now=now,
        )
        out.bytes_freed += outcome.bytes_freed  # a version kept half-deleted freed its deleted part
        if outcome.errors:
            out.errors[version] = outcome.message
        elif outcome.skipped:
            out.kept[version] = next(iter(outcome.skipped.values()))
        else:
            out.removed.append(version)
    return out


def remove_version(
    store: ObjectStore,
    collection: str,
    version: str,
    *,
    task_id: str,
    live: str | None,
    policy: str,
    reason: str,
    protection: ProtectionConfig,
    now: datetime,
) -> TaskOutcome:
    """One version through the cleanup executor's `delete_snapshot_version`: the protection
    function is asked again right before deleting (`live`: what the caller saw), manifest last."""
    from storekeeper.cleanup.executor import execute_task

    task = CleanupTask(
        task_id=task_id,
        action=CleanupAction.delete_snapshot_version,
        backend=store.scheme,
        bucket=store.bucket,
        collection=collection,
        version=version,
        policy=policy,
        reason=reason,
        planned_at=now,
        guard=TaskGuard(live_version=live),
    )
    return execute_task(
        task, resolve_store=lambda _b, _n: store, now=now, dry_run=False, protection=protection
    )


@dataclass(frozen=True)
class LostRace:
    """A conditional pointer write that lost: its error, the version live instead, and what became
    of the unpublished version the loser wrote (`note` says it, for messages and logs)."""

    error: PreconditionFailed
    version: str
    live: str | None
    removed: bool
    note: str


def publish_or_discard(
    store: ObjectStore,
    collection: str,
    version: str,
    expected_etag: str | None,
    *,
    who: str,
    may_remove: Callable[[], bool] | None = None,
) -> LostRace | None:
    """Publish `version` with the conditional pointer write; None when it is live, else the lost race,
    after removing the version (a loser's version can never be published: its parent's etag is gone).

    A 412 is re-checked against the pointer: a retried write whose first try landed answers 412
    and is a win. The removal is the cleanup executor's (`remove_version`: protection asked again
    right before the deletes, so the live version or a later, mid-publish one is never touched) with
    no grace floor, since the version was never readable. It is bounded (one version's few objects)
    and skipped when `may_remove` says no (e.g. no time left); whatever keeps it, the race is still
    reported as lost and the reaper's orphan rule (`unpublished`) removes the version later.
    """
    try:
        publish(store, collection, version, expected_etag)
        return None
    except PreconditionFailed as exc:
        lost = exc

    def kept(live: str | None, why: str) -> LostRace:
        return LostRace(lost, version, live, False, f"the unpublished version {version} it wrote was {why}")

    try:
        live, _ = read_pointer(store, collection)
    except Exception as exc:  # unknown whether we won: keep the version, report the race as lost
        return kept(None, f"kept: the pointer could not be read again ({type(exc).__name__}: {exc})")
    if live == version:  # our write landed and a retry of it answered 412: we won
        return None
    if may_remove is not None and not may_remove():
        return kept(live, "kept: no time left to remove it")
    from storekeeper.policies.protect import default_protection_config

    now = datetime.now(UTC)
    try:
        outcome = remove_version(
            store,
            collection,
            version,
            task_id=f"{who}-lost-{collection}-{version}",
            live=live,
            policy=f"{who}-lost-race",
            reason=f"{who} lost its pointer race to {live}: never published",
            protection=replace(default_protection_config(), grace=None),
            now=now,
        )
    except Exception as exc:  # never in place of the lost race
        return kept(live, f"kept, its removal failed: {type(exc).__name__}: {exc}")
    if outcome.errors or outcome.skipped:
        return kept(live, f"kept: {outcome.message}")
    return LostRace(lost, version, live, True, f"the unpublished version {version} it wrote was removed")
