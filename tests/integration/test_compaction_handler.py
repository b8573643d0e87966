"""The compactor handler end to end (Powertools batch, real chromadb): duplicates, bad input, sweep."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from storekeeper import config
from storekeeper.deltas import list_pending
from storekeeper.runtime import failed_ids, invoke, sqs_event
from storekeeper.snapshots import read_pointer
from storekeeper.stores.local import LocalStore
from tests.compaction_support import (
    assert_same_state,
    delta,
    model_state,
    nan_delta_bytes,
    produce,
    snapshot_state,
    vec,
    version_chain,
)

DIM = 8


def run(store: LocalStore, tmp_path: Path, event: dict, **env: str) -> dict:
    env = {config.COMPACTOR_CACHE_DIR: str(tmp_path / "lambda-cache"), **env}
    res = invoke("compactor", event, store=store.url, env=env)
    assert res.ok, res.to_json()
    return res.response


def test_duplicate_messages_do_no_double_work(store: LocalStore, tmp_path: Path) -> None:
    d1 = delta("docs", {"x": vec(1, DIM)})
    d2 = delta("docs", deletes=["x"])  # applying d1 again after d2 would resurrect x
    n1, n2 = produce(store, d1), produce(store, d2)
    b1, b2 = n1.model_dump_json(), n2.model_dump_json()
    # the same message twice in one batch
    resp = run(store, tmp_path, sqs_event([("m1", b1), ("m1-dup", b1), ("m2", b2)]))
    assert resp == {"batchItemFailures": []}
    chain = version_chain(store, "docs")
    assert len(chain) == 1
    assert chain[0].deltas == [d1.delta_id, d2.delta_id]
    # and again in a later batch: a no-op success, nothing new published
    resp = run(store, tmp_path, sqs_event([("m1-later", b1), ("m2-later", b2)]))
    assert resp == {"batchItemFailures": []}
    assert len(version_chain(store, "docs")) == 1
    assert snapshot_state(store, "docs", tmp_path / "rc") == {}


def test_bad_records_fail_alone_and_the_rest_is_published(store: LocalStore, tmp_path: Path) -> None:
    good = delta("docs", {"a": vec(1, DIM)})
    good_other = delta("other", {"b": vec(2, DIM)})
    wrong_dim = delta("docs", {"w": vec(3, DIM + 3)})
    corrupt = delta("docs", {"c": vec(4, DIM)})
    n_good, n_other = produce(store, good), produce(store, good_other)
    n_wrong = produce(store, wrong_dim)
    n_corrupt = produce(store, corrupt)
    store.put(corrupt.key, b"SKDL" + os.urandom(80))  # the blob got damaged after the notification
    nan_key, nan_blob = nan_delta_bytes("docs", DIM)
    store.put(nan_key, nan_blob)
    nan_note = n_good.model_copy(update={"delta_key": nan_key})  # sha256 is the good one's: also a mismatch
    malformed = json.dumps({"collection": "docs", "delta_key": "delta/docs/../../etc.delta"})
    lying = delta("docs", {"l": vec(5, DIM)})
    n_lying = produce(store, lying).model_copy(
        update={"sha256": "f" * 64}
    )  # the message is bad, not the delta

    event = sqs_event(
        [
            ("ok", n_good.model_dump_json()),
            ("ok-other", n_other.model_dump_json()),
            ("wrong-dim", n_wrong.model_dump_json()),
            ("corrupt", n_corrupt.model_dump_json()),
            ("nan", nan_note.model_dump_json()),
            ("malformed", malformed),
            ("not-json", "{nope"),
            ("lying", n_lying.model_dump_json()),
        ]
    )
    resp = run(store, tmp_path, event)
    # quarantined deltas' records succeed (quarantine is their dead letter); bad messages fail
    assert failed_ids(resp) == {"malformed", "not-json", "lying"}
    assert_same_state(snapshot_state(store, "docs", tmp_path / "r1"), model_state([good, lying]))
    assert_same_state(snapshot_state(store, "other", tmp_path / "r2"), model_state([good_other]))
    assert list_pending(store, "docs") == []  # bad ones quarantined, good one removed
    assert store.exists(f"delta-rejected/docs/{wrong_dim.delta_id}.delta")
    # a redelivery of a quarantined delta's message succeeds too: it cannot change anything
    resp = run(store, tmp_path, sqs_event([("wrong-dim-again", n_wrong.model_dump_json())]))
    assert failed_ids(resp) == set()


def test_errors_name_the_field(tmp_path: Path) -> None:
    from storekeeper.compactor import parse_notification
    from storekeeper.errors import ValidationError

    with pytest.raises(ValidationError, match=r"^body: not valid JSON"):
        parse_notification("{nope")
    with pytest.raises(ValidationError, match=r"^delta_key: Field required"):
        parse_notification(json.dumps({"collection": "docs", "sha256": "0" * 64}))
    with pytest.raises(ValidationError, match=r"^collection: "):
        parse_notification(
            json.dumps(
                {
                    "collection": "../x",
                    "delta_key": "delta/x/1.delta",
                    "sha256": "0" * 64,
                    "upserts": 1,
                    "deletes": 0,
                    "created_at": "2024-01-01T00:00:00Z",
                }
            )
        )


def test_sweep_compacts_collections_with_old_pending_deltas(store: LocalStore, tmp_path: Path) -> None:
    d = delta("swept", {"a": vec(1, DIM)})
    produce(store, d)  # its notification was lost
    os.utime(store.path / d.key, (0, 1_000_000))
    resp = run(store, tmp_path, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    assert resp["collections"]["swept"]["status"] == "published"
    assert resp["failed"] == []
    assert_same_state(snapshot_state(store, "swept", tmp_path / "rc"), model_state([d]))


def test_missing_pointer_target_fails_records_and_emits_the_metric(
    store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    produce(store, delta("docs", {"a": vec(1, DIM)}))
    run(store, tmp_path, {"sweep": True}, COMPACTOR_SWEEP_AGE_SECONDS="0")
    assert read_pointer(store, "docs")[0] is not None
    version, _ = read_pointer(store, "docs")
    store.delete(f"snapshot/docs/{version}/manifest.json")
    pointer = store.get("snapshot/docs/latest/pointer.txt").body
    n = produce(store, delta("docs", {"b": vec(2, DIM)}))
    capsys.readouterr()
    resp = run(store, tmp_path, sqs_event([("m", n.model_dump_json())]))
    assert failed_ids(resp) == {"m"}
    assert (
        store.get("snapshot/docs/latest/pointer.txt").body == pointer
    )  # never "repaired" by an empty publish
    assert len(list_pending(store, "docs")) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err  # `invoke` sends the handler's stdout (EMF) to stderr
    emf = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    counts = [e.get("PointerTargetMissing") for e in emf]
    assert [1.0] in counts or 1.0 in counts, out


def _log_lines(capfd: pytest.CaptureFixture[str]) -> list[dict]:
    captured = capfd.readouterr()
    out = captured.out + captured.err  # `invoke` sends the handler's stdout to stderr
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _metric(lines: list[dict], name: str) -> float:
    total = 0.0
    for e in lines:
        if "_aws" in e and name in e:
            v = e[name]
            total += sum(v) if isinstance(v, list) else v
    return total


def test_each_failed_record_logs_once_at_error_with_message_id_field_and_reason(
    store: LocalStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = produce(store, delta("docs", {"a": vec(1, DIM)}))
    no_sha = json.dumps({"collection": "docs", "delta_key": good.delta_key})
    caplog.clear()
    resp = run(
        store, tmp_path, sqs_event([("ok", good.model_dump_json()), ("no-sha", no_sha), ("junk", "[1,")])
    )
    assert failed_ids(resp) == {"no-sha", "junk"}
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    by_id = {r.message_id: r for r in errors}  # type: ignore[attr-defined]
    assert len(errors) == 2, errors  # once each, nothing for "ok"
    assert set(by_id) == {"no-sha", "junk"}
    assert (by_id["no-sha"].field, by_id["no-sha"].reason) == ("sha256", "Field required")  # type: ignore[attr-defined]
    assert by_id["junk"].field == "body"  # type: ignore[attr-defined]
    assert by_id["junk"].reason.startswith("not valid JSON")  # type: ignore[attr-defined]


def test_two_notifications_of_one_delta_only_the_wrong_sha256_fails_also_on_redelivery(
    store: LocalStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = delta("docs", {"a": vec(1, DIM)})
    right = produce(store, d)
    wrong = right.model_copy(update={"sha256": "e" * 64})
    for first, second in ((right, wrong), (wrong, right)):  # whichever comes first in the batch
        caplog.clear()
        resp = run(
            store, tmp_path, sqs_event([("m-a", first.model_dump_json()), ("m-b", second.model_dump_json())])
        )
        bad = "m-b" if second is wrong else "m-a"
        assert failed_ids(resp) == {bad}
        (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
        assert (line.message_id, line.field) == (bad, "sha256")  # type: ignore[attr-defined]
        assert "eeeeeeeeeeee" in line.reason  # type: ignore[attr-defined]
        if first is right:
            assert list_pending(store, "docs") == []  # applied and removed by the first batch
            produce(store, delta("docs", {"later": vec(2, DIM)}))  # a newer version on top of it
            run(store, tmp_path, {"sweep": True}, COMPACTOR_SWEEP_AGE_SECONDS="0")
    # redelivered alone, long after its delta was applied and removed: still judged by the sha256
    # the manifest recorded, so the wrong one keeps failing and the right one keeps succeeding
    resp = run(store, tmp_path, sqs_event([("again-wrong", wrong.model_dump_json())]))
    assert failed_ids(resp) == {"again-wrong"}
    resp = run(store, tmp_path, sqs_event([("again-right", right.model_dump_json())]))
    assert failed_ids(resp) == set()
    assert_same_state(
        snapshot_state(store, "docs", tmp_path / "rc"),
        {"a": vec(1, DIM), "later": vec(2, DIM)},
    )


def test_quarantined_and_already_applied_records_succeed_and_are_counted(
    store: LocalStore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ok = produce(store, delta("docs", {"a": vec(1, DIM)}))
    bad = produce(store, delta("docs", {"w": vec(3, DIM + 1)}))
    run(store, tmp_path, sqs_event([("ok", ok.model_dump_json()), ("bad", bad.model_dump_json())]))
    capfd.readouterr()
    resp = run(store, tmp_path, sqs_event([("ok-2", ok.model_dump_json()), ("bad-2", bad.model_dump_json())]))
    assert failed_ids(resp) == set()
    lines = _log_lines(capfd)
    assert _metric(lines, "DeltasAlreadyApplied") == 1
    assert _metric(lines, "DeltasQuarantined") == 1
    assert _metric(lines, "BadMessages") == 0


def test_coalesced_records_succeed_and_the_sweep_applies_their_deltas(
    store: LocalStore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A collection published moments ago is not published again for each batch: its records
    succeed (the group is not frozen) and the sweep collects the deltas."""
    first = delta("docs", {"a": vec(1, DIM)})
    run(store, tmp_path, sqs_event([("m1", produce(store, first).model_dump_json())]))
    assert len(version_chain(store, "docs")) == 1
    second = delta("docs", {"b": vec(2, DIM)})
    capfd.readouterr()
    resp = run(store, tmp_path, sqs_event([("m2", produce(store, second).model_dump_json())]),
               COMPACTOR_MIN_INTERVAL_SECONDS="3600")  # fmt: skip
    assert failed_ids(resp) == set()
    assert _metric(_log_lines(capfd), "DeltasLeftToSweep") == 1
    assert len(version_chain(store, "docs")) == 1  # coalesced: nothing new published
    assert len(list_pending(store, "docs")) == 1
    out = run(store, tmp_path, {"sweep": True}, COMPACTOR_SWEEP_AGE_SECONDS="0",
              COMPACTOR_MIN_INTERVAL_SECONDS="3600")  # fmt: skip
    assert out["collections"]["docs"]["status"] == "published"
    assert list_pending(store, "docs") == []
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state([first, second]))


def test_sweep_reports_pending_deltas_and_their_oldest_age(
    store: LocalStore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    d = delta("slow", {"a": vec(1, DIM)})
    produce(store, d)
    produce(store, delta("fresh", {"b": vec(2, DIM)}))
    os.utime(store.path / d.key, (0, 1_000_000))  # 1970: very old
    capfd.readouterr()
    out = run(store, tmp_path, {"sweep": True}, COMPACTOR_SWEEP_AGE_SECONDS="3600")
    assert out["pending"] == 2
    assert out["oldest_pending_age_s"] > 1e9
    assert sorted(out["collections"]) == ["slow"]  # only the stale collection was compacted
    lines = _log_lines(capfd)
    assert _metric(lines, "PendingDeltas") == 2
    assert _metric(lines, "OldestPendingDeltaAge") > 1e9
