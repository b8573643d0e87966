"""The object layout of a store: every key is built and parsed here.

One naming object for the whole package, as Lance's commit code has one for its
manifest paths: no other module spells `delta/`, `snapshot/`, a collection,
delta id or version pattern. Builders check their parts before any I/O, so no
key can escape its prefix; parsers are strict (a stray key is not a delta).

    delta/<c>/<delta_id>.delta                 immutable delta blobs
    delta-rejected/<c>/<delta_id>.delta        quarantined deltas (+ <delta_id>.reason.json)
    snapshot/<c>/<version>/manifest.json       immutable snapshot manifest
    snapshot/<c>/<version>/<archive>           immutable archive of the Chroma persist dir
    snapshot/<c>/latest/pointer.txt            one line: the published version's prefix
    collection/<c>/config.json                 create-only: dimension, distance
    reports/reaper/<timestamp>.json            what each reaper run planned and why
    incoming/<c>/<file>                        bulk JSONL the producer ingests from S3 events
    reaper-state/continuation-<scope>.json     where a time-budgeted reaper pass resumes (reaper state)
    idempotency/<function>/<sha256>.json       Powertools idempotency records kept in the store
    idempotency/plans/<function>/<sha256>.json a retried put's plan (put_plan.py)
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from datetime import datetime

from storekeeper.errors import CorruptObject, InvalidName, ValidationError
from storekeeper.lazy import lazy_pattern

# -- name patterns (bodies without anchors, so they compose into key patterns) -----------------------
COLLECTION_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
DELTA_ID_PATTERN = r"\d{13}-[a-z0-9]{6,32}"
VERSION_PATTERN = r"\d{12}-[a-z0-9]{8}"

COLLECTION_RE = re.compile(rf"^{COLLECTION_PATTERN}$")
DELTA_ID_RE = re.compile(rf"^{DELTA_ID_PATTERN}$")
#: a function's name in idempotency keys (Lambda function names allow more; ours are short words)
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION_RE = lazy_pattern(globals(), "VERSION_RE", rf"^{VERSION_PATTERN}$")

# -- prefixes and fixed names ------------------------------------------------------------------------
DELTA_PREFIX = "delta/"
DELTA_SUFFIX = ".delta"
REJECTED_PREFIX = "delta-rejected/"
SNAPSHOT_PREFIX = "snapshot/"
LATEST = "latest"
POINTER_NAME = "pointer.txt"
MANIFEST_NAME = "manifest.json"
COLLECTION_PREFIX = "collection/"
CONFIG_NAME = "config.json"
REPORT_PREFIX = "reports/reaper/"
INCOMING_PREFIX = "incoming/"
REAPER_STATE_PREFIX = "reaper-state/"
IDEMPOTENCY_PREFIX = "idempotency/"
PLANS_FOLDER = "plans"
#: every top-level prefix of the layout
PREFIXES = (
    DELTA_PREFIX,
    REJECTED_PREFIX,
    SNAPSHOT_PREFIX,
    COLLECTION_PREFIX,
    REPORT_PREFIX,
    INCOMING_PREFIX,
    REAPER_STATE_PREFIX,
    IDEMPOTENCY_PREFIX,
)

#: a valid delta key; groups `c` (collection) and `id` (delta id)
DELTA_KEY_RE = re.compile(rf"^delta/(?P<c>{COLLECTION_PATTERN})/(?P<id>{DELTA_ID_PATTERN})\.delta$")
#: a collection's live pointer; group `c`
POINTER_KEY_RE = lazy_pattern(
    globals(), "POINTER_KEY_RE", rf"^snapshot/(?P<c>{COLLECTION_PATTERN})/latest/pointer\.txt$"
)
#: any key inside a published (or publishing) version folder; groups `c`, `v` (prefix match)
VERSION_KEY_RE = lazy_pattern(
    globals(), "VERSION_KEY_RE", rf"^snapshot/(?P<c>{COLLECTION_PATTERN})/(?P<v>{VERSION_PATTERN})/"
)
#: any key one folder below `snapshot/<c>/` (a version, `latest`, or a stray folder); groups `c`, `v`
SNAPSHOT_ENTRY_RE = lazy_pattern(
    globals(), "SNAPSHOT_ENTRY_RE", rf"^snapshot/(?P<c>{COLLECTION_PATTERN})/(?P<v>[^/]+)/"
)

_SUFFIX = string.ascii_lowercase + string.digits
#: os.urandom underneath, as `secrets.choice` (which is this object's method): unique across processes
#: and SnapStart restores. Not `secrets` itself: it imports `hmac`, ~2 M instructions of a cold start
_URANDOM = random.SystemRandom()


def random_suffix(length: int) -> str:
    """`length` characters of a-z0-9 from os.urandom (delta ids, snapshot versions)."""
    return "".join(_URANDOM.choice(_SUFFIX) for _ in range(length))


# -- names ---------------------------------------------------------------------------------------------
def check_collection(name: object, field: str = "collection") -> str:
    if not isinstance(name, str) or not COLLECTION_RE.fullmatch(name):
        raise InvalidName(field, f"must match {COLLECTION_PATTERN}", name)
    return name


def check_delta_id(delta_id: object) -> str:
    if not isinstance(delta_id, str) or not DELTA_ID_RE.fullmatch(delta_id):
        raise ValidationError("delta_id", "must be <13-digit epoch ms>-<6-32 chars of a-z0-9>", delta_id)
    return delta_id


def check_version(version: object) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise CorruptObject("<snapshot>", None, f"version {version!r:.60} is not <12-digit seq>-<8 chars>")
    return version


def version_sequence(version: str) -> int:
    """The version's publish sequence: its parent's + 1, so one per step of the pointer's chain."""
    return int(check_version(version).split("-", 1)[0])


def new_version(parent: str | None) -> str:
    """Parent's sequence + 1 and a random suffix: sorts in publish order, unique under races."""
    seq = version_sequence(parent) + 1 if parent else 1
    return f"{seq:012d}-" + random_suffix(8)


# -- deltas --------------------------------------------------------------------------------------------
def delta_prefix(collection: str | None = None) -> str:
    """`delta/`, or `delta/<c>/` for one collection."""
    return DELTA_PREFIX if collection is None else f"{DELTA_PREFIX}{check_collection(collection)}/"


def delta_key(collection: str, delta_id: str, *, check: bool = True) -> str:
    """The delta's key; `check=False` only to name a malformed delta in an error message."""
    if not check:
        return f"{DELTA_PREFIX}{collection}/{delta_id}{DELTA_SUFFIX}"
    return f"{delta_prefix(collection)}{check_delta_id(delta_id)}{DELTA_SUFFIX}"


def match_delta_key(key: str) -> tuple[str, str] | None:
    """(collection, delta id) of a valid delta key, None for anything else (listing hot path)."""
    m = DELTA_KEY_RE.fullmatch(key)
    return (m["c"], m["id"]) if m else None


def parse_delta_key(key: str) -> tuple[str, str]:
    """`delta/<c>/<id>.delta` -> (c, id); anything else is a ValidationError naming the key."""
    parts = match_delta_key(key)
    if parts is None:
        raise ValidationError("delta_key", "must be delta/<collection>/<13-digit-ms>-<suffix>.delta", key)
    return parts


def rejected_key(collection: str, delta_id: str) -> str:
    """Where a delta that can never be applied is kept (its dead letter)."""
    return f"{REJECTED_PREFIX}{check_collection(collection)}/{check_delta_id(delta_id)}{DELTA_SUFFIX}"


def rejected_reason_key(collection: str, delta_id: str) -> str:
    return f"{REJECTED_PREFIX}{check_collection(collection)}/{check_delta_id(delta_id)}.reason.json"


# -- snapshots -----------------------------------------------------------------------------------------
def snapshot_prefix(collection: str | None = None) -> str:
    """`snapshot/`, or `snapshot/<c>/` for one collection."""
    return SNAPSHOT_PREFIX if collection is None else f"{SNAPSHOT_PREFIX}{check_collection(collection)}/"


#: prefixes whose keys are immutable once written: deleted, they go with every version
PURGED_PREFIXES = (DELTA_PREFIX, SNAPSHOT_PREFIX)


def purged_on_delete(key: str) -> bool:
    """Keys whose deletion must free their bytes on a versioned bucket.

    Applied deltas and reaped snapshot versions are finished with once their guards pass; a
    delete marker would keep them billed for the bucket's whole noncurrent retention. The
    pointer is never deleted (protection), so its prefix being here changes nothing for it.
    """
    return key.startswith(PURGED_PREFIXES)


def pointer_key(collection: str) -> str:
    return f"{snapshot_prefix(collection)}{LATEST}/{POINTER_NAME}"


def version_prefix(collection: str, version: str) -> str:
    """`snapshot/<c>/<version>/`: also exactly what the pointer holds."""
    return f"{snapshot_prefix(collection)}{check_version(version)}/"


def manifest_key(collection: str, version: str) -> str:
    return version_prefix(collection, version) + MANIFEST_NAME


def archive_key(collection: str, version: str, archive: str) -> str:
    return version_prefix(collection, version) + archive


def match_pointer_key(key: str) -> str | None:
    """The collection whose pointer `key` is, or None."""
    m = POINTER_KEY_RE.fullmatch(key)
    return m["c"] if m else None


def match_version_key(key: str) -> tuple[str, str] | None:
    """(collection, version) of a key inside a version folder, None for anything else."""
    m = VERSION_KEY_RE.match(key)
    return (m["c"], m["v"]) if m else None


def match_snapshot_entry(key: str) -> tuple[str, str] | None:
    """(collection, folder) of any key one folder below `snapshot/<c>/` (versions, `latest`, strays)."""
    m = SNAPSHOT_ENTRY_RE.match(key)
    return (m["c"], m["v"]) if m else None


def parse_pointer_body(collection: str, text: str) -> str | None:
    """The version a pointer's body names, or None when it is not `snapshot/<collection>/<version>/`."""
    prefix = snapshot_prefix(collection)
    if not text.startswith(prefix) or not text.endswith("/"):
        return None
    version = text[len(prefix) : -1]
    return version if VERSION_RE.fullmatch(version) else None


def version_of_prefix(prefix: str) -> str:
    """`snapshot/<c>/<version>/` -> version."""
    return prefix.rstrip("/").rsplit("/", 1)[-1]


# -- collections, reports, incoming ----------------------------------------------------------------------
def collection_config_key(collection: str) -> str:
    """Create-only `collection/<c>/config.json`: the collection's dimension and distance."""
    return f"{COLLECTION_PREFIX}{check_collection(collection)}/{CONFIG_NAME}"


#: one reaper run's report; group 1 is its run id (the start time)
REPORT_KEY_RE = lazy_pattern(globals(), "REPORT_KEY_RE", r"^reports/reaper/(\d{8}T\d{6}\d*Z)\.json$")
#: the status page as of the latest run, and the small index of recent runs
REPORT_PAGE_KEY = REPORT_PREFIX + "latest.html"
REPORT_INDEX_KEY = REPORT_PREFIX + "history.json"


def report_key(started: datetime) -> str:
    return f"{REPORT_PREFIX}{started.strftime('%Y%m%dT%H%M%S%fZ')}.json"


#: a reaper continuation's scope: which runs share it (mode and policies digest), e.g. `apply-3f2a...`
CONTINUATION_SCOPE_RE = lazy_pattern(globals(), "CONTINUATION_SCOPE_RE", r"^[a-z0-9][a-z0-9-]{0,79}$")


def continuation_key(scope: str) -> str:
    """Where a time-budgeted reaper pass keeps its continuation (one object per scope)."""
    if not CONTINUATION_SCOPE_RE.fullmatch(scope):
        raise InvalidName("scope", "must be 1-80 chars of a-z, 0-9 and '-'", scope)
    return f"{REAPER_STATE_PREFIX}continuation-{scope}.json"


def is_reaper_state(key: str) -> bool:
    """The reaper's own state (continuations): protected from every policy, like the live pointer."""
    return key.startswith(REAPER_STATE_PREFIX)


# -- idempotency state ---------------------------------------------------------------------------------
def check_function_name(name: object) -> str:
    if not isinstance(name, str) or not FUNCTION_NAME_RE.fullmatch(name):
        raise ValidationError("function_name", "must be 1-64 chars of A-Z, a-z, 0-9, '_' or '-'", name)
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_record_key(function_name: str, idempotency_key: str) -> str:
    """`idempotency/<function>/<sha256 of the key>.json`: a Powertools record kept in the store."""
    return f"{IDEMPOTENCY_PREFIX}{check_function_name(function_name)}/{_digest(idempotency_key)}.json"


def put_plan_key(function_name: str, request_id: str) -> str:
    """`idempotency/plans/<function>/<sha256 of the request id>.json`: a retried put's plan.

    One folder deeper than the records, so a function named `plans` cannot collide with them."""
    name = check_function_name(function_name)
    return f"{IDEMPOTENCY_PREFIX}{PLANS_FOLDER}/{name}/{_digest(request_id)}.json"


def is_idempotency_state(key: str) -> bool:
    """Idempotency records and put plans: read by retries and redeliveries while their window lasts."""
    return key.startswith(IDEMPOTENCY_PREFIX)


def parse_incoming_key(key: str) -> str:
    """`incoming/<c>/<name>` -> c; anything else is rejected naming the key."""
    from storekeeper.names import check_key

    check_key(key, "key")
    if not key.startswith(INCOMING_PREFIX):
        raise ValidationError("key", f"bulk files must be under {INCOMING_PREFIX}<collection>/", key)
    collection, sep, name = key[len(INCOMING_PREFIX) :].partition("/")
    if not sep or not name or name.endswith("/"):
        raise ValidationError("key", "must be incoming/<collection>/<file>", key)
    return check_collection(collection, "key (collection segment)")
