"""Query Lambda (optional, off by default): similarity queries over the published snapshot through a
Function URL with IAM auth. POST /query {"collection", "vector" | "vectors", "k", "where"?,
"where_document"?}. Thin on purpose: storekeeper.query_api holds one warm storekeeper.Reader per
collection across invocations (docs/readers.md). Imports chromadb, like the compactor.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, ServiceError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from storekeeper.errors import (
    BucketNotFound,
    InvalidName,
    NotFound,
    SnapshotUnavailable,
    UnknownCollection,
    ValidationError,
)
from storekeeper.netconfig import with_deadline
from storekeeper.query_api import answer, parse_request
from storekeeper.stores import default_store_url
from storekeeper.tracing import make_tracer

logger = Logger()
metrics = Metrics()
tracer = make_tracer()  # no X-Ray SDK import unless tracing is on
app = LambdaFunctionUrlResolver()


@app.post("/query")
@tracer.capture_method
def query() -> dict[str, Any]:
    try:
        request = parse_request(app.current_event.json_body)
        out = answer(default_store_url(), request)
    except (ValidationError, InvalidName) as exc:
        raise BadRequestError(str(exc)) from exc
    except (UnknownCollection, BucketNotFound) as exc:
        raise NotFoundError(str(exc)) from exc
    except SnapshotUnavailable as exc:
        logger.error("nothing to serve", extra={"cause": str(exc)})
        raise ServiceError(503, str(exc)) from exc
    except NotFound as exc:
        raise NotFoundError(str(exc)) from exc
    metrics.add_metric(name="Queries", unit=MetricUnit.Count, value=1)
    return out


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@tracer.capture_lambda_handler
@metrics.log_metrics
@with_deadline
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response
