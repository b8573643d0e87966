"""Run a function's handler locally the way Lambda (or `sam local invoke`) would, without Docker.

The handler file is loaded by path from `functions/<name>/app.py`, with its own
directory first on `sys.path` (as `/var/task` is in Lambda), inside an
environment that names the store and queues, and is given a context object
with the attributes Powertools reads (`function_name`, `aws_request_id`,
`get_remaining_time_in_millis()`...). The timeout is enforced with a timer
signal when running on the main thread, so a handler that overruns fails like
it would in Lambda instead of hanging the CLI.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from storekeeper import config
from storekeeper.errors import ValidationError
from storekeeper.stores import default_store_url

FUNCTION_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
FAKE_ACCOUNT = "123456789012"

#: set on every function by template.yaml's Globals (kept equal by tests/unit/test_template.py): telemetry
#: off, and no scan of every installed distribution for pydantic plugins on a cold start (we use none)
LAMBDA_FIXED_ENV: dict[str, str] = {
    "CHROMA_TELEMETRY_IMPL": "none",
    "ANONYMIZED_TELEMETRY": "False",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}

#: (timeout seconds, memory MB) per function, kept equal to template.yaml by tests/unit/test_template.py
FUNCTION_DEFAULTS: dict[str, tuple[int, int]] = {
    "producer": (30, 1024),
    "compactor": (300, 2048),
    "reaper": (120, 1024),
    "cleanup": (120, 512),
    "query": (30, 1024),
}
DEFAULT_TIMEOUT_S = 30
DEFAULT_MEMORY_MB = 512


class InvocationTimeout(Exception):
    """The handler ran past its timeout (Lambda would have killed it)."""


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools use."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: float
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.start_clock()

    def start_clock(self) -> None:
        """The remaining time counts down from the timeout, starting now."""
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{FAKE_ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return f"{day}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class InvocationResult:
    function: str
    request_id: str
    duration_ms: float
    response: Any = None
    error_type: str | None = None
    error_message: str | None = None
    stack: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "function": self.function,
            "request_id": self.request_id,
            "duration_ms": round(self.duration_ms, 1),
            "ok": self.ok,
        }
        if self.ok:
            out["response"] = self.response
        else:
            # the same keys Lambda uses for an unhandled error
            out["error"] = {
                "errorType": self.error_type,
                "errorMessage": self.error_message,
                "stackTrace": self.stack,
            }
        return out


def _is_repo_root(path: Path) -> bool:
    return (path / "functions").is_dir() and (
        (path / "template.yaml").is_file() or (path / "shared").is_dir()
    )


def find_repo_root(start: Path | None = None) -> Path:
    """The checkout holding `functions/`: searched upward from cwd, then from this package's location."""
    candidates = [Path(start or Path.cwd()).resolve()]
    candidates.append(Path(__file__).resolve().parent)  # shared/storekeeper -> repo root is two up
    for origin in candidates:
        for p in (origin, *origin.parents):
            if _is_repo_root(p):
                return p
    raise ValidationError(
        "root", "no directory with functions/ found above the current directory; run from the repository root"
    )


def handler_path(root: Path, function: str) -> Path:
    """`<root>/functions/<function>/app.py`, refusing names that could leave `functions/`."""
    if not FUNCTION_NAME_RE.fullmatch(function):
        raise ValidationError("function", "must be a lowercase name like producer or compactor", function)
    path = root / "functions" / function / "app.py"
    if not path.is_file():
        known = sorted(p.parent.name for p in (root / "functions").glob("*/app.py"))
        raise ValidationError(
            "function", f"{path} does not exist (functions with an app.py: {known})", function
        )
    return path


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """`K=V` strings -> dict; the key must look like an environment variable name."""
    out: dict[str, str] = {}
    for i, pair in enumerate(pairs):
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValidationError(f"env[{i}]", "must be KEY=VALUE with KEY a variable name", pair)
        out[key] = value
    return out


def invoke_env(
    ctx: LambdaContext, *, store: str | None = None, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Variables set for the call: Lambda's own, telemetry off, the store; `overrides` win.

    Queue variables are left as they are: unset, the functions use the local
    directory queues of the embedded default (see storekeeper.queues).
    """
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": ctx.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": ctx.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(ctx.memory_limit_in_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": ctx.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": ctx.log_stream_name,
        "AWS_SAM_LOCAL": "true",  # Powertools Tracer disables itself, as under `sam local invoke`
        "AWS_REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ctx.region,
        "POWERTOOLS_SERVICE_NAME": os.environ.get("POWERTOOLS_SERVICE_NAME") or ctx.function_name,
        "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "storekeeper",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **LAMBDA_FIXED_ENV,
        config.STORE: store or default_store_url(),
    }
    env.update(overrides or {})
    return env


@contextlib.contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of the call and put the previous values back."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise InvocationTimeout in the handler when the time is up (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _expire(signum: int, frame: FrameType | None) -> None:
        raise InvocationTimeout(f"Task timed out after {seconds:.2f} seconds")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_module(path: Path, function: str) -> ModuleType:
    """Import `app.py` by path as a fresh module (each invoke is a cold start)."""
    name = f"_storekeeper_fn_{function.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError("function", f"cannot load {path}", function)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _summarise(exc: BaseException, limit: int = 8) -> list[str]:
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]


def _input_error(exc: BaseException) -> str | None:
    """One line for a malformed event (pydantic's error, raw or wrapped by Powertools' parser)."""
    import pydantic

    found = exc if isinstance(exc, pydantic.ValidationError) else exc.__cause__
    if not isinstance(found, pydantic.ValidationError):
        return None
    errors = found.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = where if where == "event" or where.startswith("event.") else f"event.{where}"
    return f"{where}: {str(first['msg']).removeprefix('Value error, ')}{more}"


def invoke(
    function: str,
    event: Any,
    *,
    root: Path | None = None,
    store: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
) -> InvocationResult:
    """Load `functions/<function>/app.py`, call `handler(event, context)`, capture the outcome.

    Errors raised while importing or running the handler are captured in the
    result (like Lambda's error response), not raised; bad arguments raise
    ValidationError before anything is loaded.
    """
    base = find_repo_root(root)
    path = handler_path(base, function)
    default_timeout, default_memory = FUNCTION_DEFAULTS.get(function, (DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB))
    timeout = float(timeout_s if timeout_s is not None else default_timeout)
    if timeout <= 0:
        raise ValidationError("timeout", "must be a positive number of seconds", timeout)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    ctx = LambdaContext(function, memory_mb or default_memory, timeout, region=region)
    call_env = invoke_env(ctx, store=store, overrides=env)
    fn_dir = str(path.parent)
    started = time.perf_counter()
    result = InvocationResult(function, ctx.aws_request_id, 0.0)
    sys.path.insert(0, fn_dir)
    try:
        # Lambda's logs (Powertools JSON lines, EMF metrics) go to stderr here: stdout is the response
        with patched_environ(call_env), contextlib.redirect_stdout(sys.stderr):
            if "boto3" in sys.modules:
                from storekeeper.snapstart import fresh_boto3_session

                # credentials come from this call's environment, as a container's come from its own
                # (boto3's default session would keep whatever the process resolved first)
                fresh_boto3_session()
            module = load_module(path, function)  # Lambda's init phase: not counted in the timeout
            handler: Callable[[Any, Any], Any] | None = getattr(module, "handler", None)
            if not callable(handler):
                raise AttributeError(f"{path} has no callable handler(event, context)")
            ctx.start_clock()
            with _deadline(timeout):
                result.response = handler(event, ctx)
            json.dumps(result.response)  # Lambda serialises the response: fail the same way
    except Exception as exc:  # the handler's failure is the result, reported by the caller
        result.error_type = type(exc).__name__
        result.error_message = str(exc)
        result.stack = _summarise(exc)
        bad_input = _input_error(exc)
        if bad_input is not None:  # a malformed event: one line naming the field, not a dump
            result.error_message, result.stack = bad_input, []
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(fn_dir)
        result.duration_ms = (time.perf_counter() - started) * 1000
    return result


def load_event(source: str | None, stdin_text: Callable[[], str] | None = None) -> Any:
    """The event from a file, `-` for stdin, or `{}` when none is given (like `sam local invoke`)."""
    if source is None:
        return {}
    try:
        text = (stdin_text or sys.stdin.read)() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise ValidationError("event", f"cannot read {source}: {exc.strerror}", source) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "event", f"{source} is not JSON: {exc.msg} at line {exc.lineno}", source
        ) from None


def sqs_event(messages: Iterable[tuple[str, str]], queue_name: str = "DeltaQueue.fifo") -> dict[str, Any]:
    """An SQS Lambda event for (message_id, body) pairs, as the event source mapping sends it
    from a FIFO queue (for local invokes: the demo, the CLI, tests)."""
    from storekeeper.batch import record_shell

    records = []
    for mid, body in messages:
        record = record_shell(body, mid)
        record["attributes"].update(
            SentTimestamp="1700000000000",
            ApproximateFirstReceiveTimestamp="1700000000000",
            MessageGroupId="local",
            MessageDeduplicationId=mid,
            SequenceNumber="1",
        )
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue_name}"
        records.append(record)
    return {"Records": records}


def failed_ids(response: Any) -> set[str]:
    """Message ids a partial batch response reports as failed."""
    if not isinstance(response, dict):
        return set()
    return {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
