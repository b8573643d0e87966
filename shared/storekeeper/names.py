"""Name checks done before any I/O, so no key can escape its prefix."""

from __future__ import annotations

import re

from storekeeper.errors import InvalidName
from storekeeper.layout import COLLECTION_RE, check_collection

__all__ = [
    "BUCKET_RE",
    "COLLECTION_RE",
    "check_bucket",
    "check_collection",
    "check_key",
    "check_prefix",
    "invalid_keys",
]

# S3-compatible bucket names (no dots: they break virtual-host TLS and Supabase ids).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024
# one C-level scan instead of a per-character loop: keys are checked for every listed object
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_bucket(name: object, field: str = "bucket") -> str:
    if not isinstance(name, str) or not BUCKET_RE.fullmatch(name) or "--" in name:
        raise InvalidName(
            field, "must be 3-63 chars of a-z, 0-9 and '-', starting and ending alphanumeric", name
        )
    return name


def check_key(key: object, field: str = "key", *, allow_empty: bool = False) -> str:
    """A relative, normalised object key: no '..', '.', empty segments, backslashes or control chars."""
    if not isinstance(key, str):
        raise InvalidName(field, "must be a string", key)
    if key == "":
        if allow_empty:
            return key
        raise InvalidName(field, "must not be empty", key)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidName(field, f"longer than {MAX_KEY_BYTES} bytes", key)
    if key.startswith("/"):
        raise InvalidName(field, "must be relative (no leading '/')", key)
    if _BAD_KEY_CHARS.search(key):
        raise InvalidName(field, "must not contain backslashes or control characters", key)
    if "//" not in key and "/." not in key and not key.startswith("."):
        return key  # no empty, '.' or '..' segment can exist (the common case, without a split)
    parts = key.split("/")
    body = parts[:-1] if key.endswith("/") else parts
    for part in body:
        if part in ("", ".", ".."):
            raise InvalidName(field, "must not contain empty, '.' or '..' path segments", key)
    return key


def invalid_keys(keys: list[str]) -> list[tuple[int, str]]:
    """(index, reason) of every key `check_key` refuses, in order.

    A million inventory keys cost one scan of their joined text when all are fine (the usual
    case); only when that scan finds something suspect is each key checked on its own.
    """
    if not keys:
        return []
    # joined by a backslash: no valid key holds one, and it is printable, so one isprintable() call
    # checks every key for control characters (and flags some harmless ones: checked one by one)
    joined = "\\".join(keys)
    suspect = (
        not joined.isprintable()
        or "" in keys
        or joined.count("\\") != len(keys) - 1  # a key holds a backslash
        or "\\\\" in joined  # an empty key
        or joined.startswith(("\\", "/", "."))
        or joined.endswith("\\")
        or "\\/" in joined
        or "\\." in joined
        or "//" in joined
        or "/." in joined
        or max(map(len, keys)) * 4 > MAX_KEY_BYTES  # UTF-8: at most 4 bytes a character
    )
    if not suspect:
        return []
    bad: list[tuple[int, str]] = []
    for i, k in enumerate(keys):
        try:
            check_key(k)
        except InvalidName as exc:
            bad.append((i, f"{k[:200]!r}: {exc.reason}"))
    return bad


def check_prefix(prefix: object, field: str = "prefix") -> str:
    """A listing prefix: empty, or a key-like string (may end with '/')."""
    return check_key(prefix, field, allow_empty=True)
