"""Human units in policy files: sizes (1GB), durations (30d) and ratios (0.85, never 85).

Each parser names what it expected, because a policy file is written by people
and a silent misreading (85 read as 8500 %) is how an earlier overflow tool
created a bucket at 1 % usage.
"""

from __future__ import annotations

import re
from datetime import timedelta

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40,
    "p": 10**15, "pb": 10**15, "pib": 2**50,
}  # fmt: skip
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: longer than any retention anyone means (and far below timedelta's own limit)
MAX_DURATION = timedelta(days=100 * 366)
#: a exabyte: more than any store holds (a typo in a unit must not become a silent giant)
MAX_SIZE = 10**18


def parse_size(value: object) -> int:
    """Bytes from an int or '500MB' / '1GiB' (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"size must be bytes or a string like '1GB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return _size_in_range(value, value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            number = float(m.group(1))
            if number > MAX_SIZE:
                return _size_in_range(MAX_SIZE + 1, value)
            return _size_in_range(int(number * _SIZE_UNITS[m.group(2).lower()]), value)
    raise ValueError(f"size must be bytes or a string like '500MB', '1GB', '2GiB', got {value!r}")


def _size_in_range(size: int, value: object) -> int:
    if size > MAX_SIZE:
        raise ValueError(f"size {value!r:.40} is larger than 1EB: check the unit")
    return size


def parse_duration(value: object) -> timedelta:
    """A timedelta from '30d', '48h', '1h30m', '90s', '2w' (a bare number is rejected: say the unit)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        text = value.strip()
        pos, total = 0, 0.0
        for m in _DURATION_RE.finditer(text):
            if text[pos : m.start()].strip():
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
            pos = m.end()
        else:
            if pos and not text[pos:].strip():
                if total > MAX_DURATION.total_seconds():
                    raise ValueError(f"duration {value!r:.40} is longer than 100 years: check the unit")
                return timedelta(seconds=total)
    raise ValueError(
        f"duration must be a string like '30d', '48h', '15m', '1h30m' (units w/d/h/m/s), got {value!r}"
    )


def parse_ratio(value: object) -> float:
    """A ratio 0-1; 85 or '85%' is refused with the fix spelled out."""
    if isinstance(value, str) and value.strip().endswith("%"):
        raise ValueError(
            f"ratios are written 0-1, not percentages: write {float(value.strip()[:-1]) / 100:g}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"ratio must be a number between 0 and 1, got {value!r}")
    if 1 < value <= 100:
        raise ValueError(f"ratio {value} is above 1: ratios are 0-1 (for {value:g} % write {value / 100:g})")
    if not 0 <= value <= 1:
        raise ValueError(f"ratio must be between 0 and 1, got {value}")
    return float(value)


def format_size(n: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n}"  # pragma: no cover


def format_duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % secs == 0:
            return f"{s // secs}{unit}"
    return f"{s}s"
