"""Pydantic models for every message and file that crosses a boundary (DESIGN §2-§4)."""

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
