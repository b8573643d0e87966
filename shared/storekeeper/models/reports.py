"""The reaper report (reports/reaper/<timestamp>.json): what one run planned and why.

A dry run and a real run write the same document for the same state; only
`apply`, `sent` and the timestamps differ. `plan_digest` makes that checkable.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from storekeeper.models.cleanup import CleanupTask
from storekeeper.models.common import Strict, UtcDatetime
from storekeeper.models.status import Forecast, Measurement

Verdict = Literal["planned", "protected", "skipped", "deferred"]


class Decision(Strict):
    """One resource one policy matched, and what the run decided about it."""

    policy: str
    store: str
    resource: str  # resource kind
    bucket: str
    name: str  # key, bucket, index or version
    verdict: Verdict
    reason: str
    size: Annotated[int, Field(ge=0)] | None = None
    created: UtcDatetime | None = None
    task_id: str | None = None


class PolicySummary(Strict):
    policy: str
    resource: str
    store: str
    evaluated: int = 0  # resources listed and evaluated
    matched: int = 0  # passed the item filters
    planned: int = 0
    protected: int = 0
    skipped: int = 0
    deferred: int = 0
    bytes_planned: int = 0
    notes: list[str] = []
    errors: list[str] = []
    omitted_decisions: int = 0  # decisions counted, not listed (at most 1,000 of each verdict are)


class ListingSummary(Strict):
    """What one listing of a plan cost: requests taken against one sequential pass over the same keys."""

    store: str
    prefix: str
    source: str  # parallel | sequential | inventory
    objects: int
    requests: int
    sequential_minimum: int
    ranges: int
    split_requests: int
    seconds: float


class StoreProgressReport(Strict):
    """Where one object store stands in a time-budgeted pass after this run."""

    store: str
    #: the lowest range left starts after this key (None: from the start, or nothing left)
    resume_after: str | None = None
    #: planned to its end in this pass: later runs of the pass leave it alone
    finished: bool
    #: key ranges the next runs still list (each resumes after its own last key planned)
    ranges_left: int = 0
    #: keys this run planned in this store
    keys_planned: int = 0
    #: keys this run listed but left unplanned (the budget ran out during their lookups)
    left_unplanned: int = 0
    #: the listing reached the bucket's end (no range stopped by the budget)
    listing_complete: bool = True


class BudgetReport(Strict):
    """What the time budget left for later runs: the deferred part of the pass."""

    #: planning time this run had (None: no deadline)
    seconds: float | None = None
    #: objects the run could hold while planning (the memory bound; None: no bound)
    max_objects: int | None = None
    #: what found the budget spent: `listing`, `label lookups` or `memory` (the objects held reached
    #: `max_objects`); None: it lasted
    ran_out: str | None = None
    pass_complete: bool
    pass_started_at: UtcDatetime | None = None
    run_in_pass: int = 1
    continuation_key: str | None = None
    stores: list[StoreProgressReport] = []
    #: whole-bucket policies that could not decide in this run (they wait for a later one)
    policies_waiting: list[str] = []
    notes: list[str] = []

    @property
    def deferred(self) -> int:
        """What this run left for later: listed keys past a cut, unfinished stores, waiting policies."""
        return (
            sum(s.left_unplanned for s in self.stores)
            + sum(not s.finished for s in self.stores)
            + len(self.policies_waiting)
        )


class ReaperReport(Strict):
    format: Literal["storekeeper.reaper-report/1"] = "storekeeper.reaper-report/1"
    run_id: str
    started_at: UtcDatetime
    finished_at: UtcDatetime
    apply: bool
    policies_source: str
    policies_sha256: str
    summaries: list[PolicySummary]
    decisions: list[Decision]
    tasks: list[CleanupTask]
    plan_digest: str
    sent: int = 0
    errors: list[str] = []
    report_key: str | None = None
    #: the stores as measured during the run: the history behind `status` charts and forecasts
    status: Measurement | None = None
    #: when each bucket crosses its watermarks / the vector quota is reached, as fitted at this run
    forecasts: list[Forecast] = []
    listings: list[ListingSummary] = []
    #: a time-budgeted run: where the pass stands and what was deferred to the next run
    budget: BudgetReport | None = None

    def totals(self) -> dict[str, int]:
        """Every decision counted, listed or not (the summaries count them all)."""
        out = {"planned": 0, "protected": 0, "skipped": 0, "deferred": 0}
        for s in self.summaries:
            out["planned"] += s.planned
            out["protected"] += s.protected
            out["skipped"] += s.skipped
            out["deferred"] += s.deferred
        out["tasks"] = len(self.tasks)
        out["errors"] = len(self.errors) + sum(len(s.errors) for s in self.summaries)
        return out


def trusted_decision(values: Mapping[str, Any]) -> Decision:
    """A Decision from values the planner built itself.

    Validated all the same: pydantic-core validates a flat model faster than
    `model_construct` fills one (0.7 s vs 1.3 s per 100,000 here), so there is no
    reason to poke at model internals to skip it.
    """
    return Decision.model_validate(values)


def plan_digest(
    decisions: list[Decision], tasks: list[CleanupTask], summaries: list[PolicySummary] | None = None
) -> str:
    """A digest of the plan that ignores when it was made: equal state -> equal digest.

    `planned_at` and the guard's `last_modified_before` (both the planning clock) are left
    out, so a dry run and a later --apply over unchanged state digest the same. The bytes
    hashed are pydantic's JSON of the lists in one call each: fields in declaration order,
    so equal plans give equal bytes without a sort (which cost a second per 50,000 decisions).
    The summaries count the decisions a report does not list (the tasks name every target).
    """
    when: dict[str, Any] = {"planned_at": True, "dry_run": True, "guard": {"last_modified_before", "etags"}}
    # the report's own serializer writes the lists (one schema for the run, not one per list): its
    # JSON of one included field is `{"name":[...]}`, the bytes a list adapter wrote inside the braces
    lists: dict[str, Any] = {"decisions": decisions, "tasks": tasks, "summaries": summaries or []}
    part = ReaperReport.model_construct(**lists)  # only these three fields are ever serialized
    h = hashlib.sha256(part.model_dump_json(include={"decisions"}).encode()[:-1])
    tasks_json = part.model_dump_json(include={"tasks"}, exclude={"tasks": {"__all__": when}})
    h.update(b"," + tasks_json.encode()[1:-1])
    # the guards' etags (a thousand a task) as their keys' lines, then their etags' lines, in the
    # mapping's order: pydantic's JSON of a large dict costs ~5x this; keys hold no newline
    h.update(b',"etags":')
    for t in tasks:
        h.update("\n".join(t.guard.etags).encode())
        h.update(b"\x00")
        h.update("\n".join(t.guard.etags.values()).encode())
        h.update(b"\x00")
    if summaries is not None:
        h.update(b"," + part.model_dump_json(include={"summaries"}).encode()[1:-1])
    h.update(b"}")
    return h.hexdigest()
