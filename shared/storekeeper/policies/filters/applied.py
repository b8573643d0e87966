"""The delta filter: deltas the live manifest has already merged."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from typing import ClassVar

from storekeeper.policies.filters import Filter, FilterEnv, K, register
from storekeeper.policies.resources import Delta, Resource, ResourceKind


@register("applied")
class Applied(Filter):
    """A delta already in the live manifest's `applied` ledger (merged, but not yet removed)."""

    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.delta})

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if not isinstance(r, Delta) or not r.applied:
            return None
        return f"applied by live version {r.live_version}"
