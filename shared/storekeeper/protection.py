"""The one place that decides whether something may be deleted, and why not.

Nothing live is deleted. `Protection.reason` is the single
decision: the reaper's planner (dry run and real run alike), the cleanup
executor (again, at delete time) and the compactor's own retention all call it,
so they can never disagree about what is protected nor say it differently.
It returns a *reason* (str) when the target must be kept, or None when it may go.

Protected:
* the reaper's own state (`reaper-state/`: a budgeted pass's continuation);
* idempotency state (`idempotency/`: Powertools records kept in the store, put plans)
  younger than IDEMPOTENCY_WINDOW, or of unknown age: a retried put or a redelivered
  cleanup task reads it, and without it would write or delete twice;
* every collection's live pointer `snapshot/<c>/latest/pointer.txt` and
  everything under the version prefix it names, and every version of a later
  sequence (or any version while there is no pointer): it may be mid-publish
  (a version of the live one's own sequence lost its pointer race: never published);
  a version that became live, or a pointer that vanished or went back, since
  planning (the task's guard says what the planner saw);
* deltas that the live manifest has not applied (not in `deltas`/`applied`);
  with no pointer, every delta of the collection is unapplied;
* names (keys, buckets, versions, vector buckets/indexes) on the protect list
  (exact or glob), and the buckets of configured stores;
* pipeline output (deltas, snapshot versions, uploads) younger than the grace
  floor (`defaults.grace`), so the reaper never races a running compactor;
* objects whose metadata (or buckets whose labels/tags) say
  `storekeeper:protect` (or `storekeeper-protect`, since S3 metadata keys
  cannot hold ':') = true/keep/yes/1, or carry a configured protect label;
* objects/buckets with `protect-until` (also `storekeeper:protect-until`,
  `storekeeper-protect-until`) in the future; an unreadable date protects.

Lookups are cached per `Protection` instance: create one per run/task.
Failing to read a pointer or manifest protects the whole collection (fail safe).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from storekeeper.errors import StorekeeperError
from storekeeper.layout import (
    DELTA_PREFIX,
    IDEMPOTENCY_PREFIX,
    REAPER_STATE_PREFIX,
    SNAPSHOT_PREFIX,
    VERSION_RE,
    is_idempotency_state,
    is_reaper_state,
    match_delta_key,
    match_pointer_key,
    match_snapshot_entry,
    version_of_prefix,
    version_sequence,
)
from storekeeper.stores.base import ObjectStore

#: environment variable holding extra protect-list globs, comma separated
PROTECT_ENV = "STOREKEEPER_PROTECT"

PROTECT_KEYS = ("storekeeper:protect", "storekeeper-protect", "storekeeper_protect")
PROTECT_UNTIL_KEYS = ("protect-until", "storekeeper:protect-until", "storekeeper-protect-until")
PROTECT_VALUES = frozenset({"true", "keep", "yes", "1"})
#: the same defaults as the policies file's `protect.labels`, so planner and executor agree
DEFAULT_LABELS: dict[str, str | None] = {"storekeeper:protect": "true", "keep": None, "shared": "true"}

#: how long idempotency state is kept from every policy: the longest expiry of a record (cleanup's
#: 14 days, outlasting its DLQ; the producer's 24 h) + a day. Records are rewritten when they
#: complete, so last-modified + 14 days is past their expiry; template.yaml's `expire-idempotency-state`
#: lifecycle rule expires them after the same time.
IDEMPOTENCY_WINDOW = timedelta(days=15)

#: what is asked about: an object key, a snapshot version (`snapshot/<c>/<v>/`), an incomplete
#: upload (by its key), a bucket of an object store, a vector bucket or `bucket/index`
TargetKind = Literal["key", "version", "upload", "bucket", "vector"]


@dataclass(frozen=True)
class ProtectionConfig:
    """What counts as protected beyond the live data. Globs match keys and bucket names."""

    protect: tuple[str, ...] = ()
    #: labels whose value is true/keep/yes/1 protect
    label_keys: tuple[str, ...] = PROTECT_KEYS
    #: label -> exact value that protects (None: any value protects), as in the policies file
    labels: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    until_keys: tuple[str, ...] = PROTECT_UNTIL_KEYS
    #: one HEAD per object to read its metadata labels; turn off only for huge prefix deletes
    check_object_labels: bool = True
    #: the floor below which pipeline output (deltas, versions, uploads) is never deleted
    grace: timedelta | None = None
    #: buckets of the configured stores: never deleted as a whole
    stores: frozenset[str] = frozenset()

    @classmethod
    def from_protect(
        cls,
        protect: Any,
        extra: Iterable[str] = (),
        *,
        grace: timedelta | None = None,
        stores: Iterable[str] = (),
    ) -> ProtectionConfig:
        """From the policies file's `protect:` section (policies.model.Protect), plus env globs."""
        base = cls.from_env(extra, check_object_labels=bool(getattr(protect, "object_labels", True)))
        until = getattr(protect, "protect_until_label", None)
        return cls(
            protect=(*base.protect, *getattr(protect, "names", ())),
            labels=dict(getattr(protect, "labels", DEFAULT_LABELS)),
            until_keys=tuple(dict.fromkeys([*PROTECT_UNTIL_KEYS, *([until] if until else [])])),
            check_object_labels=base.check_object_labels,
            grace=grace,
            stores=frozenset(stores),
        )

    @classmethod
    def from_env(cls, extra: Iterable[str] = (), *, check_object_labels: bool = True) -> ProtectionConfig:
        raw = os.environ.get(PROTECT_ENV, "")
        globs = [g.strip() for g in raw.split(",") if g.strip()]
        return cls(protect=(*globs, *extra), check_object_labels=check_object_labels)


@dataclass
class LiveState:
    """The live snapshot of one collection, read once per run."""

    collection: str
    prefix: str | None  # pointer target, None when there is no pointer (empty collection)
    applied: frozenset[str] = frozenset()
    error: str | None = None  # pointer/manifest unreadable: the collection is fully protected

    @property
    def version(self) -> str | None:
        return None if self.prefix is None else version_of_prefix(self.prefix)


def read_live(store: ObjectStore, collection: str) -> LiveState:
    """Resolve the pointer and its manifest; any failure to read them protects the whole collection."""
    from storekeeper.layout import version_prefix
    from storekeeper.snapshots import load_manifest, read_pointer

    try:
        version, _etag = read_pointer(store, collection)
    except StorekeeperError as exc:
        return LiveState(collection, None, error=f"pointer of {collection!r} unreadable: {exc}"[:400])
    if version is None:
        return LiveState(collection, None)
    prefix = version_prefix(collection, version)
    try:
        manifest = load_manifest(store, collection, version)
    except StorekeeperError as exc:
        return LiveState(collection, prefix, error=f"live manifest unreadable: {exc}"[:400])
    return LiveState(collection, prefix, applied=frozenset([*manifest.applied, *manifest.deltas]))


# -- the rules, each written once ------------------------------------------------------------------------
def version_reason(live: LiveState, version: str, planned: str | None = None) -> str | None:
    """Why snapshot `version` of `live.collection` must stay, or None.

    `planned` is the live version the planner saw (a task's guard): a version that became
    live, a pointer that vanished or went back since then, keeps the version too.
    """
    c = live.collection
    if live.error:
        return f"collection {c!r}: {live.error}"
    current = live.version
    if current is None:
        if planned:
            return f"the pointer of {c!r} vanished since planning (live was {planned})"
        return f"collection {c!r} has no published pointer: snapshot {version} may be mid-publish"
    if version == current:
        if planned and planned != version:
            return f"snapshot {version} became live after planning (live was {planned})"
        return f"snapshot {version} is the live snapshot of {c!r} (the pointer's target)"
    if version > current and not lost_race(version, current):
        # versions sort in publish order: a newer one may be mid-publish
        return f"snapshot {version} is newer than the live {current} (it may be mid-publish)"
    if planned and current < planned:
        return f"the live version of {c!r} went back from {planned} to {current} since planning"
    return None


def lost_race(version: str, live: str) -> bool:
    """A version of the live one's own sequence, not the live one: built on the same parent, its
    conditional pointer write lost (the pointer's etag moved on for good), so it is never published."""
    return (
        version != live
        and bool(VERSION_RE.fullmatch(version))
        and bool(VERSION_RE.fullmatch(live))
        and version_sequence(version) == version_sequence(live)
    )


def delta_reason(live: LiveState, delta_id: str) -> str | None:
    """Why a delta must stay: the live snapshot has not applied it (or cannot be read)."""
    if live.error:
        return f"collection {live.collection!r}: {live.error}"
    if delta_id not in live.applied:
        return f"delta {delta_id} is not applied by the live snapshot ({live.prefix or 'no snapshot yet'})"
    return None


def idempotency_reason(key: str, created: datetime | None, now: datetime) -> str | None:
    """Why an idempotency record or put plan must stay: its window may not be over."""
    if not is_idempotency_state(key):
        return None
    if created is None:
        return f"{key} is idempotency state of unknown age (kept for {IDEMPOTENCY_WINDOW.days} days)"
    if now - created < IDEMPOTENCY_WINDOW:
        return f"{key} is idempotency state younger than {IDEMPOTENCY_WINDOW.days} days (retries read it)"
    return None


def _truthy_label(labels: Mapping[str, str], keys: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in labels.items()}
    for k in keys:
        v = lowered.get(k.lower())
        if v is not None and v.strip().lower() in PROTECT_VALUES:
            return f"label {k}={v}"
    return None


def _protect_until(labels: Mapping[str, str], keys: Iterable[str], now: datetime) -> str | None:
    lowered = {k.lower(): v for k, v in labels.items()}
    for k in keys:
        v = lowered.get(k.lower())
        if v is None:
            continue
        try:
            until = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            return f"label {k}={v!r} is not an ISO timestamp (kept to be safe)"
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        if until > now:
            return f"label {k}={v} is in the future"
    return None


def _exact_label(labels: Mapping[str, str], wanted: Mapping[str, str | None]) -> str | None:
    lowered = {k.lower(): v for k, v in labels.items()}
    for k, want in wanted.items():
        v = lowered.get(k.lower())
        if v is not None and (want is None or v.strip().lower() == want.lower()):
            return f"label {k}={v}"
    return None


def label_reason(labels: Mapping[str, str] | None, config: ProtectionConfig, now: datetime) -> str | None:
    """Why these labels/tags/metadata protect their owner, or None."""
    if not labels:
        return None
    return (
        _truthy_label(labels, config.label_keys)
        or _exact_label(labels, config.labels)
        or _protect_until(labels, config.until_keys, now)
    )


def listed_reason(name: str, globs: Iterable[str]) -> str | None:
    for g in globs:
        if name == g or fnmatch.fnmatchcase(name, g):
            return f"matches protect list entry {g!r}"
    return None


def grace_reason(name: str, created: datetime | None, grace: timedelta | None, now: datetime) -> str | None:
    if grace is None:
        return None
    if created is None:
        return f"{name}: age unknown, kept for the grace period ({grace})"
    if now - created < grace:
        return f"{name}: younger than the grace period ({grace})"
    return None


@dataclass
class Protection:
    """Per-run protection checks over one store, with cached pointer/manifest/label reads."""

    store: ObjectStore | None
    config: ProtectionConfig = field(default_factory=ProtectionConfig)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _live: dict[str, LiveState] = field(default_factory=dict, init=False, repr=False)
    _bucket_labels: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)

    # -- THE decision --------------------------------------------------------------------------------
    def reason(
        self,
        kind: TargetKind,
        name: str,
        *,
        created: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        planned_live: str | None = None,
    ) -> str | None:
        """Why `name` (a `kind`) must not be deleted, or None when it may go.

        `created` (creation or last-modified time) feeds the grace floor; `labels` are the
        object's metadata / the bucket's labels when they were read (None: not read yet, so
        only what needs no labels is decided); `planned_live` is the live version a task's
        guard recorded at planning.
        """
        return self._structural(kind, name, created, planned_live) or self._labelled(kind, name, labels)

    def _structural(
        self, kind: TargetKind, name: str, created: datetime | None, planned_live: str | None
    ) -> str | None:
        cfg = self.config
        if kind == "key":
            why = self._live_key(name) or idempotency_reason(name, created, self.now)
            if why:
                return why
            why = listed_reason(name, cfg.protect)
            if why:
                return why
            if cfg.grace is not None and (match_delta_key(name) or match_snapshot_entry(name)):
                return grace_reason(name, created, cfg.grace, self.now)
            return None
        if kind == "version":
            entry = match_snapshot_entry(name)
            if entry is None:
                raise StorekeeperError(f"{name!r} is not a snapshot version prefix")
            c, v = entry
            return (
                version_reason(self.live(c), v, planned_live)
                or listed_reason(name, cfg.protect)
                or grace_reason(name, created, cfg.grace, self.now)
            )
        if kind == "upload":
            return listed_reason(name, cfg.protect) or grace_reason(name, created, cfg.grace, self.now)
        if kind == "bucket":
            if name in cfg.stores:
                return f"bucket {name} is a configured store"
            why = listed_reason(name, cfg.protect)
            return f"bucket {name} {why}" if why else None
        # vector: a bucket, or `bucket/index` (a protected bucket protects its indexes)
        bucket, _, index = name.partition("/")
        what = f"vector index {name}" if index else f"vector bucket {name}"
        why = listed_reason(bucket, cfg.protect) or (listed_reason(name, cfg.protect) if index else None)
        return f"{what} {why}" if why else None

    def _live_key(self, key: str) -> str | None:
        """Live pointer, live or mid-publish snapshot, unapplied delta, reaper state: decided from the
        key (+ manifest)."""
        if is_reaper_state(key):
            return f"{key} is reaper state (a pass's continuation)"
        c = match_pointer_key(key)
        if c is not None:
            return f"{key} is the live pointer of collection {c!r}"
        entry = match_snapshot_entry(key)
        if entry is not None:
            why = version_reason(self.live(entry[0]), entry[1])
            return f"{key}: {why}" if why else None
        parts = match_delta_key(key)
        if parts is not None:
            return delta_reason(self.live(parts[0]), parts[1])
        return None

    #: every key `_structural` can keep starts with one of these (or is on the protect list)
    KEY_RULE_PREFIXES = (SNAPSHOT_PREFIX, DELTA_PREFIX, REAPER_STATE_PREFIX, IDEMPOTENCY_PREFIX)

    def key_may_be_kept(self) -> Callable[[str], bool]:
        """A cheap necessary condition for `reason("key", k)` without labels: False means it is None.

        For the planner's fast path, which asks the full `reason` only where this says True; keep
        it next to `_structural` and `_live_key` (tests/unit/test_fastpath.py checks the pair)."""
        prefixes = self.KEY_RULE_PREFIXES
        globs = self.config.protect
        if not globs:
            return lambda key: key.startswith(prefixes)
        exact = frozenset(globs)
        listed = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)).match
        return lambda key: key.startswith(prefixes) or key in exact or listed(key) is not None

    def _labelled(self, kind: TargetKind, name: str, labels: Mapping[str, str] | None) -> str | None:
        why = label_reason(labels, self.config, self.now)
        if not why:
            return None
        return f"bucket {name}: {why}" if kind == "bucket" else f"{name}: {why}"

    # -- helpers over the decision ---------------------------------------------------------------------
    def live(self, collection: str) -> LiveState:
        if collection not in self._live:
            if self.store is None:
                raise StorekeeperError(f"collection {collection!r}: protection has no object store")
            self._live[collection] = read_live(self.store, collection)
        return self._live[collection]

    def forget(self, collection: str | None = None) -> None:
        """Drop cached live state (the executor re-reads right before destructive calls)."""
        if collection is None:
            self._live.clear()
        else:
            self._live.pop(collection, None)

    def needs_head(self) -> bool:
        return self.config.check_object_labels

    def bucket_labels(self, bucket: str) -> dict[str, str]:
        if bucket not in self._bucket_labels:
            if self.store is None:
                raise StorekeeperError(f"bucket {bucket}: protection has no object store")
            self._bucket_labels[bucket] = self.store.get_bucket_labels(bucket)
        return self._bucket_labels[bucket]

    def bucket_reason(self, bucket: str, labels: Mapping[str, str] | None = None) -> str | None:
        """`reason("bucket", ...)` with the bucket's labels read (once); a missing bucket raises."""
        why = self.reason("bucket", bucket)
        if why:
            return why
        return self.reason("bucket", bucket, labels=self.bucket_labels(bucket) if labels is None else labels)
