"""Environment settings, one place for their names (template.yaml sets the same ones)."""

from __future__ import annotations

import os

# names of the environment variables the functions read
STORE = "STOREKEEPER_STORE"  # store URL: s3://bucket, supabase://bucket, file:///abs/path
DELTA_QUEUE_URL = "DELTA_QUEUE_URL"  # SQS FIFO URL, or file:///dir / a bare name for a local queue
CLEANUP_QUEUE_URL = "CLEANUP_QUEUE_URL"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"  # DynamoDB table for Powertools idempotency (unset: store-backed)
REAPER_POLICIES = "REAPER_POLICIES"  # path of the policies YAML (unset: the bundled default)
REAPER_APPLY = "REAPER_APPLY"  # "true" turns the real run on; anything else is a dry run
REAPER_MAX_DELETIONS = "REAPER_MAX_DELETIONS"
COMPACTOR_SWEEP_AGE_SECONDS = "COMPACTOR_SWEEP_AGE_SECONDS"
COMPACTOR_CACHE_DIR = "COMPACTOR_CACHE_DIR"  # snapshot cache between warm invocations (default /tmp)
# readers (storekeeper.Reader, the query function): a cache of their own (docs/readers.md)
READER_CACHE_DIR = "STOREKEEPER_READER_CACHE_DIR"  # default /tmp/storekeeper-reader
READER_CACHE_BYTES = "STOREKEEPER_READER_CACHE_BYTES"  # default 384 MiB (Lambda's /tmp is 512 MB)
READER_REFRESH_S = "STOREKEEPER_READER_REFRESH_S"  # least seconds between pointer reads (default 5)
# coalescing: notification-driven compactions publish a collection at most once per this many seconds
COMPACTOR_MIN_INTERVAL_SECONDS = "COMPACTOR_MIN_INTERVAL_SECONDS"
DEFAULT_MIN_INTERVAL_SECONDS = 120
# retention: superseded snapshot versions the compactor keeps besides the live one (0 = keep all)
COMPACTOR_KEEP_VERSIONS = "COMPACTOR_KEEP_VERSIONS"
DEFAULT_KEEP_VERSIONS = 3
# S3 create-only uploads of files this many MiB or larger are parallel multipart (default 64)
MULTIPART_THRESHOLD_MB = "STOREKEEPER_MULTIPART_THRESHOLD_MB"
SUPABASE_URL = "SUPABASE_URL"
SUPABASE_SERVICE_KEY = "SUPABASE_SERVICE_KEY"
# in AWS the key is not in the environment: the functions read it from this Secrets Manager secret
SUPABASE_SERVICE_KEY_SECRET_ARN = "SUPABASE_SERVICE_KEY_SECRET_ARN"  # noqa: S105 - a variable name
# the project's Postgres, where conditional writes of supabase:// stores are decided (docs/supabase.md)
SUPABASE_DB_URL = "SUPABASE_DB_URL"
SUPABASE_DB_URL_SECRET_ARN = "SUPABASE_DB_URL_SECRET_ARN"  # noqa: S105 - a variable name


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None
