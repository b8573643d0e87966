"""In-memory model of Supabase Storage vector buckets (the S3 Vectors-style API under /storage/v1/vector).

Follows the open-source behaviour of supabase/storage (and what the real server answered):
- at most `max_buckets` (10 per project) vector buckets -> 400 `S3VectorMaxBucketsExceeded`;
- deleting a bucket that still has indexes -> 400 `VectorBucketNotEmpty`;
- missing bucket/index -> 404 `NotFoundException`, duplicates -> 409 `ConflictException`;
- quirks: `DeleteVectorBucket` of a missing bucket answers 200; `ListIndexes` of a missing bucket
  answers 200 {"indexes": []}; `DeleteIndex` in a missing bucket answers 404 naming the index;
- page sizes: ListVectorBuckets / ListIndexes maxResults 1..500 (default 500), ListVectors 1..1000,
  QueryVectors topK 1..100, PutVectors 1..500 vectors, GetVectors 1..100 keys, DeleteVectors 1..500 keys.
Errors are raised as `ApiError` and rendered by the HTTP layer.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_LIST_BUCKETS = 500
MAX_LIST_INDEXES = 500
MAX_LIST_VECTORS = 1000
MAX_QUERY_TOP_K = 100
MAX_PUT_VECTORS = 500
MAX_GET_VECTOR_KEYS = 100
MAX_DELETE_VECTOR_KEYS = 500
MAX_DIMENSION = 4096

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # 3-63 chars


class ApiError(Exception):
    """An error the way Storage renders it: body statusCode (a string), code/error and message."""

    def __init__(self, status: int, code: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error or code

    def body(self) -> dict[str, str]:
        return {
            "statusCode": str(self.status),
            "code": self.code,
            "error": self.error,
            "message": self.message,
        }


def invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def not_found(name: str) -> ApiError:
    return ApiError(404, "NotFoundException", f'resource "{name}" not found')


@dataclass
class VIndex:
    name: str
    bucket: str
    dimension: int
    distance: str
    data_type: str
    metadata_configuration: dict[str, Any] | None
    created: float = field(default_factory=time.time)
    vectors: dict[str, tuple[list[float], dict[str, Any] | None]] = field(default_factory=dict)


@dataclass
class VBucket:
    name: str
    created: float = field(default_factory=time.time)
    indexes: dict[str, VIndex] = field(default_factory=dict)


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def _after(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid("nextToken is invalid") from None


def _page_size(body: dict[str, Any], maximum: int, default: int) -> int:
    raw = body.get("maxResults", default)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1 or raw > maximum:
        raise ApiError(400, "InvalidRequest", f"body/maxResults must be an integer from 1 to {maximum}")
    return raw


def _paginate(
    names: list[str], body: dict[str, Any], maximum: int, default: int
) -> tuple[list[str], str | None]:
    size = _page_size(body, maximum, default)
    after = _after(body.get("nextToken"))
    prefix = body.get("prefix") or ""
    selected = [n for n in sorted(names) if n.startswith(prefix) and (after is None or n > after)]
    page = selected[:size]
    token = _token(page[-1]) if len(selected) > size else None
    return page, token


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "MissingParameter", f"Missing Required Parameter {name}")
    return value


def _matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    """The documented filter language: equality, $eq/$ne/$gt/$gte/$lt/$lte/$in/$nin/$exists, $and/$or."""
    for field_name, cond in flt.items():
        if field_name == "$and":
            if not all(_matches(meta, sub) for sub in cond):
                return False
            continue
        if field_name == "$or":
            if not any(_matches(meta, sub) for sub in cond):
                return False
            continue
        present = field_name in meta
        value = meta.get(field_name)
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, arg in ops.items():
            ok: bool
            if op == "$eq":
                ok = present and value == arg
            elif op == "$ne":
                ok = not present or value != arg
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                if not present or not isinstance(value, (int, float)) or isinstance(value, bool):
                    ok = False
                else:
                    ok = {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[
                        op
                    ]
            elif op == "$in":
                ok = present and value in arg
            elif op == "$nin":
                ok = not present or value not in arg
            elif op == "$exists":
                ok = present == bool(arg)
            else:
                raise ApiError(400, "InvalidRequest", f"unsupported filter operator {op}")
            if not ok:
                return False
    return True


def _distance(metric: str, a: list[float], b: list[float]) -> float:
    if metric == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 1.0
    return 1.0 - dot / (na * nb)


class VectorState:
    """Thread-safe state of one project's vector buckets."""

    def __init__(self, max_buckets: int = 10, max_indexes: int | None = None) -> None:
        self.max_buckets = max_buckets
        #: the most vector buckets that ever existed at once (tests check the quota held)
        self.most_buckets = 0
        self.max_indexes = max_indexes
        self._lock = threading.Lock()
        self.buckets: dict[str, VBucket] = {}

    def reset(self) -> None:
        with self._lock:
            self.buckets.clear()
            self.most_buckets = 0

    def handle(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self, f"_do_{action}", None)
        if fn is None:
            raise ApiError(404, "NotFound", f"Route POST:/vector/{action} not found")
        with self._lock:
            result: dict[str, Any] = fn(body)
            return result

    # -- buckets ---------------------------------------------------------------
    def _bucket(self, body: dict[str, Any]) -> VBucket:
        name = _required(body, "vectorBucketName")
        bucket = self.buckets.get(name)
        if bucket is None:
            raise not_found(name)
        return bucket

    def _do_CreateVectorBucket(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "vectorBucketName")
        if not NAME_RE.fullmatch(name) or len(name) > 63:
            raise invalid("vectorBucketName must be 3-63 chars of a-z, 0-9, '.', '-'")
        if name in self.buckets:
            raise ApiError(409, "ConflictException", f'Vector bucket "{name}" already exists')
        if len(self.buckets) >= self.max_buckets:
            raise ApiError(
                400,
                "S3VectorMaxBucketsExceeded",
                f"Maximum number of buckets exceeded. Max allowed is {self.max_buckets}. "
                "Contact support to increase your limit.",
            )
        self.buckets[name] = VBucket(name)
        self.most_buckets = max(self.most_buckets, len(self.buckets))
        return {}

    def _do_GetVectorBucket(self, body: dict[str, Any]) -> dict[str, Any]:
        b = self._bucket(body)
        return {"vectorBucket": {"vectorBucketName": b.name, "creationTime": int(b.created)}}

    def _do_ListVectorBuckets(self, body: dict[str, Any]) -> dict[str, Any]:
        page, token = _paginate(list(self.buckets), body, MAX_LIST_BUCKETS, MAX_LIST_BUCKETS)
        out: dict[str, Any] = {
            "vectorBuckets": [
                {"vectorBucketName": n, "creationTime": int(self.buckets[n].created)} for n in page
            ]
        }
        if token:
            out["nextToken"] = token
        return out

    def _do_DeleteVectorBucket(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "vectorBucketName")
        b = self.buckets.get(name)
        if b is None:
            return {}  # the server deletes nothing and answers 200
        if b.indexes:
            raise ApiError(400, "VectorBucketNotEmpty", f'Vector Bucket "{b.name}" not empty')
        del self.buckets[b.name]
        return {}

    # -- indexes ---------------------------------------------------------------
    def _index(self, body: dict[str, Any]) -> VIndex:
        bucket = self._bucket(body)
        name = _required(body, "indexName")
        index = bucket.indexes.get(name)
        if index is None:
            raise not_found(name)
        return index

    def _do_CreateIndex(self, body: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(body)
        name = _required(body, "indexName")
        if not NAME_RE.fullmatch(name) or len(name) > 45:
            raise invalid("indexName must be 3-45 chars of a-z, 0-9, '.', '-'")
        dim = body.get("dimension")
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIMENSION:
            raise invalid(f"dimension must be an integer from 1 to {MAX_DIMENSION}")
        metric = body.get("distanceMetric")
        if metric not in ("cosine", "euclidean"):
            raise invalid("distanceMetric must be cosine or euclidean")
        if body.get("dataType") != "float32":
            raise invalid("dataType must be float32")
        if name in bucket.indexes:
            raise ApiError(409, "ConflictException", f'Vector index "{name}" already exists')
        if self.max_indexes is not None and len(bucket.indexes) >= self.max_indexes:
            raise ApiError(
                400,
                "S3VectorMaxIndexesExceeded",
                f"Maximum number of indexes exceeded. Max allowed is {self.max_indexes}. "
                "Contact support to increase your limit.",
            )
        bucket.indexes[name] = VIndex(
            name, bucket.name, dim, metric, "float32", body.get("metadataConfiguration")
        )
        return {}

    def _do_GetIndex(self, body: dict[str, Any]) -> dict[str, Any]:
        i = self._index(body)
        index: dict[str, Any] = {
            "indexName": i.name,
            "vectorBucketName": i.bucket,
            "dataType": i.data_type,
            "dimension": i.dimension,
            "distanceMetric": i.distance,
            "creationTime": int(i.created),
        }
        if i.metadata_configuration:
            index["metadataConfiguration"] = i.metadata_configuration
        return {"index": index}

    def _do_ListIndexes(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "vectorBucketName")
        bucket = self.buckets.get(name)
        if bucket is None:
            _page_size(body, MAX_LIST_INDEXES, MAX_LIST_INDEXES)
            return {"indexes": []}  # a missing bucket lists as empty
        page, token = _paginate(list(bucket.indexes), body, MAX_LIST_INDEXES, MAX_LIST_INDEXES)
        out: dict[str, Any] = {
            "indexes": [
                {
                    "indexName": n,
                    "vectorBucketName": bucket.name,
                    "creationTime": int(bucket.indexes[n].created),
                }
                for n in page
            ]
        }
        if token:
            out["nextToken"] = token
        return out

    def _do_DeleteIndex(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "vectorBucketName")
        if name not in self.buckets:
            raise not_found(_required(body, "indexName"))  # names the index, not the bucket
        i = self._index(body)
        del self.buckets[i.bucket].indexes[i.name]
        return {}

    # -- vectors ---------------------------------------------------------------
    @staticmethod
    def _floats(value: Any, dimension: int, where: str) -> list[float]:
        data = value.get("float32") if isinstance(value, dict) else None
        if not isinstance(data, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in data
        ):
            raise invalid(f"{where}.float32 must be an array of numbers")
        if len(data) != dimension:
            raise invalid(f"{where} dimension {len(data)} does not match index dimension {dimension}")
        if not all(math.isfinite(x) for x in data):
            raise invalid(f"{where} must contain finite numbers")
        return [float(x) for x in data]

    @staticmethod
    def _keys(body: dict[str, Any], maximum: int) -> list[str]:
        keys = body.get("keys")
        if not isinstance(keys, list) or not 1 <= len(keys) <= maximum:
            raise invalid(f"keys must contain between 1 and {maximum} entries")
        if not all(isinstance(k, str) and 1 <= len(k) <= 1024 for k in keys):
            raise invalid("keys must be between 1 and 1024 characters")
        return keys

    def _do_PutVectors(self, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(body)
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not 1 <= len(vectors) <= MAX_PUT_VECTORS:
            raise invalid(f"vectors must contain between 1 and {MAX_PUT_VECTORS} entries")
        staged: dict[str, tuple[list[float], dict[str, Any] | None]] = {}
        for v in vectors:
            key = v.get("key") if isinstance(v, dict) else None
            if not isinstance(key, str) or not 1 <= len(key) <= 1024:
                raise invalid("vectors.key must be between 1 and 1024 characters")
            if key in staged:
                raise invalid("Request must not contain duplicate keys")
            meta = v.get("metadata")
            if meta is not None and not isinstance(meta, dict):
                raise invalid("vectors.metadata must be an object")
            staged[key] = (self._floats(v.get("data"), index.dimension, "vectors.data"), meta)
        index.vectors.update(staged)  # all or nothing: validated before any write
        return {}

    def _render(self, key: str, index: VIndex, body: dict[str, Any], data_default: bool) -> dict[str, Any]:
        data, meta = index.vectors[key]
        out: dict[str, Any] = {"key": key}
        if body.get("returnData", data_default):
            out["data"] = {"float32": data}
        if body.get("returnMetadata", data_default) and meta is not None:
            out["metadata"] = meta
        return out

    def _do_GetVectors(self, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(body)
        keys = self._keys(body, MAX_GET_VECTOR_KEYS)
        return {"vectors": [self._render(k, index, body, False) for k in keys if k in index.vectors]}

    def _do_ListVectors(self, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(body)
        names = list(index.vectors)
        seg_count, seg_index = body.get("segmentCount"), body.get("segmentIndex")
        if (seg_count is None) != (seg_index is None):
            raise invalid("segmentCount and segmentIndex must be provided together")
        if seg_count is not None:
            if not isinstance(seg_count, int) or not 1 <= seg_count <= 16:
                raise invalid("segmentCount must be an integer from 1 to 16")
            if not isinstance(seg_index, int) or not 0 <= seg_index < seg_count:
                raise invalid("segmentIndex must be less than segmentCount")
            names = [n for i, n in enumerate(sorted(names)) if i % seg_count == seg_index]
        page, token = _paginate(names, {**body, "prefix": None}, MAX_LIST_VECTORS, 500)
        out: dict[str, Any] = {"vectors": [self._render(k, index, body, False) for k in page]}
        if token:
            out["nextToken"] = token
        return out

    def _do_QueryVectors(self, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(body)
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_QUERY_TOP_K:
            raise ApiError(400, "InvalidRequest", f"body/topK must be an integer from 1 to {MAX_QUERY_TOP_K}")
        query = self._floats(body.get("queryVector"), index.dimension, "queryVector")
        flt = body.get("filter")
        if flt is not None and not isinstance(flt, dict):
            raise invalid("filter must be an object")
        scored = []
        for key, (data, meta) in index.vectors.items():
            if flt and not _matches(meta or {}, flt):
                continue
            scored.append((_distance(index.distance, query, data), key))
        scored.sort()
        out = []
        for dist, key in scored[:top_k]:
            item: dict[str, Any] = {"key": key}
            if body.get("returnDistance", False):
                item["distance"] = dist
            meta = index.vectors[key][1]
            if body.get("returnMetadata", False) and meta is not None:
                item["metadata"] = meta
            out.append(item)
        return {"vectors": out}

    def _do_DeleteVectors(self, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(body)
        for key in self._keys(body, MAX_DELETE_VECTOR_KEYS):
            index.vectors.pop(key, None)
        return {}
