"""Overflow groups on the local store: naming by max suffix, race-safe creation, least-full routing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from storekeeper.errors import ValidationError
from storekeeper.overflow import (
    check_ratio,
    create_next_bucket,
    ensure_room,
    group_members,
    least_full_bucket,
    next_overflow_name,
    overflow_suffix,
)
from storekeeper.stores.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "images")


def test_next_name_is_max_suffix_plus_one_not_count() -> None:
    assert next_overflow_name("images", ["images"]) == "images-1"
    # images-2 was deleted: a count-based name (images-3, the 3rd bucket) would collide; max + 1 does not
    assert next_overflow_name("images", ["images", "images-1", "images-3"]) == "images-4"
    assert next_overflow_name("images", ["images", "images-10", "images-9", "other-50"]) == "images-11"
    assert next_overflow_name("images", []) == "images-1"


def test_suffix_parsing_ignores_lookalikes() -> None:
    assert overflow_suffix("images", "images") == 0
    assert overflow_suffix("images-7", "images") == 7
    assert overflow_suffix("images-07", "images") is None
    assert overflow_suffix("images-x", "images") is None
    assert overflow_suffix("images-1-2", "images") is None
    assert group_members(["images-10", "images-2", "images", "imagesx"], "images") == [
        "images",
        "images-2",
        "images-10",
    ]


def test_ratios_only() -> None:
    assert check_ratio(0.95, "hard") == 0.95
    with pytest.raises(ValidationError, match="hard: must be a ratio"):
        check_ratio(95, "hard")
    with pytest.raises(ValidationError):
        check_ratio(0, "hard")


def test_create_after_a_deleted_member_does_not_collide(store: LocalStore) -> None:
    assert create_next_bucket(store, "images") == "images-1"
    assert create_next_bucket(store, "images") == "images-2"
    store.for_bucket("images-1")  # still there
    store.delete_bucket("images-1")
    # one member left besides the base: a count-derived name would be images-2 (taken)
    assert create_next_bucket(store, "images") == "images-3"


def test_lost_race_moves_on(store: LocalStore) -> None:
    # the caller believes only the base exists, but images-1 was created meanwhile
    store.create_bucket("images-1")
    store.requests.reset()
    name = create_next_bucket(store, "images", also_seen=["images"])
    assert name == "images-2"


def test_concurrent_creators_get_distinct_buckets(store: LocalStore) -> None:
    names: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            names.append(create_next_bucket(store, "images"))
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(names, key=lambda n: int(n.rsplit("-", 1)[1])) == [f"images-{i}" for i in range(1, 7)]
    assert group_members((b.name for b in store.list_buckets()), "images")[1:] == [
        f"images-{i}" for i in range(1, 7)
    ]


def test_least_full_counts_every_object(store: LocalStore) -> None:
    for i in range(30):  # spread over nested "folders", not only the root
        store.put(f"a/{i % 3}/obj-{i}", b"x" * 10)
    store.create_bucket("images-1")
    store.for_bucket("images-1").put("deep/nested/one", b"y" * 100)
    # base holds 300 bytes, images-1 holds 100
    assert least_full_bucket(store, "images", 1000) == "images-1"
    assert least_full_bucket(store, "images", 1000, hard=0.09) is None
    assert least_full_bucket(store, "images", 1000, hard=0.2) == "images-1"


def test_bucket_past_95_percent_gets_overflow(store: LocalStore) -> None:
    store.put("big", b"z" * 960)  # 96 % of 1000
    bucket, created = ensure_room(store, "images", 1000)
    assert (bucket, created) == ("images-1", True)
    # a second call finds room in the new bucket: no new bucket (idempotent in effect)
    assert ensure_room(store, "images", 1000) == ("images-1", False)


def test_below_watermark_no_overflow_even_at_one_percent(store: LocalStore) -> None:
    store.put("small", b"z" * 10)  # 1 %: the percent-vs-ratio bug created a bucket here
    assert ensure_room(store, "images", 1000) == ("images", False)
    assert [b.name for b in store.list_buckets()] == ["images"]
