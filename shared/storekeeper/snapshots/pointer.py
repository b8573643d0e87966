"""The pointer: `snapshot/<c>/latest/pointer.txt` names the published version, changed only by a
conditional write (DESIGN §3.1). Version names are made here too: they sort in publish order."""

from __future__ import annotations

import re
import secrets
import string

from storekeeper.errors import CorruptObject, NotFound
from storekeeper.models.snapshots import VERSION_PATTERN
from storekeeper.names import check_collection
from storekeeper.stores.base import ObjectStore

_VERSION_RE = re.compile(VERSION_PATTERN)
_SUFFIX = string.ascii_lowercase + string.digits


def pointer_key(collection: str) -> str:
    return f"snapshot/{check_collection(collection)}/latest/pointer.txt"


def version_prefix(collection: str, version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise CorruptObject("<snapshot>", None, f"version {version!r:.60} is not <12-digit seq>-<8 chars>")
    return f"snapshot/{check_collection(collection)}/{version}/"


def new_version(parent: str | None) -> str:
    """Parent's sequence + 1 and a random suffix: sorts in publish order, unique under races."""
    seq = int(parent.split("-", 1)[0]) + 1 if parent else 1
    return f"{seq:012d}-" + "".join(secrets.choice(_SUFFIX) for _ in range(8))


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


def publish(store: ObjectStore, collection: str, version: str, expected_etag: str | None) -> str:
    """Point `latest` at `version` with one conditional write; PreconditionFailed on a lost race."""
    body = version_prefix(collection, version).encode()
    if expected_etag is None:
        return store.put(pointer_key(collection), body, if_none_match=True, content_type="text/plain")
    return store.put(pointer_key(collection), body, if_match=expected_etag, content_type="text/plain")
