"""Protection checks on the local store: live snapshot, unapplied deltas, labels, protect lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from storekeeper.layout import pointer_key
from storekeeper.policies.protect import load_protection_config
from storekeeper.protection import Protection, ProtectionConfig, label_reason
from storekeeper.stores.local import LocalStore
from tests.cleanup_support import put_version

NOW = datetime(2030, 1, 1, tzinfo=UTC)
V1 = "000000000001-aaaaaaaa"
V2 = "000000000002-bbbbbbbb"
D_APPLIED = "1700000000000-applied1"
D_PENDING = "1700000000001-pending1"


def labelled(p: Protection, store: LocalStore, key: str) -> str | None:
    """The protection decision about `key` with its metadata labels read, as the executor asks it."""
    return p.reason("key", key, labels=store.head(key).metadata)


def publish(store: LocalStore, c: str, version: str, applied: list[str]) -> None:
    put_version(
        store, c, version, created_at=NOW, archive="db.tar", body=b"x", deltas=applied, applied=applied
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "bucket-a")
    publish(s, "docs", V1, [])
    publish(s, "docs", V2, [D_APPLIED])
    s.put(f"delta/docs/{D_APPLIED}.delta", b"d")
    s.put(f"delta/docs/{D_PENDING}.delta", b"d")
    return s


def test_live_pointer_and_live_snapshot_are_protected_old_version_is_not(store: LocalStore) -> None:
    p = Protection(store, now=NOW)
    assert "live pointer" in (p.reason("key", pointer_key("docs")) or "")
    assert "live snapshot" in (p.reason("key", f"snapshot/docs/{V2}/db.tar") or "")
    assert "live snapshot" in (p.reason("key", f"snapshot/docs/{V2}/manifest.json") or "")
    assert p.reason("key", f"snapshot/docs/{V1}/db.tar") is None
    assert p.live("docs").version == V2


def test_unapplied_delta_protected_applied_delta_not(store: LocalStore) -> None:
    p = Protection(store, now=NOW)
    assert "not applied" in (p.reason("key", f"delta/docs/{D_PENDING}.delta") or "")
    assert p.reason("key", f"delta/docs/{D_APPLIED}.delta") is None


def test_without_pointer_every_delta_is_unapplied(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "bucket-b")
    s.put(f"delta/new/{D_APPLIED}.delta", b"d")
    reason = Protection(s, now=NOW).reason("key", f"delta/new/{D_APPLIED}.delta")
    assert reason is not None
    assert "no snapshot yet" in reason


def test_broken_pointer_protects_whole_collection(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "bucket-c")
    s.put(pointer_key("docs"), f"snapshot/docs/{V1}/".encode())  # manifest missing
    p = Protection(s, now=NOW)
    assert "live manifest unreadable" in (p.reason("key", f"snapshot/docs/{V2}/db.tar") or "")
    assert "live manifest unreadable" in (p.reason("key", f"delta/docs/{D_APPLIED}.delta") or "")
    s.put(pointer_key("other"), b"garbage")
    assert "pointer of 'other' unreadable" in (p.reason("key", "snapshot/other/x/db.tar") or "")


def test_cache_is_per_instance_and_forget_rereads(store: LocalStore) -> None:
    p = Protection(store, now=NOW)
    assert p.reason("key", f"snapshot/docs/{V1}/db.tar") is None
    store.requests.reset()
    p.reason("key", f"snapshot/docs/{V1}/manifest.json")
    assert store.requests.total() == 0  # cached
    store.put(pointer_key("docs"), f"snapshot/docs/{V1}/".encode())
    p.forget("docs")
    assert p.reason("key", f"snapshot/docs/{V1}/db.tar") is not None


def test_object_metadata_labels(store: LocalStore) -> None:
    store.put("images/a.png", b"a", metadata={"storekeeper-protect": "true"})
    store.put("images/b.png", b"b", metadata={"protect-until": (NOW + timedelta(days=1)).isoformat()})
    store.put("images/c.png", b"c", metadata={"protect-until": (NOW - timedelta(days=1)).isoformat()})
    store.put("images/d.png", b"d", metadata={"storekeeper-protect": "false"})
    p = Protection(store, now=NOW)
    assert "storekeeper-protect=true" in (labelled(p, store, "images/a.png") or "")
    assert "future" in (labelled(p, store, "images/b.png") or "")
    assert labelled(p, store, "images/c.png") is None
    assert labelled(p, store, "images/d.png") is None


def test_policy_file_labels_any_value_and_exact_value(store: LocalStore) -> None:
    store.put("k/keep.bin", b"a", metadata={"keep": "whatever"})
    store.put("k/shared.bin", b"a", metadata={"shared": "true"})
    store.put("k/notshared.bin", b"a", metadata={"shared": "no"})
    p = Protection(store, now=NOW)
    assert "keep=whatever" in (labelled(p, store, "k/keep.bin") or "")
    assert labelled(p, store, "k/shared.bin") is not None
    assert labelled(p, store, "k/notshared.bin") is None


def test_from_protect_section() -> None:
    # the shape of policies.model.Protect (duck-typed: protection must not import the policies package)
    section = SimpleNamespace(
        labels={"team": "infra"}, names=["prod-*"], protect_until_label="hold-until", object_labels=False
    )
    cfg = ProtectionConfig.from_protect(section)
    assert "prod-*" in cfg.protect
    assert cfg.labels == {"team": "infra"}
    assert "hold-until" in cfg.until_keys
    assert cfg.check_object_labels is False
    assert label_reason({"hold-until": "2031-01-01T00:00:00Z"}, cfg, NOW) is not None
    assert label_reason({"team": "infra"}, cfg, NOW) is not None


def test_protect_list_exact_and_glob(store: LocalStore) -> None:
    p = Protection(store, ProtectionConfig(protect=("keep/*", "exact.txt", "shared-*")), now=NOW)
    assert p.reason("key", "keep/x/y") is not None
    assert p.reason("key", "exact.txt") is not None
    assert p.reason("key", "exact.txt.bak") is None
    assert p.bucket_reason("shared-session") is not None


def test_bucket_labels_and_protect_until(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "main")
    s.create_bucket("tagged")
    s.set_bucket_labels("tagged", {"storekeeper:protect": "keep"})
    s.create_bucket("until")
    s.set_bucket_labels("until", {"protect-until": "not a date"})
    s.create_bucket("plain")
    p = Protection(s, now=NOW)
    assert "storekeeper:protect=keep" in (p.bucket_reason("tagged") or "")
    assert "not an ISO timestamp" in (p.bucket_reason("until") or "")
    assert p.bucket_reason("plain") is None


def test_protect_list_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_PROTECT", "a-*, b ,")
    cfg = ProtectionConfig.from_env(extra=["c"])
    assert cfg.protect == ("a-*", "b", "c")


def test_label_reason_naive_timestamp_is_utc() -> None:
    assert label_reason({"protect-until": "2030-01-02T00:00:00"}, ProtectionConfig(), NOW) is not None
    assert label_reason({"protect-until": "2029-12-31T00:00:00Z"}, ProtectionConfig(), NOW) is None


def test_versions_newer_than_live_or_without_pointer_are_protected(store: LocalStore, tmp_path: Path) -> None:
    """A version being published (archive written, pointer not yet moved) is never deletable."""
    v3 = "000000000003-cccccccc"
    store.put(f"snapshot/docs/{v3}/db.tar", b"half-published")
    p = Protection(store, now=NOW)
    assert "newer than the live" in (p.reason("key", f"snapshot/docs/{v3}/db.tar") or "")
    assert p.reason("key", f"snapshot/docs/{V1}/db.tar") is None

    fresh = LocalStore(tmp_path / "bucket-b")
    fresh.put(f"snapshot/new/{V1}/db.tar", b"first version, pointer not written yet")
    why = Protection(fresh, now=NOW).reason("key", f"snapshot/new/{V1}/db.tar")
    assert "no published pointer" in (why or "")


def test_executor_default_protection_is_the_policies_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name the policies file protects is protected in the executor too, without being passed in."""
    policies = tmp_path / "policies.yaml"
    policies.write_text("protect:\n  names: ['reports/keep-me.json', 'golden-*']\npolicies: []\n")
    monkeypatch.setenv("REAPER_POLICIES", str(policies))
    monkeypatch.delenv("STOREKEEPER_PROTECT", raising=False)
    cfg = load_protection_config()
    store = LocalStore(tmp_path / "bucket-c")
    p = Protection(store, cfg, now=NOW)
    assert p.reason("key", "reports/keep-me.json") is not None
    assert p.bucket_reason("golden-set", labels={}) is not None
    assert p.reason("key", "reports/other.json") is None
