"""SQS record bodies for the compactor and cleanup: whatever arrives, the record models give either the
exact message or a pydantic error that `record_failure` turns into one line naming the message id,
a field and a reason - never a traceback, never a silently changed value."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.batch import RecordFailed, record_failure, record_shell
from storekeeper.cleanup import CleanupTaskRecord
from storekeeper.compactor import DeltaNotificationRecord

GOOD_NOTE = {
    "collection": "docs",
    "delta_key": "delta/docs/1700000000000-abcdef.delta",
    "sha256": "a" * 64,
    "upserts": 1,
    "deletes": 0,
    "created_at": "2024-01-01T00:00:00Z",
}
GOOD_TASK = {
    "task_id": "t-1",
    "action": "delete_objects",
    "backend": "s3",
    "bucket": "some-bucket",
    "keys": ["a/b"],
    "policy": "p",
    "reason": "r",
    "planned_at": "2024-01-01T00:00:00Z",
}

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[str]:
    """The good message with fields dropped, replaced by junk, or junk fields added; or raw text."""
    edits = st.dictionaries(st.sampled_from([*base, "extra"]), junk | st.just("__drop__"), max_size=3)

    def apply(e: dict[str, Any]) -> str:
        out = {k: v for k, v in base.items() if e.get(k) != "__drop__"}
        out.update({k: v for k, v in e.items() if v != "__drop__"})
        return json.dumps(out)

    return edits.map(apply) | st.text(max_size=60) | junk.map(json.dumps)


def _check(model: type[pydantic.BaseModel], body: str, good: dict[str, Any]) -> None:
    try:
        rec = model.model_validate(record_shell(body, "m-1"))
    except pydantic.ValidationError as exc:
        line = record_failure(None, exc) | {"message_id": "m-1"}
        assert line["field"]
        assert line["reason"]
        assert isinstance(line["field"], str)
        return
    parsed = rec.body.model_dump(mode="json")  # type: ignore[attr-defined]
    sent = json.loads(body)
    for k, v in sent.items():  # nothing silently changed: every field the body gave comes out equal
        if k in parsed and k != "created_at" and k != "planned_at":
            assert parsed[k] == v, (k, v, parsed[k])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(GOOD_NOTE))
def test_notification_bodies_parse_exactly_or_fail_naming_a_field(body: str) -> None:
    _check(DeltaNotificationRecord, body, GOOD_NOTE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(GOOD_TASK))
def test_cleanup_task_bodies_parse_exactly_or_fail_naming_a_field(body: str) -> None:
    _check(CleanupTaskRecord, body, GOOD_TASK)


def test_the_good_messages_parse_and_failures_name_their_field() -> None:
    note = DeltaNotificationRecord.model_validate(record_shell(json.dumps(GOOD_NOTE))).body
    assert note.delta_id == "1700000000000-abcdef"
    with pytest.raises(pydantic.ValidationError) as info:
        DeltaNotificationRecord.model_validate(record_shell(json.dumps({**GOOD_NOTE, "upserts": -1})))
    assert record_failure(None, info.value)["field"] == "upserts"
    line = record_failure(None, RecordFailed("sha256", "does not match"))
    assert (line["field"], line["reason"]) == ("sha256", "does not match")
