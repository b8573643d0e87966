"""The compactor's own retention: superseded versions beyond the newest N and past the grace floor go
after each publish; the live one, newer (maybe mid-publish) ones, young and labelled ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from storekeeper.compaction import compact
from storekeeper.layout import manifest_key
from storekeeper.retention import retire
from storekeeper.snapshots import SnapshotCache, read_pointer
from storekeeper.stores.local import LocalStore
from tests.compaction_support import assert_same_state, delta, model_state, produce, snapshot_state, vec

DIM = 4


def versions(store: LocalStore, c: str) -> list[str]:
    return sorted({k.key.split("/")[2] for k in store.list(f"snapshot/{c}/") if "/latest/" not in k.key})


def publish_n(store: LocalStore, cache: SnapshotCache, n: int, **kw: object) -> list:
    made = []
    for i in range(n):
        d = delta("docs", {f"r{i}": vec(i, DIM)})
        produce(store, d)
        made.append(d)
        r = compact(store, "docs", cache=cache, **kw)  # type: ignore[arg-type]
        assert r.status == "published"
    return made


def test_keeps_live_and_newest_n_superseded_and_the_data_is_intact(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "c")
    made = publish_n(store, cache, 6, keep_versions=2, retention_grace_s=0)
    live, _ = read_pointer(store, "docs")
    left = versions(store, "docs")
    assert len(left) == 3
    assert left[-1] == live
    assert_same_state(snapshot_state(store, "docs", tmp_path / "rc"), model_state(made))


def test_the_grace_floor_keeps_young_versions_until_they_age(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "c")
    publish_n(store, cache, 4)  # no retention while publishing
    assert len(versions(store, "docs")) == 4
    now = datetime.now(UTC)
    young = retire(store, "docs", keep=1, now=now)  # the policies file's grace: 1 h
    assert young.removed == []
    assert len(young.kept) == 2
    assert all("grace" in why for why in young.kept.values())
    later = retire(store, "docs", keep=1, now=now + timedelta(hours=2))
    assert len(later.removed) == 2
    assert len(versions(store, "docs")) == 2


def test_protected_and_newer_than_live_versions_stay(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "c")
    publish_n(store, cache, 3)
    old = versions(store, "docs")
    labelled = old[0]
    key = manifest_key("docs", labelled)
    store.put(key, store.get(key).body, metadata={"storekeeper-protect": "true"})
    # a version newer than live with no pointer to it yet (a compactor mid-publish)
    store.put("snapshot/docs/999999999999-zzzzzzzz/chroma.tar", b"partial")
    later = datetime.now(UTC) + timedelta(days=1)
    out = retire(store, "docs", keep=0, now=later)
    assert out.removed == [old[1]]
    assert "storekeeper-protect" in out.kept[labelled]
    left = versions(store, "docs")
    assert labelled in left
    assert "999999999999-zzzzzzzz" in left
    assert read_pointer(store, "docs")[0] == old[2]


def test_bytes_freed_counts_the_removed_deltas_and_the_retired_version(
    store: LocalStore, tmp_path: Path
) -> None:
    cache = SnapshotCache(tmp_path / "c")
    publish_n(store, cache, 2)  # v1, v2: nothing retired yet
    oldest = versions(store, "docs")[0]
    version_bytes = sum(o.size for o in store.list(f"snapshot/docs/{oldest}/"))
    produce(store, delta("docs", {"last": vec(9, DIM)}))
    delta_bytes = sum(o.size for o in store.list("delta/docs/"))
    r = compact(store, "docs", cache=cache, keep_versions=1, retention_grace_s=0)
    assert r.retired == [oldest]
    assert version_bytes > 0
    assert delta_bytes > 0
    assert r.bytes_freed == version_bytes + delta_bytes
    assert r.phase_seconds.keys() == {"fetch", "apply", "publish", "remove"}
