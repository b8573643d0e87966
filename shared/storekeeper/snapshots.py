"""Snapshots: the pointer, manifests, archives, a local cache, and `open_snapshot` for readers.

Layout (DESIGN §2)::

    snapshot/<c>/<version>/manifest.json   immutable, written after the archive
    snapshot/<c>/<version>/chroma.tar      tar of a Chroma persist dir holding one collection
                                           (older versions: chroma.tar.gz; readers go by the suffix)
    snapshot/<c>/latest/pointer.txt        exactly `snapshot/<c>/<version>/`

Nothing here imports chromadb at module level (the reaper reads pointers too);
`open_snapshot` pulls it in lazily.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import string
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pydantic

from storekeeper import config
from storekeeper.errors import CorruptObject, NotFound, PointerTargetMissing
from storekeeper.models.snapshots import VERSION_PATTERN, Manifest
from storekeeper.names import check_collection
from storekeeper.stores.base import ObjectStore

#: uncompressed: float32 vectors barely compress (gzip saved 21 %) and single-threaded gzip
#: was two thirds of a warm compaction's overhead at 100,000 vectors (docs/performance.md)
ARCHIVE_NAME = "chroma.tar"
ARCHIVE_COMPRESSLEVEL = 1  # for `.tar.gz` archives, when a caller asks for one by name
#: how a tar is compressed, by the archive name's suffix (the manifest's `archive` pattern)
_TAR_MODES = {".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.xz": "xz"}
MAX_ARCHIVE_MEMBERS = 100_000
MAX_EXTRACTED_BYTES = 16 * 1024**3
DEFAULT_CACHE_DIR = "/tmp/storekeeper-cache"
DEFAULT_CACHE_ENTRIES = 3
STALE_TEMP_SECONDS = 3600.0  # longer than any Lambda run (15 min max)
_VERSION_RE = re.compile(VERSION_PATTERN)
_SUFFIX = string.ascii_lowercase + string.digits
_CHUNK = 1024 * 1024

__all__ = [
    "ARCHIVE_NAME",
    "Published",
    "SnapshotCache",
    "load_manifest",
    "manifest_key",
    "new_version",
    "open_snapshot",
    "pack_archive",
    "pointer_key",
    "publish",
    "read_pointer",
    "resolve",
    "safe_extract",
    "version_prefix",
    "write_snapshot",
]


# -- names -----------------------------------------------------------------------------
def pointer_key(collection: str) -> str:
    return f"snapshot/{check_collection(collection)}/latest/pointer.txt"


def version_prefix(collection: str, version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise CorruptObject("<snapshot>", None, f"version {version!r:.60} is not <12-digit seq>-<8 chars>")
    return f"snapshot/{check_collection(collection)}/{version}/"


def manifest_key(collection: str, version: str) -> str:
    return version_prefix(collection, version) + "manifest.json"


def new_version(parent: str | None) -> str:
    """Parent's sequence + 1 and a random suffix: sorts in publish order, unique under races."""
    seq = int(parent.split("-", 1)[0]) + 1 if parent else 1
    return f"{seq:012d}-" + "".join(secrets.choice(_SUFFIX) for _ in range(8))


# -- pointer and manifest -----------------------------------------------------------------
def read_pointer(store: ObjectStore, collection: str) -> tuple[str | None, str | None]:
    """(version, etag) of the published snapshot; (None, None) when nothing is published yet."""
    key = pointer_key(collection)
    try:
        res = store.get(key)
    except NotFound:
        return None, None
    text = res.body.decode("utf-8", errors="replace").strip()
    m = re.fullmatch(rf"snapshot/{re.escape(collection)}/({VERSION_PATTERN[1:-1]})/", text)
    if not m:
        raise CorruptObject(
            store.url, key, f"pointer must be snapshot/{collection}/<version>/, got {text!r:.80}"
        )
    return m[1], res.etag


def load_manifest(store: ObjectStore, collection: str, version: str) -> Manifest:
    """The manifest of one version; a missing one is PointerTargetMissing, a bad one CorruptObject."""
    key = manifest_key(collection, version)
    try:
        body = store.get(key).body
    except NotFound:
        raise PointerTargetMissing(store.url, key, f"manifest of version {version} does not exist") from None
    try:
        manifest = Manifest.model_validate_json(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise CorruptObject(store.url, key, f"invalid manifest: {where}: {first['msg']}") from None
    if manifest.collection != collection or manifest.version != version:
        raise CorruptObject(
            store.url,
            key,
            f"manifest names {manifest.collection}/{manifest.version}, expected {collection}/{version}",
        )
    return manifest


@dataclass(frozen=True)
class Published:
    version: str
    etag: str
    manifest: Manifest


def resolve(store: ObjectStore, collection: str) -> Published | None:
    """Pointer + its manifest; None when nothing is published (an empty collection)."""
    version, etag = read_pointer(store, collection)
    if version is None or etag is None:
        return None
    return Published(version, etag, load_manifest(store, collection, version))


def publish(store: ObjectStore, collection: str, version: str, expected_etag: str | None) -> str:
    """Point `latest` at `version` with one conditional write; PreconditionFailed on a lost race."""
    body = version_prefix(collection, version).encode()
    if expected_etag is None:
        return store.put(pointer_key(collection), body, if_none_match=True, content_type="text/plain")
    return store.put(pointer_key(collection), body, if_match=expected_etag, content_type="text/plain")


# -- archives ---------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _compression(name: str, where: str) -> str:
    """tarfile's compression for an archive named `name` ("" = plain tar); unknown suffixes are corrupt."""
    for suffix in sorted(_TAR_MODES, key=len, reverse=True):
        if name.endswith(suffix):
            return _TAR_MODES[suffix]
    raise CorruptObject(
        "<archive>", where, f"archive name {name!r:.80} has no known tar suffix (.tar, .tar.gz)"
    )


class _HashingWriter:
    """File wrapper that hashes what goes through it: the archive's sha256 without a second read."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return int(self.fh.write(data))

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.fh.flush()


def pack_archive(src: Path, dest: Path) -> tuple[str, int]:
    """Tar the persist dir `src` (members relative to it, sorted) into `dest`; returns (sha256, size).

    Compressed only when `dest`'s name asks for it (`.tar.gz`); the digest is taken while
    writing, so the archive is never read back.
    """
    src, dest = Path(src), Path(dest)
    comp = _compression(dest.name, str(dest))
    with open(dest, "wb") as raw:
        out = _HashingWriter(raw)
        if comp:
            import gzip

            if comp != "gz":
                raise CorruptObject("<archive>", str(dest), f"packing {comp} archives is not supported")
            gz: Any = gzip.GzipFile(
                filename="", mode="wb", fileobj=out, compresslevel=ARCHIVE_COMPRESSLEVEL, mtime=0
            )
            _write_tar(src, gz)
            gz.close()
        else:
            _write_tar(src, out)
    return out.sha.hexdigest(), out.size


def _write_tar(src: Path, fileobj: Any) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tf:
        tf.copybufsize = _CHUNK  # type: ignore[attr-defined]  # 16 KiB by default: 13,000 writes per 200 MB
        for path in sorted(src.rglob("*")):
            if not (path.is_file() or path.is_dir()) or path.is_symlink():
                continue
            info = tf.gettarinfo(str(path), arcname=path.relative_to(src).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as fh:
                    tf.addfile(info, fh)
            else:
                tf.addfile(info)


def safe_extract(archive: Path, dest: Path, *, max_bytes: int = MAX_EXTRACTED_BYTES, where: str = "") -> None:
    """Extract only plain files and dirs, relative, inside `dest`, within `max_bytes` in total."""
    label = where or str(archive)

    def bad(reason: str) -> CorruptObject:
        return CorruptObject("<archive>", label, reason)

    try:
        comp = _compression(Path(archive).name, label)
        mode: Literal["r:", "r:gz", "r:xz"] = "r:gz" if comp == "gz" else "r:xz" if comp == "xz" else "r:"
        with tarfile.open(archive, mode) as tf:
            members = tf.getmembers()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise bad(f"{len(members)} members, more than {MAX_ARCHIVE_MEMBERS}")
            total = 0
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith("/") or "\\" in m.name or ".." in parts:
                    raise bad(f"member {m.name!r:.80} escapes the archive root")
                if not (m.isfile() or m.isdir()):
                    raise bad(f"member {m.name!r:.80} is not a plain file or directory")
                total += m.size
                if total > max_bytes:
                    raise bad(f"extracted size exceeds the {max_bytes}-byte limit")
            tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) and not Path(archive).exists():
            raise
        raise bad(f"not a readable tar archive: {exc}") from None


def write_snapshot(
    store: ObjectStore,
    *,
    collection: str,
    version: str,
    parent: str | None,
    archive: Path,
    dimension: int | None,
    distance: str,
    record_count: int,
    deltas: list[str],
    applied: list[str],
    hooks: Any = None,
    sha256: str | None = None,
    size: int | None = None,
) -> Manifest:
    """Upload the archive, then the manifest, both create-only; the pointer is not touched here.

    `sha256`/`size` as returned by `pack_archive` save reading the archive again. The archive's
    name follows its compression (`chroma.tar` or `chroma.tar.gz`) and it is streamed from disk.
    """
    archive = Path(archive)
    comp = _compression(archive.name, str(archive))
    if sha256 is None or size is None:
        sha256, size = _sha256_file(archive), archive.stat().st_size
    sha = sha256
    manifest = Manifest(
        collection=collection,
        version=version,
        parent=parent,
        archive="chroma.tar" + (f".{comp}" if comp else ""),
        sha256=sha,
        size=size,
        dimension=dimension,
        distance=distance,
        record_count=record_count,
        deltas=deltas,
        applied=applied,
        created_at=datetime.now(UTC),
    )
    store.put_file(
        manifest.archive_key,
        archive,
        if_none_match=True,
        content_type="application/gzip" if comp else "application/x-tar",
    )
    if hooks is not None:
        hooks("after_archive_upload")
    store.put(
        manifest_key(collection, version),
        manifest.model_dump_json(indent=2).encode(),
        if_none_match=True,
        content_type="application/json",
    )
    if hooks is not None:
        hooks("after_manifest")
    return manifest


# -- local cache -----------------------------------------------------------------------------
def _tree_stamp(tree: Path) -> dict[str, list[int]]:
    """Per file: size, inode, mtime_ns and ctime_ns. Any write, truncate, replace or chmod moves one
    of them (ctime cannot be set back from user space), so it detects what the per-file sha256 did
    for a private /tmp cache — changed, missing or extra files — without reading 200+ MB per use.
    The bytes themselves were verified once, against the manifest's sha256, when the entry was made."""
    out: dict[str, list[int]] = {}
    for p in sorted(tree.rglob("*")):
        st = p.lstat()
        if not p.is_dir() or p.is_symlink():
            out[p.relative_to(tree).as_posix()] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    return out


def _rmtree_atomic(path: Path) -> None:
    """Rename away first, so nobody sees a half-deleted entry."""
    trash = path.with_name(f".trash-{uuid.uuid4().hex}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


class SnapshotCache:
    """Extracted snapshots by version, LRU-limited: verified by sha256 when made, by a stat stamp of
    every file (see `_tree_stamp`) before each use.

    Entries are pristine: nobody opens Chroma inside them (Chroma writes on open);
    users get a private copy (`checkout`). Entries appear by atomic rename of a
    uniquely named temp dir, so concurrent processes never see a partial one.
    """

    def __init__(self, root: Path | str | None = None, *, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.root = Path(root or os.environ.get(config.COMPACTOR_CACHE_DIR) or DEFAULT_CACHE_DIR)
        self.max_entries = max(1, max_entries)
        self.root.mkdir(parents=True, exist_ok=True)
        self.downloads = 0  # archives fetched from the store (tests and logs read it)
        self._prune_abandoned()

    def _prune_abandoned(self, older_than_s: float = STALE_TEMP_SECONDS) -> None:
        """Temp dirs left by a crashed run (no run lasts this long) would fill /tmp: remove them."""
        now = time.time()
        for kind in ("work", "staging"):
            base = self.root / kind
            if not base.is_dir():
                continue
            for d in base.iterdir():
                with contextlib.suppress(OSError):
                    if now - d.stat().st_mtime > older_than_s:
                        shutil.rmtree(d, ignore_errors=True)

    def entry(self, manifest: Manifest) -> Path:
        return self.root / "entries" / manifest.collection / manifest.version

    def tempdir(self, kind: str) -> Path:
        base = self.root / kind
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))

    def _valid(self, entry: Path, manifest: Manifest) -> bool:
        try:
            marker = json.loads((entry / "entry.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return False
        if marker.get("sha256") != manifest.sha256:
            return False
        try:
            return bool(marker.get("stat") == _tree_stamp(entry / "tree"))
        except FileNotFoundError:  # evicted while we looked
            return False

    def _install(self, staging: Path, manifest: Manifest) -> None:
        (staging / "entry.json").write_text(
            json.dumps({"sha256": manifest.sha256, "stat": _tree_stamp(staging / "tree")})
        )
        final = self.entry(manifest)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            _rmtree_atomic(final)  # stale or corrupt: replaced whole
        try:
            staging.rename(final)
        except OSError:  # another process installed it first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
        self._evict(keep=final)

    def _evict(self, keep: Path) -> None:
        entries = [
            p for p in (self.root / "entries").glob("*/*") if p.is_dir() and not p.name.startswith(".")
        ]
        if len(entries) <= self.max_entries:
            return
        entries.sort(key=lambda p: p.stat().st_mtime)
        for old in entries[: len(entries) - self.max_entries]:
            if old != keep:
                _rmtree_atomic(old)

    def fetch(self, store: ObjectStore, manifest: Manifest) -> Path:
        """The verified pristine tree of `manifest` (downloaded and extracted on a miss). Do not open it."""
        entry = self.entry(manifest)
        if self._valid(entry, manifest):
            with contextlib.suppress(OSError):
                os.utime(entry)
            return entry / "tree"
        staging = self.tempdir("staging")
        try:
            archive = staging / manifest.archive
            try:
                store.get_file(manifest.archive_key, archive)
            except NotFound:
                raise PointerTargetMissing(
                    store.url, manifest.archive_key, f"archive of version {manifest.version} does not exist"
                ) from None
            self.downloads += 1
            sha = _sha256_file(archive)
            if sha != manifest.sha256:
                raise CorruptObject(
                    store.url,
                    manifest.archive_key,
                    f"sha256 {sha} does not match the manifest's {manifest.sha256}",
                )
            (staging / "tree").mkdir()
            safe_extract(archive, staging / "tree", where=f"{store.url}/{manifest.archive_key}")
            archive.unlink()
            self._install(staging, manifest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        if not self._valid(entry, manifest):  # evicted or replaced between install and now: rare
            raise CorruptObject(str(self.root), str(entry), "cache entry vanished right after install")
        return entry / "tree"

    def checkout(self, store: ObjectStore, manifest: Manifest, dest: Path) -> None:
        """Copy the verified tree of `manifest` into `dest` (which must not exist) for private use."""
        for _ in range(3):
            tree = self.fetch(store, manifest)
            try:
                marker = (tree.parent / "entry.json").read_text()  # its stamps hold inodes and ctimes
                shutil.copytree(tree, dest)
                # not taken, changed or replaced (even by a fresh install) while we copied
                if self._valid(tree.parent, manifest) and (tree.parent / "entry.json").read_text() == marker:
                    return
            except (FileNotFoundError, shutil.Error):  # evicted by another process mid-copy
                pass
            shutil.rmtree(dest, ignore_errors=True)
        raise CorruptObject(str(self.root), manifest.version, "cache entry kept vanishing during copy")

    def take(self, store: ObjectStore, manifest: Manifest, dest: Path) -> None:
        """Move the verified tree of `manifest` to `dest` (which must not exist): the entry leaves
        the cache. For a compactor, which adopts the tree it publishes next, this saves copying the
        whole snapshot; a reader copying the entry meanwhile sees it vanish and starts over."""
        for _ in range(3):
            tree = self.fetch(store, manifest)
            claimed = tree.parent.with_name(f".taken-{uuid.uuid4().hex}")
            try:
                tree.parent.rename(claimed)
            except FileNotFoundError:  # evicted or taken by another process first
                continue
            try:
                (claimed / "tree").rename(dest)
            finally:
                shutil.rmtree(claimed, ignore_errors=True)
            return
        raise CorruptObject(
            str(self.root), manifest.version, "cache entry kept vanishing before it was taken"
        )

    def adopt(self, manifest: Manifest, tree: Path) -> None:
        """Take a tree we just packed and published as the entry for its version (saves a download)."""
        staging = self.tempdir("staging")
        try:
            tree.rename(staging / "tree")
            self._install(staging, manifest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


# -- readers ------------------------------------------------------------------------------------
_READERS: list[tuple[Any, Path]] = []


def _close_readers() -> None:
    while _READERS:
        client, path = _READERS.pop()
        with contextlib.suppress(Exception):
            client.close()
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_close_readers)


def open_snapshot(
    store: ObjectStore,
    collection: str,
    version: str | None = None,
    *,
    cache: SnapshotCache | None = None,
) -> Any:
    """A chromadb Collection of the published (or the pinned) version, checksum-verified.

    No pointer means an empty collection. The data is a private copy: writes to it
    never reach the store. Copies are removed when the process exits.
    """
    from storekeeper import chroma

    check_collection(collection)
    if version is None:
        published = resolve(store, collection)
        manifest = published.manifest if published else None
    else:
        try:
            manifest = load_manifest(store, collection, version)
        except PointerTargetMissing as exc:
            raise NotFound(store.url, manifest_key(collection, version), "no such snapshot version") from exc
    cache = cache or SnapshotCache()
    path = cache.tempdir("readers")
    if manifest is not None:
        path.rmdir()
        cache.checkout(store, manifest, path)
    client = chroma.open_client(path)
    _READERS.append((client, path))
    if manifest is None:
        return chroma.get_or_create(client, collection, "l2")
    return chroma.get(client, collection)
