"""Set filters that clean down to a target, oldest first: the usage watermark and the count quota."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field, model_validator

from storekeeper.policies.filters import FilterEnv, K, Ratio, Selection, SetFilter, register
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.policies.units import format_size


def _oldest_first(
    sel: Selection,
    candidates: list[Resource],
    eligible: Callable[[Resource], bool],
    *,
    start: float,
    target: float,
    weight: Callable[[Resource], float],
    chosen: str,
    passed: str,
) -> float:
    """Choose eligible candidates, oldest first, until `start` minus their weights reaches `target`.

    Shared by the watermark (bytes) and the count quota (buckets); returns what remains, so the
    caller can say when nothing more was eligible instead of looping.
    """
    remaining = start
    for r in sorted(candidates, key=lambda c: (c.created or datetime.max.replace(tzinfo=UTC), c.name)):
        if remaining <= target:
            sel.passed.append((r, passed))
            continue
        if not eligible(r):
            continue
        remaining -= weight(r)
        sel.chosen.append((r, chosen))
    return remaining


@register("watermark")
class Watermark(SetFilter):
    """Usage >= high: delete the oldest eligible candidates until usage <= low; stop if none are left."""

    high: Ratio | None = None
    low: Ratio | None = None
    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.object, K.delta, K.snapshot_version})

    def select(
        self, candidates: list[Resource], env: FilterEnv, eligible: Callable[[Resource], bool]
    ) -> Selection:
        sel = Selection()
        high = self.high if self.high is not None else env.high
        low = self.low if self.low is not None else env.low
        if not env.capacity:
            sel.notes.append("store has no capacity configured: watermark not evaluated")
            return sel
        usage = env.usage_bytes()
        ratio = usage / env.capacity
        if ratio < high:
            sel.notes.append(
                f"usage {format_size(usage)} = {ratio:.1%} of capacity, below high watermark {high:.0%}"
            )
            return sel
        target = low * env.capacity
        # on a versioned bucket deleting a plain object frees nothing (its noncurrent version stays
        # billed): such candidates are never chosen to reach the low watermark
        remaining = _oldest_first(
            sel,
            candidates,
            lambda r: env.freed_bytes(r) > 0 and eligible(r),
            start=usage,
            target=target,
            weight=env.freed_bytes,
            chosen=f"oldest first: usage {ratio:.3f} >= high {high}, cleaning down to low {low}",
            passed=f"not needed: usage already at the low watermark {low}",
        )
        end = remaining / env.capacity
        if remaining > target:
            sel.notes.append(
                f"stopped: nothing more eligible; usage stays at {end:.3f} above low watermark {low} "
                f"(freed {format_size(usage - remaining)})"
            )
        else:
            sel.notes.append(f"usage {ratio:.3f} -> {end:.3f} after {len(sel.chosen)} deletion(s)")
        return sel


@register("count-above-quota")
class CountAboveQuota(SetFilter):
    """Buckets >= threshold x quota: delete the oldest eligible until count <= target x quota."""

    threshold: Ratio = 0.9
    target: Ratio = 0.8
    quota: int | None = Field(default=None, ge=1)
    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.vector_bucket, K.bucket})

    @model_validator(mode="after")
    def _order(self) -> "CountAboveQuota":
        if self.target > self.threshold:
            raise ValueError(f"target {self.target} must not be above threshold {self.threshold}")
        return self

    def select(
        self, candidates: list[Resource], env: FilterEnv, eligible: Callable[[Resource], bool]
    ) -> Selection:
        sel = Selection()
        quota = self.quota or env.quota
        count = len(env.population())
        trigger = math.ceil(self.threshold * quota)
        target = math.floor(self.target * quota)
        if count < trigger:
            sel.notes.append(f"{count} of {quota} allowed, below threshold {trigger}")
            return sel
        remaining = _oldest_first(
            sel,
            candidates,
            eligible,
            start=count,
            target=target,
            weight=lambda r: 1,
            chosen=f"oldest first: {count} of {quota} allowed >= {trigger}, down to {target}",
            passed=f"not needed: count already at target {target}",
        )
        if remaining > target:
            sel.notes.append(f"stopped: nothing more eligible; {remaining} remain, above target {target}")
        else:
            sel.notes.append(f"count {count} -> {remaining} of {quota} after {len(sel.chosen)} deletion(s)")
        return sel
