"""Record every AWS call a function's code makes, through botocore's event hooks.

Every client created while the recorder is installed gets two handlers:
`before-parameter-build` keeps the API parameters as the caller gave them, and
`after-call` adds the HTTP status the server answered (403 vs 404 matters, see
`authorization.py`). A call belongs to the function whose handler is running:
`storekeeper.runtime.invoke` sets `AWS_LAMBDA_FUNCTION_NAME` for the duration of
the call (as Lambda does), which threads started by the handler (the transfer
manager's, parallel listings) see too. Calls made by the test's own set-up run
outside any handler and are not recorded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session

#: the environment a call was made in: which store / queue / table the function was pointed at
ENV_KEYS = ("STOREKEEPER_STORE", "DELTA_QUEUE_URL", "CLEANUP_QUEUE_URL", "IDEMPOTENCY_TABLE")


@dataclass
class ApiCall:
    function: str
    service: str
    operation: str
    params: dict[str, Any]
    env: dict[str, str]
    status: int | None = None
    error: str = ""

    def brief(self) -> str:
        keys = {
            k: v for k, v in self.params.items() if k in ("Bucket", "Key", "Prefix", "QueueUrl", "TableName")
        }
        return (
            f"{self.function}: {self.service}.{self.operation} {keys} -> {self.status} {self.error}".strip()
        )


@dataclass
class Recorder:
    calls: list[ApiCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _params(self, params: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if not function or not isinstance(params, dict):
            return
        call = ApiCall(
            function=function,
            service=model.service_model.service_name,
            operation=model.name,
            params=_plain(params),
            env={k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        )
        context["_iam_call"] = call
        with self._lock:
            self.calls.append(call)

    def _answer(self, http_response: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        call = context.get("_iam_call")
        if call is None:
            return
        call.status = int(getattr(http_response, "status_code", 0) or 0)
        call.error = str((parsed or {}).get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._params)
        client.meta.events.register("after-call", self._answer)

    @contextmanager
    def installed(self) -> Iterator[Recorder]:
        """Attach to every botocore client created inside the block."""
        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            recorder.attach(client)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]

    def of(self, function: str) -> list[ApiCall]:
        return [c for c in self.calls if c.function == function]


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that name resources or carry condition keys (never bodies)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k == "Body":
            continue
        if k == "Delete" and isinstance(v, dict):
            out[k] = {"Objects": [dict(o) for o in v.get("Objects", [])]}
        elif isinstance(v, str | int | float | bool) or v is None or isinstance(v, dict | list):
            out[k] = v
    return out
