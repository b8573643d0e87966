"""What the real S3 servers themselves guarantee (raw boto3), and S3Store configured only by environment.

These pin down the server capabilities storekeeper's correctness rests on, so a
SeaweedFS or moto upgrade that drops one fails here with a clear name.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from storekeeper.errors import PreconditionFailed
from storekeeper.stores import open_store
from storekeeper.stores.s3 import S3Store
from tests.servers.s3_servers import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> S3Server:
    fixture = "seaweed_s3" if request.param == "seaweedfs" else "moto_http"
    result: S3Server = request.getfixturevalue(fixture)
    return result


def _code(exc: ClientError) -> tuple[str, int]:
    return str(exc.response["Error"]["Code"]), int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_server_enforces_conditional_put_and_delete(server: S3Server, fresh_bucket: Any) -> None:
    c = server.client()
    b = fresh_bucket(server)
    etag = c.put_object(Bucket=b, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as e1:
        c.put_object(Bucket=b, Key="k", Body=b"2", IfNoneMatch="*")
    assert _code(e1.value) == ("PreconditionFailed", 412)
    new = c.put_object(Bucket=b, Key="k", Body=b"3", IfMatch=etag)["ETag"]
    with pytest.raises(ClientError) as e2:
        c.put_object(Bucket=b, Key="k", Body=b"4", IfMatch=etag)
    assert _code(e2.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e3:
        c.delete_object(Bucket=b, Key="k", IfMatch=etag)
    assert _code(e3.value) == ("PreconditionFailed", 412)
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"3"
    c.delete_object(Bucket=b, Key="k", IfMatch=new)
    assert c.list_objects_v2(Bucket=b).get("KeyCount", 0) == 0


def test_seaweedfs_delete_objects_honours_per_key_etag(seaweed_s3: S3Server, fresh_bucket: Any) -> None:
    """SeaweedFS checks an <ETag> per key in DeleteObjects; a stale one is a per-key PreconditionFailed."""
    c = seaweed_s3.client()
    b = fresh_bucket(seaweed_s3)
    e_a = c.put_object(Bucket=b, Key="a", Body=b"a")["ETag"]
    c.put_object(Bucket=b, Key="b", Body=b"b")
    resp = c.delete_objects(
        Bucket=b,
        Delete={
            "Objects": [{"Key": "a", "ETag": e_a}, {"Key": "b", "ETag": '"00000000000000000000000000000000"'}]
        },
    )
    assert [d["Key"] for d in resp.get("Deleted", [])] == ["a"]
    assert [(e["Key"], e["Code"]) for e in resp.get("Errors", [])] == [("b", "PreconditionFailed")]
    assert [o["Key"] for o in c.list_objects_v2(Bucket=b)["Contents"]] == ["b"]


def test_open_store_from_environment(
    server: S3Server, fresh_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`s3://bucket` plus AWS_ENDPOINT_URL (and credentials) from the environment reaches the server."""
    b = fresh_bucket(server)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://{b}")
    assert isinstance(store, S3Store)
    etag = store.put("via/env", b"hello", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("via/env", b"again", if_none_match=True)
    raw = server.client().get_object(Bucket=b, Key="via/env")
    assert raw["Body"].read() == b"hello"
    assert raw["ETag"] == etag
