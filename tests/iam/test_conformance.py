"""IAM conformance: every AWS call each function's code makes is allowed by that function's own role.

The template is translated offline by SAM's translator; every handler path runs
against moto with every AWS call recorded (tests/iam/world.py); each call is
evaluated, with the checks AWS makes implicitly, against the statements of the
calling function's role (tests/iam/authorization.py). A call not allowed fails
the test; a granted action no call used fails it too unless EXPLAINED says why.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.iam.authorization import Check, Names, checks, evaluate
from tests.iam.deployed import Deployed, deployed
from tests.iam.recorder import ApiCall, Recorder
from tests.iam.world import FUNCTIONS, PARAMS, World, create_resources, run_every_path

#: (function, action) granted although the code never calls it, and why. Anything else unused fails.
EXPLAINED: dict[tuple[str, str], str] = {
    ("*", "secretsmanager:GetSecretValue"): (
        "reads the Supabase service key when SupabaseServiceKeySecretArn is set (Supabase stores only; "
        "the S3 scenario has none)"
    ),
    ("*", "dynamodb:GetItem"): (
        "Powertools idempotency reads the record only when a failed conditional PutItem did not return "
        "it (ReturnValuesOnConditionCheckFailure): kept so a retried request never fails on IAM"
    ),
    ("CompactorFunction", "s3:AbortMultipartUpload"): (
        "aborts a failed create-only multipart upload of an archive (archives of 64 MiB and more, "
        "STOREKEEPER_MULTIPART_THRESHOLD_MB; the scenario's archives are small and its uploads succeed)"
    ),
    ("*", "dynamodb:DeleteItem"): (
        "Powertools idempotency deletes the in-progress record when the idempotent call raises, so the "
        "retry can run (the scenario's calls succeed)"
    ),
}
#: resource patterns of called actions that the scenario does not reach, and why they are granted
RESOURCES_NOT_REACHED = {
    "-??": "overflow members 10-99 (the scenario makes one member, <store>-7)",
    "-???": "overflow members 100-999 (the scenario makes one member, <store>-7)",
    "-??/*": "objects of overflow members 10-99",
    "-???/*": "objects of overflow members 100-999",
    "-?/*": "objects of an overflow member: bucket-emptying reaches them (the scenario's member is small)",
    "-?": "an overflow member's bucket-level call the scenario's policies did not need",
    "/collection/*/config.json": "the create-only collection config: its first read/write is granted",
    "us-east-1": "the store bucket's own tags/uploads: read when a bucket/upload policy reaches it",
}
#: statements SAM adds for the Lambda service itself (event source polling, async destinations, X-Ray)
SERVICE_ACTIONS = {
    "sqs:ReceiveMessage": "Lambda's event source mapping polls the queue with the function's role",
    "sqs:DeleteMessage": "Lambda's event source mapping deletes processed messages",
    "sqs:GetQueueAttributes": "Lambda's event source mapping reads the queue's attributes",
    "sqs:ChangeMessageVisibility": "Lambda's event source mapping returns failed messages",
    "sqs:SendMessage": "Lambda sends failed asynchronous invocations to the on-failure destination",
    "kms:Decrypt": "Lambda's event source mapping decrypts messages of a KMS-encrypted queue",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = deployed(PARAMS)
    rec = Recorder()
    with mock_aws(), rec.installed():
        create_resources(d)
        w = World(d, rec, tmp_path_factory.mktemp("iam"))
        run_every_path(w)
        yield w


def names_of(d: Deployed) -> Names:
    return Names(kms_key=(d.params.get("KmsKeyArn") or None))


def verdicts(d: Deployed, calls: list[ApiCall]) -> list[tuple[ApiCall, Check, str]]:
    out = []
    for call in calls:
        docs = d.policy_documents(FUNCTIONS[call.function])
        for chk in checks(call, names_of(d)):
            out.append((call, chk, evaluate(docs, chk)))
    return out


def test_every_call_of_every_function_is_allowed(world: World) -> None:
    denied = [
        f"{call.brief()}\n    needs {chk.describe()}: {verdict}"
        for call, chk, verdict in verdicts(world.d, world.recorder.calls)
        if verdict != "allow"
    ]
    assert not denied, "calls the deployed roles would refuse:\n" + "\n".join(denied)


def test_every_handler_path_ran(world: World) -> None:
    """The scenario reached what the issue names: a path not taken proves nothing about its grants."""
    calls = world.recorder.calls

    def made(function: str, op: str, key_glob: str = "*", status: int | None = None) -> bool:
        return any(
            c.function == function
            and c.operation == op
            and fnmatch.fnmatch(str(c.params.get("Key", c.params.get("Prefix", ""))), key_glob)
            and (status is None or c.status == status)
            for c in calls
        )

    assert {c.function for c in calls} == set(FUNCTIONS)
    assert made("producer", "GetObject", "incoming/docs/*")  # the S3 event's file
    assert made("producer", "PutObject", "delta/docs/*")
    assert any(c.function == "producer" and c.service == "sqs" for c in calls)
    assert any(c.function == "producer" and c.service == "dynamodb" for c in calls)
    assert any(c.function == "producer" and c.status == 404 for c in calls)  # first write: nothing yet
    assert made("compactor", "GetObject", "snapshot/docs/latest/pointer.txt", status=404)  # first compaction
    assert made("compactor", "PutObject", "snapshot/docs/latest/pointer.txt")
    assert made("compactor", "PutObject", "delta-rejected/docs/*")  # quarantine
    assert made("compactor", "GetObject", "delta-rejected/docs/*")  # judging an already-handled delta
    assert made("compactor", "GetObject", "snapshot/fresh/latest/pointer.txt")  # the sweep's new collection
    removed = [json.dumps(c.params) for c in world.recorder.of("compactor") if c.operation == "DeleteObjects"]
    assert any("/000000000001-" in p for p in removed)  # retention removed a superseded version
    assert made("reaper", "PutObject", "reports/reaper/*")
    assert any(c.function == "reaper" and c.operation.startswith("SendMessage") for c in calls)
    for op in ("ListBuckets", "GetBucketTagging", "ListMultipartUploads"):  # bucket and upload policies
        assert any(c.function == "reaper" and c.operation == op for c in calls), op
    for op in ("DeleteObjects", "AbortMultipartUpload", "CreateBucket", "DeleteBucket"):
        assert any(c.function == "cleanup" and c.operation == op for c in calls), op


def _granted(d: Deployed, function: str) -> list[tuple[dict[str, Any], str, str]]:
    """(statement, action, resource pattern) of every Allow the function's code could use."""
    out = []
    for doc in d.policy_documents(function):
        stmts = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
        for st in stmts:
            if st["Effect"] != "Allow":
                continue
            actions, res = st.get("Action", []), st.get("Resource", [])
            for a in [actions] if isinstance(actions, str) else actions:
                for r in [res] if isinstance(res, str) else res:
                    out.append((st, a, r))
    return out


def _used(d: Deployed, calls: list[ApiCall]) -> set[tuple[str, str, str, str]]:
    """(function, action, Sid, resource pattern) of every grant some allowed check needed."""
    used: set[tuple[str, str, str, str]] = set()
    for call, chk, verdict in verdicts(d, calls):
        if verdict != "allow":
            continue
        fn = FUNCTIONS[call.function]
        for st, action, res in _granted(d, fn):
            single = {"Version": "2012-10-17", "Statement": [{**st, "Action": [action], "Resource": [res]}]}
            if evaluate([single], chk) == "allow":
                used.add((fn, action, st.get("Sid", ""), res))
    return used


def unused_grants(
    d: Deployed, calls: list[ApiCall], *, per_resource: bool = False
) -> dict[tuple[str, str], str]:
    """(function, action) -> where it is granted, for granted actions no allowed call needed.

    `per_resource` reports each resource pattern of a used action that no call reached too."""
    used = _used(d, calls)
    used_actions = {(fn, a) for fn, a, _, _ in used}
    out: dict[tuple[str, str], str] = {}
    for fn in set(FUNCTIONS.values()):
        for st, action, res in _granted(d, fn):
            sid = st.get("Sid", "") or "(no Sid: added by SAM)"
            if per_resource:
                if (fn, action) in used_actions and (fn, action, st.get("Sid", ""), res) not in used:
                    out[(fn, f"{action} on {res}")] = sid
            elif (fn, action) not in used_actions:
                out[(fn, action)] = sid
    return out


def test_every_grant_is_called_or_explained(world: World) -> None:
    unexplained = []
    for (fn, action), sid in sorted(unused_grants(world.d, world.recorder.calls).items()):
        if (fn, action) in EXPLAINED or ("*", action) in EXPLAINED:
            continue
        if "(no Sid" in sid and action in SERVICE_ACTIONS:
            continue
        unexplained.append(f"{fn} {sid}: {action}")
    assert not unexplained, "granted, never called, not explained:\n" + "\n".join(unexplained)


def test_the_check_fails_when_a_grant_is_missing(world: World) -> None:
    """The evaluator is not a rubber stamp: without ListBucket a 404 read is denied, and so on."""
    d = world.d
    producer = world.recorder.of("producer")
    missing_reads = [c for c in producer if c.operation in ("GetObject", "HeadObject") and c.status == 404]
    assert missing_reads
    docs = d.policy_documents("ProducerFunction")
    stripped = [
        {**doc, "Statement": [s for s in doc["Statement"] if "s3:ListBucket" not in s.get("Action", [])]}
        for doc in docs
    ]
    for call in missing_reads:
        verdict = {c.action: evaluate(stripped, c) for c in checks(call, Names())}
        assert verdict["s3:ListBucket"] == "implicit deny"
    # a ListBucket granted only under an s3:prefix condition does not answer the object request
    conditional = [
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{world.bucket}",
                 "Condition": {"StringLike": {"s3:prefix": ["collection/*", "snapshot/*"]}}},
            ],
        }
    ]  # fmt: skip
    implicit = Check("s3:ListBucket", f"arn:aws:s3:::{world.bucket}", why="404 rule")
    assert evaluate(conditional, implicit) == "implicit deny"
    listing = Check("s3:ListBucket", f"arn:aws:s3:::{world.bucket}", (("s3:prefix", "snapshot/docs/"),))
    assert evaluate(conditional, listing) == "allow"
    # an explicit Deny wins over an Allow
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    assert (
        evaluate([*docs, deny], Check("s3:GetObject", f"arn:aws:s3:::{world.bucket}/delta/x"))
        == "explicit deny"
    )


def test_report_of_grants(world: World) -> None:
    """Write what each function calls and what it is granted without calling, with the reasons."""
    lines, unexplained = [], []
    all_verdicts = verdicts(world.d, world.recorder.calls)
    for fn in sorted(set(FUNCTIONS.values())):
        actions = sorted({chk.action for call, chk, _ in all_verdicts if FUNCTIONS[call.function] == fn})
        lines.append(f"{fn} calls: {', '.join(actions)}")
    for (fn, action), sid in sorted(unused_grants(world.d, world.recorder.calls).items()):
        why = EXPLAINED.get((fn, action)) or EXPLAINED.get(("*", action)) or SERVICE_ACTIONS.get(action)
        lines.append(f"{fn} grants {action} ({sid}), not called: {why}")
        if why is None:
            unexplained.append(f"{fn} {action}")
    for (fn, what), sid in sorted(unused_grants(world.d, world.recorder.calls, per_resource=True).items()):
        action = what.split(" on ", 1)[0]
        why = next((v for k, v in RESOURCES_NOT_REACHED.items() if what.endswith(k)), None)
        if why is None and "(no Sid" in sid:
            why = SERVICE_ACTIONS.get(action)
        # informational: the action is called, only this resource pattern was not reached by the scenario
        lines.append(f"{fn} grants {what} ({sid}), not reached: {why or 'by this scenario'}")
    (Path(world.tmp) / "iam-report.txt").write_text("\n".join(lines) + "\n")
    assert len(lines) > len(set(FUNCTIONS.values()))  # some grant is reported as not called: the SAM ones
    assert not unexplained


KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_with_a_kms_key_every_call_and_its_kms_use_is_allowed_and_nothing_more(world: World) -> None:
    """The same calls against the template deployed with KmsKeyArn: S3 (SSE-KMS), SQS and DynamoDB use
    the key on the caller's behalf; Lambda decrypts each function's environment with its role."""
    d = deployed({**PARAMS, "KmsKeyArn": KMS_KEY})
    names = Names(kms_key=KMS_KEY)
    denied, used = [], set()
    for call in world.recorder.calls:
        fn = FUNCTIONS[call.function]
        for chk in checks(call, names):
            verdict = evaluate(d.policy_documents(fn), chk)
            if verdict != "allow":
                denied.append(f"{call.brief()}: {chk.describe()}: {verdict}")
            elif chk.action.startswith("kms:"):
                used.add((fn, chk.action))
    for fn in set(FUNCTIONS.values()):
        env = Check("kms:Decrypt", KMS_KEY, why="Lambda decrypts the environment with the function's role")
        assert d.resources[fn]["Properties"]["KmsKeyArn"] == KMS_KEY
        if evaluate(d.policy_documents(fn), env) != "allow":
            denied.append(f"{fn}: {env.describe()}")
        used.add((fn, "kms:Decrypt"))
    assert not denied, "\n".join(denied)
    granted = {
        (fn, a) for fn in set(FUNCTIONS.values()) for st, a, _ in _granted(d, fn) if a.startswith("kms:")
    }
    assert granted == used, f"granted, not needed: {granted - used}"
    # without the key, no role names any kms: action
    assert not any(
        a.startswith("kms:") for fn in set(FUNCTIONS.values()) for _, a, _ in _granted(world.d, fn)
    )
