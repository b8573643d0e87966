"""The compactor function's logic: SQS delta notifications and the scheduled sweep -> compactions.

One compaction per collection per batch (it applies every pending delta, not
just the notified ones), then each record is judged on its own: applied now,
applied earlier, or gone = success; rejected, not reached, or its collection's
compaction failed = that record fails (SQS partial batch response).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from storekeeper.compaction import CompactionResult, compact, rejection_reason, stale_collections
from storekeeper.errors import StoreError, ValidationError
from storekeeper.models.deltas import DeltaNotification
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.base import ObjectStore

DEFAULT_SWEEP_AGE_SECONDS = 300


class DeltaNotApplied(StoreError):
    """A notified delta is not (yet) in the published snapshot; the message says why."""


def parse_notification(body: str) -> DeltaNotification:
    """JSON body -> DeltaNotification; errors name the offending field."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValidationError("body", f"not valid JSON: {exc}") from None
    try:
        return DeltaNotification.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ValidationError(where, first["msg"], first.get("input")) from None


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
    """What happened per collection in one invocation."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def results(self) -> list[CompactionResult]:
        return [o for o in self.outcomes.values() if isinstance(o, CompactionResult)]

    def errors(self) -> dict[str, Exception]:
        return {c: o for c, o in self.outcomes.items() if isinstance(o, Exception)}


def compact_collections(
    store: ObjectStore,
    collections: Iterable[str],
    *,
    cache: SnapshotCache,
    remaining_ms: Callable[[], int] | None = None,
    expected_sha256: dict[str, str] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> Compactions:
    """One compaction per collection; a failure is recorded for that collection and the rest go on."""
    out = Compactions()
    for c in collections:
        try:
            out.outcomes[c] = compact(
                store, c, cache=cache, remaining_ms=remaining_ms, expected_sha256=expected_sha256
            )
        except Exception as exc:  # recorded per collection: its records fail, the others do not
            out.outcomes[c] = exc
            if on_error is not None:
                on_error(c, exc)
    return out


def compact_for_notifications(
    store: ObjectStore,
    bodies: Iterable[str],
    *,
    cache: SnapshotCache,
    remaining_ms: Callable[[], int] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> Compactions:
    """Parse what parses (bad bodies fail later, per record), then compact each collection named."""
    notes: list[DeltaNotification] = []
    for body in bodies:
        try:
            notes.append(parse_notification(body))
        except ValidationError:
            continue
    collections = sorted({n.collection for n in notes})
    shas = {n.delta_id: n.sha256 for n in notes}
    return compact_collections(
        store, collections, cache=cache, remaining_ms=remaining_ms, expected_sha256=shas, on_error=on_error
    )


def judge(store: ObjectStore, note: DeltaNotification, compactions: Compactions) -> str:
    """Return how the record's delta was handled, or raise naming why it is not applied."""
    outcome = compactions.outcomes.get(note.collection)
    did = note.delta_id
    if outcome is None:
        raise DeltaNotApplied(
            store.url, note.delta_key, "its collection was not compacted in this invocation"
        )
    if isinstance(outcome, Exception):
        raise DeltaNotApplied(
            store.url,
            note.delta_key,
            f"compaction of {note.collection} failed: {type(outcome).__name__}: {outcome}",
        )
    if did in outcome.rejected:
        raise DeltaNotApplied(store.url, note.delta_key, f"rejected: {outcome.rejected[did]}")
    if did in outcome.pending:
        raise DeltaNotApplied(
            store.url, note.delta_key, "not applied yet: compaction stopped early (time budget)"
        )
    if did in outcome.mismatched:
        raise DeltaNotApplied(store.url, note.delta_key, f"bad message: {outcome.mismatched[did]}")
    if did in outcome.applied:
        return "applied"
    if did in outcome.already_applied:
        return "already_applied"
    reason = rejection_reason(store, note.collection, did)
    if reason is not None:
        raise DeltaNotApplied(store.url, note.delta_key, f"rejected earlier: {reason}")
    return "already_applied"  # no longer pending and not rejected: applied and removed by an earlier run


def sweep(
    store: ObjectStore,
    *,
    min_age_seconds: int,
    cache: SnapshotCache,
    remaining_ms: Callable[[], int] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> Compactions:
    """Compact every collection that has a delta pending for longer than `min_age_seconds`."""
    return compact_collections(
        store,
        stale_collections(store, min_age_seconds),
        cache=cache,
        remaining_ms=remaining_ms,
        on_error=on_error,
    )


def sqs_event(messages: Iterable[tuple[str, str]], queue_name: str = "DeltaQueue.fifo") -> dict[str, Any]:
    """An SQS Lambda event for (message_id, body) pairs, as the event source mapping sends it."""
    return {
        "Records": [
            {
                "messageId": mid,
                "receiptHandle": f"local-{mid}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "local"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
                "awsRegion": "us-east-1",
            }
            for mid, body in messages
        ]
    }


def failed_ids(response: Any) -> set[str]:
    """Message ids a partial batch response reports as failed."""
    if not isinstance(response, dict):
        return set()
    return {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
