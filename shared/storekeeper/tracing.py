"""A Powertools Tracer only when tracing is on.

`Tracer()` imports the X-Ray SDK (~200-300 ms, which builds a botocore session
for its sampler) even when tracing is disabled, and that is paid on every cold
start. When tracing is off (Powertools' own rule: POWERTOOLS_TRACE_DISABLED, or
outside Lambda, or under `sam local` / Chalice) its decorators do nothing but
call the function, so a pass-through does the same without the import. When
tracing is on the real Tracer is built, exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

F = TypeVar("F", bound=Callable[..., Any])

TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
LAMBDA_TASK_ROOT_ENV = "LAMBDA_TASK_ROOT"
SAM_LOCAL_ENV = "AWS_SAM_LOCAL"
CHALICE_LOCAL_ENV = "AWS_CHALICE_CLI_MODE"
_TRUTHY = {"1", "y", "yes", "t", "true", "on"}


def tracing_disabled() -> bool:
    """The same decision as Powertools' `Tracer._is_tracer_disabled` (v3)."""
    if os.environ.get(TRACE_DISABLED_ENV, "false").strip().lower() in _TRUTHY:
        return True
    if not os.environ.get(LAMBDA_TASK_ROOT_ENV):
        return True
    return bool(os.environ.get(SAM_LOCAL_ENV) or os.environ.get(CHALICE_LOCAL_ENV))


class NoTracer:
    """Pass-through decorators with Tracer's call shapes (bare or with keyword arguments)."""

    disabled = True

    @overload
    def capture_lambda_handler(self, lambda_handler: F, **kwargs: Any) -> F: ...
    @overload
    def capture_lambda_handler(self, lambda_handler: None = None, **kwargs: Any) -> Callable[[F], F]: ...
    def capture_lambda_handler(self, lambda_handler: Any = None, **kwargs: Any) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda fn: fn)

    @overload
    def capture_method(self, method: F, **kwargs: Any) -> F: ...
    @overload
    def capture_method(self, method: None = None, **kwargs: Any) -> Callable[[F], F]: ...
    def capture_method(self, method: Any = None, **kwargs: Any) -> Any:
        return method if method is not None else (lambda fn: fn)


def make_tracer() -> Tracer | NoTracer:
    """Powertools' Tracer when tracing is on, else a NoTracer (no X-Ray SDK import)."""
    if tracing_disabled():
        return NoTracer()
    from aws_lambda_powertools import Tracer

    return Tracer()
