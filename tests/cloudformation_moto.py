"""The part of a rendered template moto's CloudFormation can create, for the tests that apply it."""

from __future__ import annotations

import json
from typing import Any

#: Types moto's CloudFormation cannot create (moto 5.x); the test removes them and what points at them. The README
#: names them: they are checked by cfn-lint and the template tests only.
UNSUPPORTED = {
    "AWS::SecretsManager::Secret",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::RedshiftServerless::Namespace",
    "AWS::RedshiftServerless::Workgroup",
    "AWS::Logs::LogStream",
}


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

    # moto (5.x) treats a resource whose Metadata or deletion policies changed as replaced, deleting it before what
    # refers to it is updated ("GetAtt references undefined resource"); CloudFormation changes neither: they go
    attributes = {"Metadata", "DeletionPolicy", "UpdateReplacePolicy"}
    resources = {
        k: {a: b for a, b in scrub(v).items() if a not in attributes}
        for k, v in template["Resources"].items()
        if k not in dropped
    }
    outputs = {k: v for k, v in template["Outputs"].items() if not refers_to_dropped(v)}
    return {**template, "Resources": resources, "Outputs": outputs}, dropped


REGION = "us-west-2"
ACCOUNT = "123456789012"
IMAGE = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"  # the hosts' default image


def prepare(ec2: Any, ssm: Any) -> dict[str, str]:
    """What a stack needs before it is created in moto: a VPC, a subnet, the image's public parameter."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    if not ssm.get_parameters(Names=[IMAGE])["Parameters"]:
        ssm.put_parameter(Name=IMAGE, Value=ec2.describe_images()["Images"][0]["ImageId"], Type="String")
    return {"VpcId": vpc, "PublicSubnetIds": subnet}
