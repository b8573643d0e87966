"""Cleanup against the Supabase emulator through the real storage3 client: vector buckets and objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from storekeeper.cleanup import execute_task
from storekeeper.models.cleanup import CleanupTask
from storekeeper.stores import RequestCounter, open_store
from storekeeper.stores.vectors import SupabaseVectorBackend, open_vector_backend
from tests.cleanup_support import cleanup_task
from tests.servers.supabase_server import SupabaseEmulatorServer

pytestmark = pytest.mark.integration
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def task(action: str, bucket: str, **kw: Any) -> CleanupTask:
    return cleanup_task(action, bucket, backend="supabase", planned_at=NOW, reason="integration",
                        task_id=f"t-{action}-{bucket}", **kw)  # fmt: skip


class CallLog(SupabaseVectorBackend):
    """The real adapter, also noting the order of destructive calls."""

    calls: list[str]

    def delete_index(self, bucket: str, index: str) -> None:
        self.calls.append(f"index {index}")
        super().delete_index(bucket, index)

    def delete_bucket(self, name: str) -> None:
        self.calls.append(f"bucket {name}")
        super().delete_bucket(name)


@pytest.fixture
def vectors(supabase_env: SupabaseEmulatorServer) -> CallLog:
    assert isinstance(open_vector_backend(), SupabaseVectorBackend)  # what the Lambda builds from the env
    vb = CallLog(counter=RequestCounter())
    vb.calls = []
    return vb


def test_delete_vector_bucket_deletes_indexes_first(vectors: CallLog) -> None:
    vectors.create_bucket("test-vb")
    vectors.create_index("test-vb", "idx-a", 3, "cosine")
    vectors.create_index("test-vb", "idx-b", 3, "cosine")
    out = execute_task(task("delete_vector_bucket", "test-vb"), vector_backend=vectors, now=NOW)
    assert out.status == "executed", out.message
    assert vectors.calls == ["index idx-a", "index idx-b", "bucket test-vb"]
    assert [b.name for b in vectors.list_buckets()] == []
    again = execute_task(task("delete_vector_bucket", "test-vb"), vector_backend=vectors, now=NOW)
    assert again.status == "noop"


def test_delete_vector_index_and_missing_bucket(vectors: CallLog) -> None:
    vectors.create_bucket("keep-vb")
    vectors.create_index("keep-vb", "old-idx", 3, "cosine")
    vectors.create_index("keep-vb", "new-idx", 3, "cosine")
    out = execute_task(
        task("delete_vector_index", "keep-vb", index="old-idx"), vector_backend=vectors, now=NOW
    )
    assert out.deleted == ["index:keep-vb/old-idx"]
    assert [i.name for i in vectors.list_indexes("keep-vb")] == ["new-idx"]
    missing = execute_task(
        task("delete_vector_index", "gone-vb", index="x-idx"), vector_backend=vectors, now=NOW
    )
    assert missing.status == "failed"
    assert "gone-vb" in missing.message
    gone_index = execute_task(
        task("delete_vector_index", "keep-vb", index="old-idx"), vector_backend=vectors, now=NOW
    )
    assert gone_index.status == "noop"  # the index is already gone, its bucket is not


def test_delete_prefix_on_supabase_storage(supabase_env: SupabaseEmulatorServer) -> None:
    store = open_store("supabase://images", counter=RequestCounter())
    store.create_bucket("images")
    for i in range(5):
        store.put(f"tmp/{i}", b"x")
    store.put("tmp/keep", b"x", metadata={"storekeeper-protect": "true"})
    out = execute_task(
        task("delete_prefix", "images", prefix="tmp/"), resolve_store=lambda b, n: store, now=NOW
    )
    assert out.deleted_count == 5
    assert "storekeeper-protect=true" in out.skipped["tmp/keep"]
    assert [i.key for i in store.list("tmp/")] == ["tmp/keep"]
