"""Every host role's own calls, under its own policy, with IAM enforced as AWS enforces it (tests/iam_moto.py):
the stack is created in moto from today's template, each role is assumed, and the calls its processes make — the
bootstrap's downloads, state and log writes, a producer run, a KCL worker's stream, lease and metric calls — must
be allowed, and what its policy leaves out refused. A needed action removed from a policy fails here, as it would
fail the host on AWS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from operate import lifecycle
from operate.deploy import render
from producer.kinesis_writer import KinesisWriter
from tests.cloudformation_moto import ACCOUNT, REGION, moto_subset, prepare
from tests.conftest import make_post
from tests.iam_moto import CALLED, enforced, granted

STACK = "cs"
#: the delivery stream moto_subset's policies name in place of the ones moto's CloudFormation cannot create
DELIVERY = "removed-for-moto"
TOKEN = "/coinstream/x-token"


#: Actions a role is granted that these tests do not call, each for a reason a reader can check: the SSM agent's
#: own (Session Manager, not coinstream's code), the KCL's calls these tests do not reproduce one by one (its
#: lease-table housekeeping; the real daemon cannot run against moto, whose Kinesis speaks no CBOR), and the
#: CloudWatch agent's. (This list found kinesis:PutRecord, ListShards and DescribeStreamSummary on the producer and
#: firehose:PutRecord on the workers, which no code path calls: they are gone.)
SSM_AGENT = {
    "ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument",
    "ssm:DescribeDocument", "ssm:GetManifest", "ssm:ListAssociations", "ssm:ListInstanceAssociations",
    "ssm:PutInventory", "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
}  # fmt: skip
NOT_CALLED_HERE = {
    # DescribeLogStreams: the CloudWatch agent's, which ships the host's logs under its role
    "ProducerRole": SSM_AGENT | {"logs:DescribeLogStreams"},
    "ConsumerRole": SSM_AGENT
    | {
        # KCL's own, beyond the calls reproduced here
        "kinesis:DescribeStream", "dynamodb:UpdateTable", "dynamodb:DeleteItem", "dynamodb:Query",
        "dynamodb:ConditionCheckItem", "dynamodb:DescribeTimeToLive", "dynamodb:DescribeContinuousBackups",
        "dynamodb:UpdateContinuousBackups",
        "logs:DescribeLogStreams",
    },
}  # fmt: skip


def denied(call: Callable[[], Any]) -> bool:
    """Whether AWS (here moto, made as strict) refuses the call for want of permission."""
    try:
        call()
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return exc.response["Error"]["Code"] in {"AccessDenied", "AccessDeniedException"} or status == 403
    return False


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Callable[[str], Any], dict[str, str], dict[str, Any]]]:
    """Today's stack in moto, its artifacts and the X token in place, then IAM enforced: (as_role, names, template)."""
    with mock_aws():
        network = prepare(boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION))
        boto3.client("ssm", region_name=REGION).put_parameter(Name=TOKEN, Value="secret", Type="SecureString")
        cfn, s3 = boto3.client("cloudformation", region_name=REGION), boto3.client("s3", region_name=REGION)
        template, _ = moto_subset(
            render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json")
        )
        body = lifecycle.template_body(template)
        url = lifecycle.template_url(s3, lifecycle.deploy_bucket(s3, ACCOUNT, REGION, tls_only=False), REGION, body)
        given = {**network, "XTokenParameter": TOKEN, "ArtifactVersion": "v1"}
        lifecycle.apply(cfn, STACK, (body, url), given, lambda changes: True, lambda line: None, delay=1)
        names = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        }
        for key in ("artifacts/v1/coinstream-1.0-py3-none-any.whl", "artifacts/v1/requirements-core.txt"):
            s3.put_object(Bucket=names["LandingBucket"], Key=key, Body=b"x")
        s3.put_object(Bucket=names["LandingBucket"], Key="state/producer/cursor.json", Body=b"{}")
        # moto's CloudFormation creates no delivery stream: the policies name a stand-in one (moto_subset), made here
        boto3.client("firehose", region_name=REGION).create_delivery_stream(
            DeliveryStreamName=DELIVERY,
            ExtendedS3DestinationConfiguration={
                "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/firehose",
                "BucketARN": f"arn:aws:s3:::{names['LandingBucket']}",
            },
        )
        with enforced(cfn, STACK, template, monkeypatch) as as_role:
            yield as_role, names, template


def bootstrap_calls(session: Any, names: dict[str, str], log_group: str) -> None:
    """What deploy/bootstrap.sh asks of AWS: `aws s3 cp --recursive` (a listing, then each object), and on failure or
    when ready, its own log streams."""
    s3, logs = session.client("s3"), session.client("logs")
    listed = s3.list_objects_v2(Bucket=names["LandingBucket"], Prefix="artifacts/v1/")["Contents"]
    for item in listed:
        s3.get_object(Bucket=names["LandingBucket"], Key=item["Key"])
    group = names[log_group]
    logs.create_log_stream(logGroupName=group, logStreamName="i-0abc-bootstrap")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="i-0abc-bootstrap",
        logEvents=[{"timestamp": int(datetime.now(UTC).timestamp() * 1000), "message": "bootstrap: failed"}],
    )
    logs.create_log_stream(logGroupName=group, logStreamName="i-0abc-ready")


def test_the_producer_host_may_do_what_it_does_and_no_more(stack: Any) -> None:
    as_role, names, template = stack
    producer = as_role("ProducerRole")
    bootstrap_calls(producer, names, "ProducerLogGroup")
    s3 = producer.client("s3")
    bucket = names["LandingBucket"]
    # its state survives the host: restored before the first run, copied after each (aws s3 sync)
    s3.list_objects_v2(Bucket=bucket, Prefix="state/producer/")
    s3.get_object(Bucket=bucket, Key="state/producer/cursor.json")
    s3.put_object(Bucket=bucket, Key="state/producer/cursor.json", Body=b"{}")
    s3.delete_object(Bucket=bucket, Key="state/producer/cursor.json")
    # a run: the X token, the stack's names, the records on the stream
    assert producer.client("ssm").get_parameter(Name=TOKEN, WithDecryption=True)["Parameter"]["Value"] == "secret"
    producer.client("cloudformation").describe_stacks(StackName=STACK)
    put = KinesisWriter(names["RawStream"], producer.client("kinesis")).put([make_post(str(i)) for i in range(3)])
    assert not put.unsent
    # and nothing else: the delivered rows, another prefix's listing, the leases
    assert denied(lambda: s3.get_object(Bucket=bucket, Key="firehose/candles/2026/12/07/x"))
    assert denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="firehose/"))
    assert denied(lambda: producer.client("dynamodb").scan(TableName="coinstream-warehouse"))
    assert denied(lambda: producer.client("ssm").get_parameter(Name="/other/secret"))
    assert denied(lambda: producer.client("firehose").put_record(DeliveryStreamName=DELIVERY, Record={"Data": b"x"}))
    # least privilege the other way: every action granted was called, but those named with their reason
    assert granted(template["Resources"], "ProducerRole") - CALLED["ProducerRole"] == NOT_CALLED_HERE["ProducerRole"]


def test_a_worker_host_may_do_what_its_kcl_worker_does_and_never_read_the_x_token(stack: Any) -> None:
    as_role, names, template = stack
    worker = as_role("ConsumerRole")
    bootstrap_calls(worker, names, "WarehouseWorkerLogGroup")
    kinesis, dynamodb = worker.client("kinesis"), worker.client("dynamodb")
    stream = names["RawStream"]
    # KCL: the stream's shards and records, its three tables, its metrics; coinstream: dead letters, the names
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    kinesis.describe_stream_summary(StreamName=stream)
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    kinesis.get_records(
        ShardIterator=iterator,
        StreamARN=kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"],
    )
    for table in (
        "coinstream-warehouse",
        "coinstream-warehouse-CoordinatorState",
        "coinstream-warehouse-WorkerMetricStats",
    ):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.describe_table(TableName=table)
        dynamodb.put_item(TableName=table, Item={"leaseKey": {"S": "shardId-0"}})
        dynamodb.update_item(
            TableName=table,
            Key={"leaseKey": {"S": "shardId-0"}},
            UpdateExpression="SET leaseOwner = :o",
            ExpressionAttributeValues={":o": {"S": "w1"}},
        )
        dynamodb.get_item(TableName=table, Key={"leaseKey": {"S": "shardId-0"}})
        dynamodb.scan(TableName=table)
    worker.client("cloudwatch").put_metric_data(
        Namespace="coinstream-warehouse", MetricData=[{"MetricName": "RecordsProcessed", "Value": 1.0}]
    )
    worker.client("firehose").put_record_batch(DeliveryStreamName=DELIVERY, Records=[{"Data": b"{}\n"}])
    worker.client("s3").put_object(Bucket=names["LandingBucket"], Key="dead-letter/warehouse/x.json", Body=b"{}")
    worker.client("cloudformation").describe_stacks(StackName=STACK)
    # the X token is the producer's alone; the stream is read, never written; no other namespace's metrics
    assert denied(lambda: worker.client("ssm").get_parameter(Name=TOKEN, WithDecryption=True))
    assert denied(lambda: worker.client("ssm").get_parameters(Names=[TOKEN], WithDecryption=True))
    assert denied(lambda: kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k"))
    assert denied(lambda: worker.client("s3").list_objects_v2(Bucket=names["LandingBucket"], Prefix="state/producer/"))
    assert denied(
        lambda: worker.client("cloudwatch").put_metric_data(
            Namespace="AWS/EC2", MetricData=[{"MetricName": "x", "Value": 1.0}]
        )
    )
    assert granted(template["Resources"], "ConsumerRole") - CALLED["ConsumerRole"] == NOT_CALLED_HERE["ConsumerRole"]


@pytest.mark.parametrize(("role", "policy", "sid"), [("ConsumerRole", "worker-host", "ListArtifacts")])
def test_a_needed_action_taken_out_of_a_policy_fails_its_host(
    role: str, policy: str, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The strictness cuts both ways: without s3:ListBucket the worker's `aws s3 cp --recursive` is refused (what
    issue 37 found in the template: the bootstrap got AccessDenied and no worker ever ran)."""
    import json

    from tests.iam_moto import policy_documents

    with mock_aws():
        network = prepare(boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION))
        cfn, s3 = boto3.client("cloudformation", region_name=REGION), boto3.client("s3", region_name=REGION)
        full = render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json")
        documents = policy_documents(full["Resources"], role)
        documents[policy]["Statement"] = [s for s in documents[policy]["Statement"] if s.get("Sid") != sid]
        template, _ = moto_subset(full)
        body = lifecycle.template_body(template)
        url = lifecycle.template_url(s3, lifecycle.deploy_bucket(s3, ACCOUNT, REGION, tls_only=False), REGION, body)
        lifecycle.apply(
            cfn, STACK, (body, url), {**network, "ArtifactVersion": "v1"}, lambda c: True, lambda s: None, delay=1
        )
        bucket = cfn.describe_stack_resource(StackName=STACK, LogicalResourceId="LandingBucket")["StackResourceDetail"][
            "PhysicalResourceId"
        ]
        assert sid not in json.dumps(template)
        with enforced(cfn, STACK, template, monkeypatch) as as_role:
            worker = as_role(role)
            assert denied(lambda: worker.client("s3").list_objects_v2(Bucket=bucket, Prefix="artifacts/v1/"))
