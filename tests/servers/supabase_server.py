"""Pytest plugin: the Supabase Storage emulator as a session-scoped server.

`supabase_emulator` serves tests/emulators/supabase_emulator.py on 127.0.0.1 (a free port picked
by the kernel) in a background thread, so the real `supabase` client talks to it over real HTTP.
Use `.env()` with monkeypatch.setenv to point SupabaseStore / open_vector_backend at it and
`.reset()` to start from an empty project.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulators.supabase_emulator import SupabaseEmulator


class SupabaseEmulatorServer:
    """What tests get: the base URL for `supabase.create_client`, the service key and helpers."""

    def __init__(self, emulator: SupabaseEmulator) -> None:
        self.emulator = emulator

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def service_key(self) -> str:
        return self.emulator.service_key

    def env(self) -> dict[str, str]:
        return {"SUPABASE_URL": self.url, "SUPABASE_SERVICE_KEY": self.service_key}

    def reset(self) -> None:
        self.emulator.reset()

    def client(self):  # type: ignore[no-untyped-def]
        """A real supabase client bound to the emulator."""
        from supabase import create_client

        return create_client(self.url, self.service_key)


@pytest.fixture(scope="session")
def supabase_emulator() -> Iterator[SupabaseEmulatorServer]:
    emulator = SupabaseEmulator().start()
    try:
        yield SupabaseEmulatorServer(emulator)
    finally:
        emulator.stop()


@pytest.fixture
def supabase_env(
    supabase_emulator: SupabaseEmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> SupabaseEmulatorServer:
    """The emulator, emptied, with SUPABASE_URL / SUPABASE_SERVICE_KEY set for this test."""
    supabase_emulator.reset()
    for name, value in supabase_emulator.env().items():
        monkeypatch.setenv(name, value)
    return supabase_emulator
