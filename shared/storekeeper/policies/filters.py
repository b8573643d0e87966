"""Filters: small registered classes, one concern each (Cloud Custodian style).

An item filter answers "does this resource match, and why" from the resource
alone. A set filter (watermark, quota, keep-newest) sees every candidate and
picks which to act on, e.g. the oldest first until a target is reached; it gets
`eligible()` so protection (which may need labels) is only checked for the
candidates it actually reaches.
"""

from __future__ import annotations

import fnmatch
import math
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from storekeeper.policies.registry import Registry
from storekeeper.policies.resources import Delta, Resource, ResourceKind, SnapshotVersion
from storekeeper.policies.units import format_duration, format_size, parse_duration, parse_ratio, parse_size

# the JSON Schema says what a person writes (`storekeeper policies schema`), not the parsed type
_DURATION_SCHEMA = {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[wdhmsWDHMS]\s*)+$"}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP]?[iI]?[bB]?)\s*$"},
    ]
}
Duration = Annotated[timedelta, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
Ratio = Annotated[float, BeforeValidator(parse_ratio)]
K = ResourceKind
ALL_KINDS = frozenset(ResourceKind)
OBJECTISH = frozenset({K.object, K.delta, K.snapshot_version})


class FilterEnv(Protocol):
    """What a filter may ask the planner about the world (all cached per run)."""

    now: datetime
    quota: int
    high: float
    low: float
    hard: float
    capacity: int | None

    def usage_bytes(self) -> int: ...

    def bucket_usage(self, bucket: str) -> int: ...

    def freed_bytes(self, r: Resource) -> int: ...

    def population(self) -> list[Resource]: ...


@dataclass
class Selection:
    chosen: list[tuple[Resource, str]] = field(default_factory=list)
    passed: list[tuple[Resource, str]] = field(default_factory=list)  # matched but not needed
    notes: list[str] = field(default_factory=list)


class Filter(BaseModel):
    """A registered filter; `register(name)` sets `type_name`, and `type` must say it."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    type: str
    type_name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[ResourceKind]] = ALL_KINDS
    needs_labels: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _type(cls, data: Any) -> Any:
        """`type` defaults to the registered name (filters built in code need not repeat it)."""
        if isinstance(data, dict) and "type" not in data:
            return {"type": cls.type_name, **data}
        return data

    @field_validator("type")
    @classmethod
    def _registered_name(cls, v: str) -> str:
        if v != cls.type_name:
            raise ValueError(f"type {v!r} is not this filter's registered name {cls.type_name!r}")
        return v

    @abstractmethod
    def match(self, r: Resource, env: FilterEnv) -> str | None:
        """The reason it matches, or None."""


class SetFilter(Filter):
    def match(self, r: Resource, env: FilterEnv) -> str | None:
        return "candidate"

    @abstractmethod
    def select(
        self, candidates: list[Resource], env: FilterEnv, eligible: Callable[[Resource], bool]
    ) -> Selection:
        """Pick from `candidates` (each passed every item filter); call eligible(r) before choosing r."""


REGISTRY: Registry[type[Filter]] = Registry("filter", attr="type_name")
register = REGISTRY.register


def build_filter(raw: object) -> Filter:
    """Validate one filter mapping by its `type`; errors say which filter and field."""
    if isinstance(raw, Filter):
        return raw
    if not isinstance(raw, dict) or "type" not in raw:
        raise ValueError(
            f"a filter is a mapping with a 'type' (one of {', '.join(REGISTRY.names())}), got {raw!r:.80}"
        )
    cls = REGISTRY.get(str(raw["type"]))
    if cls is None:
        raise ValueError(f"unknown filter type {raw['type']!r}: use one of {', '.join(REGISTRY.names())}")
    return cls.model_validate(raw)


# the same few durations are formatted once per matching resource: 100,000 times in a big run
_duration_text = lru_cache(maxsize=128)(format_duration)


def _age(r: Resource, now: datetime) -> timedelta | None:
    return None if r.created is None else now - r.created


# -- names -------------------------


@register("name-prefix")
class NamePrefix(Filter):
    value: str | list[str]

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        values = [self.value] if isinstance(self.value, str) else self.value
        name = _short(r)
        hit = next((v for v in values if name.startswith(v)), None)
        return None if hit is None else f"name starts with {hit!r}"


@register("name-glob")
class NameGlob(Filter):
    pattern: str | list[str]

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        pats = [self.pattern] if isinstance(self.pattern, str) else self.pattern
        hit = next(
            (p for p in pats if fnmatch.fnmatchcase(_short(r), p) or fnmatch.fnmatchcase(r.name, p)), None
        )
        return None if hit is None else f"name matches {hit!r}"


@register("name-regex")
class NameRegex(Filter):
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        return f"name matches /{self.pattern}/" if re.search(self.pattern, _short(r)) else None


def _short(r: Resource) -> str:
    """Object keys are matched relative to nothing (full key); other kinds by their name."""
    return r.name


# -- age and TTL ---------------------------------------------------------------------------------


@register("older-than")
class OlderThan(Filter):
    age: Duration

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        age = _age(r, env.now)
        if age is None or age < self.age:
            return None
        return f"older than {_duration_text(self.age)}"


@register("ttl")
class Ttl(Filter):
    """kube-janitor style: `ttl=24h` counts from creation, `expires=<ISO time>` is absolute."""

    ttl_label: str = "ttl"
    expires_label: str = "expires"
    needs_labels: ClassVar[bool] = True

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        labels = r.labels or {}
        if self.expires_label in labels:
            at = parse_time(labels[self.expires_label])
            if at is not None and at <= env.now:
                return f"expired at {at.isoformat()} ({self.expires_label} label)"
        if self.ttl_label in labels and r.created is not None:
            try:
                ttl = parse_duration(labels[self.ttl_label])
            except ValueError:
                return None  # an unreadable TTL never deletes
            if r.created + ttl <= env.now:
                return f"ttl {labels[self.ttl_label]} since creation has passed"
        return None


def parse_time(text: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- labels -------------------------


@register("label")
class Label(Filter):
    """`key` present (and equal to `value` if given); `absent: true` inverts."""

    key: str
    value: str | None = None
    absent: bool = False
    needs_labels: ClassVar[bool] = True

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        labels = r.labels or {}
        present = self.key in labels and (self.value is None or labels[self.key] == self.value)
        if self.absent:
            return None if present else f"no label {self.key}"
        if not present:
            return None
        return f"label {self.key}={labels[self.key]}"


# -- sizes and usage -------------------------


@register("size")
class SizeFilter(Filter):
    gt: Size | None = None
    lt: Size | None = None
    kinds: ClassVar[frozenset[ResourceKind]] = OBJECTISH

    @model_validator(mode="after")
    def _one(self) -> SizeFilter:
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


# -- set filters -------------------------


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
    def _order(self) -> CountAboveQuota:
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


# -- snapshot / delta facts --------------------------------------------------------------------------


@register("unpublished")
class Unpublished(Filter):
    """A snapshot version no pointer chain reached (a crashed compactor's half-written version)."""

    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.snapshot_version})

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if not isinstance(r, SnapshotVersion) or r.published:
            return None
        return "unpublished: no pointer chain reaches this version"


@register("applied")
class Applied(Filter):
    """A delta already in the live manifest's `applied` ledger (merged, but not yet removed)."""

    kinds: ClassVar[frozenset[ResourceKind]] = frozenset({K.delta})

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        if not isinstance(r, Delta) or not r.applied:
            return None
        return f"applied by live version {r.live_version}"


def describe(f: Filter) -> str:
    data: dict[str, Any] = f.model_dump(exclude={"type"}, exclude_defaults=True)
    return f.type + (f" {data}" if data else "")
