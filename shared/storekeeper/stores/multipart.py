"""A create-only multipart upload: parts sent in parallel from the file, `If-None-Match: *` on complete.

s3transfer (boto3's `upload_file`) cannot pass conditional headers to CompleteMultipartUpload, and
one PutObject is single-stream and capped at 5 GB. AWS checks `If-None-Match: *` on
CompleteMultipartUpload atomically (conditional writes, 2024): exactly one of several uploads of a
key completes, the others get 412 PreconditionFailed (or 409 ConditionalRequestConflict). Parts
are read straight from the file (a bounded window per part, never the whole file in memory) by a
bounded pool; on any failure, a lost complete included, the upload is aborted so no part stays
billed (the bucket's `AbortIncompleteMultipartUpload` lifecycle rule catches a process killed
before it could abort).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storekeeper.config import MULTIPART_THRESHOLD_MB, env_int

log = logging.getLogger("storekeeper.stores.multipart")

MiB = 1024 * 1024
#: S3's multipart rules: at most 10,000 parts of 5 MiB to 5 GiB (the last one may be smaller)
MAX_PARTS = 10_000
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_OBJECT = 5 * 1024 * 1024 * MiB  # 5 TiB
#: the part size used while it keeps the count under MAX_PARTS (s3transfer's default is 8 MiB)
DEFAULT_PART = 16 * MiB
#: parts in flight at once (botocore's connection pool holds 10 by default)
DEFAULT_CONCURRENCY = 8
#: files at least this large go up as a multipart upload; smaller ones as one PUT
THRESHOLD_ENV = MULTIPART_THRESHOLD_MB
DEFAULT_THRESHOLD_MB = 64


def threshold() -> int:
    """Bytes from which a create-only file upload is multipart (`STOREKEEPER_MULTIPART_THRESHOLD_MB`)."""
    mb = env_int(THRESHOLD_ENV, DEFAULT_THRESHOLD_MB)
    if mb * MiB < MIN_PART:
        raise ValueError(f"{THRESHOLD_ENV} must be at least {MIN_PART // MiB} (S3's smallest part), got {mb}")
    return mb * MiB


@dataclass(frozen=True)
class Part:
    number: int  # 1-based, as S3 numbers them
    offset: int
    length: int


def plan_parts(size: int, preferred: int = DEFAULT_PART) -> list[Part]:
    """Parts of `size` bytes: `preferred` each (in whole MiB) unless that needs more than 10,000, then
    the smallest whole MiB that fits; every part but the last within 5 MiB-5 GiB."""
    if size < 0 or size > MAX_OBJECT:
        raise ValueError(f"a multipart upload holds 0 to {MAX_OBJECT} bytes, not {size}")
    part = min(math.ceil(max(preferred, MIN_PART, math.ceil(size / MAX_PARTS)) / MiB) * MiB, MAX_PART)
    count = max(1, math.ceil(size / part))
    return [Part(i + 1, i * part, min(part, size - i * part)) for i in range(count)]


class UploadFailed(Exception):
    """A multipart upload that did not complete; `cause` is the first failure, the upload is aborted."""

    def __init__(self, cause: BaseException, aborted: bool) -> None:
        super().__init__(str(cause))
        self.cause, self.aborted = cause, aborted


def upload_create_only(
    client: Any,
    bucket: str,
    key: str,
    path: Path,
    *,
    extra: dict[str, Any],
    count: Callable[[str], None],
    part_size: int = DEFAULT_PART,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> str:
    """Upload `path` to `key` unless the key exists; returns the ETag.

    Raises UploadFailed (wrapping the first botocore error, a 412 from the complete included)
    after aborting the upload; `count(op)` is called once per request, for the store's counter.
    """
    size = os.path.getsize(path)
    parts = plan_parts(size, part_size)
    count("create_upload")
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        etags = _send_parts(client, bucket, key, upload_id, path, parts, count, concurrency)
        count("complete_upload")
        resp = client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(etags.items())]},
            IfNoneMatch="*",
        )
    except BaseException as exc:  # a KeyboardInterrupt or a Lambda timeout signal aborts the upload too
        aborted = _abort(client, bucket, key, upload_id, count)
        if not isinstance(exc, Exception):
            raise
        raise UploadFailed(exc, aborted) from exc
    return str(resp["ETag"])


def _send_parts(
    client: Any,
    bucket: str,
    key: str,
    upload_id: str,
    path: Path,
    parts: list[Part],
    count: Callable[[str], None],
    concurrency: int,
) -> dict[int, str]:
    """Every part, `concurrency` at a time; the first failure cancels what has not started."""
    from s3transfer.utils import ReadFileChunk

    def send(p: Part) -> tuple[int, str]:
        count("upload_part")
        with ReadFileChunk.from_filename(str(path), p.offset, p.length, enable_callbacks=False) as body:
            resp = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=p.number, Body=body
            )
        return p.number, str(resp["ETag"])

    etags: dict[int, str] = {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(concurrency, len(parts))), thread_name_prefix="mpu"
    ) as pool:
        pending: set[Future[tuple[int, str]]] = {pool.submit(send, p) for p in parts}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    for other in pending:
                        other.cancel()
                    wait(pending)  # parts already in flight end before the abort, or they outlive it
                    raise f.exception()  # type: ignore[misc]
                n, etag = f.result()
                etags[n] = etag
    return etags


def _abort(client: Any, bucket: str, key: str, upload_id: str, count: Callable[[str], None]) -> bool:
    """Abort the upload (its parts are freed); False, logged, when even that failed (the lifecycle
    rule removes it after its days)."""
    for attempt in range(3):
        count("abort_upload")
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            return True
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code == "NoSuchUpload":
                return True
            log.warning("abort of upload %s of %s failed (attempt %d): %s", upload_id, key, attempt + 1, exc)
    return False
