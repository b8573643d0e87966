"""The cleanup executor on the local store: re-checks, protection, dry run, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storekeeper.cleanup import ACTIONS, CleanupRunner, TaskFailed, execute_task, parse_task, store_resolver
from storekeeper.errors import ValidationError
from storekeeper.idempotency import StorePersistenceLayer
from storekeeper.layout import pointer_key
from storekeeper.models.cleanup import CleanupAction, CleanupTask, TaskGuard
from storekeeper.stores.base import DeleteResult
from storekeeper.stores.local import LocalStore
from tests.cleanup_support import cleanup_task, put_version

NOW = datetime(2030, 1, 1, tzinfo=UTC)
V1, V2, V3 = "000000000001-aaaaaaaa", "000000000002-bbbbbbbb", "000000000003-cccccccc"


class RecordingStore(LocalStore):
    """The real local store, also remembering each bulk delete's keys (to check ordering)."""

    batches: list[list[str]]

    def _delete_batch(self, keys: list[str], result: DeleteResult) -> None:
        self.batches.append(list(keys))
        super()._delete_batch(keys, result)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stores").mkdir()
    return tmp_path / "stores"


@pytest.fixture
def store(root: Path) -> RecordingStore:
    s = RecordingStore(root / "main")
    s.batches = []
    return s


def resolver(store: LocalStore) -> Any:
    base = store_resolver(store)

    def resolve(backend: str, bucket: str) -> LocalStore:
        if bucket == store.bucket:
            return store
        out = base(backend, bucket)
        assert isinstance(out, LocalStore)
        return out

    return resolve


def task(action: str, **kw: Any) -> CleanupTask:
    bucket = kw.pop("bucket", "main")
    return cleanup_task(
        action, bucket, backend="file", planned_at=NOW - timedelta(minutes=5), reason="unit test", **kw
    )


def run(store: LocalStore, t: CleanupTask, **kw: Any) -> Any:
    return execute_task(t, resolve_store=resolver(store), now=NOW, **kw)


def publish(
    store: LocalStore, c: str, version: str, *, live: bool = True, applied: list[str] | None = None
) -> None:
    applied = applied or []
    put_version(
        store,
        c,
        version,
        created_at=NOW,
        live=live,
        extra={"extra.bin": b"x"},
        deltas=applied,
        applied=applied,
    )


# -- registry and parsing -------------------------------------------------------------------


def test_every_action_has_a_handler() -> None:
    assert set(ACTIONS) == set(CleanupAction)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ("[1]", "body"),
        (
            '{"task_id":"a","action":"explode","backend":"file","bucket":"main","policy":"p","reason":"r",'
            '"planned_at":"2030-01-01T00:00:00Z"}',
            "action",
        ),
        (
            '{"task_id":"a","action":"delete_objects","backend":"file","bucket":"main","policy":"p","reason":"r",'
            '"planned_at":"2030-01-01T00:00:00Z"}',
            "task",
        ),
        (
            '{"action":"delete_prefix","backend":"file","bucket":"main","policy":"p","reason":"r",'
            '"planned_at":"2030-01-01T00:00:00Z","prefix":"x/"}',
            "task_id",
        ),
    ],
)
def test_parse_task_names_the_field(body: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_task(body)
    assert err.value.field == field
    if field == "task":
        assert "needs keys" in str(err.value)


# -- delete_objects ---------------------------------------------------------------------------


def test_delete_objects_deletes_present_and_is_noop_the_second_time(store: RecordingStore) -> None:
    for i in range(3):
        store.put(f"img/{i}", b"x")
    t = task("delete_objects", keys=["img/0", "img/1", "img/gone"])
    first = run(store, t)
    assert first.status == "executed"
    assert sorted(first.deleted) == ["img/0", "img/1"]
    assert first.missing == ["img/gone"]
    assert not store.exists("img/0")
    assert store.exists("img/2")
    assert first.requests.get("delete_batch") == 1
    second = run(store, t)
    assert second.status == "noop"
    assert second.requests.get("delete_batch", 0) == 0


def test_object_modified_after_planning_is_skipped(store: RecordingStore) -> None:
    old = store.put("img/a", b"v1")
    store.put("img/b", b"v1")
    etag_b = store.head("img/b").etag
    store.put("img/a", b"v2 changed")  # modified after planning
    assert store.head("img/a").etag != old
    t = task(
        "delete_objects", keys=["img/a", "img/b"], guard=TaskGuard(etags={"img/a": old, "img/b": etag_b})
    )
    out = run(store, t)
    assert out.deleted == ["img/b"]
    assert "changed after planning" in out.skipped["img/a"]
    assert store.get("img/a").body == b"v2 changed"


def test_last_modified_guard(store: RecordingStore) -> None:
    store.put("img/new", b"x")
    t = task(
        "delete_objects", keys=["img/new"], guard=TaskGuard(last_modified_before=NOW - timedelta(days=3650))
    )
    out = run(store, t)
    assert out.status == "skipped"
    assert "planned cutoff" in out.skipped["img/new"]
    assert store.exists("img/new")


def test_protected_objects_and_buckets_are_skipped_with_reason(store: RecordingStore, root: Path) -> None:
    store.put("img/keep", b"x", metadata={"storekeeper-protect": "true"})
    store.put("img/free", b"x")
    out = run(store, task("delete_objects", keys=["img/keep", "img/free"]))
    assert out.deleted == ["img/free"]
    assert "storekeeper-protect=true" in out.skipped["img/keep"]
    store.set_bucket_labels("main", {"storekeeper:protect": "true"})
    store.put("img/free", b"x")
    out = run(store, task("delete_objects", keys=["img/free"]))
    assert out.status == "skipped"
    assert "storekeeper:protect=true" in out.skipped["bucket:main"]
    assert store.exists("img/free")


def test_protect_list_from_env(store: RecordingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_PROTECT", "img/golden-*")
    store.put("img/golden-1", b"x")
    out = run(store, task("delete_objects", keys=["img/golden-1"]))
    assert "protect list" in out.skipped["img/golden-1"]
    assert store.exists("img/golden-1")


def test_dry_run_walks_the_same_path_and_deletes_nothing(store: RecordingStore) -> None:
    store.put("img/a", b"x")
    store.put("img/keep", b"x", metadata={"keep": "yes"})
    t = task("delete_objects", keys=["img/a", "img/keep", "img/gone"], dry_run=True)
    out = run(store, t)
    assert out.status == "dry_run"
    assert out.would_delete == ["img/a"]
    assert "keep=yes" in out.skipped["img/keep"]
    assert out.missing == ["img/gone"]
    assert store.exists("img/a")
    assert "delete_batch" not in out.requests
    real = run(store, t, dry_run=False)  # the real run does exactly what the dry run said
    assert real.deleted == out.would_delete
    assert real.skipped == out.skipped


def test_missing_bucket_fails_naming_it(store: RecordingStore) -> None:
    out = run(store, task("delete_objects", bucket="nope-bucket", keys=["a"]))
    assert out.status == "failed"
    assert "nope-bucket" in out.errors["bucket:nope-bucket"]
    assert "does not exist" in out.message


# -- delete_prefix and deltas -------------------------------------------------------------------


def test_delete_prefix_keeps_unapplied_deltas(store: RecordingStore) -> None:
    applied, pending = "1700000000000-aaaaaa", "1700000000001-bbbbbb"
    publish(store, "docs", V1, applied=[applied])
    store.put(f"delta/docs/{applied}.delta", b"d")
    store.put(f"delta/docs/{pending}.delta", b"d")
    out = run(store, task("delete_prefix", prefix="delta/docs/"))
    assert out.deleted == [f"delta/docs/{applied}.delta"]
    assert "not applied" in out.skipped[f"delta/docs/{pending}.delta"]
    assert store.exists(f"delta/docs/{pending}.delta")


def test_delete_prefix_guard_max_objects(store: RecordingStore) -> None:
    for i in range(5):
        store.put(f"tmp/{i}", b"x")
    out = run(store, task("delete_prefix", prefix="tmp/", guard=TaskGuard(max_objects=3)))
    assert out.status == "skipped"
    assert "planned 3" in out.skipped["tmp/"]
    assert len(list(store.list("tmp/"))) == 5


@pytest.mark.slow  # 2,500 objects written and deleted: >5 s here
def test_delete_prefix_batches(store: RecordingStore) -> None:
    for i in range(2500):
        store.put(f"bulk/{i:05d}", b"")
    out = run(
        store,
        task("delete_prefix", prefix="bulk/"),
        protection=__import__("storekeeper.protection", fromlist=["ProtectionConfig"]).ProtectionConfig(
            check_object_labels=False
        ),
    )
    assert out.deleted_count == 2500
    assert out.requests["delete_batch"] == 3
    assert [len(b) for b in store.batches] == [1000, 1000, 500]


# -- snapshot versions ------------------------------------------------------------------------------


def test_old_version_deleted_manifest_last(store: RecordingStore) -> None:
    publish(store, "docs", V1)
    publish(store, "docs", V2)
    out = run(
        store,
        task("delete_snapshot_version", collection="docs", version=V1, guard=TaskGuard(live_version=V2)),
    )
    assert out.status == "executed"
    assert store.batches[-1] == [f"snapshot/docs/{V1}/manifest.json"]
    assert f"snapshot/docs/{V1}/manifest.json" not in store.batches[-2]
    assert list(store.list(f"snapshot/docs/{V1}/")) == []
    assert store.exists(f"snapshot/docs/{V2}/chroma.tar.gz")
    assert store.exists(pointer_key("docs"))


def test_version_that_became_live_after_planning_survives(store: RecordingStore) -> None:
    publish(store, "docs", V1)
    publish(store, "docs", V2, live=False)
    # planned while V1 was live and V2... then the pointer moved back to include the task's version
    t = task("delete_snapshot_version", collection="docs", version=V2, guard=TaskGuard(live_version=V1))
    store.put(pointer_key("docs"), f"snapshot/docs/{V2}/".encode())  # V2 published between plan and cleanup
    out = run(store, t)
    assert out.status == "skipped"
    assert "became live after planning" in out.skipped[f"snapshot/docs/{V2}/"]
    assert store.exists(f"snapshot/docs/{V2}/manifest.json")


def test_live_and_newer_than_live_versions_survive(store: RecordingStore) -> None:
    publish(store, "docs", V2)
    publish(store, "docs", V3, live=False)  # written, not yet published
    live = run(store, task("delete_snapshot_version", collection="docs", version=V2, task_id="a"))
    newer = run(store, task("delete_snapshot_version", collection="docs", version=V3, task_id="b"))
    assert "is the live snapshot" in live.skipped[f"snapshot/docs/{V2}/"]
    assert "newer than the live" in newer.skipped[f"snapshot/docs/{V3}/"]
    assert store.exists(f"snapshot/docs/{V3}/chroma.tar.gz")


def test_version_without_pointer_is_kept(store: RecordingStore) -> None:
    publish(store, "docs", V1, live=False)
    out = run(store, task("delete_snapshot_version", collection="docs", version=V1))
    assert "mid-publish" in out.skipped[f"snapshot/docs/{V1}/"]


# -- buckets ---------------------------------------------------------------------------------------------


def test_delete_bucket_empties_then_deletes(store: RecordingStore, root: Path) -> None:
    store.create_bucket("test-run-1")
    other = store.for_bucket("test-run-1")
    for i in range(3):
        other.put(f"x/{i}", b"x")
    out = run(store, task("delete_bucket", bucket="test-run-1", guard=TaskGuard(max_objects=10)))
    assert out.status == "executed"
    assert "bucket:test-run-1" in out.deleted
    assert not (root / "test-run-1").exists()
    again = run(store, task("delete_bucket", bucket="test-run-1"))
    assert again.status == "noop"


def test_delete_bucket_refuses_when_grown_or_protected(store: RecordingStore, root: Path) -> None:
    store.create_bucket("test-run-2")
    other = store.for_bucket("test-run-2")
    for i in range(4):
        other.put(f"x/{i}", b"x")
    grown = run(store, task("delete_bucket", bucket="test-run-2", guard=TaskGuard(max_objects=2)))
    assert "grew to 4 objects" in grown.skipped["bucket:test-run-2"]
    other.put("x/keep", b"k", metadata={"storekeeper-protect": "true"})
    kept = run(store, task("delete_bucket", bucket="test-run-2"))
    assert kept.status == "skipped"
    assert "must be kept" in kept.skipped["bucket:test-run-2"]
    assert kept.deleted == []
    assert len(list(other.list())) == 5


# -- overflow ------------------------------------------------------------------------------------------------


def test_create_overflow_bucket_rechecks_usage(store: RecordingStore, root: Path) -> None:
    store.put("big", b"z" * 960)
    guard = TaskGuard(capacity_bytes=1000, hard_watermark=0.95)
    first = run(store, task("create_overflow_bucket", guard=guard, task_id="o1"))
    assert first.created == ["main-1"]
    second = run(store, task("create_overflow_bucket", guard=guard, task_id="o2"))
    assert second.status == "skipped"
    assert "has room" in second.skipped["bucket:main"]


def test_create_overflow_after_deleted_member_is_max_plus_one(store: RecordingStore, root: Path) -> None:
    for n in ("main-1", "main-2", "main-3"):
        store.create_bucket(n)
        store.for_bucket(n).put("x", b"x")
    store.for_bucket("main-2").delete("x")
    store.delete_bucket("main-2")
    dry = run(store, task("create_overflow_bucket", dry_run=True))
    assert dry.would_create == ["main-4"]
    out = run(store, task("create_overflow_bucket"))
    assert out.created == ["main-4"]
    assert out.requests.get("create_bucket") == 1


# -- idempotency through the runner -----------------------------------------------------------------


def test_same_task_twice_second_does_nothing(store: RecordingStore, root: Path) -> None:
    records = LocalStore(root / "records")
    runner = CleanupRunner(
        resolve_store=resolver(store), persistence=StorePersistenceLayer(records, "cleanup")
    )
    for i in range(3):
        store.put(f"img/{i}", b"x")
    t = task("delete_objects", keys=["img/0", "img/1"], task_id="dup-1")
    first = runner.run(t)
    store.put("img/0", b"recreated")  # even if the key came back, a duplicate delivery must not act
    store.requests.reset()
    second = runner.run(t)
    assert first.status == "executed"
    assert second.duplicate
    assert second.deleted == first.deleted
    assert store.requests.total() == 0
    assert store.exists("img/0")


def test_failed_task_is_not_recorded_so_a_retry_runs(store: RecordingStore, root: Path) -> None:
    records = LocalStore(root / "records")
    runner = CleanupRunner(
        resolve_store=resolver(store), persistence=StorePersistenceLayer(records, "cleanup")
    )
    t = task("delete_objects", bucket="later-bucket", keys=["a"], task_id="retry-1")
    with pytest.raises(TaskFailed, match="later-bucket"):
        runner.run(t)
    store.create_bucket("later-bucket")
    store.for_bucket("later-bucket").put("a", b"x")
    out = runner.run(t)
    assert out.deleted == ["a"]
    assert not out.duplicate


def test_skipped_task_is_not_recorded_so_a_replan_runs_it(store: RecordingStore, root: Path) -> None:
    """A skip is often transient (a protect-until label, a bucket label removed later): the same
    deterministic task_id planned again must execute, not be answered from a 14-day record."""
    records = LocalStore(root / "records")
    runner = CleanupRunner(
        resolve_store=resolver(store), persistence=StorePersistenceLayer(records, "cleanup")
    )
    store.put("img/a", b"x")
    store.set_bucket_labels("main", {"storekeeper:protect": "true"})
    t = task("delete_objects", keys=["img/a"], task_id="skip-1")
    first = runner.run(t)
    assert first.status == "skipped"
    assert not first.duplicate
    assert list(records.list("idempotency/")) == []
    store.set_bucket_labels("main", {})
    second = runner.run(t)
    assert second.status == "executed"
    assert not second.duplicate
    assert second.deleted == ["img/a"]
    third = runner.run(t)  # an executed outcome is stored as before
    assert third.duplicate


def test_dry_run_task_leaves_no_idempotency_record(store: RecordingStore, root: Path) -> None:
    records = LocalStore(root / "records")
    runner = CleanupRunner(
        resolve_store=resolver(store), persistence=StorePersistenceLayer(records, "cleanup")
    )
    store.put("img/a", b"x")
    t = task("delete_objects", keys=["img/a"], task_id="dry-1", dry_run=True)
    assert runner.run(t).status == "dry_run"
    assert list(records.list("idempotency/")) == []
    real = runner.run(t.model_copy(update={"dry_run": False}))
    assert real.deleted == ["img/a"]


# -- vector buckets (the adapter's interface; the real adapter is exercised against the emulator) ----------


class FakeVectors:
    def __init__(self) -> None:
        self.buckets: dict[str, list[str]] = {"test-vec": ["idx-a", "idx-b"], "prod-vec": ["main"]}
        self.calls: list[str] = []

    def list_indexes(self, bucket: str) -> list[Any]:
        from storekeeper.errors import BucketNotFound

        if bucket not in self.buckets:
            raise BucketNotFound(f"supabase-vectors://{bucket}", None, "no such vector bucket")
        from storekeeper.stores.vectors import VectorIndexInfo

        return [VectorIndexInfo(bucket, i) for i in self.buckets[bucket]]

    def delete_index(self, bucket: str, index: str) -> None:
        self.calls.append(f"delete_index {bucket}/{index}")
        self.buckets[bucket].remove(index)

    def delete_bucket(self, bucket: str) -> None:
        from storekeeper.errors import BucketNotEmpty

        self.calls.append(f"delete_bucket {bucket}")
        if self.buckets[bucket]:
            raise BucketNotEmpty(bucket, None, "S3VectorBucketNotEmpty")
        del self.buckets[bucket]


def test_delete_vector_bucket_indexes_first(store: RecordingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    vb = FakeVectors()
    t = task("delete_vector_bucket", bucket="test-vec")
    out = execute_task(t, resolve_store=resolver(store), vector_backend=vb, now=NOW)
    assert vb.calls == [
        "delete_index test-vec/idx-a",
        "delete_index test-vec/idx-b",
        "delete_bucket test-vec",
    ]
    assert out.deleted[-1] == "vector-bucket:test-vec"
    again = execute_task(t, resolve_store=resolver(store), vector_backend=vb, now=NOW)
    assert again.status == "noop"
    monkeypatch.setenv("STOREKEEPER_PROTECT", "prod-*")
    kept = execute_task(
        task("delete_vector_bucket", bucket="prod-vec"),
        resolve_store=resolver(store),
        vector_backend=vb,
        now=NOW,
    )
    assert kept.status == "skipped"
    assert "prod-vec" in vb.buckets
