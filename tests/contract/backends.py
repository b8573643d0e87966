"""How the contract suite opens each backend, in the test process and in spawned child processes.

A `StoreSpec` is plain picklable data, so a `multiprocessing` child can build its
own store (and its own HTTP client) for the same bucket.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storekeeper.stores.base import ObjectStore

S3_KINDS = ("moto", "seaweedfs")
ALL_KINDS = ("local", "moto", "seaweedfs", "supabase")


@dataclass(frozen=True)
class StoreSpec:
    kind: str
    bucket: str
    root: str | None = None  # local: the directory holding the buckets
    settings: dict[str, str] = field(default_factory=dict)  # endpoint / URL and credentials


_CLIENTS: dict[tuple[str, ...], Any] = {}


def _cached(kind: str, settings: dict[str, str], make: Any) -> Any:
    """One client per server and process: creating clients is slow on a loaded machine."""
    key = (kind, *sorted(settings.items()))  # type: ignore[arg-type]
    if key not in _CLIENTS:
        _CLIENTS[key] = make()
    return _CLIENTS[key]


def _s3_client(settings: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings["endpoint_url"],
        aws_access_key_id=settings["access_key"],
        aws_secret_access_key=settings["secret_key"],
        region_name=settings.get("region", "us-east-1"),
        config=Config(retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"}),
    )


def open_spec(spec: StoreSpec) -> ObjectStore:
    """A store on the spec's bucket; no network I/O happens here."""
    if spec.kind == "local":
        from storekeeper.stores.local import LocalStore

        assert spec.root is not None
        return LocalStore(Path(spec.root) / spec.bucket)
    if spec.kind in S3_KINDS:
        from storekeeper.stores.s3 import S3Store

        return S3Store(
            spec.bucket, client=_cached(spec.kind, spec.settings, lambda: _s3_client(spec.settings))
        )
    if spec.kind == "supabase":
        from supabase import create_client

        from storekeeper.stores.supabase import SupabaseStore

        client = _cached(
            spec.kind, spec.settings, lambda: create_client(spec.settings["url"], spec.settings["key"])
        )
        return SupabaseStore(spec.bucket, client=client, db_url=spec.settings.get("db_url"))
    raise ValueError(f"unknown backend kind {spec.kind!r}")


@dataclass
class Backend:
    """One backend under test: makes fresh buckets and removes them afterwards."""

    kind: str
    root: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    made: list[ObjectStore] = field(default_factory=list)

    def spec(self, bucket: str) -> StoreSpec:
        return StoreSpec(self.kind, bucket, self.root, dict(self.settings))

    def unique_name(self, prefix: str = "ct") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def admin(self) -> ObjectStore:
        """A store used only for bucket-level calls (its own bucket need not exist)."""
        return open_spec(self.spec("ct-admin-seed"))

    def fresh(self) -> ObjectStore:
        """A new, empty bucket's store, with its request counter at zero."""
        name = self.unique_name()
        admin = self.admin()
        admin.create_bucket(name)
        store = open_spec(self.spec(name))
        self.made.append(store)
        store.requests.reset()
        return store

    def cleanup(self) -> None:
        for store in self.made:
            with contextlib.suppress(Exception):
                store.delete_many([o.key for o in store.list()])
            with contextlib.suppress(Exception):
                store.delete_bucket(store.bucket)


def every_operation(target: ObjectStore, admin: ObjectStore, tmp: Path) -> dict[str, Callable[[], object]]:
    """Every store operation on `target`'s bucket (admin: the same backend, for bucket-level calls)."""
    src = tmp / "upload.bin"
    src.write_bytes(b"payload")
    name = target.bucket
    return {
        "get": lambda: target.get("k"),
        "head": lambda: target.head("k"),
        "exists": lambda: target.exists("k"),
        "put": lambda: target.put("k", b"1"),
        "put create-only": lambda: target.put("k", b"1", if_none_match=True),
        "put if-match": lambda: target.put("k", b"1", if_match='"0123"'),
        "put_file": lambda: target.put_file("k", src),
        "put_file create-only": lambda: target.put_file("k", src, if_none_match=True),
        "get_file": lambda: target.get_file("k", tmp / "out.bin"),
        "delete": lambda: target.delete("k"),
        "delete if-match": lambda: target.delete("k", if_match='"0123"'),
        "delete_many": lambda: target.delete_many(["k", "j"]),
        "list": lambda: list(target.list()),
        "list prefix": lambda: list(target.list("a/")),
        "usage": lambda: target.usage(),
        "get_bucket_labels": lambda: admin.get_bucket_labels(name),
        "set_bucket_labels": lambda: admin.set_bucket_labels(name, {"a": "b"}),
        "delete_bucket": lambda: admin.delete_bucket(name),
    }
