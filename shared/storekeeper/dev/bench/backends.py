"""The stores a run measures on: the local directory backend, a real S3 server (SeaweedFS), moto.

Each case asks for a fresh, empty store by name, so no case sees another's
objects. SeaweedFS (and moto_server, for SQS next to it) is started once per
run with `storekeeper.dev.devservers`, the same code the integration tests use, on
free ports of 127.0.0.1, and stopped when the run ends. If a server cannot
start, the reason is recorded and the cases carry on with what works. moto
in-process (`mock_aws`) is only switched on inside `moto_store`, so it never
intercepts the other backends' calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from storekeeper.queues import LocalQueue, Queue
from storekeeper.stores.base import ObjectStore, RequestCounter
from storekeeper.stores.local import LocalStore

#: backends every case can use; "moto" (in-process) is used by the reaper case only
STORE_BACKENDS = ("local", "seaweedfs")


class Backends:
    def __init__(self, root: Path, wanted: list[str], *, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.wanted = wanted
        self.log = log
        self.info: dict[str, str] = {}
        self._servers: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        self._made = 0

    def __enter__(self) -> Backends:
        self.root.mkdir(parents=True, exist_ok=True)
        if "local" in self.wanted:
            self.info["local"] = "local directory store (file://) on this machine's disk"
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
        self._servers.clear()

    # -- servers ---------------------------------------------------------------------
    def _server(self, kind: str) -> Any | None:
        """The running server of `kind` ("seaweedfs" or "moto_server"), started on first use."""
        if kind in self._servers:
            return self._servers[kind]
        from storekeeper.dev import devservers

        start = devservers.seaweedfs if kind == "seaweedfs" else devservers.moto
        try:
            server = self._stack.enter_context(start(self.root / kind))
        except Exception as exc:  # no binary, did not start: say so, go on without it
            self._servers[kind] = None
            self.info[kind] = f"unavailable: {type(exc).__name__}: {str(exc)[:300]}"
            self.log(f"{kind} {self.info[kind]}")
            return None
        self._servers[kind] = server
        what = "SeaweedFS `weed mini`" if kind == "seaweedfs" else "moto_server (SQS)"
        self.info[kind] = f"{what} at {server.endpoint_url}"
        self.log(f"{kind}: {self.info[kind]}")
        return server

    def available(self) -> list[str]:
        """Store backends wanted for this run that work here (starts SeaweedFS if wanted)."""
        return [
            b for b in STORE_BACKENDS if b in self.wanted and (b == "local" or self._server(b) is not None)
        ]

    def _name(self, prefix: str, name: str) -> str:
        self._made += 1
        return f"{prefix}{self._made:03d}-{name}"[:63].rstrip("-")

    # -- stores and queues --------------------------------------------------------------
    def store(self, backend: str, name: str, *, counter: RequestCounter | None = None) -> ObjectStore:
        """A new, empty store (bucket) on `backend`; `name` only makes it recognisable."""
        bucket = self._name("b", name)
        if backend == "local":
            return LocalStore(self.root / "local" / bucket, counter=counter)
        if backend == "seaweedfs":
            from storekeeper.stores.s3 import S3Store

            server = self._server("seaweedfs")
            if server is None:
                raise RuntimeError(f"seaweedfs is not available: {self.info.get('seaweedfs')}")
            client = server.client("s3")
            client.create_bucket(Bucket=bucket)
            return S3Store(bucket, counter=counter, client=client)
        raise ValueError(f"backend: unknown {backend!r} (known: {', '.join(STORE_BACKENDS)})")

    @contextlib.contextmanager
    def moto_store(self, name: str) -> Iterator[ObjectStore]:
        """An S3Store on moto in-process (`mock_aws`), valid inside the block only."""
        import boto3
        from moto import mock_aws

        from storekeeper.stores.s3 import S3Store

        bucket = self._name("b", name)
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=bucket)
            self.info.setdefault("moto", "moto in-process (mock_aws), S3 API without a network")
            yield S3Store(bucket, client=client)

    def queue(self, backend: str, name: str) -> tuple[Queue, str]:
        """A fresh queue to pair with `backend`'s stores, and what kind it is (for the report).

        Next to SeaweedFS it is a FIFO SQS queue on moto_server, like DeltaQueue deployed;
        if moto_server cannot start, a local directory queue (and the report says so).
        """
        qname = self._name("q", name)
        if backend == "seaweedfs":
            server = self._server("moto_server")
            if server is not None:
                from storekeeper.queues import SqsQueue

                client = server.client("sqs")
                url = client.create_queue(QueueName=f"{qname}.fifo", Attributes={"FifoQueue": "true"})[
                    "QueueUrl"
                ]
                return SqsQueue(url, client=client), "sqs fifo (moto_server over HTTP)"
        return LocalQueue(self.root / "queues" / qname), "local directory queue"
