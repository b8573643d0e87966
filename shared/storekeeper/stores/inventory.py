"""Plan from an S3 Inventory report instead of listing the bucket.

AWS's layout: `manifest.json` names the source bucket, the destination bucket (an ARN), the
`fileFormat`, the `fileSchema` (column names, comma separated) and `files[]` (`key`, `size`,
`MD5checksum`) of gzip-compressed CSV data files without a header row; object keys in them are
URL-encoded. A report is read from `s3://bucket/key/manifest.json` (data files from the
destination bucket) or from a local copy (data files found next to it, under the report's
`data/` folder, or at their key below an ancestor directory).

A report is a day old at best, so it is only ever a *plan*: every deletion re-checks its guard
at execution time (the etag and last-modified from the report), so a stale inventory never
deletes a newer object. Parquet and ORC reports are refused with a clear error (pyarrow is not
a light dependency for a Lambda layer); configure the inventory as CSV.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storekeeper.errors import CorruptObject, StoreError
from storekeeper.errors import ValidationError as InputError
from storekeeper.names import invalid_keys
from storekeeper.stores.base import ObjectInfo, ObjectStore
from storekeeper.stores.listing import ObjectTable

REQUIRED_COLUMNS = ("Bucket", "Key")
T = TypeVar("T")


class InventoryFile(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    key: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)
    MD5checksum: str | None = None


class InventoryManifest(BaseModel):
    """The fields of AWS's `manifest.json` that planning needs."""

    model_config = ConfigDict(defer_build=True, extra="ignore")

    sourceBucket: str = Field(min_length=1)
    destinationBucket: str = Field(min_length=1)
    fileFormat: str
    fileSchema: str
    files: list[InventoryFile]
    creationTimestamp: str | None = None

    @property
    def columns(self) -> list[str]:
        return [c.strip() for c in self.fileSchema.split(",")]

    @property
    def destination(self) -> str:
        """The destination bucket's name (the manifest gives an ARN, `arn:aws:s3:::name`)."""
        return self.destinationBucket.rsplit(":", 1)[-1]

    @property
    def created(self) -> datetime | None:
        if not self.creationTimestamp or not self.creationTimestamp.isdigit():
            return None
        return datetime.fromtimestamp(int(self.creationTimestamp) / 1000, UTC)


@dataclass
class InventoryStats:
    files: int = 0
    rows: int = 0
    current: int = 0
    noncurrent: int = 0
    delete_markers: int = 0
    noncurrent_bytes: int = 0
    #: rows whose decoded key no store accepts (left out of the plan), and the first of them
    invalid_keys: int = 0
    invalid_example: str = ""


class Inventory:
    """One inventory report: its manifest, and its rows as current objects in key order."""

    def __init__(self, location: str, *, store_for: type[ObjectStore] | None = None) -> None:
        self.location = location
        self.stats = InventoryStats()
        #: the last key of a `table` its `limit` cut short (None: every row after `after` is in it)
        self.bound: str | None = None
        self._store_for = store_for
        self.manifest = self._load_manifest()
        if self.manifest.fileFormat.upper() != "CSV":
            raise InputError(
                "inventory.fileFormat",
                f"{self.manifest.fileFormat} reports are not read (pyarrow is too heavy for the layer); "
                "configure the S3 Inventory as CSV",
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in self.manifest.columns]
        if missing:
            raise InputError("inventory.fileSchema", f"needs the columns {missing}", self.manifest.fileSchema)

    # -- reading the report ------------------------------------------------------------------
    def _load_manifest(self) -> InventoryManifest:
        raw = self._read(self.location, "manifest")
        try:
            return InventoryManifest.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise InputError("inventory", f"{self.location} is not an S3 Inventory manifest: {exc}") from exc

    def _read(self, location: str, what: str) -> bytes:
        if location.startswith("s3://"):
            bucket, _, key = location[len("s3://") :].partition("/")
            return self._s3(bucket).get(key).body
        path = Path(location)
        if not path.is_file():
            raise InputError("inventory", f"{what} {location} not found (a local path or s3://bucket/key)")
        return path.read_bytes()

    def _s3(self, bucket: str) -> ObjectStore:
        if self._store_for is not None:
            return self._store_for(bucket)
        from storekeeper.stores.s3 import S3Store

        return S3Store(bucket)

    def _data_file(self, f: InventoryFile) -> bytes:
        if self.location.startswith("s3://"):
            body = self._s3(self.manifest.destination).get(f.key).body
        else:
            body = self._local_data_file(f).read_bytes()
        if f.MD5checksum and hashlib.md5(body, usedforsecurity=False).hexdigest() != f.MD5checksum:
            raise CorruptObject(self.location, f.key, "inventory data file fails its manifest MD5checksum")
        return body

    def _local_data_file(self, f: InventoryFile) -> Path:
        here = Path(self.location).resolve().parent
        name = f.key.rsplit("/", 1)[-1]
        candidates = [here / name, here / "data" / name, here.parent / "data" / name]
        candidates += [ancestor / f.key for ancestor in (here, *here.parents)]
        for c in candidates:
            if c.is_file():
                return c
        raise InputError("inventory.files", f"data file {f.key} not found near {self.location}")

    # -- rows ---------------------------------------------------------------------------------
    def table(self, *, after: str | None = None, limit: int | None = None) -> ObjectTable:
        """The report's current objects in key order, as columns (no per-row objects).

        `after`: only the keys after it (a pass's resume point). `limit` (the planning memory bound):
        only the `limit` smallest of those, held at most `limit` rows plus one data file at a time
        (the files are not in key order: each file's rows are merged in and the rest dropped);
        `bound` then says up to which key the table is complete."""
        keys: list[str] = []
        sizes: list[int] = []
        modified: list[datetime] = []
        etags: list[str] = []
        cut: str | None = None
        for f in self.manifest.files:
            cols = self._file_columns(f)
            if after is not None or cut is not None:  # before the resume point, or past the cut: not held
                lo, hi = after, cut
                k, n, t, e = cols
                keep = [(lo is None or lo < key) and (hi is None or key <= hi) for key in k]
                cols = (_pick(k, keep), _pick(n, keep), _pick(t, keep), _pick(e, keep))
            keys += cols[0]
            sizes += cols[1]
            modified += cols[2]
            etags += cols[3]
            if limit is not None and len(keys) > limit:
                keys, sizes, modified, etags = _key_order(keys, sizes, modified, etags)
                del keys[limit:], sizes[limit:], modified[limit:], etags[limit:]
                cut = keys[-1]
        self.bound = cut
        keys, sizes, modified, etags = _key_order(keys, sizes, modified, etags)
        return ObjectTable(keys, sizes, modified, etags, keys_checked=True)

    def rows(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Current objects under `prefix`, file by file (each file's own order)."""
        for f in self.manifest.files:
            for k, n, t, e in zip(*self._file_columns(f), strict=True):
                if k.startswith(prefix):
                    yield ObjectInfo(k, n, e, t)

    def _file_columns(self, f: InventoryFile) -> tuple[list[str], list[int], list[datetime], list[str]]:
        """One data file's current objects as columns (`_Columns`), keys decoded and checked in
        bulk; per-row Python work only where a row needs it."""
        cols = {name: i for i, name in enumerate(self.manifest.columns)}
        st = self.stats
        st.files += 1
        text = gzip.decompress(self._data_file(f)).decode("utf-8", errors="replace")
        columns = _Columns.parse(text, len(cols), f.key)
        if not columns.rows:
            return [], [], [], []
        st.rows += columns.rows
        current = self._current(columns, cols)
        keys = _decoded_keys(columns[cols["Key"]], current)
        sizes = self._sizes(f, columns, cols.get("Size"), current)
        modified = self._modified(f, columns, cols.get("LastModifiedDate"), current)
        etag = cols.get("ETag")
        etags = _pick(columns[etag], current) if etag is not None else [""] * len(keys)
        bad_keys = invalid_keys(keys)
        if bad_keys:
            st.invalid_keys += len(bad_keys)
            st.invalid_example = st.invalid_example or f"{f.key}: {bad_keys[0][1]}"
            drop = {i for i, _ in bad_keys}
            keep = [i not in drop for i in range(len(keys))]
            keys, etags = _pick(keys, keep), _pick(etags, keep)
            sizes, modified = _pick(sizes, keep), _pick(modified, keep)
        st.current += len(keys)
        return keys, sizes, modified, etags

    def _current(self, columns: _Columns, cols: dict[str, int]) -> list[bool] | None:
        """Which rows are current objects (None: all of them); counts the others."""
        marker, latest, size = cols.get("IsDeleteMarker"), cols.get("IsLatest"), cols.get("Size")
        markers = columns[marker] if marker is not None else None
        latests = columns[latest] if latest is not None else None
        if (markers is None or "true" not in markers) and (latests is None or "false" not in latests):
            return None
        st = self.stats
        keep: list[bool] = []
        for i in range(columns.rows):
            if markers is not None and markers[i] == "true":
                st.delete_markers += 1
                keep.append(False)
            elif latests is not None and latests[i] == "false":
                st.noncurrent += 1
                st.noncurrent_bytes += int(columns[size][i] or 0) if size is not None else 0
                keep.append(False)
            else:
                keep.append(True)
        return keep

    def _sizes(
        self, f: InventoryFile, columns: _Columns, col: int | None, current: list[bool] | None
    ) -> list[int]:
        if col is None:
            return [0] * (columns.rows if current is None else sum(current))
        raw = _pick(columns[col], current)
        try:
            return list(map(int, raw))
        except ValueError:
            pass
        out = []
        for i, v in enumerate(raw):
            try:
                out.append(int(v) if v else 0)
            except ValueError:
                raise InputError(
                    "inventory.files", f"{f.key}: Size {v!r} is not a number (row {i + 1})"
                ) from None
        return out

    def _modified(
        self, f: InventoryFile, columns: _Columns, col: int | None, current: list[bool] | None
    ) -> list[datetime]:
        # no LastModifiedDate column: the report's own time (every object looks young: age rules
        # cannot match on a guess); the executor re-checks against the live object anyway
        epoch = self.manifest.created or datetime.now(UTC)
        if col is None:
            return [epoch] * (columns.rows if current is None else sum(current))
        raw = _pick(columns[col], current)
        parsed: dict[str, datetime] = {}
        for v in dict.fromkeys(raw):  # each distinct time parsed once
            try:
                t = datetime.fromisoformat(v) if v else epoch
            except ValueError:
                raise InputError(
                    "inventory.files", f"{f.key}: LastModifiedDate {v!r} is not an ISO time"
                ) from None
            parsed[v] = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        return list(map(parsed.__getitem__, raw))


class _Columns:
    """One data file's cells, column by column; each column is taken in one C-level step."""

    def __init__(self, rows: int, column: Callable[[int], list[str]]) -> None:
        self.rows = rows
        self._column = column
        self._cache: dict[int, list[str]] = {}

    def __getitem__(self, j: int) -> list[str]:
        if j not in self._cache:
            self._cache[j] = self._column(j)
        return self._cache[j]

    @classmethod
    def parse(cls, text: str, width: int, where: str) -> _Columns:
        cells = _plain_cells(text, width)
        if cells is not None:
            return cls(len(cells) // width, lambda j: cells[j::width])
        rows = list(csv.reader(io.StringIO(text, newline="")))
        bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
        if bad is not None:
            raise InputError(
                "inventory.files",
                f"{where} row {bad + 1}: {len(rows[bad])} fields, the fileSchema has {width}",
            )
        return cls(len(rows), lambda j: list(map(operator.itemgetter(j), rows)))


def _plain_cells(text: str, width: int) -> list[str] | None:
    """Every cell in row order, when the CSV is plain enough to split without a parser; None when
    `csv.reader` must read it.

    Plain: `\n` line ends, `width` fields a line, and either no quote at all or every field
    quoted with nothing inside the quotes that a parser would treat specially (AWS quotes every
    field and URL-encodes keys, so ',' '"' and newlines never occur inside one). Counting the
    separators proves it; `csv.reader` would read the same cells, ~5x slower."""
    if not text:
        return []
    body = text[:-1] if text.endswith("\n") else text
    if not body or "\r" in body:
        return None
    if '"' in body:  # every field quoted, no quote inside one: the quotes are all at separators
        seps, breaks = body.count('","'), body.count('"\n"')
        body = body.replace('","', ",").replace('"\n"', "\n")
        if len(body) < 2 or body[0] != '"' or body[-1] != '"':
            return None
        body = body[1:-1]
        # a quote left, or a ',' / newline that was not a separator: inside a field (the parser decides)
        if '"' in body or body.count(",") != seps or body.count("\n") != breaks:
            return None
    rows = body.count("\n") + 1
    if body.count(",") != (width - 1) * rows:
        return None  # a line of another width: the parser reads it and says which
    return body.replace("\n", ",").split(",")


def _key_order(
    keys: list[str], sizes: list[int], modified: list[datetime], etags: list[str]
) -> tuple[list[str], list[int], list[datetime], list[str]]:
    """The columns sorted by key (untouched when they already are)."""
    if len(keys) > 1 and any(map(operator.gt, keys, itertools.islice(keys, 1, None))):
        take = operator.itemgetter(*sorted(range(len(keys)), key=keys.__getitem__))
        return list(take(keys)), list(take(sizes)), list(take(modified)), list(take(etags))
    return keys, sizes, modified, etags


def _pick(column: list[T], keep: list[bool] | None) -> list[T]:
    return column if keep is None else list(itertools.compress(column, keep))


def _decoded_keys(column: list[str], keep: list[bool] | None) -> list[str]:
    """URL-decoded keys (AWS encodes them as a form value: '+' for a space, %XX for the rest).

    Most reports need no per-key work: one scan of the joined column finds no '%', and '+' is
    replaced in the joined text at C speed."""
    raw = _pick(column, keep)
    joined = "\n".join(raw)
    if "%" not in joined:
        if "+" not in joined:
            return raw
        out = joined.replace("+", " ").split("\n")
        if len(out) == len(raw):  # no key held a raw newline
            return out
    return [unquote_plus(k) if "%" in k or "+" in k else k for k in raw]


class InventoryListing:
    """A ListingSource that reads one inventory report instead of listing the bucket: the keys after
    `after`, at most `max_objects` of them (a pass's segment; `bound()` says where it ends)."""

    def __init__(self, location: str, *, after: str | None = None, max_objects: int | None = None) -> None:
        from storekeeper.stores.listing import ListingStats

        self.location = location
        self.after, self.max_objects = after, max_objects
        self.stats = ListingStats(source="inventory")
        self._inventory: Inventory | None = None
        self._all: ObjectTable | None = None  # every current object of the report, by key

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory(self.location)
        return self._inventory

    def table(self, store: ObjectStore, prefix: str) -> ObjectTable:
        """The report's current objects under `prefix`; the report is read once, whatever the prefixes."""
        from storekeeper.stores.listing import ListingStats

        inv = self.inventory()
        if inv.manifest.sourceBucket != store.bucket:
            raise StoreError(
                store.url,
                None,
                f"inventory {self.location} describes bucket {inv.manifest.sourceBucket}, not {store.bucket}",
            )
        start = time.perf_counter()
        if self._all is None:
            self._all = inv.table(after=self.after, limit=self.max_objects)
        items = self._all.under(prefix)
        self.stats = ListingStats(source="inventory", objects=len(items), requests=0, ranges=0)
        self.stats.seconds = time.perf_counter() - start
        st = inv.stats
        self.stats.notes.append(f"{st.files} data file(s), {st.rows} rows")
        if st.invalid_keys:
            self.stats.notes.append(
                f"{st.invalid_keys} row(s) with a key no store accepts were left out "
                f"(first: {st.invalid_example})"
            )
        return items

    def list(self, store: ObjectStore, prefix: str) -> list[ObjectInfo]:
        return self.table(store, prefix).infos()

    def bound(self) -> str | None:
        """The last key read when the memory bound cut the report short (None: it was not)."""
        return self._inventory.bound if self._inventory is not None and self._all is not None else None
