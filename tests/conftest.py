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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """pytest-randomly shuffles modules, and tests within them, on every run; `-q` hides its header, so
    say here, after any failure, how to run this order again."""
    seed = config.getoption("randomly_seed", None)
    if isinstance(seed, int) and config.getoption("randomly_reorganize", False):
        terminalreporter.write_line(
            f"random test order, seed {seed}: run this order again with --randomly-seed={seed}"
        )


#: what a developer's shell may carry (`storekeeper devstack` exports most of it): a test that inherited
#: it would reach another store or queue, and pass or fail by what ran before it
MACHINE_SETTINGS = (
    "STOREKEEPER_STORE",
    "DELTA_QUEUE_URL",
    "CLEANUP_QUEUE_URL",
    "IDEMPOTENCY_TABLE",
    "REAPER_APPLY",
    "REAPER_POLICIES",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_DB_URL",
)


@pytest.fixture(autouse=True)
def storekeeper_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own STOREKEEPER_HOME (embedded store, local queues, journals) and snapshot
    caches, and none of the machine's store or queue settings: nothing a test leaves in ~/.storekeeper
    or /tmp can reach another test or run. Tests that need a setting set it themselves (monkeypatch,
    after this)."""
    home = tmp_path / "home"
    monkeypatch.setenv("STOREKEEPER_HOME", str(home))
    for name in MACHINE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    # the snapshot caches default to machine-wide dirs (/tmp/storekeeper-cache, -reader: a warm Lambda's
    # /tmp), which every earlier test and every other run on the machine filled: what a test downloads,
    # and what the compactor's budget takes as cached, would depend on them
    monkeypatch.setenv("COMPACTOR_CACHE_DIR", str(home / "compactor-cache"))
    monkeypatch.setenv("STOREKEEPER_READER_CACHE_DIR", str(home / "reader-cache"))
    return home


@pytest.fixture(autouse=True)
def cold_process() -> None:
    """Each test starts as a cold Lambda container: what the package keeps between warm invocations
    (boto3's default session with the credentials it resolved, stores opened from the environment,
    collection configs, endpoints found unreachable, readers and their failures, the executor's
    protection config, the compactor's measured transfer rates) is dropped, so a test cannot pass or
    fail by what an earlier test left there (the same bucket name on another server or mock, the same
    unreachable port, another server's credentials). Only modules already imported are touched: a
    test's imports stay its own. The list is the package's own, which a SnapStart restore drops too."""
    from storekeeper.snapstart import forget_warm_caches

    forget_warm_caches()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A fresh local store (bucket `bucket`) per test; modules that need another shape override it."""
    from storekeeper.stores.local import LocalStore

    return LocalStore(tmp_path / "bucket")
