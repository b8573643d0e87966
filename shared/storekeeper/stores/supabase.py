"""Supabase Storage backend (`supabase://bucket`) over the real `supabase` / `storage3` client.

What Supabase Storage gives us, and what this adapter builds on top:

* **Create-only writes** are native: an upload without `x-upsert: true` fails with 409 "Duplicate"
  when the key exists; that is atomic on the server and maps to `PreconditionFailed`.
* **Compare-and-swap is not native**: the REST upload has no If-Match (conditional headers exist
  only on reads). `put(..., if_match=etag)` and `delete(..., if_match=etag)` therefore take a
  per-key *update lease* first: the create-only object `.storekeeper/leases/<sha256(key)>.json`
  holding a random token and an expiry (`lease_seconds`, default 30 s). With the lease held the
  adapter re-reads the etag, compares, writes, re-reads the new etag and deletes the lease.
  A lease past its expiry is taken over through a create-only marker named after the stale
  token, so exactly one contender wins a takeover. Guarantee: among storekeeper writers that use
  conditional writes, at most one compare-and-swap from a given state succeeds and a stale etag
  always gets `PreconditionFailed`, *provided each lease holder finishes within `lease_seconds`*
  (the write is refused locally when less than `lease_margin` seconds remain). Unconditional
  puts bypass the lease, as on S3 they bypass If-Match. A holder paused past its lease (no
  fencing is possible without server support) can still overwrite: keep conditional updates short.
* **Listing** is folder based (`POST /object/list`: one level, folders then files, `limit` and
  `offset`). The adapter pages every level until a short page and recurses into folders, then
  yields keys in byte order. Offset paging is not a snapshot: objects created or deleted during
  a long listing can be missed or seen twice at a page boundary.
* **Bulk delete**: `DELETE /object/{bucket}` takes at most 1000 keys (`max_delete_batch`).
* **Bucket labels**: Supabase buckets have no tags, so labels live in the bucket itself as the
  reserved object `.storekeeper/labels.json`. Everything under `.storekeeper/` (labels, leases)
  is hidden from `list()`, and `delete_bucket` removes it when nothing else is left.
* **Errors**: Storage puts the real status in the body (`statusCode`), often with HTTP 400; only a
  body status 404 becomes `NotFound` / `BucketNotFound`; everything else keeps its code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx

from storekeeper.config import SUPABASE_SERVICE_KEY, SUPABASE_SERVICE_KEY_SECRET_ARN, SUPABASE_URL
from storekeeper.errors import (
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

RESERVED_PREFIX = ".storekeeper/"
LABELS_KEY = ".storekeeper/labels.json"
LEASES_PREFIX = ".storekeeper/leases/"
PLACEHOLDER = ".emptyFolderPlaceholder"  # what the dashboard writes for an empty folder
MAX_DELETE_BATCH = 1000  # supabase/storage: "At most 1000 objects can be deleted per request."


def service_key_from_env() -> str:
    """SUPABASE_SERVICE_KEY, else the Secrets Manager secret SUPABASE_SERVICE_KEY_SECRET_ARN names.

    Deployed functions get only the ARN (the key never sits in the template or the
    console); Powertools' parameters utility caches the secret across warm invocations.
    """
    key = os.environ.get(SUPABASE_SERVICE_KEY, "").strip()
    arn = os.environ.get(SUPABASE_SERVICE_KEY_SECRET_ARN, "").strip()
    if key or not arn:
        return key
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = parameters.get_secret(arn, max_age=300)
    except parameters.exceptions.GetParameterError as exc:
        raise BackendError(
            "supabase://", None, f"cannot read {SUPABASE_SERVICE_KEY_SECRET_ARN} {arn}: {exc}"
        ) from exc
    return str(secret).strip()


def supabase_client_from_env() -> Any:
    """A `supabase.Client` from SUPABASE_URL / SUPABASE_SERVICE_KEY; no network I/O happens here."""
    url = os.environ.get(SUPABASE_URL, "").strip()
    key = service_key_from_env()
    missing = [name for name, value in ((SUPABASE_URL, url), (SUPABASE_SERVICE_KEY, key)) if not value]
    if missing:
        raise BackendError("supabase://", None, f"environment variable(s) {', '.join(missing)} not set")
    from supabase import create_client

    return create_client(url, key)


def storage_client(client: Any) -> Any:
    """Accept a `supabase.Client` or a storage3 storage client; return the storage client."""
    if hasattr(client, "from_") and hasattr(client, "list_buckets"):
        return client
    return client.storage


def _norm_etag(etag: str | None) -> str:
    value = (etag or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


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


class SupabaseStore(ObjectStore):
    scheme = "supabase"
    max_delete_batch = MAX_DELETE_BATCH
    #: rows asked per `list` call (Storage has no documented cap; 1000 keeps responses small)
    list_page_size = 1000
    #: how long an update lease is valid, how much of it must remain to write, how long to wait for one
    lease_seconds = 30.0
    lease_margin = 5.0
    lease_wait_seconds = 5.0

    def __init__(self, bucket: str, *, counter: RequestCounter | None = None, client: Any = None) -> None:
        super().__init__(bucket, counter=counter)
        self._client = client
        self._storage: Any = None

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
        other = SupabaseStore(bucket, counter=self.requests, client=self._client)
        other._storage = self._storage
        return other

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
        if fail.status in ("401", "403") or fail.code in ("InvalidJWT", "Unauthorized", "AccessDenied"):
            raise BackendError(where, key, f"access denied, check {SUPABASE_SERVICE_KEY} ({detail})") from exc
        raise BackendError(where, key, detail) from exc

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

    def _info(self, key: str, bucket: str | None = None) -> dict[str, Any]:
        info: dict[str, Any] = self._call("head", key, self._api(bucket).info, key, bucket=bucket)
        return info

    def _download(self, key: str, bucket: str | None = None) -> httpx.Response:
        api = self._api(bucket)
        response: httpx.Response = self._call(
            "get", key, api._request, "GET", ["object", bucket or self.bucket, *key.split("/")], bucket=bucket
        )
        return response

    # -- objects ---------------------------------------------------------------------
    def _get(self, key: str) -> GetResult:
        # download gives the body and its ETag, info the user metadata: read both, retry if a write
        # landed in between, so body, etag and metadata always belong to one version.
        for _ in range(3):
            response = self._download(key)
            body = response.content
            info = self._info(key)
            seen = response.headers.get("etag") or '"' + hashlib.md5(body).hexdigest() + '"'  # noqa: S324
            if _norm_etag(seen) == _norm_etag(info.get("etag")):
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
        if if_match is not None:
            return self._compare_and_swap(key, data, if_match, content_type, metadata)
        self._upload(key, data, upsert=not if_none_match, content_type=content_type, metadata=metadata)
        return str(self._info(key).get("etag"))

    def _put_file(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str], if_none_match: bool
    ) -> str:
        """Stream a local file (storage3 opens and sends the path itself); create-only via x-upsert."""
        self._upload(key, path, upsert=not if_none_match, content_type=content_type, metadata=metadata)
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

    def _delete(self, key: str, if_match: str | None) -> None:
        if if_match is None:
            self._call("delete", key, self._api().remove, [key])
            return
        with self._lease(key) as lease:
            try:
                current = self._head(key).etag
            except NotFound as exc:
                if isinstance(exc, BucketNotFound):
                    raise
                return  # already gone: deleting is idempotent
            if _norm_etag(current) != _norm_etag(if_match):
                raise PreconditionFailed(self.url, key, f"If-Match {if_match} but current etag is {current}")
            lease.check()
            self._call("delete", key, self._api().remove, [key])

    def _delete_batch(self, keys: list[str], result: DeleteResult) -> None:
        try:
            self._call("delete_batch", None, self._api().remove, keys)
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

    # -- listing -----------------------------------------------------------------------
    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        folder, _, partial = prefix.rpartition("/")
        show_reserved = prefix.startswith(RESERVED_PREFIX[:-1])  # asked for explicitly: ".storekeeper..."
        return self._walk(folder, partial, start_after, show_reserved)

    def _list_level(self, folder: str, search: str) -> list[dict[str, Any]]:
        """Every row of one folder level, following limit/offset pages until a short page."""
        rows: list[dict[str, Any]] = []
        api = self._api()
        while True:
            options: dict[str, Any] = {
                "limit": self.list_page_size,
                "offset": len(rows),
                "sortBy": {"column": "name", "order": "asc"},
            }
            if search:
                options["search"] = search
            page: list[dict[str, Any]] = self._call("list", folder or None, api.list, folder, options)
            rows.extend(page)
            if len(page) < self.list_page_size:
                return rows

    def _walk(
        self, folder: str, partial: str, start_after: str | None, show_reserved: bool
    ) -> Iterator[ObjectInfo]:
        entries: list[tuple[str, str, dict[str, Any] | None]] = []  # (sort key, full key, file row or None)
        seen: set[tuple[str, bool]] = set()
        for row in self._list_level(folder, partial):
            name = str(row.get("name") or "")
            if not name.startswith(partial):
                continue  # `search` is a case-insensitive LIKE: drop the wider matches
            full = f"{folder}/{name}" if folder else name
            is_folder = row.get("id") is None and row.get("metadata") is None
            if (full + "/" if is_folder else full).startswith(RESERVED_PREFIX) and not show_reserved:
                continue
            if not is_folder and name == PLACEHOLDER:
                continue
            if (name, is_folder) in seen:
                continue  # a row repeated across an offset boundary
            seen.add((name, is_folder))
            entries.append((full + "/" if is_folder else full, full, None if is_folder else row))
        entries.sort(key=lambda e: e[0])
        for sort_key, full, file_row in entries:
            if file_row is None:
                if (
                    start_after is not None
                    and sort_key <= start_after
                    and not start_after.startswith(sort_key)
                ):
                    continue  # the whole folder sorts before start_after
                yield from self._walk(full, "", start_after, show_reserved)
                continue
            if start_after is not None and full <= start_after:
                continue
            meta = file_row.get("metadata") or {}
            yield ObjectInfo(
                key=full,
                size=int(meta.get("size") or meta.get("contentLength") or 0),
                etag=str(meta.get("eTag") or ""),
                last_modified=_parse_time(meta.get("lastModified") or file_row.get("updated_at")),
            )

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
            # only storekeeper's own bookkeeping (labels, leases) is left: remove it, then retry
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

    # -- compare-and-swap through an update lease ----------------------------------------------
    def _compare_and_swap(
        self, key: str, data: bytes, if_match: str, content_type: str, metadata: dict[str, str]
    ) -> str:
        with self._lease(key) as lease:
            try:
                current = self._head(key).etag
            except NotFound as exc:
                if isinstance(exc, BucketNotFound):
                    raise
                raise PreconditionFailed(
                    self.url, key, f"If-Match {if_match} but the object is absent"
                ) from None
            if _norm_etag(current) != _norm_etag(if_match):
                raise PreconditionFailed(self.url, key, f"If-Match {if_match} but current etag is {current}")
            lease.check()
            self._upload(key, data, upsert=True, content_type=content_type, metadata=metadata)
            return str(self._info(key).get("etag"))

    @contextlib.contextmanager
    def _lease(self, key: str) -> Iterator[_Lease]:
        lease = _Lease(self, key)
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()


class _Lease:
    """A create-only lease object that serialises conditional writers of one key (see module doc)."""

    def __init__(self, store: SupabaseStore, key: str) -> None:
        self.store = store
        self.key = key
        self.lease_key = LEASES_PREFIX + hashlib.sha256(key.encode()).hexdigest() + ".json"
        self.token = uuid.uuid4().hex
        self.expires_at = 0.0
        self.held = False

    def _body(self) -> bytes:
        self.expires_at = time.time() + self.store.lease_seconds
        return json.dumps({"key": self.key, "token": self.token, "expires_at": self.expires_at}).encode()

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self.store._download(self.lease_key).content
        except BucketNotFound:
            raise
        except NotFound:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return {"token": "corrupt-" + hashlib.sha256(raw).hexdigest(), "expires_at": 0}
        return data if isinstance(data, dict) else {"token": "corrupt", "expires_at": 0}

    def acquire(self) -> None:
        deadline = time.monotonic() + self.store.lease_wait_seconds
        delay = 0.02
        while True:
            try:
                self.store._upload(
                    self.lease_key,
                    self._body(),
                    upsert=False,
                    content_type="application/json",
                    metadata=None,
                    op="lease",
                )
                self.held = True
                return
            except PreconditionFailed:
                pass
            holder = self._read()
            if (
                holder is not None
                and float(holder.get("expires_at", 0)) < time.time()
                and self._take_over(holder)
            ):
                return
            if time.monotonic() >= deadline:
                until = "" if holder is None else f" until {holder.get('expires_at')}"
                raise PreconditionFailed(
                    self.store.url,
                    self.key,
                    f"another conditional writer holds the lease {self.lease_key}{until}; re-read and retry",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _take_over(self, holder: dict[str, Any]) -> bool:
        """Replace an expired lease; the create-only marker lets exactly one contender do it."""
        marker = f"{self.lease_key}.takeover-{holder.get('token')}"
        try:
            self.store._upload(
                marker, b"", upsert=False, content_type="application/octet-stream", metadata=None, op="lease"
            )
        except PreconditionFailed:
            return False
        self.store._upload(
            self.lease_key,
            self._body(),
            upsert=True,
            content_type="application/json",
            metadata=None,
            op="lease",
        )
        self.held = True
        return True

    def check(self) -> None:
        """Refuse to write when the lease may already have been taken over by someone else."""
        if time.time() > self.expires_at - self.store.lease_margin:
            raise PreconditionFailed(self.store.url, self.key, "update lease expired before the write; retry")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(StoreError):
            current = self._read()
            if current is not None and current.get("token") == self.token and time.time() < self.expires_at:
                self.store._call("lease", self.lease_key, self.store._api().remove, [self.lease_key])
