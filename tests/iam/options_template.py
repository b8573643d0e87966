"""Print template.yaml with every regulated-user option on (as parameter defaults), for `make validate`.

`sam validate --lint` and the scanners read parameter defaults: this variant makes them check the
KMS, VPC, access-logging, query, tracing and SnapStart branches too.
"""

from __future__ import annotations

import json

from cfnlint.decode import cfn_yaml

from tests.iam.deployed import REPO

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OPTIONS_ON = {
    "EnableQueryFunction": "true",
    "KmsKeyArn": KEY,
    "SubnetIds": "subnet-0a,subnet-0b",
    "SecurityGroupIds": "sg-0a",
    "AccessLogBucketName": "central-access-logs",
    "TracingEnabled": "true",
    "SnapStart": "PublishedVersions",
}


def with_defaults(params: dict[str, str]) -> str:
    tpl = json.loads(json.dumps(cfn_yaml.load(str(REPO / "template.yaml"))))
    for name, value in params.items():
        tpl["Parameters"][name]["Default"] = value
    return json.dumps(tpl, indent=1)


if __name__ == "__main__":
    print(with_defaults(OPTIONS_ON))
