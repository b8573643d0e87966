"""The emulator answers like the real Supabase Storage server, quirks included (raw HTTP, no adapter).

These quirks are what the adapter must survive; if the emulator became kinder again (atomic
create-only uploads, case-sensitive v1 listing, errors for a missing bucket), the adapter's tests
would stop proving anything, so each quirk is pinned here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from storekeeper.dev.emulators.supabase_emulator import SupabaseEmulator
from tests.servers.supabase_server import SupabaseEmulatorServer


@pytest.fixture
def http(supabase_env: SupabaseEmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {supabase_env.service_key}", "apikey": supabase_env.service_key}
    with httpx.Client(base_url=supabase_env.url + "/storage/v1", headers=headers) as client:
        assert client.post("/bucket", json={"id": "emu", "name": "emu"}).status_code == 200
        yield client


def _put(http: httpx.Client, key: str, upsert: bool = False, body: bytes = b"data") -> httpx.Response:
    return http.post(
        f"/object/emu/{key}",
        files={"file": ("f", body, "text/plain")},
        data={"cacheControl": "3600"},
        headers={"x-upsert": str(upsert).lower()},
    )


def test_errors_carry_the_real_status_in_the_body(http: httpx.Client) -> None:
    r = http.get("/object/authenticated/emu/missing")
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": "404",
        "code": "NoSuchKey",
        "error": "not_found",
        "message": "Object not found",
    }
    assert _put(http, "k").status_code == 200
    dup = _put(http, "k")
    assert dup.json()["statusCode"] == "409"
    assert dup.json()["error"] == "Duplicate"
    assert _put(http, "k", upsert=True).status_code == 200


def test_small_response_shapes(http: httpx.Client) -> None:
    up = _put(http, "plain")
    assert set(up.json()) == {"Key", "Id"}  # no lowercase id
    info = http.get("/object/info/authenticated/emu/plain").json()
    assert info["metadata"] == {}  # not null without user metadata
    assert info["cache_control"] == "max-age=3600"
    raw = http.post("/object/emu/raw", content=b"x", headers={"content-type": "text/plain"})
    assert raw.status_code == 200
    assert http.get("/object/info/authenticated/emu/raw").json()["cache_control"] == "no-cache"
    assert "type" not in http.get("/bucket/emu").json()


@pytest.mark.slow  # threads racing uploads: >5 s here
def test_create_only_uploads_really_race(supabase_env: SupabaseEmulatorServer) -> None:
    """Six concurrent create-only uploads of one new key: more than one succeeds, the last one wins."""
    headers = {"Authorization": f"Bearer {supabase_env.service_key}"}
    base = supabase_env.url + "/storage/v1"
    httpx.post(base + "/bucket", json={"id": "race", "name": "race"}, headers=headers).raise_for_status()
    multi_winner_rounds = 0
    for r in range(5):
        barrier = threading.Barrier(6)
        wins: list[int] = []

        def upload(
            who: int, r: int = r, barrier: threading.Barrier = barrier, wins: list[int] = wins
        ) -> None:
            with httpx.Client(headers=headers) as client:
                barrier.wait(timeout=30)
                resp = client.post(
                    f"{base}/object/race/key-{r}",
                    files={"file": ("f", str(who).encode(), "text/plain")},
                    headers={"x-upsert": "false"},
                )
                if resp.status_code == 200:
                    wins.append(who)

        threads = [threading.Thread(target=upload, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert wins, f"round {r}: nobody created the key"
        if len(wins) > 1:
            multi_winner_rounds += 1
            stored = httpx.get(f"{base}/object/authenticated/race/key-{r}", headers=headers).content
            assert int(stored) in wins  # one of the "successful" creates was silently overwritten
    assert multi_winner_rounds >= 1, "create-only uploads never raced: the emulator is kinder than the server"


def test_v1_list_is_case_insensitive_like_storage_search(http: httpx.Client) -> None:
    for key in ["a/1", "a/2", "A/3", "Docs/x", "docs/y", "b.txt", "B.txt"]:
        _put(http, key)
    rows = http.post("/object/list/emu", json={"prefix": "", "limit": 100, "offset": 0}).json()
    # one folder row per lower-cased folder, spelled like the first object found (lower order, then name)
    assert [(r["name"], r["id"] is None) for r in rows] == [
        ("a", True),
        ("B.txt", False),
        ("b.txt", False),
        ("Docs", True),
    ]
    inside = http.post("/object/list/emu", json={"prefix": "a", "limit": 100, "offset": 0}).json()
    assert [r["name"] for r in inside] == ["1", "2", "3"]  # "3" is A/3: a walker would invent a/3
    docs = http.post("/object/list/emu", json={"prefix": "Docs", "limit": 100, "offset": 0}).json()
    assert [r["name"] for r in docs] == ["x", "y"]  # "y" is docs/y: a walker would invent Docs/y


def test_list_v2_is_byte_ordered_and_case_sensitive(http: httpx.Client) -> None:
    keys = ["a/1", "a/2", "A/3", "Docs/x", "docs/y", "b.txt", "B.txt"]
    for key in keys:
        _put(http, key)
    out: list[str] = []
    cursor = None
    while True:
        body: dict[str, object] = {"prefix": "", "limit": 3, "with_delimiter": False}
        if cursor:
            body["cursor"] = cursor
        page = http.post("/object/list-v2/emu", json=body).json()
        out += [o["name"] for o in page["objects"]]
        if not page["hasNext"]:
            break
        cursor = page["nextCursor"]
    assert out == sorted(keys)
    docs = http.post("/object/list-v2/emu", json={"prefix": "docs/"}).json()
    assert [o["name"] for o in docs["objects"]] == ["docs/y"]


def test_a_missing_bucket_lists_and_removes_as_empty(http: httpx.Client) -> None:
    assert http.post("/object/list/ghost", json={"prefix": ""}).json() == []
    assert http.post("/object/list-v2/ghost", json={"prefix": ""}).json()["objects"] == []
    gone = http.request("DELETE", "/object/ghost", json={"prefixes": ["a", "b"]})
    assert gone.status_code == 200
    assert gone.json() == []


def test_remove_accepts_more_than_1000_unless_hard_limits(http: httpx.Client) -> None:
    _put(http, "gone")
    many = http.request("DELETE", "/object/emu", json={"prefixes": ["gone"] + [f"k{i}" for i in range(1001)]})
    assert [r["name"] for r in many.json()] == ["gone"]
    strict = SupabaseEmulator(hard_limits=True).start()
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {strict.service_key}"}) as client:
            client.post(strict.url + "/storage/v1/bucket", json={"id": "emu"}).raise_for_status()
            refused = client.request(
                "DELETE",
                strict.url + "/storage/v1/object/emu",
                json={"prefixes": [f"k{i}" for i in range(1001)]},
            )
            assert refused.json()["statusCode"] == "400"
    finally:
        strict.stop()


@pytest.mark.parametrize(
    ("bad_key", "message"),
    [("not-a-jwt", "Invalid Compact JWS"), ("forged", "signature verification failed")],
)
def test_a_bad_key_on_reads_looks_like_a_missing_bucket_except_on_authenticated_routes(
    http: httpx.Client, supabase_env: SupabaseEmulatorServer, bad_key: str, message: str
) -> None:
    _put(http, "k")
    base = supabase_env.url + "/storage/v1"
    key = supabase_env.service_key
    token = (key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")) if bad_key == "forged" else bad_key
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/object/emu/k", "/object/info/emu/k"):
        r = httpx.get(base + path, headers=auth).json()
        assert (r["statusCode"], r["message"]) == ("404", "Bucket not found"), path
    for path in ("/object/authenticated/emu/k", "/object/info/authenticated/emu/k", "/bucket/emu"):
        r = httpx.get(base + path, headers=auth).json()
        assert (r["statusCode"], r["code"], r["message"]) == ("403", "AccessDenied", message), path
    missing = httpx.get(base + "/bucket/emu").json()
    assert (missing["statusCode"], missing["code"]) == ("400", "InvalidRequest")


def test_vector_routes_need_the_service_role(supabase_env: SupabaseEmulatorServer) -> None:
    v = httpx.post(supabase_env.url + "/storage/v1/vector/ListVectorBuckets", json={})
    assert v.status_code == 403
    assert (v.json()["error"], v.json()["message"]) == ("AccessDenied", "Missing signature")


def test_vector_quirks(supabase_env: SupabaseEmulatorServer) -> None:
    base = supabase_env.url + "/storage/v1/vector/"
    with httpx.Client(headers={"Authorization": f"Bearer {supabase_env.service_key}"}) as c:
        assert c.post(base + "DeleteVectorBucket", json={"vectorBucketName": "ghost"}).status_code == 200
        listed = c.post(base + "ListIndexes", json={"vectorBucketName": "ghost"})
        assert (listed.status_code, listed.json()) == (200, {"indexes": []})
        gone = c.post(base + "DeleteIndex", json={"vectorBucketName": "ghost", "indexName": "idx"})
        assert gone.status_code == 404
        assert "idx" in gone.json()["message"]
        assert gone.json()["error"] == "NotFoundException"
        assert c.post(base + "CreateVectorBucket", json={"vectorBucketName": "vb1"}).status_code == 200
        dup = c.post(base + "CreateVectorBucket", json={"vectorBucketName": "vb1"})
        assert (dup.status_code, dup.json()["error"]) == (409, "ConflictException")
        index = {"vectorBucketName": "vb1", "indexName": "idx", "dimension": 3}
        c.post(base + "CreateIndex", json={**index, "distanceMetric": "cosine", "dataType": "float32"})
        full = c.post(base + "DeleteVectorBucket", json={"vectorBucketName": "vb1"})
        assert (full.status_code, full.json()["error"]) == (400, "VectorBucketNotEmpty")
