"""Our retries never multiply botocore's: against an endpoint answering 503 to everything, one
listing page or one lookup sends at most `STOREKEEPER_MAX_ATTEMPTS` requests (docs/network.md).

Before, botocore's standard mode (3 attempts) ran inside the planner's own loop (`defaults.retries`
5: 6 attempts), so a failing endpoint got 18 requests per page and per HEAD. A local HTTP server
counts what arrives; nothing of storekeeper is faked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from storekeeper.errors import BackendError, StoreError
from storekeeper.policies.access import Access
from storekeeper.stores.base import ObjectInfo
from storekeeper.stores.local import LocalStore
from storekeeper.stores.s3 import S3Store, make_client

BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class _Unavailable(ThreadingHTTPServer):
    requests: list[str]


class _Answer503(BaseHTTPRequestHandler):
    server: _Unavailable

    def _fail(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _fail

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def unavailable(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Unavailable]:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    server = _Unavailable(("127.0.0.1", 0), _Answer503)
    server.requests = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()
    t.join(5)


def _store(server: _Unavailable) -> S3Store:
    return S3Store("bucket", client=make_client(f"http://127.0.0.1:{server.server_address[1]}"))


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_failing_listing_page_is_sent_at_most_max_attempts_times(
    unavailable: _Unavailable, monkeypatch: pytest.MonkeyPatch, max_attempts: int
) -> None:
    monkeypatch.setenv("STOREKEEPER_MAX_ATTEMPTS", str(max_attempts))
    store = _store(unavailable)
    assert store.own_attempts() == max_attempts  # botocore's standard mode, from netconfig
    with pytest.raises(StoreError, match="listing failed 1 times"):
        list(Access(rate=1000, retries=5).list(store, "delta/"))
    assert len(unavailable.requests) == max_attempts
    assert all(r.startswith("GET /bucket?list-type=2") for r in unavailable.requests)


def test_a_failing_lookup_is_sent_at_most_max_attempts_times(
    unavailable: _Unavailable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOREKEEPER_MAX_ATTEMPTS", "3")
    store = _store(unavailable)
    with pytest.raises(BackendError):
        Access(rate=1000, retries=5).call(lambda: store.head("delta/a"), store)
    assert unavailable.requests == ["HEAD /bucket/delta/a"] * 3


class _Flaky(LocalStore):
    """A store without retries of its own: each listing request fails `fails` times, then lists
    2 keys (a page) and fails on the next page. Our loop is then the only one: it resumes after
    the last key listed, each page tried at most STOREKEEPER_MAX_ATTEMPTS times."""

    def __init__(self, *a: object, fails: int, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.fails, self.calls, self._left = fails, 0, fails

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:  # type: ignore[override]
        self.calls += 1
        if self._left:
            self._left -= 1
            raise BackendError(self.url, prefix, "503 from the flaky store")
        self._left = self.fails
        for n, info in enumerate(super().list(prefix, start_after=start_after)):
            if n == 2:  # a page's worth: the next request fails again
                raise BackendError(self.url, prefix, "503 after a page")
            yield info


def test_a_store_without_own_retries_gets_max_attempts_per_page_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOREKEEPER_MAX_ATTEMPTS", "3")
    monkeypatch.setattr("storekeeper.policies.access.time.sleep", lambda _s: None)
    store = _Flaky(tmp_path / "b", fails=1)
    keys = [f"k/{i}" for i in range(5)]
    for k in keys:
        store.put(k, b"x")
    assert store.own_attempts() == 1
    got = [i.key for i in Access(rate=1000, retries=5).list(store, "k/")]
    assert got == keys  # every key once: each failure resumed after the last key listed
    never = _Flaky(tmp_path / "c", fails=3)
    never.put("k/0", b"x")
    with pytest.raises(StoreError, match="listing failed 3 times"):
        list(Access(rate=1000, retries=5).list(never, "k/"))
    assert never.calls == 3
