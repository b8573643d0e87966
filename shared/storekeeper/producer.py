"""Producer: validate a put, cut it into deltas, write them create-only, notify DeltaQueue.

Order matters for "bad input is never half-applied": the whole request is
parsed, validated and encoded before the first byte is written. Once deltas
are written they are facts: a failed notification is logged and reported
(`notified: false`) but not raised, because a raise would make the caller retry
into duplicate deltas, while the compactor's sweep finds pending deltas
without any message.

Idempotency: a request with `request_id` runs through Powertools
`idempotent_function` (DynamoDB when IDEMPOTENCY_TABLE is set, else records in
the store), so a retry returns the first response and writes nothing. If a
request fails half-way through writing (a store error), Powertools clears its
record and a retry writes the deltas again; replaying upserts/deletes of the
same ids is harmless to the result (same values, applied in delta_id order).

S3 events (bulk JSONL under `incoming/<c>/`): each record is handled on its
own, with request_id derived from bucket/key/etag so a duplicate delivery or a
Lambda retry of the event never duplicates a file's deltas. If any record
failed, `S3RecordsFailed` is raised *after* all were processed: Lambda's async
retry re-runs the event (the good records replay from their idempotency
records, writing nothing) and, when retries are exhausted, the event lands in
the DLQ/on-failure destination, naming the bad file(s).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from urllib.parse import unquote_plus

import pydantic

from storekeeper.collection_config import CollectionConfig, cached_config, config_key, create_config
from storekeeper.deltas import (
    DeltaContent,
    PackedVectors,
    RecordUpdate,
    encode_delta,
    list_pending,
    new_delta_id,
    read_delta,
    write_delta,
)
from storekeeper.errors import (
    CorruptObject,
    NotFound,
    PreconditionFailed,
    StorekeeperError,
    ValidationError,
    from_pydantic,
)
from storekeeper.layout import parse_delta_key, parse_incoming_key
from storekeeper.models.common import Strict, Token
from storekeeper.models.deltas import (
    DEFAULT_DISTANCE,
    ChromaId,
    DeltaNotification,
    PutRequest,
    UpdateRecord,
    UpsertRecord,
)
from storekeeper.names import check_collection
from storekeeper.put_plan import PutPlan, RequestIdReused, claim_plan
from storekeeper.queues import OutgoingMessage, Queue, QueueSendError
from storekeeper.snapshots import resolve
from storekeeper.stores.base import GetResult, ObjectStore

log = logging.getLogger(__name__)

MAX_VECTORS_PER_DELTA = 1000
MAX_BYTES_PER_DELTA = 4 * 1024 * 1024
MAX_DELETES_PER_DELTA = 10_000
MAX_LINE_BYTES = 1024 * 1024
MAX_INCOMING_BYTES = 64 * 1024 * 1024
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600
FUNCTION_NAME = "producer"


class S3RecordsFailed(StorekeeperError):
    """Some records of an S3 event failed; raised after all records were processed."""

    def __init__(self, failures: dict[str, str], results: dict[str, Any] | None = None) -> None:
        self.failures = failures
        self.results = results or {}
        shown = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:5])
        super().__init__(f"{len(failures)} S3 record(s) failed: {shown}")


class PutResult(Strict):
    """What a put wrote and whether DeltaQueue heard of it (the direct invoke's answer, typed)."""

    collection: str
    deltas: list[DeltaNotification] = []
    upserts: int = 0
    deletes: int = 0
    updates: int = 0
    notified: bool = True
    failed_notifications: list[str] = []

    @pydantic.model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        """A stored answer (idempotency) comes back with `delta_ids`, which `deltas` determines."""
        if isinstance(data, dict) and "delta_ids" in data:
            return {k: v for k, v in data.items() if k != "delta_ids"}
        return data

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def delta_ids(self) -> list[str]:
        """What to wait for to read one's own write: `Reader.wait_visible(result.delta_ids)`."""
        return [parse_delta_key(d.delta_key)[1] for d in self.deltas]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# -- parsing -------------------------------------------------------------------------
def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if part == "[key]":  # pydantic's marker after a dict key that failed: already rendered
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif (i + 1 < len(parts) and parts[i + 1] == "[key]") or out.endswith("metadata"):
            out += "[" + ascii(part) + "]"  # a metadata key: quoted, and printable whatever it holds
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_error(exc: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """The first pydantic error as our ValidationError, field path included (e.g. upserts[3].embedding)."""
    return from_pydantic(exc, root="request", prefix=prefix, loc=_loc)


def parse_put_request(event: object) -> PutRequest:
    """A direct-invoke event -> PutRequest, or ValidationError naming the field."""
    if not isinstance(event, dict):
        raise ValidationError("request", f"must be a JSON object, got {type(event).__name__}")
    if isinstance(event.get("collection"), str):
        check_collection(event["collection"])  # path tricks get the name check's clear message
    try:
        return PutRequest.model_validate(event)
    except pydantic.ValidationError as exc:
        raise validation_error(exc) from None


def parse_jsonl(
    collection: str, lines: Iterable[bytes | str], *, request_id: str | None = None
) -> PutRequest:
    """JSONL records -> PutRequest; every error names the 1-based line number and the field."""
    check_collection(collection)
    if request_id is not None:
        try:
            pydantic.TypeAdapter(Token).validate_python(request_id)
        except pydantic.ValidationError as exc:
            raise validation_error(exc, "request_id") from None
    upserts: list[UpsertRecord] = []
    deletes: list[str] = []
    updates: list[UpdateRecord] = []
    seen: dict[str, int] = {}
    dim: tuple[int, int] | None = None  # (dimension, line)
    delete_adapter: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(ChromaId)
    for n, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise ValidationError(f"line {n}", f"longer than {MAX_LINE_BYTES} bytes")
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"line {n}", f"not valid UTF-8 (byte {exc.start + 1} of the line)"
            ) from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"line {n}", f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValidationError(f"line {n}", "must be a JSON object")
        if "delete" in obj:
            if set(obj) != {"delete"}:
                raise ValidationError(f"line {n}", "a delete line has only the 'delete' field")
            try:
                rid = str(delete_adapter.validate_python(obj["delete"]))
            except pydantic.ValidationError as exc:
                raise validation_error(exc, f"line {n}: delete") from None
            if rid in seen:
                raise ValidationError(f"line {n}: delete", f"id {rid!r} already appears on line {seen[rid]}")
            seen[rid] = n
            deletes.append(rid)
            continue
        if "update" in obj:
            try:
                upd = UpdateRecord.model_validate({("id" if k == "update" else k): v for k, v in obj.items()})
            except pydantic.ValidationError as exc:
                raise validation_error(exc, f"line {n}:") from None
            if upd.id in seen:
                first = seen[upd.id]
                raise ValidationError(f"line {n}: update", f"id {upd.id!r} already appears on line {first}")
            seen[upd.id] = n
            updates.append(upd)
            continue
        try:
            rec = UpsertRecord.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise validation_error(exc, f"line {n}:") from None
        if rec.id in seen:
            raise ValidationError(f"line {n}: id", f"{rec.id!r} already appears on line {seen[rec.id]}")
        seen[rec.id] = n
        if dim is None:
            dim = (len(rec.embedding), n)
        elif len(rec.embedding) != dim[0]:
            raise ValidationError(
                f"line {n}: embedding", f"has dimension {len(rec.embedding)}, line {dim[1]} has {dim[0]}"
            )
        upserts.append(rec)
    if not upserts and not deletes and not updates:
        raise ValidationError("file", "no records: every line was empty")
    # cross-record checks are done above with line numbers; skip re-validating every vector
    return PutRequest.model_construct(
        collection=collection, upserts=upserts, deletes=deletes, updates=updates, request_id=request_id
    )


# -- collection dimension ----------------------------------------------------------------
def collection_dimension(store: ObjectStore, collection: str) -> tuple[int | None, str]:
    """(dimension, where it came from): the live snapshot, else the newest readable pending delta."""
    published = resolve(store, collection)  # a pointer to a missing/corrupt target raises, never guesses
    if published is not None and published.manifest.dimension is not None:
        return published.manifest.dimension, f"snapshot {published.version}"
    for info in reversed(list_pending(store, collection)):
        try:
            content = read_delta(store, info.key)
        except (CorruptObject, NotFound) as exc:
            log.warning("skipping unreadable pending delta for dimension check", extra={"error": str(exc)})
            continue
        if content.dimension is not None:
            return content.dimension, f"pending delta {info.key}"
    return None, "empty collection"


# -- chunking ------------------------------------------------------------------------
def _upsert_bytes(r: UpsertRecord) -> int:
    size = 2 + len(r.id.encode()) + 4 * len(r.embedding) + 16
    if r.metadata is not None:
        size += len(json.dumps(r.metadata, separators=(",", ":")).encode())
    if r.document is not None:
        size += len(r.document.encode()) + 2
    return size


def planned_delta_id(plan: PutPlan, index: int) -> str:
    """Chunk `index` of a planned put: the first attempt's ms + index, a suffix from request and body."""
    digest = hashlib.sha256(f"{plan.request_id}\n{plan.body_sha256}\n{index}".encode()).digest()
    n, suffix = int.from_bytes(digest[:8], "big"), ""
    while len(suffix) < 10:
        n, r = divmod(n, 36)
        suffix += "0123456789abcdefghijklmnopqrstuvwxyz"[r]
    return f"{plan.created_ms + index:013d}-{suffix}"


def body_sha256(request: PutRequest) -> str:
    """The hash of everything a put carries but its request_id: what a reused request_id is compared on."""
    return hashlib.sha256(request.model_dump_json(exclude={"request_id"}).encode()).hexdigest()


def plan_deltas(
    request: PutRequest,
    *,
    now: datetime | None = None,
    max_vectors: int = MAX_VECTORS_PER_DELTA,
    max_bytes: int = MAX_BYTES_PER_DELTA,
    max_deletes: int = MAX_DELETES_PER_DELTA,
    plan: PutPlan | None = None,
) -> list[DeltaContent]:
    """Cut a request into deltas of at most `max_vectors` upserts / ~`max_bytes`, in request order.

    With a `plan` (a request_id's), delta ids and timestamps derive from it and the chunk
    index, so every attempt of that request writes the very same keys and bytes.
    """
    created = datetime.fromtimestamp(plan.created_ms / 1000, UTC) if plan else (now or datetime.now(UTC))
    groups: list[tuple[list[UpsertRecord], list[str], list[RecordUpdate]]] = []
    ups: list[UpsertRecord] = []
    dels: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal ups, dels, size
        if ups or dels:
            groups.append((ups, dels, []))
        ups, dels, size = [], [], 0

    for r in request.upserts:
        b = _upsert_bytes(r)
        if ups and (len(ups) >= max_vectors or size + b > max_bytes):
            flush()
        ups.append(r)
        size += b
    for d in request.deletes:
        b = 2 + len(d.encode())
        if (ups or dels) and (len(dels) >= max_deletes or size + b > max_bytes):
            flush()
        dels.append(d)
        size += b
    flush()
    # partial updates go last, in deltas of their own (an id appears once in a request, so order is free)
    patches: list[RecordUpdate] = []
    for u in request.updates:
        patch = RecordUpdate(u.id, u.metadata, u.document, u.sets_document)
        b = len(json.dumps(patch.to_json(), separators=(",", ":")).encode())
        if patches and (len(patches) >= max_deletes or size + b > max_bytes):
            groups.append(([], [], patches))
            patches, size = [], 0
        patches.append(patch)
        size += b
    if patches:
        groups.append(([], [], patches))

    out: list[DeltaContent] = []
    for index, (ups, dels, patches) in enumerate(groups):
        out.append(
            DeltaContent(
                collection=request.collection,
                delta_id=planned_delta_id(plan, index) if plan else new_delta_id(),
                created_at=created,
                ids=[r.id for r in ups],
                embeddings=PackedVectors([r.embedding for r in ups]),
                metadatas=[r.metadata for r in ups],
                documents=[r.document for r in ups],
                deletes=list(dels),
                updates=patches,
            )
        )
    return out


# -- the put -----------------------------------------------------------------------------
def _notify(queue: Queue, notes: list[DeltaNotification]) -> list[str]:
    """Send one message per delta; returns the keys whose message was not accepted."""
    msgs = [OutgoingMessage(n.model_dump_json(), group_id=n.collection, dedup_id=n.delta_id) for n in notes]
    try:
        queue.send_batch(msgs)
    except QueueSendError as exc:
        return [notes[i].delta_key for i in sorted(exc.failures)]
    except Exception as exc:  # a local queue's OSError and the like: the deltas are still safe
        log.error("delta notification failed", extra={"queue": queue.url, "error": str(exc)})
        return [n.delta_key for n in notes]
    return []


def check_collection_config(store: ObjectStore, request: PutRequest) -> None:
    """Refuse a put whose dimension (or distance) differs from the collection's config.

    The first put with vectors creates the config (create-only: of two racing first
    writes one wins, the other is refused here); delete- and update-only puts need none.
    """
    dim = request.dimension
    if dim is None:
        return
    c = request.collection
    cfg = cached_config(store, c)
    if cfg is None:
        legacy, source = collection_dimension(store, c)  # a collection from before configs existed
        if legacy is not None and legacy != dim:  # refused: write nothing, not even the config
            raise ValidationError(
                "upserts[0].embedding", f"has dimension {dim} but collection {c!r} has {legacy} ({source})"
            )
        cfg = create_config(store, c, dim, request.distance or DEFAULT_DISTANCE)

    def clash(cfg: CollectionConfig) -> bool:
        return cfg.dimension != dim or (request.distance is not None and request.distance != cfg.distance)

    if clash(cfg):
        cfg = cached_config(store, c, refresh=True) or cfg  # the cache may predate a re-created collection
    if cfg.dimension != dim:
        raise ValidationError(
            "upserts[0].embedding",
            f"has dimension {dim} but collection {c!r} has {cfg.dimension} ({config_key(c)})",
        )
    if clash(cfg):
        raise ValidationError(
            "distance",
            f"is {request.distance!r} but collection {c!r} uses {cfg.distance!r} ({config_key(c)})",
        )


def put_unchecked(
    request: PutRequest,
    *,
    store: ObjectStore,
    queue: Queue,
    on_delta: Any = None,
    body_digest: str | None = None,
) -> PutResult:
    """The put without idempotency records: encode all, check against the collection, write all, notify.

    With a request_id, the request's plan is claimed once everything validated (a refused
    request leaves nothing, so the fixed body may reuse its request_id) and the deltas
    take their ids from it.
    """
    contents = plan_deltas(request)
    blobs = [encode_delta(c) for c in contents]  # validates every delta before anything is written
    check_collection_config(store, request)  # may create the config: after every other check
    plan = None
    if request.request_id is not None:
        digest = body_digest or body_sha256(request)
        plan = claim_plan(
            store, FUNCTION_NAME, request.request_id, digest, expiry_seconds=IDEMPOTENCY_EXPIRY_SECONDS
        )
        contents = plan_deltas(request, plan=plan)
        blobs = [encode_delta(c) for c in contents]
    notes: list[DeltaNotification] = []
    for content, blob in zip(contents, blobs, strict=True):
        notes.append(write_delta(store, content, blob=blob, rewrite_ok=plan is not None))
        if on_delta is not None:
            on_delta(len(content.ids) + len(content.deletes) + len(content.updates))
    failed = _notify(queue, notes)
    if failed:
        log.error(
            "delta notification failed; the deltas stay pending for the compactor's sweep",
            extra={"queue": queue.url, "failed": failed},
        )
    return PutResult(
        collection=request.collection,
        deltas=notes,
        upserts=len(request.upserts),
        deletes=len(request.deletes),
        updates=len(request.updates),
        notified=not failed,
        failed_notifications=failed,
    )


class _LocalContext:
    """Remaining time for idempotency's in-progress expiry when not running in Lambda."""

    def __init__(self, budget_ms: int = 15 * 60 * 1000) -> None:
        self.budget_ms = budget_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.budget_ms


def put(
    request: PutRequest,
    *,
    store: ObjectStore,
    queue: Queue,
    persistence: Any = None,
    lambda_context: Any = None,
    on_delta: Any = None,
) -> PutResult:
    """The put, deduplicated on `request.request_id` (see the module doc and storekeeper.put_plan).

    A completed request answers from its idempotency record and writes nothing. One still
    "in progress" (a killed attempt, or a duplicate running now) is not refused: it runs
    again from the same plan, rewriting the same delta keys create-only, so a retry always
    completes. The same request_id with another body is refused (RequestIdReused).
    """
    if request.request_id is None or persistence is None:
        return put_unchecked(request, store=store, queue=queue, on_delta=on_delta)
    digest = body_sha256(request)

    from storekeeper.idempotency import (
        IdempotencyAlreadyInProgressError,
        IdempotencyConfig,
        IdempotencyValidationError,
        idempotent_function,
    )

    cfg = IdempotencyConfig(
        event_key_jmespath="request_id",
        payload_validation_jmespath="body_sha256",
        expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
    )
    cfg.register_lambda_context(cast(Any, lambda_context or _LocalContext()))

    def run(key: dict[str, str]) -> dict[str, Any]:
        return put_unchecked(
            request, store=store, queue=queue, on_delta=on_delta, body_digest=digest
        ).to_dict()

    idempotent_run = cast(
        Callable[..., dict[str, Any]],
        idempotent_function(
            data_keyword_argument="key",
            config=cfg,
            persistence_store=persistence,
            key_prefix="storekeeper.producer.put",
        )(run),
    )

    try:
        out = idempotent_run(key={"request_id": request.request_id, "body_sha256": digest})
    except IdempotencyAlreadyInProgressError:
        log.warning(
            "request_id in progress: running it again from its plan (same delta keys, create-only)",
            extra={"request_id": request.request_id},
        )
        return put_unchecked(request, store=store, queue=queue, on_delta=on_delta, body_digest=digest)
    except IdempotencyValidationError:
        raise RequestIdReused(
            "request_id",
            "was already used for a different body (same request_id, other ids, vectors, metadata "
            "or documents): use a new request_id",
            request.request_id,
        ) from None
    return PutResult.model_validate(out)


# -- S3 events -------------------------------------------------------------------------------
class IncomingObject(NamedTuple):
    bucket: str
    key: str
    size: int | None
    etag: str | None
    version_id: str | None = None  # the version the event is about (versioned buckets)


def s3_objects(event: dict[str, Any]) -> list[IncomingObject]:
    """S3 notification (Records) or EventBridge 'Object Created' -> the objects it names."""
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, S3Model

    from storekeeper.batch import event_records

    try:
        if "Records" in event:
            event_records(event)  # a Records that is not a list of objects: named, not Powertools' words
            s3 = parse(event=event, model=S3Model)
            out = []
            for i, r in enumerate(s3.Records):
                if not r.eventName.startswith("ObjectCreated"):
                    raise ValidationError(f"Records[{i}].eventName", "only ObjectCreated events are accepted")
                o = r.s3.object
                if o is None:
                    raise ValidationError(f"Records[{i}].s3.object", "missing")
                out.append(
                    IncomingObject(r.s3.bucket.name, unquote_plus(o.key), _int(o.size), o.eTag, o.versionId)
                )
            return out
        eb = parse(event=event, model=S3EventNotificationEventBridgeModel)
        if eb.detail_type != "Object Created":
            raise ValidationError("detail-type", "only 'Object Created' events are accepted", eb.detail_type)
        o2 = eb.detail.object
        return [IncomingObject(eb.detail.bucket.name, o2.key, _int(o2.size), o2.etag, o2.version_id)]
    except pydantic.ValidationError as exc:
        raise validation_error(exc, "event") from None
    except Exception as exc:
        if isinstance(exc, StorekeeperError):
            raise
        # Powertools wraps pydantic's error in its own ValidationError type
        cause = exc.__cause__ if isinstance(exc.__cause__, pydantic.ValidationError) else None
        if cause is not None:
            raise validation_error(cause, "event") from None
        raise ValidationError("event", f"not an S3 ObjectCreated event: {exc}") from None


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def _lines(body: bytes) -> Iterator[bytes]:
    yield from body.split(b"\n")


def _bare(etag: str | None) -> str:
    return (etag or "").strip().strip('"')


def read_incoming(store: ObjectStore, obj: IncomingObject) -> GetResult | str:
    """The exact bytes the event is about, or why there are none (a string).

    The event's version when it names one; else the current object, only if its ETag is
    the event's: two quick uploads to one key must not process the second file twice.
    """
    if obj.version_id and store.scheme == "s3":
        try:
            return store.get_version(obj.key, obj.version_id)
        except NotFound:
            return f"version {obj.version_id} is gone: already processed (and removed) or deleted"
    try:
        got = store.get(obj.key)
    except NotFound:
        return "gone: already processed (and removed) or deleted"
    if obj.etag and _bare(got.etag) != _bare(obj.etag):
        return (
            f"replaced: the object now has ETag {_bare(got.etag)}, the event names {_bare(obj.etag)}; "
            "the newer upload's own event processes it (use a versioned bucket to keep both)"
        )
    return got


def remove_incoming(store: ObjectStore, obj: IncomingObject, got: GetResult) -> bool:
    """Delete the processed file (that version only; a newer upload to the key stays)."""
    try:
        if obj.version_id and store.scheme == "s3":
            store.delete_version(obj.key, obj.version_id)
        else:
            store.delete(obj.key, if_match=got.etag)
    except (PreconditionFailed, NotFound):
        return False
    except StorekeeperError as exc:  # the deltas are written: a leftover file is not a failed put
        log.warning("could not remove a processed incoming file", extra={"key": obj.key, "error": str(exc)})
        return False
    return True


def put_incoming(
    obj: IncomingObject,
    *,
    store: ObjectStore,
    queue: Queue,
    persistence: Any = None,
    lambda_context: Any = None,
) -> dict[str, Any]:
    """One bulk JSONL object -> a put, deduplicated on bucket/key/version (or ETag); then the file goes."""
    collection = parse_incoming_key(obj.key)
    if store.scheme != "file" and obj.bucket != store.bucket:
        raise ValidationError(
            "bucket", f"event names bucket {obj.bucket!r} but this producer serves {store.url}"
        )
    if obj.size is not None and obj.size > MAX_INCOMING_BYTES:
        raise ValidationError(
            "size", f"{obj.size} bytes is more than the {MAX_INCOMING_BYTES}-byte limit", obj.key
        )
    got = read_incoming(store, obj)
    if isinstance(got, str):
        log.warning("incoming file skipped", extra={"key": obj.key, "reason": got})
        return {"skipped": got}
    if len(got.body) > MAX_INCOMING_BYTES:
        raise ValidationError(
            "size", f"{len(got.body)} bytes is more than the {MAX_INCOMING_BYTES}-byte limit"
        )
    tag = obj.version_id or _bare(obj.etag or got.etag)
    request_id = "s3-" + hashlib.sha256(f"{obj.bucket}/{obj.key}/{tag}".encode()).hexdigest()[:48]
    request = parse_jsonl(collection, _lines(got.body), request_id=request_id)
    result = put(request, store=store, queue=queue, persistence=persistence, lambda_context=lambda_context)
    return {**result.to_dict(), "removed": remove_incoming(store, obj, got)}


def handle_s3_event(
    event: dict[str, Any],
    *,
    store: ObjectStore,
    queue: Queue,
    persistence: Any = None,
    lambda_context: Any = None,
) -> dict[str, Any]:
    """Each record on its own; raises S3RecordsFailed at the end if any failed (see module doc)."""
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for obj in s3_objects(event):
        name = f"{obj.bucket}/{obj.key}"
        try:
            results[name] = put_incoming(
                obj, store=store, queue=queue, persistence=persistence, lambda_context=lambda_context
            )
        except Exception as exc:  # one bad or unreadable file must not block the others
            log.error("bulk file failed", extra={"object": name, "error": str(exc)})
            failures[name] = f"{type(exc).__name__}: {exc}"
    if failures:
        raise S3RecordsFailed(failures, results)
    return {"records": results}
