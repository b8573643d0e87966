"""The stores a run measures on: the local directory backend and a real S3 server (SeaweedFS).

Each case asks for a fresh, empty store by name, so no case sees another's
objects. SeaweedFS is started once per run, on free ports of 127.0.0.1, and
stopped when the run ends; if it cannot start, the reason is recorded and the
cases carry on with the local backend only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from storekeeper.queues import LocalQueue, Queue
from storekeeper.stores.base import ObjectStore, RequestCounter
from storekeeper.stores.local import LocalStore


class Backends:
    def __init__(self, root: Path, wanted: list[str], *, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.wanted = wanted
        self.log = log
        self.info: dict[str, str] = {}
        self._server: Any = None
        self._server_cm: contextlib.ExitStack | None = None
        self._buckets = 0

    def __enter__(self) -> Backends:
        self.root.mkdir(parents=True, exist_ok=True)
        if "local" in self.wanted:
            self.info["local"] = f"local directory store under {self.root / 'local'}"
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server_cm is not None:
            self._server_cm.close()
            self._server_cm = None

    # -- SeaweedFS ------------------------------------------------------------------
    def _seaweedfs(self) -> Any | None:
        """The running server (started on first use), or None with the reason in `info`."""
        if self._server is not None or "seaweedfs" in self.info:
            return self._server
        try:
            from storekeeper import devservers

            stack = contextlib.ExitStack()
            self._server = stack.enter_context(devservers.seaweedfs(self.root / "seaweedfs"))
            self._server_cm = stack
        except Exception as exc:  # not installed, no binary, did not start: say so, go on
            self.info["seaweedfs"] = f"unavailable: {type(exc).__name__}: {exc}"
            self.log(f"seaweedfs {self.info['seaweedfs']}")
            return None
        self.info["seaweedfs"] = self._server.describe()
        self.log(f"seaweedfs: {self.info['seaweedfs']}")
        return self._server

    # -- stores -----------------------------------------------------------------------
    def available(self) -> list[str]:
        """Backends wanted for this run that actually work here (starts SeaweedFS if wanted)."""
        out = []
        for name in self.wanted:
            if name == "local" or (name == "seaweedfs" and self._seaweedfs() is not None):
                out.append(name)
        return out

    def store(self, backend: str, name: str, *, counter: RequestCounter | None = None) -> ObjectStore:
        """A new, empty store (bucket) on `backend`; `name` only makes it recognisable."""
        self._buckets += 1
        bucket = f"b{self._buckets:03d}-{name}"[:63].rstrip("-")
        if backend == "local":
            return LocalStore(self.root / "local" / bucket, counter=counter)
        if backend == "seaweedfs":
            server = self._seaweedfs()
            if server is None:
                raise RuntimeError(f"seaweedfs is not available: {self.info.get('seaweedfs')}")
            store: ObjectStore = server.store(bucket, counter=counter)
            return store
        raise ValueError(f"backend: unknown {backend!r} (known: local, seaweedfs)")

    def queue(self, backend: str, name: str) -> tuple[Queue, str]:
        """A fresh queue to pair with `backend`'s stores, and what kind it is (for the report)."""
        self._buckets += 1
        qname = f"q{self._buckets:03d}-{name}"
        if backend == "seaweedfs":
            server = self._seaweedfs()
            sqs = getattr(server, "sqs_queue", None)
            if sqs is not None:
                q: Queue = sqs(qname)
                return q, "sqs (moto_server)"
        return LocalQueue(self.root / "queues" / qname), "local directory queue"
