"""`storekeeper migrate` on two backends (local -> local, local -> SeaweedFS, a real S3 server):
dry run changes nothing, the copy is sha256-verified, an interrupted run leaves no pointer in the
destination and the next run resumes from its journal, conflicts are never overwritten."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from storekeeper import migrate as mg
from storekeeper.cli import app
from storekeeper.compaction import compact
from storekeeper.snapshots import SnapshotCache, read_pointer
from storekeeper.stores.base import ObjectStore
from storekeeper.stores.local import LocalStore
from tests.compaction_support import delta, produce, snapshot_state, vec
from tests.integration.backend_pair import KINDS, open_pair_store

DIM = 8


@pytest.fixture(params=KINDS)
def dst(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    return open_pair_store(request, tmp_path / "dst", monkeypatch, "mig")


@pytest.fixture
def src(tmp_path: Path) -> LocalStore:
    """Two collections, two versions of one, a pending delta, a report."""
    store = LocalStore(tmp_path / "src")
    cache = SnapshotCache(tmp_path / "cache")
    for c, n in (("docs", 2), ("notes", 1)):
        for i in range(n):
            produce(store, delta(c, {f"{c}-{i}-{j}": vec(i * 10 + j, DIM) for j in range(3)}))
            compact(store, c, cache=cache)
    produce(store, delta("docs", {"pending": vec(99, DIM)}))
    store.put("reports/reaper/20310101T000000000000Z.json", b"{}")
    return store


def keys(store: ObjectStore) -> dict[str, int]:
    return {i.key: i.size for i in store.list("")}


def test_dry_run_then_copy_verified_with_pointers_last(
    src: LocalStore, dst: ObjectStore, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    p = mg.plan(src, dst, journal)
    assert len(p.pointers) == 2
    assert len(p.missing) == len(keys(src))
    assert keys(dst) == {}  # the plan wrote nothing
    order: list[str] = []
    result = mg.apply(src, dst, p, journal, progress=lambda key, _size: order.append(key))
    assert result.ok, result.to_json()
    assert keys(dst) == keys(src)
    assert all(dst.get(k).body == src.get(k).body for k in keys(src))
    pointer_keys = {i.key for i in p.pointers}
    assert set(order[-2:]) == pointer_keys  # written after everything else
    for c in ("docs", "notes"):
        assert read_pointer(dst, c)[0] == read_pointer(src, c)[0]
        assert snapshot_state(dst, c, tmp_path / f"r-{c}") == snapshot_state(src, c, tmp_path / f"s-{c}")
    assert len(journal.read_text().splitlines()) == len(keys(src))
    again = mg.plan(src, dst, journal)  # everything verified: nothing left to copy
    assert again.missing == []
    assert len(again.journaled) == len(keys(src))


def test_an_interrupted_copy_has_no_pointer_and_resumes(
    src: LocalStore, dst: ObjectStore, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    p = mg.plan(src, dst, journal)
    seen: list[str] = []

    def crash_after_three(key: str, _size: int) -> None:
        seen.append(key)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mg.apply(src, dst, p, journal, progress=crash_after_three)
    assert [k for k in keys(dst) if k.endswith("pointer.txt")] == []  # readers see no collection yet
    assert len(keys(dst)) == 3
    resumed = mg.plan(src, dst, journal)
    assert len(resumed.journaled) == 3
    result = mg.apply(src, dst, resumed, journal)
    assert result.ok, result.to_json()
    assert len(result.skipped_journaled) == 3
    assert len(result.copied) == len(keys(src)) - 3
    assert keys(dst) == keys(src)


def test_conflicts_are_never_overwritten_and_hold_the_pointers(
    src: LocalStore, dst: ObjectStore, tmp_path: Path
) -> None:
    mine = "reports/reaper/20310101T000000000000Z.json"
    dst.put(mine, b'{"other": 1}')  # another size: a conflict in the plan
    args = ["migrate", "--from", src.url, "--to", dst.url, "--apply", "--yes", "--json"]
    res = CliRunner().invoke(app, [*args, "--journal", str(tmp_path / "j.jsonl")])
    assert res.exit_code == 2, res.output
    out = json.loads(res.stdout)
    assert mine in out["result"]["conflicts"]
    assert out["result"]["pointers_held"] is True
    assert dst.get(mine).body == b'{"other": 1}'
    assert not [k for k in keys(dst) if k.endswith("pointer.txt")]


def test_cli_dry_run_is_the_default(src: LocalStore, dst: ObjectStore, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["migrate", "--from", src.url, "--to", dst.url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["to_copy"] == len(keys(src))
    assert out["pointers"] == 2
    assert keys(dst) == {}
    res = CliRunner().invoke(app, ["migrate", "--from", src.url, "--to", dst.url, "--apply", "--yes"])
    assert res.exit_code == 0, res.output
    assert "2 pointer(s) written" in " ".join(res.output.split())


@pytest.mark.integration
def test_s3_presigned_urls_like_supabase_signed_urls(seaweed_s3: Any, fresh_bucket: Any) -> None:
    """S3Store.signed_url: a GET by anyone within the expiry, refused for a bad key or expiry."""
    import urllib.error
    import urllib.request

    from storekeeper.errors import InvalidName
    from storekeeper.stores.s3 import S3Store

    store = S3Store(fresh_bucket(seaweed_s3, "url"), client=seaweed_s3.client())
    store.put("snapshot/docs/000000000001-abcdefgh/manifest.json", b'{"x": 1}')
    url = store.signed_url("snapshot/docs/000000000001-abcdefgh/manifest.json", expires_in=60)
    assert "Signature=" in url  # SigV2 or SigV4, as the client is configured
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b'{"x": 1}'
    tampered = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m[1]) + 1}", url)  # signature no longer fits
    assert tampered != url
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered, timeout=10)
    assert err.value.code == 403
    with pytest.raises(InvalidName, match="expires_in"):
        store.signed_url("a", expires_in=8 * 86400)
    with pytest.raises(InvalidName):
        store.signed_url("../etc/passwd")


@pytest.mark.integration
def test_local_to_supabase_through_the_cli(src: LocalStore, supabase_env: Any, tmp_path: Path) -> None:
    """The Supabase Storage emulator over real HTTP (create-only writes decided in Postgres):
    the copy verifies, the pointers land last, and a reader of the destination sees the data."""
    from storekeeper.stores.supabase import SupabaseStore

    dst = SupabaseStore("sk-migrate")
    dst.create_bucket("sk-migrate")
    res = CliRunner().invoke(
        app, ["migrate", "--from", src.url, "--to", dst.url, "--apply", "--yes", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["result"]
    assert out["ok"] is True
    assert out["copied"] == len(keys(src))
    assert len(out["pointers_written"]) == 2
    assert keys(dst) == keys(src)
    assert snapshot_state(dst, "docs", tmp_path / "r") == snapshot_state(src, "docs", tmp_path / "s")
