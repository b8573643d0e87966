"""Pydantic models for every message and file that crosses a boundary.

The names below are loaded on first access (PEP 562): building pydantic models
is a large part of a cold start, and importing one submodule (say
`storekeeper.models.deltas` in the producer) runs this file first, which must
not build the cleanup and snapshot models a function never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storekeeper.lazy import lazy_exports

if TYPE_CHECKING:
    from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
    from storekeeper.models.deltas import DeltaNotification, PutRequest, UpsertRecord
    from storekeeper.models.snapshots import Manifest

__all__ = [
    "CleanupAction",
    "CleanupTask",
    "DeltaNotification",
    "Manifest",
    "PutRequest",
    "TaskGuard",
    "UpsertRecord",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CleanupAction": "storekeeper.models.cleanup",
        "CleanupTask": "storekeeper.models.cleanup",
        "TaskGuard": "storekeeper.models.cleanup",
        "DeltaNotification": "storekeeper.models.deltas",
        "PutRequest": "storekeeper.models.deltas",
        "UpsertRecord": "storekeeper.models.deltas",
        "Manifest": "storekeeper.models.snapshots",
    },
)
