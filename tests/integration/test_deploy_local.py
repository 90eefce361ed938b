"""The CloudFormation template deployed on the local stack's moto server, for the resources moto supports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import boto3

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from operate.deploy import render
from tests.stack import running_stack

#: Types moto's CloudFormation cannot create; the test removes them and what points at them.
UNSUPPORTED = {"AWS::SecretsManager::Secret", "AWS::KinesisFirehose::DeliveryStream"}


def moto_subset(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    dropped = {k for k, v in template["Resources"].items() if v["Type"] in UNSUPPORTED}

    def refers_to_dropped(value: Any) -> bool:
        text = json.dumps(value)
        return any(f'"{d}"' in text or "${" + d in text for d in dropped)

    # resources that only make sense with a dropped one (the delivery streams' alarms) go too
    dropped |= {
        k for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm" and refers_to_dropped(v)
    }

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            if refers_to_dropped(value) and set(value) & {"Ref", "Fn::GetAtt", "Fn::Sub"}:
                return "arn:aws:firehose:us-west-2:123456789012:deliverystream/removed-for-moto"
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    resources = {k: scrub(v) for k, v in template["Resources"].items() if k not in dropped}
    outputs = {k: v for k, v in template["Outputs"].items() if not refers_to_dropped(v)}
    return {**template, "Resources": resources, "Outputs": outputs}, dropped


def test_template_deploys_on_the_local_stack(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, _pipeline, _env):
        # other names than the local stack's own resources on the same moto server
        pipeline = dataclasses.replace(
            Pipeline.load(REPO_ROOT / "pipeline.toml"),
            bucket="coinstream-cfn-landing",
            stream_name="coinstream-cfn-raw",
            live_table="coinstream-cfn-live",
        )
        template, dropped = moto_subset(render(pipeline, REPO_ROOT / "deploy" / "base.json"))
        assert dropped >= {"RedshiftSecret", "CoinstreamCandlesDeliveryStream", "CoinstreamPostsDeliveryStream"}
        kw = {
            "region_name": "us-west-2",
            "endpoint_url": settings.endpoint("s3"),
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        ec2 = boto3.client("ec2", **kw)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        cloudformation = boto3.client("cloudformation", **kw)
        cloudformation.create_stack(
            StackName="coinstream",
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[
                {"ParameterKey": "VpcId", "ParameterValue": vpc},
                {"ParameterKey": "PublicSubnetIds", "ParameterValue": subnet},
            ],
        )
        stack = cloudformation.describe_stacks(StackName="coinstream")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")

        kinesis = boto3.client("kinesis", **kw)
        summary = kinesis.describe_stream_summary(StreamName="coinstream-cfn-raw")["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == pipeline.shards
        s3 = boto3.client("s3", **kw)
        s3.head_bucket(Bucket="coinstream-cfn-landing")  # (moto's CloudFormation does not apply lifecycle rules)
        dynamodb = boto3.client("dynamodb", **kw)
        assert (
            dynamodb.describe_table(TableName="coinstream-cfn-live")["Table"]["BillingModeSummary"]["BillingMode"]
            == "PAY_PER_REQUEST"
        )
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.list_stack_resources(StackName="coinstream")["StackResourceSummaries"]
        }
        iam = boto3.client("iam", **kw)
        for role in ("ProducerRole", "ConsumerRole", "FirehoseRole"):
            assert iam.get_role(RoleName=physical[role])["Role"]["Arn"]
        groups = ec2.describe_security_groups(GroupIds=[physical["RedshiftSecurityGroup"]])["SecurityGroups"]
        ranges = [r["CidrIp"] for p in groups[0]["IpPermissions"] for r in p["IpRanges"]]
        assert ranges == ["52.89.255.224/27"]  # Firehose's range in us-west-2, nothing else
        redshift = boto3.client("redshift", **kw)
        (cluster,) = redshift.describe_clusters()["Clusters"]
        assert cluster["Encrypted"] is True and cluster["DBName"] == "coinstream"
