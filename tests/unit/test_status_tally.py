"""The status measure at scale: summed while listing (`status.UsageSum`) instead of kept as a
listing, from a listing's columns, and carried across the runs of a budgeted pass.

The oracle is computed here from the full listing and the live manifest, independently of
`storekeeper.status`: bytes and objects, and per collection its versions, pointer and deltas."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper import reaper, status
from storekeeper.layout import continuation_key
from storekeeper.models.reports import ReaperReport
from storekeeper.policies import budget as passes
from storekeeper.policies import parse_policies
from storekeeper.policies.budget import Budget
from storekeeper.snapshots import resolve
from storekeeper.stores.listing import ObjectTable
from storekeeper.stores.local import LocalStore
from tests.unit.reaper_world import NOW, delta_id, local_store, put_aged, version
from tests.unit.test_reaper_budget import ITEM_POLICIES, build

#: extra objects: (where, n, size) -> a key of that kind
KINDS = ["delta/docs/", "delta/other/", "snapshot/docs/", "snapshot/new/", "img/", "zz/"]
extra_objects = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 10**6), st.integers(0, 3000)), max_size=25
)


def key_of(where: str, n: int) -> str:
    if where.startswith("delta/"):
        return f"{where}{delta_id(n)}.delta"
    if where.startswith("snapshot/"):
        return f"{where}{version(n % 4)}/part-{n}"
    return f"{where}{n:07d}.bin"


def world(tmp: Path, extra: list[tuple[str, int, int]]) -> LocalStore:
    store = local_store(tmp)
    build(store, objects=40)
    for where, n, size in extra:
        put_aged(store, key_of(where, n), size, timedelta(hours=n % 500))
    return store


def oracle(store: LocalStore) -> dict[str, Any]:
    """The figures straight from a full listing and each live manifest."""
    listing = list(store.list(""))
    out: dict[str, Any] = {"bytes": sum(i.size for i in listing), "objects": len(listing), "collections": {}}
    cols: dict[str, Any] = out["collections"]
    for i in listing:
        parts = i.key.split("/")
        if parts[0] == "snapshot" and len(parts) >= 4 and parts[2] != "latest":
            c = cols.setdefault(parts[1], {"versions": {}, "deltas": []})
            v = c["versions"].setdefault(parts[2], [0, 0])
            v[0] += i.size
            v[1] += 1
        elif parts[0] == "snapshot" and parts[2:] == ["latest", "pointer.txt"]:
            cols.setdefault(parts[1], {"versions": {}, "deltas": []})["pointer"] = i.last_modified
        elif parts[0] == "delta" and len(parts) == 3:
            cols.setdefault(parts[1], {"versions": {}, "deltas": []})["deltas"].append(parts[2][:-6])
    for c, got in cols.items():
        pub = resolve(store, c) if "pointer" in got else None
        applied = set(pub.manifest.applied) | set(pub.manifest.deltas) if pub else set()
        got["pending"] = sorted(d for d in got["deltas"] if d not in applied)
        got["applied"] = len(got["deltas"]) - len(got["pending"])
    return out


def figures(buckets: Any, collections: Any) -> dict[str, Any]:
    """The same figures as a measurement states them."""
    (b,) = buckets
    cols = {}
    for c in collections:
        cols[c.collection] = {
            "versions": {h.version: [h.bytes, h.objects] for h in c.history},
            "versions_bytes": c.versions_bytes,
            "pointer": c.pointer_updated,
            "pending": c.pending_deltas,
            "applied": c.applied_deltas_present,
            "oldest_age": c.oldest_pending_age_s,
        }
    return {"bytes": b.bytes, "objects": b.objects, "collections": cols}


def expected(o: dict[str, Any]) -> dict[str, Any]:
    cols = {}
    for c, got in o["collections"].items():
        pending = got["pending"]
        oldest = status._delta_time(pending[0]) if pending else None
        cols[c] = {
            "versions": got["versions"],
            "versions_bytes": sum(v[0] for v in got["versions"].values()),
            "pointer": got.get("pointer"),
            "pending": len(pending),
            "applied": got["applied"],
            "oldest_age": (NOW - oldest).total_seconds() if oldest else None,
        }
    return {"bytes": o["bytes"], "objects": o["objects"], "collections": cols}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=extra_objects, cuts=st.lists(st.floats(0, 1), max_size=6))
def test_the_tally_of_any_split_of_a_listing_is_the_measure_of_the_whole(
    tmp_path_factory: pytest.TempPathFactory, extra: list[tuple[str, int, int]], cuts: list[float]
) -> None:
    store = world(tmp_path_factory.mktemp("tally"), extra)
    want = expected(oracle(store))
    listing = list(store.list(""))
    table = ObjectTable.of(listing)
    # the key-ordered listing split anywhere into segments (a pass's runs), each summed from columns
    at = sorted({round(c * len(listing)) for c in cuts} | {0, len(listing)})
    parts = [
        status.UsageSum.of_table(ObjectTable.of(listing[lo:hi])).settle(store, partial=True)
        for lo, hi in itertools.pairwise(at)
    ]
    merged = parts[0]
    for p in parts[1:]:
        merged = status.merge(merged, p)
    # a tally survives the continuation's JSON
    merged = type(merged).model_validate_json(merged.model_dump_json())
    whole_columns = status.UsageSum.of_table(table).settle(store)
    for tally in (merged, whole_columns):
        got = figures(
            [status.bucket_status("main", store, None, tally)],
            status.collection_status(store, tally, now=NOW),
        )
        assert got == want
    # and the listing path (what `storekeeper status` measures without a planner) agrees
    loaded = parse_policies(ITEM_POLICIES)
    m = status.measure(loaded, {"main": store}, now=NOW)
    assert figures(m.buckets, m.collections) == want


def run_measured(store: LocalStore, home: Path, budget: Budget | None) -> ReaperReport:
    return reaper.run(
        policies=parse_policies(ITEM_POLICIES),
        stores={"main": store},
        store_url=f"file://{home}",
        apply=False,
        now=NOW,
        budget=budget,
    )


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=5, max_value=40))
def test_a_pass_spanning_runs_measures_once_it_completes_from_the_usage_it_carried(
    tmp_path_factory: pytest.TempPathFactory, n: int
) -> None:
    """Runs held to `n` objects each: none measures but the one that completes the pass, and its
    measurement is the whole bucket's (reports go to another store, so the bucket does not change)."""
    tmp = tmp_path_factory.mktemp("pass")
    store = world(tmp, [("delta/other/", 7, 10), ("snapshot/new/", 3, 99)])
    want = expected(oracle(store))
    reports = []
    for _ in range(100):
        r = run_measured(store, tmp / "home", Budget(None, max_objects=n))
        reports.append(r)
        assert r.budget is not None
        if r.budget.pass_complete:
            break
        assert r.status is None
        assert any("usage is carried" in note for note in r.budget.notes)
        stored = passes.parse(LocalStore(tmp / "home").get(continuation_key("dry-run")).body)
        assert stored.usage is not None
        assert "main" in stored.usage
    assert len(reports) > 1
    last = reports[-1]
    assert last.status is not None
    assert figures(last.status.buckets, last.status.collections) == want


def test_an_older_continuation_without_usage_is_read_and_its_pass_says_it_is_not_measured(
    tmp_path: Path,
) -> None:
    store = world(tmp_path, [])
    home = LocalStore(tmp_path / "home")
    first = run_measured(store, tmp_path / "home", Budget(None, max_objects=30))
    assert first.budget is not None
    assert not first.budget.pass_complete
    key = continuation_key("dry-run")
    old = json.loads(home.get(key).body)
    del old["usage"]  # as a version before the carried usage wrote it
    home.put(key, json.dumps(old).encode())
    reports = [run_measured(store, tmp_path / "home", Budget(None, max_objects=30)) for _ in range(20)]
    done = next(r for r in reports if r.budget is not None and r.budget.pass_complete)
    assert done.budget is not None
    assert done.budget.run_in_pass > 1  # the old continuation was resumed
    assert done.status is None
    assert any("not carried" in note for note in done.budget.notes)
    # a malformed usage is refused naming the field, and the pass starts over
    old["usage"] = {"main": {"objects": -1}}
    with pytest.raises(ValueError, match=r"field usage\.main\.objects"):
        passes.parse(json.dumps(old).encode())
