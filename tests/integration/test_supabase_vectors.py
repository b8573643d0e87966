"""SupabaseVectorBackend through the real storage3 vectors client over HTTP against the emulator."""

from __future__ import annotations

import pytest

from storekeeper.errors import (
    BackendError,
    BucketAlreadyExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidName,
    NotFound,
    QuotaExceeded,
    ValidationError,
)
from storekeeper.stores import RequestCounter
from storekeeper.stores.vectors import SupabaseVectorBackend, VectorRecord, open_vector_backend
from tests.servers.supabase_server import SupabaseEmulatorServer

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(supabase_env: SupabaseEmulatorServer) -> SupabaseVectorBackend:
    b = open_vector_backend(counter=RequestCounter())
    assert isinstance(b, SupabaseVectorBackend)
    return b


def test_eleventh_bucket_is_quota_exceeded(backend: SupabaseVectorBackend) -> None:
    for i in range(10):
        backend.create_bucket(f"vb-{i:02d}")
    with pytest.raises(QuotaExceeded) as err:
        backend.create_bucket("vb-10")
    assert "Max allowed is 10" in str(err.value)
    with pytest.raises(BucketAlreadyExists):
        backend.create_bucket("vb-00")
    backend.delete_bucket("vb-03")
    backend.create_bucket("vb-10")  # room again after a delete
    assert len(backend.list_buckets()) == 10


def test_bucket_with_an_index_cannot_be_deleted_until_indexes_go(backend: SupabaseVectorBackend) -> None:
    backend.create_bucket("docs")
    backend.create_index("docs", "idx-a", 3, "cosine")
    with pytest.raises(BucketNotEmpty) as err:
        backend.delete_bucket("docs")
    assert "docs" in str(err.value)
    for index in backend.list_indexes("docs"):
        backend.delete_index("docs", index.name)
    backend.delete_bucket("docs")
    assert backend.list_buckets() == []
    with pytest.raises(BucketNotFound):
        backend.delete_bucket("docs")
    with pytest.raises(BucketNotFound):
        backend.list_indexes("docs")


def test_listings_follow_every_page(backend: SupabaseVectorBackend) -> None:
    backend.bucket_page_size = 3
    backend.index_page_size = 2
    backend.vector_page_size = 4
    for i in range(8):
        backend.create_bucket(f"pg-{i}")
    backend.requests.reset()
    assert [b.name for b in backend.list_buckets()] == [f"pg-{i}" for i in range(8)]
    assert backend.requests.counts["list_vector_buckets"] == 3
    assert [b.name for b in backend.list_buckets(prefix="pg-1")] == ["pg-1"]
    for i in range(5):
        backend.create_index("pg-0", f"idx-{i}", 2)
    assert [i.name for i in backend.list_indexes("pg-0")] == [f"idx-{i}" for i in range(5)]
    assert backend.requests.counts["list_indexes"] == 3
    records = [VectorRecord(f"k{i:02d}", [float(i), 1.0], {"i": i}) for i in range(11)]
    assert backend.put_vectors("pg-0", "idx-0", records) == 11
    listed = list(backend.list_vectors("pg-0", "idx-0", return_data=True))
    assert [r.key for r in listed] == [r.key for r in records]
    assert listed[3].vector == [3.0, 1.0]
    assert listed[3].metadata == {"i": 3}
    assert backend.requests.counts["list_vectors"] == 3


def test_query_returns_nearest_first_and_honours_filter(backend: SupabaseVectorBackend) -> None:
    backend.create_bucket("qry")
    backend.create_index("qry", "euclid", 2, "euclidean")
    backend.put_vectors(
        "qry",
        "euclid",
        [
            VectorRecord("far", [10.0, 10.0], {"kind": "x"}),
            VectorRecord("near", [1.0, 1.0], {"kind": "y"}),
            VectorRecord("mid", [3.0, 3.0], {"kind": "x"}),
        ],
    )
    matches = backend.query_vectors("qry", "euclid", [0.0, 0.0], top_k=2)
    assert [m.key for m in matches] == ["near", "mid"]
    assert matches[0].distance == pytest.approx(2**0.5)
    only_x = backend.query_vectors("qry", "euclid", [0.0, 0.0], top_k=5, filter={"kind": "x"})
    assert [m.key for m in only_x] == ["mid", "far"]


def test_get_delete_and_validation(backend: SupabaseVectorBackend) -> None:
    backend.create_bucket("gdv")
    backend.create_index("gdv", "idx3", 3)
    backend.put_vectors("gdv", "idx3", [VectorRecord(f"k{i}", [1.0, float(i), 0.5]) for i in range(120)])
    got = backend.get_vectors("gdv", "idx3", [f"k{i}" for i in range(110)] + ["absent"])
    assert len(got) == 110  # two requests of at most 100 keys, the absent key left out
    assert backend.requests.counts["get_vectors"] == 2
    assert backend.delete_vectors("gdv", "idx3", [f"k{i}" for i in range(100)] + ["absent"]) == 101
    assert len(list(backend.list_vectors("gdv", "idx3"))) == 20
    with pytest.raises(ValidationError):
        backend.put_vectors("gdv", "idx3", [VectorRecord("nan", [float("nan"), 0.0, 0.0])])
    with pytest.raises(ValidationError):
        backend.query_vectors("gdv", "idx3", [1.0, 0.0, 0.0], top_k=101)
    with pytest.raises(BackendError) as wrong_dim:
        backend.put_vectors("gdv", "idx3", [VectorRecord("short", [1.0])])
    assert "dimension" in str(wrong_dim.value)
    with pytest.raises(NotFound, match="no-such-index"):
        backend.put_vectors("gdv", "no-such-index", [VectorRecord("k", [1.0, 0.0, 0.0])])
    with pytest.raises(InvalidName):
        backend.create_bucket("Bad_Name")


def test_missing_credentials_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_KEY", raising=False)
    with pytest.raises(BackendError, match="SUPABASE_URL"):
        open_vector_backend().list_buckets()


def test_deletes_of_what_is_gone_and_an_index_in_a_missing_bucket(
    supabase_env: SupabaseEmulatorServer,
) -> None:
    """The server answers 200 for DeleteVectorBucket / ListIndexes of a missing bucket and 404 for
    DeleteIndex either way: the adapter says which thing is gone."""
    backend = open_vector_backend()
    with pytest.raises(BucketNotFound, match="ghost-vb"):
        backend.delete_bucket("ghost-vb")
    with pytest.raises(BucketNotFound, match="ghost-vb"):
        backend.list_indexes("ghost-vb")
    with pytest.raises(BucketNotFound, match="ghost-vb"):
        backend.delete_index("ghost-vb", "idx")
    backend.create_bucket("real-vb")
    with pytest.raises(NotFound) as index_gone:
        backend.delete_index("real-vb", "idx")
    assert not isinstance(index_gone.value, BucketNotFound)
    assert backend.list_indexes("real-vb") == []
    assert backend.get_bucket("real-vb").name == "real-vb"
    backend.delete_bucket("real-vb")
    with pytest.raises(BucketNotFound):
        backend.get_bucket("real-vb")


def test_a_bad_key_on_vector_routes_is_access_denied(supabase_env: SupabaseEmulatorServer) -> None:
    from supabase import create_client

    from storekeeper.errors import AccessDenied

    bad = SupabaseVectorBackend(create_client(supabase_env.url, "wrong-key"))
    for call in (
        bad.list_buckets,
        lambda: bad.get_bucket("vb1"),
        lambda: bad.delete_bucket("vb1"),
        lambda: bad.list_indexes("vb1"),
        lambda: bad.delete_index("vb1", "idx"),
        lambda: bad.create_bucket("vb1"),
    ):
        with pytest.raises(AccessDenied, match="SUPABASE_SERVICE_KEY"):
            call()
