"""Wall-clock timing with `perf_counter`: the figures are what a caller would wait for."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timer:
    seconds: float = 0.0
    start: float = 0.0

    def elapsed(self) -> float:
        """Seconds so far inside the block (`seconds` is only set when it ends)."""
        return time.perf_counter() - self.start


@contextmanager
def timed() -> Iterator[Timer]:
    """`with timed() as t: ...` then read `t.seconds` (set even if the block raises)."""
    t = Timer(start=time.perf_counter())
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - t.start


def rate(count: float, seconds: float) -> float:
    """Items per second; a zero duration (clock resolution) counts as one microsecond, never as infinity."""
    return count / max(seconds, 1e-6)


def median(values: list[float]) -> float:
    return float(statistics.median(values))
