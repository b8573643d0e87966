"""Merge pending deltas into a new snapshot version and publish it with one conditional write.

One attempt: read the pointer (and its etag) -> load the parent -> list pending
deltas -> apply those not in the parent's ledger, in delta_id order (deletes,
then upserts) -> upload archive, then manifest (create-only) -> conditional
pointer write -> remove applied deltas. A lost race restarts the attempt from
the pointer read (a rebase: the new parent's ledger and a fresh listing decide
what is still to do), so nothing is applied twice and nothing is overwritten.

Why the ledger (`Manifest.applied`) is enough for exactly-once: a delta is
removed only after a snapshot containing it was published, and the ledger keeps
every applied id that was still listed when its version was built. The pointer
is read before the listing, so a delta missing from both the ledger and the
listing was removed before our parent was built, and we never see it.

A notification whose sha256 does not match an intact delta is a bad *message*:
the delta (verified by its own checksum) is applied in order and only the
message's record fails. Deltas that can never be applied (corrupt, NaN, wrong
dimension) are moved to
`delta-rejected/<c>/<id>.delta` with a `<id>.reason.json` next to it: they no
longer block the others, and nothing is silently dropped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from storekeeper.deltas import DeltaContent, fetch_delta, list_pending, parse_delta_key
from storekeeper.errors import CorruptObject, NotFound, PreconditionFailed, ValidationError
from storekeeper.names import check_collection
from storekeeper.snapshots import (
    ARCHIVE_NAME,
    SnapshotCache,
    new_version,
    pack_archive,
    publish,
    resolve,
    write_snapshot,
)
from storekeeper.stores.base import ObjectStore

Hook = Callable[[str], None]
REJECTED_PREFIX = "delta-rejected"
STEPS = (
    "after_download",
    "mid_apply",
    "after_archive_upload",
    "after_manifest",
    "after_pointer_write",
    "mid_delta_removal",
)
DEFAULT_MAX_DELTAS = 500
DEFAULT_RESERVE_MS = 20_000  # left for packing, uploading and publishing once applying stops


@dataclass
class CompactionResult:
    collection: str
    status: Literal["published", "noop", "incomplete"] = "noop"
    version: str | None = None  # the version now published (ours, or the one we found)
    parent: str | None = None
    applied: list[str] = field(default_factory=list)  # delta ids this run applied and published
    already_applied: list[str] = field(default_factory=list)  # found in the ledger: removed, not re-applied
    rejected: dict[str, str] = field(default_factory=dict)  # delta id -> reason (quarantined)
    mismatched: dict[str, str] = field(default_factory=dict)  # applied, but its message's sha256 was wrong
    pending: list[str] = field(default_factory=list)  # left for a later run (time or max_deltas)
    removed: list[str] = field(default_factory=list)
    removal_errors: dict[str, str] = field(default_factory=dict)
    races_lost: int = 0
    record_count: int | None = None
    dimension: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def done(self, delta_id: str) -> bool:
        """The delta is in the published snapshot (now or earlier) or gone from the store."""
        return delta_id not in self.rejected and delta_id not in self.pending


def rejected_key(collection: str, delta_id: str) -> str:
    return f"{REJECTED_PREFIX}/{collection}/{delta_id}.delta"


def quarantine(store: ObjectStore, collection: str, delta_id: str, reason: str) -> None:
    """Move a delta that can never be applied out of `delta/`, keeping it and the reason."""
    src = f"delta/{collection}/{delta_id}.delta"
    try:
        body = store.get(src).body
    except NotFound:
        return
    store.put(rejected_key(collection, delta_id), body)
    store.put(
        f"{REJECTED_PREFIX}/{collection}/{delta_id}.reason.json",
        json.dumps({"delta_id": delta_id, "reason": reason, "at": datetime.now(UTC).isoformat()}).encode(),
        content_type="application/json",
    )
    store.delete(src)


def rejection_reason(store: ObjectStore, collection: str, delta_id: str) -> str | None:
    """Why a delta was quarantined, or None if it was not."""
    try:
        body = store.get(f"{REJECTED_PREFIX}/{collection}/{delta_id}.reason.json").body
    except NotFound:
        return None
    try:
        return str(json.loads(body)["reason"])
    except (ValueError, KeyError, TypeError):
        return "rejected (reason unreadable)"


def _chroma_ready(content: DeltaContent) -> DeltaContent:
    # Chroma refuses empty metadata dicts; None means the same thing
    content.metadatas = [m or None for m in content.metadatas]
    return content


def compact(
    store: ObjectStore,
    collection: str,
    *,
    remaining_ms: Callable[[], int] | None = None,
    max_deltas: int = DEFAULT_MAX_DELTAS,
    hooks: Hook | None = None,
    cache: SnapshotCache | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    max_attempts: int = 8,
    reserve_ms: int = DEFAULT_RESERVE_MS,
    distance: str = "l2",
) -> CompactionResult:
    """Apply every pending delta of `collection` once and publish; see the module doc for the protocol.

    Raises PointerTargetMissing / CorruptObject when the published snapshot is gone or
    damaged (nothing is published then), PreconditionFailed after `max_attempts` lost races.
    """
    check_collection(collection)
    cache = cache or SnapshotCache()
    result = CompactionResult(collection)
    retrying = Retrying(
        retry=retry_if_exception_type(PreconditionFailed),
        stop=stop_after_attempt(max_attempts),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                result.races_lost += 1
            _restarting_attempt(
                store,
                collection,
                result,
                remaining_ms,
                max_deltas,
                hooks,
                cache,
                expected_sha256 or {},
                reserve_ms,
                distance,
            )
    return result


class _RestartAttempt(Exception):
    """A delta was quarantined after chromadb refused it mid-apply: the work tree is discarded."""


def _restarting_attempt(*args: Any) -> None:
    # bounded: every restart quarantines one more delta, which the next attempt skips
    while True:
        try:
            _attempt(*args)
            return
        except _RestartAttempt:
            continue


def _attempt(
    store: ObjectStore,
    c: str,
    result: CompactionResult,
    remaining_ms: Callable[[], int] | None,
    max_deltas: int,
    hooks: Hook | None,
    cache: SnapshotCache,
    expected: Mapping[str, str],
    reserve_ms: int,
    distance: str,
) -> None:
    from storekeeper import chroma

    def hook(step: str) -> None:
        if hooks is not None:
            hooks(step)

    def time_left() -> bool:
        return remaining_ms is None or remaining_ms() > reserve_ms

    # state of this attempt only (a rebase starts over from here)
    result.applied, result.already_applied, result.pending = [], [], []
    result.mismatched = {}
    result.status = "noop"
    published = resolve(store, c)  # pointer first, then the listing (see module doc)
    parent = published.manifest if published else None
    result.parent = result.version = parent.version if parent else None
    result.record_count = parent.record_count if parent else 0
    result.dimension = parent.dimension if parent else None
    listed = [parse_delta_key(o.key)[1] for o in list_pending(store, c)]
    ledger = set(parent.applied) if parent else set()
    result.already_applied = [d for d in listed if d in ledger]
    todo = [d for d in listed if d not in ledger and d not in result.rejected]
    if not todo:
        _remove(store, c, result.already_applied, result, hook)
        return
    if not time_left():
        result.status, result.pending = "incomplete", todo
        return

    work = cache.tempdir("work")
    tree = work / "tree"
    try:
        if parent is not None:
            cache.take(store, parent, tree)  # no copy: the published result is adopted below
        hook("after_download")
        dimension = parent.dimension if parent else None
        dist = parent.distance if parent else distance
        applied: list[str] = []
        with chroma.persistent_client(tree) as client:
            col = chroma.get_or_create(client, c, dist)
            batch = chroma.max_batch(client)
            for i, delta_id in enumerate(todo):
                if len(applied) >= max_deltas or not time_left():
                    result.pending = todo[i:]
                    break
                key = f"delta/{c}/{delta_id}.delta"
                try:
                    content, digest = fetch_delta(store, key)
                    content = _chroma_ready(content)
                except NotFound:
                    continue  # applied+removed by another compactor (our publish then loses) or rejected
                except (CorruptObject, ValidationError) as exc:
                    _reject(store, c, delta_id, str(exc), result)
                    continue
                if content.dimension is not None and dimension is not None and content.dimension != dimension:
                    _reject(
                        store,
                        c,
                        delta_id,
                        f"embeddings: dimension {content.dimension} but collection "
                        f"{c} has dimension {dimension}",
                        result,
                    )
                    continue
                try:
                    chroma.apply(
                        col,
                        deletes=content.deletes,
                        ids=content.ids,
                        embeddings=content.embeddings,
                        metadatas=content.metadatas,
                        documents=content.documents,
                        updates=content.updates,
                        batch=batch,
                    )
                except chroma.RECORD_ERRORS as exc:
                    # chromadb refused a record the producer's rules let through: the tree may hold
                    # part of this delta, so quarantine it and start over from the pointer
                    why = f"chromadb refused a record: {type(exc).__name__}: {exc}"
                    _reject(store, c, delta_id, why, result)
                    raise _RestartAttempt(delta_id) from exc
                dimension = dimension or content.dimension
                applied.append(delta_id)
                notified = expected.get(delta_id)
                if notified is not None and notified != digest:
                    # the blob verified by its own checksum: the *message* is wrong, and a bad
                    # message must not cost an accepted delta (it is applied, in order)
                    result.mismatched[delta_id] = (
                        f"sha256: the message says {notified[:12]}..., the delta's blob is {digest[:12]}... "
                        "(the delta verified by its own checksum and was applied)"
                    )
                if len(applied) == 1:
                    hook("mid_apply")
            count = int(col.count())
        if not applied:
            _remove(store, c, result.already_applied, result, hook)
            if result.pending:
                result.status = "incomplete"
            return
        version = new_version(parent.version if parent else None)
        archive = work / ARCHIVE_NAME
        sha, size = pack_archive(tree, archive)
        still_listed = set(listed)
        new_ledger = sorted((ledger & still_listed) | set(applied))
        manifest = write_snapshot(
            store,
            collection=c,
            version=version,
            parent=parent.version if parent else None,
            archive=archive,
            dimension=dimension,
            distance=dist,
            record_count=count,
            deltas=applied,
            applied=new_ledger,
            hooks=hooks,
            sha256=sha,
            size=size,
        )
        publish(store, c, version, published.etag if published else None)  # PreconditionFailed -> rebase
        hook("after_pointer_write")
        result.status = "incomplete" if result.pending else "published"
        result.version, result.applied = version, applied
        result.record_count, result.dimension = count, dimension
        cache.adopt(manifest, tree)
        _remove(store, c, [*result.already_applied, *applied], result, hook)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _reject(store: ObjectStore, c: str, delta_id: str, reason: str, result: CompactionResult) -> None:
    quarantine(store, c, delta_id, reason)
    result.rejected[delta_id] = reason


def _remove(store: ObjectStore, c: str, ids: list[str], result: CompactionResult, hook: Hook) -> None:
    """Delete applied deltas (safe: their snapshot is published); errors are reported, not raised."""
    if not ids:
        return
    keys = [f"delta/{c}/{d}.delta" for d in ids]
    half = max(1, len(keys) // 2)
    for n, part in enumerate((keys[:half], keys[half:])):
        if n == 1:
            hook("mid_delta_removal")
        if not part:
            continue
        res = store.delete_many(part)
        result.removed.extend(parse_delta_key(k)[1] for k in res.deleted)
        result.removal_errors.update({parse_delta_key(k)[1]: e for k, e in res.errors.items()})


def stale_collections(store: ObjectStore, min_age_seconds: int, *, now: datetime | None = None) -> list[str]:
    """Collections with a pending delta older than `min_age_seconds` (the sweep's work list)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=min_age_seconds)
    found: set[str] = set()
    for info in store.list("delta/"):
        try:
            c, _ = parse_delta_key(info.key)
        except ValidationError:
            continue
        if c not in found and info.last_modified <= cutoff:
            found.add(c)
    return sorted(found)
