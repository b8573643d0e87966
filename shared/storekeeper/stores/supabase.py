"""Supabase Storage backend (`supabase://bucket`) over the real `supabase` / `storage3` client.

What the real Storage server does (supabase/storage; see docs/supabase.md) and what this adapter
builds on top:

* **Conditional writes go through Postgres.** A create-only upload (`x-upsert: false`) is not
  atomic on the server (its duplicate check is an INSERT in a transaction that is rolled back, and
  completing the upload always upserts), and there is no If-Match upload. So `put(if_none_match=)`,
  `put(if_match=)`, `put_file(if_none_match=)` and `delete(if_match=)` are decided by one conditional
  statement on the project's Postgres (`storekeeper.supabase_cas`, `SUPABASE_DB_URL`) before the
  upload; without a database URL they raise `AtomicWritesUnavailable`, never a silent overwrite.
* **Listing** uses `POST /object/list-v2` without a delimiter: one flat, byte-ordered,
  case-sensitive stream under the prefix, paged by cursor. (The v1 `/object/list` matches and orders
  on `lower(name)` and merges folders that differ only in case, so walking it invents keys.)
* **A missing bucket looks empty** to list and remove (`200 []`): when a listing or a delete
  finds nothing, the adapter asks for the bucket and raises `BucketNotFound` if it is gone.
* **A bad key on reads looks like a missing bucket** on `/object/{bucket}/...` (the server treats a
  bad JWT as anonymous), so reads use the `/object/authenticated/` routes, which answer 403:
  `AccessDenied`, never `BucketNotFound`.
* **Bulk delete**: `DELETE /object/{bucket}` in batches of 1000 (`max_delete_batch`; the server
  enforces it only with REQUEST_HARD_LIMITS_ENABLED).
* **Bucket labels**: Supabase buckets have no tags, so labels live in the bucket itself as the
  reserved object `.storekeeper/labels.json`, hidden from `list()`; `delete_bucket` removes it
  when nothing else is left.
* **Errors**: Storage puts the real status in the body (`statusCode`), often with HTTP 400.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx

from storekeeper.config import (
    SUPABASE_DB_URL,
    SUPABASE_SERVICE_KEY,
    SUPABASE_SERVICE_KEY_SECRET_ARN,
    SUPABASE_URL,
)
from storekeeper.errors import (
    AccessDenied,
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from storekeeper.names import check_bucket
from storekeeper.stores.base import (
    BucketInfo,
    DeleteResult,
    GetResult,
    ObjectInfo,
    ObjectStore,
    RequestCounter,
)
from storekeeper.stores.supabase_cas import (
    AtomicWritesUnavailable,
    PostgresCas,
    cas_for_url,
    db_url_from_env,
    new_token,
    norm_etag,
    setting_from_env,
)

RESERVED_PREFIX = ".storekeeper/"
LABELS_KEY = ".storekeeper/labels.json"
PLACEHOLDER = ".emptyFolderPlaceholder"  # what the dashboard writes for an empty folder
MAX_DELETE_BATCH = 1000  # supabase/storage: "At most 1000 objects can be deleted per request."
MAX_LIST_V2_PAGE = 1000  # list-v2 caps `limit` at 1000
#: conditional writers retry a contended claim this often before reporting PreconditionFailed
CLAIM_ATTEMPTS = 4


def service_key_from_env() -> str:
    """SUPABASE_SERVICE_KEY, else the Secrets Manager secret SUPABASE_SERVICE_KEY_SECRET_ARN names."""
    return setting_from_env(SUPABASE_SERVICE_KEY, SUPABASE_SERVICE_KEY_SECRET_ARN)


def supabase_client_from_env() -> Any:
    """A `supabase.Client` from SUPABASE_URL / SUPABASE_SERVICE_KEY; no network I/O happens here."""
    url = os.environ.get(SUPABASE_URL, "").strip()
    key = service_key_from_env()
    missing = [name for name, value in ((SUPABASE_URL, url), (SUPABASE_SERVICE_KEY, key)) if not value]
    if missing:
        raise BackendError("supabase://", None, f"environment variable(s) {', '.join(missing)} not set")
    from supabase import ClientOptions, create_client

    from storekeeper.netconfig import read_timeout

    # storage3's httpx client: one bounded timeout for connect and read (storekeeper.netconfig)
    return create_client(url, key, options=ClientOptions(storage_client_timeout=int(max(1, read_timeout()))))


def storage_client(client: Any) -> Any:
    """Accept a `supabase.Client` or a storage3 storage client; return the storage client."""
    if hasattr(client, "from_") and hasattr(client, "list_buckets"):
        return client
    return client.storage


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _str_metadata(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


@dataclass(frozen=True)
class _ApiFailure:
    status: str
    code: str
    message: str


def _failure(exc: Exception) -> _ApiFailure | None:
    """The (body status, code, message) of a storage3 StorageApiError, None for anything else."""
    from storage3.exceptions import StorageApiError

    if isinstance(exc, StorageApiError):
        return _ApiFailure(str(exc.status), str(exc.code), str(exc.message))
    return None


ACCESS_CODES = ("AccessDenied", "InvalidJWT", "Unauthorized", "InvalidRequest")


def is_access_failure(status: str, code: str, message: str) -> bool:
    """The server refused the credentials (403, AccessDenied / InvalidJWT, a missing auth header)."""
    if status in ("401", "403") or code in ("AccessDenied", "InvalidJWT", "Unauthorized"):
        return True
    return code == "InvalidRequest" and "authorization" in message.lower()


class SupabaseStore(ObjectStore):
    scheme = "supabase"
    max_delete_batch = MAX_DELETE_BATCH
    #: keys asked per list-v2 page (the server caps it at 1000)
    list_page_size = MAX_LIST_V2_PAGE
    #: how long a conditional writer's claim lasts before others may settle it, and how much of it
    #: must remain to start the upload (a claim for put_file adds time for the file's size)
    lease_seconds = 30.0
    lease_margin = 5.0
    upload_bytes_per_second = 1_000_000

    def __init__(
        self,
        bucket: str,
        *,
        counter: RequestCounter | None = None,
        client: Any = None,
        db_url: str | None = None,
    ) -> None:
        super().__init__(bucket, counter=counter)
        self._client = client
        self._storage: Any = None
        self._db_url = db_url

    # -- plumbing ------------------------------------------------------------------
    @property
    def storage(self) -> Any:
        """The storage3 client, created from the environment on first use."""
        if self._storage is None:
            self._storage = storage_client(
                self._client if self._client is not None else supabase_client_from_env()
            )
        return self._storage

    def for_bucket(self, bucket: str) -> SupabaseStore:
        other = SupabaseStore(bucket, counter=self.requests, client=self._client, db_url=self._db_url)
        other._storage = self._storage
        return other

    def cas(self, op: str = "conditional write", key: str | None = None) -> PostgresCas:
        """The compare-and-swap table; refuses clearly when no database URL is configured."""
        url = self._db_url if self._db_url is not None else db_url_from_env()
        if not url:
            raise AtomicWritesUnavailable(
                self.url,
                key,
                f"{op} needs {SUPABASE_DB_URL}: Supabase Storage has no atomic create-only or "
                "compare-and-swap upload, so storekeeper decides them in the project's Postgres "
                "(set SUPABASE_DB_URL and run `storekeeper supabase setup`; see docs/supabase.md)",
            )
        return cas_for_url(url)

    def _api(self, bucket: str | None = None) -> Any:
        return self.storage.from_(bucket or self.bucket)

    def _call(
        self,
        op: str,
        key: str | None,
        fn: Any,
        *args: Any,
        bucket: str | None = None,
        on_conflict: type[StoreError] | None = None,
        conflict_cause: str = "",
        **kwargs: Any,
    ) -> Any:
        """Run one storage3 call, counting it and translating its failure into our typed errors."""
        self.requests.add(op)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # storage3 and httpx raise several unrelated types
            self._raise(exc, op, key, bucket, on_conflict, conflict_cause)

    def _raise(
        self,
        exc: Exception,
        op: str,
        key: str | None,
        bucket: str | None,
        on_conflict: type[StoreError] | None,
        conflict_cause: str,
    ) -> NoReturn:
        where = f"supabase://{bucket or self.bucket}"
        fail = _failure(exc)
        if fail is None:
            if isinstance(exc, httpx.HTTPError):
                raise BackendError(where, key, f"{op}: transport error {type(exc).__name__}: {exc}") from exc
            from storage3.utils import StorageException

            if isinstance(exc, (StorageException, ValueError)):
                raise BackendError(where, key, f"{op}: {type(exc).__name__}: {exc}") from exc
            raise exc
        detail = f"{op}: HTTP {fail.status} {fail.code}: {fail.message}"
        if is_access_failure(fail.status, fail.code, fail.message):
            raise AccessDenied(where, key, f"access denied, check {SUPABASE_SERVICE_KEY} ({detail})") from exc
        if fail.status == "404":
            if (
                fail.code in ("NoSuchBucket", "Bucket not found")
                or "bucket not found" in fail.message.lower()
            ):
                raise BucketNotFound(where, None, detail) from exc
            raise NotFound(where, key, detail) from exc
        if fail.status == "409":
            if fail.code in ("ResourceNotEmpty", "BucketNotEmpty"):
                raise BucketNotEmpty(where, None, detail) from exc
            if on_conflict is not None:
                raise on_conflict(where, key, f"{conflict_cause} ({detail})") from exc
        if fail.code == "InvalidKey":
            raise InvalidName("key", f"Supabase Storage rejects it ({fail.message})", key) from exc
        raise BackendError(where, key, detail) from exc

    def _require_bucket(self, op: str, bucket: str | None = None) -> None:
        """Raise BucketNotFound when the bucket is gone (list and remove answer `200 []` for it)."""
        name = bucket or self.bucket
        self._call(f"{op}:bucket_check", None, self.storage.get_bucket, name, bucket=name)

    def _upload(
        self,
        key: str,
        data: bytes | Path,
        *,
        upsert: bool,
        content_type: str,
        metadata: dict[str, str] | None,
        bucket: str | None = None,
        op: str = "put",
    ) -> None:
        options: dict[str, Any] = {"content-type": content_type, "upsert": "true" if upsert else "false"}
        if metadata:
            options["metadata"] = metadata
        self._call(
            op,
            key,
            self._api(bucket).upload,
            key,
            data,
            options,
            bucket=bucket,
            on_conflict=PreconditionFailed,
            conflict_cause="create-only upload (x-upsert: false) but the object exists",
        )

    def _key_path(self, *route: str, key: str, bucket: str | None = None) -> list[str]:
        return [*route, bucket or self.bucket, *key.split("/")]

    def _info(self, key: str, bucket: str | None = None) -> dict[str, Any]:
        # the authenticated route: a bad key is 403 there, not the "Bucket not found" of /object/info/
        response: httpx.Response = self._call(
            "head",
            key,
            self._api(bucket)._request,
            "GET",
            self._key_path("object", "info", "authenticated", key=key, bucket=bucket),
            bucket=bucket,
        )
        info: dict[str, Any] = response.json()
        return info

    def _download(self, key: str, bucket: str | None = None) -> httpx.Response:
        response: httpx.Response = self._call(
            "get",
            key,
            self._api(bucket)._request,
            "GET",
            self._key_path("object", "authenticated", key=key, bucket=bucket),
            bucket=bucket,
        )
        return response

    def _get_file(self, key: str, path: Path) -> str:
        """Stream the body to `path` (archives can be hundreds of MB: never whole in memory)."""
        api = self._api()

        def stream() -> str:
            url = str(api._base_url.joinpath(*self._key_path("object", "authenticated", key=key)))
            with api._client.stream("GET", url, headers=dict(api._headers)) as resp:
                if resp.status_code >= 400:  # the error body, translated as storage3 does
                    from storage3.exceptions import StorageApiError

                    resp.read()
                    try:
                        err = resp.json()
                        raise StorageApiError(err["message"], err["error"], err["statusCode"])
                    except (KeyError, TypeError, ValueError):
                        raise StorageApiError(resp.text, "InternalError", resp.status_code) from None
                with open(path, "wb") as fh:
                    for chunk in resp.iter_bytes(1024 * 1024):
                        fh.write(chunk)
                return str(resp.headers.get("etag") or "")

        etag: str = self._call("get_file", key, stream)
        return etag or str(self._info(key).get("etag"))

    def _current_etag(self, key: str) -> str | None:
        """The key's etag in Storage now, None if absent (a missing bucket still raises)."""
        try:
            return str(self._info(key).get("etag"))
        except BucketNotFound:
            raise
        except NotFound:
            return None

    # -- objects ---------------------------------------------------------------------
    def _get(self, key: str) -> GetResult:
        # download gives the body and its ETag, info the user metadata: read both, retry if a write
        # landed in between, so body, etag and metadata always belong to one version.
        for _ in range(3):
            response = self._download(key)
            body = response.content
            info = self._info(key)
            seen = response.headers.get("etag") or '"' + hashlib.md5(body).hexdigest() + '"'  # noqa: S324
            if norm_etag(seen) == norm_etag(info.get("etag")):
                return GetResult(
                    body=body, etag=str(info.get("etag")), metadata=_str_metadata(info.get("metadata"))
                )
        raise BackendError(self.url, key, "object changed between download and info three times in a row")

    def _put(
        self,
        key: str,
        data: bytes,
        if_none_match: bool,
        if_match: str | None,
        content_type: str,
        metadata: dict[str, str],
    ) -> str:
        def upload(upsert: bool) -> None:
            self._upload(key, data, upsert=upsert, content_type=content_type, metadata=metadata)

        if if_match is not None:
            return self._swap(key, if_match, lambda: upload(True), "put")
        if if_none_match:
            return self._create(key, lambda: upload(False), len(data))
        upload(True)
        return str(self._info(key).get("etag"))

    def _put_file(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str], if_none_match: bool
    ) -> str:
        """Stream a local file (storage3 opens and sends the path itself)."""

        def upload(upsert: bool) -> None:
            self._upload(key, path, upsert=upsert, content_type=content_type, metadata=metadata)

        if if_none_match:
            return self._create(key, lambda: upload(False), path.stat().st_size)
        upload(True)
        return str(self._info(key).get("etag"))

    def _head(self, key: str) -> ObjectInfo:
        info = self._info(key)
        return ObjectInfo(
            key=key,
            size=int(info.get("size") or 0),
            etag=str(info.get("etag")),
            last_modified=_parse_time(info.get("last_modified") or info.get("updated_at")),
            metadata=_str_metadata(info.get("metadata")),
        )

    def _remove(self, keys: list[str], op: str) -> list[dict[str, Any]]:
        """Batch remove; an empty answer may mean a missing bucket (`200 []`), so that is checked."""
        removed: list[dict[str, Any]] = self._call(
            op, keys[0] if len(keys) == 1 else None, self._api().remove, keys
        )
        if not removed:
            self._require_bucket(op)
        return removed

    def _delete(self, key: str, if_match: str | None) -> None:
        if if_match is None:
            self._remove([key], "delete")
            return

        def remove() -> None:
            self._remove([key], "delete")

        self._swap(key, if_match, remove, "delete", deletes=True)

    def _delete_batch(self, keys: list[str], result: DeleteResult) -> None:
        try:
            self._remove(keys, "delete_batch")
        except (BucketNotFound, AccessDenied):
            raise  # not a per-key failure
        except StoreError as exc:
            for key in keys:
                result.errors[key] = str(exc)
            return
        result.deleted.extend(keys)  # keys that were already missing count as deleted (idempotent)

    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        """A URL anyone can GET for `expires_in` seconds (POST /object/sign)."""
        from storekeeper.names import check_key

        key = check_key(key)
        if expires_in < 1:
            raise InvalidName("expires_in", "must be at least 1 second", expires_in)
        signed: dict[str, Any] = self._call("sign", key, self._api().create_signed_url, key, expires_in)
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise BackendError(self.url, key, "sign: the response carried no signedURL")
        return str(url)

    # -- conditional writes, decided in Postgres ------------------------------------------------------
    def _lease_for(self, size: int) -> float:
        return self.lease_seconds + size / self.upload_bytes_per_second

    def _check_lease(self, key: str, claimed_at: float, lease: float) -> None:
        """Refuse to start the upload when others may already settle our claim (a long pause)."""
        if time.monotonic() - claimed_at > lease - self.lease_margin:
            raise PreconditionFailed(self.url, key, "the claim ran out before the upload started; retry")

    def _finish(self, cas: PostgresCas, key: str, token: str, etag: str | None) -> None:
        if not cas.finish(self.bucket, key, token, etag):
            raise BackendError(
                self.url,
                key,
                "the claim was settled by another writer while this one was uploading (it outlived "
                f"its lease of {self.lease_seconds:.0f}s); the key may hold either write: re-read it",
            )

    def _settle_after_failure(
        self, cas: PostgresCas, key: str, token: str, started: bool, before: str | None
    ) -> None:
        """Release our claim after a failure: as it was if nothing was written yet, else with what
        Storage now holds (unreadable: the claim's lease runs out and the next writer settles it)."""
        if not started:
            with contextlib.suppress(StoreError):
                cas.finish(self.bucket, key, token, before)
            return
        try:
            current = self._current_etag(key)
        except BucketNotFound:
            current = None
        except StoreError:
            return  # unreadable now: the claim's lease runs out and the next writer settles it
        with contextlib.suppress(StoreError):
            cas.finish(self.bucket, key, token, current)

    def _create(self, key: str, upload: Callable[[], None], size: int) -> str:
        """Create-only: one `INSERT ... ON CONFLICT DO NOTHING` decides the single winner."""
        cas = self.cas("create-only write", key)
        token, lease = new_token(), self._lease_for(size)
        for _ in range(CLAIM_ATTEMPTS):
            if cas.claim_new(self.bucket, key, token, lease):
                break
            row = cas.read(self.bucket, key)
            if row is None:
                continue  # deleted meanwhile: try again
            if row.etag is None and not row.expired:
                raise PreconditionFailed(
                    self.url, key, "create-only write, but another writer is creating it"
                )
            current = self._current_etag(key)
            if row.etag is not None and current is not None:
                raise PreconditionFailed(self.url, key, "create-only write, but the object exists")
            cas.resync(self.bucket, key, row.generation, current)  # stale claim, or deleted behind our back
        else:
            raise PreconditionFailed(self.url, key, "create-only write lost every claim attempt")
        claimed_at, started = time.monotonic(), False
        try:
            existing = self._current_etag(key)
            if existing is not None:  # written without the table (before set-up, or unconditionally)
                cas.finish(self.bucket, key, token, existing)
                raise PreconditionFailed(self.url, key, "create-only write, but the object exists")
            self._check_lease(key, claimed_at, lease)
            started = True
            upload()
            etag = str(self._info(key).get("etag"))
        except BaseException:
            self._settle_after_failure(cas, key, token, started, None)
            raise
        self._finish(cas, key, token, etag)
        return etag

    def _swap(
        self, key: str, expected: str, write: Callable[[], None], op: str, *, deletes: bool = False
    ) -> str:
        """Compare-and-swap: one `UPDATE ... WHERE etag = expected` decides the single winner."""
        cas = self.cas(f"conditional {op} (If-Match)", key)
        token, lease = new_token(), self._lease_for(0)
        for _ in range(CLAIM_ATTEMPTS):
            if cas.claim_swap(self.bucket, key, expected, token, lease):
                break
            row = cas.read(self.bucket, key)
            current = self._current_etag(key)
            if row is None:
                if current is None:
                    if deletes:
                        return ""  # already gone: deleting is idempotent
                    raise PreconditionFailed(self.url, key, f"If-Match {expected} but the object is absent")
                cas.adopt(self.bucket, key, current)  # first conditional write of this key
                continue
            if row.etag is None and not row.expired:
                raise PreconditionFailed(
                    self.url, key, "another conditional writer holds the key; re-read and retry"
                )
            if row.etag is not None and norm_etag(row.etag) == norm_etag(current):
                raise PreconditionFailed(self.url, key, f"If-Match {expected} but current etag is {current}")
            cas.resync(self.bucket, key, row.generation, current)  # stale claim or a bypassing write
        else:
            raise PreconditionFailed(self.url, key, f"If-Match {expected}: lost every claim attempt")
        claimed_at, started = time.monotonic(), False
        try:
            current = self._current_etag(key)
            if current is None or norm_etag(current) != norm_etag(expected):
                # the row was stale: a write or delete bypassed the table since it was recorded
                cas.finish(self.bucket, key, token, current)
                if current is None and deletes:
                    return ""
                raise PreconditionFailed(self.url, key, f"If-Match {expected} but current etag is {current}")
            self._check_lease(key, claimed_at, lease)
            started = True
            write()
            etag = None if deletes else str(self._info(key).get("etag"))
        except BaseException:
            self._settle_after_failure(cas, key, token, started, expected)
            raise
        self._finish(cas, key, token, etag)
        return etag or ""

    # -- listing -----------------------------------------------------------------------
    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        show_reserved = prefix.startswith(RESERVED_PREFIX[:-1])  # asked for explicitly: ".storekeeper..."
        api = self._api()
        cursor: str | None = None
        first = True
        while True:
            options: dict[str, Any] = {
                "prefix": prefix,
                "limit": self.list_page_size,
                "with_delimiter": False,
            }
            if cursor:
                options["cursor"] = cursor
            page = self._call("list", prefix or None, api.list_v2, options)
            if first and not page.objects and not page.hasNext:
                self._require_bucket("list")  # a missing bucket lists as empty
            first = False
            for obj in page.objects:
                key = str(obj.name)
                if not key.startswith(prefix):
                    continue  # the server's prefix is a LIKE pattern: `_` and `%` match more
                if start_after is not None and key <= start_after:
                    continue
                if key.startswith(RESERVED_PREFIX) and not show_reserved:
                    continue
                if key.rpartition("/")[2] == PLACEHOLDER:
                    continue
                meta = obj.metadata or {}
                yield ObjectInfo(
                    key=key,
                    size=int(meta.get("size") or meta.get("contentLength") or 0),
                    etag=str(meta.get("eTag") or ""),
                    last_modified=_parse_time(meta.get("lastModified") or obj.updated_at),
                )
            cursor = page.nextCursor
            if not page.hasNext or not cursor:
                return

    # -- buckets -----------------------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]:
        buckets = self._call("list_buckets", None, self.storage.list_buckets)
        out = [
            BucketInfo(
                name=str(b.id),
                created_at=_parse_time(b.created_at),
                public=bool(b.public),
                size_limit=b.file_size_limit,
            )
            for b in buckets
        ]
        return sorted(out, key=lambda b: b.name)

    def bucket_exists(self, name: str) -> bool:
        check_bucket(name)
        try:
            self._call("get_bucket", None, self.storage.get_bucket, name, bucket=name)
        except BucketNotFound:
            return False
        return True

    def _create_bucket(self, name: str) -> BucketInfo:
        self._call(
            "create_bucket",
            None,
            self.storage.create_bucket,
            name,
            bucket=name,
            on_conflict=BucketAlreadyExists,
            conflict_cause="bucket already exists",
        )
        return BucketInfo(name=name, created_at=datetime.now(UTC))

    def _delete_bucket(self, name: str) -> None:
        try:
            self._call("delete_bucket", None, self.storage.delete_bucket, name, bucket=name)
            return
        except BucketNotEmpty:
            other = self.for_bucket(name)
            if any(True for _ in other.list()):
                raise
            # only storekeeper's own bookkeeping (labels) is left: remove it, then retry
            reserved = [info.key for info in other.list(RESERVED_PREFIX)]
            if reserved:
                result = other.delete_many(reserved)
                if result.errors:
                    raise BucketNotEmpty(
                        other.url, None, f"could not remove bookkeeping objects: {result.errors}"
                    ) from None
        self._call("delete_bucket", None, self.storage.delete_bucket, name, bucket=name)

    def _get_bucket_labels(self, name: str) -> dict[str, str]:
        other = self.for_bucket(name)
        try:
            raw = other._download(LABELS_KEY, bucket=name).content
        except BucketNotFound:
            raise
        except NotFound:
            if not self.bucket_exists(name):
                raise BucketNotFound(f"supabase://{name}", None, "no such bucket") from None
            return {}
        try:
            labels = json.loads(raw)
        except ValueError:
            raise BackendError(f"supabase://{name}", LABELS_KEY, "labels object is not JSON") from None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def _set_bucket_labels(self, name: str, labels: dict[str, str]) -> None:
        body = json.dumps(labels, sort_keys=True).encode()
        self._upload(
            LABELS_KEY,
            body,
            upsert=True,
            content_type="application/json",
            metadata=None,
            bucket=name,
            op="set_labels",
        )
