"""S3 backend (AWS, SeaweedFS, moto): conditional writes are done by the server, never faked here.

`put(if_none_match=True)` sends `If-None-Match: *` and `put(if_match=etag)` sends
`If-Match`; a 412 PreconditionFailed or 409 ConditionalRequestConflict becomes
`PreconditionFailed`. `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` point the client
at another server; path-style addressing is used then, because local servers
have no wildcard DNS for virtual-host buckets.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from storekeeper.errors import (
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from storekeeper.names import check_bucket
from storekeeper.stores import multipart
from storekeeper.stores.base import (
    BucketInfo,
    DeleteResult,
    GetResult,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
    RequestCounter,
)

log = logging.getLogger("storekeeper.stores.s3")

#: what a boto3 call raises for a backend failure; anything else is a bug and propagates as itself
S3_ERRORS = (ClientError, BotoCoreError)

#: how long a bucket's versioning status is trusted before it is read again (seconds)
VERSIONING_TTL = 300.0
#: a purge's version scan reads at most SLACK x keys + BASE unrelated versions before listing per key
PURGE_SCAN_SLACK = 2
PURGE_SCAN_BASE = 1000
#: files at least this large go through the multipart transfer manager
MULTIPART_THRESHOLD = 16 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


#: parts in flight at once: archive downloads are parallel ranged GETs of MULTIPART_THRESHOLD each
TRANSFER_CONCURRENCY = 16


def _transfer_config() -> Any:
    """boto3's transfer manager: parallel ranged GETs (downloads) and parallel parts (plain uploads).

    Create-only uploads (`put_file(if_none_match=True)`, the compactor's archives) do not use it:
    s3transfer does not pass If-None-Match to CompleteMultipartUpload (storekeeper.stores.multipart).
    """
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_THRESHOLD,
        max_concurrency=TRANSFER_CONCURRENCY,
        use_threads=True,
    )


def endpoint_from_env() -> str | None:
    """The S3 endpoint override, service-specific variable first (as boto3 itself orders them)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with bounded timeouts and retries (storekeeper.netconfig); path-style
    when an endpoint is overridden."""
    import boto3

    from storekeeper.netconfig import boto_config, guard

    endpoint = endpoint_url or endpoint_from_env()
    # a connection per transfer thread (botocore keeps 10): parallel ranged GETs and multipart parts
    pool = max(TRANSFER_CONCURRENCY, multipart.DEFAULT_CONCURRENCY)
    cfg = boto_config(s3={"addressing_style": "path"} if endpoint else {}, max_pool_connections=pool)
    fast_timestamps()
    return guard(boto3.client("s3", endpoint_url=endpoint, config=cfg))


def iso_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, ~6x faster on S3's ISO 8601 times (`datetime.fromisoformat`
    where that gives an aware time; botocore's own, dateutil-based parser for anything else)."""
    from botocore.utils import parse_timestamp

    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parse_timestamp(value)


def fast_timestamps() -> None:
    """Clients made from now on by boto3's default session parse timestamps with `iso_timestamp`:
    dateutil was ~80% of the CPU a 1,000-key listing page costs (0.44 s -> 0.08 s a page here),
    and parallel listing is bound by that CPU once the round trips overlap."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session: Any = boto3.DEFAULT_SESSION
    factory = session._session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=iso_timestamp)


def _error_parts(exc: Exception) -> tuple[str, int, str]:
    """(AWS error code, HTTP status, message) of a botocore error; ('', 0, str) for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {}) or {}
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        code = str(err.get("Code") or status or "")
        return code, status, str(err.get("Message") or "")
    return "", 0, f"{type(exc).__name__}: {exc}"


def _info(o: dict[str, Any]) -> ObjectInfo:
    """One `Contents` entry of a ListObjectsV2 page."""
    return ObjectInfo(key=o["Key"], size=int(o["Size"]), etag=o["ETag"], last_modified=o["LastModified"])


class S3Store(ObjectStore):
    scheme = "s3"
    max_delete_batch = 1000

    def __init__(
        self,
        bucket: str,
        *,
        counter: RequestCounter | None = None,
        client: Any | None = None,
        list_page_size: int = 1000,
    ) -> None:
        super().__init__(bucket, counter=counter)
        self.client = client if client is not None else make_client()
        #: MaxKeys per list_objects_v2 page (tests lower it to prove every page is followed)
        self.list_page_size = list_page_size
        #: bytes per part of a create-only multipart upload (within S3's rules: multipart.plan_parts)
        self.multipart_part_size = multipart.DEFAULT_PART
        self._versioning: tuple[bool, float] | None = None  # (versioned, monotonic time read)
        self._versioning_lock = threading.Lock()

    def own_attempts(self) -> int:
        """botocore retries every request itself (standard mode, `netconfig.boto_config`)."""
        from storekeeper.netconfig import client_attempts

        return client_attempts(self.client)

    def for_bucket(self, bucket: str) -> S3Store:
        return S3Store(
            check_bucket(bucket),
            counter=self.requests,
            client=self.client,
            list_page_size=self.list_page_size,
        )

    # -- versioning ------------------------------------------------------------------
    @property
    def versioned(self) -> bool:
        """GetBucketVersioning, read once per VERSIONING_TTL (versioning can be switched on, never off).

        Suspended counts as versioned: the versions written while it was on are still billed.
        A bucket whose versioning cannot be read (no s3:GetBucketVersioning, a server without
        the call) is treated as unversioned, with a warning: deletes then work as before.
        """
        with self._versioning_lock:
            now = time.monotonic()
            if self._versioning is None or now - self._versioning[1] > VERSIONING_TTL:
                self._versioning = (self._read_versioning(), now)
            return self._versioning[0]

    def _read_versioning(self) -> bool:
        self.requests.add("get_bucket_versioning")
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except S3_ERRORS as exc:
            err = self._fail(exc, "get_bucket_versioning")
            if isinstance(err, BucketNotFound):
                raise err from exc
            log.warning("s3://%s: versioning unknown, treated as off (%s)", self.bucket, err.cause)
            return False
        return status in ("Enabled", "Suspended")

    def _list_versions(self, prefix: str, key_marker: str | None) -> Iterator[ObjectVersion]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "PaginationConfig": {"PageSize": self.list_page_size},
        }
        if key_marker:
            args["KeyMarker"] = key_marker
        for page in self._pages("list_object_versions", "list_versions", args):
            # a page carries versions and delete markers in two lists: merge them back into key
            # order, newest first within a key (the order S3 keeps them in)
            rows = [
                ObjectVersion(
                    v["Key"],
                    str(v.get("VersionId") or "null"),
                    int(v.get("Size") or 0),
                    v.get("ETag", ""),
                    v["LastModified"],
                    bool(v.get("IsLatest")),
                )
                for v in page.get("Versions", [])
            ]
            rows += [
                ObjectVersion(
                    m["Key"],
                    str(m.get("VersionId") or "null"),
                    0,
                    "",
                    m["LastModified"],
                    bool(m.get("IsLatest")),
                    delete_marker=True,
                )
                for m in page.get("DeleteMarkers", [])
            ]
            rows.sort(key=lambda v: (v.key, not v.is_latest, -v.last_modified.timestamp()))
            yield from rows

    def _versions_of(self, keys: list[str]) -> dict[str, list[ObjectVersion]]:
        """Every version of each of `keys` (sorted): one version-listing scan across them, bounded.

        The scan lists the keys' longest common prefix and stops past the last key; a sparse key set
        that would read more than PURGE_SCAN_SLACK x len(keys) + PURGE_SCAN_BASE unrelated versions
        lists the remaining keys one by one instead. (No KeyMarker: moto 5 drops the first version
        at or after a KeyMarker given without a VersionIdMarker, where AWS starts after the marker.)
        """
        found: dict[str, list[ObjectVersion]] = {k: [] for k in keys}
        if not keys:
            return found
        first, last = keys[0], keys[-1]
        n = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
        budget = PURGE_SCAN_SLACK * len(keys) + PURGE_SCAN_BASE
        extra = 0
        for v in self._list_versions(first[:n], None):
            if v.key > last:
                return found
            if v.key in found:
                found[v.key].append(v)
                continue
            extra += 1
            if extra > budget:
                for k in keys:
                    if k > v.key:
                        found[k] = [x for x in self._list_versions(k, None) if x.key == k]
                return found
        return found

    def _purge(self, keys: list[str], etags: dict[str, str]) -> DeleteResult:
        result = DeleteResult()
        targets: list[ObjectVersion] = []
        for key, versions in self._versions_of(keys).items():
            latest = next((v for v in versions if v.is_latest), None)
            want = etags.get(key)
            if (
                want is not None
                and latest is not None
                and not latest.delete_marker
                and latest.etag.strip('"') != want.strip('"')
            ):
                result.kept[key] = f"{key} changed since it was checked (etag {latest.etag} != {want})"
                continue
            targets.extend(versions)
        failed: dict[str, str] = {}
        for i in range(0, len(targets), self.max_delete_batch):
            batch = targets[i : i + self.max_delete_batch]
            self.requests.add("delete_versions")
            result.requests += 1
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={
                        "Objects": [{"Key": v.key, "VersionId": v.version_id} for v in batch],
                        "Quiet": True,
                    },
                )
            except S3_ERRORS as exc:
                cause = self._fail(exc, "delete_objects (versions)").cause
                failed.update(dict.fromkeys((v.key for v in batch), cause))
                continue
            errs = resp.get("Errors", [])
            failed.update(
                {
                    e["Key"]: f"{e.get('Code')}: {e.get('Message')} (version {e.get('VersionId')})"
                    for e in errs
                }
            )
            result.versions_removed += len(batch) - len(errs)
            kept = {(e.get("Key"), e.get("VersionId")) for e in errs}
            result.bytes_freed += sum(v.size for v in batch if (v.key, v.version_id) not in kept)
        result.errors.update(failed)
        result.deleted.extend(k for k in keys if k not in failed and k not in result.kept)
        return result

    # -- error mapping -----------------------------------------------------------
    def _fail(
        self, exc: Exception, op: str, key: str | None = None, *, bucket: str | None = None
    ) -> StoreError:
        """The typed error for a failed call: names the store, the key, the operation and the AWS code."""
        code, status, message = _error_parts(exc)
        store = f"s3://{bucket or self.bucket}"
        cause = f"{op}: {code or type(exc).__name__}" + (f" (HTTP {status})" if status else "")
        cause += f": {message}" if message else ""
        if code == "NoSuchBucket":
            return BucketNotFound(store, key, cause)
        if code in _PRECONDITION or (op == "put" and status == 409):
            return PreconditionFailed(store, key, cause)
        if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return BucketAlreadyExists(store, key, cause)
        if code == "BucketNotEmpty":
            return BucketNotEmpty(store, key, cause)
        if code in _NOT_FOUND:
            return NotFound(store, key, cause)
        return BackendError(store, key, cause)

    # -- objects -------------------------------------------------------------------
    def signed_url(self, key: str, expires_in: int = 3600) -> str:
        """A presigned GET URL anyone can use for `expires_in` seconds, like Supabase's signed URLs.

        Signed locally (no request); SigV4 allows at most 7 days.
        """
        from storekeeper.errors import InvalidName
        from storekeeper.names import check_key

        key = check_key(key)
        if not 1 <= expires_in <= 7 * 86400:
            raise InvalidName("expires_in", "must be 1 second to 7 days (SigV4 presigned URLs)", expires_in)
        params = {"Bucket": self.bucket, "Key": key}
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))

    def _get(self, key: str) -> GetResult:
        self.requests.add("get")
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            body = resp["Body"].read()
        except S3_ERRORS as exc:
            raise self._fail(exc, "get", key) from exc
        return GetResult(body=body, etag=resp["ETag"], metadata=dict(resp.get("Metadata") or {}))

    def _get_version(self, key: str, version_id: str) -> GetResult:
        self.requests.add("get")
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            body = resp["Body"].read()
        except S3_ERRORS as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "NoSuchVersion":  # a deleted version
                raise NotFound(self.url, key, f"version {version_id}: {code}") from exc
            raise self._fail(exc, "get", key) from exc
        return GetResult(body=body, etag=resp["ETag"], metadata=dict(resp.get("Metadata") or {}))

    def _delete_version(self, key: str, version_id: str) -> None:
        self.requests.add("delete")
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except S3_ERRORS as exc:
            err = self._fail(exc, "delete", key)
            if type(err) is NotFound:
                return
            raise err from exc

    def _put(
        self,
        key: str,
        data: bytes,
        if_none_match: bool,
        if_match: str | None,
        content_type: str,
        metadata: dict[str, str],
    ) -> str:
        self.requests.add("put")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": content_type}
        if metadata:
            args["Metadata"] = metadata
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            resp = self.client.put_object(**args)
        except S3_ERRORS as exc:
            err = self._fail(exc, "put", key)
            if isinstance(err, PreconditionFailed) and if_match is not None and self._bucket_missing():
                # moto answers If-Match into a missing bucket with 412: the bucket is the cause
                raise BucketNotFound(self.url, None, f"put: no such bucket ({err.cause})") from exc
            if if_match is not None and type(err) is NotFound:
                # AWS answers If-Match on a missing object with 404 NoSuchKey: the condition did not hold
                raise PreconditionFailed(
                    err.store, key, f"If-Match {if_match} but the object is absent; {err.cause}"
                ) from exc
            raise err from exc
        return str(resp["ETag"])

    def _put_file(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str], if_none_match: bool
    ) -> str:
        """Large archives stream through the transfer manager (multipart past MULTIPART_THRESHOLD).

        Create-only (`if_none_match`) uploads: one PutObject with `If-None-Match: *` streamed from
        the open file below `multipart.threshold()` (64 MiB unless configured), above it a parallel
        multipart upload whose CompleteMultipartUpload carries `If-None-Match: *` (aborted on any
        failure). Either way a lost create race is PreconditionFailed.
        """
        if if_none_match:
            args: dict[str, Any] = {"ContentType": content_type}
            if metadata:
                args["Metadata"] = dict(metadata)
            if path.stat().st_size >= multipart.threshold():
                return self._put_file_multipart(key, path, args)
            self.requests.add("put")
            try:
                with open(path, "rb") as body:
                    resp = self.client.put_object(
                        Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", **args
                    )
            except S3_ERRORS as exc:
                raise self._fail(exc, "put", key) from exc  # "put": a 409 is a lost create race too
            return str(resp["ETag"])
        extra: dict[str, Any] = {"ContentType": content_type}
        if metadata:
            extra["Metadata"] = dict(metadata)
        self.requests.add("put_file")
        from boto3.exceptions import S3UploadFailedError

        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs=extra,
                Config=_transfer_config(),
            )
        except (*S3_ERRORS, S3UploadFailedError) as exc:
            # S3UploadFailedError wraps the ClientError; keep its code in the message
            inner = exc.__cause__ or exc.__context__
            raise self._fail(inner if isinstance(inner, Exception) else exc, "put_file", key) from exc
        return self.head(key).etag

    def _put_file_multipart(self, key: str, path: Path, args: dict[str, Any]) -> str:
        try:
            return multipart.upload_create_only(
                self.client,
                self.bucket,
                key,
                path,
                extra=args,
                count=self.requests.add,
                part_size=self.multipart_part_size,
            )
        except multipart.UploadFailed as exc:
            if not isinstance(exc.cause, S3_ERRORS):
                raise exc.cause from exc  # a bug or an OSError reading the file: not a backend error
            err = self._fail(exc.cause, "put", key)  # "put": a 409 on complete is a lost create race too
            if not exc.aborted:
                note = "; the upload could not be aborted (the lifecycle rule removes its parts)"
                err = type(err)(err.store, err.key, err.cause + note)
            raise err from exc.cause

    def get_file(self, key: str, path: Path) -> str:
        """Download through the transfer manager into a unique temp file, then rename into place."""
        from storekeeper.names import check_key

        check_key(key)
        etag = self.head(key).etag
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        self.requests.add("get_file")
        try:
            self.client.download_file(self.bucket, key, str(tmp), Config=_transfer_config())
            tmp.replace(path)
        except S3_ERRORS as exc:
            raise self._fail(exc, "get_file", key) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return etag

    def _head(self, key: str) -> ObjectInfo:
        self.requests.add("head")
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except S3_ERRORS as exc:
            err = self._fail(exc, "head", key)
            if type(err) is NotFound and self._bucket_missing():
                # a HEAD answer has no body: its bare 404 may mean the bucket, not the key
                raise BucketNotFound(self.url, None, f"head: no such bucket ({err.cause})") from exc
            raise err from exc
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=resp["ETag"],
            last_modified=resp["LastModified"],
            metadata=dict(resp.get("Metadata") or {}),
        )

    def _bucket_missing(self) -> bool:
        self.requests.add("head_bucket")
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except S3_ERRORS as exc:
            code, status, _ = _error_parts(exc)
            return code in ("404", "NoSuchBucket", "NotFound") or status == 404
        return False

    def _delete(self, key: str, if_match: str | None) -> None:
        self.requests.add("delete")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            self.client.delete_object(**args)
        except S3_ERRORS as exc:
            err = self._fail(exc, "delete", key)
            if type(err) is NotFound:  # already gone (If-Match on a missing key answers 404): idempotent
                return
            raise err from exc

    def _delete_batch(self, keys: list[str], result: DeleteResult) -> None:
        self.requests.add("delete_batch")
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except S3_ERRORS as exc:
            err = self._fail(exc, "delete_objects")
            if isinstance(err, BucketNotFound):
                raise err from exc  # never "every key failed" for a bucket that is gone
            result.errors.update(dict.fromkeys(keys, err.cause))
            return
        failed = {e["Key"]: f"{e.get('Code')}: {e.get('Message')}" for e in resp.get("Errors", [])}
        result.errors.update(failed)
        result.deleted.extend(k for k in keys if k not in failed)

    def _list(self, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "PaginationConfig": {"PageSize": self.list_page_size},
        }
        if start_after:
            args["StartAfter"] = start_after
        for page in self._pages("list_objects_v2", "list", args):
            for o in page.get("Contents", []):
                yield _info(o)

    def _pages(self, operation: str, counted_as: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a paginated listing, each counted as one request; failures typed."""
        it = iter(self.client.get_paginator(operation).paginate(**args))
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except S3_ERRORS as exc:
                self.requests.add(counted_as)
                raise self._fail(exc, counted_as, args.get("Prefix") or None) from exc
            self.requests.add(counted_as)
            yield page

    def _list_delimited(
        self, prefix: str, limit: int | None = None
    ) -> tuple[list[ObjectInfo], list[str]] | None:
        objects: list[ObjectInfo] = []
        subs: list[str] = []
        args = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "Delimiter": "/",
            "PaginationConfig": {"PageSize": self.list_page_size},
        }
        for page in self._pages("list_objects_v2", "list", args):  # a delimited ListObjectsV2
            objects.extend(_info(o) for o in page.get("Contents", []))
            subs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            if limit is not None and len(objects) + len(subs) > limit:
                return None  # the rest of the level is not read
        return objects, subs

    # -- incomplete multipart uploads -----------------------------------------------------
    def _list_incomplete_uploads(self, prefix: str) -> list[IncompleteUpload]:
        out: list[IncompleteUpload] = []
        args: dict[str, Any] = {"Bucket": self.bucket}
        if prefix:
            args["Prefix"] = prefix
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(**args):
                self.requests.add("list_uploads")
                for u in page.get("Uploads", []):
                    out.append(IncompleteUpload(u["Key"], u["UploadId"], u["Initiated"]))
        except S3_ERRORS as exc:
            raise self._fail(exc, "list_multipart_uploads", prefix or None) from exc
        return out

    def _abort_upload(self, key: str, upload_id: str) -> None:
        self.requests.add("abort_upload")
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except S3_ERRORS as exc:
            if _error_parts(exc)[0] == "NoSuchUpload":  # aborted or completed meanwhile: idempotent
                return
            raise self._fail(exc, "abort_multipart_upload", key) from exc

    # -- buckets -------------------------------------------------------------------
    def list_buckets(self) -> list[BucketInfo]:
        out: list[BucketInfo] = []
        try:
            if self.client.can_paginate("list_buckets"):
                pages: Any = self.client.get_paginator("list_buckets").paginate()
            else:  # pragma: no cover - older botocore
                pages = [self.client.list_buckets()]
            for page in pages:
                self.requests.add("list_buckets")
                for b in page.get("Buckets", []):
                    created: datetime | None = b.get("CreationDate")
                    out.append(BucketInfo(name=b["Name"], created_at=created))
        except S3_ERRORS as exc:
            raise self._fail(exc, "list_buckets") from exc
        return out

    def _create_bucket(self, name: str) -> BucketInfo:
        self.requests.add("create_bucket")
        args: dict[str, Any] = {"Bucket": name}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        else:
            # us-east-1 answers 200 to re-creating a bucket you own (legacy behaviour), so look first;
            # two creators racing inside this window both "succeed" on the same empty bucket.
            self.requests.add("head_bucket")
            try:
                self.client.head_bucket(Bucket=name)
            except S3_ERRORS as exc:
                code, status, _ = _error_parts(exc)
                if status == 403:  # the name exists but belongs to another account
                    raise BucketAlreadyExists(
                        f"s3://{name}", None, f"create_bucket: head_bucket answered {code} (HTTP 403)"
                    ) from exc
                if code not in ("404", "NoSuchBucket", "NotFound") and status != 404:
                    raise self._fail(exc, "head_bucket", bucket=name) from exc
            else:
                raise BucketAlreadyExists(f"s3://{name}", None, "create_bucket: bucket already exists")
        try:
            self.client.create_bucket(**args)
        except S3_ERRORS as exc:
            raise self._fail(exc, "create_bucket", bucket=name) from exc
        return BucketInfo(name=name)

    def _delete_bucket(self, name: str) -> None:
        self.requests.add("delete_bucket")
        try:
            self.client.delete_bucket(Bucket=name)
        except S3_ERRORS as exc:
            raise self._fail(exc, "delete_bucket", bucket=name) from exc

    def _get_bucket_labels(self, name: str) -> dict[str, str]:
        self.requests.add("get_bucket_tagging")
        try:
            resp = self.client.get_bucket_tagging(Bucket=name)
        except S3_ERRORS as exc:
            if _error_parts(exc)[0] == "NoSuchTagSet":
                return {}
            raise self._fail(exc, "get_bucket_tagging", bucket=name) from exc
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    def _set_bucket_labels(self, name: str, labels: dict[str, str]) -> None:
        self.requests.add("put_bucket_tagging")
        try:
            if labels:
                tags = [{"Key": k, "Value": v} for k, v in sorted(labels.items())]
                self.client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
            else:
                self.client.delete_bucket_tagging(Bucket=name)
        except S3_ERRORS as exc:
            raise self._fail(exc, "put_bucket_tagging", bucket=name) from exc
