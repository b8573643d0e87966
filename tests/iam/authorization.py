"""What IAM checks for one recorded API call, and the verdict of the function's policies.

`checks(call, names)` turns a call into the (action, resource ARN, context keys)
requests AWS authorizes, including the checks it makes implicitly:

* **S3's 403-versus-404 rule**: a GetObject / HeadObject of a missing key
  answers 404 only to a caller allowed `s3:ListBucket` on the bucket, else 403
  (GetObject and HeadObject API reference, "Permissions"). The implicit check
  is made on the object request, whose context has no `s3:prefix`: a
  `s3:ListBucket` granted only under an `s3:prefix` condition does not count.
* **KMS on the caller's behalf**: with SSE-KMS on the bucket, S3 asks KMS with
  the caller's credentials: `kms:GenerateDataKey` for writes (PutObject,
  multipart), `kms:Decrypt` for reads (GetObject, HeadObject) and for multipart
  completion. SQS with a customer key: SendMessage needs `kms:GenerateDataKey`,
  ReceiveMessage `kms:Decrypt` (the receiving is done by Lambda's poller with the
  function's role). DynamoDB with a customer key: `kms:Decrypt` on every
  item read/write (DynamoDB caches data keys, but the grant must exist).

Resource names are the deployed ones: `names` maps what the test pointed the
function at (bucket, queue URLs, table) to the template's physical names.
`evaluate()` applies AWS's rule (an explicit Deny wins, then any Allow, else the
implicit deny) with tests/iam/evaluator.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.iam.evaluator import decide
from tests.iam.recorder import ApiCall


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = ""  # set for implicit checks

    def describe(self) -> str:
        ctx = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{ctx}" + (f" ({self.why})" if self.why else "")


@dataclass
class Names:
    """Test resource names -> deployed names, for one call."""

    buckets: dict[str, str] = field(default_factory=dict)  # test bucket -> deployed bucket
    queues: dict[str, str] = field(default_factory=dict)  # test queue URL -> deployed queue ARN
    tables: dict[str, str] = field(default_factory=dict)  # test table name -> deployed table ARN
    kms_key: str | None = None  # the key configured (KmsKeyArn), or None
    region: str = "us-east-1"
    account: str = "123456789012"

    def bucket(self, name: str) -> str:
        if name in self.buckets:
            return self.buckets[name]
        for test, real in self.buckets.items():  # overflow members <base>-N
            if name.startswith(test + "-"):
                return real + name[len(test) :]
        return name  # not ours: checked as it is (so it is denied unless granted)

    def queue_arn(self, url: str) -> str:
        if url in self.queues:
            return self.queues[url]
        name = url.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def table_arn(self, table: str) -> str:
        return self.tables.get(table, f"arn:aws:dynamodb:{self.region}:{self.account}:table/{table}")


class UnknownOperation(AssertionError):
    pass


_S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "CreateBucket": "s3:CreateBucket",
    "DeleteBucket": "s3:DeleteBucket",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "DeleteBucketTagging": "s3:PutBucketTagging",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketLocation": "s3:GetBucketLocation",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketAbac": "s3:PutBucketAbac",
}
_S3_OBJECT_ACTIONS = {
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "PutObject": ("s3:PutObject", "s3:PutObject"),
    "CreateMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "UploadPart": ("s3:PutObject", "s3:PutObject"),
    "CompleteMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "s3:AbortMultipartUpload"),
    "DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
}
_KMS_READ = {"GetObject", "HeadObject", "CompleteMultipartUpload", "CopyObject"}
_KMS_WRITE = {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"}

_SQS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
}
_DYNAMODB = {
    "GetItem": "dynamodb:GetItem",
    "PutItem": "dynamodb:PutItem",
    "UpdateItem": "dynamodb:UpdateItem",
    "DeleteItem": "dynamodb:DeleteItem",
    "Query": "dynamodb:Query",
    "DescribeTable": "dynamodb:DescribeTable",
}


def checks(call: ApiCall, names: Names) -> list[Check]:
    svc, op, p = call.service, call.operation, call.params
    if svc == "s3":
        return _s3(op, p, call, names)
    if svc == "sqs" and op in _SQS:
        out = [Check(_SQS[op], names.queue_arn(p["QueueUrl"]))]
        if names.kms_key and op.startswith("Send"):
            out.append(Check("kms:GenerateDataKey", names.kms_key, why="SQS encrypts with the queue's key"))
        if names.kms_key and op == "ReceiveMessage":
            out.append(Check("kms:Decrypt", names.kms_key, why="SQS decrypts with the queue's key"))
        return out
    if svc == "dynamodb" and op in _DYNAMODB:
        out = [Check(_DYNAMODB[op], names.table_arn(p["TableName"]))]
        if names.kms_key:
            out.append(Check("kms:Decrypt", names.kms_key, why="DynamoDB table encrypted with the key"))
        return out
    if svc == "secretsmanager" and op == "GetSecretValue":
        return [Check("secretsmanager:GetSecretValue", str(p["SecretId"]))]
    if svc == "sts" and op == "GetCallerIdentity":
        return []  # needs no permission
    raise UnknownOperation(f"{svc}.{op}: add how IAM authorizes it to tests/iam/authorization.py")


def _s3(op: str, p: dict[str, Any], call: ApiCall, names: Names) -> list[Check]:
    if op == "ListBuckets":
        return [Check("s3:ListAllMyBuckets", "*")]
    bucket = names.bucket(str(p["Bucket"]))
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if op in _S3_BUCKET_ACTIONS:
        ctx: list[tuple[str, str]] = []
        if op.startswith("List"):
            ctx.append(("s3:prefix", str(p.get("Prefix", ""))))
            if "Delimiter" in p:
                ctx.append(("s3:delimiter", str(p["Delimiter"])))
        out = [Check(_S3_BUCKET_ACTIONS[op], bucket_arn, tuple(ctx))]
        if op == "CreateBucket" and p.get("ObjectOwnership"):
            out.append(Check("s3:PutBucketOwnershipControls", bucket_arn))
        if op == "CreateBucket" and p.get("CreateBucketConfiguration", {}).get("Tags"):
            out.append(Check("s3:TagResource", bucket_arn))
        return out
    if op == "DeleteObjects":
        out = []
        for obj in p["Delete"]["Objects"]:
            action = "s3:DeleteObjectVersion" if obj.get("VersionId") else "s3:DeleteObject"
            out.append(Check(action, f"{bucket_arn}/{obj['Key']}"))
        return out
    if op == "CopyObject":
        src = p["CopySource"]
        src_bucket, src_key = (src["Bucket"], src["Key"]) if isinstance(src, dict) else src.split("/", 1)
        out = [
            Check("s3:GetObject", f"arn:aws:s3:::{names.bucket(src_bucket)}/{src_key}"),
            Check("s3:PutObject", f"{bucket_arn}/{p['Key']}"),
        ]
    elif op in _S3_OBJECT_ACTIONS:
        plain, versioned = _S3_OBJECT_ACTIONS[op]
        action = versioned if p.get("VersionId") else plain
        ctx = []
        if op == "PutObject" and p.get("IfMatch"):
            ctx.append(("s3:if-match", str(p["IfMatch"])))
        if op == "PutObject" and p.get("IfNoneMatch"):
            ctx.append(("s3:if-none-match", str(p["IfNoneMatch"])))
        out = [Check(action, f"{bucket_arn}/{p['Key']}", tuple(ctx))]
        if op in ("GetObject", "HeadObject") and call.status == 404:
            out.append(
                Check("s3:ListBucket", bucket_arn, why="a missing key answers 404 only with s3:ListBucket")
            )
    else:
        raise UnknownOperation(f"s3.{op}: add how IAM authorizes it to tests/iam/authorization.py")
    if names.kms_key and op in _KMS_WRITE:
        out.append(Check("kms:GenerateDataKey", names.kms_key, why="SSE-KMS write on the caller's behalf"))
    if names.kms_key and op in _KMS_READ and call.status != 404:
        out.append(Check("kms:Decrypt", names.kms_key, why="SSE-KMS read on the caller's behalf"))
    return out


def evaluate(documents: list[dict[str, Any]], check: Check) -> str:
    """'allow', 'explicit deny' or 'implicit deny', by IAM's evaluation logic (tests/iam/evaluator.py)."""
    return decide(documents, check.action, check.resource, dict(check.context))
