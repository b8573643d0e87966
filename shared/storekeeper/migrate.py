"""Copy a whole store to another backend (`storekeeper migrate --from URL --to URL`).

* **Dry run by default**: one listing of each side, no download; says what would be copied,
  what is already there, and what conflicts.
* **sha256-verified**: every object is downloaded, hashed, written create-only, read back
  from the destination and hashed again; a mismatch fails that object.
* **Resumable**: a journal (one JSON line per verified object: key, source etag, size,
  sha256) lets a second run skip what an interrupted one already copied and verified.
* **Pointers last**: `snapshot/<c>/latest/pointer.txt` are written only after every other
  object was copied and verified without a failure or conflict, so a reader of the
  destination never resolves a pointer to a half-copied collection. They are written
  create-only (`If-None-Match: *`, Postgres on Supabase): an existing, different pointer
  in the destination is a conflict, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from storekeeper.errors import NotFound, PreconditionFailed, StorekeeperError
from storekeeper.layout import match_pointer_key
from storekeeper.snapshots.archive import sha256_file
from storekeeper.stores.base import ObjectInfo, ObjectStore

CONTENT_TYPES = {
    ".json": "application/json",
    ".txt": "text/plain",
    ".jsonl": "application/x-ndjson",
    ".html": "text/html; charset=utf-8",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
}


def journal_path(home: Path, src: str, dst: str) -> Path:
    digest = hashlib.sha256(f"{src}\n{dst}".encode()).hexdigest()[:16]
    return home / "migrations" / f"{digest}.jsonl"


@dataclass
class MigrationPlan:
    source: str
    destination: str
    objects: list[ObjectInfo]  # non-pointer objects, key order
    pointers: list[ObjectInfo]
    missing: list[str] = field(default_factory=list)  # not in the destination
    present_same_size: list[str] = field(default_factory=list)  # there: verified by sha256 when applied
    conflicts: list[str] = field(default_factory=list)  # there with another size: never overwritten
    journaled: list[str] = field(default_factory=list)  # verified by an earlier run

    @property
    def bytes_to_copy(self) -> int:
        missing = set(self.missing)
        return sum(o.size for o in [*self.objects, *self.pointers] if o.key in missing)

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "destination": self.destination,
            "objects": len(self.objects),
            "pointers": len(self.pointers),
            "to_copy": len(self.missing),
            "bytes_to_copy": self.bytes_to_copy,
            "already_verified": len(self.journaled),
            "present_to_verify": len(self.present_same_size),
            "conflicts": self.conflicts,
        }


@dataclass
class MigrationResult:
    copied: list[str] = field(default_factory=list)
    verified_present: list[str] = field(default_factory=list)
    skipped_journaled: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    pointers_written: list[str] = field(default_factory=list)
    pointers_held: bool = False  # pointers not written because something failed or conflicted
    bytes_copied: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.conflicts and not self.pointers_held

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "copied": len(self.copied),
            "bytes_copied": self.bytes_copied,
            "verified_present": len(self.verified_present),
            "skipped_journaled": len(self.skipped_journaled),
            "pointers_written": self.pointers_written,
            "pointers_held": self.pointers_held,
            "conflicts": self.conflicts,
            "failed": self.failed,
        }


def _read_journal(path: Path) -> dict[str, dict[str, object]]:
    done: dict[str, dict[str, object]] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by the interruption: that object is simply copied again
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            done[entry["key"]] = entry
    return done


def plan(src: ObjectStore, dst: ObjectStore, journal: Path) -> MigrationPlan:
    """One listing of each side; nothing is downloaded or written."""
    listed = list(src.list(""))
    there = {i.key: i for i in dst.list("")}
    done = _read_journal(journal)
    p = MigrationPlan(
        source=src.url,
        destination=dst.url,
        objects=[i for i in listed if match_pointer_key(i.key) is None],
        pointers=[i for i in listed if match_pointer_key(i.key) is not None],
    )
    for info in [*p.objects, *p.pointers]:
        have = there.get(info.key)
        entry = done.get(info.key)
        if entry and have and entry.get("etag") == info.etag and entry.get("size") == info.size == have.size:
            p.journaled.append(info.key)
        elif have is None:
            p.missing.append(info.key)
        elif have.size == info.size:
            p.present_same_size.append(info.key)
        else:
            p.conflicts.append(info.key)
    return p


Progress = Callable[[str, int], None]


def apply(
    src: ObjectStore,
    dst: ObjectStore,
    p: MigrationPlan,
    journal: Path,
    *,
    progress: Progress | None = None,
) -> MigrationResult:
    """Copy and verify every object of the plan, then (only if all went well) the pointers."""
    result = MigrationResult(
        conflicts=dict.fromkeys(p.conflicts, "exists in the destination with another size")
    )
    journaled = set(p.journaled)
    journal.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="storekeeper-migrate-") as tmp, open(journal, "a") as log:
        for info in p.objects:
            _one(src, dst, info, Path(tmp), result, journaled, log, create_only=True)
            if progress is not None:
                progress(info.key, info.size)
        if result.failed or result.conflicts:
            result.pointers_held = bool(p.pointers)
            return result
        for info in p.pointers:
            _one(src, dst, info, Path(tmp), result, journaled, log, create_only=True)
            if info.key in result.copied or info.key in result.verified_present:
                result.pointers_written.append(info.key)
            if progress is not None:
                progress(info.key, info.size)
    return result


def _one(
    src: ObjectStore,
    dst: ObjectStore,
    info: ObjectInfo,
    tmp: Path,
    result: MigrationResult,
    journaled: set[str],
    log: TextIO,
    *,
    create_only: bool,
) -> None:
    key = info.key
    if key in journaled:
        result.skipped_journaled.append(key)
        return
    if key in result.conflicts:
        return
    local = tmp / "object"
    back = tmp / "readback"
    try:
        src.get_file(key, local)
        etag = info.etag
        sha = sha256_file(local)
        try:
            dst.get_file(key, back)
        except NotFound:
            pass
        else:  # already there (an earlier run, or someone else): equal content is fine, else a conflict
            if sha256_file(back) == sha:
                result.verified_present.append(key)
                _journal(log, key, etag, info.size, sha)
            else:
                result.conflicts[key] = "exists in the destination with other content (sha256 differs)"
            return
        suffix = Path(key).suffix
        try:
            dst.put_file(key, local, content_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
                         if_none_match=create_only)  # fmt: skip
        except PreconditionFailed:
            result.conflicts[key] = "written in the destination meanwhile by someone else"
            return
        dst.get_file(key, back)
        got = sha256_file(back)
        if got != sha:
            result.failed[key] = f"sha256 after copy {got[:12]}... differs from the source's {sha[:12]}..."
            return
        result.copied.append(key)
        result.bytes_copied += info.size
        _journal(log, key, etag, info.size, sha)
    except NotFound:
        result.failed[key] = "removed from the source during the copy"
    except StorekeeperError as exc:
        result.failed[key] = str(exc)


def _journal(log: TextIO, key: str, etag: str, size: int, sha: str) -> None:
    log.write(json.dumps({"key": key, "etag": etag, "size": size, "sha256": sha}) + "\n")
    log.flush()  # every verified object is on disk before the next one starts
