"""A collection's dimension and distance are fixed by its first write (collection/<c>/config.json).

Racing first writes of different dimensions: exactly one dimension is accepted, the others are
refused at the producer (never accepted and rejected later). The config is cached per container.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storekeeper import collection_config
from storekeeper.collection_config import config_key, read_config
from storekeeper.compaction import compact
from storekeeper.deltas import DeltaContent, list_pending, new_delta_id, write_delta
from storekeeper.errors import CorruptObject, ValidationError
from storekeeper.producer import parse_put_request, put
from storekeeper.queues import LocalQueue
from storekeeper.snapshots import SnapshotCache, resolve
from storekeeper.stores import open_store
from storekeeper.stores.base import GetResult, ObjectStore
from storekeeper.stores.local import LocalStore


def event(dim: int, rid: str = "a", **extra: Any) -> dict[str, Any]:
    return {"collection": "c", "upserts": [{"id": rid, "embedding": [0.5] * dim}], **extra}


def test_first_put_creates_the_config_and_another_dimension_is_refused(tmp_path: Path) -> None:
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    put(parse_put_request(event(3)), store=store, queue=queue)
    cfg = read_config(store, "c")
    assert cfg is not None
    assert (cfg.dimension, cfg.distance) == (3, "l2")
    with pytest.raises(ValidationError) as info:
        put(parse_put_request(event(4, "b")), store=store, queue=queue)
    assert info.value.field == "upserts[0].embedding"
    assert "has 3" in str(info.value)
    assert config_key("c") in str(info.value)
    assert len(list_pending(store, "c")) == 1  # nothing written for the refused put


def test_distance_is_fixed_by_the_first_write_and_used_by_the_first_snapshot(tmp_path: Path) -> None:
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    put(parse_put_request(event(2, distance="cosine")), store=store, queue=queue)
    with pytest.raises(ValidationError) as info:
        put(parse_put_request(event(2, "b", distance="ip")), store=store, queue=queue)
    assert info.value.field == "distance"
    put(parse_put_request(event(2, "b")), store=store, queue=queue)  # no distance: the collection's
    compact(store, "c", cache=SnapshotCache(tmp_path / "cache"))
    published = resolve(store, "c")
    assert published is not None
    assert published.manifest.distance == "cosine"


def test_a_delta_of_another_dimension_is_quarantined_even_before_the_first_snapshot(tmp_path: Path) -> None:
    """A delta written by an older producer, or by hand, cannot change the fixed dimension."""
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    rogue = DeltaContent(
        "c", new_delta_id(), datetime.now(UTC), ["x"], np.ones((1, 5), np.float32), [None], [None]
    )
    put(parse_put_request(event(3)), store=store, queue=queue)  # config: 3 (the rogue delta is older)
    write_delta(store, rogue)
    r = compact(store, "c", cache=SnapshotCache(tmp_path / "cache"))
    assert list(r.rejected) == [rogue.delta_id]
    assert r.dimension == 3


def test_a_collection_from_before_configs_gets_one_at_its_next_write_or_compaction(tmp_path: Path) -> None:
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    put(parse_put_request(event(3)), store=store, queue=queue)
    compact(store, "c", cache=SnapshotCache(tmp_path / "cache"))
    store.delete(config_key("c"))  # as if written before configs existed
    collection_config.forget_all()
    with pytest.raises(ValidationError, match=r"has 3 \(snapshot "):
        put(parse_put_request(event(4, "b")), store=store, queue=queue)
    assert read_config(store, "c") is None  # a refused put writes nothing
    put(parse_put_request(event(3, "b")), store=store, queue=queue)
    cfg = read_config(store, "c")
    assert cfg is not None
    assert cfg.dimension == 3
    store.delete(config_key("c"))
    legacy = DeltaContent(
        "c", new_delta_id(), datetime.now(UTC), ["z"], np.ones((1, 3), np.float32), [None], [None]
    )
    write_delta(store, legacy)  # an old producer's delta
    compact(store, "c", cache=SnapshotCache(tmp_path / "cache"))
    cfg = read_config(store, "c")
    assert cfg is not None
    assert cfg.dimension == 3


def test_a_corrupt_config_is_an_error_not_a_guess(tmp_path: Path) -> None:
    store, queue = LocalStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    store.put(config_key("c"), b'{"dimension": "x"}')
    with pytest.raises(CorruptObject, match="config"):
        put(parse_put_request(event(3)), store=store, queue=queue)


class CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets: list[str] = []

    def get(self, key: str) -> GetResult:  # type: ignore[override]
        self.gets.append(key)
        return super().get(key)


def test_the_config_is_cached_per_container(tmp_path: Path) -> None:
    store, queue = CountingStore(tmp_path / "b"), LocalQueue(tmp_path / "q")
    put(parse_put_request(event(3)), store=store, queue=queue)
    store.gets.clear()
    for i in range(3):
        put(parse_put_request(event(3, f"r{i}")), store=store, queue=queue)
    assert store.gets == []  # no pointer, manifest or config read per put
    # a mismatch re-reads once before refusing (the cache may predate a re-created collection)
    store.delete(config_key("c"))
    other = collection_config.CollectionConfig(collection="c", dimension=4, created_at=datetime.now(UTC))
    store.put(config_key("c"), other.model_dump_json().encode())  # re-created by another container
    put(parse_put_request(event(4, "z")), store=store, queue=queue)
    assert store.gets == [config_key("c")]


def _race(store_factory: Any, tmp_path: Path, writers: int = 8) -> None:
    barrier = threading.Barrier(writers)
    outcomes: dict[int, str] = {}

    def first_put(i: int) -> None:
        store: ObjectStore = store_factory()
        dim = 2 + i % 2
        barrier.wait()
        try:
            put(parse_put_request(event(dim, f"w{i}")), store=store, queue=LocalQueue(tmp_path / "q"))
            outcomes[i] = f"ok {dim}"
        except ValidationError as exc:
            outcomes[i] = f"refused {dim}: {exc.field}"

    threads = [threading.Thread(target=first_put, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == writers, outcomes
    cfg = read_config(store_factory(), "c")
    assert cfg is not None
    accepted = {o for o in outcomes.values() if o.startswith("ok")}
    assert accepted == {f"ok {cfg.dimension}"}, outcomes
    assert all(o.endswith("upserts[0].embedding") for o in outcomes.values() if o.startswith("refused"))
    # and every accepted delta applies
    r = compact(store_factory(), "c", cache=SnapshotCache(tmp_path / "cache"))
    assert not r.rejected
    assert r.record_count == sum(o.startswith("ok") for o in outcomes.values())


def test_racing_first_writes_of_different_dimensions_local(tmp_path: Path) -> None:
    _race(lambda: LocalStore(tmp_path / "b"), tmp_path)


@pytest.mark.slow
def test_racing_first_writes_of_different_dimensions_seaweedfs(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fresh_bucket: Any
) -> None:
    server = request.getfixturevalue("seaweed_s3")
    for k, v in server.env(s3_only=True).items():
        monkeypatch.setenv(k, v)
    url = f"s3://{fresh_bucket(server, 'cfg')}"
    _race(lambda: open_store(url), tmp_path)
