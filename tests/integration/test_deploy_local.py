"""The CloudFormation stack's whole life on the local stack posing as AWS (moto's CloudFormation, for the
resources it supports): apply through a change set, names read back from the outputs, destroy."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from coinstream import REPO_ROOT
from coinstream.aws import deployed
from coinstream.config import Pipeline, Settings
from operate.deploy import render
from tests.cloudformation_moto import moto_subset
from tests.stack import coinstream, running_stack

REGION = "us-west-2"  # not the local stack's region: its own resources stay out of the way
SERVICES = (
    "cloudformation",
    "sts",
    "s3",
    "kinesis",
    "dynamodb",
    "firehose",
    "ec2",
    "iam",
    "redshift",
    "logs",
    "cloudwatch",
    "redshift-data",
    "autoscaling",
    "ssm",
)


@pytest.mark.takes(30)
def test_apply_status_names_and_destroy_against_moto(tmp_path: Path) -> None:
    with running_stack(tmp_path / "state") as (settings, _pipeline, env):
        moto = settings.endpoint("s3")
        kw = {
            "region_name": REGION,
            "endpoint_url": moto,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        aws_env = {
            **env,
            "COINSTREAM_TARGET": "aws",
            "COINSTREAM_STACK_NAME": "coinstream-test",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            **{f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}": str(moto) for service in SERVICES},
        }
        ec2 = boto3.client("ec2", **kw)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        template, dropped = moto_subset(
            render(Pipeline.load(REPO_ROOT / "pipeline.toml"), REPO_ROOT / "deploy" / "base.json")
        )
        assert dropped >= {"RedshiftSecret", "CopySecret", "CoinstreamPostsDeliveryStream", "RedshiftWorkgroup"}
        file = tmp_path / "moto-template.json"
        file.write_text(json.dumps(template))

        # a name in pipeline.toml is only a stem: before the stack exists, every AWS command says what to do
        missing = coinstream(aws_env, "local", "status")
        refused = coinstream(aws_env, "deploy", "--status")
        assert (
            refused.returncode == 1
            and "no stack coinstream-test: create it with `coinstream deploy --apply`" in refused.stderr
        )
        assert "Traceback" not in missing.stderr + refused.stderr

        args = [
            "deploy",
            "--apply",
            "--template",
            str(file),
            "--param",
            f"VpcId={vpc}",
            "--param",
            f"PublicSubnetIds={subnet}",
        ]
        declined = subprocess.run(
            [sys.executable, "-m", "operate", *args],
            env=aws_env,
            input="n\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert "change set" in declined.stdout and "not applied; nothing was changed" in declined.stdout, (
            declined.stderr
        )
        cloudformation = boto3.client("cloudformation", **kw)
        assert not [s for s in cloudformation.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]

        applied = coinstream(aws_env, *args, "--param", "Warehouse=provisioned", "--yes")
        # the stack is up; its last step, the schema through the Data API, needs the admin secret moto's
        # CloudFormation does not make: one line naming what is missing (the step itself: tests/unit/test_deploy.py)
        assert applied.returncode == 1, applied.stdout + applied.stderr
        assert applied.stderr.strip().endswith(
            "the stack has no output RedshiftSecretArn: update it with `coinstream deploy --apply`"
        ), applied.stderr
        assert (
            "AWS::Kinesis::Stream" in applied.stdout and "stack coinstream-test is ready in us-west-2" in applied.stdout
        )
        bucket = f"coinstream-landing-123456789012-{REGION}"  # unique per account and region
        s3 = boto3.client("s3", **kw)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        artifacts = {k.split("/", 2)[2] for k in keys if k.startswith("artifacts/")}
        assert {k for k in keys if not k.startswith("artifacts/")} == {
            "jsonpaths/candles_jsonpaths.json",
            "jsonpaths/posts_jsonpaths.json",
            "jsonpaths/post_counts_jsonpaths.json",
        }
        # what the hosts install, under the version the stack's launch templates name
        (version,) = {k.split("/")[1] for k in keys if k.startswith("artifacts/")}
        assert {a for a in artifacts if not a.endswith(".whl")} == {
            "requirements-core.txt",
            "requirements-consumer.txt",
            "config/pipeline.toml",
            "config/firehose_config/candles.json",
            "config/firehose_config/posts.json",
            "config/firehose_config/post_counts.json",
        } and f"ArtifactVersion: {version}" not in applied.stdout
        assert f"the hosts install artifacts/{version}/" in applied.stdout

        # the hosts: a producer group of one, a group of WorkerCount per consumer application, IMDSv2 only, no key
        groups = {
            g["AutoScalingGroupName"]: g
            for g in boto3.client("autoscaling", **kw).describe_auto_scaling_groups()["AutoScalingGroups"]
        }
        sizes = sorted((g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) for g in groups.values())
        # room for one replacement beside each serving host: a rolling update waits for its signal first
        assert sizes == [(1, 2, 1), (1, 21, 1), (1, 21, 1)], groups
        templates = ec2.describe_launch_templates()["LaunchTemplates"]
        assert len(templates) == 3
        for t in templates:
            (data,) = [
                v["LaunchTemplateData"]
                for v in ec2.describe_launch_template_versions(LaunchTemplateId=t["LaunchTemplateId"])[
                    "LaunchTemplateVersions"
                ]
            ]
            assert data["MetadataOptions"]["HttpTokens"] == "required" and "KeyName" not in data
            assert base64.b64decode(data["UserData"]).decode().count(f"/artifacts/{version}") == 1
        logs = boto3.client("logs", **kw).describe_log_groups(logGroupNamePrefix="/coinstream/coinstream-test/")
        assert sorted(g["logGroupName"] for g in logs["logGroups"]) == [
            "/coinstream/coinstream-test/producer",
            "/coinstream/coinstream-test/worker-live",
            "/coinstream/coinstream-test/worker-warehouse",
        ]
        status = coinstream(aws_env, "deploy", "--status")
        assert status.returncode == 0 and bucket in status.stdout and "CREATE_COMPLETE" in status.stdout, status.stderr
        # moto runs no bootstrap: no host said it is ready, so none is reported healthy (EC2's own health says
        # only that the machine runs)
        assert "the stack's hosts" in status.stdout and status.stdout.count("not ready yet") == 3, status.stdout
        # what the bootstraps write: the producer's ran its first run and says so; the warehouse worker's failed
        cloudwatch_logs = boto3.client("logs", **kw)
        instance = {
            g["AutoScalingGroupName"]: g["Instances"][0]["InstanceId"]
            for g in boto3.client("autoscaling", **kw).describe_auto_scaling_groups()["AutoScalingGroups"]
        }
        for group, (log_group, stream) in {
            "ProducerGroup": ("producer", "ready"),
            "WarehouseWorkers": ("worker-warehouse", "bootstrap"),
            "LiveWorkers": ("worker-live", "ready"),
        }.items():
            (name,) = [n for n in instance if f"-{group}-" in n]
            cloudwatch_logs.create_log_stream(
                logGroupName=f"/coinstream/coinstream-test/{log_group}", logStreamName=f"{instance[name]}-{stream}"
            )
        status = coinstream(aws_env, "deploy", "--status")
        assert status.stdout.count("1/1 in service, healthy and ready") == 2, status.stdout
        assert "failed: see its stream" in status.stdout

        # doctor on AWS: the stack, the stream's readers, each application's leases, each delivery's last rows and
        # COPY errors (moto's CloudFormation creates no delivery streams: those lines fail, naming the fix)
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        s3.put_object(Bucket=bucket, Key=f"firehose/candles/{day}/10/rows", Body=b"{}\n")
        s3.put_object(Bucket=bucket, Key=f"firehose-errors/posts/{day}/10/failed", Body=b"{}\n")
        doctor = coinstream(aws_env, "doctor")
        lines = doctor.stdout.splitlines()

        def line(start: str) -> str:
            (found,) = [x for x in lines if start in x]
            return found

        assert line("stack coinstream-test (us-west-2)").startswith("ok"), doctor.stdout
        assert line("kinesis coinstream-raw iterator age").startswith("ok")
        for group in ("ProducerGroup", "LiveWorkers"):  # each host group, its instances, ready
            assert line(f"hosts {group}").startswith("ok") and "1/1 in service, healthy and ready: i-" in line(
                f"hosts {group}"
            )
        assert line("hosts WarehouseWorkers").startswith("FAIL") and "-bootstrap" in line("hosts WarehouseWorkers")
        assert "no lease table yet" in line("kcl coinstream-warehouse")
        assert line("delivery coinstream-candles -> raw_candles").startswith("ok") and "last landed" in line(
            "delivery coinstream-candles"
        )
        assert line("delivery coinstream-posts -> raw_posts").startswith(
            "FAIL"
        ) and "COPY into raw_posts failed" in line("delivery coinstream-posts")
        assert line("firehose coinstream-posts").startswith("FAIL")
        # moto's CloudFormation made no secrets, so no RedshiftSecretArn output: the line says what is missing
        # (the Data API query itself is tested against a Stubber: moto's never finishes a statement)
        assert "the stack has no output RedshiftSecretArn" in line("warehouse newest row per table")
        assert "Traceback" not in doctor.stdout + doctor.stderr
        s3.delete_object(Bucket=bucket, Key=f"firehose/candles/{day}/10/rows")
        s3.delete_object(Bucket=bucket, Key=f"firehose-errors/posts/{day}/10/failed")

        # every command reads the names from the stack's outputs
        aws_settings = Settings(target="aws", stack_name="coinstream-test", region=REGION)
        with _environ({k: v for k, v in aws_env.items() if k.startswith("AWS_")}):
            names = deployed(aws_settings, Pipeline.load(REPO_ROOT / "pipeline.toml"))
        assert (names.bucket, names.stream_name, names.live_table) == (
            bucket,
            "coinstream-raw",
            "coinstream-live-minutes",
        )

        groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["*RedshiftSecurityGroup*"]}])[
            "SecurityGroups"
        ]
        ranges = [r["CidrIp"] for g in groups for p in g["IpPermissions"] for r in p["IpRanges"]]
        assert ranges == ["52.89.255.224/27"]  # Firehose's range in us-west-2, nothing else
        (cluster,) = boto3.client("redshift", **kw).describe_clusters()["Clusters"]
        assert cluster["Encrypted"] is True and cluster["DBName"] == "coinstream"

        # a KCL application's tables, as a worker leaves them (no live owner)
        dynamodb = boto3.client("dynamodb", **kw)
        for table in ("coinstream-warehouse", "coinstream-warehouse-CoordinatorState"):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        destroyed = coinstream(aws_env, "deploy", "--destroy", "--yes")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert f"s3://{bucket} ({len(keys)} objects" in destroyed.stdout and "final snapshot" in destroyed.stdout
        assert "removed KCL tables: coinstream-warehouse, coinstream-warehouse-CoordinatorState" in destroyed.stdout
        assert "coinstream-warehouse" not in dynamodb.list_tables()["TableNames"]
        assert "coinstream-raw" not in boto3.client("kinesis", **kw).list_streams()["StreamNames"]
        s3.head_bucket(Bucket=bucket)  # kept on purpose (DeletionPolicy Retain): it holds the backup of every record
        gone = coinstream(aws_env, "deploy", "--status")
        assert gone.returncode == 1 and "no stack coinstream-test" in gone.stderr


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
