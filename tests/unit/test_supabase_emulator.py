"""The emulator answers like Supabase Storage where our adapter depends on it (raw HTTP, no adapter)."""

from __future__ import annotations

import httpx
import pytest

from tests.servers.supabase_server import SupabaseEmulatorServer


@pytest.fixture
def http(supabase_env: SupabaseEmulatorServer) -> httpx.Client:
    headers = {"Authorization": f"Bearer {supabase_env.service_key}", "apikey": supabase_env.service_key}
    with httpx.Client(base_url=supabase_env.url + "/storage/v1", headers=headers) as client:
        assert client.post("/bucket", json={"id": "emu", "name": "emu"}).status_code == 200
        yield client


def _put(http: httpx.Client, key: str, upsert: bool = False) -> httpx.Response:
    return http.post(
        f"/object/emu/{key}",
        files={"file": ("f", b"data", "text/plain")},
        headers={"x-upsert": str(upsert).lower()},
    )


def test_errors_carry_the_real_status_in_the_body(http: httpx.Client) -> None:
    r = http.get("/object/emu/missing")
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


def test_list_is_one_folder_level_folders_first_with_offset_paging(http: httpx.Client) -> None:
    for key in ["b.txt", "a/1", "a/2", "c/x/y", "0.txt"]:
        _put(http, key)
    rows = http.post("/object/list/emu", json={"prefix": "", "limit": 100, "offset": 0}).json()
    assert [(r["name"], r["id"] is None) for r in rows] == [
        ("a", True),
        ("c", True),
        ("0.txt", False),
        ("b.txt", False),
    ]
    page2 = http.post("/object/list/emu", json={"prefix": "", "limit": 2, "offset": 2}).json()
    assert [r["name"] for r in page2] == ["0.txt", "b.txt"]
    inside = http.post("/object/list/emu", json={"prefix": "a", "limit": 100, "offset": 0}).json()
    assert [r["name"] for r in inside] == ["1", "2"]


def test_remove_refuses_more_than_1000_and_skips_missing(http: httpx.Client) -> None:
    _put(http, "gone")
    too_many = http.request("DELETE", "/object/emu", json={"prefixes": [f"k{i}" for i in range(1001)]})
    assert too_many.json()["statusCode"] == "400"
    removed = http.request("DELETE", "/object/emu", json={"prefixes": ["gone", "never"]}).json()
    assert [r["name"] for r in removed] == ["gone"]


def test_auth_is_required(supabase_env: SupabaseEmulatorServer) -> None:
    r = httpx.get(supabase_env.url + "/storage/v1/bucket", headers={"Authorization": "Bearer wrong"})
    assert r.json()["statusCode"] == "403"
    v = httpx.post(supabase_env.url + "/storage/v1/vector/ListVectorBuckets", json={})
    assert v.status_code == 400
    assert v.json()["code"] == "InvalidJWT"
