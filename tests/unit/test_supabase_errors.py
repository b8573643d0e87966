"""Error translation of SupabaseStore / SupabaseVectorBackend, fed with storage3's own exception types."""

from __future__ import annotations

import httpx
import pytest
from storage3.exceptions import StorageApiError

from storekeeper.errors import (
    AccessDenied,
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
)
from storekeeper.stores.supabase import SupabaseStore
from storekeeper.stores.vectors import SupabaseVectorBackend


def _store_raise(exc: Exception, conflict: type | None = None) -> Exception:
    store = SupabaseStore("bkt", client=object())
    with pytest.raises(Exception) as caught:
        store._raise(exc, "get", "a/b", None, conflict, "create-only")
    return caught.value


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        ("404", "not_found", "Object not found", NotFound),
        ("404", "NoSuchBucket", "Bucket not found", BucketNotFound),
        ("409", "ResourceNotEmpty", "The bucket you tried to delete is not empty", BucketNotEmpty),
        ("400", "InvalidKey", "Invalid key: a/b", InvalidName),
        ("403", "InvalidJWT", "invalid signature", AccessDenied),
        ("403", "AccessDenied", "Invalid Compact JWS", AccessDenied),
        ("403", "AccessDenied", "signature verification failed", AccessDenied),
        ("400", "InvalidRequest", "headers must have required property 'authorization'", AccessDenied),
        ("500", "InternalError", "boom", BackendError),
        ("400", "InvalidRequest", "Bulk object requests are limited to 1000", BackendError),
    ],
)
def test_store_maps_by_body_status_and_code(status: str, code: str, message: str, expected: type) -> None:
    err = _store_raise(StorageApiError(message, code, status))
    assert type(err) is expected
    assert message in str(err) or isinstance(err, InvalidName)


def test_a_bad_key_is_access_denied_never_bucket_not_found() -> None:
    err = _store_raise(StorageApiError("signature verification failed", "AccessDenied", "403"))
    assert isinstance(err, AccessDenied)
    assert not isinstance(err, NotFound)
    assert "SUPABASE_SERVICE_KEY" in str(err)


@pytest.mark.parametrize("status", ["400", "403", "500", "409"])
def test_only_a_real_404_is_not_found(status: str) -> None:
    err = _store_raise(StorageApiError("nope", "SomethingElse", status))
    assert not isinstance(err, NotFound), status


def test_conflict_maps_to_the_callers_choice_and_names_store_and_key() -> None:
    err = _store_raise(StorageApiError("The resource already exists", "Duplicate", 409), PreconditionFailed)
    assert isinstance(err, PreconditionFailed)
    assert "supabase://bkt/a/b" in str(err)
    err = _store_raise(StorageApiError("The resource already exists", "Duplicate", 409), BucketAlreadyExists)
    assert isinstance(err, BucketAlreadyExists)


def test_transport_errors_are_backend_errors() -> None:
    err = _store_raise(httpx.ConnectError("connection refused"))
    assert isinstance(err, BackendError)
    assert "ConnectError" in str(err)


@pytest.mark.parametrize(
    ("status", "code", "index", "expected"),
    [
        (400, "S3VectorMaxBucketsExceeded", None, QuotaExceeded),
        (400, "S3VectorMaxIndexesExceeded", "idx", QuotaExceeded),
        (400, "S3VectorBucketNotEmpty", None, BucketNotEmpty),
        (400, "VectorBucketNotEmpty", None, BucketNotEmpty),
        (404, "S3VectorNotFoundException", None, BucketNotFound),
        (404, "NotFoundException", None, BucketNotFound),
        (404, "NotFoundException", "idx", NotFound),  # an index: the caller checks which is gone
        (409, "S3VectorConflictException", None, BucketAlreadyExists),
        (409, "ConflictException", "idx", BucketAlreadyExists),
        (403, "AccessDenied", None, AccessDenied),
        (400, "InvalidParameter", "idx", BackendError),
        (500, "InternalError", None, BackendError),
    ],
)
def test_vector_error_codes(status: int, code: str, index: str | None, expected: type) -> None:
    backend = SupabaseVectorBackend(object())
    with pytest.raises(Exception) as caught:
        backend._raise(StorageApiError("msg", code, status), "op", "vb", index)
    assert type(caught.value) is expected
    assert "supabase-vectors://vb" in str(caught.value)
