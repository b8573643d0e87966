"""S3 backend (AWS, SeaweedFS, moto): conditional writes are done by the server, never faked here.

`put(if_none_match=True)` sends `If-None-Match: *` and `put(if_match=etag)` sends
`If-Match`; a 412 PreconditionFailed or 409 ConditionalRequestConflict becomes
`PreconditionFailed`. `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` point the client
at another server; path-style addressing is used then, because local servers
have no wildcard DNS for virtual-host buckets.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

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
from storekeeper.stores.base import (
    BucketInfo,
    DeleteResult,
    GetResult,
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    RequestCounter,
)

#: files at least this large go through the multipart transfer manager
MULTIPART_THRESHOLD = 16 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)


def endpoint_from_env() -> str | None:
    """The S3 endpoint override, service-specific variable first (as boto3 itself orders them)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with standard retries; path-style when an endpoint is overridden."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or endpoint_from_env()
    cfg = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def _error_parts(exc: Exception) -> tuple[str, int, str]:
    """(AWS error code, HTTP status, message) of a botocore error; ('', 0, str) for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {}) or {}
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        code = str(err.get("Code") or status or "")
        return code, status, str(err.get("Message") or "")
    return "", 0, f"{type(exc).__name__}: {exc}"


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

    def for_bucket(self, bucket: str) -> S3Store:
        return S3Store(
            check_bucket(bucket),
            counter=self.requests,
            client=self.client,
            list_page_size=self.list_page_size,
        )

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
    def _get(self, key: str) -> GetResult:
        self.requests.add("get")
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            body = resp["Body"].read()
        except Exception as exc:
            raise self._fail(exc, "get", key) from exc
        return GetResult(body=body, etag=resp["ETag"], metadata=dict(resp.get("Metadata") or {}))

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
        except Exception as exc:
            err = self._fail(exc, "put", key)
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

        Create-only (`if_none_match`) uploads are one PutObject with `If-None-Match: *` streamed
        from the open file (the transfer manager does not pass conditional headers; one PUT
        takes up to 5 GB).
        """
        if if_none_match:
            self.requests.add("put")
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
            if metadata:
                args["Metadata"] = dict(metadata)
            try:
                with open(path, "rb") as body:
                    resp = self.client.put_object(Body=body, IfNoneMatch="*", **args)
            except Exception as exc:
                raise self._fail(exc, "put", key) from exc  # "put": a 409 is a lost create race too
            return str(resp["ETag"])
        extra: dict[str, Any] = {"ContentType": content_type}
        if metadata:
            extra["Metadata"] = dict(metadata)
        self.requests.add("put_file")
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs=extra,
                Config=_transfer_config(),
            )
        except Exception as exc:
            # S3UploadFailedError wraps the ClientError; keep its code in the message
            inner = exc.__cause__ or exc.__context__
            raise self._fail(inner if isinstance(inner, Exception) else exc, "put_file", key) from exc
        return self.head(key).etag

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
        except Exception as exc:
            raise self._fail(exc, "get_file", key) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return etag

    def _head(self, key: str) -> ObjectInfo:
        self.requests.add("head")
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._fail(exc, "head", key) from exc
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=resp["ETag"],
            last_modified=resp["LastModified"],
            metadata=dict(resp.get("Metadata") or {}),
        )

    def _delete(self, key: str, if_match: str | None) -> None:
        self.requests.add("delete")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            self.client.delete_object(**args)
        except Exception as exc:
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
        except Exception as exc:
            cause = self._fail(exc, "delete_objects").cause
            result.errors.update(dict.fromkeys(keys, cause))
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
        pages = self.client.get_paginator("list_objects_v2").paginate(**args)
        it = iter(pages)
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except Exception as exc:
                self.requests.add("list")
                raise self._fail(exc, "list", prefix or None) from exc
            self.requests.add("list")
            for o in page.get("Contents", []):
                yield ObjectInfo(
                    key=o["Key"], size=int(o["Size"]), etag=o["ETag"], last_modified=o["LastModified"]
                )

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
        except Exception as exc:
            raise self._fail(exc, "list_multipart_uploads", prefix or None) from exc
        return out

    def _abort_upload(self, key: str, upload_id: str) -> None:
        self.requests.add("abort_upload")
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
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
        except Exception as exc:
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
            except Exception as exc:
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
        except Exception as exc:
            raise self._fail(exc, "create_bucket", bucket=name) from exc
        return BucketInfo(name=name)

    def _delete_bucket(self, name: str) -> None:
        self.requests.add("delete_bucket")
        try:
            self.client.delete_bucket(Bucket=name)
        except Exception as exc:
            raise self._fail(exc, "delete_bucket", bucket=name) from exc

    def _get_bucket_labels(self, name: str) -> dict[str, str]:
        self.requests.add("get_bucket_tagging")
        try:
            resp = self.client.get_bucket_tagging(Bucket=name)
        except Exception as exc:
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
        except Exception as exc:
            raise self._fail(exc, "put_bucket_tagging", bucket=name) from exc
