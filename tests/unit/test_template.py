"""The SAM template's contract: what the design and the lessons of earlier tools require of the bundle."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from storekeeper import config
from storekeeper.runtime import FUNCTION_DEFAULTS, LAMBDA_FIXED_ENV

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = {
    "ProducerFunction": "producer",
    "CompactorFunction": "compactor",
    "ReaperFunction": "reaper",
    "CleanupFunction": "cleanup",
    "QueryFunction": "query",  # optional (EnableQueryFunction), held to the same rules
}
# variables that belong to Powertools / chromadb, not to storekeeper.config
FOREIGN_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_TRACE_DISABLED",
    "CHROMA_TELEMETRY_IMPL",
    "ANONYMIZED_TELEMETRY",
    "PYDANTIC_DISABLE_PLUGINS",
}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return dict(cfn_yaml.load(str(REPO / "template.yaml")))


def resources(tpl: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == rtype}


def props(tpl: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(tpl["Resources"][name].get("Properties", {}))


def statements(fn_props: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in fn_props.get("Policies", []):
        assert isinstance(policy, dict), f"SAM policy templates/managed policies are too broad: {policy}"
        for st in policy["Statement"]:
            # a statement switched by a condition (the KMS key, VPC, tracing): both branches count
            branches = st["Fn::If"][1:] if "Fn::If" in st else [st]
            out.extend(b for b in branches if isinstance(b, dict) and "Effect" in b)
    return out


def as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def requirement_lines(path: Path) -> list[str]:
    return [
        ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def requirement_names(path: Path) -> list[str]:
    return [ln.split("==")[0].split("[")[0].strip().lower() for ln in requirement_lines(path)]


def walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def sub_text(v: Any) -> str:
    """The string of a !Sub (either form) or a plain string."""
    if isinstance(v, dict) and "Fn::Sub" in v:
        s = v["Fn::Sub"]
        return str(s[0] if isinstance(s, list) else s)
    return str(v)


def test_four_functions_on_python312_with_the_layer(tpl: dict[str, Any]) -> None:
    fns = resources(tpl, "AWS::Serverless::Function")
    assert set(fns) == set(FUNCTIONS)
    glob = tpl["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    # X-Ray is a parameter, off by default (issue 15.8); Powertools' tracer follows it
    assert glob["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert tpl["Parameters"]["TracingEnabled"]["Default"] == "false"
    assert glob["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["TracingOn", "false", "true"]
    }
    assert glob["Layers"] == [{"Ref": "StorekeeperLayer"}]
    for name, folder in FUNCTIONS.items():
        p = props(tpl, name)
        assert p["CodeUri"] == f"functions/{folder}"
        assert p["Handler"] == "app.handler"
        assert "Layers" not in p  # would replace the global layer list
        assert (REPO / "functions" / folder / "requirements.txt").is_file()


def test_layer_builds_shared_without_its_dev_part(tpl: dict[str, Any]) -> None:
    layer = tpl["Resources"]["StorekeeperLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"  # shared/Makefile leaves the dev part out
    makefile = (REPO / "shared/Makefile").read_text()
    assert "build-StorekeeperLayer:" in makefile
    for left_out in ("storekeeper/dev", "storekeeper/cli", "storekeeper/runtime.py"):
        assert left_out in makefile
    assert "chromadb" not in requirement_names(REPO / "shared/requirements.txt")  # keep 3 functions light


def test_compactor_is_built_trimmed(tpl: dict[str, Any]) -> None:
    assert tpl["Resources"]["CompactorFunction"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-CompactorFunction:" in (REPO / "functions/compactor/Makefile").read_text()
    path = REPO / "functions/compactor/requirements.txt"
    pins = requirement_names(path)
    assert "chromadb" in pins
    assert all("==" in ln for ln in requirement_lines(path))  # --no-deps: every version pinned
    for heavy in ("onnxruntime", "kubernetes", "tokenizers", "uvicorn", "sympy", "fastapi"):
        assert heavy not in pins


def _recipe(folder: str, target: str) -> list[str]:
    """The Makefile's lines with the function's own target name taken out."""
    text = (REPO / "functions" / folder / "Makefile").read_text().replace(target, "build-<Function>")
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_query_function_is_the_compactors_trimmed_build(tpl: dict[str, Any]) -> None:
    """One trimmed chromadb build for both (SAM builds each folder alone, so they cannot share a
    file): the same pins and the same recipe; scripts/check_trimmed_chromadb.py runs both artifacts."""
    assert tpl["Resources"]["QueryFunction"]["Metadata"]["BuildMethod"] == "makefile"
    assert _recipe("query", "build-QueryFunction") == _recipe("compactor", "build-CompactorFunction")
    assert requirement_lines(REPO / "functions/query/requirements.txt") == requirement_lines(
        REPO / "functions/compactor/requirements.txt"
    )


def test_timeouts_and_memory_match_local_invoke_defaults(tpl: dict[str, Any]) -> None:
    for name, folder in FUNCTIONS.items():
        p = props(tpl, name)
        assert (p["Timeout"], p["MemorySize"]) == FUNCTION_DEFAULTS[folder], name
    assert props(tpl, "CompactorFunction")["EphemeralStorage"]["Size"] >= 2048


def test_every_sqs_event_reports_batch_item_failures(tpl: dict[str, Any]) -> None:
    sqs_events = [
        (name, ev)
        for name in FUNCTIONS
        for ev in props(tpl, name).get("Events", {}).values()
        if ev["Type"] == "SQS"
    ]
    assert {n for n, _ in sqs_events} == {"CompactorFunction", "CleanupFunction"}
    for name, ev in sqs_events:
        assert ev["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        assert 1 <= ev["Properties"]["BatchSize"] <= 10, name
    queues = {ev["Properties"]["Queue"]["Fn::GetAtt"][0] for _, ev in sqs_events}
    assert queues == {"DeltaQueue", "CleanupQueue"}


def test_every_work_queue_has_a_dlq_with_redrive(tpl: dict[str, Any]) -> None:
    queues = resources(tpl, "AWS::SQS::Queue")
    for name in ("DeltaQueue", "CleanupQueue"):
        q = queues[name]["Properties"]
        redrive = q["RedrivePolicy"]
        dlq_name = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq = queues[dlq_name]["Properties"]
        assert 3 <= redrive["maxReceiveCount"] <= 10
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert bool(dlq.get("FifoQueue")) == bool(q.get("FifoQueue")), "a FIFO queue needs a FIFO DLQ"
    for q in queues.values():
        # SQS-managed SSE, or the stack's KMS key when KmsKeyArn is set (tests/iam/test_options.py)
        assert q["Properties"].get("SqsManagedSseEnabled") == {
            "Fn::If": ["HasKmsKey", {"Ref": "AWS::NoValue"}, True]
        }
        assert q["Properties"].get("KmsMasterKeyId") == {
            "Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]
        }


def test_delta_queue_is_fifo_and_outlives_the_compactor(tpl: dict[str, Any]) -> None:
    q = props(tpl, "DeltaQueue")
    assert q["FifoQueue"] is True
    assert sub_text(q["QueueName"]).endswith(".fifo")
    # what the compactor needs (its timeout + a margin), not 6x: a failed record blocks its FIFO group
    # until visible again, so the whole redrive (maxReceiveCount x timeout) must stay well under an hour
    timeout = props(tpl, "CompactorFunction")["Timeout"]
    assert timeout < q["VisibilityTimeout"] <= timeout + 120
    assert q["VisibilityTimeout"] * q["RedrivePolicy"]["maxReceiveCount"] <= 3600
    assert props(tpl, "CleanupQueue")["VisibilityTimeout"] >= 6 * props(tpl, "CleanupFunction")["Timeout"]


def _rule_prefixes(rule: dict[str, Any]) -> list[str]:
    prefixes = [rule.get("Prefix", "")]
    flt = rule.get("Filter") or {}
    if "Prefix" in flt:
        prefixes = [flt["Prefix"]]
    if "And" in flt:
        prefixes = [flt["And"].get("Prefix", "")]
    return prefixes


def test_no_lifecycle_rule_expires_deltas(tpl: dict[str, Any]) -> None:
    """An earlier tool's 7-day rule expired unmerged deltas while the DLQ still held their notifications."""
    rules = props(tpl, "StoreBucket")["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if {"ExpirationInDays", "ExpirationDate", "Transitions"} & set(r)]
    for rule in expiring:
        for prefix in _rule_prefixes(rule):
            touches_deltas = "delta/".startswith(prefix) or prefix.startswith("delta/")
            assert not touches_deltas, f"lifecycle rule {rule.get('Id')} would expire delta/ objects"
    ids = {r["Id"]: r for r in rules}
    assert (
        ids["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] > 0
    )
    assert ids["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 14


def test_noncurrent_snapshots_and_deltas_expire_within_a_day(tpl: dict[str, Any]) -> None:
    """Deleted means freed: a deleted archive or delta must not stay billed for the general 30 days."""
    rules = props(tpl, "StoreBucket")["LifecycleConfiguration"]["Rules"]
    for prefix in ("snapshot/", "delta/"):
        (rule,) = [r for r in rules if _rule_prefixes(r) == [prefix] and "NoncurrentVersionExpiration" in r]
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 1
        assert not {"ExpirationInDays", "ExpirationDate", "Transitions"} & set(rule)
    # whoever deletes by VersionId may list versions and read the versioning status
    for fn in ("CompactorFunction", "ReaperFunction", "CleanupFunction"):
        assert _allowed(tpl, fn, "s3:ListBucketVersions"), fn
        assert _allowed(tpl, fn, "s3:GetBucketVersioning"), fn
    for fn in ("CompactorFunction", "CleanupFunction"):
        denies = [st for st in statements(props(tpl, fn)) if st["Effect"] == "Deny"]
        assert any(
            "s3:DeleteObjectVersion" in as_list(st["Action"]) and sub_text(r).endswith("/latest/pointer.txt")
            for st in denies
            for r in as_list(st["Resource"])
        ), fn


def test_bucket_is_private_versioned_encrypted_and_tls_only(tpl: dict[str, Any]) -> None:
    b = props(tpl, "StoreBucket")
    assert set(b["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(b["PublicAccessBlockConfiguration"]) == 4
    assert b["VersioningConfiguration"]["Status"] == "Enabled"
    assert b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    policy = props(tpl, "StoreBucketPolicy")
    assert policy["Bucket"] == {"Ref": "StoreBucket"}
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*"
    targets = {json.dumps(r, sort_keys=True) for r in deny["Resource"]}
    assert json.dumps({"Fn::GetAtt": ["StoreBucket", "Arn"]}, sort_keys=True) in targets
    assert any("/*" in sub_text(r) for r in deny["Resource"])


def test_policies_are_least_privilege(tpl: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        for st in statements(props(tpl, name)):
            if st["Effect"] != "Allow":
                continue
            actions = as_list(st["Action"])
            for action in actions:
                assert action != "*", f"{name} {st.get('Sid')}"
                assert not action.endswith(":*"), f"{name} {st.get('Sid')}: {action}"
            if as_list(st["Resource"]) == ["*"]:
                assert actions == ["s3:ListAllMyBuckets"], f"{name} {st.get('Sid')} on '*'"
            for res in as_list(st["Resource"]):
                text = sub_text(res)
                assert text not in ("arn:${AWS::Partition}:s3:::*", "arn:aws:s3:::*"), f"{name}: {text}"


def _allowed(tpl: dict[str, Any], fn: str, action: str) -> list[str]:
    return [
        sub_text(r)
        for st in statements(props(tpl, fn))
        if st["Effect"] == "Allow" and action in as_list(st["Action"])
        for r in as_list(st["Resource"])
    ]


def test_s3_write_and_delete_are_scoped_to_prefixes(tpl: dict[str, Any]) -> None:
    def keys(fn: str, action: str) -> list[str]:
        return [r.rsplit("}", 1)[-1] for r in _allowed(tpl, fn, action)]  # the part after the bucket name

    assert keys("ProducerFunction", "s3:PutObject") == [
        "/delta/*",
        "/collection/*/config.json",
        "/idempotency/plans/*",
    ]
    assert keys("ProducerFunction", "s3:DeleteObject") == []
    assert keys("CompactorFunction", "s3:DeleteObject") == ["/delta/*", "/snapshot/*"]
    assert keys("CompactorFunction", "s3:DeleteObjectVersion") == ["/delta/*", "/snapshot/*"]
    assert keys("CompactorFunction", "s3:PutObject") == [
        "/snapshot/*",
        "/collection/*/config.json",
        "/delta-rejected/*",
    ]
    assert keys("ReaperFunction", "s3:PutObject") == ["/reports/reaper/*", "/reaper-state/*"]
    assert keys("ReaperFunction", "s3:DeleteObject") == []
    # the cleanup function may create/delete overflow buckets only, never the store bucket itself
    # <store>-1 ... <store>-999 only: `?` matches one character, so no other bucket of the account
    overflow = [r.rsplit("}", 1)[-1] for r in _allowed(tpl, "CleanupFunction", "s3:DeleteBucket")]
    assert overflow == ["-?", "-??", "-???"]
    assert [r.rsplit("}", 1)[-1] for r in _allowed(tpl, "CleanupFunction", "s3:CreateBucket")] == overflow
    denies = [st for st in statements(props(tpl, "CleanupFunction")) if st["Effect"] == "Deny"]
    assert any(sub_text(r).endswith("/latest/pointer.txt") for st in denies for r in as_list(st["Resource"]))


def test_queue_and_table_access(tpl: dict[str, Any]) -> None:
    def send_targets(fn: str) -> list[Any]:
        return [
            r
            for st in statements(props(tpl, fn))
            if "sqs:SendMessage" in as_list(st["Action"])
            for r in as_list(st["Resource"])
        ]

    assert send_targets("ProducerFunction") == [{"Fn::GetAtt": ["DeltaQueue", "Arn"]}]
    assert send_targets("ReaperFunction") == [{"Fn::GetAtt": ["CleanupQueue", "Arn"]}]
    table = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    for fn in ("ProducerFunction", "CleanupFunction"):
        assert table in [r for st in statements(props(tpl, fn)) for r in as_list(st["Resource"])]
        assert props(tpl, fn)["Environment"]["Variables"][config.IDEMPOTENCY_TABLE] == {
            "Ref": "IdempotencyTable"
        }


def test_no_function_depends_on_the_notifying_bucket(tpl: dict[str, Any]) -> None:
    """The S3 notification makes StoreBucket depend on the producer: the reverse would be a cycle."""
    for name in FUNCTIONS:
        body = {k: v for k, v in props(tpl, name).items() if k != "Events"}  # the S3 event's Ref is fine
        for node in walk(body):
            if isinstance(node, dict):
                assert node.get("Ref") != "StoreBucket", name
                assert node.get("Fn::GetAtt", [None])[0] != "StoreBucket", name
                assert "${StoreBucket" not in sub_text(node.get("Fn::Sub", "")), name
    bucket_name = sub_text(props(tpl, "StoreBucket")["BucketName"])
    store = sub_text(tpl["Globals"]["Function"]["Environment"]["Variables"][config.STORE])
    assert store == f"s3://{bucket_name}"


def test_producer_reacts_to_incoming_uploads(tpl: dict[str, Any]) -> None:
    ev = props(tpl, "ProducerFunction")["Events"]["IncomingUpload"]
    assert ev["Type"] == "S3"
    assert ev["Properties"]["Bucket"] == {"Ref": "StoreBucket"}
    rules = ev["Properties"]["Filter"]["S3Key"]["Rules"]
    assert {"Name": "prefix", "Value": "incoming/"} in [dict(r) for r in rules]
    assert (
        props(tpl, "ProducerFunction")["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    )


def test_schedules(tpl: dict[str, Any]) -> None:
    sweep = props(tpl, "CompactorFunction")["Events"]["Sweep"]
    assert sweep["Type"] == "Schedule"
    assert json.loads(sweep["Properties"]["Input"]) == json.loads(
        (REPO / "events/compactor/sweep.json").read_text()
    )
    reaper = props(tpl, "ReaperFunction")
    (ev,) = reaper["Events"].values()
    assert ev["Type"] == "Schedule"
    assert ev["Properties"]["Schedule"] == {"Ref": "ReaperSchedule"}
    assert reaper["Environment"]["Variables"][config.REAPER_APPLY] == {"Ref": "ReaperApply"}
    assert tpl["Parameters"]["ReaperApply"]["Default"] == "false"  # dry run unless asked


def test_environment_names_match_config(tpl: dict[str, Any]) -> None:
    known = {v for k, v in vars(config).items() if k.isupper() and isinstance(v, str)}
    envs = [tpl["Globals"]["Function"]["Environment"]["Variables"]]
    envs += [props(tpl, n).get("Environment", {}).get("Variables", {}) for n in FUNCTIONS]
    used = {k for env in envs for k in env} - FOREIGN_ENV
    assert used <= known, f"not in storekeeper/config.py: {sorted(used - known)}"
    assert props(tpl, "ProducerFunction")["Environment"]["Variables"][config.DELTA_QUEUE_URL] == {
        "Ref": "DeltaQueue"
    }
    reaper_env = props(tpl, "ReaperFunction")["Environment"]["Variables"]
    assert reaper_env[config.CLEANUP_QUEUE_URL] == {"Ref": "CleanupQueue"}
    assert config.REAPER_POLICIES in reaper_env


def test_globals_set_the_fixed_environment_that_local_runs_and_the_bench_use(tpl: dict[str, Any]) -> None:
    glob_env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    assert {k: glob_env.get(k) for k in LAMBDA_FIXED_ENV} == LAMBDA_FIXED_ENV


def test_idempotency_table(tpl: dict[str, Any]) -> None:
    t = props(tpl, "IdempotencyTable")
    assert t["BillingMode"] == "PAY_PER_REQUEST"
    assert [dict(k) for k in t["KeySchema"]] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert dict(t["TimeToLiveSpecification"]) == {"AttributeName": "expiration", "Enabled": True}


def test_alarms_watch_dlqs_and_missing_pointer_targets(tpl: dict[str, Any]) -> None:
    alarms = resources(tpl, "AWS::CloudWatch::Alarm").values()
    watched = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert watched == {"DeltaDLQ", "CleanupDLQ", "IncomingDLQ", "ScheduleDLQ"}
    (missing,) = [a["Properties"] for a in alarms if a["Properties"]["MetricName"] == "PointerTargetMissing"]
    glob_env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    assert missing["Namespace"] == glob_env["POWERTOOLS_METRICS_NAMESPACE"]
    assert (missing["Threshold"], missing["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    compactor_service = props(tpl, "CompactorFunction")["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert [dict(d) for d in missing["Dimensions"]] == [{"Name": "service", "Value": compactor_service}]


def test_parameters_and_outputs(tpl: dict[str, Any]) -> None:
    for p in (
        "Stage",
        "SupabaseUrl",
        "SupabaseServiceKeySecretArn",
        "ReaperSchedule",
        "ReaperApply",
        "AlarmEmail",
    ):
        assert p in tpl["Parameters"]
        assert tpl["Parameters"][p].get("NoEcho") is not True  # secrets are referenced by ARN, never passed
    outputs = tpl["Outputs"]
    for o in ("StoreBucketName", "DeltaQueueUrl", "CleanupQueueUrl", "StorekeeperLayerArn"):
        assert o in outputs
    for fn in FUNCTIONS:
        assert outputs[f"{fn}Arn"]["Value"] == {"Fn::GetAtt": [fn, "Arn"]}


def test_samconfig_environments() -> None:
    cfg = tomllib.loads((REPO / "samconfig.toml").read_text())
    for env in ("default", "dev", "prod"):
        deploy = cfg[env]["deploy"]["parameters"]
        assert cfg[env]["global"]["parameters"]["stack_name"].startswith("storekeeper-")
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        assert deploy["resolve_s3"] is True
        assert 'ReaperApply="false"' in deploy["parameter_overrides"]
    assert cfg["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert 'Stage="prod"' in cfg["prod"]["deploy"]["parameters"]["parameter_overrides"]


def test_every_function_may_list_its_store_unconditionally(tpl: dict[str, Any]) -> None:
    """S3 answers a missing key with 404 only to a caller allowed s3:ListBucket; that implicit check
    carries no s3:prefix, so a prefix-conditioned grant gives 403 (see tests/iam)."""
    for name in FUNCTIONS:
        grants = [
            st
            for st in statements(props(tpl, name))
            if st["Effect"] == "Allow" and "s3:ListBucket" in as_list(st["Action"])
        ]
        assert grants, name
        assert all("Condition" not in st for st in grants), name


def _alarms(tpl: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources(tpl, "AWS::CloudWatch::Alarm").values()]


def _alarm_on(tpl: dict[str, Any], metric: str, **dims: Any) -> list[dict[str, Any]]:
    return [
        a
        for a in _alarms(tpl)
        if a["MetricName"] == metric
        and all(
            {"Name": k, "Value": v} in [dict(d) for d in a.get("Dimensions", [])] for k, v in dims.items()
        )
    ]


def test_schedules_have_retry_limits_and_a_failure_destination(tpl: dict[str, Any]) -> None:
    """A failed or timed-out scheduled run is not run three times, and leaves its event in a DLQ."""
    dlq = {"Fn::GetAtt": ["ScheduleDLQ", "Arn"]}
    scheduled = [
        (name, ev)
        for name in FUNCTIONS
        for ev in props(tpl, name).get("Events", {}).values()
        if ev["Type"] == "Schedule"
    ]
    assert {n for n, _ in scheduled} == {"CompactorFunction", "ReaperFunction"}
    for name, ev in scheduled:
        p = ev["Properties"]
        assert 0 <= p["RetryPolicy"]["MaximumRetryAttempts"] <= 2, name
        assert p["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 900, name
        assert p["DeadLetterConfig"]["Arn"] == dlq, name
        invoke_cfg = props(tpl, name)["EventInvokeConfig"]
        assert invoke_cfg["MaximumRetryAttempts"] == 0, name  # the next scheduled run is the retry
        assert invoke_cfg["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": dlq}, name
        # EventBridge may send to the DLQ only for these rules
        rule = sub_text(p["Name"])
        (stmt,) = props(tpl, "ScheduleDLQPolicy")["PolicyDocument"]["Statement"]
        assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
        assert any(
            sub_text(a).endswith(f":rule/{rule}") for a in stmt["Condition"]["ArnEquals"]["aws:SourceArn"]
        )
    assert props(tpl, "ScheduleDLQ")["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_dlq_is_alarmed(tpl: dict[str, Any]) -> None:
    queues = resources(tpl, "AWS::SQS::Queue")
    dlqs = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    } | {n for n in queues if n.endswith("DLQ")}
    for dlq in dlqs:
        (alarm,) = _alarm_on(
            tpl, "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [dlq, "QueueName"]}
        )
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold"), dlq


def test_work_queues_alarm_on_the_age_of_their_oldest_message(tpl: dict[str, Any]) -> None:
    for queue in ("DeltaQueue", "CleanupQueue"):
        (alarm,) = _alarm_on(
            tpl, "ApproximateAgeOfOldestMessage", QueueName={"Fn::GetAtt": [queue, "QueueName"]}
        )
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    (delta,) = _alarm_on(
        tpl, "ApproximateAgeOfOldestMessage", QueueName={"Fn::GetAtt": ["DeltaQueue", "QueueName"]}
    )
    assert delta["Threshold"] == {"Ref": "PendingDeltaAlarmSeconds"}


def test_pending_deltas_older_than_the_sweep_period_alarm(tpl: dict[str, Any]) -> None:
    """The compactor's sweep emits OldestPendingDeltaAge (docs/compaction.md); no sweep at all alarms too."""
    ns = tpl["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    (alarm,) = _alarm_on(tpl, "OldestPendingDeltaAge", service="compactor")
    assert alarm["Namespace"] == ns
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == {"Ref": "PendingDeltaAlarmSeconds"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"  # a sweep that stopped running is trouble too
    assert "OldestPendingDeltaAge" in (REPO / "docs/compaction.md").read_text()
    assert (
        tpl["Parameters"]["PendingDeltaAlarmSeconds"]["Default"] >= 2 * 15 * 60
    )  # 2 x the default sweep period


def test_a_reaper_run_without_its_report_alarms(tpl: dict[str, Any]) -> None:
    (alarm,) = _alarm_on(tpl, "ReportsWritten", service="reaper")
    assert alarm["Statistic"] == "Sum"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert alarm["TreatMissingData"] == "breaching"  # no run at all is no report either
    assert alarm["Period"] == {"Ref": "ReaperReportMaxAgeSeconds"}
    assert 'name="ReportsWritten"' in (REPO / "functions/reaper/app.py").read_text()


def test_every_function_alarms_on_errors_throttles_and_nearing_its_timeout(tpl: dict[str, Any]) -> None:
    """Errors count crashes and timeouts; Duration near the timeout warns before runs start dying;
    Throttles: invocations Lambda refused (concurrency used up), in 2 of 3 five-minute periods."""
    alarms = resources(tpl, "AWS::CloudWatch::Alarm").values()
    for name, fn_res in resources(tpl, "AWS::Serverless::Function").items():
        fn = {"Ref": name}
        (throttles,) = _alarm_on(tpl, "Throttles", FunctionName=fn)
        assert (throttles["Namespace"], throttles["Statistic"], throttles["Threshold"]) == (
            "AWS/Lambda", "Sum", 0
        ), name  # fmt: skip
        assert throttles["ComparisonOperator"] == "GreaterThanThreshold"
        assert (throttles["EvaluationPeriods"], throttles["DatapointsToAlarm"]) == (3, 2), name
        # every alarm on a function that may not exist (the query function) carries its condition
        for a in alarms:
            if {"Name": "FunctionName", "Value": fn} in a["Properties"].get("Dimensions", []):
                assert a.get("Condition") == fn_res.get("Condition"), (name, a["Properties"]["AlarmName"])
        (errors,) = _alarm_on(tpl, "Errors", FunctionName=fn)
        assert (errors["Namespace"], errors["Statistic"], errors["Threshold"]) == ("AWS/Lambda", "Sum", 0), (
            name
        )
        assert errors["ComparisonOperator"] == "GreaterThanThreshold"
        (slow,) = _alarm_on(tpl, "Duration", FunctionName=fn)
        timeout_ms = props(tpl, name).get("Timeout", tpl["Globals"]["Function"]["Timeout"]) * 1000
        assert slow["Statistic"] == "Maximum"
        assert slow["Threshold"] == 0.9 * timeout_ms, name
        assert slow["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_alarm_notifies_and_says_what_to_do(tpl: dict[str, Any]) -> None:
    deploy_doc = (REPO / "docs/deploy.md").read_text()
    for rid, a in resources(tpl, "AWS::CloudWatch::Alarm").items():
        p = a["Properties"]
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], rid
        assert len(p["AlarmDescription"]) > 20, rid
        assert f"`{rid}`" in deploy_doc, f"docs/deploy.md does not say what {rid} means and what to do"


def test_incoming_expiry_outlasts_the_incoming_dlq(tpl: dict[str, Any]) -> None:
    """A replay of a dead-lettered S3 event (14 days) must still find its incoming/ file."""
    dlq_days = props(tpl, "IncomingDLQ")["MessageRetentionPeriod"] / 86400
    rules = props(tpl, "StoreBucket")["LifecycleConfiguration"]["Rules"]
    touching = [r for r in rules if "ExpirationInDays" in r and any(
        "incoming/".startswith(p) or p.startswith("incoming/") for p in _rule_prefixes(r))]  # fmt: skip
    assert touching
    for r in touching:
        assert r["ExpirationInDays"] > dlq_days, r["Id"]


def test_idempotency_state_expires_when_protection_lets_it_go(tpl: dict[str, Any]) -> None:
    """Idempotency records and put plans are protected for IDEMPOTENCY_WINDOW and expire right after:
    never before a retry may read them (the cleanup's 14 days, the producer's 24 h), never kept forever."""
    from storekeeper import layout, producer
    from storekeeper.cleanup import runner
    from storekeeper.protection import IDEMPOTENCY_WINDOW

    rules = props(tpl, "StoreBucket")["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if _rule_prefixes(r) == [layout.IDEMPOTENCY_PREFIX]]
    assert rule["ExpirationInDays"] == IDEMPOTENCY_WINDOW.days
    longest = max(producer.IDEMPOTENCY_EXPIRY_SECONDS, runner.IDEMPOTENCY_TTL_SECONDS)
    assert IDEMPOTENCY_WINDOW.total_seconds() > longest


def test_object_grants_follow_the_layout(tpl: dict[str, Any]) -> None:
    """Every object prefix a role names is one of storekeeper.layout's (docs/design-notes.md, "Object
    layout"), so a layout change that the template does not follow fails here, not in AWS."""
    from storekeeper import layout

    prefixes = layout.PREFIXES
    for name in FUNCTIONS:
        for st in statements(props(tpl, name)):
            for res in as_list(st["Resource"]):
                text = sub_text(res)
                if ":s3:::" not in text or "/" not in text.split(":s3:::", 1)[1]:
                    continue  # a bucket, not objects
                key = text.split(":s3:::", 1)[1].split("/", 1)[1]
                assert key == "*" or any(key.startswith(p) for p in prefixes), f"{name}: {key}"
    assert f"/{layout.POINTER_NAME}" in json.dumps(props(tpl, "ProducerFunction")["Policies"])
    assert f"/{layout.MANIFEST_NAME}" in json.dumps(props(tpl, "ProducerFunction")["Policies"])
    assert f"/{layout.CONFIG_NAME}" in json.dumps(props(tpl, "ProducerFunction")["Policies"])


def test_storage_stays_bounded_by_default(tpl: dict[str, Any]) -> None:
    """The compactor's own retention and coalescing are on in a default deployment (issue 15.4)."""
    env = props(tpl, "CompactorFunction")["Environment"]["Variables"]
    assert env[config.COMPACTOR_KEEP_VERSIONS] == {"Ref": "CompactorKeepVersions"}
    assert env[config.COMPACTOR_MIN_INTERVAL_SECONDS] == {"Ref": "CompactorMinIntervalSeconds"}
    assert tpl["Parameters"]["CompactorKeepVersions"]["Default"] == config.DEFAULT_KEEP_VERSIONS > 0
    assert tpl["Parameters"]["CompactorMinIntervalSeconds"]["Default"] == config.DEFAULT_MIN_INTERVAL_SECONDS


def test_prod_alarms_on_a_missing_report_within_two_reaper_periods() -> None:
    cfg = tomllib.loads((REPO / "samconfig.toml").read_text())
    prod = cfg["prod"]["deploy"]["parameters"]["parameter_overrides"]
    assert 'ReaperSchedule="rate(15 minutes)"' in prod
    assert 'ReaperReportMaxAgeSeconds="1800"' in prod  # 2 x 15 min
    assert 'CompactorKeepVersions="3"' in prod  # storage bounded with the reaper in dry run


# -- SnapStart (opt-in: the SnapStart parameter; docs/deploy.md) -------------------------------------
SNAPSTART_FUNCTIONS = {"ProducerFunction", "ReaperFunction", "CleanupFunction"}


def test_snapstart_is_opt_in_and_only_where_it_fits(tpl: dict[str, Any]) -> None:
    param = tpl["Parameters"]["SnapStart"]
    assert param["Default"] == "None"  # existing deployments do not change
    assert set(param["AllowedValues"]) == {"None", "PublishedVersions"}
    glob = tpl["Globals"]["Function"]
    assert "SnapStart" not in glob
    assert "ProvisionedConcurrencyConfig" not in glob  # SnapStart refuses provisioned concurrency
    assert glob["AutoPublishAlias"]  # SnapStart snapshots published versions only
    major, minor = glob["Runtime"].removeprefix("python").split(".")
    assert (int(major), int(minor)) >= (3, 12)  # Python SnapStart starts at 3.12
    for name in FUNCTIONS:
        p = props(tpl, name)
        if name in SNAPSTART_FUNCTIONS:
            assert p["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
            assert p.get("EphemeralStorage", {}).get("Size", 512) <= 512
            assert "FileSystemConfigs" not in p
            assert "ProvisionedConcurrencyConfig" not in p
        else:
            assert "SnapStart" not in p
            assert p["EphemeralStorage"]["Size"] > 512  # the reason they are left out


def test_snapstart_functions_are_invoked_through_the_published_alias() -> None:
    """Every trigger of a SnapStart function names its `live` alias: $LATEST has no snapshot."""
    from tests.iam.deployed import translated

    res = translated({"SnapStart": "PublishedVersions"})["Resources"]
    targets: list[tuple[str, Any]] = []
    for rid, r in res.items():
        p = r.get("Properties", {})
        if r["Type"] in ("AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission"):
            targets.append((rid, p["FunctionName"]))
        elif r["Type"] == "AWS::Events::Rule":
            targets += [(rid, t["Arn"]) for t in p.get("Targets", [])]
        elif r["Type"] == "AWS::S3::Bucket":
            conf = p.get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
            targets += [(rid, c["Function"]) for c in conf]
    for name in SNAPSTART_FUNCTIONS:
        assert res[name]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        alias = f"{name}Aliaslive"
        assert res[alias]["Type"] == "AWS::Lambda::Alias"
        mine = [(rid, t) for rid, t in targets if name in json.dumps(t)]
        assert mine, f"{name}: no trigger found"
        for rid, target in mine:
            assert alias in json.dumps(target), f"{rid} invokes {target}, not the alias {alias}"
