"""The pointer: `snapshot/<c>/latest/pointer.txt` names the published version, changed only by a
conditional write. Its key, its body and version names are `storekeeper.layout`'s."""

from __future__ import annotations

from storekeeper.errors import CorruptObject, NotFound
from storekeeper.layout import new_version, parse_pointer_body, pointer_key, version_prefix
from storekeeper.stores.base import ObjectStore

__all__ = ["new_version", "pointer_key", "publish", "read_pointer", "version_prefix"]


def read_pointer(store: ObjectStore, collection: str) -> tuple[str | None, str | None]:
    """(version, etag) of the published snapshot; (None, None) when nothing is published yet."""
    key = pointer_key(collection)
    try:
        res = store.get(key)
    except NotFound:
        return None, None
    text = res.body.decode("utf-8", errors="replace").strip()
    version = parse_pointer_body(collection, text)
    if version is None:
        raise CorruptObject(
            store.url, key, f"pointer must be snapshot/{collection}/<version>/, got {text!r:.80}"
        )
    return version, res.etag


def publish(store: ObjectStore, collection: str, version: str, expected_etag: str | None) -> str:
    """Point `latest` at `version` with one conditional write; PreconditionFailed on a lost race."""
    body = version_prefix(collection, version).encode()
    if expected_etag is None:
        return store.put(pointer_key(collection), body, if_none_match=True, content_type="text/plain")
    return store.put(pointer_key(collection), body, if_match=expected_etag, content_type="text/plain")
