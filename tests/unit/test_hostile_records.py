"""An event whose `Records` is not a list of records, run through each handler as Lambda would.

Absent or `[]` is no records; anything else that is not a list of record objects is a
ValidationError naming `Records` (or `Records[i]...`) and why: never a traceback (Powertools'
UnexpectedBatchTypeError, a KeyError, a TypeError) and never an empty batch that silently succeeds.
A record that cannot be reported (no message id) cannot fail alone, so the whole event is refused;
one that can fails alone and the rest of the batch goes on.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storekeeper.runtime import InvocationResult, invoke

HANDLERS = ("producer", "cleanup", "compactor")
SQS_HANDLERS = ("cleanup", "compactor")
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"file://{tmp_path_factory.mktemp('hostile')}/store"


def run(function: str, event: Any, store_url: str) -> InvocationResult:
    return invoke(function, event, store=store_url)


@pytest.mark.parametrize("function", HANDLERS)
@pytest.mark.parametrize("records", [{"a": 1}, {}, "abc", "", 7, 0, 1.5, True, None])
def test_records_that_are_not_a_list_are_a_clear_error(function: str, records: Any, store_url: str) -> None:
    result = run(function, {"Records": records}, store_url)
    assert (result.error_type, result.error_message) == (
        "ValidationError",
        f"Records: must be a list of records, not {kind(records)}",
    )


@pytest.mark.parametrize("function", HANDLERS)
def test_a_record_that_is_not_an_object_is_named(function: str, store_url: str) -> None:
    result = run(function, {"Records": [[], 3]}, store_url)
    assert (result.error_type, result.error_message) == (
        "ValidationError",
        "Records[0]: must be a record object, not list",
    )


@pytest.mark.parametrize("function", SQS_HANDLERS)
@pytest.mark.parametrize(
    ("record", "got"),
    [({}, "null"), ({"body": "{}"}, "null"), ({"messageId": 5}, "int"), ({"messageId": ""}, "str")],
)
def test_an_sqs_record_without_a_message_id_is_named(
    function: str, record: dict[str, Any], got: str, store_url: str
) -> None:
    """It cannot be reported in batchItemFailures, so the event is refused (was a KeyError traceback)."""
    result = run(function, {"Records": [{"messageId": "ok", "body": "{}"}, record]}, store_url)
    assert (result.error_type, result.error_message) == (
        "ValidationError",
        f"Records[1].messageId: must be a non-empty string, not {got}",
    )


@pytest.mark.parametrize("function", SQS_HANDLERS)
def test_an_sqs_record_without_a_body_fails_alone(function: str, store_url: str) -> None:
    """It has its message id: it fails alone (was a KeyError for the whole batch), the rest goes on."""
    result = run(
        function, {"Records": [{"messageId": "no-body"}, {"messageId": "junk", "body": "x"}]}, store_url
    )
    assert result.ok, result.error_message
    assert result.response == {
        "batchItemFailures": [{"itemIdentifier": "no-body"}, {"itemIdentifier": "junk"}]
    }


@pytest.mark.parametrize(
    ("function", "event", "answer"),
    [
        ("producer", {"Records": []}, {"statusCode": 200, "records": {}}),
        *[(f, e, {"batchItemFailures": []}) for f in SQS_HANDLERS for e in ({"Records": []}, {}, {"x": 1})],
    ],
)
def test_no_records_is_an_empty_batch(
    function: str, event: dict[str, Any], answer: Any, store_url: str
) -> None:
    result = run(function, event, store_url)
    assert result.ok, result.error_message
    assert result.response == answer


@pytest.mark.slow  # hypothesis, 3 handlers x 60 events
@settings(max_examples=60, deadline=None)
@given(records=JSON.filter(lambda v: not isinstance(v, list)))
def test_any_records_value_that_is_not_a_list_is_named(records: Any, store_url: str) -> None:
    for function in HANDLERS:
        result = run(function, {"Records": records}, store_url)
        assert result.error_type == "ValidationError", (function, result.error_message)
        assert result.error_message == f"Records: must be a list of records, not {kind(records)}"


MESSAGE_IDS = st.none() | st.integers() | st.just("") | st.text(alphabet="abc-", min_size=1, max_size=4)
SQS_RECORDS = st.lists(
    st.fixed_dictionaries({}, optional={"messageId": MESSAGE_IDS, "body": SCALARS}) | SCALARS,
    max_size=4,
)


@pytest.mark.slow  # hypothesis, 2 handlers x 80 events
@settings(max_examples=80, deadline=None)
@given(records=SQS_RECORDS)
def test_any_list_of_sqs_records_is_a_clear_error_or_each_record_answered(
    records: list[Any], store_url: str
) -> None:
    """The first record that is not an object or has no message id is named; otherwise every
    record is answered on its own (these bodies are never a valid task or notification)."""
    for function in SQS_HANDLERS:
        result = run(function, {"Records": records}, store_url)
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                assert result.error_message == f"Records[{i}]: must be a record object, not {kind(r)}"
                break
            mid = r.get("messageId")
            if not isinstance(mid, str) or not mid:
                assert (
                    result.error_message
                    == f"Records[{i}].messageId: must be a non-empty string, not {kind(mid)}"
                )
                break
        else:
            assert result.ok, (function, result.error_type, result.error_message)
            failed = [f["itemIdentifier"] for f in result.response["batchItemFailures"]]
            assert failed == [r["messageId"] for r in records], json.dumps(records)
