"""The regulated-user options of template.yaml, checked in the template SAM translates (issue 13).

KmsKeyArn must reach every resource that stores or carries data; SubnetIds/SecurityGroupIds put every
function in the VPC; reserved concurrency is a parameter per function (0 = none); and with every
option off, nothing of them is left in the deployed template.
"""

from __future__ import annotations

from typing import Any

from tests.iam.deployed import deployed

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALL_ON = {
    "EnableQueryFunction": "true",
    "KmsKeyArn": KEY,
    "SubnetIds": "subnet-0a,subnet-0b",
    "SecurityGroupIds": "sg-0a",
    "AccessLogBucketName": "central-access-logs",
}


def _kms_of(rtype: str, props: dict[str, Any]) -> Any:
    if rtype == "AWS::S3::Bucket":
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        sse = rule["ServerSideEncryptionByDefault"]
        return sse.get("KMSMasterKeyID") if sse["SSEAlgorithm"] == "aws:kms" else None
    if rtype == "AWS::SQS::Queue":
        return props.get("KmsMasterKeyId")
    if rtype == "AWS::DynamoDB::Table":
        sse = props["SSESpecification"]
        return sse.get("KMSMasterKeyId") if sse.get("SSEType") == "KMS" else None
    if rtype == "AWS::Logs::LogGroup":
        return props.get("KmsKeyId")
    if rtype == "AWS::Lambda::Function":
        return props.get("KmsKeyArn")
    if rtype == "AWS::SNS::Topic":
        return props.get("KmsMasterKeyId")
    raise AssertionError(rtype)


KMS_TYPES = (
    "AWS::S3::Bucket",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::Logs::LogGroup",
    "AWS::Lambda::Function",
    "AWS::SNS::Topic",
)


def test_the_kms_key_reaches_every_bucket_queue_table_log_group_function_and_topic() -> None:
    d = deployed(ALL_ON)
    seen = set()
    for rtype in KMS_TYPES:
        found = d.of_type(rtype)
        assert found, rtype
        for rid, res in found.items():
            assert _kms_of(rtype, res["Properties"]) == KEY, f"{rid} ({rtype}) is not encrypted with the key"
            seen.add(rtype)
    assert seen == set(KMS_TYPES)
    table = next(iter(d.of_type("AWS::DynamoDB::Table").values()))["Properties"]
    assert table["SSESpecification"]["SSEEnabled"] is True
    for q in d.of_type("AWS::SQS::Queue").values():
        assert "SqsManagedSseEnabled" not in q["Properties"]  # one or the other, never both


def test_without_a_key_aws_managed_encryption_everywhere_and_no_key_named() -> None:
    d = deployed({"EnableQueryFunction": "true"})
    for rtype in KMS_TYPES:
        for rid, res in d.of_type(rtype).items():
            value = _kms_of(rtype, res["Properties"])
            assert value in (None, "alias/aws/sns"), f"{rid}: {value}"
    for q in d.of_type("AWS::SQS::Queue").values():
        assert q["Properties"]["SqsManagedSseEnabled"] is True
    (bucket,) = [b["Properties"] for b in d.of_type("AWS::S3::Bucket").values()]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "KMS" not in str(d.of_type("AWS::DynamoDB::Table"))


def test_vpc_parameters_put_every_function_in_the_vpc_and_only_then_allow_network_interfaces() -> None:
    on, off = deployed(ALL_ON), deployed({"EnableQueryFunction": "true"})
    for fn, res in on.functions().items():
        assert res["Properties"]["VpcConfig"] == {
            "SubnetIds": ["subnet-0a", "subnet-0b"],
            "SecurityGroupIds": ["sg-0a"],
        }
        assert not _denies(on, fn, "ec2:CreateNetworkInterface")
    for fn, res in off.functions().items():
        assert "VpcConfig" not in res["Properties"]
        # SAM attaches AWSLambdaVPCAccessExecutionRole regardless: denied while there is no VPC
        assert _denies(off, fn, "ec2:CreateNetworkInterface"), fn
        assert _denies(off, fn, "xray:PutTraceSegments"), fn  # tracing off: X-Ray denied too
    assert not _denies(deployed({"TracingEnabled": "true"}), "ProducerFunction", "xray:PutTraceSegments")


def _denies(d: Any, fn: str, action: str) -> bool:
    return any(
        st["Effect"] == "Deny" and action in st["Action"]
        for doc in d.policy_documents(fn)
        for st in doc["Statement"]
    )


def test_access_logging_is_a_parameter() -> None:
    (on,) = [b["Properties"] for b in deployed(ALL_ON).of_type("AWS::S3::Bucket").values()]
    assert on["LoggingConfiguration"] == {
        "DestinationBucketName": "central-access-logs",
        "LogFilePrefix": "s3-access/dev/",
    }
    (off,) = [b["Properties"] for b in deployed({}).of_type("AWS::S3::Bucket").values()]
    assert "LoggingConfiguration" not in off


def test_reserved_concurrency_per_function_sized_for_its_event_source() -> None:
    d = deployed({"EnableQueryFunction": "true"})
    reserved = {
        fn: int(res["Properties"]["ReservedConcurrentExecutions"]) for fn, res in d.functions().items()
    }
    assert all(v > 0 for v in reserved.values()), reserved
    mappings = d.of_type("AWS::Lambda::EventSourceMapping").values()
    for m in mappings:
        fn = str(m["Properties"]["FunctionName"])
        owner = next(f for f in reserved if f in fn or d.physical_name(f) in fn)
        esm_max = m["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        # every SQS source is capped, never above what the function may run (no throttled batches)
        assert esm_max is not None, owner
        assert int(esm_max) <= reserved[owner], (owner, esm_max, reserved[owner])
    assert reserved["CompactorFunction"] >= 5 + 1  # the DeltaQueue source's maximum + the sweep
    # the cleanup fan-out follows its parameter: a big plan's tasks go to that many functions at once
    wide = deployed({"CleanupConcurrency": "40"})
    (cleanup_source,) = [
        m for m in wide.of_type("AWS::Lambda::EventSourceMapping").values()
        if "cleanup" in str(m["Properties"]["FunctionName"]).lower()
    ]  # fmt: skip
    assert int(cleanup_source["Properties"]["ScalingConfig"]["MaximumConcurrency"]) == 40
    none = deployed({f"{n}Concurrency": "0" for n in ("Producer", "Compactor", "Reaper", "Cleanup", "Query")})
    assert all("ReservedConcurrentExecutions" not in r["Properties"] for r in none.functions().values())
