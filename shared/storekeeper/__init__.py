"""storekeeper: deltas, ChromaDB snapshots, quota reaping and cleanup on object storage.

Importing the package is cheap: `Reader` and `open_snapshot` (which need chromadb to open a
snapshot) load on first use, so the producer, reaper and cleanup never import chromadb.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QueryResult", "Reader", "open_snapshot"]


def __getattr__(name: str) -> Any:
    if name == "open_snapshot":
        from storekeeper.snapshots import open_snapshot

        return open_snapshot
    if name in ("Reader", "QueryResult"):
        from storekeeper import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'storekeeper' has no attribute {name!r}")
