"""The `backend` / `store` fixtures: every contract test runs once per backend.

local (a temp dir), moto (moto_server over HTTP), seaweedfs (weed mini) and supabase
(the Storage emulator, real supabase client over HTTP).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storekeeper.stores.base import ObjectStore
from tests.contract.backends import ALL_KINDS, Backend


def _make_backend(
    request: pytest.FixtureRequest, kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    if kind == "local":
        root = tmp_path_factory.mktemp("local-backend")
        return Backend(kind, root=str(root))
    if kind in ("moto", "seaweedfs"):
        server = request.getfixturevalue("moto_http" if kind == "moto" else "seaweed_s3")
        return Backend(
            kind,
            settings={
                "endpoint_url": server.endpoint_url,
                "access_key": server.access_key,
                "secret_key": server.secret_key,
                "region": server.region,
            },
        )
    if kind == "supabase":
        emulator = request.getfixturevalue("supabase_emulator")
        return Backend(
            kind, settings={"url": emulator.url, "key": emulator.service_key, "db_url": emulator.db_url}
        )
    raise ValueError(kind)


@pytest.fixture(params=ALL_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    b = _make_backend(request, request.param, tmp_path_factory)
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    """A fresh, empty bucket on the backend under test (request counter reset)."""
    return backend.fresh()
