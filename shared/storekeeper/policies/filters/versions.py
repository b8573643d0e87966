"""Snapshot-version filters: keep the newest per collection, and versions no pointer chain reached."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from collections.abc import Callable
from typing import ClassVar

from pydantic import Field

from storekeeper.policies.filters import Filter, FilterEnv, K, Selection, SetFilter, register
from storekeeper.policies.resources import Resource, ResourceKind, SnapshotVersion


@register("keep-newest")
class KeepNewest(SetFilter):
    """Per collection, keep the newest `count` versions (the live one is kept in any case)."""

    count: int = Field(default=3, ge=1)
    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.snapshot_version})

    def select(
        self, candidates: list[Resource], env: FilterEnv, eligible: Callable[[Resource], bool]
    ) -> Selection:
        sel = Selection()
        kept: set[str] = set()
        by_coll: dict[str, list[SnapshotVersion]] = {}
        for r in _versions(env.population()):
            if r.published:  # unpublished (crashed) versions are the orphan rule's business
                by_coll.setdefault(r.collection, []).append(r)
        for versions in by_coll.values():
            versions.sort(key=lambda v: v.version, reverse=True)
            kept.update(v.ident for v in versions[: self.count])
        for r in sorted(_versions(candidates), key=lambda c: (c.collection, c.version)):
            if r.ident in kept:
                sel.passed.append(
                    (r, f"kept: among the newest {self.count} published versions of {r.collection}")
                )
            elif not r.published:
                sel.passed.append((r, "never published: left to the orphan rule (unpublished filter)"))
            elif eligible(r):
                sel.chosen.append((r, f"not among the newest {self.count} versions of {r.collection}"))
        return sel


def _versions(resources: list[Resource]) -> list[SnapshotVersion]:
    return [r for r in resources if isinstance(r, SnapshotVersion)]


@register("unpublished")
class Unpublished(Filter):
    """A snapshot version no pointer chain reached (a crashed compactor's half-written version)."""

    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.snapshot_version})

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if not isinstance(r, SnapshotVersion) or r.published:
            return None
        return "unpublished: no pointer chain reaches this version"
