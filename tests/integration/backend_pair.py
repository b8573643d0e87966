"""The two backends ops tests run on: the local store and SeaweedFS (a real S3 server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storekeeper.stores.base import ObjectStore
from storekeeper.stores.local import LocalStore

#: parametrize a fixture with these; the SeaweedFS case is an integration test
KINDS = ["local", pytest.param("seaweedfs", marks=pytest.mark.integration)]


def open_pair_store(
    request: pytest.FixtureRequest, path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> ObjectStore:
    """A fresh store of the parametrized kind; for SeaweedFS the environment points the CLI at it too."""
    if request.param == "local":
        return LocalStore(path)
    from storekeeper.stores.s3 import S3Store

    server = request.getfixturevalue("seaweed_s3")
    bucket = request.getfixturevalue("fresh_bucket")(server, prefix)
    for k, v in server.env(s3_only=True).items():  # the CLI opens the store from its URL
        monkeypatch.setenv(k, v)
    return S3Store(bucket, client=server.client())
