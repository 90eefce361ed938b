"""The AWS side as one CloudFormation template, rendered from the files the local stack reads.

The template is rendered from deploy/base.json (everything but the delivery streams), the
names and sizes in pipeline.toml, and the delivery stream definitions in firehose_config/ —
the same files the local stack reads — so the two sides cannot drift apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError

_RENDER_TOKEN = re.compile(r"@(\w+)@")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
#: What each ${...} placeholder of a firehose_config file is on AWS.
PLACEHOLDERS: dict[str, Any] = {
    "FirehoseRoleArn": {"Fn::GetAtt": ["FirehoseRole", "Arn"]},
    "RedshiftJdbcUrl": {
        "Fn::If": [
            "Serverless",
            {"Fn::Sub": "jdbc:redshift://${RedshiftWorkgroup.Workgroup.Endpoint.Address}:5439/coinstream"},
            {
                "Fn::Sub": "jdbc:redshift://${RedshiftCluster.Endpoint.Address}:${RedshiftCluster.Endpoint.Port}/coinstream"
            },
        ]
    },
    #: Firehose reads the COPY user's name and password from this secret at each COPY (rotation needs no update).
    "CopySecretArn": {"Ref": "CopySecret"},
    "DeliveryLogGroup": {"Ref": "DeliveryLogGroup"},
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
        resources[logical] = {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "DependsOn": sorted(_log_streams(definition, resources)),
            "Properties": _to_cfn(definition),
        }
        resources[f"{logical}FailureAlarm"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"{stream.name}: COPY into {stream.table} is failing (see `coinstream doctor`, "
                f"STL_LOAD_ERRORS, the delivery log group and the bucket's {stream.error_prefix})",
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


def _log_streams(definition: Any, resources: dict[str, Any]) -> set[str]:
    """Add a log stream resource for every CloudWatchLoggingOptions of a delivery definition (Firehose
    writes into the stream it is given but does not create it); returns their logical ids."""
    found: set[str] = set()
    if isinstance(definition, dict):
        options = definition.get("CloudWatchLoggingOptions")
        if isinstance(options, dict) and options.get("Enabled"):
            name = options["LogStreamName"]
            logical = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]", name) if p) + "LogStream"
            resources[logical] = {
                "Type": "AWS::Logs::LogStream",
                "Properties": {"LogGroupName": {"Ref": "DeliveryLogGroup"}, "LogStreamName": name},
            }
            found.add(logical)
        for value in definition.values():
            found |= _log_streams(value, resources)
    elif isinstance(definition, list):
        for value in definition:
            found |= _log_streams(value, resources)
    return found


def render_text(pipeline: Pipeline, base: Path) -> str:
    """The template as committed in deploy/cloudformation.json (stable formatting)."""
    return json.dumps(render(pipeline, base), indent=2, sort_keys=False) + "\n"


def template_path(pipeline: Pipeline) -> Path:
    """The base template the deployment is rendered from."""
    return pipeline.root / "deploy" / "base.json"
