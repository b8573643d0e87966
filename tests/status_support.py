"""A store `storekeeper status` can show: two collections compacted by the real compactor and
four real reaper runs one day apart (tests/unit/test_status.py, tests/e2e/test_status_chromium.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from storekeeper import reaper
from storekeeper.compaction import compact
from storekeeper.policies import parse_policies
from storekeeper.snapshots import SnapshotCache
from storekeeper.stores.local import LocalStore
from tests.compaction_support import delta, produce, vec

POLICIES = """
stores:
  main:
    capacity: {cap}
    watermarks: {{high: 0.8, low: 0.6, hard: 0.9}}
policies:
  - name: snapshot-retention
    resource: snapshot_version
    store: main
    filters: [{{type: keep-newest, count: 5}}]
"""


def status_world(tmp_path: Path, capacity: str = "40MB") -> tuple[LocalStore, Path, datetime]:
    """Two collections (docs: 3 versions, 12 records; notes: 1 version, 4 records, 1 pending delta)
    and four reaper runs one day apart while the store grows; -> (store, policies file, first run)."""
    store = LocalStore(tmp_path / "store")
    cache = SnapshotCache(tmp_path / "cache")
    pol = tmp_path / "policies.yaml"
    pol.write_text(POLICIES.format(cap=capacity))
    loaded = parse_policies(pol.read_text(), str(pol))
    start = datetime.now(UTC) - timedelta(days=4)
    for day in range(4):
        if day < 3:
            produce(store, delta("docs", {f"d{day}-{i}": vec(day * 10 + i, 8) for i in range(4)}))
            compact(store, "docs", cache=cache)
        if day == 0:
            produce(store, delta("notes", {f"n{i}": vec(100 + i, 8) for i in range(4)}))
            compact(store, "notes", cache=cache)
        reaper.run(policies=loaded, store_url=store.url, apply=False, now=start + timedelta(days=day))
    produce(store, delta("notes", {"late": vec(999, 8)}))  # pending, not compacted
    return store, pol, start
