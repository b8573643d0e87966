"""Powertools idempotency records kept in the object store itself (the embedded default).

Deployed, records live in DynamoDB (`IDEMPOTENCY_TABLE`). Without a table
they live at `idempotency/<function>/<sha256 of the key>.json` in the store
(`layout.idempotency_record_key`),
and the store's create-only put plays the part of DynamoDB's conditional
`put_item`: of two concurrent first calls exactly one creates the record and
proceeds, the other sees it. An expired record (or an in-progress one whose
Lambda timed out) is replaced only by an `If-Match` on the etag that was read,
so that take-over is race-free too.
"""

# ruff: noqa: E402
from __future__ import annotations

import json
import os
import time
from typing import Any

from storekeeper.lazy import defer_package_init

#: Powertools' idempotency package: its __init__ imports the DynamoDB layer, and with it boto3
POWERTOOLS_IDEMPOTENCY = "aws_lambda_powertools.utilities.idempotency"

defer_package_init(POWERTOOLS_IDEMPOTENCY)  # before the submodule imports below (hence E402)

from aws_lambda_powertools.utilities.idempotency.config import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

from storekeeper import config
from storekeeper.errors import NotFound, PreconditionFailed
from storekeeper.layout import check_function_name, idempotency_record_key
from storekeeper.stores.base import ObjectStore

__all__ = [
    "BasePersistenceLayer",
    "IdempotencyAlreadyInProgressError",
    "IdempotencyConfig",
    "IdempotencyValidationError",
    "StorePersistenceLayer",
    "idempotent_function",
    "persistence_from_env",
]


class StorePersistenceLayer(BasePersistenceLayer):
    """A Powertools persistence layer on any ObjectStore, using its conditional puts."""

    def __init__(self, store: ObjectStore, function_name: str) -> None:
        check_function_name(function_name)
        super().__init__()  # type: ignore[no-untyped-call]
        self.store = store
        self.namespace = function_name

    def record_key(self, idempotency_key: str) -> str:
        return idempotency_record_key(self.namespace, idempotency_key)

    # -- (de)serialisation -------------------------------------------------------------
    @staticmethod
    def _encode(rec: DataRecord) -> bytes:
        return json.dumps(
            {
                "idempotency_key": rec.idempotency_key,
                "status": rec._status,
                "expiry_timestamp": rec.expiry_timestamp,
                "in_progress_expiry_timestamp": rec.in_progress_expiry_timestamp,
                "response_data": rec.response_data,
                "payload_hash": rec.payload_hash,
            },
            separators=(",", ":"),
        ).encode()

    def _decode(self, key: str, body: bytes) -> DataRecord:
        try:
            d: dict[str, Any] = json.loads(body)
            return DataRecord(
                idempotency_key=str(d["idempotency_key"]),
                status=str(d["status"]),
                expiry_timestamp=d.get("expiry_timestamp"),
                in_progress_expiry_timestamp=d.get("in_progress_expiry_timestamp"),
                response_data=str(d.get("response_data") or ""),
                payload_hash=str(d.get("payload_hash") or ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IdempotencyPersistenceLayerError(
                f"idempotency record {self.store.url}/{key} is corrupt: {exc}"
            ) from exc

    def _read(self, key: str) -> tuple[DataRecord, str] | None:
        try:
            res = self.store.get(key)
        except NotFound:
            return None
        return self._decode(key, res.body), res.etag

    @staticmethod
    def _replaceable(rec: DataRecord) -> bool:
        """Same rule as the DynamoDB layer's condition expression."""
        now = time.time()
        if rec.expiry_timestamp is not None and rec.expiry_timestamp < int(now):
            return True
        return (
            rec._status == STATUS_CONSTANTS["INPROGRESS"]
            and rec.in_progress_expiry_timestamp is not None
            and rec.in_progress_expiry_timestamp < int(now * 1000)
        )

    # -- BasePersistenceLayer hooks ---------------------------------------------------------
    def _get_record(self, idempotency_key: str) -> DataRecord:
        key = self.record_key(idempotency_key)
        found = self._read(key)
        if found is None:
            raise IdempotencyItemNotFoundError(f"no idempotency record at {key}")
        return found[0]

    def _put_record(self, data_record: DataRecord) -> None:
        key = self.record_key(data_record.idempotency_key)
        body = self._encode(data_record)
        for _ in range(3):  # a record vanishing between our create and read is retried, briefly
            try:
                self.store.put(key, body, if_none_match=True, content_type="application/json")
                return
            except PreconditionFailed:
                pass
            found = self._read(key)
            if found is None:
                continue
            old, etag = found
            if not self._replaceable(old):
                self._validate_payload(data_payload=data_record, stored_data_record=old)
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            try:
                self.store.put(key, body, if_match=etag, content_type="application/json")
                return
            except PreconditionFailed:
                raise IdempotencyItemAlreadyExistsError() from None  # someone else took it over first
        raise IdempotencyItemAlreadyExistsError()

    def _update_record(self, data_record: DataRecord) -> None:
        # only the caller that created (or took over) the record gets here
        key = self.record_key(data_record.idempotency_key)
        self.store.put(key, self._encode(data_record), content_type="application/json")

    def _delete_record(self, data_record: DataRecord) -> None:
        self.store.delete(self.record_key(data_record.idempotency_key))


def persistence_from_env(store: ObjectStore, function_name: str) -> BasePersistenceLayer:
    """DynamoDB when IDEMPOTENCY_TABLE is set (AWS), else records in `store`."""
    table = os.environ.get(config.IDEMPOTENCY_TABLE)
    if table:
        # from the package, not its submodule: the package's deferred __init__ (defer_package_init) runs
        # first and imports the submodule whole; importing the submodule first made it run that __init__
        # half-way through, an ImportError on a new container's first request (IDEMPOTENCY_TABLE set)
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        from storekeeper.netconfig import boto_config

        return DynamoDBPersistenceLayer(table_name=table, boto_config=boto_config())
    return StorePersistenceLayer(store, function_name)
