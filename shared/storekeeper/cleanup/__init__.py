"""The cleanup executor: registered actions that re-check guards and protection when they run.

Importing the package registers every action (one module per concern).
"""

from storekeeper.cleanup import (  # noqa: F401  (registers)
    objects,
    overflow_bucket,
    snapshot_versions,
    uploads,
    vectors,
)
from storekeeper.cleanup.base import (
    ACTIONS,
    Action,
    Context,
    TaskFailed,
    TaskOutcome,
    register,
)
from storekeeper.cleanup.executor import execute_task, store_resolver
from storekeeper.cleanup.runner import CleanupRunner, CleanupTaskRecord, parse_task, record_metrics

__all__ = [
    "ACTIONS",
    "Action",
    "CleanupRunner",
    "CleanupTaskRecord",
    "Context",
    "TaskFailed",
    "TaskOutcome",
    "execute_task",
    "parse_task",
    "record_metrics",
    "register",
    "store_resolver",
]
