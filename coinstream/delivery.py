"""Firehose delivery stream definitions (firehose_config/*.json), read the same way everywhere.

Each file is the CreateDeliveryStream request that AWS gets, with ${...} placeholders. From it
the consumer learns which delivery stream takes which record kind, and the local loader learns
what Firehose's COPY step would do: which table, which jsonpaths file, which S3 prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinstream.config import Pipeline
from coinstream.errors import FatalError

#: The Glue database (and, locally, the pyiceberg namespace) of the Iceberg tables the streams deliver into.
LAKE_DATABASE = "coinstream"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_JSONPATHS = re.compile(r"FORMAT\s+AS\s+JSON\s+'s3://[^/']+/([^']+)'", re.IGNORECASE)
_MAXERROR = re.compile(r"\bMAXERROR\s+(?:AS\s+)?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class DeliveryStream:
    """What one delivery stream does: take one record kind, land it in S3, COPY it into a table."""

    kind: str
    name: str
    table: str
    prefix: str
    error_prefix: str
    jsonpaths_key: str
    definition: dict[str, Any]
    #: COPY's MAXERROR: rows one COPY may reject before the whole COPY fails (Redshift's default is 0)
    max_errors: int = 0

    @property
    def jsonpaths_file(self) -> str:
        """File name under s3/ of this stream's jsonpaths (the object's name in the bucket)."""
        return self.jsonpaths_key.rsplit("/", 1)[-1]


def backup_configuration(definition: dict[str, Any]) -> dict[str, Any]:
    """Where Firehose backs up every record of a stream defined for Redshift, as an Iceberg stack keeps it (the
    `AllData` backup): its S3 backup configuration, or its landing S3 configuration when it names none."""
    destination = definition["RedshiftDestinationConfiguration"]
    backup: dict[str, Any] = destination.get("S3BackupConfiguration", destination["S3Configuration"])
    return backup


def render(text: str, values: dict[str, str]) -> str:
    """Fill ${Name} placeholders; a name without a value stays as it is (AWS-only fields)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def load_delivery_streams(pipeline: Pipeline, values: dict[str, str] | None = None) -> dict[str, DeliveryStream]:
    """Delivery streams by record kind, from the files pipeline.toml names."""
    out = {}
    for kind, path in pipeline.delivery_files.items():
        # the local stack (moto) is the `aws` partition; on AWS the stack's own partition replaces it
        out[kind] = _load(kind, path, {"Bucket": pipeline.bucket, "Partition": "aws", **(values or {})})
    return out


def _load(kind: str, path: Path, values: dict[str, str]) -> DeliveryStream:
    try:
        definition = json.loads(render(path.read_text(), values))
        redshift = definition["RedshiftDestinationConfiguration"]
        s3 = redshift["S3Configuration"]
        copy = redshift["CopyCommand"]
        match = _JSONPATHS.search(copy.get("CopyOptions", ""))
        if not match:
            raise ValueError("CopyCommand.CopyOptions must name a jsonpaths file: FORMAT AS JSON 's3://<bucket>/<key>'")
        return DeliveryStream(
            kind=kind,
            name=definition["DeliveryStreamName"],
            table=copy["DataTableName"],
            prefix=s3.get("Prefix", ""),
            error_prefix=s3.get("ErrorOutputPrefix", ""),
            jsonpaths_key=match.group(1),
            definition=definition,
            max_errors=int(m.group(1)) if (m := _MAXERROR.search(copy.get("CopyOptions", ""))) else 0,
        )
    except json.JSONDecodeError as exc:
        raise FatalError(f"{path}: not valid JSON ({exc})") from None
    except KeyError as exc:
        raise FatalError(f"{path}: missing {exc.args[0]!r} (a Redshift destination definition is expected)") from None
    except ValueError as exc:
        raise FatalError(f"{path}: {exc}") from None


def local_definition(stream: DeliveryStream) -> dict[str, Any]:
    """The CreateDeliveryStream request for moto: the same S3 landing, no Redshift step.

    moto accepts a Redshift destination but discards the records put to it, so locally the
    delivery stream writes to the S3 location Firehose would stage them in, and `coinstream load`
    runs the COPY step against the local warehouse.
    """
    s3 = dict(stream.definition["RedshiftDestinationConfiguration"]["S3Configuration"])
    s3.pop("CloudWatchLoggingOptions", None)  # AWS's log group; locally the stack's log folder serves
    s3.setdefault("RoleARN", "arn:aws:iam::000000000000:role/coinstream-firehose")
    if "${" in s3["RoleARN"]:
        s3["RoleARN"] = "arn:aws:iam::000000000000:role/coinstream-firehose"
    return {
        "DeliveryStreamName": stream.name,
        "DeliveryStreamType": "DirectPut",
        "ExtendedS3DestinationConfiguration": s3,
    }


def delivered_rows(s3: Any, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, rows) that a delivery stream has landed under `prefix`."""
    objects = rows = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            objects += 1
            rows += sum(1 for line in body.splitlines() if line.strip())
    return objects, rows
