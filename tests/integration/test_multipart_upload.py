"""Create-only multipart uploads of big archives, on real servers (SeaweedFS, moto_server) and moto.

`S3Store.put_file(if_none_match=True)` above the threshold uploads parts in parallel and completes
with `If-None-Match: *`. Proven here: a byte-exact round trip (sha256); two uploaders completing
the same key at the same moment (exactly one wins, the loser gets PreconditionFailed and its upload
is aborted); a failure injected in a part or in the complete (the upload is aborted, nothing is
visible, no incomplete upload is left).

SeaweedFS and moto_server check the complete's condition outside any lock (two winners were
measured in 1 of 4 rounds of 8 concurrent completes on each), where AWS is atomic: the race runs
behind `complete_lock_proxy`, which serialises completes per key as AWS does
(storekeeper.dev.complete_lock_proxy). A sequential complete onto an existing key is refused by
the servers themselves, tested without the proxy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from storekeeper.dev.complete_lock_proxy import complete_lock_proxy
from storekeeper.errors import BackendError, PreconditionFailed
from storekeeper.stores import multipart
from storekeeper.stores.base import RequestCounter
from storekeeper.stores.s3 import S3Store
from tests.servers.s3_servers import S3Server

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
KEY = "snapshot/docs/000000000001-aaaaaaaa/chroma.tar"


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multipart from 5 MiB on, so a 12 MiB file is 3 parts of 5, 5 and 2 MiB."""
    monkeypatch.setenv(multipart.THRESHOLD_ENV, "5")


def _store(bucket: str, client: Any) -> S3Store:
    store = S3Store(bucket, client=client, counter=RequestCounter())
    store.multipart_part_size = multipart.MIN_PART
    return store


@pytest.fixture(params=["seaweedfs", "moto_server", "moto"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, S3Server | None, S3Store]]:
    """(name, server or None for moto in-process, a store on a fresh bucket)."""
    if request.param == "moto":
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="mpu-moto")
            yield "moto", None, _store("mpu-moto", client)
        return
    server: S3Server = request.getfixturevalue("seaweed_s3" if request.param == "seaweedfs" else "moto_http")
    bucket = request.getfixturevalue("fresh_bucket")(server, "mpu")
    yield request.param, server, _store(bucket, server.client())


def _file(path: Path, size: int, seed: int) -> tuple[Path, str]:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _uploads(store: S3Store) -> list[str]:
    return [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


def _fail_on(store: S3Store, operation: str, part: int | None = None) -> list[int]:
    """Make `operation` (for one part number, if given) fail with a 500 from now on; returns a hit list."""
    hits: list[int] = []

    def boom(params: dict[str, Any], **_: Any) -> None:
        if part is None or params.get("PartNumber") == part:
            hits.append(1)
            raise ClientError(
                {
                    "Error": {"Code": "InternalError", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                operation,
            )

    store.client.meta.events.register(f"before-parameter-build.s3.{operation}", boom)
    return hits


def test_round_trip_is_byte_exact_and_multipart(
    target: tuple[str, S3Server | None, S3Store], tmp_path: Path
) -> None:
    _, _, store = target
    src, sha = _file(tmp_path / "a.tar", 12 * MiB + 123, seed=1)
    etag = store.put_file(KEY, src, if_none_match=True)
    counts = store.requests.counts
    assert counts["upload_part"] == 3
    assert counts["complete_upload"] == 1
    assert "put" not in counts
    assert etag.strip('"').endswith("-3")  # a multipart ETag: md5 of the part md5s, "-" parts
    out = tmp_path / "b.tar"
    assert store.get_file(KEY, out) == etag
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert _uploads(store) == []


def test_below_the_threshold_is_one_create_only_put(
    target: tuple[str, S3Server | None, S3Store], tmp_path: Path
) -> None:
    _, _, store = target
    src, _ = _file(tmp_path / "a.tar", 4 * MiB, seed=2)
    store.put_file(KEY, src, if_none_match=True)
    assert store.requests.counts.get("put") == 1
    assert "upload_part" not in store.requests.counts
    with pytest.raises(PreconditionFailed):
        store.put_file(KEY, src, if_none_match=True)


def test_complete_onto_an_existing_key_is_refused_and_aborted(
    target: tuple[str, S3Server | None, S3Store], tmp_path: Path
) -> None:
    """The server itself refuses a complete when the key exists (no proxy): the create-only error."""
    _, _, store = target
    first, sha = _file(tmp_path / "first.tar", 11 * MiB, seed=3)
    second, _ = _file(tmp_path / "second.tar", 11 * MiB, seed=4)
    store.put_file(KEY, first, if_none_match=True)
    with pytest.raises(PreconditionFailed) as err:
        store.put_file(KEY, second, if_none_match=True)
    assert KEY in str(err.value)
    assert store.requests.counts["abort_upload"] == 1
    assert _uploads(store) == []
    out = tmp_path / "out.tar"
    store.get_file(KEY, out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("failing", [("UploadPart", 2), ("UploadPart", 3), ("CompleteMultipartUpload", None)])
def test_a_failure_aborts_the_upload_and_leaves_nothing(
    target: tuple[str, S3Server | None, S3Store], tmp_path: Path, failing: tuple[str, int | None]
) -> None:
    _, _, store = target
    src, _ = _file(tmp_path / "a.tar", 12 * MiB, seed=5)
    hits = _fail_on(store, *failing)
    with pytest.raises(BackendError) as err:
        store.put_file(KEY, src, if_none_match=True)
    assert hits
    assert "injected" in str(err.value)
    assert not isinstance(err.value, PreconditionFailed)
    assert store.requests.counts["abort_upload"] == 1
    assert _uploads(store) == []
    assert not store.exists(KEY)
    assert list(store.list("snapshot/")) == []


def _complete_together(stores: list[S3Store], key: str, paths: list[Path]) -> list[Any]:
    """Each store uploads its file to `key` in its own thread, the completes held for one moment."""
    barrier = threading.Barrier(len(stores), timeout=60)

    def together(**_: Any) -> None:
        barrier.wait()  # returns None: a value from a before-call hook would replace the response

    outcomes: list[Any] = [None] * len(stores)

    def upload(i: int) -> None:
        try:
            outcomes[i] = stores[i].put_file(key, paths[i], if_none_match=True)
        except Exception as exc:
            outcomes[i] = exc

    for s in stores:
        s.client.meta.events.register("before-call.s3.CompleteMultipartUpload", together)
    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


@pytest.mark.parametrize("server_name", ["seaweed_s3", "moto_http"])
def test_two_uploaders_completing_the_same_key_exactly_one_wins(
    server_name: str, request: pytest.FixtureRequest, fresh_bucket: Any, tmp_path: Path
) -> None:
    """Two uploaders (own clients, own files) send their parts, then complete at the same moment."""
    server: S3Server = request.getfixturevalue(server_name)
    bucket = fresh_bucket(server, "race")
    files = [_file(tmp_path / f"{i}.tar", 11 * MiB, seed=10 + i) for i in range(2)]
    with complete_lock_proxy(server.endpoint_url) as proxy:
        behind = dataclasses.replace(server, endpoint_url=proxy.url)
        for round_ in range(3):
            key = f"snapshot/docs/{round_:012d}-racerace/chroma.tar"
            stores = [_store(bucket, behind.client()) for _ in files]
            outcomes = _complete_together(stores, key, [f[0] for f in files])
            winners = [i for i, o in enumerate(outcomes) if isinstance(o, str)]
            losers = [o for o in outcomes if isinstance(o, PreconditionFailed)]
            assert len(winners) == 1, outcomes
            assert len(losers) == 1, outcomes
            out = tmp_path / "out.tar"
            S3Store(bucket, client=server.client()).get_file(key, out)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == files[winners[0]][1]
            assert stores[1 - winners[0]].requests.counts["abort_upload"] == 1
        assert proxy.completes == 6
    assert server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_compaction_publishes_a_multipart_archive_readers_verify(
    seaweed_s3: S3Server, fresh_bucket: Any, tmp_path: Path
) -> None:
    """The compactor's own path on SeaweedFS: an archive past the threshold goes up multipart, the
    manifest's sha256 matches what a cold reader downloads (ranged GETs) and opens."""
    import numpy as np

    from storekeeper.compaction import compact
    from storekeeper.snapshots import SnapshotCache
    from tests.compaction_support import assert_same_state, delta, model_state, produce, snapshot_state

    store = _store(fresh_bucket(seaweed_s3, "mpc"), seaweed_s3.client())
    rng = np.random.default_rng(7)
    content = delta("docs", {f"r{i}": [float(x) for x in rng.standard_normal(384)] for i in range(3000)})
    produce(store, content)
    result = compact(store, "docs", cache=SnapshotCache(tmp_path / "compactor"))
    assert result.status == "published"
    assert store.requests.counts["upload_part"] >= 2
    assert store.requests.counts["complete_upload"] == 1
    assert _uploads(store) == []
    assert_same_state(snapshot_state(store, "docs", tmp_path / "reader"), model_state([content]))
