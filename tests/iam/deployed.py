"""template.yaml as CloudFormation would deploy it: translated offline by SAM, intrinsics resolved.

`deployed(params)` runs SAM's own translator (aws-sam-translator, no AWS call: the
managed-policy loader is only needed for policy *names*, and the template uses
inline statements and ARNs) and then resolves `Ref`, `Fn::GetAtt`, `Fn::Sub`,
`Fn::If`, `Fn::Join`, ... for a fixed account and region, so each function's
role reads as the literal policy documents IAM would evaluate. Physical names
come from each resource's own name property (every resource of ours names
itself), ARNs from the documented ARN formats.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "storekeeper-dev"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0",
}
NO_VALUE = object()

#: the property that holds each resource type's physical name
NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Key": None,
}


class _NoManagedPolicies:
    """SAM asks for the name->ARN map of AWS managed policies only when a template names one."""

    def load(self) -> dict[str, str]:
        raise AssertionError("template.yaml names a managed policy: use inline statements or an ARN")


@cache
def _translated(params_json: str) -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator

    ArnGenerator.BOTO_SESSION_REGION_NAME = REGION  # as cfn-lint does: no AWS call is made
    params = json.loads(params_json)
    sam = json.loads(json.dumps(cfn_yaml.load(str(REPO / "template.yaml"))))
    for res in sam["Resources"].values():  # local code paths are what `sam package` uploads
        for prop in ("CodeUri", "ContentUri"):
            uri = res.get("Properties", {}).get(prop)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                res["Properties"][prop] = f"s3://artifacts/{uri.strip('/')}"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    out = translator.translate(
        sam, parameter_values={**PSEUDO, **params}, get_managed_policy_map=_NoManagedPolicies().load
    )
    return dict(out)


def translated(params: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM produces (a fresh copy)."""
    return copy.deepcopy(_translated(json.dumps(params or {}, sort_keys=True)))


@dataclass
class Deployed:
    """The translated template with every intrinsic resolved."""

    template: dict[str, Any]
    params: dict[str, str]
    conditions: dict[str, bool] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == rtype}

    def functions(self) -> dict[str, dict[str, Any]]:
        return self.of_type("AWS::Lambda::Function")

    def role_of(self, function: str) -> dict[str, Any]:
        role_arn = self.resources[function]["Properties"]["Role"]
        for rid, res in self.of_type("AWS::IAM::Role").items():
            if self.arn(rid) == role_arn:
                return dict(res["Properties"])
        raise AssertionError(f"{function}: role {role_arn} is not in the template")

    def policy_documents(self, function: str) -> list[dict[str, Any]]:
        """The role's inline policies (what the function's code may call)."""
        return [p["PolicyDocument"] for p in self.role_of(function).get("Policies", [])]

    def managed_policies(self, function: str) -> list[str]:
        return list(self.role_of(function).get("ManagedPolicyArns", []))

    def environment(self, function: str) -> dict[str, str]:
        props = self.resources[function]["Properties"]
        return dict(props.get("Environment", {}).get("Variables", {}))

    # -- names and ARNs ---------------------------------------------------------------
    def physical_name(self, rid: str) -> str:
        res = self.resources[rid]
        prop = NAME_PROPERTY.get(res["Type"])
        name = res.get("Properties", {}).get(prop) if prop else None
        return str(name) if name else f"{STACK}-{rid}-GENERATED"

    def arn(self, rid: str) -> str:
        rtype = self.resources[rid]["Type"]
        name = self.physical_name(rid)
        region, acct = REGION, ACCOUNT
        return {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{acct}:{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{acct}:table/{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{acct}:function:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{acct}:{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{acct}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:aws:iam::{acct}:role/{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{region}:{acct}:key/{rid}",
        }.get(rtype, f"arn:aws:cloudformation:::{rid}")

    def ref(self, rid: str) -> str:
        rtype = self.resources[rid]["Type"]
        if rtype == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_name(rid)}"
        if rtype in ("AWS::SNS::Topic", "AWS::Lambda::LayerVersion"):
            return self.arn(rid)
        return self.physical_name(rid)


def deployed(params: dict[str, str] | None = None) -> Deployed:
    """The template deployed with `params` (the rest at their defaults)."""
    tpl = translated(params)
    values = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
    values.update(params or {})
    d = Deployed(tpl, values)
    r = _Resolver(d)
    d.conditions = {k: bool(r.value(v)) for k, v in tpl.get("Conditions", {}).items()}
    resources = tpl["Resources"]
    # names first (ARNs and Refs are built from them), then everything else
    for res in resources.values():
        if res.get("Condition") and not d.conditions.get(res["Condition"], True):
            res["_absent"] = True
        prop = NAME_PROPERTY.get(res["Type"])
        if prop and prop in res.get("Properties", {}):
            res["Properties"][prop] = r.value(res["Properties"][prop])
    d.template["Resources"] = {
        k: {**v, "Properties": r.value(v.get("Properties", {}))}
        for k, v in resources.items()
        if not v.get("_absent")
    }
    return d


class _Resolver:
    def __init__(self, d: Deployed) -> None:
        self.d = d

    def value(self, node: Any) -> Any:
        out = self._value(node)
        return None if out is NO_VALUE else out

    def _value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self._value(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                rid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._getatt(rid, attr)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self._value(yes if self.d.conditions[cond] else no)
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self._value(items))
            if fn == "Fn::Select":
                idx, items = arg
                return self._value(items)[int(self._value(idx))]
            if fn == "Fn::Split":
                sep, text = arg
                return str(self._value(text)).split(sep)
            if fn == "Fn::Equals":
                a, b = (self._value(x) for x in arg)
                return str(a) == str(b)  # CloudFormation compares the string forms
            if fn == "Fn::Not":
                return not self._value(arg[0])
            if fn == "Fn::And":
                return all(self._value(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._value(x) for x in arg)
            if fn == "Condition":
                return self.d.conditions[arg]
        return {k: v for k, v in ((k, self._value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.d.params:
            ptype = self.d.template["Parameters"][name].get("Type", "String")
            value = self.d.params[name]
            return (
                [v for v in value.split(",") if v]
                if ptype.startswith("List<") or "CommaDelimited" in ptype
                else value
            )
        return self.d.ref(name)

    def _getatt(self, rid: str, attr: str) -> str:
        if attr == "Arn":
            return self.d.arn(rid)
        if attr in ("QueueName", "TopicName"):
            return self.d.physical_name(rid)
        if attr == "QueueUrl":
            return self.d.ref(rid)
        if attr == "RegionalDomainName":
            return f"{self.d.physical_name(rid)}.s3.{REGION}.amazonaws.com"
        return f"{rid}.{attr}"

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                break
            out.append(text[i:start])
            end = text.index("}", start)
            var = text[start + 2 : end]
            if var.startswith("!"):
                out.append("${" + var[1:] + "}")
            elif var in local:
                out.append(str(self._value(local[var])))
            elif "." in var and var.split(".", 1)[0] in self.d.resources:
                out.append(self._getatt(*var.split(".", 1)))
            else:
                out.append(str(self._ref(var)))
            i = end + 1
        return "".join(out)
