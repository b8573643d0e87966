"""Archives: a tar whose root is a Chroma persist dir (the name's suffix says how it is compressed),
packed with its sha256 taken while writing, and extracted only as plain files inside the target."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from storekeeper.errors import CorruptObject, NotFound, PointerTargetMissing

if TYPE_CHECKING:
    from storekeeper.models.snapshots import Manifest
    from storekeeper.stores.base import ObjectStore

#: uncompressed: float32 vectors barely compress (gzip saved 21 %) and single-threaded gzip
#: was two thirds of a warm compaction's overhead at 100,000 vectors (docs/performance.md)
ARCHIVE_NAME = "chroma.tar"
ARCHIVE_COMPRESSLEVEL = 1  # for `.tar.gz` archives, when a caller asks for one by name
#: how a tar is compressed, by the archive name's suffix (the manifest's `archive` pattern)
_TAR_MODES = {".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.xz": "xz"}
MAX_ARCHIVE_MEMBERS = 100_000
MAX_EXTRACTED_BYTES = 16 * 1024**3
CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch_archive(store: ObjectStore, manifest: Manifest, path: Path) -> None:
    """Download a version's archive to `path`, unchecked; a missing one is PointerTargetMissing."""
    try:
        store.get_file(manifest.archive_key, path)
    except NotFound:
        raise PointerTargetMissing(
            store.url, manifest.archive_key, f"archive of version {manifest.version} does not exist"
        ) from None


def _check_sha256(store: ObjectStore, manifest: Manifest, sha: str) -> None:
    if sha != manifest.sha256:
        raise CorruptObject(
            store.url, manifest.archive_key, f"sha256 {sha} does not match the manifest's {manifest.sha256}"
        )


def download_verified(store: ObjectStore, manifest: Manifest, path: Path) -> None:
    """Download a version's archive to `path` and check it against the manifest's sha256.

    A missing archive is PointerTargetMissing, a different one CorruptObject (the cache and
    rollback both refuse to use it).
    """
    fetch_archive(store, manifest, path)
    _check_sha256(store, manifest, sha256_file(path))


def extract_verified(store: ObjectStore, manifest: Manifest, archive: Path, dest: Path) -> None:
    """Extract a downloaded archive into `dest` (safe_extract) while a second thread hashes it: on
    two cores the sha256 costs no time of its own. A different archive is CorruptObject (also when
    it broke the extraction: the checksum names the cause); `dest` is then the caller's to discard."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="storekeeper-sha256") as pool:
        digest = pool.submit(sha256_file, archive)
        try:
            safe_extract(archive, dest, where=f"{store.url}/{manifest.archive_key}")
        except CorruptObject:
            _check_sha256(store, manifest, digest.result())
            raise
        _check_sha256(store, manifest, digest.result())


def compression(name: str, where: str) -> str:
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
    comp = compression(dest.name, str(dest))
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
        tf.copybufsize = CHUNK  # type: ignore[attr-defined]  # 16 KiB by default: 13,000 writes per 200 MB
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
        comp = compression(Path(archive).name, label)
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
            tf.copybufsize = CHUNK  # type: ignore[attr-defined]  # 16 KiB by default: a quarter slower
            tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) and not Path(archive).exists():
            raise
        raise bad(f"not a readable tar archive: {exc}") from None
