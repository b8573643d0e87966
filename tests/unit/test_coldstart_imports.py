"""Cold start: what each handler module imports, and that the deferred imports still work on the first call.

Each check runs in a fresh interpreter (a cold start), with tracing disabled and
no IDEMPOTENCY_TABLE, as the embedded default and `sam local` run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storekeeper.runtime import LAMBDA_FIXED_ENV
from storekeeper.tracing import NoTracer, make_tracer, tracing_disabled

pytestmark = pytest.mark.slow  # fresh interpreters per handler: not in `make test-fast`

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
import app
watched = ("aws_xray_sdk", "boto3", "numpy", "chromadb", "storekeeper.models.cleanup")
loaded = {m: m in sys.modules for m in watched}
heavy = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
heavy_after_import = sorted(m for m in heavy if m in sys.modules)
event = json.load(open(sys.argv[1]))

class Ctx:
    function_name = "fn"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:fn"
    aws_request_id = "probe"
    log_group_name = "/aws/lambda/fn"
    log_stream_name = "probe"

    def get_remaining_time_in_millis(self):
        return 900000

out = app.handler(event, Ctx())
heavy_after_call = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"import": loaded, "out": out, "heavy_after_import": heavy_after_import,
                  "heavy_after_call": heavy_after_call}, default=str))
"""


def _cold(function: str, event: object, tmp_path: Path, heavy: Iterable[str] = ()) -> dict[str, object]:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDA_", "STOREKEEPER_"))}
    env.pop("IDEMPOTENCY_TABLE", None)
    env.update(LAMBDA_FIXED_ENV)
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO / "functions" / function), str(REPO / "shared")]),
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="storekeeper",
        AWS_DEFAULT_REGION="us-east-1",
        STOREKEEPER_HOME=str(tmp_path / "home"),
    )
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(event_file), json.dumps(list(heavy))],
        cwd=REPO / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _fresh_python(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The words `code` prints, run in a fresh interpreter with the shared layer on the path."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO / "shared")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_producer_imports_no_xray_boto3_numpy_and_its_first_put_works(tmp_path: Path) -> None:
    event = {"collection": "docs", "upserts": [{"id": "a", "embedding": [0.1, 0.2]}], "request_id": "r1"}
    got = _cold("producer", event, tmp_path)
    assert got["import"] == {
        "aws_xray_sdk": False,
        "boto3": False,  # Powertools idempotency (DynamoDB layer) only once a request_id is seen
        "numpy": False,  # only where vectors are encoded
        "chromadb": False,
        "storekeeper.models.cleanup": False,  # the producer never builds the cleanup models
    }
    out = got["out"]
    assert isinstance(out, dict)
    assert out["statusCode"] == 200, out
    assert out["upserts"] == 1, out
    assert list((tmp_path / "home").rglob("*.delta")), "the first put wrote no delta"
    assert list((tmp_path / "home").rglob("idempotency/producer/*.json")), "no idempotency record"


def test_cleanup_imports_no_xray_or_boto3_and_its_first_batch_runs(tmp_path: Path) -> None:
    task = {
        "task_id": "t-1",
        "action": "delete_objects",
        "backend": "file",
        "bucket": "default",
        "keys": ["incoming/docs/old.jsonl"],
        "policy": "test",
        "reason": "cold start probe",
        "planned_at": "2024-06-01T12:00:00Z",
    }
    sample = json.loads((REPO / "events" / "cleanup" / "sqs-cleanup-task.json").read_text())["Records"][0]
    good = {**sample, "messageId": "m1", "body": json.dumps(task)}  # a record as SQS sends it
    bad = {**sample, "messageId": "m2", "body": "{not json"}
    event = {"Records": [good, bad]}
    got = _cold("cleanup", event, tmp_path)
    imported = got["import"]
    assert isinstance(imported, dict)
    assert imported["aws_xray_sdk"] is False
    assert imported["boto3"] is False
    assert imported["chromadb"] is False
    assert got["out"] == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert list((tmp_path / "home").rglob("idempotency/cleanup/*.json")), (
        "task ran without its idempotency record"
    )


def test_reaper_imports_no_xray_and_its_first_run_reports(tmp_path: Path) -> None:
    event = json.loads((REPO / "events" / "reaper" / "schedule.json").read_text())
    got = _cold("reaper", event, tmp_path)
    imported = got["import"]
    assert isinstance(imported, dict)
    assert imported["aws_xray_sdk"] is False
    assert imported["chromadb"] is False
    out = got["out"]
    assert isinstance(out, dict)
    assert out["apply"] is False, out
    assert out["errors"] == [], out
    assert str(out["report_key"]).startswith("reports/reaper/")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LAMBDA_TASK_ROOT": "/var/task"},
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"},
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"},
        {"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"},
        {"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"},
        {"POWERTOOLS_TRACE_DISABLED": "false"},
    ],
)
def test_tracing_disabled_agrees_with_powertools(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.tracing.tracer import Tracer

    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing_disabled() == bool(Tracer._is_tracer_disabled())


def test_no_tracer_decorators_pass_calls_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = make_tracer()
    assert isinstance(tracer, NoTracer)

    def handler(event: dict[str, int], context: object) -> int:
        if event["n"] < 0:
            raise ValueError("negative")
        return event["n"] * 2

    bare = tracer.capture_lambda_handler(handler)
    with_args = tracer.capture_method(capture_response=False)(handler)
    assert bare({"n": 2}, None) == 4
    assert with_args({"n": 3}, None) == 6
    with pytest.raises(ValueError, match="negative"):
        bare({"n": -1}, None)


def test_tracing_on_builds_the_powertools_tracer(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from aws_lambda_powertools import Tracer\n"
        "from storekeeper.tracing import make_tracer\n"
        "t = make_tracer()\n"
        "print(isinstance(t, Tracer), 'aws_xray_sdk.core' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL")}
    env.update(LAMBDA_TASK_ROOT=str(tmp_path), AWS_DEFAULT_REGION="us-east-1")
    assert _fresh_python(code, env) == ["True", "True"]


def test_models_package_loads_names_on_demand() -> None:
    code = (
        "import sys\n"
        "import storekeeper.models.deltas\n"
        "print('storekeeper.models.cleanup' in sys.modules)\n"
        "from storekeeper.models import CleanupTask, Manifest, PutRequest\n"
        "from storekeeper.models.cleanup import CleanupTask as Direct\n"
        "print(CleanupTask is Direct, Manifest.__name__, PutRequest.__name__)\n"
        "import storekeeper.models as m\n"
        "try:\n"
        "    m.Nope\n"
        "except AttributeError as exc:\n"
        "    print('AttributeError', 'Nope' in str(exc))\n"
    )
    assert _fresh_python(code) == ["False", "True", "Manifest", "PutRequest", "AttributeError", "True"]


def test_bench_first_invocation_probe_times_import_and_call(tmp_path: Path) -> None:
    from storekeeper.dev.bench import case_coldstart

    fn_dir = REPO / "functions" / "reaper"
    env = case_coldstart._env(REPO, fn_dir, tmp_path)
    event = REPO / "events" / "reaper" / case_coldstart.FIRST_EVENTS["reaper"]
    got = case_coldstart._first_invocation(fn_dir, env, event, tmp_path / "home")
    assert got["error"] is None, got
    assert float(str(got["import"])) > 0
    assert float(str(got["call"])) > 0
    assert got["after_import"] == {
        "aws_xray_sdk": False,
        "boto3": False,
        "numpy": False,
        "pydantic": True,
        "chromadb": False,
    }
    assert list((tmp_path / "home").rglob("reports/reaper/*.json")), "the probe's call wrote no report"


KAFKA_MODEL = "aws_lambda_powertools.utilities.parser.models.kafka"
#: imported for one name each, cheaper without: random suffixes come from random.SystemRandom
#: (`secrets` imports `hmac`, ~2 M instructions), LambdaContext is a type (~1 M)
NEVER_ON_A_HANDLER_PATH = ["secrets", "hmac", "aws_lambda_powertools.utilities.typing"]
#: what each handler's cold start must not load (docs/performance.md, cold start: what was cut and why):
#: neither at `import app` nor during its first call with its sample event on a local store
NEVER_LOADED = {
    "producer": [
        "chromadb",
        "numpy",  # vectors are packed with the standard library (deltas.PackedVectors)
        "boto3",  # Powertools idempotency's DynamoDB layer: only with IDEMPOTENCY_TABLE
        "botocore.session",
        "aws_xray_sdk",
        "storekeeper.models.cleanup",
        "storekeeper.snapshots.archive",  # tarfile: the producer reads manifests, it never packs one
        "storekeeper.snapshots.cache",
        "storekeeper.models.snapshots",  # the Manifest model: only where a published manifest is read
        "storekeeper.stores.results",  # bucket, version, usage and bulk-delete results (~6 M instructions)
        *NEVER_ON_A_HANDLER_PATH,
    ],
    "reaper": [
        "chromadb",
        "numpy",
        "boto3",
        "botocore.session",
        "aws_xray_sdk",
        "yaml",  # the bundled default policies are validated from their JSON twin (policies.model)
        "html",  # the status page escapes with its own table (html.entities: ~2,000 names)
        "storekeeper.queues",  # only a run that sends tasks
        "storekeeper.stores.vectors",  # only a policy file naming a vector store
        "storekeeper.overflow",  # only a create-overflow policy
        "aws_lambda_powertools.utilities.typing",  # LambdaContext is a type hint only (its protocols: ~6 M)
        # filters the default policies do not name: imported when a policy file names them
        "storekeeper.policies.filters.names",
        "storekeeper.policies.filters.labels",
        "storekeeper.policies.filters.sizes",
        "storekeeper.policies.filters.quotas",
    ],
    # the Kafka model: Powertools' batch/types.py builds parser models when pydantic came first
    "cleanup": [
        "chromadb",
        "numpy",
        "boto3",
        "botocore.session",
        "aws_xray_sdk",
        KAFKA_MODEL,
        "storekeeper.models.snapshots",  # a task names a version (models.common): no Manifest model
        *NEVER_ON_A_HANDLER_PATH,
    ],
    "compactor": ["boto3", "botocore.session", "aws_xray_sdk", KAFKA_MODEL],
}
#: loaded by the first call at the latest, never by `import app`
NOT_ON_IMPORT = {
    "producer": [],
    "reaper": ["tenacity", "storekeeper.snapshots.archive", "storekeeper.snapshots.cache"],
    "cleanup": ["storekeeper.stores.results"],  # its first delete's DeleteResult
    "compactor": ["chromadb", "numpy", "tenacity"],  # tenacity: the publish retries, on a compaction
}


@pytest.mark.parametrize("function", sorted(NEVER_LOADED))
def test_cold_start_leaves_heavy_modules_unloaded(function: str, tmp_path: Path) -> None:
    from storekeeper.dev.bench.case_coldstart import FIRST_EVENTS, local_sample_event

    sample = REPO / "events" / function / FIRST_EVENTS[function]
    event = json.loads(local_sample_event(sample, tmp_path / "home").read_text())
    got = _cold(function, event, tmp_path, heavy=NEVER_LOADED[function] + NOT_ON_IMPORT[function])
    assert got["heavy_after_import"] == [], f"{function}: `import app` loaded {got['heavy_after_import']}"
    loaded = [m for m in NEVER_LOADED[function] if m in got["heavy_after_call"]]  # type: ignore[operator]
    assert loaded == [], f"{function}: the first call loaded {loaded}"
    out = got["out"]
    assert isinstance(out, dict)
    assert out.get("statusCode", 200) == 200, out
    assert not out.get("batchItemFailures"), out
    assert not out.get("errors"), out


def test_deferred_powertools_idempotency_package_still_offers_its_whole_api() -> None:
    """storekeeper.idempotency registers Powertools' package without running its __init__ (boto3):
    the first name asked of the package runs it, once, even from several threads at a time."""
    code = (
        "import sys, threading\n"
        "import storekeeper.idempotency as ours\n"
        "print('boto3' in sys.modules)\n"
        "import aws_lambda_powertools.utilities.idempotency as pkg\n"
        "got = []\n"
        "def ask():\n"
        "    got.append(pkg.DynamoDBPersistenceLayer)\n"
        "threads = [threading.Thread(target=ask) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(len(got) == 8 and len(set(got)) == 1, 'boto3' in sys.modules)\n"
        "from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, idempotent\n"
        "print(BasePersistenceLayer is ours.BasePersistenceLayer, callable(idempotent))\n"
        "print(issubclass(pkg.DynamoDBPersistenceLayer, ours.BasePersistenceLayer))\n"
        "try:\n"
        "    pkg.Nope\n"
        "except AttributeError as exc:\n"
        "    print('AttributeError', 'Nope' in str(exc))\n"
    )
    assert _fresh_python(code) == ["False", "True", "True", "True", "True", "True", "AttributeError", "True"]


@pytest.mark.parametrize("function", ["producer", "reaper", "cleanup"])
def test_bench_stack_floor_probe_runs_the_stack_alone(function: str, tmp_path: Path) -> None:
    """The bench's floor: Powertools + pydantic (+ the handler's utility) without storekeeper code."""
    from storekeeper.dev.bench import case_coldstart

    env = case_coldstart._env(REPO, REPO / "functions" / function, tmp_path)
    wall, cpu = case_coldstart.stack_floor(function, env, repeats=1)
    assert wall > 0
    assert cpu > 0
    assert "storekeeper" not in case_coldstart.STACK_FLOOR[function]


def test_no_model_field_takes_a_builtin_default_factory() -> None:
    """`Field(default_factory=list)` makes pydantic `inspect.signature(list)` when it builds the model:
    a builtin's signature is parsed with `tokenize`, whose first use compiles its big regex (~15 M
    instructions, ~6 ms): a first call paid it for three `list` defaults. A literal `= []` / `= {}`
    is as safe (pydantic copies an unhashable default for every instance) and costs nothing."""
    code = (
        "import importlib, inspect, pkgutil, storekeeper\n"
        "from pydantic import BaseModel\n"
        "for m in pkgutil.walk_packages(storekeeper.__path__, 'storekeeper.'):\n"
        "    if not m.name.startswith(('storekeeper.dev', 'storekeeper.cli')):\n"
        "        importlib.import_module(m.name)\n"
        "def subclasses(c):\n"
        "    for s in c.__subclasses__():\n"
        "        yield s\n"
        "        yield from subclasses(s)\n"
        "models = {c for c in subclasses(BaseModel) if c.__module__.startswith('storekeeper.')}\n"
        "bad = sorted(f'{c.__module__}.{c.__qualname__}.{n}' for c in models\n"
        "             for n, f in c.model_fields.items()\n"
        "             if f.default_factory is not None and inspect.isbuiltin(f.default_factory)\n"
        "             or f.default_factory in (list, dict, set, tuple, frozenset, bytearray))\n"
        "print(len(models) > 20, *bad)\n"
    )
    assert _fresh_python(code) == ["True"]


def test_a_literal_mutable_default_is_copied_for_every_instance() -> None:
    from storekeeper.cleanup.base import TaskOutcome
    from storekeeper.models.deltas import PutRequest

    one, two = (
        TaskOutcome(task_id="a", action="x", bucket="b"),
        TaskOutcome(task_id="c", action="x", bucket="b"),
    )
    one.deleted.append("k")
    one.errors["k"] = "boom"
    assert two.deleted == []
    assert two.errors == {}
    assert TaskOutcome.model_fields["deleted"].default == []
    req = PutRequest.model_validate({"collection": "docs", "deletes": ["a"]})
    other = PutRequest.model_validate({"collection": "c", "deletes": ["b"]})
    assert req.upserts == []
    assert req.upserts is not other.upserts


#: frozen dataclasses still created by a handler's `import app`: settings `dataclasses.replace` copies
FROZEN_DATACLASSES_ON_IMPORT = {
    "producer": [],
    "cleanup": ["storekeeper.protection.ProtectionConfig"],
}


@pytest.mark.parametrize("function", sorted(FROZEN_DATACLASSES_ON_IMPORT))
def test_value_records_on_the_import_path_are_named_tuples(function: str) -> None:
    """A frozen dataclass costs ~4 M instructions to create (Python 3.11 compiles each of its six
    methods on its own), a NamedTuple ~1 M: the immutable value records a handler imports
    (ObjectInfo, Published, OutgoingMessage, ...) are NamedTuples; a new one must not come back
    as a frozen dataclass."""
    code = (
        "import dataclasses, sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / function)!r})\n"
        "import app\n"
        "mods = [m for n, m in list(sys.modules.items()) if n.startswith('storekeeper') and m]\n"
        "print(*sorted(f'{m.__name__}.{k}' for m in mods for k, v in vars(m).items()\n"
        "      if isinstance(v, type) and v.__module__ == m.__name__ and dataclasses.is_dataclass(v)\n"
        "      and v.__dataclass_params__.frozen))\n"
    )
    assert _fresh_python(code) == FROZEN_DATACLASSES_ON_IMPORT[function]


def test_cleanup_import_builds_the_task_model_before_the_record_model_that_embeds_it() -> None:
    """Built first, CleanupTask's schema is reused by CleanupTaskRecord (built at import, as Powertools'
    SqsRecordModel does not defer): the first task then does not generate it a second time."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / 'cleanup')!r})\n"
        "import app\n"
        "from storekeeper.models.cleanup import CleanupTask, TaskGuard\n"
        "from storekeeper.cleanup.runner import CleanupTaskRecord\n"
        "print(CleanupTask.__pydantic_complete__, CleanupTaskRecord.__pydantic_complete__)\n"
    )
    assert _fresh_python(code) == ["True", "True"]


def test_reaper_resource_records_are_plain_slotted_classes() -> None:
    """A slotted dataclass costs ~3 M instructions to create (its class is made twice, each generated
    method compiled on its own); the seven resource records cost the reaper's import ~20 M as
    dataclasses. Written out, they keep a dataclass's constructor, equality and repr."""
    import dataclasses

    from storekeeper.policies import resources as res

    records = [v for v in vars(res).values() if isinstance(v, type) and issubclass(v, res.Resource)]
    assert len(records) == 8
    assert [r.__name__ for r in records if dataclasses.is_dataclass(r)] == []
    when = datetime(2024, 1, 1, tzinfo=UTC)
    one = res.Delta("main", "b", "delta/c/1.delta", 3, when, "e", collection="c", delta_id="1", applied=True)
    assert one == res.Delta(
        "main", "b", "delta/c/1.delta", 3, when, "e", collection="c", delta_id="1", applied=True
    )
    assert one != res.Delta(
        "main", "b", "delta/c/1.delta", 3, when, "e", collection="c", delta_id="2", applied=True
    )
    assert one != res.StoredObject("main", "b", "delta/c/1.delta", 3, when, "e")
    assert repr(res.Upload("m", "b", "k?uploadId=u", key="k", upload_id="u")) == (
        "Upload(store='m', bucket='b', name='k?uploadId=u', size=0, created=None, etag=None, labels=None, "
        "key='k', upload_id='u')"
    )
    assert one.ident == "delta:main:b:delta/c/1.delta"
    one.labels = {"keep": "1"}  # labels are fetched after listing
    assert one.labels == {"keep": "1"}
    with pytest.raises(AttributeError):
        one.other = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        hash(one)


def test_reaper_first_run_creates_only_the_filter_classes_its_policies_name(tmp_path: Path) -> None:
    """A pydantic class costs ~2 M instructions to create: the default policies' first run creates
    the four filters they name (the registry imports a filter's module on the name's first use)."""
    code = (
        "import os\n"
        f"os.environ['STOREKEEPER_HOME'] = {str(tmp_path / 'home')!r}\n"
        "from storekeeper import reaper\n"
        "from storekeeper.policies.filters import Filter\n"
        "report = reaper.run(apply=False)\n"
        "def subclasses(c):\n"
        "    for s in c.__subclasses__():\n"
        "        yield s\n"
        "        yield from subclasses(s)\n"
        "print(report.errors == [], *sorted(c.__name__ for c in subclasses(Filter)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREKEEPER_", "REAPER_"))}
    assert _fresh_python(code, env) == [
        "True",
        "Applied",
        "KeepNewest",
        "OlderThan",
        "SetFilter",
        "Unpublished",
    ]


#: dataclasses the reaper's `import app` creates (~2-3 M instructions each on Python 3.11, frozen ~5 M):
#: its own records are plain slotted classes or NamedTuples; these are other paths' accumulators
REAPER_DATACLASSES_ON_IMPORT = [
    "storekeeper.protection.LiveState",
    "storekeeper.protection.Protection",
    "storekeeper.protection.ProtectionConfig",
    "storekeeper.stores.listing.ListingStats",
]


def test_reaper_import_creates_no_dataclass_of_its_own() -> None:
    code = (
        "import dataclasses, sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / 'reaper')!r})\n"
        "import app\n"
        "mods = [m for n, m in list(sys.modules.items()) if n.startswith('storekeeper') and m]\n"
        "print(*sorted(f'{m.__name__}.{k}' for m in mods for k, v in vars(m).items()\n"
        "      if isinstance(v, type) and v.__module__ == m.__name__ and dataclasses.is_dataclass(v)))\n"
    )
    assert _fresh_python(code) == REAPER_DATACLASSES_ON_IMPORT


def test_store_results_a_put_never_uses_are_created_on_first_use() -> None:
    """BucketInfo, DeleteResult, IncompleteUpload, ObjectVersion and Usage (~6 M instructions to create)
    live in storekeeper.stores.results, named lazily by storekeeper.stores and .base: the producer's
    import and local store create none of them, and every old import of them still works."""
    names = ("BucketInfo", "DeleteResult", "IncompleteUpload", "ObjectVersion", "Usage")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / 'producer')!r})\n"
        "import app\n"
        "import storekeeper.stores as stores, storekeeper.stores.base as base, storekeeper.stores.local\n"
        f"print(*[n for n in {names!r} if n in vars(base) or n in vars(stores)])\n"
        "print('storekeeper.stores.results' in sys.modules)\n"
        "from storekeeper.stores import DeleteResult, Usage\n"
        "from storekeeper.stores.base import BucketInfo, IncompleteUpload, ObjectVersion\n"
        "from storekeeper.stores import results\n"
        "print(DeleteResult is results.DeleteResult, Usage is base.Usage,\n"
        "      ObjectVersion is stores.ObjectVersion)\n"
    )
    assert _fresh_python(code) == ["False", "True", "True", "True"]


#: modules whose pydantic models the producer's first put creates
PUT_MODEL_MODULES = (
    "storekeeper.models.common",
    "storekeeper.models.deltas",
    "storekeeper.collection_config",
    "storekeeper.put_plan",
)


#: modules whose pydantic models the reaper's first run creates (~40 models, ~250 fields)
REAPER_MODEL_MODULES = (
    "storekeeper.models.status",
    "storekeeper.models.reports",
    "storekeeper.models.cleanup",  # the report's tasks (cleanup's import creates them too)
    "storekeeper.models.schedule",
    "storekeeper.policies.model",
    "storekeeper.policies.budget",
    "storekeeper.policies.filters",
    "storekeeper.policies.filters.age",
    "storekeeper.policies.filters.versions",
    "storekeeper.policies.filters.applied",
    "storekeeper.history",
)


@pytest.mark.parametrize("modules", [PUT_MODEL_MODULES, REAPER_MODEL_MODULES], ids=["producer", "reaper"])
def test_the_first_calls_models_carry_evaluated_annotations(modules: tuple[str, ...]) -> None:
    """With `from __future__ import annotations` every field annotation is a string that pydantic
    compiles and evaluates when it creates the class (with a new Union/Annotated object for each):
    -1.7 M instructions for the four classes of models.deltas alone without it, -18 M for the
    reaper's models."""
    code = (
        "import importlib\n"
        "from pydantic import BaseModel\n"
        f"for name in {modules!r}:\n"
        "    m = importlib.import_module(name)\n"
        "    for v in vars(m).values():\n"
        "        if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == name:\n"
        "            ann = v.__dict__.get('__annotations__', {})\n"
        "            print(*(f'{name}.{v.__name__}.{k}' for k, a in ann.items() if isinstance(a, str)))\n"
        "print('ok')\n"
    )
    assert _fresh_python(code) == ["ok"]


def test_the_first_put_compiles_no_snapshot_report_or_continuation_pattern(tmp_path: Path) -> None:
    """layout's snapshot, report and continuation patterns (~2.7 M instructions to compile) are compiled
    on first use (storekeeper.lazy.lazy_pattern): not by the producer's import and first put. Used, each
    becomes the compiled pattern in layout's namespace; a copy imported by name still matches."""
    lazy = ("VERSION_RE", "POINTER_KEY_RE", "VERSION_KEY_RE", "SNAPSHOT_ENTRY_RE", "REPORT_KEY_RE")
    code = (
        "import json, re, sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / 'producer')!r})\n"
        "import app\n"
        "class Ctx:\n"
        "    function_name = 'fn'; function_version = '$LATEST'; memory_limit_in_mb = 512\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:000000000000:function:fn'\n"
        "    aws_request_id = 'probe'; log_group_name = 'g'; log_stream_name = 's'\n"
        "    def get_remaining_time_in_millis(self): return 900000\n"
        "event = {'collection': 'docs', 'request_id': 'r1', 'upserts': [{'id': 'a', 'embedding': [0.5]}]}\n"
        "status = app.handler(event, Ctx())['statusCode']\n"
        "print('RESULT', status)\n"
        "from storekeeper import layout\n"
        "from storekeeper.layout import REPORT_KEY_RE\n"
        f"print(*[n for n in {lazy!r} if isinstance(getattr(layout, n), re.Pattern)])\n"
        "print(layout.match_version_key('snapshot/docs/000000000001-abcdefgh/manifest.json'))\n"
        "print(isinstance(layout.VERSION_KEY_RE, re.Pattern), isinstance(REPORT_KEY_RE, re.Pattern))\n"
        "report = 'reports/reaper/20240601T120000Z.json'\n"
        "print(bool(REPORT_KEY_RE.fullmatch(report)), REPORT_KEY_RE.pattern[:9])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREKEEPER_", "IDEMPOTENCY_"))}
    env.update(LAMBDA_FIXED_ENV, POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_NAMESPACE="sk")
    env["STOREKEEPER_HOME"] = str(tmp_path / "home")
    got = _fresh_python(code, env)
    got = got[got.index("RESULT") + 1 :]  # after the handler's metrics (EMF on stdout)
    assert got == ["200", "('docs',", "'000000000001-abcdefgh')", "True", "False", "True", "^reports/"]


def test_producer_import_creates_no_dataclass() -> None:
    """A dataclass costs ~3.5 M instructions to create on Python 3.11 (each generated method compiled on
    its own): DeltaContent is written out with a dataclass's constructor, equality and repr."""
    code = (
        "import dataclasses, sys\n"
        f"sys.path.insert(0, {str(REPO / 'functions' / 'producer')!r})\n"
        "import app\n"
        "mods = [m for n, m in list(sys.modules.items()) if n.startswith('storekeeper') and m]\n"
        "print('none', *sorted(f'{m.__name__}.{k}' for m in mods for k, v in vars(m).items()\n"
        "      if isinstance(v, type) and v.__module__ == m.__name__ and dataclasses.is_dataclass(v)))\n"
    )
    assert _fresh_python(code) == ["none"]


def test_delta_content_keeps_a_dataclass_constructor_equality_and_repr() -> None:
    from storekeeper.deltas import DeltaContent, PackedVectors

    when = datetime(2024, 1, 1, tzinfo=UTC)
    vectors = PackedVectors([[0.5, 1.0]])
    one = DeltaContent("c", "1", when, ["a"], vectors, [{"k": 1}], [None], ["b"], [])
    assert one == DeltaContent(
        "c", "1", when, ids=["a"], embeddings=vectors, metadatas=[{"k": 1}], documents=[None], deletes=["b"]
    )
    assert one != DeltaContent("c", "1", when, ["a"], vectors, [{"k": 2}], [None], ["b"], [])
    assert one != ("c", "1", when)
    empty, other = DeltaContent("c", "2", when), DeltaContent("c", "3", when)
    assert empty.ids == []
    assert empty.ids is not other.ids
    assert empty.updates is not other.updates
    assert isinstance(empty.embeddings, PackedVectors)
    assert empty.embeddings is not other.embeddings
    assert repr(one).startswith("DeltaContent(collection='c', delta_id='1', created_at=datetime.datetime(")
    assert repr(one).endswith("deletes=['b'], updates=[])")
    with pytest.raises(TypeError):
        hash(one)
