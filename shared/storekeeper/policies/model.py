"""The policies file: schema (pydantic) and a loader whose errors name line, policy and field.

A policy is resource + filters + action (Cloud Custodian). Protection is
global and always wins over inclusion (aws-nuke: exclude wins).
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import hashlib
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from storekeeper import config
from storekeeper.errors import ValidationError, from_pydantic
from storekeeper.policies.filters import Duration, Filter, Ratio, SetFilter, Size, build_filter
from storekeeper.policies.resources import ResourceKind


class _Model(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True, populate_by_name=True)


class Watermarks(_Model):
    high: Ratio = 0.85
    low: Ratio = 0.70
    hard: Ratio = 0.95

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.low < self.high <= self.hard:
            raise ValueError(
                f"watermarks must satisfy low < high <= hard, got {self.low}, {self.high}, {self.hard}"
            )
        return self


class LabelsRegistry(_Model):
    """Where labels of vector buckets live (they have none in Supabase): a JSON object in a store."""

    store: str
    key: str = "labels/vector-buckets.json"


class StoreSpec(_Model):
    #: object store URL; omitted = the store the reaper runs against (--store / STOREKEEPER_STORE)
    url: str | None = None
    kind: Literal["objects", "vectors"] = "objects"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is not None:
            from storekeeper.stores import check_store_url

            try:
                check_store_url(v)
            except ValidationError as exc:
                raise ValueError(exc.reason) from None
        return v

    capacity: Size | None = None
    # the defaults satisfy the validators (test_policies): no schema is built to check them again
    watermarks: Watermarks = Field(default_factory=lambda: Watermarks.model_construct())
    #: vector buckets allowed per project (Supabase: 10)
    quota: int = Field(default=10, ge=1, le=1_000_000)
    labels_registry: LabelsRegistry | None = None
    #: listings in flight at once when planning (the key space is split at common prefixes)
    list_workers: int = Field(default=16, ge=1, le=64)
    #: plan from this S3 Inventory report (manifest.json: s3://bucket/key or a path) instead of listing
    inventory: str | None = None


class Defaults(_Model):
    #: nothing younger than this is touched by age-less rules (orphans, retention): > one compaction
    grace: Duration = timedelta(hours=1)
    #: deletions planned per run across all policies; the excess is reported as deferred
    max_deletions: int = Field(default=10_000, ge=0, le=1_000_000_000)
    #: HEAD/label lookups per second, and the retry budget when a backend throttles
    rate_limit: float = Field(default=50.0, gt=0, le=100_000)
    retries: int = Field(default=5, ge=0, le=20)


class Protect(_Model):
    #: label -> value that protects (null: any value protects)
    labels: dict[str, str | None] = Field(
        default_factory=lambda: {"storekeeper:protect": "true", "keep": None, "shared": "true"}
    )
    #: names (bucket names, keys, versions) or globs that are never touched
    names: list[str] = []
    #: label holding an ISO time: protected until then
    protect_until_label: str = "storekeeper:protect-until"
    #: read object metadata (one HEAD per candidate, never per listed object) to honour labels on objects
    object_labels: bool = True


class Limits(_Model):
    max_deletions: int | None = Field(default=None, ge=0, le=1_000_000_000)


PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class Policy(_Model):
    name: PolicyName
    resource: ResourceKind
    store: str
    description: str | None = None
    #: object/delta listings start here (e.g. images/)
    prefix: str = ""
    filters: list[Filter] = []
    action: Literal["delete", "create-overflow"] = "delete"
    limits: Limits = Field(default_factory=lambda: Limits.model_construct())  # as watermarks
    enabled: bool = True

    @field_validator("filters", mode="before")
    @classmethod
    def _build(cls, v: object) -> object:
        if not isinstance(v, list):
            raise ValueError("filters must be a list of mappings, each with a 'type'")
        out: list[Filter] = []
        for i, raw in enumerate(v):
            try:
                out.append(build_filter(raw))
            except pydantic.ValidationError as exc:
                err = from_pydantic(exc)
                ftype = raw.get("type") if isinstance(raw, dict) else "?"
                raise _SubLocError((i, *err.loc), f"({ftype}) {err.reason}") from None
            except ValueError as exc:
                raise _SubLocError((i,), str(exc)) from None
        return out

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        for i, f in enumerate(self.filters):
            if self.resource not in f.kinds:
                kinds = ", ".join(sorted(k.value for k in f.kinds))
                raise _SubLocError(
                    ("filters", i, "type"),
                    f"{f.type} does not apply to resource {self.resource.value} (only {kinds})",
                )
        if sum(isinstance(f, SetFilter) for f in self.filters) > 1:
            raise ValueError("at most one set filter (watermark, count-above-quota, keep-newest) per policy")
        if self.action == "create-overflow" and self.resource is not ResourceKind.bucket:
            raise ValueError("action create-overflow needs resource: bucket")
        if self.prefix and self.resource not in (
            ResourceKind.object,
            ResourceKind.delta,
            ResourceKind.upload,
        ):
            raise ValueError(
                f"prefix only applies to object, delta and upload resources, not {self.resource.value}"
            )
        return self

    @property
    def item_filters(self) -> list[Filter]:
        return [f for f in self.filters if not isinstance(f, SetFilter)]

    @property
    def set_filter(self) -> SetFilter | None:
        return next((f for f in self.filters if isinstance(f, SetFilter)), None)


class PolicyFile(_Model):
    stores: dict[str, StoreSpec] = Field(default_factory=lambda: {"main": StoreSpec()})
    defaults: Defaults = Field(default_factory=Defaults)
    protect: Protect = Field(default_factory=Protect)
    policies: list[Policy] = []

    @model_validator(mode="after")
    def _refs(self) -> Self:
        seen: set[str] = set()
        for i, p in enumerate(self.policies):
            if p.name in seen:
                raise _LocError(("policies", i, "name"), f"duplicate policy name {p.name!r}")
            seen.add(p.name)
            spec = self.stores.get(p.store)
            if spec is None:
                raise _LocError(
                    ("policies", i, "store"), f"unknown store {p.store!r}: define it under stores"
                )
            vec = p.resource in (ResourceKind.vector_bucket, ResourceKind.vector_index)
            if vec != (spec.kind == "vectors"):
                need = "vectors" if vec else "objects"
                raise _LocError(
                    ("policies", i, "store"), f"resource {p.resource.value} needs a store of kind {need}"
                )
        for name, spec in self.stores.items():
            reg = spec.labels_registry
            if reg is not None and reg.store not in self.stores:
                raise _LocError(("stores", name, "labels_registry", "store"), f"unknown store {reg.store!r}")
        return self


class _LocError(ValueError):
    """A problem found by a cross-field check, with the absolute path of the field it is about."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.loc = loc
        super().__init__(msg)


class _SubLocError(_LocError):
    """Like _LocError, with a path relative to the field being validated."""


# -- loading with line numbers -------------------------


class PolicyFileError(ValidationError):
    """Every problem of a policies file, each as `file:line: policy 'x': field: reason`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(source, "invalid policies file:\n  " + "\n  ".join(problems))


class LoadedPolicies(NamedTuple):
    spec: PolicyFile
    source: str
    sha256: str


def _locate(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> tuple[int | None, tuple[Any, ...]]:
    """The line of the deepest known path along a pydantic loc (union tags and the like are skipped)."""
    path: tuple[Any, ...] = ()
    for part in loc:
        if (*path, part) in lines:
            path = (*path, part)
    return lines.get(path), path


def parse_policies(text: str, source: str = "<policies>") -> LoadedPolicies:
    """A policies file's text (YAML, read with safe_yaml's bounds) -> the validated policies."""
    import yaml  # PyYAML is imported by a YAML file's first parse, not by the bundled default's load

    from storekeeper.policies import safe_yaml

    try:
        root, data = safe_yaml.load(text)
    except safe_yaml.YamlProblem as exc:
        line = f":{exc.line}" if exc.line else ""
        raise PolicyFileError(source, [f"{source}{line}: {exc.message}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyFileError(source, [f"{source}{line}: not valid YAML: {exc}"]) from None
    return _validate(data, source, _sha256(text), lambda: safe_yaml.line_map(root))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _validate(
    data: object, source: str, sha256: str, lines_of: Callable[[], dict[tuple[Any, ...], int]]
) -> LoadedPolicies:
    """Parsed data -> the validated policies; `lines_of` (the YAML's line map) is asked only on error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyFileError(
            source, [f"{source}:1: the top level must be a mapping (stores, defaults, protect, policies)"]
        )
    try:
        spec = PolicyFile.model_validate(data)
    except pydantic.ValidationError as exc:
        lines = lines_of()
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            inner = err.get("ctx", {}).get("error")
            if isinstance(inner, _SubLocError):
                loc = loc + inner.loc
            elif isinstance(inner, _LocError):
                loc = inner.loc
            problems.append(
                _describe(source, data, lines, loc, str(inner or err["msg"]).removeprefix("Value error, "))
            )
        raise PolicyFileError(source, problems) from None
    except _LocError as exc:  # pragma: no cover - pydantic wraps it above
        raise PolicyFileError(source, [_describe(source, data, lines_of(), exc.loc, str(exc))]) from None
    return LoadedPolicies(spec=spec, source=source, sha256=sha256)


def _describe(
    source: str, data: dict[str, Any], lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...], msg: str
) -> str:
    line, _ = _locate(loc, lines)
    where = f"{source}:{line}" if line else source
    who = ""
    if len(loc) >= 2 and loc[0] == "policies" and isinstance(loc[1], int):
        pols = data.get("policies")
        name = pols[loc[1]].get("name") if isinstance(pols, list) and isinstance(pols[loc[1]], dict) else None
        who = f" policy {name!r}:" if name else f" policy #{loc[1] + 1}:"
        loc = loc[2:]
    elif len(loc) >= 2 and loc[0] == "stores":
        who = f" store {loc[1]!r}:"
        loc = loc[2:]
    field = ""
    for p in loc:
        if isinstance(p, int):
            field += f"[{p}]"
        elif not p.startswith("function-"):
            field += f".{p}" if field else p
    field = field or "(top)"
    return f"{where}:{who} {field}: {msg}"


#: the bundled default policies, and their parse as JSON (keyed by the YAML text's sha256)
DEFAULT_POLICIES = "default-policies.yaml"
DEFAULT_POLICIES_JSON = "default-policies.json"


def _data_file(name: str) -> str:
    # the package is a directory wherever it runs (layer, pip install); importlib.resources would
    # import its readers on the cold path for the same read
    return (Path(__file__).parent.parent / "data" / name).read_text()


def default_policies_text() -> str:
    return _data_file(DEFAULT_POLICIES)


def parsed_twin(text: str) -> str:
    """The JSON twin of a policies file: its sha256 and its YAML parse (scripts/default_policies_json.py).

    Refuses a parse that JSON would not give back unchanged (YAML timestamps, non-string keys)."""
    from storekeeper.policies import safe_yaml

    _, data = safe_yaml.load(text)
    try:
        same = json.loads(json.dumps(data)) == data
    except TypeError:  # a value JSON has no type for
        same = False
    if not same:
        raise ValueError("the policies' YAML parse does not survive JSON unchanged: no twin")
    return json.dumps({"sha256": _sha256(text), "data": data}, indent=1) + "\n"


def load_default_policies() -> LoadedPolicies:
    """The bundled default, validated from its JSON twin while the twin matches the YAML text.

    PyYAML's import costs a cold start ~35 ms (its reader compiles a large regex), more than
    the rest of the policy load: the default's parse is kept as JSON next to it, keyed by the
    YAML's sha256 (tests/unit/test_policies.py keeps it current). A twin that does not match
    the text, or data that does not validate, falls back to the YAML itself: same result,
    errors with their lines.
    """
    text = default_policies_text()
    sha = _sha256(text)
    try:
        twin = json.loads(_data_file(DEFAULT_POLICIES_JSON))
    except (OSError, ValueError):
        twin = None
    if isinstance(twin, dict) and twin.get("sha256") == sha:
        try:
            return _validate(twin.get("data"), DEFAULT_POLICIES, sha, dict)
        except PolicyFileError:
            pass  # the YAML says where
    return parse_policies(text, DEFAULT_POLICIES)


def load_policies(path: str | os.PathLike[str] | None = None) -> LoadedPolicies:
    """From `path`, else $REAPER_POLICIES, else the bundled default-policies.yaml."""
    chosen = path or os.environ.get(config.REAPER_POLICIES)
    if not chosen:
        return load_default_policies()
    p = Path(chosen)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValidationError("policies", f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_policies(text, str(p))
