"""Producer: validation before any write, chunking, notification failures, idempotent retries."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storekeeper.deltas import DeltaContent, encode_delta, list_pending, new_delta_id, read_delta, write_delta
from storekeeper.errors import ValidationError
from storekeeper.idempotency import StorePersistenceLayer
from storekeeper.models.deltas import DeltaNotification
from storekeeper.producer import (
    PutResult,
    RequestIdReused,
    parse_jsonl,
    parse_put_request,
    plan_deltas,
    put,
)
from storekeeper.queues import LocalQueue, OutgoingMessage, Queue, QueueSendError, ReceivedMessage
from storekeeper.stores.local import LocalStore
from tests.s3_events import object_created

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue(tmp_path: Path) -> LocalQueue:
    return LocalQueue(tmp_path / "queue")


def keys(store: LocalStore) -> list[str]:
    return [o.key for o in store.list("")]


def request(n: int = 3, dim: int = 4, collection: str = "docs", **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    return {
        "collection": collection,
        "upserts": [
            {"id": f"id-{i}", "embedding": rng.standard_normal(dim).tolist(), "metadata": {"i": i}}
            for i in range(n)
        ],
        **extra,
    }


def _seed_dimension(store: LocalStore, dim: int) -> None:
    seed = DeltaContent(
        "docs",
        new_delta_id(),
        datetime.now(UTC),
        ["seed"],
        np.ones((1, dim), dtype=np.float32),
        [None],
        [None],
    )
    write_delta(store, seed)


# -- bad input: clear error naming the field, nothing written ------------------------------
BAD_REQUESTS = [
    ({**request(), "collection": "../etc"}, "collection"),
    ({**request(), "collection": "docs/x"}, "collection"),
    ({**request(), "collection": "Docs"}, "collection"),
    (
        {"collection": "docs", "upserts": [{"id": "a", "embedding": [1.0, float("nan")]}]},
        "upserts[0].embedding[1]",
    ),
    (
        {
            "collection": "docs",
            "upserts": [{"id": "a", "embedding": [1.0]}, {"id": "b", "embedding": [float("inf")]}],
        },
        "upserts[1].embedding[0]",
    ),
    (
        {"collection": "docs", "upserts": [{"id": "a", "embedding": [1.0]}, {"id": "a", "embedding": [2.0]}]},
        "request",
    ),
    (
        {"collection": "docs", "upserts": [{"id": "a", "embedding": [1.0], "metadata": {"k": "x" * 20000}}]},
        "upserts[0].metadata",
    ),
    (
        {
            "collection": "docs",
            "upserts": [{"id": "a", "embedding": [1.0, 2.0]}, {"id": "b", "embedding": [1.0]}],
        },
        "request",
    ),
    ({"collection": "docs", "upserts": [{"id": "a", "embedding": [1e39]}]}, "upserts[0].embedding[0]"),
    ({"collection": "docs", "upserts": [{"id": "a", "embedding": [1.0], "extra": 1}]}, "upserts[0].extra"),
    ({"collection": "docs"}, "request"),
]


@pytest.mark.parametrize(("event", "field"), BAD_REQUESTS)
def test_bad_request_is_rejected_naming_the_field_and_writes_nothing(
    event: dict[str, Any], field: str, store: LocalStore, queue: LocalQueue
) -> None:
    with pytest.raises(ValidationError) as info:
        put(parse_put_request(event), store=store, queue=queue)
    assert info.value.field == field, info.value
    assert keys(store) == []
    assert len(queue) == 0


def test_wrong_dimension_vs_pending_delta_is_rejected(store: LocalStore, queue: LocalQueue) -> None:
    _seed_dimension(store, 8)
    before = keys(store)
    with pytest.raises(ValidationError) as info:
        put(parse_put_request(request(dim=4)), store=store, queue=queue)
    assert "collection 'docs' has 8" in str(info.value)
    assert keys(store) == before
    assert len(queue) == 0


def test_wrong_dimension_vs_live_snapshot_is_rejected(store: LocalStore, queue: LocalQueue) -> None:
    manifest = {
        "collection": "docs",
        "version": "000000000001-abcdefgh",
        "parent": None,
        "archive": "chroma.tar",
        "sha256": "0" * 64,
        "size": 1,
        "dimension": 16,
        "record_count": 1,
        "deltas": [],
        "created_at": "2024-01-01T00:00:00Z",
    }
    store.put("snapshot/docs/000000000001-abcdefgh/manifest.json", json.dumps(manifest).encode())
    store.put("snapshot/docs/latest/pointer.txt", b"snapshot/docs/000000000001-abcdefgh/\n")
    _seed_dimension(store, 4)  # the snapshot wins over pending deltas
    before = keys(store)
    with pytest.raises(ValidationError, match="has 16 \\(snapshot 000000000001-abcdefgh\\)"):
        put(parse_put_request(request(dim=4)), store=store, queue=queue)
    assert keys(store) == before
    put(parse_put_request(request(dim=16)), store=store, queue=queue)
    assert len(keys(store)) == len(before) + 2  # the delta and the collection's config


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        (['{"id": "a", "embedding": [1, 2]}', "{not json"], "line 2"),
        (['{"id": "a", "embedding": [1, 2]}', '{"id": "b", "embedding": [1]}'], "line 2: embedding"),
        (['{"id": "a", "embedding": [1, 2]}', "", '{"id": "a", "embedding": [3, 4]}'], "line 3: id"),
        (['{"id": "a", "embedding": [1, "x"]}'], "line 1: embedding[1]"),
        (['{"delete": "a", "id": "b"}'], "line 1"),
        (['{"id": "a", "embedding": [1]}', '{"delete": "a"}'], "line 2: delete"),
        (["[1, 2]"], "line 1"),
        (["", "  "], "file"),
    ],
)
def test_malformed_jsonl_names_the_line(lines: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_jsonl("docs", lines)
    assert info.value.field == field


def test_jsonl_upserts_and_deletes() -> None:
    req = parse_jsonl("docs", [b'{"id": "a", "embedding": [1, 2], "document": "hi"}', b'{"delete": "z"}'])
    assert [r.id for r in req.upserts] == ["a"]
    assert req.upserts[0].document == "hi"
    assert req.deletes == ["z"]


# -- chunking ------------------------------------------------------------------------------
def test_big_request_is_chunked_by_count_in_order(store: LocalStore, queue: LocalQueue) -> None:
    ev = request(n=2300, dim=4)
    ev["deletes"] = ["old-1", "old-2"]
    out = put(parse_put_request(ev), store=store, queue=queue)
    assert [d.upserts for d in out.deltas] == [1000, 1000, 300]
    assert [d.deletes for d in out.deltas] == [0, 0, 2]
    pending = list_pending(store, "docs")
    assert [p.key for p in pending] == [d.delta_key for d in out.deltas]
    ids = [i for p in pending for i in read_delta(store, p.key).ids]
    assert ids == [f"id-{i}" for i in range(2300)]
    assert out.upserts == 2300
    assert out.notified is True
    assert len(queue) == 3


def test_chunking_by_bytes() -> None:
    req = parse_put_request(request(n=10, dim=256))  # ~1 KB per vector
    chunks = plan_deltas(req, max_bytes=3000)
    assert [len(c.ids) for c in chunks] == [2] * 5
    assert all(len(encode_delta(c)) <= 3000 + 400 for c in chunks)


# -- notifications -------------------------------------------------------------------------
class FailingQueue(Queue):
    """A queue that refuses some messages, the way SQS reports partial batch failures."""

    url = "test://failing"

    def __init__(self, fail_all: bool = True) -> None:
        self.fail_all = fail_all
        self.sent: list[OutgoingMessage] = []

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.fail_all:
            raise QueueSendError(self.url, dict.fromkeys(range(len(messages)), "ServiceUnavailable"))
        self.sent.extend(messages[1:])
        raise QueueSendError(self.url, {0: "Throttled"})

    def receive(self, max_messages: int = 10) -> list[ReceivedMessage]:
        return []

    def ack(self, message: ReceivedMessage) -> None:
        return None


@pytest.mark.parametrize("fail_all", [True, False])
def test_failed_notification_loses_nothing_and_does_not_raise(store: LocalStore, fail_all: bool) -> None:
    q = FailingQueue(fail_all)
    out = put(parse_put_request(request(n=1500, dim=2)), store=store, queue=q)
    assert out.notified is False
    written = [d.delta_key for d in out.deltas]
    assert [p.key for p in list_pending(store, "docs")] == written
    assert out.failed_notifications == (written if fail_all else written[:1])


def test_notifications_are_valid_messages(store: LocalStore, queue: LocalQueue) -> None:
    out = put(parse_put_request(request()), store=store, queue=queue)
    [msg] = queue.receive()
    note = DeltaNotification.model_validate_json(msg.body)
    assert note.delta_key == out.deltas[0].delta_key
    assert msg.group_id == "docs"
    assert read_delta(store, note.delta_key, expected_sha256=note.sha256).ids == ["id-0", "id-1", "id-2"]


# -- idempotency (store-backed) ----------------------------------------------------------------
def test_retry_with_same_request_id_writes_nothing_new(store: LocalStore, queue: LocalQueue) -> None:
    layer = StorePersistenceLayer(store, "producer")
    req = parse_put_request(request(request_id="req-1"))
    first = put(req, store=store, queue=queue, persistence=layer)
    deltas = [p.key for p in list_pending(store, "docs")]
    second = put(parse_put_request(request(request_id="req-1")), store=store, queue=queue, persistence=layer)
    assert second == first
    assert [p.key for p in list_pending(store, "docs")] == deltas
    assert len(queue) == 1
    assert len(list(store.list("idempotency/producer/"))) == 1
    # a different request id is a new request
    put(parse_put_request(request(request_id="req-2")), store=store, queue=queue, persistence=layer)
    assert len(list_pending(store, "docs")) == 2
    # without request_id nothing is deduplicated
    put(parse_put_request(request()), store=store, queue=queue, persistence=layer)
    put(parse_put_request(request()), store=store, queue=queue, persistence=layer)
    assert len(list_pending(store, "docs")) == 4


def test_reused_request_id_with_other_payload_is_refused(store: LocalStore, queue: LocalQueue) -> None:
    layer = StorePersistenceLayer(store, "producer")
    put(parse_put_request(request(n=2, request_id="r")), store=store, queue=queue, persistence=layer)
    with pytest.raises(RequestIdReused) as info:
        put(parse_put_request(request(n=3, request_id="r")), store=store, queue=queue, persistence=layer)
    assert info.value.field == "request_id"
    assert len(list_pending(store, "docs")) == 1


def test_failed_put_clears_the_record_so_a_retry_runs(store: LocalStore, queue: LocalQueue) -> None:
    layer = StorePersistenceLayer(store, "producer")
    _seed_dimension(store, 8)
    with pytest.raises(ValidationError):
        put(parse_put_request(request(dim=4, request_id="r")), store=store, queue=queue, persistence=layer)
    assert list(store.list("idempotency/")) == []


def test_concurrent_identical_requests_write_one_set_of_deltas(store: LocalStore, queue: LocalQueue) -> None:
    layer = StorePersistenceLayer(store, "producer")
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def call() -> None:
        barrier.wait()
        try:
            results.append(
                put(
                    parse_put_request(request(n=50, request_id="same")),
                    store=store,
                    queue=queue,
                    persistence=layer,
                )
            )
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    assert all(isinstance(r, PutResult) for r in results), results  # none refused as "in progress"
    assert {tuple(d.delta_key for d in r.deltas) for r in results} == {(list_pending(store, "docs")[0].key,)}
    assert len(list_pending(store, "docs")) == 1  # the same key, rewritten create-only
    assert 1 <= len(queue) <= 6  # duplicates carry the delta id as FIFO dedup id


def test_expired_record_lets_the_request_run_again(store: LocalStore, queue: LocalQueue) -> None:
    layer = StorePersistenceLayer(store, "producer")
    put(parse_put_request(request(request_id="old")), store=store, queue=queue, persistence=layer)
    [rec] = list(store.list("idempotency/producer/"))
    data = json.loads(store.get(rec.key).body)
    assert data["status"] == "COMPLETED"
    data["expiry_timestamp"] = 1  # long ago
    store.put(rec.key, json.dumps(data).encode())
    put(parse_put_request(request(request_id="old")), store=store, queue=queue, persistence=layer)
    assert len(list_pending(store, "docs")) == 1  # ran again from its plan: the same delta, not a copy
    assert json.loads(store.get(rec.key).body)["expiry_timestamp"] > 1


def test_in_progress_record_never_blocks_a_retry(store: LocalStore, queue: LocalQueue) -> None:
    """A put killed part-way leaves its record in progress: a retry completes from the same plan."""
    layer = StorePersistenceLayer(store, "producer")
    put(parse_put_request(request(request_id="crash")), store=store, queue=queue, persistence=layer)
    [rec] = list(store.list("idempotency/producer/"))
    data = json.loads(store.get(rec.key).body)
    for in_progress_until in (1000, 10**15):  # the dead run's deadline past, or still ahead
        data.update(status="INPROGRESS", response_data="", in_progress_expiry_timestamp=in_progress_until)
        store.put(rec.key, json.dumps(data).encode())
        out = put(parse_put_request(request(request_id="crash")), store=store, queue=queue, persistence=layer)
        assert [d.delta_key for d in out.deltas] == [p.key for p in list_pending(store, "docs")]
    assert len(list_pending(store, "docs")) == 1


# -- the handler -----------------------------------------------------------------------------
def _invoke(event: Any, store: LocalStore, tmp_path: Path) -> Any:
    from storekeeper.runtime import invoke

    return invoke(
        "producer", event, root=REPO, store=store.url, env={"DELTA_QUEUE_URL": f"file://{tmp_path}/q"}
    )


def test_handler_direct_invoke_and_bad_request(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    bad = _invoke({"collection": "docs", "upserts": [{"id": "a", "embedding": [1, None]}]}, store, tmp_path)
    assert bad.ok, bad.to_json()
    assert bad.response["statusCode"] == 400
    assert bad.response["error"] == "ValidationError"
    assert bad.response["field"] == "upserts[0].embedding[1]"
    assert keys(store) == []
    ok = _invoke(request(request_id="h-1"), store, tmp_path)
    assert ok.response["statusCode"] == 200, ok.to_json()
    again = _invoke(request(request_id="h-1"), store, tmp_path)
    assert again.response == ok.response
    assert len(list_pending(store, "docs")) == 1
    assert len(LocalQueue(tmp_path / "q")) == 1


def test_handler_answers_a_request_left_in_progress_by_running_it(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed run's record stays "in progress": the handler's retry completes from the plan (200 with
    the same delta), never a 409 "in progress" (put reruns it; nothing in the package refuses it)."""
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    first = _invoke(request(request_id="killed"), store, tmp_path)
    assert first.response["statusCode"] == 200, first.to_json()
    [rec] = list(store.list("idempotency/producer/"))
    data = json.loads(store.get(rec.key).body)
    data.update(status="INPROGRESS", response_data="", in_progress_expiry_timestamp=10**15)
    store.put(rec.key, json.dumps(data).encode())
    retry = _invoke(request(request_id="killed"), store, tmp_path)
    assert retry.response["statusCode"] == 200, retry.to_json()
    assert retry.response["deltas"] == first.response["deltas"]
    assert len(list_pending(store, "docs")) == 1


def _s3_event(*objects: tuple[str, str], etags: dict[str, str] | None = None) -> dict[str, Any]:
    return object_created(*((b, k, (etags or {}).get(k, "e1"), None) for b, k in objects))


def test_handler_s3_event_bad_file_does_not_block_the_others(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    good = "\n".join(json.dumps({"id": f"g{i}", "embedding": [i, 1.0]}) for i in range(3)) + "\n"
    tags = {
        "incoming/docs/good.jsonl": store.put("incoming/docs/good.jsonl", good.encode()),
        "incoming/docs/bad.jsonl": store.put(
            "incoming/docs/bad.jsonl", b'{"id": "a", "embedding": [1, 2]}\n{"id": "b"}\n'
        ),
    }
    event = _s3_event(
        ("bucket", "incoming/docs/bad.jsonl"),
        ("bucket", "incoming/docs/good.jsonl"),
        ("bucket", "elsewhere/x.jsonl"),
        ("bucket", "incoming/..%2Fetc/x.jsonl"),
        etags=tags,
    )
    res = _invoke(event, store, tmp_path)
    assert res.error_type == "S3RecordsFailed"
    assert "incoming/docs/bad.jsonl" in res.error_message
    assert "line 2: embedding" in res.error_message
    assert "elsewhere/x.jsonl" in res.error_message
    assert "incoming/../etc/x.jsonl" in res.error_message
    assert "incoming/docs/good.jsonl" not in res.error_message
    [pending] = list_pending(store, "docs")
    assert read_delta(store, pending.key).ids == ["g0", "g1", "g2"]
    assert not store.exists("incoming/docs/good.jsonl")  # processed: removed once its deltas were written
    assert store.exists("incoming/docs/bad.jsonl")  # refused: kept for the person who fixes it
    # Lambda's retry of the same event: the good file is gone (processed), nothing new is written
    again = _invoke(event, store, tmp_path)
    assert again.error_type == "S3RecordsFailed"
    assert len(list_pending(store, "docs")) == 1
    ok = _invoke(_s3_event(("bucket", "incoming/docs/good.jsonl"), etags=tags), store, tmp_path)
    assert ok.ok, ok.to_json()
    assert "already processed" in ok.response["records"]["bucket/incoming/docs/good.jsonl"]["skipped"]
    assert len(list_pending(store, "docs")) == 1


def test_two_quick_uploads_to_one_key_are_each_processed_once(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unversioned store: the first event's file was replaced before it ran; it must not process the
    second file (whose own event does), so nothing is ingested twice."""
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    key = "incoming/docs/batch.jsonl"
    first_tag = store.put(key, b'{"id": "one", "embedding": [1, 0]}\n')
    second_tag = store.put(key, b'{"id": "two", "embedding": [0, 1]}\n')
    r1 = _invoke(_s3_event(("bucket", key), etags={key: first_tag}), store, tmp_path)
    assert r1.ok, r1.to_json()
    assert "replaced" in r1.response["records"][f"bucket/{key}"]["skipped"]
    r2 = _invoke(_s3_event(("bucket", key), etags={key: second_tag}), store, tmp_path)
    assert r2.ok, r2.to_json()
    [pending] = list_pending(store, "docs")
    assert read_delta(store, pending.key).ids == ["two"]
    assert not store.exists(key)


def test_producer_does_not_import_chromadb() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(REPO / 'functions/producer/app.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert callable(m.handler)\n"
        "print('chromadb' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_pointer_to_a_missing_snapshot_stops_the_put(store: LocalStore, queue: LocalQueue) -> None:
    from storekeeper.errors import PointerTargetMissing

    store.put("snapshot/docs/latest/pointer.txt", b"snapshot/docs/000000000003-abcdefgh/")
    with pytest.raises(PointerTargetMissing):
        put(parse_put_request(request()), store=store, queue=queue)
    assert keys(store) == ["snapshot/docs/latest/pointer.txt"]
