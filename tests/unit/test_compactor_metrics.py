"""The compactor handler's own metrics that no integration run can provoke on demand (a fake clock)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from storekeeper import config
from storekeeper.compactor import Compactions
from storekeeper.runtime import handler_path, invoke, load_module, sqs_event
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.local import LocalStore
from tests.compaction_support import delta, produce, vec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("left", "want"), [(100_000, 0.0), (59_000, 1.0), (0, 1.0)])
def test_near_timeout_counts_an_invocation_that_ends_within_a_fifth_of_its_time(
    tmp_path: Path, left: int, want: float
) -> None:
    app = load_module(handler_path(REPO, "compactor"), "compactor")
    app.metrics.clear_metrics()
    done = Compactions(
        LocalStore(tmp_path / "bucket"),
        SnapshotCache(tmp_path / "c"),
        remaining_ms=lambda: left,
        total_ms=300_000,
    )
    app._near_timeout(done)
    assert app.metrics.metric_set["NearTimeout"]["Value"] == [want], left


def test_near_timeout_says_nothing_without_a_context(tmp_path: Path) -> None:
    app = load_module(handler_path(REPO, "compactor"), "compactor")
    store = LocalStore(tmp_path / "bucket")
    app.metrics.clear_metrics()
    app._near_timeout(Compactions(store, SnapshotCache(tmp_path / "c")))  # no context: nothing to say
    assert "NearTimeout" not in app.metrics.metric_set


def _emf(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF documents the handler printed (`invoke` sends the handler's stdout to stderr)."""
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    return [d for d in (json.loads(x) for x in lines if x.startswith("{")) if "_aws" in d]


def _units(doc: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


@pytest.mark.slow  # a real compaction with chromadb: >5 s here
def test_a_compaction_emits_its_seconds_per_collection_and_the_bytes_its_removals_freed(
    store: LocalStore, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    notes = [produce(store, delta("docs", {f"r{i}": vec(i, 8) for i in range(i + 1)})) for i in range(3)]
    delta_bytes = sum(o.size for o in store.list("delta/docs/"))
    assert delta_bytes > 0
    env = {config.COMPACTOR_CACHE_DIR: str(tmp_path / "cache")}
    event = sqs_event([(f"m{i}", n.model_dump_json()) for i, n in enumerate(notes)])
    capfd.readouterr()
    assert invoke("compactor", event, store=store.url, env=env).ok
    docs = _emf(capfd)
    seconds = [d for d in docs if "CompactionSeconds" in d]
    assert len(seconds) == 1  # one compaction of one collection
    doc = seconds[0]
    assert doc["collection"] == "docs"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["collection", "service"]]
    phases = {p: doc[f"Compaction{p.title()}Seconds"][0] for p in ("apply", "publish", "remove")}
    assert "CompactionFetchSeconds" not in doc  # the first version has no parent to fetch
    assert all(s >= 0 for s in phases.values())
    assert doc["CompactionSeconds"][0] >= sum(phases.values())  # the phases lie within the whole run
    assert set(_units(doc).values()) == {"Seconds"}
    freed = [d for d in docs if "BytesFreed" in d]
    assert [(d["bucket"], d["BytesFreed"]) for d in freed] == [(store.bucket, [float(delta_bytes)])]
    assert _units(freed[0]) == {"BytesFreed": "Bytes"}
    assert list(store.list("delta/")) == []
    # the same notifications again: nothing applied, nothing removed, so neither metric
    assert invoke("compactor", event, store=store.url, env=env).ok
    assert [d for d in _emf(capfd) if "CompactionSeconds" in d or "BytesFreed" in d] == []


@pytest.mark.slow  # real compactions with chromadb
def test_a_compaction_that_lost_every_race_still_counts_its_races(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RaceLost came only from compactions that ended with a result: one that gave up after
    losing every pointer race (an error outcome) counted none of them."""
    from storekeeper import compactor
    from storekeeper.compaction import RacesLost, compact

    app = load_module(handler_path(REPO, "compactor"), "compactor")
    app.metrics.clear_metrics()
    produce(store, delta("docs", {"a": vec(1, 8)}))

    def race(step: str) -> None:
        # another compactor publishes all but the newest delta each time: we lose every race
        if step == "after_manifest":
            for k in range(2):
                produce(store, delta("docs", {f"b{k}": vec(k + 2, 8)}))
            compact(store, "docs", cache=SnapshotCache(tmp_path / "other"), max_deltas=2)

    monkeypatch.setattr(compactor, "compact", partial(compact, hooks=race, max_attempts=3))
    done = Compactions(store, SnapshotCache(tmp_path / "c"), on_error=app._on_error)
    assert isinstance(done.of("docs"), RacesLost)
    summary = app._count(done)
    assert summary["docs"]["error"] == "RacesLost"
    assert app.metrics.metric_set["RaceLost"]["Value"] == [3.0]
    assert app.metrics.metric_set["LostVersionsKept"]["Value"] == [0.0]  # each loser removed its version
    assert "SnapshotsPublished" not in app.metrics.metric_set
