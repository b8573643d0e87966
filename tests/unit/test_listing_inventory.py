"""Listing sources for planning: parallel listing (same keys, same order, request arithmetic) and
S3 Inventory reports (AWS's manifest + gzip CSV layout, URL-encoded keys, versions, bad input)."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from storekeeper import reaper
from storekeeper.errors import CorruptObject, StorekeeperError
from storekeeper.errors import ValidationError as InputError
from storekeeper.policies.model import parse_policies
from storekeeper.stores.base import RequestCounter
from storekeeper.stores.inventory import Inventory
from storekeeper.stores.listing import ParallelListing, SequentialListing, _ranges
from storekeeper.stores.local import LocalStore
from storekeeper.stores.s3 import S3Store

PAGE = 50
SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


@pytest.fixture
def s3() -> Iterator[S3Store]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="inv-src")
        yield S3Store("inv-src", client=client, counter=RequestCounter(), list_page_size=PAGE)


#: prefix -> objects in it: a range larger than a page, one exactly a page, empty-ish ones
LAYOUT = {"a/x/": 130, "a/y/": 50, "b/": 7, "c/z/": 1, "d/": 0}


def fill(store: S3Store) -> list[str]:
    keys = [f"{p}{i:04d}" for p, n in LAYOUT.items() for i in range(n)] + ["top-level", "a/direct"]
    for k in keys:
        store.put(k, b"x")
    return sorted(keys)


@pytest.mark.slow  # parallel listings over moto: >5 s here
def test_parallel_listing_returns_the_sequential_listing_with_full_pages(s3: S3Store) -> None:
    keys = fill(s3)
    seq = SequentialListing()
    assert [i.key for i in seq.list(s3, "")] == keys
    assert seq.stats.requests == seq.stats.sequential_minimum == math.ceil(len(keys) / PAGE)
    # "" splits into a/ (130 + 50 + 1 direct), b/ (7), c/ (1) and the object top-level: one request;
    # then each range is listed once in full pages, the last one partial: ceil(181/50) + 1 + 1
    parallel = ParallelListing(workers=4, min_parts=2)
    assert [i.key for i in parallel.list(s3, "")] == keys
    got = parallel.stats
    assert (got.ranges, got.split_requests, got.requests) == (3, 1, 1 + 4 + 1 + 1)
    assert got.objects == len(keys)
    # asked for more parts than there are: split level by level (each delimiter listing lists the
    # objects directly under its prefix, once): "" 1; a/, b/, c/ 3; a/x/ 3, a/y/ 1, c/z/ 1
    deeper = ParallelListing(workers=4, min_parts=8)
    assert [i.key for i in deeper.list(s3, "")] == keys
    assert (deeper.stats.split_requests, deeper.stats.requests) == (9, 9)


@pytest.mark.slow  # parallel listings over moto: >5 s here
def test_parallel_listing_of_a_flat_prefix_costs_the_sequential_minimum(s3: S3Store) -> None:
    for i in range(120):
        s3.put(f"flat/{i:04d}", b"x")
    s3.requests.reset()
    p = ParallelListing(workers=8)
    assert [i.key for i in p.list(s3, "flat/")] == [f"flat/{i:04d}" for i in range(120)]
    assert p.stats.requests == math.ceil(120 / PAGE)  # the delimiter listing is the listing


@pytest.mark.slow  # parallel listings over moto: >5 s here
def test_a_flat_root_is_not_split_past_a_bound_and_its_range_is_budgeted(s3: S3Store) -> None:
    """A root of many keys without '/' (millions, at scale; 400 here, pages of 50, a split bound of
    100 entries): the split's delimiter listing stops after the page that passes the bound, and the
    root is listed as one range through the caller's lister, which the memory bound stops. Before
    the bound, the delimiter listing read the whole root and no budget saw it."""
    from storekeeper.policies.access import Access
    from storekeeper.policies.budget import Budget
    from storekeeper.policies.views import ListingStop

    keys = sorted([f"k{i:05d}" for i in range(400)] + ["a/1", "a/2", "b/1"])
    for k in keys:
        s3.put(k, b"x")
    s3.requests.reset()
    p = ParallelListing(workers=4, min_parts=2)
    p.split_limit = 100
    assert [i.key for i in p.list(s3, "")] == keys
    got = p.stats
    assert got.split_requests == 3  # 50 + 50 entries are not past the bound, the third page is
    assert got.requests == got.split_requests + math.ceil(len(keys) / PAGE)
    assert got.ranges == 1
    assert any("not split" in n for n in got.notes)
    # under a memory bound the root's range stops there (the split read at most 3 pages of it)
    s3.requests.reset()
    budget = Budget(None, max_objects=120)
    held = ParallelListing(Access(100_000, 0).list, workers=4, min_parts=2, stop=ListingStop(budget))
    held.split_limit = 100
    got_keys = [i.key for i in held.list(s3, "")]
    assert got_keys == keys[:120]
    assert [r.stopped_at for r in held.listed] == [keys[119]]
    assert budget.ran_out == "memory"
    assert s3.requests.total() <= 3 + math.ceil(120 / PAGE)


@pytest.mark.slow  # parallel listings over moto: >5 s here
def test_many_small_prefixes_are_listed_in_ranges_of_full_pages(s3: S3Store) -> None:
    """30 prefixes of 20 keys (pages of 50): 4 ranges of consecutive prefixes, each one listing
    in full pages but its last, instead of one partial page per prefix; nothing listed twice, and
    a "folder" object named like a range's first part is kept (by the range before it)."""
    parts = [f"m/p{i:02d}/" for i in range(30)]
    extra = ["m/direct", "m/p07.x", "top", "m/p07/", "m/p00/"]
    keys = sorted([f"{p}{j:03d}" for p in parts for j in range(20)] + extra)
    for k in keys:
        s3.put(k, b"x")
    s3.requests.reset()
    p = ParallelListing(workers=4, min_parts=8)
    assert [i.key for i in p.list(s3, "")] == keys
    got = p.stats
    ranges = _ranges(parts, 4)
    assert len(ranges) == got.ranges == 4
    # each range's listing starts after its first part (the first: at the start) and pages through
    # what sorts up to the next range's first part, and the first key past it
    starts = ["", *[lo for lo, _ in ranges[1:]]]
    span = [
        sum(1 for k in keys if start < k and (hi is None or k <= hi)) + (hi is not None)
        for start, (_, hi) in zip(starts, ranges, strict=True)
    ]
    assert got.split_requests == 2  # "" -> m/ and top; m/ -> 30 prefixes and m/direct, m/p07.x
    assert got.requests == 2 + sum(math.ceil(n / PAGE) for n in span)
    assert got.requests < len(parts)
    assert got.sequential_minimum == math.ceil(len(keys) / PAGE)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    st.sampled_from(["%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+02:00",
                     "%a, %d %b %Y %H:%M:%S GMT", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
)  # fmt: skip
def test_fast_timestamps_parse_what_botocore_parses(when: datetime, fmt: str) -> None:
    """S3 clients parse response timestamps with `iso_timestamp` (dateutil was most of a listing
    page's CPU): the same instant as botocore's own parser for every format, aware or not alike."""
    from botocore.utils import parse_timestamp

    from storekeeper.stores.s3 import iso_timestamp

    text = when.strftime(fmt)
    ours, theirs = iso_timestamp(text), parse_timestamp(text)
    assert ours == theirs
    assert (ours.tzinfo is None) == (theirs.tzinfo is None)
    assert iso_timestamp(1_700_000_000) == parse_timestamp(1_700_000_000)


def test_s3_listings_parse_timestamps_with_the_fast_parser() -> None:
    from storekeeper.stores.s3 import make_client

    with mock_aws():
        client = make_client()
        client.create_bucket(Bucket="ts-src")
        store = S3Store("ts-src", client=client)
        store.put("k", b"x")
        (info,) = list(store.list(""))
    assert info.last_modified.tzinfo is UTC  # fromisoformat's; botocore's dateutil gives tzutc()
    assert abs((info.last_modified - datetime.now(UTC)).total_seconds()) < 600


def test_parallel_listing_on_the_local_store_is_one_pass(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "b")
    for k in ("x/1", "x/2", "y/z/3", "w"):
        store.put(k, b"1")
    p = ParallelListing(workers=4)
    assert [i.key for i in p.list(store, "")] == ["w", "x/1", "x/2", "y/z/3"]


# -- S3 Inventory -------------------------------------------------------------------------------


def _csv_gz(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return gzip.compress(buf.getvalue().encode())


def write_report(
    root: Path, files: list[list[list[str]]], *, fmt: str = "CSV", schema: str = SCHEMA, md5: bool = True
) -> Path:
    """An inventory in AWS's layout: <root>/inv-src/cfg/<date>/manifest.json, data/ beside the date."""
    base = root / "inv-src" / "cfg"
    (base / "data").mkdir(parents=True)
    entries = []
    for n, rows in enumerate(files):
        body = _csv_gz(rows)
        key = f"inventory/inv-src/cfg/data/{n:02d}.csv.gz"
        (base / "data" / f"{n:02d}.csv.gz").write_bytes(body)
        entry: dict[str, Any] = {"key": key, "size": len(body)}
        if md5:
            entry["MD5checksum"] = hashlib.md5(body, usedforsecurity=False).hexdigest()
        entries.append(entry)
    day = base / "2030-01-01T01-00Z"
    day.mkdir()
    manifest = {
        "sourceBucket": "inv-src",
        "destinationBucket": "arn:aws:s3:::inv-dest",
        "version": "2016-11-30",
        "creationTimestamp": "1893459600000",
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": entries,
    }
    (day / "manifest.json").write_text(json.dumps(manifest))
    return day / "manifest.json"


def row(key: str, *, size: int = 5, latest: bool = True, marker: bool = False, when: str = "") -> list[str]:
    when = when or "2029-06-01T00:00:00.000Z"
    return ["inv-src", quote_plus(key), "v1", str(latest).lower(), str(marker).lower(), str(size), when, "e1"]


def test_inventory_rows_decode_keys_and_skip_noncurrent_versions(tmp_path: Path) -> None:
    keys = ["docs/a b.txt", "docs/plus+sign", "docs/ünïcode/%41", "other/x"]
    report = write_report(
        tmp_path,
        [
            [row(k) for k in keys[:2]],
            [
                row(keys[2]),
                row(keys[3]),
                row("docs/old", latest=False, size=9),
                row("docs/gone", marker=True),
            ],
        ],
    )
    inv = Inventory(str(report))
    got = list(inv.rows("docs/"))
    assert [i.key for i in got] == keys[:3]
    assert got[0].size == 5
    assert got[0].etag == "e1"
    assert got[0].last_modified == datetime(2029, 6, 1, tzinfo=UTC)
    assert (inv.stats.noncurrent, inv.stats.noncurrent_bytes, inv.stats.delete_markers) == (1, 9, 1)
    assert inv.stats.files == 2


def test_inventory_data_file_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    report = write_report(tmp_path, [[row("k")]])
    data = tmp_path / "inv-src" / "cfg" / "data" / "00.csv.gz"
    data.write_bytes(_csv_gz([[*row("k")[:-1], "tampered"]]))
    with pytest.raises(CorruptObject, match="MD5checksum"):
        list(Inventory(str(report)).rows())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: write_report(r, [[row("k")]], fmt="Parquet"), "fileFormat"),
        (lambda r: write_report(r, [[row("k")]], schema="Bucket, Size"), "fileSchema"),
        (lambda r: r / "missing" / "manifest.json", "inventory"),
    ],
)
def test_bad_reports_are_clear_errors(tmp_path: Path, mutate: Any, field: str) -> None:
    with pytest.raises(InputError) as ei:
        Inventory(str(mutate(tmp_path)))
    assert field in str(ei.value)


FIELDS = ["sourceBucket", "fileFormat", "files", "fileSchema"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["sourceBucket", "fileFormat", "files", "fileSchema"]), st.text()
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_any_manifest_bytes_give_a_manifest_or_a_typed_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(raw)
    with contextlib.suppress(StorekeeperError):  # typed, names the field: anything else fails the test
        Inventory(str(path))


POLICY = """
stores:
  main: {}
protect: {object_labels: false}
policies:
  - {name: old, resource: object, store: main, prefix: docs/, filters: [{type: older-than, age: 1d}]}
"""


def test_reaper_plans_from_an_inventory_without_listing_and_cleanup_rechecks(
    s3: S3Store, tmp_path: Path
) -> None:
    from storekeeper.cleanup.executor import execute_task

    for k in ("docs/a", "docs/b", "docs/c"):
        s3.put(k, b"12345")
    etag_a = s3.head("docs/a").etag.strip('"')
    # the report is older than the bucket: docs/b was rewritten after it, docs/c deleted
    rows = [row("docs/a"), row("docs/b"), row("docs/c")]
    rows[0][-1] = etag_a
    report = write_report(tmp_path, [rows])
    s3.delete("docs/c")
    s3.requests.reset()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    rep = reaper.run(
        policies=parse_policies(POLICY),
        stores={"main": s3},
        now=now,
        write_report=False,
        inventory=str(report),
    )
    assert not rep.errors, rep.errors
    assert s3.requests.counts.get("list", 0) == 0  # planned without listing the bucket
    assert [li.source for li in rep.listings] == ["inventory"]
    planned = sorted(k for t in rep.tasks for k in t.keys)
    assert planned == ["docs/a", "docs/b", "docs/c"]
    outcomes = [
        execute_task(t, resolve_store=lambda b, n: s3, now=now + timedelta(seconds=1)) for t in rep.tasks
    ]
    deleted = sorted(k for o in outcomes for k in o.deleted)
    kept = {k: why for o in outcomes for k, why in o.skipped.items()}
    missing = sorted(k for o in outcomes for k in o.missing)
    assert deleted == ["docs/a"]  # the guard (etag from the report) still matched
    assert "changed after planning" in kept["docs/b"]  # a stale report never deletes a newer object
    assert missing == ["docs/c"]
