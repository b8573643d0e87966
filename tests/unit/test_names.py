"""names.py: what is accepted, what is refused, and that no accepted key escapes its prefix."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storekeeper.errors import InvalidName, ValidationError
from storekeeper.names import MAX_KEY_BYTES, check_bucket, check_collection, check_key, check_prefix


@pytest.mark.parametrize("name", ["a", "docs", "my_coll-2", "0abc", "a" * 63])
def test_good_collections(name: str) -> None:
    assert check_collection(name) == name


@pytest.mark.parametrize("name", ["", "A", "_x", "-x", "a/b", "a.b", "a b", "a" * 64, "../x", None, 3])
def test_bad_collections(name: object) -> None:
    with pytest.raises(InvalidName) as info:
        check_collection(name)
    assert info.value.field == "collection"
    assert "collection" in str(info.value)


@pytest.mark.parametrize("name", ["abc", "my-bucket-1", "a" * 63, "0-0"])
def test_good_buckets(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Abc", "a_b", "a.b", "-ab", "ab-", "a--b", "a/b", "", "../x", None]
)
def test_bad_buckets(name: object) -> None:
    with pytest.raises(InvalidName) as info:
        check_bucket(name, "store")
    assert info.value.field == "store"


@pytest.mark.parametrize(
    "key", ["a", "a/b/c.txt", "snapshot/c/0001-ab/manifest.json", "dir/", "a..b", ".hidden", "x/.y", "ü/ñ"]
)
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/abs", "relative"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("a/.", "'.'"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("k" * (MAX_KEY_BYTES + 1), "longer"),
        ("é" * (MAX_KEY_BYTES // 2 + 1), "longer"),  # the limit is in bytes, not characters
    ],
)
def test_bad_keys(key: str, reason: str) -> None:
    with pytest.raises(InvalidName) as info:
        check_key(key, "delta_key")
    assert info.value.field == "delta_key"
    assert reason in info.value.reason


def test_non_string_key() -> None:
    with pytest.raises(InvalidName, match="must be a string"):
        check_key(b"bytes")


def test_prefix_may_be_empty_but_key_may_not() -> None:
    assert check_prefix("") == ""
    assert check_prefix("delta/c/") == "delta/c/"
    with pytest.raises(InvalidName):
        check_key("")
    with pytest.raises(InvalidName):
        check_prefix("../")


def test_invalid_name_is_a_validation_error() -> None:
    # callers that catch ValueError/ValidationError for bad input also catch name errors
    with pytest.raises(ValueError):
        check_key("/x")
    with pytest.raises(ValidationError):
        check_bucket("X")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\-_ \x00")), max_size=20))
def test_accepted_keys_never_escape_their_prefix(key: str) -> None:
    """Whatever passes check_key, joined under a base directory, stays under it and means itself."""
    try:
        check_key(key)
    except InvalidName:
        return
    base = "/srv/bucket"
    joined = posixpath.normpath(posixpath.join(base, key))
    assert joined.startswith(base + "/")
    assert joined == base + "/" + key.rstrip("/")  # no segment was collapsed: the key is already normal
