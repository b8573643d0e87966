"""`collection/<c>/config.json`: a collection's dimension and distance, fixed by its first write.

Create-only (`If-None-Match: *`), first write wins: of two first puts of different
dimensions racing, exactly one creates the config and the other is refused at the
producer, never accepted and then rejected at compaction. Collections from
before the config get one at their next write or compaction, from their snapshot or
pending deltas.

The config never changes once written, so a warm container keeps it (one GET per
collection per `CACHE_SECONDS`, not two per put); a mismatch against the cached value
is re-read before it is refused, so a collection deleted and re-created elsewhere is
seen at once.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import threading
import time
from datetime import UTC, datetime
from typing import Annotated

import pydantic
from pydantic import Field

from storekeeper.errors import CorruptObject, NotFound, PreconditionFailed, from_pydantic
from storekeeper.layout import collection_config_key
from storekeeper.models.common import CollectionName, Strict, UtcDatetime
from storekeeper.models.deltas import DEFAULT_DISTANCE, MAX_DIMENSION, Distance
from storekeeper.stores.base import ObjectStore

CACHE_SECONDS = 300.0


class CollectionConfig(Strict):
    collection: CollectionName
    dimension: Annotated[int, Field(ge=1, le=MAX_DIMENSION)]
    distance: Distance = DEFAULT_DISTANCE
    created_at: UtcDatetime


def config_key(collection: str) -> str:
    return collection_config_key(collection)


def read_config(store: ObjectStore, collection: str) -> CollectionConfig | None:
    """The stored config, None when there is none; a malformed one is CorruptObject (never guessed)."""
    key = config_key(collection)
    try:
        body = store.get(key).body
    except NotFound:
        return None
    try:
        cfg = CollectionConfig.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise CorruptObject(
            store.url, key, f"not a collection config: {from_pydantic(exc, root='config')}"
        ) from None
    if cfg.collection != collection:
        raise CorruptObject(store.url, key, f"names collection {cfg.collection!r}")
    return cfg


def create_config(
    store: ObjectStore, collection: str, dimension: int, distance: Distance = DEFAULT_DISTANCE
) -> CollectionConfig:
    """Create the config unless one exists; returns whichever config won (ours or the earlier one)."""
    cfg = CollectionConfig(
        collection=collection, dimension=dimension, distance=distance, created_at=datetime.now(UTC)
    )
    for _ in range(3):  # a config deleted between our lost put and our read: try again, briefly
        try:
            store.put(
                config_key(collection),
                cfg.model_dump_json().encode(),
                if_none_match=True,
                content_type="application/json",
            )
        except PreconditionFailed:
            won = read_config(store, collection)
            if won is None:
                continue
            cfg = won
        _remember(store, cfg)
        return cfg
    raise PreconditionFailed(store.url, config_key(collection), "the config keeps being created and deleted")


# -- the per-container cache ---------------------------------------------------------------------
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, CollectionConfig]] = {}


def _remember(store: ObjectStore, cfg: CollectionConfig) -> None:
    with _lock:
        _cache[(store.url, cfg.collection)] = (time.monotonic(), cfg)


def cached_config(store: ObjectStore, collection: str, *, refresh: bool = False) -> CollectionConfig | None:
    """The config, from this container's cache when fresh, else read (and remembered if it exists)."""
    now = time.monotonic()
    if not refresh:
        with _lock:
            hit = _cache.get((store.url, collection))
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    cfg = read_config(store, collection)
    if cfg is None:
        with _lock:
            _cache.pop((store.url, collection), None)
    else:
        _remember(store, cfg)
    return cfg


def forget_all() -> None:
    """Drop the cache (tests; a container never needs to)."""
    with _lock:
        _cache.clear()
