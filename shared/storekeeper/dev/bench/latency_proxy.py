"""A loopback TCP proxy that adds a fixed delay to every HTTP request: S3's round trip on a laptop.

Each connection is pumped both ways; the first bytes a client sends after the server last answered
(a new request on a kept-alive connection) wait `delay` seconds before they are forwarded. Bodies
sent in several chunks are delayed once, so every request pays the delay once, whatever its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("latency proxy did not start")
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        answered = [True]  # the server has answered since the client last sent: the next bytes are a request

        async def upstream() -> None:
            while data := await reader.read(65536):
                if answered[0]:
                    answered[0] = False
                    self.requests += 1
                    await asyncio.sleep(self.delay)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                answered[0] = True
                writer.write(data)
                await writer.drain()
            writer.close()

        with contextlib.suppress(OSError, asyncio.CancelledError):
            await asyncio.gather(upstream(), downstream())


@contextlib.contextmanager
def latency_proxy(endpoint_url: str, delay: float) -> Iterator[LatencyProxy]:
    """A running proxy in front of `endpoint_url` (http://host:port) for the duration of the block."""
    hostport = endpoint_url.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    proxy = LatencyProxy(host or "127.0.0.1", int(port), delay).start()
    try:
        yield proxy
    finally:
        proxy.stop()
