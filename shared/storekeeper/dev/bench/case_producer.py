"""Case 3: the producer — latency of a 1,000 x 384 put, and what the delta format costs in bytes.

The put is timed in its real steps: validating the event into a PutRequest
(pydantic), cutting and encoding the deltas, then `producer.put` (which
re-encodes, writes create-only and notifies the queue). The byte cost compares
an encoded delta with the raw payload it carries: float32 vectors + UTF-8 ids
+ compact-JSON metadata.
"""

from __future__ import annotations

import json
from typing import Any

from storekeeper.dev.bench import data
from storekeeper.dev.bench.context import BenchContext
from storekeeper.dev.bench.report import CaseResult, TargetResult
from storekeeper.dev.bench.timing import median, rate, timed

NAME = "producer"
TITLE = "Producer: put latency and delta bytes per vector"
SIZE_TARGET = 1.1
SEED = 3


def put_event(n: int, dim: int, *, start: int = 0, request_id: str | None = None) -> dict[str, Any]:
    """A direct-invoke put as Lambda hands it over (already JSON-decoded)."""
    vecs = data.vectors(n, dim, SEED + start)
    metas = data.metadatas(n, start)
    event: dict[str, Any] = {
        "collection": "bench",
        "upserts": [
            {"id": rid, "embedding": v.tolist(), "metadata": m}
            for rid, v, m in zip(data.ids("p", n, start), vecs, metas, strict=True)
        ],
    }
    if request_id:
        event["request_id"] = request_id
    return event


def format_overhead(ctx: BenchContext, result: CaseResult) -> None:
    """Bytes of one encoded delta vs the raw bytes it carries."""
    from storekeeper.deltas import encode_delta
    from storekeeper.producer import parse_put_request, plan_deltas

    n, dim = ctx.sizes.producer_put, ctx.sizes.dim
    request = parse_put_request(put_event(n, dim))
    blobs = [encode_delta(c) for c in plan_deltas(request)]
    encoded = sum(len(b) for b in blobs)
    vec_bytes = n * dim * 4
    id_bytes = sum(len(r.id.encode()) for r in request.upserts)
    meta_bytes = sum(len(json.dumps(r.metadata, separators=(",", ":")).encode()) for r in request.upserts)
    raw = vec_bytes + id_bytes + meta_bytes
    p = {"vectors": n, "dimension": dim, "deltas": len(blobs)}
    result.add("delta_bytes", encoded, "bytes", "none", params=p)
    result.add(
        "raw_payload_bytes",
        raw,
        "bytes",
        "none",
        params=p,
        note=f"float32 {vec_bytes} + ids {id_bytes} + metadata JSON {meta_bytes}",
    )
    result.add("delta_bytes_per_vector", encoded / n, "bytes", "none", params=p)
    result.add("raw_float32_bytes_per_vector", dim * 4, "bytes", "none", params=p)
    result.add("delta_vs_raw", encoded / raw, "ratio", "none", params=p)
    result.targets.append(
        TargetResult.check(
            "delta_format_size",
            f"delta format <= {SIZE_TARGET}x raw float32 + ids + metadata",
            backend="none",
            op="<=",
            threshold=SIZE_TARGET,
            value=encoded / raw,
            unit="ratio",
        )
    )


def latency(ctx: BenchContext, result: CaseResult, backend: str) -> None:
    from storekeeper.deltas import encode_delta
    from storekeeper.idempotency import StorePersistenceLayer
    from storekeeper.producer import parse_put_request, plan_deltas, put

    n, dim = ctx.sizes.producer_put, ctx.sizes.dim
    store = ctx.backends.store(backend, "producer")
    queue, queue_kind = ctx.backends.queue(backend, "producer")
    p = {"vectors": n, "dimension": dim, "queue": queue_kind}
    steps: dict[str, list[float]] = {"validate": [], "encode": [], "put": [], "put_idempotent": []}
    persistence = StorePersistenceLayer(store, "producer")
    for i in range(ctx.sizes.producer_repeats):
        event = put_event(n, dim, start=i * n)
        with timed() as t:
            request = parse_put_request(event)
        steps["validate"].append(t.seconds)
        with timed() as t:
            blobs = [encode_delta(c) for c in plan_deltas(request)]
        steps["encode"].append(t.seconds)
        with timed() as t:
            out = put(request, store=store, queue=queue)  # encodes again, writes, notifies
        steps["put"].append(t.seconds)
        if len(out.deltas) != len(blobs) or not out.notified:
            raise RuntimeError(
                f"producer put on {backend}: {len(out.deltas)} deltas, notified={out.notified}"
            )
        keyed = parse_put_request(put_event(n, dim, start=(100 + i) * n, request_id=f"bench-{backend}-{i}"))
        with timed() as t:
            put(keyed, store=store, queue=queue, persistence=persistence)
        steps["put_idempotent"].append(t.seconds)
    for step, values in steps.items():
        result.add(f"{step}_seconds", median(values), "s", backend, params=p, note=f"median of {len(values)}")
    total = median([a + b for a, b in zip(steps["validate"], steps["put"], strict=True)])
    result.add(
        "end_to_end_seconds",
        total,
        "s",
        backend,
        params=p,
        note="validate + put (encode, write, notify), median",
    )
    result.add("end_to_end_rate", rate(n, total), "vectors/s", backend, params=p)


def run(ctx: BenchContext, result: CaseResult) -> None:
    import storekeeper.producer  # noqa: F401  (skip cleanly if the producer is missing)

    result.parameters.update(
        vectors=ctx.sizes.producer_put, dimension=ctx.sizes.dim, repeats=ctx.sizes.producer_repeats
    )
    format_overhead(ctx, result)
    for backend in ctx.backends.available():
        latency(ctx, result, backend)
