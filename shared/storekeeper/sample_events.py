"""Point the sample events of `events/` at the store `storekeeper invoke` runs against.

The samples name the deployed bucket (`storekeeper-<stage>-<account>-<region>`), as
`sam local invoke -e` wants. Run with `storekeeper invoke --store URL`, each reference
to that bucket is rewritten to the chosen store, so a local run never reaches real S3:

* S3 `ObjectCreated` records: the bucket becomes the store's; when the object is not in the
  store and a file with the key's name lies next to the event file
  (`events/producer/batch.jsonl` for `incoming/docs/batch.jsonl`), it is uploaded first,
  and the record's etag and size follow it (its versionId, meaningless there, is dropped);
* cleanup tasks in SQS record bodies: `backend` and `bucket` become the store's.

Nothing else in an event is touched; an event naming another bucket is left alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storekeeper.errors import NotFound
from storekeeper.stores.base import ObjectStore

#: the deployed bucket's name pattern (template.yaml), with the samples' account and region
SAMPLE_BUCKET_RE = re.compile(r"^storekeeper-[a-z0-9-]+-\d{12}-[a-z]{2}-[a-z]+-\d$")


@dataclass
class Retargeted:
    event: Any
    notes: list[str] = field(default_factory=list)


def _is_sample(bucket: object) -> bool:
    return isinstance(bucket, str) and bool(SAMPLE_BUCKET_RE.fullmatch(bucket))


def retarget(event: Any, store: ObjectStore, event_path: Path | None = None) -> Retargeted:
    """A copy of `event` aimed at `store`, and a note per change made."""
    out = Retargeted(copy.deepcopy(event))
    records = out.event.get("Records") if isinstance(out.event, dict) else None
    if not isinstance(records, list):
        return out
    for rec in records:
        if not isinstance(rec, dict):
            continue
        s3 = rec.get("s3")
        if (
            isinstance(s3, dict)
            and isinstance(s3.get("bucket"), dict)
            and _is_sample(s3["bucket"].get("name"))
        ):
            _retarget_s3(rec, s3, store, event_path, out.notes)
        body = rec.get("body")
        if isinstance(body, str) and '"bucket"' in body:
            try:
                task = json.loads(body)
            except ValueError:
                continue
            if isinstance(task, dict) and _is_sample(task.get("bucket")):
                out.notes.append(
                    f"cleanup task {task.get('task_id')}: bucket {task['bucket']} -> {store.url}"
                )
                task["backend"], task["bucket"] = store.scheme, store.bucket
                rec["body"] = json.dumps(task)
                rec["md5OfBody"] = hashlib.md5(rec["body"].encode(), usedforsecurity=False).hexdigest()
    return out


def _retarget_s3(rec: dict[str, Any], s3: dict[str, Any], store: ObjectStore, event_path: Path | None,
                 notes: list[str]) -> None:  # fmt: skip
    old = s3["bucket"]["name"]
    s3["bucket"]["name"] = store.bucket
    s3["bucket"]["arn"] = f"arn:aws:s3:::{store.bucket}"
    notes.append(f"S3 record: bucket {old} -> {store.url}")
    obj = s3.get("object") if isinstance(s3.get("object"), dict) else None
    key = obj.get("key") if obj else None
    if obj is None or not isinstance(key, str):
        return
    try:
        info = store.head(key)
    except NotFound:
        sample = event_path.parent / key.rsplit("/", 1)[-1] if event_path is not None else None
        if sample is None or not sample.is_file():
            return
        store.put_file(key, sample, content_type="application/x-ndjson")
        info = store.head(key)
        notes.append(f"uploaded {sample} as {key} (the sample's object)")
    obj["eTag"], obj["size"] = info.etag.strip('"'), info.size
    obj.pop("versionId", None)
