"""A collection's snapshot history, and rollback.

Rollback never moves the pointer backwards: it publishes a *new* version (the live one's
sequence + 1) whose archive is a byte-for-byte copy of the chosen retained version's,
through the same create-only archive/manifest writes and the same conditional pointer
write as a compaction. It names the applied deltas whose effect it drops (the versions
between the chosen one and the live one), and refuses a version that is gone or whose
archive does not match its manifest's sha256.

The new manifest keeps the live version's exactly-once ledger (`applied`), so a dropped
delta that is still in the store is not applied again by the next compaction. When the
live manifest itself is gone or corrupt (the `PointerTargetMissing` runbook), the chosen
version's ledger is used: deltas still in the store that it had not applied are applied by
the next compaction, as they would have been.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from storekeeper.errors import PointerTargetMissing, PreconditionFailed, StorekeeperError
from storekeeper.layout import match_version_key, snapshot_prefix
from storekeeper.models.snapshots import Manifest
from storekeeper.names import check_collection
from storekeeper.snapshots import load_manifest, new_version, read_pointer, write_snapshot
from storekeeper.snapshots.archive import download_verified
from storekeeper.stores.base import ObjectStore


@dataclass(frozen=True)
class VersionRow:
    """One version kept in the store, as `storekeeper snapshots` lists it."""

    version: str
    live: bool
    bytes: int
    objects: int
    modified: datetime
    manifest: Manifest | None
    problem: str | None  # manifest missing (incomplete or being removed) or invalid

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "version": self.version,
            "live": self.live,
            "bytes": self.bytes,
            "objects": self.objects,
            "modified": self.modified.isoformat(),
            "record_count": m.record_count if m else None,
            "parent": m.parent if m else None,
            "created_at": m.created_at.isoformat() if m else None,
            "deltas": len(m.deltas) if m else None,
            "problem": self.problem,
        }


def versions(store: ObjectStore, collection: str) -> tuple[str | None, list[VersionRow]]:
    """(live version, every version kept, newest first). One listing, one manifest read per version."""
    c = check_collection(collection)
    live, _ = read_pointer(store, c)
    sizes: dict[str, list[int]] = {}
    modified: dict[str, datetime] = {}
    for info in store.list(snapshot_prefix(c)):
        parts = match_version_key(info.key)
        if not parts:
            continue
        v = parts[1]
        s = sizes.setdefault(v, [0, 0])
        s[0] += info.size
        s[1] += 1
        modified[v] = max(modified.get(v, info.last_modified), info.last_modified)
    rows = []
    for v in sorted(sizes, reverse=True):
        man: Manifest | None = None
        problem = None
        try:
            man = load_manifest(store, c, v)
        except PointerTargetMissing:
            problem = "no manifest (incomplete or being removed)"
        except StorekeeperError as exc:
            problem = str(exc)
        rows.append(VersionRow(v, v == live, sizes[v][0], sizes[v][1], modified[v], man, problem))
    return live, rows


@dataclass
class RollbackPlan:
    collection: str
    target: Manifest
    live_version: str | None
    live_etag: str | None
    live_manifest: Manifest | None
    live_problem: str | None = None
    #: applied deltas whose effect the rollback drops (in the versions after the target), oldest first
    dropped: list[str] = field(default_factory=list)
    #: versions between the target and the live one (their content is what is dropped)
    skipped_versions: list[str] = field(default_factory=list)
    #: False when a manifest on the way from the live version back to the target is gone
    chain_complete: bool = True
    #: the target's archive, downloaded and verified against its manifest
    archive: Path | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "collection": self.collection,
            "live_version": self.live_version,
            "target_version": self.target.version,
            "target_records": self.target.record_count,
            "live_records": self.live_manifest.record_count if self.live_manifest else None,
            "dropped_deltas": self.dropped,
            "skipped_versions": self.skipped_versions,
            "chain_complete": self.chain_complete,
            "live_problem": self.live_problem,
        }


def verify_archive(store: ObjectStore, manifest: Manifest, dest: Path) -> Path:
    """Download the version's archive into `dest/`, checked against its manifest's sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / manifest.archive
    download_verified(store, manifest, path)
    return path


def plan(store: ObjectStore, collection: str, version: str, workdir: Path) -> RollbackPlan:
    """What a rollback to `version` would do, its archive verified into `workdir`.

    Raises when the version is gone (PointerTargetMissing), corrupt (CorruptObject), live, or
    not an ancestor of the live version.
    """
    c = check_collection(collection)
    target = load_manifest(store, c, version)  # PointerTargetMissing: gone; CorruptObject: bad manifest
    live, etag = read_pointer(store, c)
    if live == version:
        raise StorekeeperError(f"version {version} of {c} is already the live one: nothing to roll back")
    p = RollbackPlan(collection=c, target=target, live_version=live, live_etag=etag, live_manifest=None)
    p.archive = verify_archive(store, target, workdir)
    if live is None:
        return p
    try:
        p.live_manifest = load_manifest(store, c, live)
    except StorekeeperError as exc:
        p.live_problem = str(exc)
        p.chain_complete = False
        return p
    # walk back from the live version to the target: every delta applied on the way is dropped
    cur: Manifest | None = p.live_manifest
    dropped: list[list[str]] = []
    while cur is not None and cur.version != version:
        if cur.version < version:
            raise StorekeeperError(
                f"version {version} of {c} is not an ancestor of the live version {live} "
                f"(an unpublished or abandoned version): refusing to roll back to it"
            )
        p.skipped_versions.append(cur.version)
        dropped.append(cur.deltas)
        if cur.parent is None:
            raise StorekeeperError(
                f"version {version} of {c} is not an ancestor of the live version {live}: refusing"
            )
        try:
            cur = load_manifest(store, c, cur.parent)
        except StorekeeperError:
            p.chain_complete = False  # a version in between was already removed: its deltas are unknown
            cur = None
    p.dropped = [d for ds in reversed(dropped) for d in ds]
    return p


def apply(store: ObjectStore, p: RollbackPlan) -> Manifest:
    """Publish the target's content as a new version; PreconditionFailed if the pointer moved since
    `plan`, after removing the version it wrote (`retention.publish_or_discard`; the message says
    whether it could)."""
    if p.archive is None or not p.archive.is_file():
        raise StorekeeperError("rollback plan has no verified archive: plan it again")
    ledger = p.live_manifest.applied if p.live_manifest else p.target.applied
    version = new_version(p.live_version)
    manifest = write_snapshot(
        store,
        collection=p.collection,
        version=version,
        parent=p.live_version,
        archive=p.archive,
        dimension=p.target.dimension,
        distance=p.target.distance,
        record_count=p.target.record_count,
        deltas=[],
        applied=sorted(ledger),
        sha256=p.target.sha256,
        size=p.target.size,
    )
    from storekeeper.retention import publish_or_discard

    lost = publish_or_discard(store, p.collection, version, p.live_etag, who="rollback")
    if lost is not None:
        err = lost.error
        raise PreconditionFailed(err.store, err.key, f"{err.cause}; {lost.note}") from err
    return manifest


def age_of(row: VersionRow, now: datetime | None = None) -> float:
    return (
        (now or datetime.now(UTC)) - (row.manifest.created_at if row.manifest else row.modified)
    ).total_seconds()
