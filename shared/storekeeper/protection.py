"""Protection checks shared by the reaper's planner and the cleanup executor.

DESIGN invariant 3: nothing live is deleted. One place decides what "live" and
"protected" mean, so a dry run and a real run (and the planner and the
executor) can never disagree about it. Every check returns a *reason* (str)
when the target must be kept, or None when it may go.

Protected:
* every collection's live pointer `snapshot/<c>/latest/pointer.txt` and
  everything under the version prefix it names, and every version newer than
  it (or any version while there is no pointer): it may be mid-publish;
* deltas that the live manifest has not applied (not in `deltas`/`applied`);
  with no pointer, every delta of the collection is unapplied;
* objects whose metadata (or buckets whose labels/tags) say
  `storekeeper:protect` (or `storekeeper-protect`, since S3 metadata keys
  cannot hold ':') = true/keep/yes/1;
* objects/buckets with `protect-until` (also `storekeeper:protect-until`,
  `storekeeper-protect-until`) in the future; an unreadable date protects;
* keys or bucket names matching the configured protect list (exact or glob).

Lookups are cached per `Protection` instance: create one per run/task.
Failing to read a pointer or manifest protects the whole collection (fail safe).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storekeeper.errors import StorekeeperError
from storekeeper.stores.base import ObjectInfo, ObjectStore

#: environment variable holding extra protect-list globs, comma separated
PROTECT_ENV = "STOREKEEPER_PROTECT"

PROTECT_KEYS = ("storekeeper:protect", "storekeeper-protect", "storekeeper_protect")
PROTECT_UNTIL_KEYS = ("protect-until", "storekeeper:protect-until", "storekeeper-protect-until")
PROTECT_VALUES = frozenset({"true", "keep", "yes", "1"})
#: the same defaults as the policies file's `protect.labels`, so planner and executor agree
DEFAULT_LABELS: dict[str, str | None] = {"storekeeper:protect": "true", "keep": None, "shared": "true"}

POINTER_RE = re.compile(r"^snapshot/(?P<c>[a-z0-9][a-z0-9_-]{0,62})/latest/pointer\.txt$")
SNAPSHOT_KEY_RE = re.compile(r"^snapshot/(?P<c>[a-z0-9][a-z0-9_-]{0,62})/(?P<v>[^/]+)/")
DELTA_KEY_RE = re.compile(r"^delta/(?P<c>[a-z0-9][a-z0-9_-]{0,62})/(?P<id>[^/]+)\.delta$")


def pointer_key(collection: str) -> str:
    return f"snapshot/{collection}/latest/pointer.txt"


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

    @classmethod
    def from_protect(cls, protect: Any, extra: Iterable[str] = ()) -> ProtectionConfig:
        """From the policies file's `protect:` section (policies.model.Protect), plus env globs."""
        base = cls.from_env(extra, check_object_labels=bool(getattr(protect, "object_labels", True)))
        until = getattr(protect, "protect_until_label", None)
        return cls(
            protect=(*base.protect, *getattr(protect, "names", ())),
            labels=dict(getattr(protect, "labels", DEFAULT_LABELS)),
            until_keys=tuple(dict.fromkeys([*PROTECT_UNTIL_KEYS, *([until] if until else [])])),
            check_object_labels=base.check_object_labels,
        )

    @classmethod
    def from_policies(cls, path: str | None = None) -> ProtectionConfig:
        """The `protect:` section of the reaper's policies file ($REAPER_POLICIES, else the bundled
        default), so the executor protects exactly what the planner protected."""
        from storekeeper.policies.model import load_policies

        return cls.from_protect(load_policies(path).spec.protect)

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
        if self.prefix is None:
            return None
        return self.prefix.rstrip("/").rsplit("/", 1)[-1]


def read_live(store: ObjectStore, collection: str) -> LiveState:
    """Resolve the pointer and its manifest; any failure to read them protects the whole collection."""
    from storekeeper.snapshots import load_manifest, read_pointer, version_prefix

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


def _truthy_label(labels: dict[str, str], keys: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in labels.items()}
    for k in keys:
        v = lowered.get(k.lower())
        if v is not None and v.strip().lower() in PROTECT_VALUES:
            return f"label {k}={v}"
    return None


def _protect_until(labels: dict[str, str], keys: Iterable[str], now: datetime) -> str | None:
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


def _exact_label(labels: dict[str, str], wanted: dict[str, str | None]) -> str | None:
    lowered = {k.lower(): v for k, v in labels.items()}
    for k, want in wanted.items():
        v = lowered.get(k.lower())
        if v is not None and (want is None or v.strip().lower() == want.lower()):
            return f"label {k}={v}"
    return None


def label_reason(labels: dict[str, str] | None, config: ProtectionConfig, now: datetime) -> str | None:
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


@dataclass
class Protection:
    """Per-run protection checks over one store, with cached pointer/manifest/label reads."""

    store: ObjectStore
    config: ProtectionConfig = field(default_factory=ProtectionConfig)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _live: dict[str, LiveState] = field(default_factory=dict, init=False, repr=False)
    _bucket_labels: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)

    def live(self, collection: str) -> LiveState:
        if collection not in self._live:
            self._live[collection] = read_live(self.store, collection)
        return self._live[collection]

    def forget(self, collection: str | None = None) -> None:
        """Drop cached live state (the executor re-reads right before destructive calls)."""
        if collection is None:
            self._live.clear()
        else:
            self._live.pop(collection, None)

    # -- keys --------------------------------------------------------------------
    def structural_reason(self, key: str) -> str | None:
        """Live pointer, live snapshot, unapplied delta: decided from the key alone (plus the manifest)."""
        m = POINTER_RE.fullmatch(key)
        if m:
            return f"{key} is the live pointer of collection {m['c']!r}"
        m = SNAPSHOT_KEY_RE.match(key)
        if m:
            live = self.live(m["c"])
            if live.error:
                return f"collection {m['c']!r}: {live.error}"
            if live.prefix is not None and key.startswith(live.prefix):
                return f"{key} belongs to the live snapshot {live.prefix}"
            # a version not older than the live one may be mid-publish (versions sort in publish order)
            if live.version is None:
                return f"{key}: collection {m['c']!r} has no published pointer (may be mid-publish)"
            if m["v"] > live.version:
                return f"{key}: version {m['v']} is newer than the live {live.version} (may be mid-publish)"
            return None
        m = DELTA_KEY_RE.fullmatch(key)
        if m:
            live = self.live(m["c"])
            if live.error:
                return f"collection {m['c']!r}: {live.error}"
            if m["id"] not in live.applied:
                where = live.prefix or "no snapshot yet"
                return f"delta {m['id']} is not applied by the live snapshot ({where})"
        return None

    def key_reason(self, key: str, info: ObjectInfo | None = None) -> str | None:
        """Why `key` must not be deleted, or None. `info` from head() supplies metadata labels."""
        reason = listed_reason(key, self.config.protect) or self.structural_reason(key)
        if reason:
            return reason
        if info is not None and info.metadata:
            r = label_reason(info.metadata, self.config, self.now)
            if r:
                return f"{key}: {r}"
        return None

    def needs_head(self) -> bool:
        return self.config.check_object_labels

    # -- buckets -------------------------------------------------------------------
    def bucket_labels(self, bucket: str) -> dict[str, str]:
        if bucket not in self._bucket_labels:
            self._bucket_labels[bucket] = self.store.get_bucket_labels(bucket)
        return self._bucket_labels[bucket]

    def bucket_reason(self, bucket: str, labels: dict[str, str] | None = None) -> str | None:
        """Why the whole bucket must be kept (protect list, labels/tags); a missing bucket raises."""
        r = listed_reason(bucket, self.config.protect)
        if r:
            return f"bucket {bucket} {r}"
        if labels is None:
            labels = self.bucket_labels(bucket)
        r = label_reason(labels, self.config, self.now)
        return f"bucket {bucket}: {r}" if r else None
