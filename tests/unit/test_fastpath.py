"""The planner's columnar fast path plans exactly what the general path plans.

Random inventories (keys under the pipeline's prefixes and elsewhere, URL-encoded characters,
young and old, with and without etags, some objects labelled protected in the store) and random
policy files (key/size/age filters the fast path evaluates, mixed with policies only the general
path can plan, caps, limits, protect lists, object labels on or off) are planned twice, once with
the fast path switched off: tasks, summaries, listed decisions and errors must be equal.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.errors import InvalidName, PreconditionFailed
from storekeeper.names import check_key, invalid_keys
from storekeeper.policies import fastpath
from storekeeper.policies.model import parse_policies
from storekeeper.policies.planner import MAX_LISTED, Plan, Planner
from storekeeper.protection import Protection, ProtectionConfig
from storekeeper.stores.inventory import _plain_cells
from storekeeper.stores.local import LocalStore
from tests.unit.test_listing_inventory import row, write_report

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

SEGMENTS = ["img", "a b", "x+y", "p%41", "docs", "ü", "cache", "v.png", "tmp"]
PIPELINE = [
    "snapshot/docs/latest/pointer.txt",
    "snapshot/docs/00000001-abcdef/manifest.json",
    "delta/docs/1893456000000-abcd.delta",
    "reaper-state/continuation-main.json",
    "collection/docs/config.json",
    "idempotency/plans/producer/0a1b.json",
    "idempotency/cleanup/2c3d.json",
]

keys_st = st.lists(
    st.one_of(
        st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join),
        st.sampled_from(PIPELINE),
    ),
    min_size=0,
    max_size=40,
    unique=True,
)


@st.composite
def objects(draw: Any) -> list[dict[str, Any]]:
    out = []
    for key in draw(keys_st):
        out.append(
            {
                "key": key,
                "size": draw(st.integers(0, 5000)),
                "age": timedelta(minutes=draw(st.integers(0, 14 * 24 * 60))),
                "etag": draw(st.sampled_from(["", "e1", "0f3a"])),
                "labelled": draw(st.integers(0, 9)) == 0,
            }
        )
    return out


columnar_filter = st.one_of(
    st.sampled_from(["30m", "1h", "2d", "5d", "5000w"]).map(lambda a: {"type": "older-than", "age": a}),
    st.tuples(st.sampled_from([None, 0, 100, 2500]), st.sampled_from([None, 10, 3000]))
    .filter(lambda t: t != (None, None))
    .map(
        lambda t: {
            "type": "size",
            **({"gt": t[0]} if t[0] is not None else {}),
            **({"lt": t[1]} if t[1] else {}),
        }
    ),
    st.lists(st.sampled_from(["img/", "a b", "x+y/", "", "snapshot/", "delta/"]), max_size=2).map(
        lambda v: {"type": "name-prefix", "value": v}
    ),
    st.sampled_from(["*.png", "img/*", "*ü*", "[ab]*", "*"]).map(
        lambda p: {"type": "name-glob", "pattern": p}
    ),
    st.sampled_from(["^img", "png$", "/", "ü"]).map(lambda p: {"type": "name-regex", "pattern": p}),
)
general_only = st.sampled_from(
    [{"type": "label", "key": "team"}, {"type": "ttl"}, {"type": "label", "key": "keep", "absent": True}]
)


@st.composite
def policy_files(draw: Any) -> dict[str, Any]:
    policies = []
    for n in range(draw(st.integers(1, 3))):
        filters = draw(st.lists(columnar_filter, max_size=3))
        if draw(st.integers(0, 4)) == 0:
            filters.append(draw(general_only))
        policy: dict[str, Any] = {
            "name": f"p{n}",
            "resource": "object",
            "store": "main",
            "prefix": draw(st.sampled_from(["", "img/", "snapshot/", "delta/", "a b/"])),
            "filters": filters,
        }
        limit = draw(st.sampled_from([None, 0, 1, 3, 50]))
        if limit is not None:
            policy["limits"] = {"max_deletions": limit}
        policies.append(policy)
    return {
        "defaults": {"max_deletions": draw(st.sampled_from([0, 2, 7, 1000])), "grace": "1h"},
        "protect": {
            "object_labels": draw(st.booleans()),
            "names": draw(
                st.lists(st.sampled_from(["img/a*", "*.png", "tmp", "docs/[xy]*", "ü"]), max_size=2)
            ),
        },
        "policies": policies,
    }


def _world(root: Path, objs: list[dict[str, Any]]) -> tuple[LocalStore, Path]:
    store = LocalStore(root / "inv-src")
    for o in objs:
        if o["labelled"]:  # the store's copy says protect: only a HEAD (object labels on) sees it
            with contextlib.suppress(PreconditionFailed):  # `a` and `a/b` cannot both be files
                store.put(o["key"], b"x", metadata={"storekeeper-protect": "true"})
    rows = [
        [
            *row(o["key"], size=o["size"], when=(NOW - o["age"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))[:-1],
            o["etag"],
        ]
        for o in objs
    ]
    half = len(rows) // 2
    manifest = write_report(root / "reports", [rows[half:], rows[:half]])  # files not in key order
    return store, manifest


def _plan(spec: dict[str, Any], store: LocalStore, manifest: Path) -> Plan:
    loaded = parse_policies(yaml.safe_dump(spec), "<test>")
    planner = Planner(loaded.spec, {"main": store}, now=NOW, inventory=str(manifest))
    plan = planner.plan()
    plan.listings = []  # timings
    return plan


def _both(
    spec: dict[str, Any], store: LocalStore, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Plan, Plan]:
    fast = _plan(spec, store, manifest)
    with monkeypatch.context() as m:
        m.setattr(fastpath, "ENABLED", False)
        general = _plan(spec, store, manifest)
    return fast, general


def _same(fast: Plan, general: Plan) -> None:
    assert fast.tasks == general.tasks
    assert fast.summaries == general.summaries
    assert fast.decisions == general.decisions
    assert fast.errors == general.errors


@pytest.mark.slow  # hypothesis, two planners per example: >5 s here
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(objs=objects(), spec=policy_files())
def test_the_fast_path_plans_what_the_general_path_plans(
    objs: list[dict[str, Any]], spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store, manifest = _world(Path(tmp), objs)
        fast, general = _both(spec, store, manifest, monkeypatch)
    _same(fast, general)


def test_past_the_listing_bound_both_paths_agree_and_the_fast_path_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More decisions of each verdict than a report lists; a second policy skips what the first
    planned; the run cap defers the rest; snapshot keys are protected."""
    n = MAX_LISTED + 300
    objs = [
        {"key": f"img/{i:05d}.png", "size": i, "age": timedelta(days=3), "etag": "e", "labelled": False}
        for i in range(n)
    ] + [
        {"key": f"snapshot/docs/{i:08d}-abc/manifest.json", "size": 1, "age": timedelta(days=3), "etag": "",
         "labelled": False}
        for i in range(MAX_LISTED + 2)
    ]  # fmt: skip
    spec = {
        "defaults": {"max_deletions": n - 50},
        "protect": {"object_labels": False},
        "policies": [
            {"name": "first", "resource": "object", "store": "main", "prefix": "img/",
             "filters": [{"type": "older-than", "age": "1d"}], "limits": {"max_deletions": n - 100}},
            {"name": "second", "resource": "object", "store": "main",
             "filters": [{"type": "size", "lt": 1_000_000}]},
        ],
    }  # fmt: skip
    store, manifest = _world(tmp_path, objs)
    loaded = parse_policies(yaml.safe_dump(spec), "<test>")
    planner = Planner(loaded.spec, {"main": store}, now=NOW, inventory=str(manifest))
    assert fastpath.plan_columnar(planner, loaded.spec.policies[0]) is not None  # the fast path plans it
    fast, general = _both(spec, store, manifest, monkeypatch)
    _same(fast, general)
    first, second = fast.summaries
    assert (first.planned, first.deferred) == (n - 100, 100)
    assert (second.skipped, second.protected, second.planned, second.deferred) == (
        n - 100,
        MAX_LISTED + 2,
        50,
        50,
    )
    assert sum(len(t.keys) for t in fast.tasks) == n - 50
    deferred = {d.policy: d.reason for d in fast.decisions if d.verdict == "deferred"}
    assert deferred["first"].startswith(f"policy limit of {n - 100} deletions reached")
    assert deferred["second"].startswith(f"run cap of {n - 50} deletions reached")


@pytest.mark.slow  # hypothesis: >5 s here
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(
            st.sampled_from([*SEGMENTS, "snapshot", "delta", "reaper-state", "idempotency", "latest"]),
            min_size=1,
            max_size=4,
        ).map("/".join),
        st.sampled_from(PIPELINE),
    ),
    st.lists(
        st.sampled_from(["img/a*", "*.png", "tmp", "docs/[xy]*", "ü", "snapshot/*", "[", "a b"]), max_size=3
    ),
)
def test_key_may_be_kept_is_a_necessary_condition_of_protection(key: str, globs: list[str]) -> None:
    """The fast path asks `Protection.reason` only where `key_may_be_kept` says so: whenever the
    reason is not None, it must say so (with and without the grace floor)."""
    with tempfile.TemporaryDirectory() as tmp:
        for grace in (None, timedelta(hours=1)):
            cfg = ProtectionConfig(protect=tuple(globs), grace=grace)
            protection = Protection(LocalStore(Path(tmp) / "b"), cfg, NOW)
            if protection.reason("key", key, created=NOW - timedelta(days=1)) is not None:
                assert protection.key_may_be_kept()(key)


@pytest.mark.slow  # hypothesis: >5 s here
@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(st.text(alphabet='ab,"\n\r x%', max_size=4), min_size=3, max_size=3), max_size=5),
    quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
    raw=st.text(alphabet='ab,"\n\r', max_size=30),
)
def test_plain_inventory_cells_are_what_csv_reads(rows: list[list[str]], quoting: int, raw: str) -> None:
    """The inventory splits a plain CSV without a parser; whenever it does, the cells are exactly
    what `csv.reader` reads (AWS's every-field-quoted form, a minimal writer's, or any text)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", quoting=quoting).writerows(rows)
    for text in (buf.getvalue(), raw):
        cells = _plain_cells(text, 3)
        if cells is not None:
            parsed = list(csv.reader(io.StringIO(text, newline="")))
            assert all(len(r) == 3 for r in parsed)
            assert cells == [c for r in parsed for c in r]
    if not any(ch in c for r in rows for c in r for ch in ',"\n\r'):
        assert _plain_cells(buf.getvalue(), 3) is not None  # AWS's shape is read without the parser


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="a/.\\\n\x00 é\u2028\x7f", max_size=8), max_size=6))
def test_bulk_key_checks_refuse_exactly_what_check_key_refuses(keys: list[str]) -> None:
    """An inventory's keys are checked in bulk (one scan of their joined text): the same keys are
    refused as by `check_key` one by one."""
    expected = []
    for i, k in enumerate(keys):
        try:
            check_key(k)
        except InvalidName:
            expected.append(i)
    assert [i for i, _ in invalid_keys(keys)] == expected
