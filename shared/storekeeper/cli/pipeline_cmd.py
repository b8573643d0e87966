"""`storekeeper compact <c>` and `storekeeper query <c>`: the compactor and a reader, run locally."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from storekeeper.cli.common import (
    JsonOpt,
    StoreOpt,
    console,
    emit_json,
    friendly_errors,
    open_cli_store,
    store_url,
)
from storekeeper.errors import NotFound, ValidationError
from storekeeper.layout import REJECTED_PREFIX


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


def parse_filter(name: str, raw: str | None) -> dict[str, Any] | None:
    """A chromadb filter given as a JSON object (`--where '{"lang": "en"}'`)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(name, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(name, "must be a JSON object (a chromadb filter)", raw)
    return data


def run_query(
    store_url_: str | None, collection: str, *, record_id: str | None, vector: str | None, k: int,
    version: str | None, where: str | None = None, where_document: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Open the published (or a pinned) version through a Reader and return the k nearest neighbours."""
    from storekeeper.reader import Reader

    if (record_id is None) == (vector is None):
        raise ValidationError("query", "give exactly one of --id or --vector")
    if k < 1:
        raise ValidationError("k", "must be at least 1", k)
    filters = {
        "where": parse_filter("where", where),
        "where_document": parse_filter("where_document", where_document),
    }
    with Reader(store_url(store_url_), collection, version=version, auto_refresh=False) as reader:
        if record_id is not None:
            query_vec = reader.embedding(record_id)
            if query_vec is None:
                why = f"id {record_id!r} is not in version {reader.version}"
                raise NotFound(reader.store.url, f"collection {collection}", why)
        else:
            assert vector is not None
            manifest = reader.manifest
            query_vec = parse_vector(vector, manifest.dimension if manifest else None)
        res = reader.query(query_vec, k, **filters)
    return {
        "collection": collection,
        "version": res.version,
        "query": {"id": record_id} if record_id is not None else {"vector": query_vec},
        **{name: value for name, value in filters.items() if value is not None},
        "hits": [
            {"id": i, "distance": d, "metadata": m, "document": doc}
            for i, d, m, doc in zip(
                res.ids[0], res.distances[0], res.metadatas[0], res.documents[0], strict=True
            )
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
            target = open_cli_store(store, writes=True)
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
        where: Annotated[
            str | None, typer.Option("--where", help='Metadata filter, JSON: \'{"lang": "en"}\'.')
        ] = None,
        where_document: Annotated[
            str | None, typer.Option("--where-document", help='Document filter: \'{"$contains": "x"}\'.')
        ] = None,
        store: StoreOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Nearest neighbours from the published (or a pinned) snapshot, checksum-verified."""
        with friendly_errors(as_json):
            out = run_query(
                store, collection, record_id=record_id, vector=vector, k=k, version=version,
                where=where, where_document=where_document,
            )  # fmt: skip
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
