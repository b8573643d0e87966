"""Filters on a resource's labels: a label's presence or value, and kube-janitor's ttl / expires labels."""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from datetime import UTC, datetime
from typing import ClassVar

from storekeeper.policies.filters import Filter, FilterEnv, register
from storekeeper.policies.resources import Resource
from storekeeper.policies.units import parse_duration


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
