"""Versioned buckets: deleted means freed, usage counts what is billed.

Run on SeaweedFS (real server, versioning through its S3 API) and on moto in-process, each
with versioning switched on: what cleanup and the compactor delete under `snapshot/` and
`delta/` leaves no version behind; anything else keeps versioning's protection.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from storekeeper.cleanup import execute_task
from storekeeper.cleanup.base import TaskOutcome
from storekeeper.deltas import new_delta_id
from storekeeper.models.cleanup import CleanupTask
from storekeeper.protection import ProtectionConfig
from storekeeper.stores.base import RequestCounter
from storekeeper.stores.s3 import S3Store
from tests.cleanup_support import cleanup_task, put_version
from tests.servers.s3_servers import S3Server

pytestmark = pytest.mark.integration
NOW = datetime(2030, 1, 1, tzinfo=UTC)
V1, V2 = "000000000001-aaaaaaaa", "000000000002-bbbbbbbb"
NO_LABELS = ProtectionConfig(check_object_labels=False)


@pytest.fixture(params=["seaweedfs", "moto"])
def vstore(request: pytest.FixtureRequest) -> Iterator[S3Store]:
    """An S3Store on a fresh bucket with versioning enabled."""
    if request.param == "seaweedfs":
        server: S3Server = request.getfixturevalue("seaweed_s3")
        bucket = request.getfixturevalue("fresh_bucket")(server, "ver")
        client = server.client()
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield S3Store(bucket, client=client, counter=RequestCounter(), list_page_size=50)
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="ver-moto")
        client.put_bucket_versioning(Bucket="ver-moto", VersioningConfiguration={"Status": "Enabled"})
        yield S3Store("ver-moto", client=client, counter=RequestCounter(), list_page_size=50)


def versions(store: S3Store, prefix: str) -> list[tuple[str, bool]]:
    """(key, is delete marker) for every version under `prefix`, straight from the server."""
    return [(v.key, v.delete_marker) for v in store.list_versions(prefix)]


def task(action: str, bucket: str, **kw: Any) -> CleanupTask:
    return cleanup_task(action, bucket, backend="s3", planned_at=NOW, reason="versioned", **kw)


def run(store: S3Store, t: CleanupTask, **kw: Any) -> TaskOutcome:
    return execute_task(t, resolve_store=lambda b, name: store, now=NOW, **kw)


def publish_two_versions(store: S3Store, applied: tuple[str, ...] = ()) -> None:
    """V1 and V2 (live) of collection `c`, both listing `applied` as their deltas."""
    for v in (V1, V2):
        put_version(store, "c", v, created_at=NOW, live=v == V2, archive="chroma.tar", body=b"abc", size=3,
                    dimension=2, record_count=0, deltas=applied)  # fmt: skip


def test_versioning_is_detected_and_read_once(vstore: S3Store) -> None:
    assert vstore.versioned
    assert vstore.versioned
    assert vstore.requests.counts["get_bucket_versioning"] == 1


def test_unversioned_bucket_is_not_versioned_and_purge_is_a_plain_delete(
    seaweed_s3: S3Server, fresh_bucket: Any
) -> None:
    store = S3Store(fresh_bucket(seaweed_s3, "plain"), client=seaweed_s3.client(), counter=RequestCounter())
    assert not store.versioned
    store.put("delta/c/a.delta", b"x")
    res = store.purge_many(["delta/c/a.delta"], sizes={"delta/c/a.delta": 1})
    assert res.deleted == ["delta/c/a.delta"]
    assert res.versions_removed == 0
    assert res.bytes_freed == 1  # unversioned: the size the caller listed
    assert "delete_batch" in store.requests.counts
    assert list(store.list("")) == []


def test_usage_counts_noncurrent_versions_and_delete_markers(vstore: S3Store) -> None:
    vstore.put("docs/a", b"1" * 100)
    vstore.put("docs/a", b"2" * 40)  # the 100 bytes become noncurrent
    vstore.put("docs/b", b"3" * 7)
    vstore.delete("docs/b")  # 7 noncurrent bytes behind a delete marker
    u = vstore.usage("docs/")
    assert (u.bytes, u.objects) == (40, 1)
    assert (u.noncurrent_bytes, u.noncurrent_versions, u.delete_markers) == (107, 2, 1)
    assert u.billed_bytes == 147


def test_purge_removes_every_version_of_its_keys_only(vstore: S3Store) -> None:
    for i in range(120):  # more than two pages of 50
        vstore.put(f"delta/c/{i:04d}.delta", b"x" * 10)
    vstore.put("delta/c/0005.delta", b"y" * 10)  # a second version of one key
    vstore.put("delta/c/0200.delta", b"keep")
    vstore.put("delta/c/0200.delta", b"keep2")
    vstore.delete("delta/c/0007.delta")  # already deleted: a delete marker and one version
    targets = [f"delta/c/{i:04d}.delta" for i in range(120)]
    res = vstore.purge_many(targets)
    assert not res.errors
    assert sorted(res.deleted) == targets
    assert res.versions_removed == 120 + 1 + 1  # 120 objects, 0005's old version, 0007's marker
    assert res.bytes_freed == 121 * 10  # every removed version's bytes (a marker has none)
    left = versions(vstore, "delta/c/")
    assert left == [("delta/c/0200.delta", False), ("delta/c/0200.delta", False)]


def test_a_plain_delete_on_a_versioned_bucket_frees_nothing(vstore: S3Store) -> None:
    vstore.put("docs/a", b"1" * 100)
    res = vstore.delete_many(["docs/a"], sizes={"docs/a": 100})
    assert res.deleted == ["docs/a"]
    assert res.bytes_freed == 0  # the 100 bytes are a noncurrent version now, still billed
    assert vstore.usage("docs/").noncurrent_bytes == 100


def test_purge_keeps_a_key_that_changed_since_it_was_checked(vstore: S3Store) -> None:
    checked = vstore.put("delta/c/a.delta", b"old")
    vstore.put("delta/c/a.delta", b"new")  # written after the check
    vstore.put("delta/c/b.delta", b"b")
    etag_b = vstore.head("delta/c/b.delta").etag
    res = vstore.purge_many(
        ["delta/c/a.delta", "delta/c/b.delta"], etags={"delta/c/a.delta": checked, "delta/c/b.delta": etag_b}
    )
    assert res.deleted == ["delta/c/b.delta"]
    assert "changed since it was checked" in res.kept["delta/c/a.delta"]
    assert vstore.get("delta/c/a.delta").body == b"new"
    assert len(versions(vstore, "delta/c/a.delta")) == 2
    assert versions(vstore, "delta/c/b.delta") == []


def test_reaped_snapshot_version_leaves_no_version_behind(vstore: S3Store) -> None:
    publish_two_versions(vstore)
    vstore.put(f"snapshot/c/{V1}/chroma.tar", b"abcdef")  # the 3 bytes before it stay a version
    billed = sum(v.size for v in vstore.list_versions(f"snapshot/c/{V1}/"))
    out = run(
        vstore,
        task("delete_snapshot_version", vstore.bucket, collection="c", version=V1),
        protection=NO_LABELS,
    )
    assert out.status == "executed", out.message
    assert out.versions_removed == 3
    assert out.bytes_freed == billed  # noncurrent versions included
    assert versions(vstore, f"snapshot/c/{V1}/") == []
    # the live version is untouched
    assert [k for k, _ in versions(vstore, f"snapshot/c/{V2}/")] == [
        f"snapshot/c/{V2}/chroma.tar",
        f"snapshot/c/{V2}/manifest.json",
    ]


def test_deleted_deltas_are_freed_but_other_objects_keep_their_versions(vstore: S3Store) -> None:
    did = new_delta_id()
    publish_two_versions(vstore, applied=(did,))  # the live snapshot applied it: deletable
    vstore.put(f"delta/c/{did}.delta", b"d")
    vstore.put("reports/old.json", b"r")
    out = run(
        vstore,
        task("delete_objects", vstore.bucket, keys=[f"delta/c/{did}.delta", "reports/old.json"]),
        protection=NO_LABELS,
    )
    assert sorted(out.deleted) == [f"delta/c/{did}.delta", "reports/old.json"], out.message
    assert versions(vstore, "delta/") == []
    # versioning's protection stays for everything else: the report is recoverable
    assert sorted(versions(vstore, "reports/"), key=lambda kv: kv[1]) == [
        ("reports/old.json", False),
        ("reports/old.json", True),
    ]


def test_dry_run_removes_no_version(vstore: S3Store) -> None:
    publish_two_versions(vstore)
    out = run(
        vstore,
        task("delete_snapshot_version", vstore.bucket, collection="c", version=V1),
        protection=NO_LABELS,
        dry_run=True,
    )
    assert out.status == "dry_run"
    assert len(versions(vstore, f"snapshot/c/{V1}/")) == 2


def test_delete_bucket_empties_every_version(vstore: S3Store) -> None:
    vstore.put("x/a", b"1")
    vstore.put("x/a", b"2")
    vstore.put("x/b", b"3")
    vstore.delete("x/b")
    out = run(vstore, task("delete_bucket", vstore.bucket), protection=NO_LABELS)
    assert out.status == "executed", out.message
    assert f"bucket:{vstore.bucket}" in out.deleted
    assert vstore.bucket not in {b.name for b in vstore.list_buckets()}


def test_compaction_removes_applied_deltas_with_their_versions(vstore: S3Store, tmp_path: Any) -> None:
    from storekeeper.compaction import compact
    from storekeeper.snapshots import SnapshotCache
    from tests.compaction_support import delta, produce, vec

    for n in range(3):
        produce(vstore, delta("c", {f"r{n}": vec(n, 4)}))
    result = compact(vstore, "c", cache=SnapshotCache(tmp_path / "cache"))
    assert result.status == "published"
    assert len(result.removed) == 3
    assert versions(vstore, "delta/") == []  # no delete marker, no noncurrent version
    u = vstore.usage("")
    assert u.noncurrent_bytes == 0
    assert u.delete_markers == 0


WATERMARK = """
stores:
  main: {capacity: 10000, watermarks: {high: 0.85, low: 0.50, hard: 0.95}}
protect: {object_labels: false}
policies:
  - {name: wm, resource: object, store: main, prefix: "", filters: [{type: watermark}]}
"""


def test_watermark_counts_noncurrent_bytes_and_chooses_only_what_frees_them(vstore: S3Store) -> None:
    from storekeeper import reaper
    from storekeeper.policies.model import parse_policies

    # 3000 current bytes of plain objects + 6000 noncurrent bytes: 0.90 billed, only 0.30 current
    for i in range(3):
        vstore.put(f"docs/{i}", b"o" * 2000)
        vstore.put(f"docs/{i}", b"n" * 1000)
    publish_two_versions(vstore)  # 2 x (3-byte archive + manifest): deletable snapshot version V1
    report = reaper.run(
        policies=parse_policies(WATERMARK), stores={"main": vstore}, now=NOW, write_report=False
    )
    notes = " ".join(report.summaries[0].notes)
    # noncurrent versions counted against capacity: 9000 B + the snapshots' bytes of 10000
    assert "usage stays at 0.9" in notes, notes
    planned = [d.name for d in report.decisions if d.verdict == "planned"]
    # deleting docs/* would free nothing (their versions stay billed): never chosen
    assert not [p for p in planned if p.startswith("docs/")], planned
    assert "stopped: nothing more eligible" in notes
    assert any(p.startswith(f"snapshot/c/{V1}") for p in planned), planned  # purged: frees its bytes
