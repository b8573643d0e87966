"""Vector buckets (Supabase Storage's S3 Vectors-style API): one small interface and its Supabase adapter.

The quota reaper keeps a project under its vector-bucket limit (10 per Supabase project), so every
listing here follows `nextToken` to the end (one page is never "all"), deleting a bucket that still
has indexes surfaces as `BucketNotEmpty` (delete the indexes first), and a full project surfaces as
`QuotaExceeded`. Only a real not-found (404 / S3VectorNotFoundException) becomes `BucketNotFound`.
Batches follow the service's documented maxima: 500 vectors per put, 100 keys per get, 500 keys per
delete, topK at most 100, 500 buckets/indexes and 1000 vectors per list page.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn

from storekeeper.errors import (
    AccessDenied,
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    QuotaExceeded,
    ValidationError,
)
from storekeeper.stores.base import RequestCounter

VECTOR_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_PUT_VECTORS = 500
MAX_GET_KEYS = 100
MAX_DELETE_KEYS = 500
MAX_TOP_K = 100
MAX_LIST_BUCKETS = 500
MAX_LIST_INDEXES = 500
MAX_LIST_VECTORS = 1000
DISTANCES = ("cosine", "euclidean")


class VectorBucketInfo(NamedTuple):
    name: str
    created_at: datetime | None = None


class VectorIndexInfo(NamedTuple):
    bucket: str
    name: str
    created_at: datetime | None = None


class VectorRecord(NamedTuple):
    key: str
    vector: list[float] | None = None  # None when listed/fetched without data
    metadata: dict[str, Any] | None = None


class VectorMatch(NamedTuple):
    key: str
    distance: float | None
    metadata: dict[str, Any] | None = None


def check_vector_name(name: object, field: str) -> str:
    """Bucket names are 3-63 chars, index names 3-45 (the service's limits), of a-z, 0-9, '.', '-'."""
    longest = 45 if field == "index" else 63
    if not isinstance(name, str) or not VECTOR_NAME_RE.fullmatch(name) or len(name) > longest:
        raise InvalidName(
            field, f"must be 3-{longest} chars of a-z, 0-9, '.', '-', starting and ending alphanumeric", name
        )
    return name


def _check_vector(values: Sequence[float], field: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValidationError(field, "must not be empty")
    if not all(math.isfinite(v) for v in out):
        raise ValidationError(field, "must contain only finite numbers (no NaN/inf)")
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _epoch(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return None


class VectorBackend(ABC):
    """Vector buckets, their indexes and vectors on one backend (one Supabase project)."""

    #: a name for messages, e.g. "supabase-vectors"
    scheme: str = "vectors"

    def __init__(self, *, counter: RequestCounter | None = None) -> None:
        self.requests = counter or RequestCounter()

    def where(self, bucket: str | None = None) -> str:
        return f"{self.scheme}://{bucket or ''}"

    @abstractmethod
    def list_buckets(self, prefix: str = "") -> list[VectorBucketInfo]:
        """Every vector bucket (all pages), sorted by name."""

    @abstractmethod
    def get_bucket(self, name: str) -> VectorBucketInfo:
        """One vector bucket: BucketNotFound if absent."""

    @abstractmethod
    def create_bucket(self, name: str) -> VectorBucketInfo:
        """Create-only: BucketAlreadyExists if taken, QuotaExceeded when the project is full."""

    @abstractmethod
    def delete_bucket(self, name: str) -> None:
        """Delete an index-free bucket: BucketNotEmpty while indexes remain, BucketNotFound if absent."""

    @abstractmethod
    def list_indexes(self, bucket: str, prefix: str = "") -> list[VectorIndexInfo]:
        """Every index of a bucket (all pages)."""

    @abstractmethod
    def create_index(
        self, bucket: str, index: str, dimension: int, distance: str = "cosine"
    ) -> VectorIndexInfo: ...

    @abstractmethod
    def delete_index(self, bucket: str, index: str) -> None:
        """Delete one index: NotFound if the index is gone, BucketNotFound if its bucket is."""

    @abstractmethod
    def put_vectors(self, bucket: str, index: str, records: Iterable[VectorRecord]) -> int:
        """Upsert records (in batches the backend accepts); returns how many were written."""

    @abstractmethod
    def query_vectors(
        self,
        bucket: str,
        index: str,
        vector: Sequence[float],
        top_k: int,
        filter: dict[str, Any] | None = None,
    ) -> list[VectorMatch]:
        """The `top_k` nearest records, nearest first, optionally restricted by a metadata filter."""

    @abstractmethod
    def list_vectors(
        self, bucket: str, index: str, *, return_data: bool = False, return_metadata: bool = True
    ) -> Iterator[VectorRecord]:
        """Every record of an index (all pages)."""

    @abstractmethod
    def get_vectors(self, bucket: str, index: str, keys: Sequence[str]) -> list[VectorRecord]:
        """The records that exist among `keys` (missing keys are left out)."""

    @abstractmethod
    def delete_vectors(self, bucket: str, index: str, keys: Sequence[str]) -> int:
        """Delete `keys` (missing ones are fine); returns how many keys were sent."""


class SupabaseVectorBackend(VectorBackend):
    """`VectorBackend` over storage3's vectors client (`client.storage.vectors()`)."""

    scheme = "supabase-vectors"
    #: page sizes asked for; the service caps them at 500 / 500 / 1000
    bucket_page_size = MAX_LIST_BUCKETS
    index_page_size = MAX_LIST_INDEXES
    vector_page_size = MAX_LIST_VECTORS

    def __init__(self, client: Any = None, *, counter: RequestCounter | None = None) -> None:
        super().__init__(counter=counter)
        self._client = client
        self._vectors: Any = None

    @property
    def vectors(self) -> Any:
        if self._vectors is None:
            from storekeeper.stores.supabase import storage_client, supabase_client_from_env

            client = self._client if self._client is not None else supabase_client_from_env()
            self._vectors = storage_client(client).vectors()
        return self._vectors

    def _call(
        self, op: str, bucket: str | None, index: str | None, fn: Any, *args: Any, **kwargs: Any
    ) -> Any:
        self.requests.add(op)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # storage3 and httpx raise several unrelated types
            self._raise(exc, op, bucket, index)

    def _raise(self, exc: Exception, op: str, bucket: str | None, index: str | None) -> NoReturn:
        import httpx
        from storage3.exceptions import StorageApiError, VectorBucketException

        where = self.where(bucket)
        if isinstance(exc, httpx.HTTPError):
            raise BackendError(where, index, f"{op}: transport error {type(exc).__name__}: {exc}") from exc
        if isinstance(exc, VectorBucketException):
            raise BackendError(where, index, f"{op}: {exc.msg}") from exc
        if not isinstance(exc, StorageApiError):
            raise exc
        status, code, message = str(exc.status), str(exc.code), str(exc.message)
        detail = f"{op}: HTTP {status} {code}: {message}"
        from storekeeper.stores.supabase import is_access_failure

        if is_access_failure(status, code, message):
            raise AccessDenied(where, index, f"access denied, check SUPABASE_SERVICE_KEY ({detail})") from exc
        if code in ("S3VectorMaxBucketsExceeded", "S3VectorMaxIndexesExceeded"):
            raise QuotaExceeded(where, index, detail) from exc
        if code in ("S3VectorBucketNotEmpty", "VectorBucketNotEmpty"):
            raise BucketNotEmpty(where, index, f"{detail} (delete its indexes first)") from exc
        if status == "404" or code in ("S3VectorNotFoundException", "NotFoundException"):
            if index is not None:
                raise NotFound(where, index, detail) from exc  # the index (callers check the bucket)
            raise BucketNotFound(where, index, detail) from exc
        if status == "409" or code in ("S3VectorConflictException", "ConflictException"):
            raise BucketAlreadyExists(where, index, detail) from exc
        raise BackendError(where, index, detail) from exc

    # -- buckets -----------------------------------------------------------------------
    def list_buckets(self, prefix: str = "") -> list[VectorBucketInfo]:
        out: list[VectorBucketInfo] = []
        token: str | None = None
        while True:
            page = self._call(
                "list_vector_buckets",
                None,
                None,
                self.vectors.list_buckets,
                prefix=prefix or None,
                max_results=self.bucket_page_size,
                next_token=token,
            )
            out.extend(
                VectorBucketInfo(b.vectorBucketName, _epoch(getattr(b, "creationTime", None)))
                for b in page.vectorBuckets
            )
            token = page.nextToken
            if not token:
                return sorted(out, key=lambda b: b.name)

    def get_bucket(self, name: str) -> VectorBucketInfo:
        check_vector_name(name, "vector bucket")
        # not storage3's get_bucket: it turns every error (a bad key too) into None
        response = self._call(
            "get_vector_bucket",
            name,
            None,
            self.vectors._request.send,
            http_method="POST",
            path=["GetVectorBucket"],
            body={"vectorBucketName": name},
        )
        bucket = response.json().get("vectorBucket") or {}
        return VectorBucketInfo(name, _epoch(bucket.get("creationTime")))

    def create_bucket(self, name: str) -> VectorBucketInfo:
        check_vector_name(name, "vector bucket")
        self._call("create_vector_bucket", name, None, self.vectors.create_bucket, name)
        return VectorBucketInfo(name, datetime.now(UTC))

    def delete_bucket(self, name: str) -> None:
        # the server answers 200 for a missing bucket: ask first, so "already gone" is BucketNotFound
        self.get_bucket(name)
        self._call("delete_vector_bucket", name, None, self.vectors.delete_bucket, name)

    # -- indexes -----------------------------------------------------------------------
    def list_indexes(self, bucket: str, prefix: str = "") -> list[VectorIndexInfo]:
        check_vector_name(bucket, "vector bucket")
        scope = self.vectors.from_(bucket)
        out: list[VectorIndexInfo] = []
        token: str | None = None
        while True:
            page = self._call(
                "list_indexes",
                bucket,
                None,
                scope.list_indexes,
                next_token=token,
                max_results=self.index_page_size,
                prefix=prefix or None,
            )
            out.extend(VectorIndexInfo(bucket, i.indexName) for i in page.indexes)
            token = page.nextToken
            if not token:
                if not out:
                    self.get_bucket(bucket)  # a missing bucket lists as empty (200 {"indexes": []})
                return sorted(out, key=lambda i: i.name)

    def create_index(
        self, bucket: str, index: str, dimension: int, distance: str = "cosine"
    ) -> VectorIndexInfo:
        check_vector_name(bucket, "vector bucket")
        check_vector_name(index, "index")
        if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= 4096:
            raise ValidationError("dimension", "must be an integer from 1 to 4096", dimension)
        if distance not in DISTANCES:
            raise ValidationError("distance", f"must be one of {', '.join(DISTANCES)}", distance)
        scope = self.vectors.from_(bucket)
        self._call("create_index", bucket, index, scope.create_index, index, dimension, distance, "float32")
        return VectorIndexInfo(bucket, index, datetime.now(UTC))

    def delete_index(self, bucket: str, index: str) -> None:
        check_vector_name(bucket, "vector bucket")
        check_vector_name(index, "index")
        try:
            self._call("delete_index", bucket, index, self.vectors.from_(bucket).delete_index, index)
        except NotFound:
            self.get_bucket(bucket)  # the server says 404 for the index either way: which is gone?
            raise

    # -- vectors -----------------------------------------------------------------------
    def _index(self, bucket: str, index: str) -> Any:
        check_vector_name(bucket, "vector bucket")
        check_vector_name(index, "index")
        return self.vectors.from_(bucket).index(index)

    @staticmethod
    def _record(v: Any) -> VectorRecord:
        data = getattr(v, "data", None)
        return VectorRecord(
            key=v.key, vector=list(data.float32) if data is not None else None, metadata=v.metadata
        )

    def put_vectors(self, bucket: str, index: str, records: Iterable[VectorRecord]) -> int:
        from storage3.types import VectorData, VectorObject

        scope = self._index(bucket, index)
        objects = []
        seen: set[str] = set()
        for i, r in enumerate(records):
            if not r.key:
                raise ValidationError(f"records[{i}].key", "must not be empty")
            if r.key in seen:
                raise ValidationError(f"records[{i}].key", "duplicate key in one put", r.key)
            seen.add(r.key)
            if r.vector is None:
                raise ValidationError(f"records[{i}].vector", "is required")
            vector = _check_vector(r.vector, f"records[{i}].vector")
            objects.append(VectorObject(key=r.key, data=VectorData(float32=vector), metadata=r.metadata))
        for batch in _chunks(objects, MAX_PUT_VECTORS):
            self._call("put_vectors", bucket, index, scope.put, list(batch))
        return len(objects)

    def query_vectors(
        self,
        bucket: str,
        index: str,
        vector: Sequence[float],
        top_k: int,
        filter: dict[str, Any] | None = None,
    ) -> list[VectorMatch]:
        from storage3.types import VectorData

        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise ValidationError("top_k", f"must be an integer from 1 to {MAX_TOP_K}", top_k)
        scope = self._index(bucket, index)
        query = VectorData(float32=_check_vector(vector, "vector"))
        result = self._call(
            "query_vectors", bucket, index, scope.query, query, top_k, filter or None, True, True
        )
        return [VectorMatch(m.key, m.distance, m.metadata) for m in result.vectors]

    def list_vectors(
        self, bucket: str, index: str, *, return_data: bool = False, return_metadata: bool = True
    ) -> Iterator[VectorRecord]:
        scope = self._index(bucket, index)
        token: str | None = None
        while True:
            page = self._call(
                "list_vectors",
                bucket,
                index,
                scope.list,
                max_results=self.vector_page_size,
                next_token=token,
                return_data=return_data,
                return_metadata=return_metadata,
            )
            for v in page.vectors:
                yield self._record(v)
            token = page.nextToken
            if not token:
                return

    def get_vectors(self, bucket: str, index: str, keys: Sequence[str]) -> list[VectorRecord]:
        scope = self._index(bucket, index)
        out: list[VectorRecord] = []
        for batch in _chunks(list(dict.fromkeys(keys)), MAX_GET_KEYS):
            result = self._call("get_vectors", bucket, index, scope.get, *batch)
            out.extend(self._record(v) for v in result.vectors)
        return out

    def delete_vectors(self, bucket: str, index: str, keys: Sequence[str]) -> int:
        scope = self._index(bucket, index)
        unique = list(dict.fromkeys(keys))
        for batch in _chunks(unique, MAX_DELETE_KEYS):
            self._call("delete_vectors", bucket, index, scope.delete, list(batch))
        return len(unique)


def open_vector_backend(*, counter: RequestCounter | None = None, client: Any = None) -> VectorBackend:
    """The project's vector backend from SUPABASE_URL / SUPABASE_SERVICE_KEY (no I/O until first use)."""
    return SupabaseVectorBackend(client, counter=counter)
