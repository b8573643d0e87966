"""Part plans of create-only multipart uploads: S3's rules for every size, and the threshold setting."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storekeeper.stores import multipart
from storekeeper.stores.multipart import MAX_OBJECT, MAX_PART, MAX_PARTS, MIN_PART, MiB, plan_parts


@settings(max_examples=300, deadline=None)
@given(
    size=st.one_of(st.integers(0, 10 * 1024 * MiB), st.integers(0, MAX_OBJECT)),
    preferred=st.integers(0, 6 * 1024 * MiB),
)
def test_parts_cover_the_file_within_s3_rules(size: int, preferred: int) -> None:
    parts = plan_parts(size, preferred)
    assert 1 <= len(parts) <= MAX_PARTS
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert parts[0].offset == 0
    assert sum(p.length for p in parts) == size
    for a, b in itertools.pairwise(parts):
        assert b.offset == a.offset + a.length
    for p in parts[:-1]:
        assert MIN_PART <= p.length <= MAX_PART
        assert p.length % MiB == 0
    assert parts[-1].length <= MAX_PART
    if size > 0:
        assert parts[-1].length > 0


def test_part_size_is_the_preferred_one_until_10000_parts_need_more() -> None:
    assert [p.length for p in plan_parts(40 * MiB, 16 * MiB)] == [16 * MiB, 16 * MiB, 8 * MiB]
    big = plan_parts(1024 * 1024 * MiB, 16 * MiB)  # 1 TiB: 16 MiB parts would be 65,536 of them
    assert len(big) <= MAX_PARTS
    assert big[0].length == 105 * MiB


@pytest.mark.parametrize("size", [-1, MAX_OBJECT + 1])
def test_sizes_s3_cannot_hold_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="multipart upload holds"):
        plan_parts(size)


def test_threshold_is_configurable_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(multipart.THRESHOLD_ENV, "100")
    assert multipart.threshold() == 100 * MiB
    monkeypatch.delenv(multipart.THRESHOLD_ENV)
    assert multipart.threshold() == multipart.DEFAULT_THRESHOLD_MB * MiB
    for bad in ("4", "0", "-1", "x"):
        monkeypatch.setenv(multipart.THRESHOLD_ENV, bad)
        with pytest.raises(ValueError, match=multipart.THRESHOLD_ENV):
            multipart.threshold()
