"""The compactor function's logic: SQS delta notifications and the scheduled sweep -> compactions.

A notification is a hint, the store is the truth: a compaction applies every
pending delta of its collection, not just the notified ones. So each collection
is compacted once per invocation, when its first record is handled, and every
record is then judged on its own:

* applied now or earlier, or quarantined (`delta-rejected/`, the delta's dead
  letter) -> the record succeeds; a redelivery cannot change anything;
* still pending (time budget, per-run cap, or coalesced because the collection
  was published moments ago) -> the record succeeds too and the scheduled sweep
  applies the delta. On a FIFO queue a failed record holds back its whole message
  group until it is visible again; failing a record whose delta is safe in the
  store would only freeze the collection's later notifications;
* a bad message (its sha256 does not match the delta) or a compaction that
  failed (store error, missing snapshot) -> the record fails, naming the field
  and the reason; SQS retries it and then moves it to the DLQ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pydantic
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from storekeeper.batch import RecordFailed, describe_error, record_shell
from storekeeper.compaction import (
    CompactionResult,
    CompactionSettings,
    PendingDeltas,
    compact,
    pending_deltas,
    rejection_reason,
)
from storekeeper.deltas import decode_delta
from storekeeper.errors import CorruptObject, NotFound, StoreError, ValidationError
from storekeeper.models.deltas import DeltaNotification
from storekeeper.models.snapshots import Manifest
from storekeeper.snapshots import SnapshotCache, load_manifest
from storekeeper.stores.base import ObjectStore

DEFAULT_SWEEP_AGE_SECONDS = 300
#: how far back (in versions) a late notification's delta is looked for to check its sha256
MAX_MANIFESTS_WALKED = 20
#: versions written this long before a delta was created cannot hold it (clock skew allowance)
CLOCK_SKEW = timedelta(minutes=5)

RecordOutcome = Literal["applied", "already_applied", "quarantined", "left_to_sweep"]


class DeltaNotificationRecord(SqsRecordModel):
    """An SQS record of DeltaQueue: Powertools' BatchProcessor parses the body once, into the model."""

    body: Json[DeltaNotification]  # narrows SqsRecordModel's str body


def parse_notification(body: str) -> DeltaNotification:
    """JSON body -> DeltaNotification; errors name the offending field (the CLI's and tests' path)."""
    try:
        return DeltaNotificationRecord.model_validate(record_shell(body)).body
    except pydantic.ValidationError as exc:
        field_name, reason = describe_error(exc)
        raise ValidationError(field_name, reason) from None


def is_sweep_event(event: Any) -> bool:
    """`{"sweep": true}` or an EventBridge scheduled event."""
    if not isinstance(event, dict):
        return False
    return event.get("sweep") is True or (
        event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"
    )


Outcome = CompactionResult | Exception


@dataclass
class Compactions:
    """One invocation's compactions: each collection at most once, each manifest read at most once."""

    store: ObjectStore
    cache: SnapshotCache
    settings: CompactionSettings = field(default_factory=CompactionSettings)
    remaining_ms: Callable[[], int] | None = None
    total_ms: int | None = None
    coalesce: bool = True
    on_error: Callable[[str, Exception], None] | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _manifests: dict[tuple[str, str], Manifest | None] = field(default_factory=dict)

    def of(self, collection: str) -> Outcome:
        """The collection's compaction in this invocation: run on first use; a failure is kept."""
        if collection not in self.outcomes:
            try:
                self.outcomes[collection] = compact(
                    self.store,
                    collection,
                    settings=self.settings,
                    cache=self.cache,
                    remaining_ms=self.remaining_ms,
                    total_ms=self.total_ms,
                    coalesce=self.coalesce,
                )
            except Exception as exc:  # recorded per collection: its records fail, the others do not
                self.outcomes[collection] = exc
                if self.on_error is not None:
                    self.on_error(collection, exc)
        return self.outcomes[collection]

    def results(self) -> list[CompactionResult]:
        return [o for o in self.outcomes.values() if isinstance(o, CompactionResult)]

    def errors(self) -> dict[str, Exception]:
        return {c: o for c, o in self.outcomes.items() if isinstance(o, Exception)}

    def manifest(self, collection: str, version: str) -> Manifest | None:
        key = (collection, version)
        if key not in self._manifests:
            try:
                self._manifests[key] = load_manifest(self.store, collection, version)
            except StoreError:  # removed by retention, or unreadable: that part of the chain is unknown
                self._manifests[key] = None
        return self._manifests[key]

    def applied_digest(self, collection: str, live: str | None, delta_id: str) -> str | None:
        """The sha256 recorded when `delta_id` was applied, found by walking back from the live
        version to versions older than the delta itself; None when it cannot be found."""
        created = _delta_time(delta_id)
        version = live
        for _ in range(MAX_MANIFESTS_WALKED):
            if version is None:
                return None
            m = self.manifest(collection, version)
            if m is None:
                return None
            if delta_id in m.delta_sha256:
                return m.delta_sha256[delta_id]
            if created is not None and m.created_at < created - CLOCK_SKEW:
                return None  # older than the delta: it cannot be further back
            version = m.parent
        return None


def _delta_time(delta_id: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(delta_id[:13]) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _intact(body: bytes, key: str) -> bool:
    """Whether a delta blob passes its own checks (a wrong sha256 is then the message's fault)."""
    try:
        decode_delta(body, expect_key=key)
    except CorruptObject:
        return False
    return True


def _bad_sha(note: DeltaNotification, digest: str) -> RecordFailed:
    return RecordFailed(
        "sha256",
        f"the message says {note.sha256[:12]}..., the delta's blob is {digest[:12]}... "
        f"({note.delta_key}; the delta itself verified by its own checksum)",
    )


def judge(compactions: Compactions, note: DeltaNotification) -> RecordOutcome:
    """How the record's delta was handled, or RecordFailed naming the field and the reason."""
    c, did = note.collection, note.delta_id
    outcome = compactions.of(c)
    if isinstance(outcome, Exception):
        raise RecordFailed("collection", f"compaction of {c} failed: {type(outcome).__name__}: {outcome}")
    if did in outcome.rejected:
        return "quarantined"
    if did in outcome.digests:
        if outcome.digests[did] != note.sha256:
            raise _bad_sha(note, outcome.digests[did])
        return "applied"
    store = compactions.store
    if did in outcome.pending:
        try:
            body: bytes | None = store.get(note.delta_key).body
        except NotFound:
            body = None  # applied or quarantined by someone else meanwhile: judged below
        if body is not None:
            digest = hashlib.sha256(body).hexdigest()
            if digest != note.sha256 and _intact(body, note.delta_key):
                raise _bad_sha(note, digest)
            # matching, or a damaged blob: the message is right and the next compaction quarantines it
            return "left_to_sweep"
    if rejection_reason(store, c, did) is not None:
        return "quarantined"
    recorded = compactions.applied_digest(c, outcome.version, did)
    if recorded is not None and recorded != note.sha256:
        raise _bad_sha(note, recorded)
    return "already_applied"  # in the ledger, or applied and removed by an earlier run


def sweep(compactions: Compactions, *, min_age_seconds: int) -> PendingDeltas:
    """Compact every collection with a delta pending longer than `min_age_seconds` (no coalescing:
    the sweep collects what notification-driven runs left)."""
    found = pending_deltas(compactions.store, min_age_seconds)
    compactions.coalesce = False
    for c in found.stale:
        compactions.of(c)
    return found
