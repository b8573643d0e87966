"""Pydantic models for every message and file that crosses a boundary.

The names below are loaded on first access (PEP 562): building pydantic models
is a large part of a cold start, and importing one submodule (say
`storekeeper.models.deltas` in the producer) runs this file first, which must
not build the cleanup and snapshot models a function never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
    from storekeeper.models.deltas import DeltaNotification, PutRequest, UpsertRecord
    from storekeeper.models.snapshots import Manifest

_WHERE = {
    "CleanupAction": "cleanup",
    "CleanupTask": "cleanup",
    "TaskGuard": "cleanup",
    "DeltaNotification": "deltas",
    "PutRequest": "deltas",
    "UpsertRecord": "deltas",
    "Manifest": "snapshots",
}

__all__ = [
    "CleanupAction",
    "CleanupTask",
    "DeltaNotification",
    "Manifest",
    "PutRequest",
    "TaskGuard",
    "UpsertRecord",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'storekeeper.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"storekeeper.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
