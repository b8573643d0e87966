"""An HTTP proxy in front of a test S3 server that makes conditional CompleteMultipartUpload atomic.

AWS checks `If-None-Match: *` / `If-Match` on CompleteMultipartUpload atomically: of several
uploads of one key completed at once, exactly one wins. SeaweedFS (`weed mini`) and moto_server
check the condition outside any lock (check, then write): measured here, 8 uploads of one key
completed at once gave 2 winners in 1 of 4 rounds on each. Sequential completes are refused
correctly by both. This proxy serialises CompleteMultipartUpload requests per object path (a POST
with `uploadId`), which is exactly the atomicity AWS gives, so the race tests check storekeeper's
handling of the real servers' answers against AWS's semantics instead of pretending the emulators
have it. Every other request passes through untouched (signatures stay valid: the Host header is
forwarded as sent).
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


class CompleteLockProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.completes = 0  # CompleteMultipartUpload requests serialised
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="complete-lock", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CompleteLockProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _lock_for(self, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                completing = self.command == "POST" and "uploadId=" in query
                lock = proxy._lock_for(path) if completing else contextlib.nullcontext()
                with lock:
                    if completing:
                        proxy.completes += 1
                    conn = http.client.HTTPConnection(*proxy.target, timeout=120)
                    try:
                        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                        for name, value in self.headers.items():
                            if name.lower() not in _HOP:
                                conn.putheader(name, value)
                        conn.putheader("Content-Length", str(len(body)))
                        conn.endheaders(body)
                        resp = conn.getresponse()
                        data = resp.read()
                        headers = resp.getheaders()
                    finally:
                        conn.close()
                self.send_response(resp.status, resp.reason)
                for name, value in headers:
                    if name.lower() not in _HOP or (
                        self.command == "HEAD" and name.lower() == "content-length"
                    ):
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler


@contextlib.contextmanager
def complete_lock_proxy(endpoint_url: str) -> Iterator[CompleteLockProxy]:
    """A running proxy in front of `endpoint_url` for the duration of the block."""
    proxy = CompleteLockProxy(endpoint_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()
