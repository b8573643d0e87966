"""Snapshots: pointer semantics, manifest checks, safe extraction, the verified cache, readers."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from storekeeper import chroma
from storekeeper.errors import CorruptObject, NotFound, PointerTargetMissing, PreconditionFailed
from storekeeper.snapshots import (
    SnapshotCache,
    load_manifest,
    new_version,
    open_snapshot,
    pack_archive,
    pointer_key,
    publish,
    read_pointer,
    safe_extract,
    write_snapshot,
)
from storekeeper.stores.local import LocalStore


def _make_snapshot(
    store: LocalStore, tmp_path: Path, c: str, parent: str | None, recs: dict[str, list[float]]
):
    tree = tmp_path / f"tree-{len(list(tmp_path.iterdir()))}"
    with chroma.persistent_client(tree) as client:
        col = chroma.get_or_create(client, c, "l2")
        col.upsert(ids=list(recs), embeddings=list(recs.values()))
        n = col.count()
    archive = tmp_path / f"{tree.name}.tar.gz"
    pack_archive(tree, archive)
    version = new_version(parent)
    return write_snapshot(
        store, collection=c, version=version, parent=parent, archive=archive, dimension=2,
        distance="l2", record_count=n, deltas=[], applied=[],
    )  # fmt: skip


def test_new_version_sorts_in_publish_order_and_is_unique() -> None:
    a = new_version(None)
    assert a.startswith("000000000001-")
    b, b2 = new_version(a), new_version(a)
    assert b.startswith("000000000002-")
    assert b != b2
    assert sorted([b, a]) == [a, b]
    assert new_version("000000000009-abcdefgh") < new_version("000000000010-abcdefgh")


def test_missing_pointer_means_empty(store: LocalStore) -> None:
    assert read_pointer(store, "docs") == (None, None)


def test_publish_is_create_only_then_if_match(store: LocalStore) -> None:
    v1, v2 = new_version(None), "000000000002-aaaaaaaa"
    etag = publish(store, "docs", v1, None)
    assert store.get(pointer_key("docs")).body == f"snapshot/docs/{v1}/".encode()
    with pytest.raises(PreconditionFailed):
        publish(store, "docs", "000000000001-zzzzzzzz", None)  # a second "first" publish loses
    with pytest.raises(PreconditionFailed):
        publish(store, "docs", v2, '"stale-etag"')
    publish(store, "docs", v2, etag)
    assert read_pointer(store, "docs")[0] == v2
    with pytest.raises(PreconditionFailed):
        publish(store, "docs", "000000000003-bbbbbbbb", etag)  # etag read before v2 is stale now


def test_garbage_pointer_is_corrupt_not_empty(store: LocalStore) -> None:
    store.put(pointer_key("docs"), b"snapshot/other/000000000001-aaaaaaaa/")
    with pytest.raises(CorruptObject, match="pointer must be snapshot/docs/<version>/"):
        read_pointer(store, "docs")


def test_manifest_missing_and_corrupt(store: LocalStore) -> None:
    with pytest.raises(PointerTargetMissing, match="000000000001-aaaaaaaa"):
        load_manifest(store, "docs", "000000000001-aaaaaaaa")
    store.put("snapshot/docs/000000000001-aaaaaaaa/manifest.json", b'{"format": "nope"}')
    with pytest.raises(CorruptObject, match="invalid manifest"):
        load_manifest(store, "docs", "000000000001-aaaaaaaa")


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../evil.txt", tarfile.REGTYPE, "escapes"),
        ("/abs/evil.txt", tarfile.REGTYPE, "escapes"),
        ("a/../../evil.txt", tarfile.REGTYPE, "escapes"),
        ("link", tarfile.SYMTYPE, "not a plain file"),
        ("hard", tarfile.LNKTYPE, "not a plain file"),
        ("fifo", tarfile.FIFOTYPE, "not a plain file"),
    ],
)
def test_safe_extract_rejects_path_tricks(tmp_path: Path, name: str, kind: bytes, reason: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    data = b"x" if kind == tarfile.REGTYPE else b""
    info.size = len(data)
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar_with(info, data))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(CorruptObject, match=reason):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_bounds_total_size(tmp_path: Path) -> None:
    info = tarfile.TarInfo("big.bin")
    info.size = 4096
    archive = tmp_path / "big.tar"
    archive.write_bytes(_tar_with(info, b"\0" * 4096))
    with pytest.raises(CorruptObject, match="exceeds the 1000-byte limit"):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    with pytest.raises(CorruptObject, match="not a readable tar"):
        safe_extract(tmp_path / "junk.tar", tmp_path / "out2")


def test_reader_sees_published_version_and_pinned_versions(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    m1 = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})
    etag = publish(store, "docs", m1.version, None)
    m2 = _make_snapshot(store, tmp_path, "docs", m1.version, {"a": [0.0, 1.0], "b": [1.0, 0.0]})
    publish(store, "docs", m2.version, etag)

    latest = open_snapshot(store, "docs", cache=cache)
    assert sorted(latest.get()["ids"]) == ["a", "b"]
    pinned = open_snapshot(store, "docs", m1.version, cache=cache)
    assert pinned.get()["ids"] == ["a"]
    with pytest.raises(NotFound, match="no such snapshot version"):
        open_snapshot(store, "docs", "000000000099-zzzzzzzz", cache=cache)
    assert open_snapshot(store, "nothing-yet", cache=cache).count() == 0


def test_cache_serves_second_open_without_download_and_rejects_tampering(
    store: LocalStore, tmp_path: Path
) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    m = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})
    publish(store, "docs", m.version, None)
    open_snapshot(store, "docs", cache=cache)
    open_snapshot(store, "docs", cache=cache)
    assert cache.downloads == 1
    # a tampered cache entry is not used: it is fetched again and verified
    tree = cache.entry(m) / "tree"
    victim = next(p for p in tree.rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"tampered")
    assert sorted(open_snapshot(store, "docs", cache=cache).get()["ids"]) == ["a"]
    assert cache.downloads == 2


def test_corrupt_or_missing_archive_is_an_error_for_readers(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    m = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})
    publish(store, "docs", m.version, None)
    body = store.get(m.archive_key).body
    store.put(m.archive_key, body[:-10] + b"0123456789")
    with pytest.raises(CorruptObject, match="does not match the manifest"):
        open_snapshot(store, "docs", cache=cache)
    store.delete(m.archive_key)
    with pytest.raises(PointerTargetMissing, match="archive of version"):
        open_snapshot(store, "docs", cache=cache)


def test_cache_is_lru_limited(store: LocalStore, tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache", max_entries=2)
    parent = None
    versions = []
    for i in range(3):
        m = _make_snapshot(store, tmp_path, "docs", parent, {f"r{i}": [float(i), 1.0]})
        versions.append(m)
        cache.fetch(store, m)
        parent = m.version
    left = sorted(p.name for p in (tmp_path / "cache" / "entries" / "docs").iterdir())
    assert left == sorted([versions[1].version, versions[2].version])


def test_importing_storekeeper_does_not_import_chromadb() -> None:
    code = (
        "import sys, storekeeper, storekeeper.snapshots, storekeeper.compaction, storekeeper.deltas\n"
        "assert 'chromadb' not in sys.modules, 'chromadb imported eagerly'\n"
        "assert callable(storekeeper.open_snapshot)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- archive format: plain tar by default, .tar.gz still read, digest taken while writing ------------------
def _tree(tmp_path: Path, recs: dict[str, list[float]]) -> Path:
    tree = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
    with chroma.persistent_client(tree) as client:
        chroma.get_or_create(client, "docs", "l2").upsert(ids=list(recs), embeddings=list(recs.values()))
    return tree


@pytest.mark.parametrize("name", ["chroma.tar", "chroma.tar.gz"])
def test_pack_archive_digest_matches_bytes_and_compression_follows_the_name(
    tmp_path: Path, name: str
) -> None:
    import hashlib

    tree = _tree(tmp_path, {"a": [0.0, 1.0]})
    sha, size = pack_archive(tree, tmp_path / name)
    body = (tmp_path / name).read_bytes()
    assert (sha, size) == (hashlib.sha256(body).hexdigest(), len(body))
    assert (body[:2] == b"\x1f\x8b") == name.endswith(".gz")  # gzip magic only when asked for
    out = tmp_path / f"out-{name}"
    safe_extract(tmp_path / name, out)
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == files
    assert all((out / f).read_bytes() == (tree / f).read_bytes() for f in files)


def test_new_snapshots_are_plain_tar_and_old_tar_gz_ones_still_open(
    store: LocalStore, tmp_path: Path
) -> None:
    old = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})  # packed as .tar.gz
    assert old.archive == "chroma.tar.gz"
    tree = _tree(tmp_path, {"a": [0.0, 1.0], "b": [1.0, 0.0]})
    sha, size = pack_archive(tree, tmp_path / "chroma.tar")
    new = write_snapshot(
        store, collection="docs", version=new_version(old.version), parent=old.version,
        archive=tmp_path / "chroma.tar", dimension=2, distance="l2", record_count=2, deltas=[], applied=[],
        sha256=sha, size=size,
    )  # fmt: skip
    assert new.archive == "chroma.tar"
    assert new.archive_key.endswith("/chroma.tar")
    with tarfile.open(fileobj=io.BytesIO(store.get(new.archive_key).body), mode="r:") as tf:
        assert any(m.name == "chroma.sqlite3" for m in tf.getmembers())
    cache = SnapshotCache(tmp_path / "cache")
    assert open_snapshot(store, "docs", old.version, cache=cache).get()["ids"] == ["a"]
    assert sorted(open_snapshot(store, "docs", new.version, cache=cache).get()["ids"]) == ["a", "b"]


def test_archive_upload_is_create_only(store: LocalStore, tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"a": [0.0, 1.0]})
    pack_archive(tree, tmp_path / "chroma.tar")
    version = new_version(None)
    store.put(f"snapshot/docs/{version}/chroma.tar", b"someone else's archive")
    with pytest.raises(PreconditionFailed):
        write_snapshot(
            store, collection="docs", version=version, parent=None, archive=tmp_path / "chroma.tar",
            dimension=2, distance="l2", record_count=1, deltas=[], applied=[],
        )  # fmt: skip
    assert store.get(f"snapshot/docs/{version}/chroma.tar").body == b"someone else's archive"
    assert not store.exists(f"snapshot/docs/{version}/manifest.json")


def test_unknown_archive_suffix_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"PK")
    with pytest.raises(CorruptObject, match="no known tar suffix"):
        safe_extract(tmp_path / "a.zip", tmp_path / "out")


@pytest.mark.parametrize("how", ["same-size overwrite", "removed file", "extra file"])
def test_cache_stamp_catches_in_place_changes_without_reading_bytes(
    store: LocalStore, tmp_path: Path, how: str
) -> None:
    cache = SnapshotCache(tmp_path / "cache")
    m = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})
    tree = cache.fetch(store, m)
    assert cache.fetch(store, m) == tree
    assert cache.downloads == 1
    victim = max((p for p in tree.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if how == "same-size overwrite":
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0xFF
        with open(victim, "r+b") as fh:  # same inode, same size: only the stamps' times move
            fh.write(bytes(data))
    elif how == "removed file":
        victim.unlink()
    else:
        (victim.parent / "stray.bin").write_bytes(b"x")
    fresh = cache.fetch(store, m)
    assert cache.downloads == 2  # not trusted: fetched and verified again
    assert not (fresh.parent / "tree" / "stray.bin").exists()
    assert (fresh / victim.relative_to(tree)).exists()


def _files(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_an_entry_in_use_is_copied_not_taken_and_stays_pristine(store: LocalStore, tmp_path: Path) -> None:
    """A compactor taking the parent while a reader holds it gets a copy; the reader's tree is untouched."""
    cache = SnapshotCache(tmp_path / "cache")
    m = _make_snapshot(store, tmp_path, "docs", None, {"a": [0.0, 1.0]})
    with cache.lease(store, m) as lease:
        want = _files(lease.tree)
        taken = tmp_path / "taken"
        cache.take(store, m, taken)
        victim = next(p for p in taken.rglob("*") if p.is_file())
        victim.write_bytes(b"written by chroma")  # the compactor writes into what it took
        assert lease.tree.is_dir()
        assert _files(lease.tree) == want
    assert cache.downloads == 1
    cache.take(store, m, tmp_path / "taken2")  # nobody uses it now: moved out of the cache, no copy
    assert not cache.entry(m).exists()
    assert cache.downloads == 1


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../evil.txt", tarfile.REGTYPE, "escapes"),
        ("/abs/evil.txt", tarfile.REGTYPE, "escapes"),
        ("link", tarfile.SYMTYPE, "not a plain file"),
    ],
)
def test_cache_checks_every_member_of_a_well_signed_archive(
    store: LocalStore, tmp_path: Path, name: str, kind: bytes, reason: str
) -> None:
    """The cache hashes while it extracts (one pass): a hostile archive whose manifest digest is right
    is still refused member by member, and nothing is installed or written outside staging."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    data = b"x" if kind == tarfile.REGTYPE else b""
    info.size = len(data)
    archive = tmp_path / "chroma.tar"
    archive.write_bytes(_tar_with(info, data))
    m = write_snapshot(
        store, collection="docs", version=new_version(None), parent=None, archive=archive, dimension=2,
        distance="l2", record_count=1, deltas=[], applied=[],
    )  # fmt: skip
    cache = SnapshotCache(tmp_path / "cache")
    with pytest.raises(CorruptObject, match=reason):
        cache.lease(store, m)
    assert cache.entries() == []
    assert not (tmp_path / "cache" / "evil.txt").exists()
    assert list((tmp_path / "cache" / "staging").iterdir()) == []
