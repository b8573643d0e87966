"""`storekeeper compact <c>` and `storekeeper query <c>`: the compactor and a reader, run locally."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from storekeeper.cli.common import JsonOpt, StoreOpt, console, emit_json, friendly_errors, store_url
from storekeeper.errors import NotFound, ValidationError
from storekeeper.layout import REJECTED_PREFIX
from storekeeper.stores import open_store


def parse_vector(raw: str, dimension: int | None) -> list[float]:
    """A JSON list of finite numbers, of the collection's dimension."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError("vector", f"not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data or not all(isinstance(x, int | float) for x in data):
        raise ValidationError("vector", "must be a non-empty JSON list of numbers", raw)
    vec = [float(x) for x in data]
    if not all(math.isfinite(x) for x in vec):
        raise ValidationError("vector", "values must be finite (no NaN or inf)")
    if dimension is not None and len(vec) != dimension:
        raise ValidationError("vector", f"has dimension {len(vec)}, the collection has {dimension}")
    return vec


def run_query(
    store_url_: str | None, collection: str, *, record_id: str | None, vector: str | None, k: int,
    version: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Resolve (or pin) a version, open it verified, and return the k nearest neighbours."""
    from storekeeper import chroma
    from storekeeper.snapshots import load_manifest, open_snapshot, read_pointer

    if (record_id is None) == (vector is None):
        raise ValidationError("query", "give exactly one of --id or --vector")
    if k < 1:
        raise ValidationError("k", "must be at least 1", k)
    store = open_store(store_url(store_url_))
    pinned = version or read_pointer(store, collection)[0]
    dimension = load_manifest(store, collection, pinned).dimension if pinned else None
    col = open_snapshot(store, collection, pinned)
    if record_id is not None:
        emb = chroma.embedding_of(col, record_id)
        if emb is None:
            raise NotFound(
                store.url, f"collection {collection}", f"id {record_id!r} is not in version {pinned}"
            )
        query_vec = emb
    else:
        assert vector is not None
        query_vec = parse_vector(vector, dimension)
    hits = chroma.query(col, query_vec, k)
    return {
        "collection": collection,
        "version": pinned,
        "query": {"id": record_id} if record_id is not None else {"vector": query_vec},
        "hits": [
            {"id": h.id, "distance": h.distance, "metadata": h.metadata, "document": h.document} for h in hits
        ],
    }


def register(app: typer.Typer) -> None:
    """Add `compact` and `query` to the app."""

    @app.command("compact")
    def compact_command(
        collection: Annotated[str, typer.Argument(help="Collection to compact.")],
        max_deltas: Annotated[
            int, typer.Option("--max-deltas", min=1, help="Apply at most this many.")
        ] = 500,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Apply pending deltas to a new snapshot version and publish it (conditional pointer write)."""
        from storekeeper.compaction import compact
        from storekeeper.names import check_collection

        with friendly_errors(as_json):
            check_collection(collection)
            target = open_store(store_url(store))
            with console.status(f"compacting {collection}", spinner="dots"):
                result = compact(target, collection, max_deltas=max_deltas)
        if as_json:
            emit_json(result.to_json())
            return
        table = Table(title=f"compact {collection}")
        table.add_column("field")
        table.add_column("value")
        rows = {
            "status": result.status,
            "version": result.version or "-",
            "parent": result.parent or "-",
            "deltas applied": len(result.applied),
            "skipped (in ledger)": len(result.already_applied),
            "rejected": len(result.rejected),
            "pending (left for later)": len(result.pending),
            "records": result.record_count,
            "races lost": result.races_lost,
        }
        for name, value in rows.items():
            table.add_row(name, str(value))
        console.print(table)
        for did, reason in result.rejected.items():
            console.print(f"[yellow]rejected[/] {did}: {reason} (kept under {REJECTED_PREFIX})")

    @app.command("query")
    def query_command(
        collection: Annotated[str, typer.Argument(help="Collection to query.")],
        record_id: Annotated[str | None, typer.Option("--id", help="Use this record's vector.")] = None,
        vector: Annotated[str | None, typer.Option("--vector", help="A JSON list of numbers.")] = None,
        k: Annotated[int, typer.Option("-k", "--k", help="How many neighbours.")] = 5,
        version: Annotated[str | None, typer.Option("--version", help="Pin a snapshot version.")] = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Nearest neighbours from the published (or a pinned) snapshot, checksum-verified."""
        with friendly_errors(as_json):
            out = run_query(store, collection, record_id=record_id, vector=vector, k=k, version=version)
        if as_json:
            emit_json(out)
            return
        table = Table(title=f"{collection} @ {out['version'] or 'empty'}: {len(out['hits'])} hit(s)")
        for col in ("#", "id", "distance", "metadata", "document"):
            table.add_column(col)
        for i, h in enumerate(out["hits"], 1):
            meta = json.dumps(h["metadata"]) if h["metadata"] else ""
            doc = (h["document"] or "")[:60]
            table.add_row(str(i), h["id"], f"{h['distance']:.6f}", meta[:60], doc)
        console.print(table)
