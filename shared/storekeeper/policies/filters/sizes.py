"""Filters on bytes: an object's size, a bucket's share of the store's capacity."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from typing import ClassVar, Literal

from pydantic import field_validator, model_validator

from storekeeper.policies.filters import OBJECTISH, Filter, FilterEnv, K, Ratio, Size, register
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.policies.units import format_size, parse_ratio


@register("size")
class SizeFilter(Filter):
    gt: Size | None = None
    lt: Size | None = None
    kinds: ClassVar[frozenset[ResourceKind]] = OBJECTISH

    @model_validator(mode="after")
    def _one(self) -> "SizeFilter":
        if self.gt is None and self.lt is None:
            raise ValueError("size needs gt and/or lt (e.g. gt: 10MB)")
        return self

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if self.gt is not None and not r.size > self.gt:
            return None
        if self.lt is not None and not r.size < self.lt:
            return None
        return f"size {format_size(r.size)}"


Level = Literal["low", "high", "hard"]


@register("usage-ratio")
class UsageRatio(Filter):
    """A bucket whose bytes / the store's capacity is at least `gte` (a ratio or a watermark name)."""

    gte: Ratio | Level = "high"
    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.bucket})

    @field_validator("gte", mode="before")
    @classmethod
    def _ratio(cls, v: object) -> object:
        return v if v in ("low", "high", "hard") else parse_ratio(v)

    def threshold(self, env: FilterEnv) -> float:
        return float(getattr(env, self.gte)) if isinstance(self.gte, str) else self.gte

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if not env.capacity:
            return None
        ratio = env.bucket_usage(r.name) / env.capacity  # cached per run by the environment
        t = self.threshold(env)
        return f"usage {ratio:.3f} >= {t:.3f} of {format_size(env.capacity)}" if ratio >= t else None
