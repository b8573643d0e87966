"""Time-budgeted planning: how long a reaper run may plan, and where the next run resumes.

A bucket of 10 million objects cannot be listed (let alone its candidates looked up at the rate
limit) inside one Lambda run. So planning watches the time it has left and stops *before* the
function is out of time, leaving a **continuation** in the store: per object store, the key ranges
still to list (each range of the parallel listing resumes after its own last key planned: S3's
`StartAfter` for the next run's listing of that range). The next run resumes there; the run
that reaches the end of every store clears it (writes it back as `complete`, by the same conditional
put: a conditional DELETE is not honoured by every S3 server), which completes the *pass*.

* `Budget`: the planning time (the Lambda's remaining time or `reap --deadline`, less a reserve to
  write the report, send the tasks and store the continuation), with an injectable clock so tests
  drive exhaustion without sleeping. Listing pages and label lookups (HEADs) check it. And the
  planning memory: at 100 M objects a bucket does not fit in a Lambda, so a run also stops (with
  the same continuation) once the objects it holds reach `max_objects`, derived from the function's
  memory (`memory_bound`).
* `Continuation`: the stored state (`layout.continuation_key`), one object per mode (a dry run
  never moves the real runs' position); read with its etag and written back only by a conditional
  put (`If-Match` that etag, or create-only), so two overlapping runs cannot clobber each other: the
  loser keeps nothing, and its segment is planned again by a later run (task ids are deterministic,
  the cleanup executor dedups them).
* A malformed continuation is never a traceback: `load` says which field is wrong and the pass
  starts over.
"""

# No `from __future__ import annotations` in the models' modules: pydantic would compile and eval
# every field's string annotation when it creates the class (a cold start's cost; see
# tests/unit/test_coldstart_imports.py).
import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic import ValidationError as PydanticError

from storekeeper.errors import NotFound, PreconditionFailed, StorekeeperError
from storekeeper.layout import continuation_key
from storekeeper.models.common import UtcDatetime
from storekeeper.models.status import StoreTally
from storekeeper.stores.base import ObjectStore

if TYPE_CHECKING:
    from storekeeper.stores.listing import KeyRange

#: of the time left when planning starts, what is kept back for the report, the sending and the
#: continuation write: a fifth, at least RESERVE_MIN_S
RESERVE_FRACTION = 0.2
RESERVE_MIN_S = 10.0
#: of the planning time, what listing may use: the rest is for label lookups, so a listing that
#: could go on forever never leaves the lookups nothing (and the run nothing to plan)
LISTING_SHARE = 0.5
#: what planning holds per listed object at its peak: RSS growth measured at 100,000 keys was ~520 B
#: on the columnar fast path and ~1,160 B on the general path (an ObjectInfo, its columns, a resource
#: and a row; docs/performance.md), so this leaves headroom for S3 pages being parsed
BYTES_PER_OBJECT = 1536
#: of the function's memory, what the objects held while planning may take (the rest: the runtime,
#: the imports, the report and the tasks)
MEMORY_SHARE = 0.5
#: objects held at most while planning (overrides the bound derived from the function's memory)
MAX_OBJECTS_ENV = "STOREKEEPER_REAPER_MAX_OBJECTS"
LAMBDA_MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
FORMAT: Literal["storekeeper.reaper-continuation/1"] = "storekeeper.reaper-continuation/1"
#: S3 keys are at most 1,024 bytes; a resume point is one of them
Key = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
#: key ranges a store's progress may hold: a run leaves at most one per range it listed, and a
#: listing has at most `list_workers` (<= 64) ranges
MAX_RANGES = 256


def objects_for_memory(memory_mb: int) -> int:
    """Objects a run may hold while planning in a function of `memory_mb` MB."""
    return max(1, int(memory_mb * 2**20 * MEMORY_SHARE) // BYTES_PER_OBJECT)


def memory_bound(environ: Mapping[str, str] | None = None) -> int | None:
    """`STOREKEEPER_REAPER_MAX_OBJECTS`, else the bound for Lambda's `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
    (None outside Lambda: no bound). A value that is not a positive integer is a clear error."""
    env = os.environ if environ is None else environ
    for name, derive in ((MAX_OBJECTS_ENV, False), (LAMBDA_MEMORY_ENV, True)):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # '²' isdigit(); '١٢' int()s
            raise StorekeeperError(f"environment variable {name} must be a positive integer, got {raw!r}")
        return objects_for_memory(int(raw)) if derive else int(raw)
    return None


class Budget:
    """Planning time left; `expired()` is asked before every listing page and label lookup, `full()`
    as objects are listed (the memory bound)."""

    def __init__(
        self,
        seconds: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_objects: int | None = None,
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        #: objects a run may hold while planning (None: no bound)
        self.max_objects = max_objects
        self.deadline = None if seconds is None else clock() + max(0.0, seconds)
        #: what found the budget spent first (for the report), None while there is time
        self.ran_out: str | None = None
        self._whole: Budget | None = None  # the budget this one is a part of

    @classmethod
    def from_remaining(cls, remaining: float | None, *, max_objects: int | None = None) -> "Budget":
        """The planning share of a run's remaining time (None: no deadline) and its memory bound."""
        if remaining is None:
            return cls(None, max_objects=max_objects)
        seconds = max(0.0, remaining - max(RESERVE_MIN_S, RESERVE_FRACTION * remaining))
        return cls(seconds, max_objects=max_objects)

    def part(self, fraction: float) -> "Budget":
        """A budget on the same clock ending `fraction` of the way to this one's deadline (the same
        memory bound)."""
        sub = Budget(None, clock=self.clock, max_objects=self.max_objects)
        sub._whole = self
        if self.deadline is not None and self.seconds is not None:
            sub.seconds = self.seconds * fraction
            sub.deadline = self.deadline - self.seconds * (1 - fraction)
        return sub

    @property
    def limited(self) -> bool:
        """A deadline or a memory bound: the run plans a segment of a pass."""
        return self.deadline is not None or self.max_objects is not None

    def expired(self, what: str = "") -> bool:
        if self.deadline is None or self.clock() < self.deadline:
            return False
        self.spend(what or "planning")
        return True

    def full(self, held: int) -> bool:
        """`held` objects reach the memory bound (the report says `memory`)."""
        if self.max_objects is None or held < self.max_objects:
            return False
        self.spend("memory")
        return True

    def spend(self, what: str) -> None:
        """Mark the budget spent by `what` (the first one is reported)."""
        if self.ran_out is None:
            self.ran_out = what
        if self._whole is not None and self._whole.ran_out is None:
            self._whole.ran_out = self.ran_out


# -- the stored continuation ---------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class KeyInterval(_Strict):
    """Keys still to list: after `after` up to and including `through` (None: unbounded)."""

    after: Key | None = None
    through: Key | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> "KeyInterval":
        if self.after is not None and self.through is not None and self.after >= self.through:
            raise ValueError("after must sort below through (the interval would hold no key)")
        return self


class StoreProgress(_Strict):
    """One object store's place in the pass: the key ranges still to list, in key order."""

    #: the older format's one resume key: read as one range after it, to the end (None: the start)
    after: Key | None = None
    #: the ranges left (each range of a stopped listing resumes after its own last planned key)
    ranges: list[KeyInterval] | None = Field(None, max_length=MAX_RANGES)
    #: the store was planned to its end earlier in this pass: later runs of the pass leave it alone
    finished: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "StoreProgress":
        rs = self.ranges
        if rs is None:
            return self
        if self.after is not None:
            raise ValueError("give after (one resume key) or ranges, not both")
        if not rs and not self.finished:
            raise ValueError("ranges is empty but the store is not finished")
        if rs and self.finished:
            raise ValueError("ranges remain but the store is finished")
        for i in range(1, len(rs)):
            before, now = rs[i - 1].through, rs[i].after
            if before is None or now is None or now < before:
                raise ValueError(
                    f"ranges[{i}] overlaps ranges[{i - 1}] (ranges must be disjoint, in key order)"
                )
        return self

    def intervals(self) -> "list[KeyRange]":
        """The ranges left to list (the older format's key: one range after it)."""
        from storekeeper.stores.listing import KeyRange

        if self.finished:
            return []
        if self.ranges is None:
            return [KeyRange(self.after, None)]
        return [KeyRange(r.after, r.through) for r in self.ranges]

    @classmethod
    def of(cls, ranges: "list[KeyRange]") -> "StoreProgress":
        """The ranges a run left (none: the store is finished)."""
        intervals = [KeyInterval(after=r.after, through=r.through) for r in ranges]
        return cls(ranges=intervals, finished=not intervals)


class Continuation(_Strict):
    format: Literal["storekeeper.reaper-continuation/1"] = FORMAT
    mode: Literal["apply", "dry-run"]
    #: the policies file the pass was planned with: another file starts the pass over
    policies_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    pass_started_at: UtcDatetime
    updated_at: UtcDatetime
    #: runs of this pass so far (the one that wrote it included)
    runs: int = Field(ge=1, le=1_000_000)
    stores: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], StoreProgress]
    #: the pass is over: the next run starts a new one (a cleared continuation, which keeps what its
    #: pass did: the stores it finished, the policies that decided, its runs, start and end)
    complete: bool = False
    #: whole-bucket policies (set filters, snapshot versions, buckets, vectors) decided in this pass
    decided: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        [], max_length=10_000
    )
    #: per object store, the status measure's tally of the keys planned so far in this pass: the run
    #: that completes the pass measures from it (None: not carried, e.g. a pass begun by an older
    #: version; that pass writes no measurement)
    usage: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], StoreTally] | None = None


def scope(apply: bool) -> str:
    return "apply" if apply else "dry-run"


class Loaded(NamedTuple):
    """The continuation as read: None when there is none (or it was refused), the etag to write over."""

    continuation: Continuation | None
    key: str
    etag: str | None = None  # of whatever object is there (even a refused one): the conditional write
    problem: str | None = None  # why a stored continuation was not used (the pass starts over)


def parse(body: bytes) -> Continuation:
    """A stored continuation, or ValueError naming the field and the reason."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"must be a JSON object, got {type(data).__name__}")
    try:
        return Continuation.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise ValueError(f"field {where}: {first['msg']}") from None


def load(store: ObjectStore, *, apply: bool, policies_sha256: str) -> Loaded:
    """Read this mode's continuation; a malformed one or another policies file starts the pass over."""
    key = continuation_key(scope(apply))
    try:
        got = store.get(key)
    except NotFound:
        return Loaded(None, key)
    try:
        cont = parse(got.body)
    except ValueError as exc:
        problem = f"continuation {key} refused ({exc}): the pass starts over"
        return Loaded(None, key, got.etag, problem)
    if cont.mode != scope(apply):
        return Loaded(None, key, got.etag, f"continuation {key}: field mode is {cont.mode!r}: starts over")
    if cont.complete:
        return Loaded(None, key, got.etag)
    if cont.policies_sha256 != policies_sha256:
        problem = f"continuation {key}: field policies_sha256 names another policies file: starts over"
        return Loaded(None, key, got.etag, problem)
    return Loaded(cont, key, got.etag)


def save(store: ObjectStore, loaded: Loaded, cont: Continuation) -> str | None:
    """Write the continuation (a `complete` one clears the pass), conditionally on what was read.

    Returns None on success, else why nothing was written: another run changed it since this run read
    it, so this run's position is dropped and a later run plans its segment again.
    """
    if cont.complete and loaded.etag is None:
        return None  # nothing stored, nothing to clear
    try:
        body = cont.model_dump_json(indent=1).encode()
        if loaded.etag is None:
            store.put(loaded.key, body, if_none_match=True, content_type="application/json")
        else:
            store.put(loaded.key, body, if_match=loaded.etag, content_type="application/json")
    except PreconditionFailed:
        return f"continuation {loaded.key} was changed by a concurrent run: this run's position is not stored"
    except StorekeeperError as exc:
        return f"continuation {loaded.key} not written: {exc}"
    return None


def next_continuation(
    previous: Continuation | None,
    *,
    apply: bool,
    policies_sha256: str,
    now: datetime,
    stores: dict[str, StoreProgress],
    decided: list[str],
    complete: bool = False,
    usage: dict[str, StoreTally] | None = None,
) -> Continuation:
    return Continuation(
        complete=complete,
        mode="apply" if apply else "dry-run",
        policies_sha256=policies_sha256,
        pass_started_at=previous.pass_started_at if previous else now,
        updated_at=now,
        runs=(previous.runs + 1) if previous else 1,
        stores=stores,
        decided=decided,
        usage=usage,
    )
