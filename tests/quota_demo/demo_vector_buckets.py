"""25 tests each with a vector bucket of their own; the shared bucket, an async test, a storage bucket."""

from __future__ import annotations

import os

import pytest

from storekeeper.stores.vectors import VectorRecord, open_vector_backend


@pytest.mark.parametrize("n", range(25))
def test_each_gets_its_own_vector_bucket(vector_bucket: str, n: int) -> None:
    vb = open_vector_backend()
    vb.create_index(vector_bucket, "idx", 3, "cosine")  # teardown deletes indexes first
    vb.put_vectors(vector_bucket, "idx", [VectorRecord(f"k{n}", [1.0, float(n), 0.5])])
    (hit,) = vb.query_vectors(vector_bucket, "idx", [1.0, float(n), 0.5], top_k=1)
    assert hit.key == f"k{n}"
    if os.environ.get("DEMO_KILL_WORKER") == str(n):
        os._exit(3)  # an interrupted run: the worker dies holding its bucket


def test_the_shared_bucket_is_the_same_for_everyone(shared_vector_bucket: str) -> None:
    vb = open_vector_backend()
    assert shared_vector_bucket in [b.name for b in vb.list_buckets()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_suites_use_the_same_fixtures(vector_bucket: str) -> None:
    """An async test (anyio's pytest plugin) with the async supabase client and the same fixture."""
    from supabase import acreate_client

    client = await acreate_client(os.environ["SUPABASE_URL"], os.environ["SUPABASE_SERVICE_KEY"])
    listed = await client.storage.vectors().list_buckets()
    assert vector_bucket in [b.vectorBucketName for b in listed.vectorBuckets]


def test_a_storage_bucket_of_its_own(storage_bucket: str) -> None:
    from storekeeper.stores import open_store

    store = open_store(f"supabase://{storage_bucket}")
    store.put("upload/a.txt", b"hello")  # teardown empties the bucket before deleting it
    assert store.get_bucket_labels(storage_bucket)["run"].startswith("r")
    assert [i.key for i in store.list()] == ["upload/a.txt"]
