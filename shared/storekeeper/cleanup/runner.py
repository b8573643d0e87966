"""Parse, execute once, report: the path shared by the Lambda handler and `storekeeper cleanup`.

Exactly-once per task_id via Powertools idempotency (DynamoDB deployed, records
in the store locally). A failed task raises so its record is *not* saved and
SQS retries it (then the DLQ); a dry run bypasses the record (it changes nothing
and a person wants fresh output each time). A *skipped* task (everything kept:
protected, modified since planning, still live...) is not saved either: it
changed nothing, and the reason may be transient, so the next plan (which gives
the same deterministic task_id) must run it again rather than find a 14-day
"completed" record.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pydantic
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from storekeeper.cleanup.base import StoreResolver, TaskFailed, TaskOutcome
from storekeeper.cleanup.executor import execute_task
from storekeeper.errors import ValidationError, from_pydantic
from storekeeper.models.cleanup import CleanupTask
from storekeeper.protection import ProtectionConfig
from storekeeper.stores.vectors import VectorBackend

if TYPE_CHECKING:  # importing Powertools idempotency imports boto3 (its DynamoDB layer): only when used
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

#: as long as SQS + DLQ keep a message (14 days): a replay from the DLQ still sees the record
IDEMPOTENCY_TTL_SECONDS = 14 * 24 * 3600
KEY_PREFIX = "storekeeper-cleanup"
#: a task_id reused for a different target is an error, not a silent "already done"
PAYLOAD_FIELDS = "[action, backend, bucket, keys, prefix, index, version, collection]"


#: Powertools' SqsRecordModel does not defer its build, so the record model below is built at import
#: and embeds the task's schema: built first, the task model's own schema is reused there instead of
#: being generated a second time when the first task is validated or dumped (~12 M instructions)
CleanupTask.model_rebuild()


class CleanupTaskRecord(SqsRecordModel):
    """An SQS record of CleanupQueue: Powertools' BatchProcessor parses the body once, into the task."""

    body: Json[CleanupTask]  # narrows SqsRecordModel's str body


def parse_task(body: str | bytes | dict[str, Any]) -> CleanupTask:
    """A message body -> CleanupTask, or ValidationError naming the first bad field."""
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError as exc:
        raise ValidationError("body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object (a cleanup task)", type(data).__name__)
    try:
        return CleanupTask.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, root="task", with_input=True) from None


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def record_metrics(metrics: MetricsSink, outcome: TaskOutcome) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    if outcome.status == "failed":
        metrics.add_metric(name="TaskFailures", unit=MetricUnit.Count, value=1)
    elif outcome.status in ("skipped", "noop") or outcome.duplicate:
        metrics.add_metric(name="TasksSkipped", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="TasksExecuted", unit=MetricUnit.Count, value=1)
    if outcome.deleted_count and not outcome.duplicate:
        metrics.add_metric(name="ObjectsDeleted", unit=MetricUnit.Count, value=outcome.deleted_count)
    if outcome.bytes_freed and not outcome.duplicate:
        from storekeeper.gauges import emit_bytes_freed

        emit_bytes_freed(outcome.bucket, outcome.bytes_freed)  # its own EMF line: a `bucket` dimension


class TaskIdReused(ValidationError):
    """A task_id already executed for another target: this task fails alone, clearly."""


class _NotSaved(Exception):
    """Raised inside the idempotent call so Powertools drops the record; carries the outcome out."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__("outcome not saved")
        self.outcome = outcome


class CleanupRunner:
    """Executes tasks once each; keeps nothing between tasks except its configuration."""

    def __init__(
        self,
        *,
        resolve_store: StoreResolver | None = None,
        persistence: BasePersistenceLayer | None = None,
        vector_backend: VectorBackend | None = None,
        protection: ProtectionConfig | None = None,
        now: Callable[[], datetime] | None = None,
        lambda_context: LambdaContext | None = None,
    ) -> None:
        self.resolve_store = resolve_store
        self.vector_backend = vector_backend
        self.protection = protection
        self.now = now
        self._fresh = False
        self._has_context = lambda_context is not None
        self._once: Callable[..., dict[str, Any]] | None = None
        if persistence is not None:
            from storekeeper.idempotency import IdempotencyConfig, idempotent_function

            config = IdempotencyConfig(
                event_key_jmespath="task_id",
                payload_validation_jmespath=PAYLOAD_FIELDS,
                raise_on_no_idempotency_key=True,
                expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            )
            if lambda_context is not None:
                config.register_lambda_context(lambda_context)
            self._once = idempotent_function(
                data_keyword_argument="task",
                persistence_store=persistence,
                config=config,
                key_prefix=KEY_PREFIX,
            )(self._execute_dict)

    def _execute(self, task: CleanupTask, dry_run: bool | None) -> TaskOutcome:
        return execute_task(
            task,
            resolve_store=self.resolve_store,
            vector_backend=self.vector_backend,
            now=self.now() if self.now else None,
            dry_run=dry_run,
            protection=self.protection,
        )

    def _execute_dict(self, task: dict[str, Any]) -> dict[str, Any]:
        self._fresh = True
        outcome = self._execute(CleanupTask.model_validate(task), False)
        if outcome.status == "failed":
            raise TaskFailed(outcome)  # not saved: the retry runs it again
        saved = outcome.compact().model_dump(mode="json")
        if outcome.status == "skipped":
            raise _NotSaved(saved)  # not saved: a re-plan runs it again (see the module doc)
        return saved

    def run(self, task: CleanupTask, *, dry_run: bool | None = None) -> TaskOutcome:
        """Execute (or dry-run) one task; raises TaskFailed for a failed one."""
        dry = task.dry_run if dry_run is None else dry_run
        if dry or self._once is None:
            outcome = self._execute(task, dry)
            if outcome.status == "failed":
                raise TaskFailed(outcome)
            return outcome
        self._fresh = False
        with warnings.catch_warnings():
            if not self._has_context:  # outside Lambda there is no remaining time to record
                warnings.filterwarnings("ignore", message="Couldn't determine the remaining time")
            from storekeeper.idempotency import IdempotencyValidationError

            try:
                saved = self._once(task=task.model_dump(mode="json"))
            except _NotSaved as kept:
                return TaskOutcome.model_validate(kept.outcome)
            except IdempotencyValidationError:
                raise TaskIdReused(
                    "task_id",
                    "was already used for a task with another target (action, bucket, keys, prefix, index "
                    "or version differ): a task_id names one task; give this one a new id",
                    task.task_id,
                ) from None
        outcome = TaskOutcome.model_validate(saved)
        if not self._fresh:  # answered from the idempotency record: nothing was done this time
            outcome = outcome.model_copy(update={"duplicate": True, "requests": {}})
        return outcome

    def run_body(self, body: str | bytes | dict[str, Any], *, dry_run: bool | None = None) -> TaskOutcome:
        return self.run(parse_task(body), dry_run=dry_run)
