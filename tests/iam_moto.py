"""moto with IAM enforced as AWS enforces it, for the tests that run a role's own calls under its own policy.

moto (5.x) checks IAM once `INITIAL_NO_AUTH_ACTION_COUNT` requests are spent, but it forgives and refuses where AWS
does not, so a least-privilege policy would pass or fail for the wrong reasons. Here it is made as strict as AWS:

- the resource a request is about: moto asks only SQS, IAM and STS for it and checks every other service's calls
  against `*`, which never matches a policy scoped to one stream or table; here Kinesis, DynamoDB, SSM, CloudWatch
  Logs, Firehose and CloudFormation name it as AWS does (the stream's, table's, parameter's, log group's, stack's ARN);
- conditions: moto fails every statement that has one, so an Allow with `s3:prefix` denies the whole request; here
  `StringLike` / `StringEquals` on `s3:prefix` are evaluated (ListObjectsV2's prefix), an unknown key fails closed,
  and a statement whose condition does not hold neither allows nor denies (AWS's rule);
- moto names a listing s3:ListObjectsV2 and a metric monitoring:PutMetricData, actions IAM does not have: they are
  authorised as s3:ListBucket and cloudwatch:PutMetricData;
- moto's CloudFormation stores a role's inline policy as Python's repr, leaves `ManagedPolicyArns` unattached, and
  gives a log group's Arn without AWS's trailing `:*`: all are put right before enforcement starts.
"""

from __future__ import annotations

import ast
import contextvars
import fnmatch
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import settings
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.dynamodb.responses import DynamoHandler
from moto.firehose.responses import FirehoseResponse
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.kinesis.responses import KinesisResponse
from moto.logs.responses import LogsResponse
from moto.s3.responses import S3Response
from moto.ssm.responses import SimpleSystemManagerResponse

from tests.cloudformation_moto import ACCOUNT, REGION

#: The condition keys of the request being checked (s3:prefix of a listing).
_CONDITIONS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("conditions", default=None)


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def _kinesis(self: Any) -> str:
    name = self._get_param("StreamName") or str(self._get_param("StreamARN") or "").rpartition("/")[2]
    return _arn("kinesis", f"stream/{name}") if name else "*"


def _dynamodb(self: Any) -> str:
    name = self._get_param("TableName")
    return _arn("dynamodb", f"table/{name}") if name else "*"


def _ssm(self: Any) -> str:
    name = str(self._get_param("Name") or "")
    return _arn("ssm", f"parameter/{name.lstrip('/')}") if name else "*"


def _logs(self: Any) -> str:
    group, stream = self._get_param("logGroupName"), self._get_param("logStreamName")
    if not group:
        return "*"
    return _arn("logs", f"log-group:{group}" + (f":log-stream:{stream}" if stream else ""))


def _cloudformation(self: Any) -> str:
    name = self._get_param("StackName")
    return _arn("cloudformation", f"stack/{name}/moto") if name else "*"


def _firehose(self: Any) -> str:
    name = self._get_param("DeliveryStreamName")
    return _arn("firehose", f"deliverystream/{name}") if name else "*"


def _cloudwatch(self: Any) -> str:
    """PutMetricData has no resource; its policy conditions on the namespace (set here for the check)."""
    namespace = self._get_param("Namespace")
    _CONDITIONS.set({"cloudwatch:namespace": namespace} if namespace else {})
    return "*"


def _check_conditions(self: Any, incoming: Any) -> bool:
    """StringLike / StringEquals over the request's own keys; anything else fails closed."""
    expected = self._statement.get("Condition")
    if not expected:
        return True
    have = _CONDITIONS.get() or {}
    for operator, pairs in expected.items():
        for key, wanted in pairs.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if key not in have:
                return False
            if operator == "StringLike" and not any(fnmatch.fnmatchcase(have[key], v) for v in values):
                return False
            if operator == "StringEquals" and have[key] not in values:
                return False
            if operator not in ("StringLike", "StringEquals"):
                return False
    return True


#: moto names some S3 requests by their API operation; IAM authorises them under these actions.
_IAM_ACTIONS = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
}


def iam_action(action: str) -> str:
    """The IAM action a request moto names `action` is authorised under."""
    return _IAM_ACTIONS.get(action, action).replace("monitoring:", "cloudwatch:")  # CloudWatch's endpoint name


def _is_action_permitted(
    self: Any, action: str, resource: str = "*", principal: str | None = None, incoming_condition_values: Any = None
) -> PermissionResult:
    """AWS's rule for one statement: it speaks only where its action, resource and condition all match."""
    action = iam_action(action)
    matched = (
        not self._check_element_matches("NotAction", action)
        if "NotAction" in self._statement
        else self._check_element_matches("Action", action)
    )
    if not matched:
        return PermissionResult.NEUTRAL
    if principal and self._statement.get("Principal") and not self._check_principal(principal):
        return PermissionResult.NEUTRAL
    if self._statement.get("Resource") and not self._check_element_matches("Resource", resource):
        return PermissionResult.NEUTRAL
    if not _check_conditions(self, incoming_condition_values):
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED


_original_s3_check = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action


def _s3_check(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    prefix = self.querystring.get("prefix", [None])[0] if hasattr(self, "querystring") else None
    token = _CONDITIONS.set({"s3:prefix": prefix} if prefix is not None and not key_name else {})
    try:
        _original_s3_check(self, bucket_name=bucket_name, key_name=key_name)
    finally:
        _CONDITIONS.reset(token)


def _log_group_arns(resource: Any) -> Any:
    """A log group's Fn::GetAtt Arn as AWS gives it (`...:log-group:NAME:*`); moto leaves off the `:*`."""
    if isinstance(resource, list):
        return [_log_group_arns(r) for r in resource]
    if isinstance(resource, str) and ":log-group:" in resource and resource.count(":") == 6:
        return resource + ":*"
    return resource


def policy_documents(resources: dict[str, Any], role: str) -> dict[str, Any]:
    """A template role's policies by name: its inline ones and the AWS::IAM::Policy resources attached to it."""
    out = {p["PolicyName"]: p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])}
    out.update(
        {
            r["Properties"]["PolicyName"]: r["Properties"]["PolicyDocument"]
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        }
    )
    return out


#: The IAM actions each role was allowed in the test, by role (botocore's after-call hook).
CALLED: dict[str, set[str]] = {}


def granted(resources: dict[str, Any], role: str) -> set[str]:
    """Every action a template role's policies grant (inline, attached, managed)."""
    documents = list(policy_documents(resources, role).values())
    documents += [
        resources[m["Ref"]]["Properties"]["PolicyDocument"]
        for m in resources[role]["Properties"].get("ManagedPolicyArns", [])
        if isinstance(m, dict) and "Ref" in m
    ]
    return {
        action
        for document in documents
        for statement in document["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }


@contextmanager
def enforced(cfn: Any, stack: str, template: dict[str, Any], monkeypatch: Any) -> Iterator[Any]:
    """IAM enforced from here on, as AWS would; yields `as_role(logical id)`: a boto3 session with that role's
    credentials (assumed through STS, as an instance profile does)."""
    iam = boto3.client("iam", region_name=REGION)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    }
    resources = template["Resources"]
    roles = [k for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"]
    iam.create_user(UserName="deployer")
    iam.put_user_policy(
        UserName="deployer",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    for role in roles:
        name = physical[role].rpartition("/")[2]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:  # moto kept Python's repr
            raw = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            document = (
                raw if isinstance(raw, dict) else ast.literal_eval(raw) if raw.startswith("{'") else json.loads(raw)
            )
            for statement in document["Statement"]:
                statement["Resource"] = _log_group_arns(statement.get("Resource", "*"))
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document))
        for managed in resources[role]["Properties"].get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=physical[managed["Ref"]])
        # the instance profile's assume, made by the test's deployer instead of EC2
        trust = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/deployer"},
            "Action": "sts:AssumeRole",
        }
        iam.update_assume_role_policy(
            RoleName=name, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
        )
    for response, find in (
        (KinesisResponse, _kinesis),
        (DynamoHandler, _dynamodb),
        (SimpleSystemManagerResponse, _ssm),
        (LogsResponse, _logs),
        (CloudFormationResponse, _cloudformation),
        (CloudWatchResponse, _cloudwatch),
        (FirehoseResponse, _firehose),
    ):
        monkeypatch.setattr(response, "_determine_resource", find, raising=False)
    monkeypatch.setattr(IAMPolicyStatement, "is_action_permitted", _is_action_permitted)
    monkeypatch.setattr(S3Response, "_authenticate_and_authorize_s3_action", _s3_check)
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    sts = boto3.client(
        "sts", region_name=REGION, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )

    def as_role(role: str) -> Any:
        """A session with the role's credentials; `CALLED[role]` collects the IAM actions it was allowed."""
        credentials = sts.assume_role(RoleArn=iam_arn(physical[role]), RoleSessionName=f"{role}-test")["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        called = CALLED.setdefault(role, set())

        def record(http_response: Any, model: Any, **_: Any) -> None:
            if http_response.status_code < 300:
                called.add(iam_action(f"{model.service_model.signing_name}:{model.name}"))

        session.events.register("after-call", record)
        return session

    def iam_arn(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:iam::{ACCOUNT}:role/{name}"

    CALLED.clear()
    yield as_role
