"""Network faults end quickly and clearly: one place for timeouts, retries and deadlines.

botocore's defaults wait 60 s per read and retry up to 5 times, so an endpoint that
accepts connections and never answers held `status` for minutes. Every
client storekeeper makes takes its timeouts from here: boto3 clients (S3, SQS,
DynamoDB) through `boto_config()`, the Supabase/storage3 client through
`HTTP_TIMEOUT_S`. On top, a process-wide *deadline* (set by a command or a handler: the
Lambda's remaining time) is checked before every AWS request is sent, so a run that
keeps hitting a dead endpoint stops at its deadline with a message naming it, instead
of failing call after call.

Environment overrides (seconds / attempts): STOREKEEPER_CONNECT_TIMEOUT (3),
STOREKEEPER_READ_TIMEOUT (10), STOREKEEPER_MAX_ATTEMPTS (3, first try included). The attempts
bound the requests of one call whoever retries: the client's own retry mode and a loop of ours
around it share them (`outer_attempts`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from storekeeper.errors import StorekeeperError


def _env_float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number of seconds, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"environment variable {name} must be between {lo:g} and {hi:g}, got {raw!r}")
    return value


def connect_timeout() -> float:
    return _env_float("STOREKEEPER_CONNECT_TIMEOUT", 3.0, 0.1, 60.0)


def read_timeout() -> float:
    return _env_float("STOREKEEPER_READ_TIMEOUT", 10.0, 0.1, 300.0)


def max_attempts() -> int:
    return int(_env_float("STOREKEEPER_MAX_ATTEMPTS", 3, 1, 10))


def outer_attempts(own: int) -> int:
    """Attempts a retry loop of ours may make around a call that already tries `own` times itself
    (botocore's retry mode): the requests one call sends stay within `max_attempts()`, never its
    product with our own retries (a failing endpoint was sent up to 18 requests per listing page)."""
    return max(1, max_attempts() // max(1, own))


def client_attempts(client: Any) -> int:
    """Tries one call of a botocore client makes by itself (its retry config, first try included)."""
    retries = dict(getattr(getattr(getattr(client, "meta", None), "config", None), "retries", None) or {})
    if retries.get("total_max_attempts"):
        return int(retries["total_max_attempts"])
    if retries.get("max_attempts") is not None:
        return int(retries["max_attempts"]) + 1  # botocore's max_attempts counts retries only
    return 5 if retries.get("mode", "legacy") == "legacy" else 3  # botocore's mode defaults


def boto_config(**extra: Any) -> Any:
    """A botocore Config with bounded connect/read timeouts and standard-mode retries."""
    from botocore.config import Config

    return Config(
        connect_timeout=connect_timeout(),
        read_timeout=read_timeout(),
        retries={"mode": "standard", "total_max_attempts": max_attempts()},
        **extra,
    )


# -- the deadline ----------------------------------------------------------------------------------
class DeadlineExceeded(StorekeeperError):
    """The command's (or the Lambda invocation's) time is up; names the endpoint it was about to call."""


_lock = threading.Lock()
_deadline: tuple[float, float] | None = None  # (monotonic deadline, the budget in seconds)


def set_deadline(seconds: float | None) -> None:
    """From now, `seconds` for the whole run (None: no deadline)."""
    global _deadline
    with _lock:
        _deadline = None if seconds is None else (time.monotonic() + seconds, seconds)


def set_deadline_from_env() -> None:
    """STOREKEEPER_DEADLINE (seconds): a deadline for a whole CLI run, e.g. in cron jobs."""
    if os.environ.get("STOREKEEPER_DEADLINE", "").strip():
        set_deadline(_env_float("STOREKEEPER_DEADLINE", 0, 1, 7 * 24 * 3600))
    else:
        set_deadline(None)


def set_deadline_from_context(context: Any, *, reserve_s: float = 2.0) -> None:
    """The Lambda's remaining time, less a reserve to answer (the handler's own deadline)."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    if callable(get):
        set_deadline(max(0.0, get() / 1000 - reserve_s))


def with_deadline(handler: Any) -> Any:
    """Handler decorator: the invocation's network calls stop at the Lambda's remaining time (less
    a reserve), with DeadlineExceeded naming the endpoint, instead of being killed mid-call."""
    import functools

    @functools.wraps(handler)
    def wrapped(event: Any, context: Any) -> Any:
        set_deadline_from_context(context)
        try:
            return handler(event, context)
        finally:
            set_deadline_from_env()  # back to the process's own (none, or STOREKEEPER_DEADLINE)

    return wrapped


def remaining() -> float | None:
    with _lock:
        return None if _deadline is None else _deadline[0] - time.monotonic()


def check(endpoint: str) -> None:
    """Raise DeadlineExceeded if the deadline has passed (called before each request is sent)."""
    with _lock:
        current = _deadline
    if current is not None and time.monotonic() >= current[0]:
        raise DeadlineExceeded(
            f"deadline of {current[1]:g}s passed: stopped before calling {endpoint} "
            "(is the endpoint reachable? see STOREKEEPER_DEADLINE)"
        )


# -- endpoints that do not answer ------------------------------------------------------------------
class EndpointUnreachable(StorekeeperError):
    """A call to this endpoint just failed to connect or timed out after its retries: fail fast."""


#: after a call to an endpoint failed for a network reason (its retries included), further calls
#: to it fail at once for this long, so a run with many calls ends in seconds, not minutes
UNREACHABLE_COOLDOWN_S = 30.0
_unreachable: dict[str, tuple[float, str]] = {}


def _endpoint(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _network_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError

    return isinstance(exc, BotoConnectionError | ReadTimeoutError)


def _before_send(request: Any, **_: Any) -> None:
    url = str(getattr(request, "url", "?")).split("?")[0]
    check(url)
    with _lock:
        down = _unreachable.get(_endpoint(url))
    if down is not None and time.monotonic() - down[0] < UNREACHABLE_COOLDOWN_S:
        raise EndpointUnreachable(
            f"{_endpoint(url)} did not answer a moment ago ({down[1]}); not calling it again for "
            f"{UNREACHABLE_COOLDOWN_S:g}s. Check the endpoint (AWS_ENDPOINT_URL) and the network."
        )


def _after_call_error(exception: BaseException | None = None, context: Any = None, **_: Any) -> None:
    if exception is None or not _network_error(exception):
        return
    url = str(getattr(exception, "kwargs", {}).get("endpoint_url", "") or "")
    if not url:
        return
    with _lock:
        _unreachable[_endpoint(url)] = (time.monotonic(), str(exception)[:200])


def _after_call(http_response: Any = None, **_: Any) -> None:
    url = str(getattr(http_response, "url", "") or "")
    if url:
        with _lock:
            _unreachable.pop(_endpoint(url), None)


def forget_unreachable() -> None:
    with _lock:
        _unreachable.clear()


def guard(client: Any) -> Any:
    """Make a boto3 client check the deadline and known-dead endpoints before every request."""
    client.meta.events.register("before-send", _before_send)
    client.meta.events.register("after-call-error", _after_call_error)
    client.meta.events.register("after-call", _after_call)
    return client


set_deadline_from_env()
