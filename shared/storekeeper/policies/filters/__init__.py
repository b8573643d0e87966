"""Filters: small registered classes, one concern each (Cloud Custodian style).

The registry knows every filter's name and the module that defines it; a filter's module (and its
pydantic class) is imported when a policy file first names it, so the default policies' first run
creates the four filter classes it uses, not all thirteen. `from storekeeper.policies.filters import
OlderThan` still works (PEP 562).

An item filter answers "does this resource match, and why" from the resource
alone. A set filter (watermark, quota, keep-newest) sees every candidate and
picks which to act on, e.g. the oldest first until a target is reached; it gets
`eligible()` so protection (which may need labels) is only checked for the
candidates it actually reaches.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema, field_validator, model_validator

from storekeeper.lazy import lazy_exports
from storekeeper.policies.registry import Registry
from storekeeper.policies.resources import Resource, ResourceKind
from storekeeper.policies.units import parse_duration, parse_ratio, parse_size

if TYPE_CHECKING:
    from storekeeper.policies.filters.age import OlderThan
    from storekeeper.policies.filters.applied import Applied
    from storekeeper.policies.filters.labels import Label, Ttl, parse_time
    from storekeeper.policies.filters.names import NameGlob, NamePrefix, NameRegex
    from storekeeper.policies.filters.quotas import CountAboveQuota, Watermark
    from storekeeper.policies.filters.sizes import SizeFilter, UsageRatio
    from storekeeper.policies.filters.versions import KeepNewest, Unpublished

__all__ = [
    "ALL_KINDS",
    "MODULES",
    "OBJECTISH",
    "REGISTRY",
    "Applied",
    "CountAboveQuota",
    "Duration",
    "Filter",
    "FilterEnv",
    "KeepNewest",
    "Label",
    "NameGlob",
    "NamePrefix",
    "NameRegex",
    "OlderThan",
    "Ratio",
    "Selection",
    "SetFilter",
    "Size",
    "SizeFilter",
    "Ttl",
    "Unpublished",
    "UsageRatio",
    "Watermark",
    "build_filter",
    "describe",
    "parse_time",
    "register",
]

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


class Selection:
    """What a set filter picked (a plain class: a dataclass costs a cold start ~2 M instructions)."""

    __slots__ = ("chosen", "notes", "passed")

    def __init__(
        self,
        chosen: list[tuple[Resource, str]] | None = None,
        passed: list[tuple[Resource, str]] | None = None,  # matched but not needed
        notes: list[str] | None = None,
    ) -> None:
        self.chosen = [] if chosen is None else chosen
        self.passed = [] if passed is None else passed
        self.notes = [] if notes is None else notes


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


#: every filter's name -> the module that registers it (imported on the name's first use)
MODULES = {
    "name-prefix": "names",
    "name-glob": "names",
    "name-regex": "names",
    "older-than": "age",
    "ttl": "labels",
    "label": "labels",
    "size": "sizes",
    "usage-ratio": "sizes",
    "watermark": "quotas",
    "count-above-quota": "quotas",
    "keep-newest": "versions",
    "unpublished": "versions",
    "applied": "applied",
}
REGISTRY: Registry[type[Filter]] = Registry(
    "filter", attr="type_name", modules={name: f"{__name__}.{m}" for name, m in MODULES.items()}
)
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


def describe(f: Filter) -> str:
    data: dict[str, Any] = f.model_dump(exclude={"type"}, exclude_defaults=True)
    return f.type + (f" {data}" if data else "")


#: the filter classes by name, each from its module on first use
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "NamePrefix": f"{__name__}.names",
        "NameGlob": f"{__name__}.names",
        "NameRegex": f"{__name__}.names",
        "OlderThan": f"{__name__}.age",
        "Ttl": f"{__name__}.labels",
        "Label": f"{__name__}.labels",
        "parse_time": f"{__name__}.labels",
        "SizeFilter": f"{__name__}.sizes",
        "UsageRatio": f"{__name__}.sizes",
        "Watermark": f"{__name__}.quotas",
        "CountAboveQuota": f"{__name__}.quotas",
        "KeepNewest": f"{__name__}.versions",
        "Unpublished": f"{__name__}.versions",
        "Applied": f"{__name__}.applied",
    },
)
