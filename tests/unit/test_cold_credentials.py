"""Credentials are resolved as a cold container resolves them, and a test server knows only the
identities it is given. CI once failed 8 SeaweedFS tests on order alone: boto3's default session kept
the first credentials it resolved for the whole pytest process, and `weed`, started lazily by whichever
test needed it first, made an extra admin identity of the AWS_ACCESS_KEY_ID in its environment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storekeeper.dev.devservers import SERVER_ENV_DROP, start_process, stop_process


def _access_key(client: object) -> str:
    return str(client._request_signer._credentials.access_key)  # type: ignore[attr-defined]


def test_a_cold_start_resolves_credentials_from_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from storekeeper.snapstart import forget_warm_caches
    from storekeeper.stores.s3 import make_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    assert _access_key(make_client("http://127.0.0.1:9")) == "first-key"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "second-secret")
    # a warm container keeps its session (and so its credentials) ...
    assert _access_key(make_client("http://127.0.0.1:9")) == "first-key"
    forget_warm_caches()
    # ... a cold one (or a SnapStart restore) resolves them again
    assert _access_key(make_client("http://127.0.0.1:9")) == "second-key"


def test_servers_never_inherit_credentials_from_the_test_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SERVER_ENV_DROP:
        monkeypatch.setenv(name, f"leaked-{name}")
    monkeypatch.setenv("STOREKEEPER_MARKER", "kept")
    log = tmp_path / "env.log"
    proc = start_process(["env"], log=log)
    try:
        proc.wait(timeout=30)
    finally:
        stop_process(proc)
    deadline = time.monotonic() + 10
    while "STOREKEEPER_MARKER" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = log.read_text()
    assert "STOREKEEPER_MARKER=kept" in seen  # the rest of the environment still reaches the server
    assert "leaked-" not in seen
