"""The AWS side as one CloudFormation template, and what it would cost.

The template is rendered from deploy/base.json (everything but the delivery streams), the
names and sizes in pipeline.toml, and the delivery stream definitions in firehose_config/ —
the same files the local stack reads — so the two sides cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError

_RENDER_TOKEN = re.compile(r"@(\w+)@")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
#: A CloudFormation dynamic reference to one field of the generated Redshift secret (not a secret itself).
SECRET_REF = "{{resolve:secretsmanager:${RedshiftSecret}:SecretString:FIELD}}"  # noqa: S105

#: What each ${...} placeholder of a firehose_config file is on AWS.
PLACEHOLDERS: dict[str, Any] = {
    "FirehoseRoleArn": {"Fn::GetAtt": ["FirehoseRole", "Arn"]},
    "RedshiftJdbcUrl": {
        "Fn::Sub": "jdbc:redshift://${RedshiftCluster.Endpoint.Address}:${RedshiftCluster.Endpoint.Port}/coinstream"
    },
    "RedshiftUser": {"Fn::Sub": SECRET_REF.replace("FIELD", "username")},
    "RedshiftPassword": {"Fn::Sub": SECRET_REF.replace("FIELD", "password")},
    "Bucket": {"Ref": "LandingBucket"},
}


def _logical_id(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", name) if part) + "DeliveryStream"


def _to_cfn(value: Any) -> Any:
    """Turn ${Placeholder} strings of a delivery definition into CloudFormation expressions."""
    if isinstance(value, dict):
        return {k: _to_cfn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cfn(v) for v in value]
    if isinstance(value, str) and "${" in value:
        names = _PLACEHOLDER.findall(value)
        unknown = [n for n in names if n not in PLACEHOLDERS]
        if unknown:
            raise FatalError(f"firehose_config: unknown placeholder(s) {unknown}; known: {sorted(PLACEHOLDERS)}")
        if len(names) == 1 and value == "${" + names[0] + "}":
            return PLACEHOLDERS[names[0]]
        return {"Fn::Sub": [value, {n: PLACEHOLDERS[n] for n in names}]}
    return value


def render(pipeline: Pipeline, base: Path) -> dict[str, Any]:
    """The full template: base resources, names from pipeline.toml, one delivery stream per kind."""
    streams = load_delivery_streams(pipeline, values={})
    tokens: dict[str, Any] = {
        "Stream": pipeline.stream_name,
        "Shards": pipeline.shards,
        "RetentionHours": pipeline.retention_hours,
        "Bucket": pipeline.bucket,
        "LiveTable": pipeline.live_table,
        "DeadLetterPrefix": pipeline.dead_letter_prefix,
        "DeliveryStreamArns": [{"Fn::GetAtt": [_logical_id(s.name), "Arn"]} for s in streams.values()],
    }

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str):
            whole = _RENDER_TOKEN.fullmatch(value)
            if whole:
                return tokens[whole.group(1)]
            return _RENDER_TOKEN.sub(lambda m: str(tokens[m.group(1)]), value)
        return value

    template: dict[str, Any] = fill(json.loads(base.read_text()))
    resources = template["Resources"]
    for stream in streams.values():
        # The file's ${Bucket} was kept (values={}), so it becomes a reference to the bucket resource.
        definition = json.loads((pipeline.delivery_files[stream.kind]).read_text())
        logical = _logical_id(stream.name)
        resources[logical] = {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": _to_cfn(definition)}
        resources[f"{logical}FailureAlarm"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"{stream.name}: COPY into {stream.table} is failing (see STL_LOAD_ERRORS and "
                f"s3://{pipeline.bucket}/{stream.error_prefix})",
                "Namespace": "AWS/Firehose",
                "MetricName": "DeliveryToRedshift.Success",
                "Dimensions": [{"Name": "DeliveryStreamName", "Value": {"Ref": logical}}],
                "Statistic": "Minimum",
                "Period": 300,
                "EvaluationPeriods": 3,
                "Threshold": 1,
                "ComparisonOperator": "LessThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "AlarmTopic"}],
            },
        }
    return template


def render_text(pipeline: Pipeline, base: Path) -> str:
    """The template as committed in deploy/cloudformation.json (stable formatting)."""
    return json.dumps(render(pipeline, base), indent=2, sort_keys=False) + "\n"


@dataclass(frozen=True)
class Traffic:
    """The traffic a cost estimate assumes."""

    posts_per_minute: float = 60.0
    candles_per_minute: float = 2.0
    record_bytes: int = 400
    workers: int = 2
    redshift_node_type: str = "ra3.large"
    redshift_nodes: int = 1


@dataclass(frozen=True)
class Estimate:
    """A monthly bill: where the prices come from, and one (item, basis, USD) line per billed part."""

    region: str
    as_of: str
    lines: list[tuple[str, str, float]]

    @property
    def total(self) -> float:
        """USD per month, all lines."""
        return sum(line[2] for line in self.lines)


def template_path(pipeline: Pipeline) -> Path:
    """The base template the deployment is rendered from."""
    return pipeline.root / "deploy" / "base.json"


def estimate(pipeline: Pipeline, traffic: Traffic) -> Estimate:
    """The monthly cost of the rendered stack under `traffic`, from the dated prices in deploy/prices.json."""
    prices = json.loads((pipeline.root / "deploy" / "prices.json").read_text())
    return Estimate(prices["region"], prices["as_of"], monthly_cost(pipeline, prices, traffic))


def monthly_cost(pipeline: Pipeline, prices: dict[str, Any], traffic: Traffic) -> list[tuple[str, str, float]]:
    """(item, how it was computed, USD per month) for each billed part, from the dated price file."""
    hours = prices["hours_per_month"]
    minutes = hours * 60
    records = (traffic.posts_per_minute + traffic.candles_per_minute) * minutes
    rows_bytes = records * traffic.record_bytes
    out: list[tuple[str, str, float]] = []
    out.append(
        (
            "Kinesis shards",
            f"{pipeline.shards} shards x {hours} h",
            pipeline.shards * hours * prices["kinesis_shard_hour"],
        )
    )
    units = records * math.ceil(traffic.record_bytes / prices["kinesis_put_payload_unit_bytes"])
    out.append(
        (
            "Kinesis PUT payload units",
            f"{units / 1e6:.2f} M units (25 KB each)",
            units / 1e6 * prices["kinesis_put_payload_units_per_million"],
        )
    )
    increment = prices["firehose_billing_increment_bytes"]
    firehose_records = math.ceil(rows_bytes / 5000)  # the consumer packs rows up to just under 5 KB
    billed_gb = firehose_records * increment / 1024**3
    out.append(
        (
            "Firehose ingestion",
            f"{billed_gb:.2f} GB billed in 5 KB units",
            billed_gb * prices["firehose_per_gb_ingested"],
        )
    )
    stored_gb = rows_bytes / 1024**3
    out.append(("S3 storage (one month of rows)", f"{stored_gb:.2f} GB", stored_gb * prices["s3_standard_gb_month"]))
    objects = len(pipeline.delivery_files) * minutes  # one object per buffer interval (60 s) and stream
    out.append(("S3 PUT requests", f"{objects:,.0f} objects", objects / 1000 * prices["s3_put_per_1000"]))
    renewals = pipeline.shards * 2 * hours * 3600 / 3.3  # two apps, a lease renewal every ~3.3 s
    live_writes = traffic.posts_per_minute * 2 * minutes + traffic.candles_per_minute * minutes
    writes = renewals + live_writes + records / 100  # checkpoints: about one per 100-record batch
    out.append(
        (
            "DynamoDB on demand",
            f"{writes / 1e6:.1f} M writes (leases, checkpoints, live figures)",
            writes / 1e6 * prices["dynamodb_write_request_units_per_million"],
        )
    )
    node_hour = prices["redshift_node_hour"].get(traffic.redshift_node_type)
    if node_hour is None:
        raise FatalError(f"no price for Redshift node type {traffic.redshift_node_type} in deploy/prices.json")
    out.append(
        (
            "Redshift",
            f"{traffic.redshift_nodes} x {traffic.redshift_node_type} x {hours} h",
            traffic.redshift_nodes * node_hour * hours,
        )
    )
    out.append(("Secrets Manager", "1 secret", prices["secrets_manager_secret_month"]))
    alarms = 1 + len(pipeline.delivery_files)
    out.append(("CloudWatch alarms", f"{alarms} alarms", alarms * prices["cloudwatch_alarm_month"]))
    return out
