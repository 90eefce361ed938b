"""An update from a stack users already run: a template rendered before issue 37 (tests/stacks/, the commit that
issue started on) is created in moto, then updated to today's, through `deploy --apply`'s own change-set path. Later
changes that add parameters must keep this passing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from operate import lifecycle
from operate.deploy import render
from tests.cloudformation_moto import REGION, moto_subset, prepare

OLDER = Path(__file__).parents[1] / "stacks" / "cloudformation-a3aea46.json"


def sent_change_sets(cfn: Any) -> list[dict[str, Any]]:
    """Every CreateChangeSet request the client sends, as sent."""
    sent: list[dict[str, Any]] = []
    cfn.meta.events.register(
        "provide-client-params.cloudformation.CreateChangeSet", lambda params, **_: sent.append(params)
    )
    return sent


def apply(cfn: Any, s3: Any, template: dict[str, Any], given: dict[str, str]) -> dict[str, str] | None:
    body = lifecycle.template_body(template)
    url = lifecycle.template_url(s3, lifecycle.deploy_bucket(s3, "123456789012", REGION, tls_only=False), REGION, body)
    return lifecycle.apply(cfn, "cs", (body, url), given, lambda changes: True, lambda line: None, delay=1)


@pytest.fixture
def aws() -> Any:
    with mock_aws():
        network = prepare(boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION))
        yield boto3.client("cloudformation", region_name=REGION), boto3.client("s3", region_name=REGION), network


def test_an_update_from_the_older_stack_sends_previous_values_only_for_what_it_had(aws: Any) -> None:
    cfn, s3, network = aws
    older, _ = moto_subset(json.loads(OLDER.read_text()))
    assert apply(cfn, s3, older, {**network, "ArtifactVersion": "old"}) is not None
    had = {p["ParameterKey"] for p in cfn.describe_stacks(StackName="cs")["Stacks"][0]["Parameters"]}

    today, _ = moto_subset(render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json"))
    sent = sent_change_sets(cfn)
    # moto (5.x) re-reads an SSM-typed parameter kept by UsePreviousValue from its resolved value, not its name (AWS
    # keeps the name): the image's parameter is given again here, as a user who picks another image would
    # (and a List<...> one as a list): those are given again, as a user who changes them would
    again = {"HostImageId": today["Parameters"]["HostImageId"]["Default"], **network, "ArtifactVersion": "new"}
    assert apply(cfn, s3, today, again) is not None
    [update] = sent
    kept = {p["ParameterKey"] for p in update["Parameters"] if p.get("UsePreviousValue")}
    assert kept and kept == (set(today["Parameters"]) & had) - set(again)
    # a parameter today's template adds (WorkerReadySeconds) is not sent: it takes its default
    new = set(today["Parameters"]) - had
    assert new and not new & {p["ParameterKey"] for p in update["Parameters"]}
    now = {
        p["ParameterKey"]: p["ParameterValue"] for p in cfn.describe_stacks(StackName="cs")["Stacks"][0]["Parameters"]
    }
    assert all(now[k] == str(today["Parameters"][k]["Default"]) for k in new), {k: now[k] for k in new}
    assert {"ParameterKey": "ArtifactVersion", "ParameterValue": "new"} in update["Parameters"]
    assert "TemplateURL" in update and "TemplateBody" not in update
    assert cfn.describe_stacks(StackName="cs")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"


def test_a_parameter_the_running_stack_never_had_takes_its_default(aws: Any) -> None:
    """CloudFormation refuses UsePreviousValue for a key not in the previous template ("Cannot specify
    usePreviousValue as true for a parameter key not in the previous template")."""
    cfn, s3, _ = aws

    def template(*names: str) -> dict[str, Any]:
        return {
            "Parameters": {n: {"Type": "String", "Default": f"{n}-default"} for n in names},
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Ref": names[-1]}}}},
            "Outputs": {"LandingBucket": {"Value": "x"}},
        }

    apply(cfn, s3, template("Kept"), {"Kept": "mine"})
    sent = sent_change_sets(cfn)
    apply(cfn, s3, template("Kept", "Added"), {})
    [update] = sent
    assert update["Parameters"] == [{"ParameterKey": "Kept", "UsePreviousValue": True}]
    params = {
        p["ParameterKey"]: p["ParameterValue"] for p in cfn.describe_stacks(StackName="cs")["Stacks"][0]["Parameters"]
    }
    assert params == {"Kept": "mine", "Added": "Added-default"}


@pytest.mark.parametrize("warehouse", ["redshift", "iceberg"])
def test_every_template_goes_by_url_whatever_its_size(aws: Any, warehouse: str) -> None:
    """The bytes CloudFormation reads are the compact template, from the deploy bucket; past the inline limit too."""
    _, s3, _ = aws
    template = render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json", warehouse)
    template["Metadata"] = {"Padding": "x" * 60_000}  # past TemplateBody's 51,200 bytes
    body = lifecycle.template_body(template)
    assert len(body.encode()) > 51_200
    url = lifecycle.template_url(s3, lifecycle.deploy_bucket(s3, "1", REGION, tls_only=False), REGION, body)
    bucket, key = url.removeprefix("https://").split(".s3.", 1)[0], url.split(".amazonaws.com/", 1)[1]
    assert bucket == f"coinstream-deploy-1-{REGION}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body.encode()


def test_the_deploy_bucket_refuses_plain_http_and_names_its_region_right() -> None:
    policy = json.loads(lifecycle.tls_only_policy("b", "cn-north-1"))
    [deny] = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["arn:aws-cn:s3:::b", "arn:aws-cn:s3:::b/*"]  # the partition of the region
    assert lifecycle.object_url("b", "cn-north-1", "k") == "https://b.s3.cn-north-1.amazonaws.com.cn/k"
    assert lifecycle.object_url("b", "us-east-1", "k") == "https://b.s3.amazonaws.com/k"
    assert json.loads(lifecycle.tls_only_policy("b", "us-gov-west-1"))["Statement"][0]["Resource"][0].startswith(
        "arn:aws-us-gov:"
    )


def test_a_group_whose_host_signalled_failure_brings_its_bootstrap_log_into_the_error() -> None:
    """moto implements no resource signals, so the stack's events are stubbed (as CloudFormation words them) and the
    log group is moto's: the host's own last lines come with the group's failure, read while the stack rolls back."""
    from botocore.stub import Stubber

    now = int(datetime.now(UTC).timestamp() * 1000)
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName="/coinstream/cs/worker-warehouse")
        logs.create_log_stream(logGroupName="/coinstream/cs/worker-warehouse", logStreamName="i-0abc-bootstrap")
        logs.put_log_events(
            logGroupName="/coinstream/cs/worker-warehouse",
            logStreamName="i-0abc-bootstrap",
            logEvents=[
                {"timestamp": now - 1000, "message": "bootstrap: waiting for the artifacts (try 60)"},
                {"timestamp": now, "message": "bootstrap: no coinstream wheel under s3://landing/artifacts/v1"},
            ],
        )
        cfn = boto3.client("cloudformation", region_name=REGION)
        with Stubber(cfn) as stub:
            reason = "Received 1 FAILURE signal(s) out of 1. Unable to satisfy 100% MinSuccessfulInstancesPercent"
            stub.add_response(
                "describe_stack_events",
                {
                    "StackEvents": [
                        {
                            "StackId": "id",
                            "EventId": "e",
                            "StackName": "cs",
                            "LogicalResourceId": "WarehouseWorkers",
                            "ResourceStatus": "CREATE_FAILED",
                            "ResourceStatusReason": reason,
                            "Timestamp": datetime(2026, 12, 7, tzinfo=UTC),
                        }
                    ]
                },
            )
            stub.add_response(
                "describe_stack_resource",
                {
                    "StackResourceDetail": {
                        "LogicalResourceId": "WarehouseWorkerLogGroup",
                        "PhysicalResourceId": "/coinstream/cs/worker-warehouse",
                        "ResourceType": "AWS::Logs::LogGroup",
                        "LastUpdatedTimestamp": datetime(2026, 12, 7, tzinfo=UTC),
                        "ResourceStatus": "CREATE_COMPLETE",
                    }
                },
            )
            hosts = lifecycle.HostReasons(cfn, logs, "cs")
            hosts.poll()
        told = hosts.told()
    assert told.startswith(f"WarehouseWorkers: {reason}")
    assert "i-0abc-bootstrap: bootstrap: no coinstream wheel under s3://landing/artifacts/v1" in told
