"""Put plans: what makes a killed put retryable to completion (issue 8.4).

A put with a `request_id`, once validated, claims a plan,
`idempotency/plans/<function>/<sha256>.json` (`layout.put_plan_key`), create-only: the hash of the request's
body and the first attempt's clock. Every attempt of that request (a retry after a
kill, a concurrent duplicate, an in-progress idempotency record) derives the same delta
ids from it and rewrites the same keys create-only, so it completes without writing
anything twice; the same request_id with a different body is refused by name. Kept
apart from `idempotency` so the producer's cold start does not import Powertools'
idempotency package for it.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import time

from pydantic import BaseModel, ConfigDict

from storekeeper.errors import CorruptObject, NotFound, PreconditionFailed, ValidationError
from storekeeper.layout import put_plan_key
from storekeeper.stores.base import ObjectStore


class RequestIdReused(ValidationError):
    """The request_id was already used for a different payload."""


class PutPlan(BaseModel):
    """The first attempt's facts for a request_id: its body's hash and its clock.

    Written create-only before the first delta, so every retry of the same request (a
    crashed run, a concurrent duplicate) derives the same delta ids and rewrites the same
    keys create-only; a different body under the same request_id is refused.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    request_id: str
    body_sha256: str
    created_ms: int


def claim_plan(
    store: ObjectStore, function_name: str, request_id: str, body_sha256: str, *, expiry_seconds: int
) -> PutPlan:
    """The request's plan: ours if first, else the stored one (a different body raises RequestIdReused)."""
    key = put_plan_key(function_name, request_id)
    mine = PutPlan(request_id=request_id, body_sha256=body_sha256, created_ms=int(time.time() * 1000))
    body = mine.model_dump_json().encode()
    for _ in range(3):
        try:
            store.put(key, body, if_none_match=True, content_type="application/json")
            return mine
        except PreconditionFailed:
            pass
        try:
            got = store.get(key)
        except NotFound:
            continue
        try:
            plan = PutPlan.model_validate_json(got.body)
        except ValueError:
            raise CorruptObject(store.url, key, "not a put plan") from None
        if plan.created_ms < mine.created_ms - expiry_seconds * 1000:  # older than any idempotency record
            try:
                store.put(key, body, if_match=got.etag, content_type="application/json")
                return mine
            except PreconditionFailed:
                continue
        if plan.body_sha256 != body_sha256:
            raise RequestIdReused(
                "request_id",
                "was already used for a different body (same request_id, other ids, vectors, "
                "metadata or documents): use a new request_id",
                request_id,
            )
        return plan
    raise PreconditionFailed(store.url, key, "the put plan keeps changing; retry")
