"""The age filter: older than a duration, counted from creation (or last modification)."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from datetime import datetime, timedelta
from functools import lru_cache

from storekeeper.policies.filters import Duration, Filter, FilterEnv, register
from storekeeper.policies.resources import Resource
from storekeeper.policies.units import format_duration

# the same few durations are formatted once per matching resource: 100,000 times in a big run
_duration_text = lru_cache(maxsize=128)(format_duration)


def _age(r: Resource, now: datetime) -> timedelta | None:
    return None if r.created is None else now - r.created


@register("older-than")
class OlderThan(Filter):
    age: Duration

    def match(self, r: Resource, env: FilterEnv) -> str | None:
        age = _age(r, env.now)
        if age is None or age < self.age:
            return None
        return f"older than {_duration_text(self.age)}"
