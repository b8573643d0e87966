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
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storekeeper.errors import CorruptObject, StoreError
from storekeeper.errors import ValidationError as InputError
from storekeeper.stores.base import ObjectInfo, ObjectStore

REQUIRED_COLUMNS = ("Bucket", "Key")


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)
    MD5checksum: str | None = None


class InventoryManifest(BaseModel):
    """The fields of AWS's `manifest.json` that planning needs."""

    model_config = ConfigDict(extra="ignore")

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
        from datetime import UTC

        return datetime.fromtimestamp(int(self.creationTimestamp) / 1000, UTC)


@dataclass
class InventoryStats:
    files: int = 0
    rows: int = 0
    current: int = 0
    noncurrent: int = 0
    delete_markers: int = 0
    noncurrent_bytes: int = 0


class Inventory:
    """One inventory report: its manifest, and its rows as current objects in key order."""

    def __init__(self, location: str, *, store_for: type[ObjectStore] | None = None) -> None:
        self.location = location
        self.stats = InventoryStats()
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
    def rows(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Current objects under `prefix`, file by file (each file's own order)."""
        cols = {name: i for i, name in enumerate(self.manifest.columns)}
        k, size = cols["Key"], cols.get("Size")
        mod, etag = cols.get("LastModifiedDate"), cols.get("ETag")
        latest, marker = cols.get("IsLatest"), cols.get("IsDeleteMarker")
        # no LastModifiedDate column: the report's own time (every object looks young: age rules
        # cannot match on a guess); the executor re-checks against the live object anyway
        epoch = self.manifest.created or datetime.now().astimezone()
        st = self.stats
        for f in self.manifest.files:
            st.files += 1
            text = io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(self._data_file(f))), encoding="utf-8")
            for row in csv.reader(text):
                st.rows += 1
                key = row[k]
                if "%" in key or "+" in key:
                    key = unquote_plus(key)
                if not key.startswith(prefix):
                    continue
                if marker is not None and row[marker] == "true":
                    st.delete_markers += 1
                    continue
                n = int(row[size]) if size is not None and row[size] else 0
                if latest is not None and row[latest] == "false":
                    st.noncurrent += 1
                    st.noncurrent_bytes += n
                    continue
                st.current += 1
                yield ObjectInfo(
                    key=key,
                    size=n,
                    etag=row[etag] if etag is not None else "",
                    last_modified=datetime.fromisoformat(row[mod]) if mod is not None and row[mod] else epoch,
                )


class InventoryListing:
    """A ListingSource that reads one inventory report instead of listing the bucket."""

    def __init__(self, location: str) -> None:
        from storekeeper.stores.listing import ListingStats

        self.location = location
        self.stats = ListingStats(source="inventory")
        self._inventory: Inventory | None = None
        self._all: list[ObjectInfo] | None = None  # every current object of the report, by key
        self._keys: list[str] = []

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory(self.location)
        return self._inventory

    def list(self, store: ObjectStore, prefix: str) -> list[ObjectInfo]:
        """The report's current objects under `prefix`; the report is read once, whatever the prefixes."""
        import bisect
        import time

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
            self._all = sorted(inv.rows(), key=lambda i: i.key)
            self._keys = [i.key for i in self._all]
        lo = bisect.bisect_left(self._keys, prefix)
        hi = bisect.bisect_left(self._keys, prefix + "\U0010ffff") if prefix else len(self._keys)
        items = self._all[lo:hi]
        self.stats = ListingStats(source="inventory", objects=len(items), requests=0, ranges=0)
        self.stats.seconds = time.perf_counter() - start
        self.stats.notes.append(f"{inv.stats.files} data file(s), {inv.stats.rows} rows")
        return items
