"""Read access for planning: listings cached per run, resumable after throttling, rate-limited lookups.

Listing is the only per-object cost of planning. A throttled listing resumes
from the last key seen (start_after) instead of starting over; HEADs and label
lookups go through one token bucket so a big run cannot hammer the backend.

Our retries never multiply the client's: a store whose client retries each request itself (S3:
botocore's standard mode) gets only the attempts left of `netconfig.max_attempts()`
(`netconfig.outer_attempts`), so a page or a lookup sends at most that many requests to a failing
endpoint (one listing page was up to 3 x 6 = 18 before). `defaults.retries` can lower it further.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from storekeeper.errors import BackendError, StoreError
from storekeeper.netconfig import outer_attempts
from storekeeper.stores.base import ObjectInfo, ObjectStore

T = TypeVar("T")
RETRYABLE = (BackendError,)


class RateLimiter:
    """A token bucket: at most `rate` calls per second on average, bursts of `burst`."""

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                time.sleep((1 - self.tokens) / self.rate)
                self.tokens = 0.0
                self.stamp = time.monotonic()
            else:
                self.tokens -= 1


class Access:
    def __init__(self, rate: float, retries: int) -> None:
        self.limiter = RateLimiter(rate)
        self.retries = retries

    def attempts(self, store: ObjectStore | None) -> int:
        """Our attempts per request of `store` (None: a client without retries of its own)."""
        return min(self.retries + 1, outer_attempts(store.own_attempts() if store is not None else 1))

    def call(self, fn: Callable[[], T], store: ObjectStore | None = None) -> T:
        """One rate-limited lookup (of `store`, if it is one), retried with exponential backoff when
        the backend fails transiently, within the attempts `netconfig` allows one request."""
        # imported here: a run whose policies look nothing up (the default ones) never loads tenacity
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        @retry(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(self.attempts(store)),
            wait=wait_exponential(multiplier=0.2, max=10),
            reraise=True,
        )
        def attempt() -> T:
            self.limiter.acquire()
            return fn()

        return attempt()

    def list(self, store: ObjectStore, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under `prefix` after `start_after` (all pages); a failure mid-way resumes
        after the last key. Failures count per page (since the last key listed): a long listing
        survives scattered failures, one page is tried `attempts(store)` times at most."""
        last = start_after
        failures = 0
        limit = self.attempts(store)
        while True:
            try:
                for info in store.list(prefix, start_after=last):
                    last = info.key
                    failures = 0
                    yield info
                return
            except RETRYABLE as exc:
                failures += 1
                if failures >= limit:
                    after = f" after {last}" if last else ""
                    raise StoreError(
                        store.url, prefix, f"listing failed {failures} times{after}, last: {exc}"
                    ) from exc
                time.sleep(min(10.0, 0.2 * 2**failures))
