"""LocalStore listing: a lazy walk in binary key order that reads only what it yields.

The cleanup executor re-checks each 1,000-key task with a listing from `start_after`
that stops early; that must not cost a scan and a stat of every object in the bucket.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.errors import ValidationError
from storekeeper.names import check_key, check_prefix
from storekeeper.stores import local
from storekeeper.stores.local import LocalStore


def _write(store: LocalStore, keys: list[str]) -> None:
    """Objects written straight into the bucket dir (the backend's documented layout): fast setup."""
    for d in {(store.path / k).parent for k in keys}:
        d.mkdir(parents=True, exist_ok=True)
    for k in keys:
        with open(store.path / k, "wb") as fh:
            fh.write(b"x")


class _Counts:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scans: list[str] = []
        self.stats = 0
        real_scandir, real_stat = os.scandir, local._entry_stat

        def scandir(path: str | Path) -> object:
            self.scans.append(str(path))
            return real_scandir(path)

        def entry_stat(e: os.DirEntry[str]) -> os.stat_result:
            self.stats += 1
            return real_stat(e)

        monkeypatch.setattr(local.os, "scandir", scandir)
        monkeypatch.setattr(local, "_entry_stat", entry_stat)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, list[str]]:
    store = LocalStore(tmp_path_factory.mktemp("lazy") / "bucket")
    keys = [f"data/g{g:02d}/obj-{i:05d}" for g in range(20) for i in range(1000)]  # 20,000
    keys += [f"flat/obj-{i:05d}" for i in range(2000)]
    _write(store, keys)
    return store, sorted(keys)


@pytest.mark.slow  # the 22,000-object world: >5 s here
def test_start_after_near_the_end_reads_only_the_last_directory(
    big: tuple[LocalStore, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, keys = big
    counts = _Counts(monkeypatch)
    got = [o.key for o in store.list("data/", start_after="data/g19/obj-00990")]
    assert got == [k for k in keys if k.startswith("data/") and k > "data/g19/obj-00990"]
    assert len(got) == 9
    assert counts.stats == 9  # only the objects yielded, not 20,000
    assert [Path(p).name for p in counts.scans] == ["data", "g19"]  # not the 19 other groups


@pytest.mark.slow  # the 22,000-object world: >5 s here
def test_a_listing_that_stops_early_stats_only_what_it_yielded(
    big: tuple[LocalStore, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, keys = big
    counts = _Counts(monkeypatch)
    first = [o.key for o in islice(store.list("data/", start_after="data/g03/obj-00500"), 1000)]
    assert first == [k for k in keys if k > "data/g03/obj-00500"][:1000]
    assert counts.stats <= 1001  # a generator may have stat'ed the one it was about to yield
    assert [Path(p).name for p in counts.scans] == ["data", "g03", "g04"]
    # a flat directory is read once (unavoidable), but only the yielded objects are stat'ed
    counts.stats, counts.scans = 0, []
    tail = [o.key for o in store.list("flat/", start_after="flat/obj-01995")]
    assert tail == [f"flat/obj-{i:05d}" for i in range(1996, 2000)]
    assert counts.stats == 4


@pytest.mark.slow  # the 22,000-object world: >5 s here
def test_full_listing_still_matches_every_key_with_sizes(big: tuple[LocalStore, list[str]]) -> None:
    store, keys = big
    infos = list(store.list())
    assert [o.key for o in infos] == keys
    assert {o.size for o in infos} == {1}


# -- exact semantics against a model: binary key order, partial-segment prefixes, start_after ----------
def _valid(check: Callable[[str], str], s: str) -> bool:
    try:
        check(s)
    except ValidationError:
        return False
    return True


_SEG = st.text(alphabet="ab.-0/_~", min_size=1, max_size=4).filter(
    lambda s: not s.endswith("/") and _valid(check_key, s)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.lists(_SEG, min_size=1, max_size=25, unique=True),
    prefix=st.text(alphabet="ab.-0/", max_size=4).filter(lambda s: _valid(check_prefix, s)),
    start=st.one_of(st.none(), st.text(alphabet="ab.-0/_~", max_size=6)),
)
def test_listing_equals_sorted_model(
    tmp_path_factory: pytest.TempPathFactory, raw: list[str], prefix: str, start: str | None
) -> None:
    # drop keys that are a path prefix of another (an object cannot also be a "folder")
    keys = sorted(k for k in raw if not any(o.startswith(k + "/") for o in raw))
    keys = [k for k in keys if not any(k.startswith(o + "/") for o in keys)]
    store = LocalStore(tmp_path_factory.mktemp("model") / "bucket")
    _write(store, keys)
    want = [k for k in keys if k.startswith(prefix) and (start is None or k > start)]
    assert [o.key for o in store.list(prefix, start_after=start)] == want
