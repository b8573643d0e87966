"""Lambda SnapStart (Python 3.12+): what a restored snapshot must refresh, and the priming before it.

Under SnapStart (template.yaml's `SnapStart` parameter) Lambda runs a function's init once per
published version, snapshots the microVM, and starts every new execution environment from that
snapshot: whatever init left in memory is shared by all of them. So, after a restore:

* `random` is reseeded from the OS (every environment would otherwise draw the same tenacity
  jitter), and the handler's Powertools Logger draws its DEBUG sampling again (made at init, it would
  be every environment's first invocation's); `secrets`/`uuid4` read os.urandom and need nothing;
* every warm-container cache that holds a client, a connection pool, credentials or a monotonic
  time is dropped (the stores opened from the environment, Postgres CAS connections, the query
  function's readers, collection configs, endpoints found unreachable, the handler's own caches),
  and boto3's default session is replaced (credentials resolved at init would be shared and may
  have expired; the static service models it loaded are kept);
* the process deadline is set again from the environment (monotonic clocks jump across a restore).

Before the snapshot (only when AWS_LAMBDA_INITIALIZATION_TYPE is `snap-start`), `prime` does the
imports and pydantic validations the first call would otherwise pay, without side effects: sample
requests are validated in memory, no store, queue or table is touched. docs/deploy.md, SnapStart.
The hooks go through the Lambda runtime's `snapshot_restore_py` (a dev dependency locally); where it
is absent (a pip install without it) they are kept in a list here that nothing runs.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from storekeeper import config

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # not on Lambda, and the dev extra not installed: nothing will run the hooks
    _unrun: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        _unrun.append((func, args))
        return func

    def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        _unrun.append((func, args))
        return func


#: Lambda sets this in the init phase of a SnapStart version (on-demand, provisioned-concurrency otherwise)
INIT_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"

#: what the first call of each function imports beyond its handler module (the store adapter and the
#: queue client are added by the store URL and queue settings); tests/unit/test_snapstart.py checks
#: this against a real first call
FIRST_CALL_MODULES: dict[str, tuple[str, ...]] = {
    "producer": ("storekeeper.idempotency", "aws_lambda_powertools.utilities.idempotency"),
    "reaper": (
        "storekeeper.policies.fastpath",
        "storekeeper.snapshots.pointer",
        "storekeeper.snapshots.manifest",
        "storekeeper.status",
        "storekeeper.status_page",
    ),
    "cleanup": (
        "storekeeper.idempotency",
        "aws_lambda_powertools.utilities.idempotency",
        "storekeeper.policies.protect",
    ),
}
#: the queue each function sends to, when it is configured (SQS: its boto3 client is primed)
QUEUE_ENV = {"producer": config.DELTA_QUEUE_URL, "reaper": config.CLEANUP_QUEUE_URL}
#: the functions whose first call builds Powertools' idempotency layer (DynamoDB if IDEMPOTENCY_TABLE is set)
IDEMPOTENT = ("producer", "cleanup")


def on_snapstart() -> bool:
    return os.environ.get(INIT_TYPE_ENV) == SNAP_START


def enable(function: str, *caches: MutableMapping[Any, Any], logger: Any = None) -> None:
    """A handler's one line: register the after-restore hook (dropping `caches` too, the handler's own
    warm-container dicts, and drawing `logger`'s sampling again) and, in a SnapStart init, the priming
    of `function`'s first call."""
    if function not in FIRST_CALL_MODULES:
        raise ValueError(f"no SnapStart priming for {function!r} (known: {sorted(FIRST_CALL_MODULES)})")
    register_after_restore(after_restore, *caches, logger=logger)
    if on_snapstart():
        register_before_snapshot(prime, function)


# -- after restore ---------------------------------------------------------------------------------
def after_restore(*caches: MutableMapping[Any, Any], logger: Any = None) -> None:
    """Make this restored environment its own: fresh randomness, no client, credential or clock
    state from the snapshot. Only modules already imported are touched (nothing new is imported)."""
    random.seed()  # from os.urandom, which the restored kernel reseeds
    if logger is not None and getattr(logger, "sampling_rate", None):
        # Powertools draws the DEBUG sampling at Logger() (init) and again only on warm invocations:
        # every environment restored from one snapshot would share its first invocation's draw
        logger.refresh_sample_rate_calculation()
    for cache in caches:
        cache.clear()
    forget_warm_caches()
    loaded = sys.modules.get
    if (cas := loaded("storekeeper.stores.supabase_cas")) is not None:
        with cas._connections_lock:
            cas._connections.clear()
    if (netconfig := loaded("storekeeper.netconfig")) is not None:
        netconfig.set_deadline_from_env()


def forget_warm_caches() -> None:
    """The package's warm-container caches, dropped as a cold container would start: boto3's default
    session (it resolves credentials once and keeps them), the stores opened from the environment,
    the query function's readers and their failures, collection configs, endpoints found
    unreachable, the protection config, the compactor's measured transfer rates. One list for a
    restore and for the tests (tests/conftest.py's `cold_process`): a cache added to the package is
    added here. Only modules already imported are touched (nothing new is imported)."""
    loaded = sys.modules.get
    if "boto3" in sys.modules:
        fresh_boto3_session()
    if (stores := loaded("storekeeper.stores")) is not None:
        stores._env_stores.clear()
    if (query_api := loaded("storekeeper.query_api")) is not None:
        query_api._readers.clear()
    if (reader := loaded("storekeeper.reader")) is not None:
        reader._FAILURES.clear()
    if (collection_config := loaded("storekeeper.collection_config")) is not None:
        collection_config.forget_all()
    if (netconfig := loaded("storekeeper.netconfig")) is not None:
        netconfig.forget_unreachable()
    if (protect := loaded("storekeeper.policies.protect")) is not None:
        protect._cached.cache_clear()
    if (budget := loaded("storekeeper.compaction_budget")) is not None:
        # reset in place: compaction.py holds the object
        vars(budget.RATES).update(vars(budget.Rates()))


def fresh_boto3_session() -> None:
    """A new default session (credentials resolved again on the next client), keeping the old one's
    data loader: the service models and endpoint rules it parsed are static files, worth keeping."""
    import boto3

    old: Any = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = None
    if old is None:
        return
    boto3.setup_default_session()
    new: Any = boto3.DEFAULT_SESSION
    new._session.register_component("data_loader", old._session.get_component("data_loader"))


# -- before the snapshot: priming ------------------------------------------------------------------
def prime(function: str) -> list[str]:
    """Import and validate what `function`'s first call needs, in memory only; the modules it imported."""
    before = set(sys.modules)
    for name in (*FIRST_CALL_MODULES[function], *_store_modules()):
        importlib.import_module(name)
    _PRIMERS[function]()
    queue_env = QUEUE_ENV.get(function)
    if queue_env and os.environ.get(queue_env, "").startswith(("https://", "http://")):
        importlib.import_module("storekeeper.queues")
        _prime_boto3_client("sqs")
    if function in IDEMPOTENT and os.environ.get(config.IDEMPOTENCY_TABLE):
        # what persistence_from_env imports for DynamoDB: the package's deferred __init__ (boto3 and
        # Powertools' DynamoDB layer), run here instead of in the first call
        # (its layer builds its client in a boto3 Session of its own: that client is left to the call)
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # noqa: F401
    return sorted(set(sys.modules) - before)


def _store_modules() -> tuple[str, ...]:
    """The adapter of the store the environment names (opening it would build a client: not here)."""
    from storekeeper.stores import default_store_url

    scheme = default_store_url().partition("://")[0]
    if scheme == "s3":
        _prime_boto3_client("s3")
        return ("storekeeper.stores.s3",)
    adapters = {"file": ("storekeeper.stores.local",), "supabase": ("storekeeper.stores.supabase",)}
    return adapters.get(scheme, ())


def _prime_boto3_client(service: str) -> None:
    """Build (and drop) a client with placeholder keys: botocore parses the service model and endpoint
    rules into the default session's loader, and no credential provider or endpoint is called."""
    from storekeeper.netconfig import boto_config
    from storekeeper.stores.s3 import fast_timestamps

    fast_timestamps()  # sets up boto3's default session as make_client does
    import boto3

    session: Any = boto3.DEFAULT_SESSION
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session.client(
        service,
        region_name=region,
        aws_access_key_id="snapstart-priming",
        aws_secret_access_key="snapstart-priming",  # noqa: S106 - a placeholder, never sent
        config=boto_config(),
    )


def _prime_producer() -> None:
    from storekeeper.producer import parse_put_request

    parse_put_request(
        {
            "collection": "snapstart-priming",
            "request_id": "snapstart-priming",
            "upserts": [{"id": "a", "embedding": [0.0, 1.0], "metadata": {"k": "v"}, "document": "d"}],
            "deletes": ["b"],
        }
    )


def _prime_reaper() -> None:
    from storekeeper.models.schedule import ReaperTrigger
    from storekeeper.policies import load_policies

    event = {
        "version": "0", "id": "snapstart-priming", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2024-06-01T12:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {},
    }  # fmt: skip
    ReaperTrigger.model_validate(event)
    from storekeeper import config

    load_policies(os.environ.get(config.REAPER_POLICIES) or None)


def _prime_cleanup() -> None:
    import json

    from storekeeper.cleanup import CleanupTaskRecord
    from storekeeper.policies.protect import default_protection_config

    task = {
        "task_id": "snapstart-priming", "action": "delete_objects", "backend": "s3",
        "bucket": "snapstart-priming", "keys": ["incoming/c/a.jsonl"], "policy": "snapstart-priming",
        "reason": "priming", "planned_at": "2024-06-01T12:00:00Z",
        "guard": {"etags": {"incoming/c/a.jsonl": '"0"'}},
    }  # fmt: skip
    record = {
        "messageId": "snapstart-priming", "receiptHandle": "r", "body": json.dumps(task),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1717243200000", "SenderId": "s",
                       "ApproximateFirstReceiveTimestamp": "1717243200000"},
        "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
    }  # fmt: skip
    CleanupTaskRecord.model_validate(record)
    default_protection_config()  # read from the package's policies file, kept for the first task


_PRIMERS: dict[str, Callable[[], None]] = {
    "producer": _prime_producer,
    "reaper": _prime_reaper,
    "cleanup": _prime_cleanup,
}
