"""Test-wide settings: no telemetry, no AWS credentials leaking in from the machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from storekeeper.stores.local import LocalStore

os.environ.setdefault("CHROMA_TELEMETRY_IMPL", "none")
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "storekeeper")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "storekeeper-tests")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

# Server fixtures (SeaweedFS, moto_server, the Supabase emulator) live in their own plugin modules.
pytest_plugins = ["tests.servers.s3_servers", "tests.servers.supabase_server"]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A fresh local store (bucket `bucket`) per test; modules that need another shape override it."""
    from storekeeper.stores.local import LocalStore

    return LocalStore(tmp_path / "bucket")
