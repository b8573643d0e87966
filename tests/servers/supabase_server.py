"""Pytest plugin: the Supabase Storage emulator and a real PostgreSQL, session-scoped.

`supabase_emulator` serves storekeeper/dev/emulators/supabase_emulator.py on 127.0.0.1 (a free port picked
by the kernel) in a background thread, so the real `supabase` client talks to it over real HTTP,
and `postgres_server` runs a throwaway PostgreSQL cluster (Debian's packages, run as the postgres
user) holding the compare-and-swap table (`storekeeper supabase setup`'s migration applied).
Use `.env()` with monkeypatch.setenv to point SupabaseStore / open_vector_backend at them and
`.reset()` to start from an empty project.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from storekeeper.dev.devservers import PostgresServer, start_postgres
from storekeeper.dev.emulators.supabase_emulator import SupabaseEmulator
from storekeeper.stores.supabase_cas import PostgresCas


class SupabaseEmulatorServer:
    """What tests get: the base URL for `supabase.create_client`, the service key, the DB URL, helpers."""

    def __init__(self, emulator: SupabaseEmulator, db_url: str) -> None:
        self.emulator = emulator
        self.db_url = db_url

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def service_key(self) -> str:
        return self.emulator.service_key

    def env(self) -> dict[str, str]:
        return {
            "SUPABASE_URL": self.url,
            "SUPABASE_SERVICE_KEY": self.service_key,
            "SUPABASE_DB_URL": self.db_url,
        }

    def reset(self) -> None:
        self.emulator.reset()
        cas = PostgresCas(self.db_url)
        try:
            cas._run("TRUNCATE storekeeper.object_versions", None, fetch=False)
        finally:
            cas.close()

    def client(self) -> Any:
        """A real supabase client bound to the emulator."""
        from supabase import create_client

        return create_client(self.url, self.service_key)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL with the storekeeper schema, once per test run (per xdist worker)."""
    server = start_postgres()
    try:
        cas = PostgresCas(server.url)
        cas.apply_migrations()
        cas.close()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def supabase_emulator(postgres_server: PostgresServer) -> Iterator[SupabaseEmulatorServer]:
    emulator = SupabaseEmulator().start()
    try:
        yield SupabaseEmulatorServer(emulator, postgres_server.url)
    finally:
        emulator.stop()


@pytest.fixture
def supabase_env(
    supabase_emulator: SupabaseEmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> SupabaseEmulatorServer:
    """The emulator, emptied, with SUPABASE_URL / SUPABASE_SERVICE_KEY / SUPABASE_DB_URL set for this test."""
    supabase_emulator.reset()
    for name, value in supabase_emulator.env().items():
        monkeypatch.setenv(name, value)
    return supabase_emulator
