"""The compare-and-swap table of supabase:// stores, in the project's Postgres.

Supabase Storage cannot make a conditional write atomic (see docs/supabase.md), so every
conditional write of a `SupabaseStore` is decided by one conditional statement on
`storekeeper.object_versions` (the migration in `storekeeper/data/supabase/`): exactly one
`INSERT ... ON CONFLICT DO NOTHING` creates a row, exactly one `UPDATE ... WHERE etag = %s`
moves it. The store then uploads and records the new etag. Postgres is reached directly with
psycopg 3 through `SUPABASE_DB_URL` (in Lambda, from the Secrets Manager secret
`SUPABASE_DB_URL_SECRET_ARN` names). Without it, conditional writes refuse; they are never
silently non-atomic.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

from storekeeper.config import SUPABASE_DB_URL, SUPABASE_DB_URL_SECRET_ARN
from storekeeper.errors import BackendError

TABLE = "storekeeper.object_versions"
MIGRATIONS = "data/supabase"


class AtomicWritesUnavailable(BackendError):
    """A conditional write was asked of a supabase:// store that has no Postgres to make it atomic."""


@dataclass(frozen=True)
class Row:
    etag: str | None  # None: claimed by a writer that has not finished
    claim: str | None
    generation: int
    expired: bool  # the claim's lease has run out (by the database's clock)


def norm_etag(etag: str | None) -> str:
    value = (etag or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def setting_from_env(name: str, secret_arn_name: str) -> str:
    """Variable `name`, else the Secrets Manager secret whose ARN `secret_arn_name` holds ("" when
    neither is set). Deployed functions get only the ARN (the secret never sits in the template or
    the console); Powertools' parameters utility caches it across warm invocations."""
    value = os.environ.get(name, "").strip()
    arn = os.environ.get(secret_arn_name, "").strip()
    if value or not arn:
        return value
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = parameters.get_secret(arn, max_age=300)
    except parameters.exceptions.GetParameterError as exc:
        raise BackendError("supabase://", None, f"cannot read {secret_arn_name} {arn}: {exc}") from exc
    return str(secret).strip()


def db_url_from_env() -> str:
    """SUPABASE_DB_URL, else the secret SUPABASE_DB_URL_SECRET_ARN names ("" when neither is set)."""
    return setting_from_env(SUPABASE_DB_URL, SUPABASE_DB_URL_SECRET_ARN)


def migration_sql() -> list[tuple[str, str]]:
    """(name, SQL) of every migration shipped with the package, in order."""
    folder = resources.files("storekeeper").joinpath(MIGRATIONS)
    files = sorted((f.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name, f.read_text(encoding="utf-8")) for name, f in files]


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


class PostgresCas:
    """One direct connection (autocommit, short timeouts) to the compare-and-swap table."""

    connect_timeout = 5
    statement_timeout_ms = 10_000

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                options=f"-c statement_timeout={self.statement_timeout_ms}",
                application_name="storekeeper",
            )
        except psycopg.Error as exc:
            raise BackendError(
                "supabase://", None, f"cannot connect to {SUPABASE_DB_URL} {_redact(self.url)}: {exc}"
            ) from exc

    def _run(self, sql: str, params: tuple[Any, ...] | None, *, fetch: bool = True) -> list[tuple[Any, ...]]:
        """One statement; a dropped connection is reopened once (each statement is atomic on its own)."""
        import psycopg

        with self._lock:
            for attempt in range(2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    cur = self._conn.execute(sql, params)
                    return list(cur.fetchall()) if fetch and cur.description else []
                except psycopg.errors.UndefinedTable as exc:
                    raise BackendError(
                        "supabase://",
                        None,
                        f"{TABLE} does not exist in {_redact(self.url)}: run `storekeeper supabase setup`",
                    ) from exc
                except psycopg.OperationalError as exc:
                    self._conn = None
                    if attempt:
                        raise BackendError(
                            "supabase://", None, f"{SUPABASE_DB_URL} {_redact(self.url)}: {exc}"
                        ) from exc
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- the conditional statements ----------------------------------------------------------------
    def read(self, bucket: str, key: str) -> Row | None:
        rows = self._run(
            "SELECT etag, claim::text, generation, coalesce(lease_until < now(), false) "
            "FROM storekeeper.object_versions "
            "WHERE bucket = %s AND key = %s",
            (bucket, key),
        )
        if not rows:
            return None
        etag, claim, generation, expired = rows[0]
        return Row(etag, claim, int(generation), bool(expired))

    def claim_new(self, bucket: str, key: str, token: str, lease_seconds: float) -> bool:
        """Create-only: the row is ours iff it did not exist."""
        rows = self._run(
            "INSERT INTO storekeeper.object_versions (bucket, key, etag, claim, lease_until) "
            "VALUES (%s, %s, NULL, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT DO NOTHING RETURNING generation",
            (bucket, key, token, lease_seconds),
        )
        return bool(rows)

    def claim_swap(self, bucket: str, key: str, expected: str, token: str, lease_seconds: float) -> bool:
        """Compare-and-swap: the row is ours iff it still holds the expected etag."""
        rows = self._run(
            "UPDATE storekeeper.object_versions SET etag = NULL, claim = %s, "
            "lease_until = now() + make_interval(secs => %s), "
            "generation = generation + 1, updated_at = now() "
            "WHERE bucket = %s AND key = %s AND etag = %s RETURNING generation",
            (token, lease_seconds, bucket, key, norm_etag(expected)),
        )
        return bool(rows)

    def adopt(self, bucket: str, key: str, etag: str) -> None:
        """Record an object written before (or without) the table, unless a row exists already."""
        self._run(
            "INSERT INTO storekeeper.object_versions (bucket, key, etag) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (bucket, key, norm_etag(etag)),
            fetch=False,
        )

    def finish(self, bucket: str, key: str, token: str, etag: str | None) -> bool:
        """Release our claim with the key's new etag (None: the key is gone); False if we lost the claim."""
        if etag is None:
            rows = self._run(
                "DELETE FROM storekeeper.object_versions "
                "WHERE bucket = %s AND key = %s AND claim = %s RETURNING 1",
                (bucket, key, token),
            )
        else:
            rows = self._run(
                "UPDATE storekeeper.object_versions SET etag = %s, claim = NULL, lease_until = NULL, "
                "generation = generation + 1, updated_at = now() "
                "WHERE bucket = %s AND key = %s AND claim = %s RETURNING 1",
                (norm_etag(etag), bucket, key, token),
            )
        return bool(rows)

    def resync(self, bucket: str, key: str, generation: int, etag: str | None) -> bool:
        """Set a row to what Storage holds (a stale claim, or a write that bypassed the table)."""
        if etag is None:
            rows = self._run(
                "DELETE FROM storekeeper.object_versions "
                "WHERE bucket = %s AND key = %s AND generation = %s RETURNING 1",
                (bucket, key, generation),
            )
        else:
            rows = self._run(
                "UPDATE storekeeper.object_versions SET etag = %s, claim = NULL, lease_until = NULL, "
                "generation = generation + 1, updated_at = now() "
                "WHERE bucket = %s AND key = %s AND generation = %s RETURNING 1",
                (norm_etag(etag), bucket, key, generation),
            )
        return bool(rows)

    # -- set-up ------------------------------------------------------------------------------------------
    def apply_migrations(self) -> list[str]:
        """Run every shipped migration (each is idempotent); returns their names."""
        names = []
        for name, sql in migration_sql():
            self._run(sql, None, fetch=False)  # simple protocol: several statements
            names.append(name)
        return names


_connections: dict[str, PostgresCas] = {}
_connections_lock = threading.Lock()


def cas_for_url(url: str) -> PostgresCas:
    """One connection per URL and process, kept across warm Lambda invocations."""
    with _connections_lock:
        if url not in _connections:
            _connections[url] = PostgresCas(url)
        return _connections[url]


def new_token() -> str:
    return str(uuid.uuid4())
