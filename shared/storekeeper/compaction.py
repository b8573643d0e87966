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

Each applied delta's blob sha256 is kept in the result and in the manifest
(`delta_sha256`): the handler judges each notification against it, so a message
with a wrong sha256 fails alone while its delta (verified by its own checksum) is
applied in order. Deltas that can never be applied (corrupt, NaN, wrong
dimension) are moved to
`delta-rejected/<c>/<id>.delta` with a `<id>.reason.json` next to it: they no
longer block the others, and nothing is silently dropped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

from storekeeper.collection_config import create_config, read_config
from storekeeper.compaction_budget import (
    RATES,
    Budget,
    CompactionTooLarge,
    Rates,
    disk_free,
    disk_needed,
    estimated_size,
)
from storekeeper.delta_fold import Fold
from storekeeper.deltas import DeltaContent, as_array, fetch_delta, list_pending
from storekeeper.errors import CorruptObject, NotFound, PreconditionFailed, ValidationError
from storekeeper.layout import (
    DELTA_PREFIX,
    delta_key,
    match_delta_key,
    parse_delta_key,
    rejected_key,
    rejected_reason_key,
)
from storekeeper.models.snapshots import Manifest
from storekeeper.names import check_collection
from storekeeper.snapshots import (
    ARCHIVE_NAME,
    Published,
    SnapshotCache,
    new_version,
    pack_archive,
    resolve,
    write_snapshot,
)
from storekeeper.stores.base import ObjectStore

Hook = Callable[[str], None]
STEPS = (
    "after_download",
    "mid_apply",
    "after_archive_upload",
    "after_manifest",
    "after_pointer_write",
)
DEFAULT_MAX_DELTAS = 500
DEFAULT_RESERVE_MS = 20_000  # left for packing, uploading and publishing once applying stops
DEFAULT_FOLD_DELTAS = 1_000_000  # no count limit: a fold is written when it reaches chromadb's max batch


@dataclass
class CompactionResult:
    collection: str
    status: Literal["published", "noop", "incomplete", "coalesced"] = "noop"
    version: str | None = None  # the version now published (ours, or the one we found)
    parent: str | None = None
    applied: list[str] = field(default_factory=list)  # delta ids this run applied and published
    already_applied: list[str] = field(default_factory=list)  # found in the ledger: removed, not re-applied
    rejected: dict[str, str] = field(default_factory=dict)  # delta id -> reason (quarantined)
    digests: dict[str, str] = field(default_factory=dict)  # applied delta id -> its blob's sha256
    pending: list[str] = field(default_factory=list)  # left for a later run (time, max_deltas, coalescing)
    removed: list[str] = field(default_factory=list)
    removal_errors: dict[str, str] = field(default_factory=dict)
    races_lost: int = 0  # conditional pointer writes this run lost (each then rebased, or gave up)
    #: versions this run wrote and lost a pointer race with: removed again (retention.publish_or_discard)
    lost_removed: list[str] = field(default_factory=list)
    lost_kept: dict[str, str] = field(default_factory=dict)  # ... or left behind, and why
    record_count: int | None = None
    dimension: int | None = None
    size: int | None = None  # bytes of the archive this run published
    retired: list[str] = field(default_factory=list)  # superseded versions removed after publishing
    retention_errors: dict[str, str] = field(default_factory=dict)
    #: what the removal of applied deltas and retired versions freed (DeleteResult.bytes_freed)
    bytes_freed: int = 0
    #: wall time of the whole compaction (every attempt), and its split into the PHASES
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: the steps a compaction's time is split into (CompactionSeconds' phases, docs/operations.md)
PHASES = ("fetch", "apply", "publish", "remove")


def quarantine(store: ObjectStore, collection: str, delta_id: str, reason: str) -> None:
    """Move a delta that can never be applied out of `delta/`, keeping it and the reason."""
    src = delta_key(collection, delta_id)
    try:
        body = store.get(src).body
    except NotFound:
        return
    store.put(rejected_key(collection, delta_id), body)
    store.put(
        rejected_reason_key(collection, delta_id),
        json.dumps({"delta_id": delta_id, "reason": reason, "at": datetime.now(UTC).isoformat()}).encode(),
        content_type="application/json",
    )
    store.delete(src)


def rejection_reason(store: ObjectStore, collection: str, delta_id: str) -> str | None:
    """Why a delta was quarantined, or None if it was not."""
    try:
        body = store.get(rejected_reason_key(collection, delta_id)).body
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


@dataclass(frozen=True)
class CompactionSettings:
    """What one compaction may do: the handler builds it from the environment, tests override fields."""

    max_deltas: int = DEFAULT_MAX_DELTAS  # hard cap per run; the time budget usually stops it first
    max_attempts: int = 8  # lost pointer races before giving up
    reserve_ms: int = DEFAULT_RESERVE_MS  # fixed part of the reserve; the rest grows with the snapshot
    distance: str = "l2"  # for a collection's first version
    #: coalescing: a notification-driven run publishes at most once per this many seconds per
    #: collection (0 = every batch); the sweep ignores it and collects what was left
    min_interval_s: float = 0.0
    #: retention: superseded versions kept besides the live one (0 = the compactor removes none)
    keep_versions: int = 0
    #: the grace floor for retention; None = the policies file's `defaults.grace` (1 h by default)
    retention_grace_s: float | None = None


def compact(
    store: ObjectStore,
    collection: str,
    *,
    settings: CompactionSettings | None = None,
    remaining_ms: Callable[[], int] | None = None,
    hooks: Hook | None = None,
    cache: SnapshotCache | None = None,
    coalesce: bool = False,
    rates: Rates | None = None,
    free_bytes: Callable[[Path], int] = disk_free,
    total_ms: int | None = None,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> CompactionResult:
    """Apply every pending delta of `collection` once and publish; see the module doc for the protocol.

    `overrides` replace fields of `settings` (e.g. `max_deltas=2`). `total_ms` is the whole
    invocation's time (the handler's remaining time when it started): a snapshot whose download
    and finish cannot fit it is CompactionTooLarge rather than an endless "incomplete". With
    `coalesce`, a collection published less than `settings.min_interval_s` ago is left alone
    (status "coalesced", its deltas pending for a later run). Raises PointerTargetMissing /
    CorruptObject when the published snapshot is gone or damaged (nothing is published then),
    RacesLost (a PreconditionFailed carrying the result) after `max_attempts` lost races. `clock`
    (default: the wall clock) is what coalescing and retention compare ages with (a simulation
    passes an accelerated one).
    """
    check_collection(collection)
    cfg = replace(settings or CompactionSettings(), **overrides)
    result = CompactionResult(collection)
    attempt_state = _Attempt(
        store=store,
        c=collection,
        result=result,
        cfg=cfg,
        cache=cache or SnapshotCache(),
        budget=Budget(remaining_ms, cfg.reserve_ms, rates or RATES, total_ms=total_ms),
        hooks=hooks,
        coalesce=coalesce,
        free_bytes=free_bytes,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    started = time.monotonic()
    # imported by the first compaction, not by the compactor's import (a sweep may compact nothing)
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    retrying = Retrying(
        retry=retry_if_exception_type(PreconditionFailed),
        stop=stop_after_attempt(cfg.max_attempts),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                attempt_state.run()
    except PreconditionFailed as exc:
        raise RacesLost(result, exc) from exc
    result.seconds = time.monotonic() - started
    return result


class RacesLost(PreconditionFailed):
    """A compaction that lost its pointer race `max_attempts` times: nothing of it was published; its
    result says how many races it lost and what became of the versions it wrote."""

    def __init__(self, result: CompactionResult, last: PreconditionFailed) -> None:
        super().__init__(last.store, last.key, f"{result.races_lost} pointer race(s) lost: {last.cause}")
        self.result = result


class _RestartAttempt(Exception):
    """A delta was quarantined after chromadb refused it mid-apply: the work tree is discarded."""


@dataclass
class _Attempt:
    """One try at a compaction (a lost race runs it again from the pointer read): what its steps share."""

    store: ObjectStore
    c: str
    result: CompactionResult
    cfg: CompactionSettings
    cache: SnapshotCache
    budget: Budget
    hooks: Hook | None
    coalesce: bool
    free_bytes: Callable[[Path], int]
    clock: Callable[[], datetime]
    #: deltas folded into one set of chromadb writes (1 after chromadb refused a folded record)
    fold_deltas: int = DEFAULT_FOLD_DELTAS

    def hook(self, step: str) -> None:
        if self.hooks is not None:
            self.hooks(step)

    def took(self, phase: str, started: float) -> float:
        """Seconds since `started` (time.monotonic), added to the result's `phase`."""
        seconds = time.monotonic() - started
        phases = self.result.phase_seconds
        phases[phase] = phases.get(phase, 0.0) + seconds
        return seconds

    def _reset(self) -> None:
        r = self.result
        r.applied, r.already_applied, r.pending, r.digests = [], [], [], {}
        r.status = "noop"

    def run(self) -> None:
        # bounded: every restart quarantines one more delta, which the next try skips
        while True:
            try:
                self._run_once()
                return
            except _RestartAttempt:
                continue

    def _run_once(self) -> None:
        store, c, result = self.store, self.c, self.result
        self._reset()
        published = resolve(store, c)  # pointer first, then the listing (see module doc)
        parent = published.manifest if published else None
        result.parent = result.version = parent.version if parent else None
        result.record_count = parent.record_count if parent else 0
        result.dimension = parent.dimension if parent else None
        listed = {parse_delta_key(o.key)[1]: o.size for o in list_pending(store, c)}
        ledger = set(parent.applied) if parent else set()
        result.already_applied = [d for d in listed if d in ledger]
        todo = [d for d in listed if d not in ledger and d not in result.rejected]
        if not todo:
            self._remove(result.already_applied, listed)
            return
        if self.coalesce and parent is not None and self._too_soon(parent):
            result.status, result.pending = "coalesced", todo
            return
        parent_bytes = parent.size if parent else 0
        # cheap look (no stamp check): only the plan depends on it, `take` verifies
        cached = parent is not None and (self.cache.entry(parent) / "entry.json").exists()
        need = self.budget.start_ms(parent_bytes, cached) + self.budget.finish_ms(parent_bytes, 1)
        total = self.budget.total_ms
        if total is not None and need > total:
            raise CompactionTooLarge(
                f"{c}: a snapshot of {parent_bytes / 1e6:.0f} MB needs about {need / 1000:.0f} s, one "
                f"invocation has {total / 1000:.0f} s: raise the function's Timeout "
                "(see docs/compaction.md, 'Size limits')"
            )
        if not self.budget.fits(need):  # a fresh invocation (the sweep's) has the time
            result.status, result.pending = "incomplete", todo
            return
        keep = self.cache.entry(parent) if parent is not None else None
        planned = todo[: self.cfg.max_deltas]
        need_disk = disk_needed(parent_bytes, cached=cached, delta_bytes=sum(listed[d] for d in planned))
        free = self.cache.make_room(need_disk, keep=keep, free_bytes=self.free_bytes)
        if free < need_disk:
            raise CompactionTooLarge(
                f"{c}: a snapshot of {parent_bytes / 1e6:.0f} MB needs about {need_disk / 1e6:.0f} MB free "
                f"under {self.cache.root}, {free / 1e6:.0f} MB left after emptying the cache: raise the "
                "function's EphemeralStorage (see docs/compaction.md, 'Size limits')"
            )
        work = self.cache.tempdir("work")
        try:
            self._merge(published, parent, todo, listed, ledger, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _too_soon(self, parent: Manifest) -> bool:
        age = (self.clock() - parent.created_at).total_seconds()
        return 0 <= age < self.cfg.min_interval_s

    def _merge(
        self,
        published: Published | None,
        parent: Manifest | None,
        todo: list[str],
        listed: dict[str, int],
        ledger: set[str],
        work: Path,
    ) -> None:
        from storekeeper import chroma

        store, c, result, budget, rates = self.store, self.c, self.result, self.budget, self.budget.rates
        tree = work / "tree"
        parent_bytes = parent.size if parent else 0
        if parent is not None:
            t0 = time.monotonic()
            downloads = self.cache.downloads
            self.cache.take(store, parent, tree)  # no copy: the published result is adopted below
            seconds = self.took("fetch", t0)
            if self.cache.downloads > downloads:
                rates.observe("fetch", parent_bytes, seconds)
        self.hook("after_download")
        t_apply = time.monotonic()
        config = read_config(store, c)  # fixed by the first put: decides a first snapshot's shape too
        dimension = parent.dimension if parent else (config.dimension if config else None)
        dist = parent.distance if parent else (config.distance if config else self.cfg.distance)
        applied: list[str] = []
        delta_bytes = 0
        with chroma.persistent_client(tree) as client:
            col = chroma.get_or_create(client, c, dist)
            batch = chroma.max_batch(client)
            fold = Fold()

            def write_fold() -> None:
                nonlocal fold
                if not fold.deltas:
                    return
                try:
                    fold.write(col, batch)
                except chroma.RECORD_ERRORS as exc:
                    self._refused(fold, exc)
                first = not applied
                applied.extend(fold.deltas)
                result.digests.update(fold.digests)
                fold = Fold()
                if first:
                    self.hook("mid_apply")

            for i, delta_id in enumerate(todo):
                size_next = estimated_size(parent_bytes, delta_bytes + listed[delta_id])
                taken = len(applied) + len(fold.deltas)
                if taken >= self.cfg.max_deltas or not budget.can_apply_next(
                    size_next, taken, unwritten=len(fold.deltas)
                ):
                    result.pending = todo[i:]
                    break
                key = delta_key(c, delta_id)
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
                        f"embeddings: dimension {content.dimension} but collection {c} "
                        f"has dimension {dimension}",
                        result,
                    )
                    continue
                if content.updates or fold.has_updates or len(fold.deltas) >= self.fold_deltas:
                    write_fold()  # a delta with updates is folded alone
                fold.add(content, as_array(content.embeddings), digest)
                dimension = dimension or content.dimension
                delta_bytes += listed[delta_id]
                if fold.records >= batch:
                    write_fold()
            write_fold()
            count = int(col.count())
        self.took("apply", t_apply)
        if not applied:
            self._remove(result.already_applied, listed)
            if result.pending:
                result.status = "incomplete"
            return
        if config is None and dimension is not None:  # a collection from before configs existed
            create_config(store, c, dimension, dist)  # type: ignore[arg-type]
        version = new_version(parent.version if parent else None)
        archive = work / ARCHIVE_NAME
        t_publish = t0 = time.monotonic()
        sha, size = pack_archive(tree, archive)
        rates.timed("pack", size, t0)
        new_ledger = sorted((ledger & set(listed)) | set(applied))
        t0 = time.monotonic()
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
            hooks=self.hooks,
            sha256=sha,
            size=size,
            delta_sha256={d: result.digests[d] for d in applied},
        )
        rates.timed("upload", size, t0)
        try:
            self._publish(version, published.etag if published else None)  # PreconditionFailed -> rebase
        except PreconditionFailed:  # a lost race's publishing time (its removal included) is publish time
            self.took("publish", t_publish)
            raise
        self.hook("after_pointer_write")
        self.took("publish", t_publish)
        result.status = "incomplete" if result.pending else "published"
        result.version, result.applied = version, applied
        result.record_count, result.dimension, result.size = count, dimension, size
        self.cache.adopt(manifest, tree)
        self._remove([*result.already_applied, *applied], listed)
        if self.cfg.keep_versions > 0:
            self._retire()

    def _publish(self, version: str, etag: str | None) -> None:
        """The conditional pointer write; a lost race removes the version this attempt wrote (bounded,
        only with a finish's floor of time left; kept and reported otherwise) and raises
        PreconditionFailed, which rebases."""
        from storekeeper.retention import publish_or_discard

        budget = self.budget
        lost = publish_or_discard(
            self.store,
            self.c,
            version,
            etag,
            who="compactor",
            may_remove=lambda: budget.fits(budget.floor_ms),
        )
        if lost is None:
            return
        self.result.races_lost += 1
        if lost.removed:
            self.result.lost_removed.append(version)
        else:
            self.result.lost_kept[version] = lost.note
        raise lost.error

    def _refused(self, fold: Fold, exc: Exception) -> NoReturn:
        """chromadb refused a record the producer's rules let through: the tree may hold part of
        the fold, so start over from the pointer. A fold of one delta quarantines it; a fold of
        several cannot say whose record it was, so the next tries apply delta by delta."""
        if len(fold.deltas) > 1:
            self.fold_deltas = 1
            raise _RestartAttempt(fold.deltas[0]) from exc
        why = f"chromadb refused a record: {type(exc).__name__}: {exc}"
        _reject(self.store, self.c, fold.deltas[0], why, self.result)
        raise _RestartAttempt(fold.deltas[0]) from exc

    def _retire(self) -> None:
        """Remove superseded versions beyond the newest N (see storekeeper.retention); its failure
        never fails the compaction that was just published."""
        from storekeeper.retention import retire

        protection = None
        if self.cfg.retention_grace_s is not None:
            from storekeeper.policies.protect import default_protection_config

            grace = timedelta(seconds=self.cfg.retention_grace_s)
            protection = replace(default_protection_config(), grace=grace)
        t0 = time.monotonic()
        try:
            done = retire(
                self.store, self.c, keep=self.cfg.keep_versions, protection=protection, now=self.clock()
            )
        except Exception as exc:  # reported; the next compaction tries again
            self.result.retention_errors["*"] = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self.took("remove", t0)
        self.result.retired.extend(done.removed)
        self.result.retention_errors.update(done.errors)
        self.result.bytes_freed += done.bytes_freed

    def _remove(self, ids: list[str], sizes: dict[str, int]) -> None:
        """Delete applied deltas (safe: their snapshot is published); errors are reported, not raised.
        `sizes`: delta id -> bytes, as this attempt listed them (what an unversioned delete frees)."""
        if not ids:
            return
        t0 = time.monotonic()
        listed = {delta_key(self.c, d): sizes.get(d, 0) for d in ids}
        try:
            res = self.store.purge_many(list(listed), sizes=listed)  # versioned: with their versions
        finally:
            self.took("remove", t0)
        self.result.bytes_freed += res.bytes_freed
        self.result.removed.extend(parse_delta_key(k)[1] for k in res.deleted)
        self.result.removal_errors.update({parse_delta_key(k)[1]: e for k, e in res.errors.items()})


def _reject(store: ObjectStore, c: str, delta_id: str, reason: str, result: CompactionResult) -> None:
    quarantine(store, c, delta_id, reason)
    result.rejected[delta_id] = reason


@dataclass
class PendingDeltas:
    """What the sweep found under `delta/`: its work list and the figures for the backlog alarm."""

    count: int = 0
    oldest_age_s: float = 0.0
    stale: list[str] = field(default_factory=list)  # collections with a delta older than the threshold


def pending_deltas(store: ObjectStore, min_age_seconds: int, *, now: datetime | None = None) -> PendingDeltas:
    """One listing of `delta/`: every collection with a delta pending longer than `min_age_seconds`."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=min_age_seconds)
    out = PendingDeltas()
    found: set[str] = set()
    oldest: datetime | None = None
    for info in store.list(DELTA_PREFIX):
        parts = match_delta_key(info.key)
        if parts is None:
            continue
        c = parts[0]
        out.count += 1
        if oldest is None or info.last_modified < oldest:
            oldest = info.last_modified
        if info.last_modified <= cutoff:
            found.add(c)
    out.oldest_age_s = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    out.stale = sorted(found)
    return out


def stale_collections(store: ObjectStore, min_age_seconds: int, *, now: datetime | None = None) -> list[str]:
    """Collections with a pending delta older than `min_age_seconds` (the sweep's work list)."""
    return pending_deltas(store, min_age_seconds, now=now).stale
