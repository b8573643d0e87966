"""`storekeeper devstack`: the whole local stack on 127.0.0.1, for people and for tests.

SeaweedFS (S3), moto_server (SQS / DynamoDB / EventBridge), the Supabase Storage emulator and a
PostgreSQL cluster holding the compare-and-swap table. `DevStack.env()` is what a process needs to
use them (one `export NAME=value` line each, printed by the CLI); `stop()` stops everything that
was started, in reverse order, also after a failed start.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storekeeper.dev.devservers import PostgresServer, S3Server, start_moto, start_postgres, start_seaweed

DEV_BUCKET = "storekeeper-dev"


@dataclass
class DevStack:
    """The running servers and the names created in them."""

    workdir: Path
    seaweed: S3Server | None = None
    moto: S3Server | None = None
    postgres: PostgresServer | None = None
    supabase: Any = None  # the emulator (started in this process, served by a thread)
    settings: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return dict(self.settings)

    def stop(self) -> None:
        """Stop what was started, newest first; one failing stop does not keep the others running."""
        for name in ("supabase", "postgres", "moto", "seaweed"):
            server = getattr(self, name)
            setattr(self, name, None)
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _supabase_emulator() -> Any:
    from storekeeper.dev.emulators.supabase_emulator import SupabaseEmulator  # the dev part of the package

    return SupabaseEmulator().start()


def start_devstack(workdir: Path | None = None) -> DevStack:
    """Start every server, create the dev bucket / queues / schema; stops what it started on failure."""
    stack = DevStack(Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="storekeeper-devstack-")))
    try:
        stack.postgres = start_postgres()
        from storekeeper.stores.supabase_cas import PostgresCas

        cas = PostgresCas(stack.postgres.url)
        try:
            cas.apply_migrations()
        finally:
            cas.close()
        stack.supabase = _supabase_emulator()
        stack.seaweed = start_seaweed(stack.workdir / "seaweedfs")
        stack.moto = start_moto(stack.workdir / "moto")
        stack.settings = _provision(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def _provision(stack: DevStack) -> dict[str, str]:
    """The dev bucket on both object stores, the two queues and the idempotency table; their names."""
    assert stack.seaweed is not None
    assert stack.moto is not None
    assert stack.postgres is not None
    stack.seaweed.client("s3").create_bucket(Bucket=DEV_BUCKET)
    sqs = stack.moto.client("sqs")
    delta = sqs.create_queue(
        QueueName="storekeeper-dev-deltas.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "360"},
    )["QueueUrl"]
    cleanup = sqs.create_queue(QueueName="storekeeper-dev-cleanup")["QueueUrl"]
    dynamodb = stack.moto.client("dynamodb")
    dynamodb.create_table(
        TableName="storekeeper-dev-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    from supabase import create_client

    emulator = stack.supabase
    create_client(emulator.url, emulator.service_key).storage.create_bucket(DEV_BUCKET)
    return {
        "AWS_ENDPOINT_URL": stack.moto.endpoint_url,
        "AWS_ENDPOINT_URL_S3": stack.seaweed.endpoint_url,
        "AWS_ACCESS_KEY_ID": stack.seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": stack.seaweed.secret_key,
        "AWS_DEFAULT_REGION": stack.seaweed.region,
        "STOREKEEPER_STORE": f"s3://{DEV_BUCKET}",
        "DELTA_QUEUE_URL": delta,
        "CLEANUP_QUEUE_URL": cleanup,
        "IDEMPOTENCY_TABLE": "storekeeper-dev-idempotency",
        "SUPABASE_URL": emulator.url,
        "SUPABASE_SERVICE_KEY": emulator.service_key,
        "SUPABASE_DB_URL": stack.postgres.url,
    }


@contextlib.contextmanager
def devstack(workdir: Path | None = None) -> Iterator[DevStack]:
    stack = start_devstack(workdir)
    try:
        yield stack
    finally:
        stack.stop()
