"""The AWS side as one CloudFormation template, rendered from the files the local stack reads.

The template is rendered from deploy/base.json (what every warehouse shares), deploy/<warehouse>.json (Redshift,
or Iceberg tables with Athena), the names and sizes in pipeline.toml, and the delivery stream definitions in
firehose_config/ — the same files the local stack reads — so the two sides cannot drift apart. For the Iceberg
warehouse the Glue tables' columns come from redshift/001_raw_tables.sql and each delivery stream's Iceberg
destination from its Redshift definition (table, S3 backup and error prefixes, buffering, retries, logs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from coinstream.config import Pipeline
from coinstream.delivery import LAKE_DATABASE as NAMESPACE
from coinstream.delivery import backup_configuration, load_delivery_streams
from coinstream.errors import FatalError

#: The warehouses a stack can have: deploy/<name>.json holds what each adds to deploy/base.json.
WAREHOUSES = ("redshift", "iceberg")
#: Firehose's Iceberg destination commits at most every 900 s and buffers up to 128 MB.
_ICEBERG_BUFFER_MB = 128

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
    #: aws, aws-cn or aws-us-gov: an ARN written with `arn:aws:` is invalid in China and GovCloud
    "Partition": {"Ref": "AWS::Partition"},
    "GlueCatalogArn": {"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"},
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


def render(pipeline: Pipeline, base: Path, warehouse: str = "redshift") -> dict[str, Any]:
    """The full template: shared resources, the warehouse's, names from pipeline.toml, one delivery stream per kind."""
    if warehouse not in WAREHOUSES:
        raise FatalError(f"warehouse {warehouse!r}: choose {' or '.join(WAREHOUSES)} (COINSTREAM_WAREHOUSE)")
    streams = load_delivery_streams(pipeline, values={})
    tokens: dict[str, Any] = {
        "Stream": pipeline.stream_name,
        "Shards": pipeline.shards,
        "RetentionHours": pipeline.retention_hours,
        "Bucket": pipeline.bucket,
        "LiveTable": pipeline.live_table,
        "DeadLetterPrefix": pipeline.dead_letter_prefix,
        "LakeDatabase": NAMESPACE,
        "DeliveryStreamArns": [{"Fn::GetAtt": [_logical_id(s.name), "Arn"]} for s in streams.values()],
        # where Firehose connects to Redshift from, per Region (dated, with its source: deploy/firehose_cidr.json)
        "FirehoseCidr": {region: {"Cidr": cidr} for region, cidr in firehose_cidrs(base.parent)[1].items()},
        # what every host runs at boot, after the variables its launch template sets (deploy/bootstrap.sh)
        "BootstrapScript": bootstrap_body(base.parent / "bootstrap.sh"),
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

    template: dict[str, Any] = fill(_merged(base, base.parent / "hosts.json", base.parent / f"{warehouse}.json"))
    # the launch templates find the bootstrap script here: once in the template, not once per host role
    template.setdefault("Mappings", {})["Bootstrap"] = {"Script": {"Body": tokens["BootstrapScript"]}}
    resources = template["Resources"]
    # the delivery streams start once the role may do what they do (policies added by the warehouse's file)
    policies = [
        k
        for k, v in resources.items()
        if v["Type"] == "AWS::IAM::Policy" and {"Ref": "FirehoseRole"} in v["Properties"].get("Roles", [])
    ]
    tables = _lake_tables(pipeline, resources) if warehouse == "iceberg" else {}
    for stream in streams.values():
        # The file's ${Bucket} was kept (values={}), so it becomes a reference to the bucket resource.
        definition = json.loads((pipeline.delivery_files[stream.kind]).read_text())
        if warehouse == "iceberg":
            definition = iceberg_definition(definition)
        logical = _logical_id(stream.name)
        resources[logical] = {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            # Firehose reads the Glue table when the stream is created: the table comes first
            "DependsOn": sorted({*_log_streams(definition, resources), *policies, *tables.get(stream.table, [])}),
            "Properties": _to_cfn(definition),
        }
        resources[f"{logical}FailureAlarm"] = _failure_alarm(logical, stream, warehouse)
    return template


def _merged(base: Path, *additions: Path) -> dict[str, Any]:
    """deploy/base.json with the hosts' and a warehouse's files added section by section (a Description replaces
    the base's)."""
    template: dict[str, Any] = json.loads(base.read_text())
    for addition in additions:
        more: dict[str, Any] = json.loads(addition.read_text())
        for section, entries in more.items():
            if not isinstance(entries, dict):
                template[section] = entries
                continue
            twice = set(template.get(section, {})) & set(entries)
            if twice:
                raise FatalError(f"{addition}: {section} {sorted(twice)} are in another file already; name them once")
            template.setdefault(section, {}).update(entries)
    return template


def firehose_cidrs(deploy_dir: Path) -> tuple[str, dict[str, str]]:
    """(as of, {region: CIDR}) of Firehose's published Redshift CIDR blocks (deploy/firehose_cidr.json)."""
    data = json.loads((deploy_dir / "firehose_cidr.json").read_text())
    return str(data["as_of"]), {str(k): str(v) for k, v in data["regions"].items()}


def check_redshift_region(deploy_dir: Path, region: str) -> None:
    """FatalError (one line) where Firehose publishes no CIDR for `region`: its COPY could not reach Redshift."""
    as_of, cidrs = firehose_cidrs(deploy_dir)
    if region not in cidrs:
        raise FatalError(
            f"Firehose publishes no Redshift CIDR for {region} (deploy/firehose_cidr.json, as of {as_of}: "
            f"{len(cidrs)} regions), so it could not reach a Redshift warehouse there: deploy in a listed region, "
            "or set COINSTREAM_WAREHOUSE=iceberg (no cluster to reach)"
        )


#: EC2 takes at most 16 KB of user data, before base64; the launch template's variables take a few hundred bytes.
USER_DATA_LIMIT = 16 * 1024 - 1024


def bootstrap_body(script: Path) -> str:
    """deploy/bootstrap.sh without its shebang and comment lines (the launch template puts its own first line and
    variables before it), within what EC2 takes as user data."""
    lines = script.read_text().splitlines()
    body = "\n".join(line for line in lines if not line.lstrip().startswith("#") or line.startswith("#!")) + "\n"
    body = body.removeprefix(lines[0] + "\n") if lines and lines[0].startswith("#!") else body
    if len(body.encode()) > USER_DATA_LIMIT:
        raise FatalError(
            f"{script}: {len(body.encode())} bytes without comments; EC2 user data takes {USER_DATA_LIMIT}"
        )
    return body


def _lake_tables(pipeline: Pipeline, resources: dict[str, Any]) -> dict[str, list[str]]:
    """A Glue Iceberg table per raw table (columns from redshift/001_raw_tables.sql) with its optimizers:
    compaction of Firehose's small files, snapshot retention, orphan-file deletion. {table: [logical ids]}."""
    try:
        from warehouse.athena import glue_columns
    except ImportError:
        raise FatalError(
            "rendering the Iceberg stack reads redshift/*.sql with sqlglot: pip install 'coinstream[warehouse]'"
        ) from None
    out: dict[str, list[str]] = {}
    for table, columns in glue_columns(pipeline.root / "redshift").items():
        logical = "Lake" + "".join(p.capitalize() for p in table.split("_")) + "Table"
        resources[logical] = {
            "Type": "AWS::Glue::Table",
            "DependsOn": ["LakeDatabase"],
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseName": NAMESPACE,
                "OpenTableFormatInput": {"IcebergInput": {"MetadataOperation": "CREATE", "Version": "2"}},
                "TableInput": {
                    "Name": table,
                    "TableType": "EXTERNAL_TABLE",
                    "StorageDescriptor": {
                        "Location": {"Fn::Sub": f"s3://${{LandingBucket}}/iceberg/{table}"},
                        "Columns": [{"Name": name, "Type": kind} for name, kind in columns],
                    },
                },
            },
        }
        optimizers: dict[str, dict[str, Any]] = {
            "compaction": {"CompactionConfiguration": {"IcebergConfiguration": {"Strategy": "binpack"}}},
            "retention": {
                "RetentionConfiguration": {
                    "IcebergConfiguration": {
                        "SnapshotRetentionPeriodInDays": {"Ref": "SnapshotRetentionDays"},
                        "NumberOfSnapshotsToRetain": 1,
                        "CleanExpiredFiles": True,
                    }
                }
            },
            "orphan_file_deletion": {
                "OrphanFileDeletionConfiguration": {"IcebergConfiguration": {"OrphanFileRetentionPeriodInDays": 3}}
            },
        }
        for kind, configuration in optimizers.items():
            resources[logical + "".join(p.capitalize() for p in kind.split("_"))] = {
                "Type": "AWS::Glue::TableOptimizer",
                "DependsOn": [logical],
                "Properties": {
                    "CatalogId": {"Ref": "AWS::AccountId"},
                    "DatabaseName": NAMESPACE,
                    "TableName": table,
                    "Type": kind,
                    "TableOptimizerConfiguration": {
                        "Enabled": True,
                        "RoleArn": {"Fn::GetAtt": ["LakeOptimizerRole", "Arn"]},
                        **configuration,
                    },
                },
            }
        out[table] = [logical]
    return out


def iceberg_definition(redshift: dict[str, Any]) -> dict[str, Any]:
    """The Iceberg form of a firehose_config Redshift definition: the same stream name, table, backup of every
    record, error prefix, retries and logging; rows appended (AppendOnly: the views keep one copy per key, as on
    Redshift). Firehose takes one JSON object per record whose keys are the table's columns
    (consumer/lake_rows.py shapes them)."""
    destination = redshift["RedshiftDestinationConfiguration"]
    landing = destination["S3Configuration"]
    logging = dict(destination["CloudWatchLoggingOptions"])
    logging["LogStreamName"] = logging["LogStreamName"].removesuffix("-redshift") + "-iceberg"
    return {
        "DeliveryStreamName": redshift["DeliveryStreamName"],
        "DeliveryStreamType": redshift.get("DeliveryStreamType", "DirectPut"),
        "IcebergDestinationConfiguration": {
            "RoleARN": destination["RoleARN"],
            "CatalogConfiguration": {"CatalogArn": "${GlueCatalogArn}"},
            "DestinationTableConfigurationList": [
                {
                    "DestinationDatabaseName": NAMESPACE,
                    "DestinationTableName": destination["CopyCommand"]["DataTableName"],
                    "S3ErrorOutputPrefix": landing["ErrorOutputPrefix"],
                }
            ],
            "AppendOnly": True,
            "BufferingHints": {
                "IntervalInSeconds": landing["BufferingHints"]["IntervalInSeconds"],
                "SizeInMBs": _ICEBERG_BUFFER_MB,
            },
            "RetryOptions": destination.get("RetryOptions", {"DurationInSeconds": 3600}),
            # Firehose's API reference: the Iceberg destination supports only FailedDataOnly. Every record stays
            # readable all the same: on the stream for its retention (`coinstream replay`), and in the tables
            "s3BackupMode": "FailedDataOnly",
            "S3Configuration": backup_configuration(redshift),
            "CloudWatchLoggingOptions": logging,
        },
    }


def _described(name: str, what: Any) -> Any:
    """An alarm's description: `what` may be a condition's choice of two texts (Fn::If)."""
    tail = "; see `coinstream doctor` and the delivery log group"
    if isinstance(what, dict):
        condition, yes, no = what["Fn::If"]
        return {"Fn::If": [condition, f"{name}: {yes}{tail}", f"{name}: {no}{tail}"]}
    return f"{name}: {what}{tail}"


def load_errors_table(warehouse: str | None) -> str:
    """Where Redshift keeps the rows a COPY rejected: SYS_LOAD_ERROR_DETAIL on Serverless, STL_LOAD_ERRORS on a
    provisioned (RA3) cluster."""
    return "SYS_LOAD_ERROR_DETAIL" if warehouse == "serverless" else "STL_LOAD_ERRORS"


def _failure_alarm(logical: str, stream: Any, warehouse: str) -> dict[str, Any]:
    what: Any
    if warehouse == "iceberg":
        what = f"rows for {stream.table} are failing to reach the Iceberg table (the bucket's {stream.error_prefix})"
        metric, statistic, threshold, comparison = "DeliveryToIceberg.FailedRowCount", "Sum", 0, "GreaterThanThreshold"
    else:
        # the rows COPY rejected are in SYS_LOAD_ERROR_DETAIL on Serverless (STL_LOAD_ERRORS holds nothing there)
        what = {
            "Fn::If": [
                "Serverless",
                f"COPY into {stream.table} is failing (SYS_LOAD_ERROR_DETAIL, the bucket's {stream.error_prefix})",
                f"COPY into {stream.table} is failing (STL_LOAD_ERRORS, the bucket's {stream.error_prefix})",
            ]
        }
        metric, statistic, threshold, comparison = "DeliveryToRedshift.Success", "Minimum", 1, "LessThanThreshold"
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": _described(stream.name, what),
            "Namespace": "AWS/Firehose",
            "MetricName": metric,
            "Dimensions": [{"Name": "DeliveryStreamName", "Value": {"Ref": logical}}],
            "Statistic": statistic,
            "Period": 300,
            "EvaluationPeriods": 3 if warehouse == "redshift" else 1,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
        },
    }


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


def render_text(pipeline: Pipeline, base: Path, warehouse: str = "redshift") -> str:
    """The template as committed in deploy/cloudformation.json (or cloudformation-iceberg.json): stable formatting."""
    return json.dumps(render(pipeline, base, warehouse), indent=2, sort_keys=False) + "\n"


def committed_path(pipeline: Pipeline, warehouse: str) -> Path:
    """Where the rendered template of a warehouse is committed (for review and for `--apply --template`)."""
    return (
        pipeline.root
        / "deploy"
        / ("cloudformation.json" if warehouse == "redshift" else f"cloudformation-{warehouse}.json")
    )


def template_path(pipeline: Pipeline) -> Path:
    """The base template the deployment is rendered from."""
    return pipeline.root / "deploy" / "base.json"
