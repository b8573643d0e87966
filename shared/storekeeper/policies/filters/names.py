"""Filters on a resource's name: a prefix, a glob, a regular expression."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import fnmatch
import re

from pydantic import field_validator

from storekeeper.policies.filters import Filter, FilterEnv, register
from storekeeper.policies.resources import Resource


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
