"""pytest plugin (entry point `pytest11: storekeeper`): quota-safe Supabase test buckets.

Loaded by pytest wherever storekeeper is installed, and inert until a suite enables it with
`storekeeper_quota = true` in its ini file or `--storekeeper-quota` on the command line. Then:

* `vector_bucket` — a new vector bucket for one test (`<prefix><run>-<random>`, labelled with the
  run and an expiry), deleted at teardown, indexes first, also when the test fails;
* `storage_bucket` — the same for a Storage bucket (labels in the bucket);
* `shared_vector_bucket` — `<prefix>shared`, found or created once per run, never reaped;
* when the project is full, expired test buckets of other runs are reaped first (the reaper's
  planner and protection, a dry-run report printed), and a test skips only when nothing may be.

Works under pytest-xdist (one run id for all workers; creates retry on the quota error) and with
async tests (the fixtures are plain values). See docs/testing-with-quota.md.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

INI_ENABLE = "storekeeper_quota"
_OWN_LOG = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("storekeeper", "quota-safe Supabase test buckets (storekeeper)")
    group.addoption(
        "--storekeeper-quota",
        action="store_true",
        default=False,
        help="enable the storekeeper test-bucket fixtures",
    )
    parser.addini(INI_ENABLE, "enable the storekeeper test-bucket fixtures", type="bool", default=False)
    parser.addini("storekeeper_prefix", "name prefix of test buckets", default="test-")
    parser.addini("storekeeper_ttl", "how long a run's buckets stay unexpired (e.g. 2h, 30m)", default="2h")
    parser.addini("storekeeper_wait", "how long a fixture waits for room before skipping", default="120s")
    parser.addini(
        "storekeeper_registry",
        "store URL of the labels registry (default supabase://storekeeper-tests)",
        default="supabase://storekeeper-tests",
    )


SWEEP_LOG = "STOREKEEPER_SWEEP_LOG"


def pytest_configure(config: pytest.Config) -> None:
    """The controller picks a file for the sweep reports; xdist workers inherit it and append."""
    if _enabled(config) and not hasattr(config, "workerinput") and not os.environ.get(SWEEP_LOG):
        fd, path = tempfile.mkstemp(prefix="storekeeper-sweeps-", suffix=".log")
        os.close(fd)
        os.environ[SWEEP_LOG] = path
        config.stash[_OWN_LOG] = path


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    path = config.stash.get(_OWN_LOG, None)
    if not path:
        return
    text = Path(path).read_text(errors="replace")
    Path(path).unlink(missing_ok=True)
    os.environ.pop(SWEEP_LOG, None)
    if text.strip():
        terminalreporter.section("storekeeper test-bucket sweeps")
        terminalreporter.write(text)


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--storekeeper-quota") or config.getini(INI_ENABLE))


def _duration(text: str) -> timedelta:
    from storekeeper.policies.units import parse_duration

    return parse_duration(text)


@pytest.fixture(scope="session")
def storekeeper_test_buckets(request: pytest.FixtureRequest) -> Any:
    """The run's `TestBuckets` (the vector backend and registry from SUPABASE_* of the environment)."""
    config = request.config
    if not _enabled(config):
        pytest.fail(
            "the storekeeper test-bucket fixtures are off: set `storekeeper_quota = true` in the ini "
            "file or pass --storekeeper-quota",
            pytrace=False,
        )
    from storekeeper.dev.testing.quota import QuotaSettings, TestBuckets, ensure_registry, run_id_from_env
    from storekeeper.stores import open_store
    from storekeeper.stores.vectors import open_vector_backend

    settings = QuotaSettings(
        prefix=config.getini("storekeeper_prefix"),
        ttl=_duration(config.getini("storekeeper_ttl")),
        wait=_duration(config.getini("storekeeper_wait")),
    )
    registry = open_store(config.getini("storekeeper_registry"))
    ensure_registry(registry)
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def log(text: str) -> None:
        sweep_log = os.environ.get(SWEEP_LOG)
        if sweep_log:  # shown by the controller at the end (xdist workers' output is not)
            with open(sweep_log, "a") as fh:
                fh.write(text + "\n")
        elif reporter is not None:
            reporter.write_line(text)

    return TestBuckets(open_vector_backend(), registry, run_id=run_id_from_env(), settings=settings, log=log)


@pytest.fixture
def vector_bucket(storekeeper_test_buckets: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new vector bucket for this test, deleted at teardown (indexes first)."""
    from storekeeper.dev.testing.quota import QuotaFull

    try:
        name = storekeeper_test_buckets.create_vector_bucket(request.node.nodeid)
    except QuotaFull as exc:
        pytest.skip(str(exc))
    try:
        yield name
    finally:
        storekeeper_test_buckets.release_vector_bucket(name)


@pytest.fixture
def storage_bucket(storekeeper_test_buckets: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new Storage bucket for this test (labelled with the run and its expiry), deleted at teardown."""
    name = storekeeper_test_buckets.create_storage_bucket(request.node.nodeid)
    try:
        yield name
    finally:
        storekeeper_test_buckets.release_storage_bucket(name)


@pytest.fixture(scope="session")
def shared_vector_bucket(storekeeper_test_buckets: Any) -> str:
    """One vector bucket for the whole run (found or created), protected by its name, never deleted."""
    name: str = storekeeper_test_buckets.shared_vector_bucket()
    return name
