"""Helpers for compaction tests: build deltas, compute the expected state, read what was published."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from storekeeper.deltas import DeltaContent, encode_delta, new_delta_id, write_delta
from storekeeper.models.deltas import DeltaNotification
from storekeeper.models.snapshots import Manifest
from storekeeper.snapshots import SnapshotCache, load_manifest, open_snapshot, read_pointer
from storekeeper.stores.base import ObjectStore


def vec(seed: int, dim: int) -> list[float]:
    """A deterministic vector per seed (distinct seeds -> far-apart vectors)."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.standard_normal(dim).astype(np.float32)]


def delta(
    collection: str,
    upserts: dict[str, list[float]] | None = None,
    deletes: Iterable[str] = (),
    *,
    metadata: dict[str, str | int | float | bool] | None = None,
) -> DeltaContent:
    ups = upserts or {}
    ids = list(ups)
    emb = np.asarray([ups[i] for i in ids], dtype=np.float32) if ids else np.zeros((0, 0), dtype=np.float32)
    return DeltaContent(
        collection=collection,
        delta_id=new_delta_id(),
        created_at=datetime.now(UTC),
        ids=ids,
        embeddings=emb,
        metadatas=[dict(metadata) if metadata else None for _ in ids],
        documents=[None for _ in ids],
        deletes=list(deletes),
    )


def produce(store: ObjectStore, content: DeltaContent) -> DeltaNotification:
    return write_delta(store, content)


def model_state(contents: Iterable[DeltaContent]) -> dict[str, list[float]]:
    """What a snapshot must hold after applying `contents` in delta_id order, each once."""
    state: dict[str, list[float]] = {}
    for c in sorted(contents, key=lambda c: c.delta_id):
        for d in c.deletes:
            state.pop(d, None)
        for i, rid in enumerate(c.ids):
            state[rid] = [float(x) for x in c.embeddings[i]]
    return state


def snapshot_state(store: ObjectStore, collection: str, cache_dir: Path) -> dict[str, list[float]]:
    col = open_snapshot(store, collection, cache=SnapshotCache(cache_dir))
    got = col.get(include=["embeddings"])
    return {rid: [float(x) for x in e] for rid, e in zip(got["ids"], got["embeddings"], strict=True)}


def assert_same_state(got: dict[str, list[float]], want: dict[str, list[float]]) -> None:
    assert set(got) == set(want), (
        f"missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}"
    )
    for rid, v in want.items():
        assert np.allclose(got[rid], v, atol=1e-6), f"{rid}: {got[rid][:3]} != {v[:3]}"


def version_chain(store: ObjectStore, collection: str) -> list[Manifest]:
    """Manifests from the published one back to the first, following `parent`."""
    version, _ = read_pointer(store, collection)
    chain: list[Manifest] = []
    while version is not None:
        m = load_manifest(store, collection, version)
        chain.append(m)
        version = m.parent
    return chain


def reseal(blob: bytes, body_edit: bytes | None = None, *, at: int | None = None) -> bytes:
    """Replace bytes of a delta body at `at` and recompute the trailing sha256 (to craft bad content)."""
    body = bytearray(blob[:-32])
    if body_edit is not None and at is not None:
        body[at : at + len(body_edit)] = body_edit
    return bytes(body) + hashlib.sha256(bytes(body)).digest()


def nan_delta_bytes(collection: str, dim: int) -> tuple[str, bytes]:
    """A delta whose first vector value is NaN, with a valid checksum: only content validation catches it."""
    d = delta(collection, {"nan-rec": [1.0] * dim})
    blob = encode_delta(d)
    one = struct.pack("<f", 1.0)
    at = blob.index(one)  # first float of the vector section
    return d.key, reseal(blob, struct.pack("<f", float("nan")), at=at)
