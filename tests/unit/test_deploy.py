"""The CloudFormation template: up to date, least privilege, Redshift closed to the world, lint-clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from operate.deploy import PLACEHOLDERS, Traffic, monthly_cost, render, render_text

TEMPLATE = REPO_ROOT / "deploy" / "cloudformation.json"
BASE = REPO_ROOT / "deploy" / "base.json"


def pipeline() -> Pipeline:
    return Pipeline.load(REPO_ROOT / "pipeline.toml")


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in template["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            out.extend(policy["PolicyDocument"]["Statement"])
    return out


def test_committed_template_is_rendered_from_the_current_files() -> None:
    assert TEMPLATE.read_text() == render_text(pipeline(), BASE), (
        "deploy/cloudformation.json is stale: run `coinstream deploy --render deploy/cloudformation.json`"
    )


def test_iam_has_no_wildcard_action_and_wildcard_resources_only_where_aws_has_no_resource_arns() -> None:
    for statement in statements(render(pipeline(), BASE)):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        if statement["Resource"] == "*":
            assert actions == ["cloudwatch:PutMetricData"] and "Condition" in statement, statement


def test_redshift_accepts_only_firehose_and_is_encrypted() -> None:
    template = render(pipeline(), BASE)
    (rule,) = template["Resources"]["RedshiftSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert rule["CidrIp"] == {"Fn::FindInMap": ["FirehoseCidr", {"Ref": "AWS::Region"}, "Cidr"]}
    assert all(
        v["Cidr"] != "0.0.0.0/0" and v["Cidr"].endswith("/27") for v in template["Mappings"]["FirehoseCidr"].values()
    )
    assert template["Resources"]["RedshiftCluster"]["Properties"]["Encrypted"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(template["Resources"]["RedshiftCluster"])


def test_delivery_streams_are_the_firehose_config_files() -> None:
    template = render(pipeline(), BASE)
    streams = {
        r["Properties"]["DeliveryStreamName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"
    }
    for file in sorted((REPO_ROOT / "firehose_config").glob("*.json")):
        raw = json.loads(file.read_text())
        props = streams[raw["DeliveryStreamName"]]
        redshift = props["RedshiftDestinationConfiguration"]
        assert redshift["Password"] == PLACEHOLDERS["RedshiftPassword"]
        assert (
            redshift["CopyCommand"]["DataTableName"]
            == raw["RedshiftDestinationConfiguration"]["CopyCommand"]["DataTableName"]
        )
        assert (
            redshift["S3Configuration"]["BufferingHints"]
            == raw["RedshiftDestinationConfiguration"]["S3Configuration"]["BufferingHints"]
        )
        assert "'s3://${Bucket}/jsonpaths/" in redshift["CopyCommand"]["CopyOptions"]["Fn::Sub"][0]


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cost_estimate_bills_firehose_in_5kb_units_and_grows_with_traffic() -> None:
    prices = json.loads((REPO_ROOT / "deploy" / "prices.json").read_text())
    quiet = {item: usd for item, _, usd in monthly_cost(pipeline(), prices, Traffic(posts_per_minute=10))}
    busy = {item: usd for item, _, usd in monthly_cost(pipeline(), prices, Traffic(posts_per_minute=10_000))}
    assert busy["Firehose ingestion"] > quiet["Firehose ingestion"] > 0
    assert busy["Kinesis shards"] == quiet["Kinesis shards"] == pytest.approx(2 * 730 * 0.015)
    assert prices["as_of"]


def test_render_and_check_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    result = subprocess.run(
        [sys.executable, "-m", "operate", "deploy", "--check", "--render", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == TEMPLATE.read_text()
    assert "AWS::KinesisFirehose::DeliveryStream" in result.stdout and "total" in result.stdout
    # one bill: X's lines beside AWS's, priced for the configured schedule
    assert "X counts requests" in result.stdout and "12/day" in result.stdout and "X total" in result.stdout
