"""Builders of store states for reaper tests: snapshots, pointers, deltas and aged objects.

Ages are set through the local store's file mtimes (its last-modified), so the
planner sees exactly what a listing would return; nothing of the reaper is faked.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storekeeper.stores.local import LocalStore
from tests import cleanup_support

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def age(store: LocalStore, key: str, delta: timedelta, now: datetime = NOW) -> None:
    ts = (now - delta).timestamp()
    os.utime(store.path / key, (ts, ts))


def put_aged(
    store: LocalStore,
    key: str,
    size: int,
    old: timedelta,
    *,
    metadata: dict[str, str] | None = None,
    now: datetime = NOW,
) -> None:
    store.put(key, b"x" * size, metadata=metadata)
    age(store, key, old, now)


def version(seq: int) -> str:
    return f"{seq:012d}-abcdef{seq % 100:02d}"


def delta_id(n: int) -> str:
    return f"{1700000000000 + n:013d}-d{n:05d}x"


def write_version(
    store: LocalStore,
    c: str,
    seq: int,
    *,
    parent: int | None,
    applied: list[str],
    old: timedelta,
    manifest: bool = True,
    archive_size: int = 100,
) -> str:
    """snapshot/<c>/<v>/ with an archive and (unless a crash is simulated) its manifest."""
    v = version(seq)
    prefix = f"snapshot/{c}/{v}/"
    put_aged(store, prefix + "chroma.tar.gz", archive_size, old)
    if manifest:
        m = cleanup_support.manifest(
            c,
            v,
            created_at=NOW - old,
            parent=version(parent) if parent else None,
            sha256=hashlib.sha256(b"x").hexdigest(),
            size=archive_size,
            deltas=applied[-1:],
            applied=applied,
        )
        store.put(prefix + "manifest.json", m.model_dump_json().encode())
        age(store, prefix + "manifest.json", old)
    return v


def point(store: LocalStore, c: str, seq: int) -> None:
    store.put(f"snapshot/{c}/latest/pointer.txt", f"snapshot/{c}/{version(seq)}/".encode())


def write_delta(store: LocalStore, c: str, n: int, old: timedelta) -> str:
    key = f"delta/{c}/{delta_id(n)}.delta"
    put_aged(store, key, 50, old)
    return key


def local_store(tmp: Path, name: str = "main") -> LocalStore:
    return LocalStore(tmp / "stores" / name)
