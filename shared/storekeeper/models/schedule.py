"""What starts a reaper run: every schedule event a user really sends, reduced to its overrides.

* an EventBridge rule event (`aws.events` / `Scheduled Event`), with or without `version`
  (`sam local generate-event cloudwatch scheduled-event` writes none); overrides in `detail`;
* an EventBridge Scheduler invocation: the schedule's `Input` as is (`{}` by default), which may
  carry overrides and Scheduler's context attributes;
* a rule's constant input (`Input: '{"dry_run": true}'`): the overrides themselves.

Overrides may force a dry run or choose a policies file and a deletion cap; nothing in an event
can force a real run (that is REAPER_APPLY's job). Unknown keys are errors naming the field, so
a typo (`dryrun`) is not silently ignored.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Scheduler's context attributes a schedule's input may carry (docs: managing-schedule-context-attributes)
SCHEDULER_KEYS = ("scheduled_time", "schedule_arn", "execution_id", "attempt_number")
#: an EventBridge event's envelope (version is optional: the SAM CLI's sample has none)
ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


class ReaperOverrides(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    dry_run: bool = False
    #: a policies YAML inside the deployed package (default: REAPER_POLICIES, else the bundled one)
    policies: str | None = Field(default=None, min_length=1, max_length=1024)
    max_deletions: int | None = Field(default=None, ge=0)


class ReaperTrigger(BaseModel):
    """The parsed event: where it came from and the overrides it carries."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    kind: str  # "eventbridge-rule", "scheduler" or "direct"
    overrides: ReaperOverrides = Field(default_factory=ReaperOverrides)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" in data and "overrides" in data:
            return data  # already normalised
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"a reaper event must be a JSON object, got {type(data).__name__}")
        if "detail-type" in data or "source" in data:
            unknown = sorted(set(data) - set(ENVELOPE_KEYS))
            if unknown:
                raise ValueError(f"unknown EventBridge event field(s): {', '.join(unknown)}")
            detail = data.get("detail") or {}
            if not isinstance(detail, dict):
                raise ValueError("detail must be a JSON object")
            return {"kind": "eventbridge-rule", "overrides": detail}
        scheduler = {k: data[k] for k in SCHEDULER_KEYS if k in data}
        rest = {k: v for k, v in data.items() if k not in SCHEDULER_KEYS}
        return {"kind": "scheduler" if scheduler else "direct", "overrides": rest}
