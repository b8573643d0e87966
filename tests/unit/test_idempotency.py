"""The store-backed Powertools persistence layer: create-only records, expiry, take-over races."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from storekeeper.errors import ValidationError
from storekeeper.idempotency import StorePersistenceLayer
from storekeeper.stores.local import LocalStore


@pytest.fixture
def layer(tmp_path: Path) -> StorePersistenceLayer:
    return StorePersistenceLayer(LocalStore(tmp_path / "b"), "producer")


def _record(
    status: str = "INPROGRESS", expiry: int | None = None, in_progress: int | None = None
) -> DataRecord:
    return DataRecord(
        idempotency_key="fn#abc",
        status=status,
        expiry_timestamp=expiry if expiry is not None else int(time.time()) + 3600,
        in_progress_expiry_timestamp=in_progress,
    )


def test_record_key_layout_and_roundtrip(layer: StorePersistenceLayer) -> None:
    key = layer.record_key("fn#abc")
    assert key.startswith("idempotency/producer/")
    assert key.endswith(".json")
    with pytest.raises(IdempotencyItemNotFoundError):
        layer._get_record("fn#abc")
    layer._put_record(_record())
    got = layer._get_record("fn#abc")
    assert got.status == "INPROGRESS"
    done = _record("COMPLETED")
    done.response_data = '{"ok": 1}'
    layer._update_record(done)
    assert layer._get_record("fn#abc").response_json_as_dict() == {"ok": 1}
    layer._delete_record(done)
    with pytest.raises(IdempotencyItemNotFoundError):
        layer._get_record("fn#abc")


def test_only_one_of_many_concurrent_creators_wins(layer: StorePersistenceLayer) -> None:
    wins: list[int] = []
    losses: list[DataRecord | None] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            layer._put_record(_record())
            wins.append(i)
        except IdempotencyItemAlreadyExistsError as exc:
            losses.append(exc.old_data_record)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(losses) == 7


def test_expired_and_stale_in_progress_records_are_replaced(layer: StorePersistenceLayer) -> None:
    layer._put_record(_record("COMPLETED", expiry=int(time.time()) - 10))
    layer._put_record(_record())  # the expired record is replaced
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(_record())  # a live one is not
    layer._update_record(_record(in_progress=int(time.time() * 1000) - 1))
    layer._put_record(_record(in_progress=int(time.time() * 1000) + 60_000))  # the crashed run is taken over
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(_record())


def test_corrupt_record_names_the_object(layer: StorePersistenceLayer) -> None:
    key = layer.record_key("fn#abc")
    layer.store.put(key, b"{not json")
    with pytest.raises(IdempotencyPersistenceLayerError, match=key):
        layer._get_record("fn#abc")


def test_function_name_cannot_escape_the_prefix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        StorePersistenceLayer(LocalStore(tmp_path / "b"), "../x")
