"""The compactor handler's own metrics that no integration run can provoke on demand (a fake clock)."""

from __future__ import annotations

from pathlib import Path

from storekeeper.compactor import Compactions
from storekeeper.runtime import handler_path, load_module
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]


def test_near_timeout_counts_an_invocation_that_ends_within_a_fifth_of_its_time(tmp_path: Path) -> None:
    app = load_module(handler_path(REPO, "compactor"), "compactor")
    store = LocalStore(tmp_path / "bucket")
    for left, want in ((100_000, 0.0), (59_000, 1.0), (0, 1.0)):
        app.metrics.clear_metrics()
        done = Compactions(
            store, SnapshotCache(tmp_path / "c"), remaining_ms=lambda left=left: left, total_ms=300_000
        )
        app._near_timeout(done)
        assert app.metrics.metric_set["NearTimeout"]["Value"] == [want], left
    app.metrics.clear_metrics()
    app._near_timeout(Compactions(store, SnapshotCache(tmp_path / "c")))  # no context: nothing to say
    assert "NearTimeout" not in app.metrics.metric_set
