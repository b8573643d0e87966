"""Overflow bucket groups: `<base>`, `<base>-1`, `<base>-2`, ... and least-full write routing.

An earlier tool's names derived from the bucket *count* collided after a deletion, usage
read from one listing page was wrong, percentages were compared with ratios,
and several writers raced to create buckets. So here: the next name is the
highest suffix + 1, creation is create-only and retried on
BucketAlreadyExists, usage follows every listing page, and every watermark is a
ratio in [0, 1] (anything else is rejected).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from storekeeper.errors import BucketAlreadyExists, StoreError, ValidationError
from storekeeper.names import check_bucket
from storekeeper.stores.base import ObjectStore

DEFAULT_HARD_WATERMARK = 0.95
MAX_CREATE_ATTEMPTS = 20


def check_ratio(value: float, field: str) -> float:
    """Ratios are 0-1: 95 (a percentage) is a bug, not a watermark."""
    if not (0.0 < float(value) <= 1.0):
        raise ValidationError(field, "must be a ratio in (0, 1], e.g. 0.95 (not a percentage)", value)
    return float(value)


def overflow_suffix(name: str, base: str) -> int | None:
    """0 for the base itself, N for `<base>-N`, None for names outside the group."""
    if name == base:
        return 0
    m = re.fullmatch(re.escape(base) + r"-([1-9][0-9]{0,8})", name)
    return int(m.group(1)) if m else None


def group_members(names: Iterable[str], base: str) -> list[str]:
    """The group's bucket names, base first then by suffix number (not by string)."""
    found = [(s, n) for n in set(names) if (s := overflow_suffix(n, base)) is not None]
    return [n for _, n in sorted(found)]


def next_overflow_name(base: str, existing: Iterable[str]) -> str:
    """`<base>-(max suffix + 1)`: never reuses a name even after members were deleted."""
    check_bucket(base, "base")
    suffixes = [s for n in existing if (s := overflow_suffix(n, base)) is not None]
    name = f"{base}-{max(suffixes, default=0) + 1}"
    return check_bucket(name, "overflow bucket")


def create_next_bucket(store: ObjectStore, base: str, *, also_seen: Iterable[str] = ()) -> str:
    """Create the next member of the group; a lost race moves on to the next suffix.

    The name comes from a fresh bucket listing (plus names the caller knows), so
    a member deleted since the caller last looked is not re-created under its old name
    unless it is the highest suffix.
    """
    seen = {b.name for b in store.list_buckets()} | set(also_seen)
    for _ in range(MAX_CREATE_ATTEMPTS):
        name = next_overflow_name(base, seen)
        try:
            store.create_bucket(name)
        except BucketAlreadyExists:
            seen.add(name)
            continue
        return name
    raise StoreError(
        store.url,
        None,
        f"could not create an overflow bucket of {base!r} "
        f"after {MAX_CREATE_ATTEMPTS} attempts (names taken: {sorted(seen)[-3:]})",
    )


class MemberUsage(NamedTuple):
    bucket: str
    bytes: int
    objects: int
    capacity: int

    @property
    def ratio(self) -> float:
        return self.bytes / self.capacity


def group_usage(store: ObjectStore, base: str, capacity: int) -> list[MemberUsage]:
    """Usage of every member, each from a full (all pages) listing."""
    if capacity <= 0:
        raise ValidationError("capacity", "must be a positive number of bytes", capacity)
    names = group_members((b.name for b in store.list_buckets()), base)
    out = []
    for name in names:
        u = store.for_bucket(name).usage()
        out.append(MemberUsage(name, u.billed_bytes, u.objects, capacity))  # noncurrent versions count
    return out


def least_full_bucket(
    store: ObjectStore, base: str, capacity: int, *, hard: float = DEFAULT_HARD_WATERMARK, incoming: int = 0
) -> str | None:
    """The member with the lowest usage that stays under `hard` after `incoming` more bytes, or None."""
    check_ratio(hard, "hard")
    room = [m for m in group_usage(store, base, capacity) if (m.bytes + incoming) / capacity <= hard]
    if not room:
        return None
    return min(room, key=lambda m: (m.bytes, overflow_suffix(m.bucket, base) or 0)).bucket


def ensure_room(
    store: ObjectStore, base: str, capacity: int, *, hard: float = DEFAULT_HARD_WATERMARK, incoming: int = 0
) -> tuple[str, bool]:
    """A member with room, creating the next overflow bucket only when none has: (bucket, created)."""
    found = least_full_bucket(store, base, capacity, hard=hard, incoming=incoming)
    if found is not None:
        return found, False
    return create_next_bucket(store, base), True
