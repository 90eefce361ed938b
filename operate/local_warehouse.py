"""Locally, what Firehose's COPY step (or its Iceberg destination) does on AWS: delivered S3 objects into the
DuckDB warehouse file (or the lake's tables)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from coinstream.aws import classify, client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from warehouse.loader import LoadReport, Warehouse, open_warehouse


def warehouse(settings: Settings, pipeline: Pipeline) -> AbstractContextManager[Warehouse]:
    """The local warehouse file with the tables and views of the pipeline's redshift/ folder."""
    return open_warehouse(settings.warehouse_path, pipeline.root / "redshift")


def copy_delivered(settings: Settings, pipeline: Pipeline, *, prune: bool = False) -> tuple[LoadReport, dict[str, int]]:
    """What Firehose's COPY step does on AWS: load every delivered S3 object not loaded yet; (report, row counts).
    With COINSTREAM_WAREHOUSE=iceberg, what its Iceberg destination does: append them to the lake's tables.

    `prune` (`coinstream run`, DuckDB warehouse): the local bucket is a way station, not a store — objects the
    warehouse has loaded are deleted, and dead letters and objects parked whole are moved to files under the
    state folder's dead-letters/ (moto keeps its bucket in memory, and forgets it when it stops)."""
    if settings.warehouse == "iceberg":
        from warehouse import lake

        the_lake = lake.Lake(lake.config_of(settings, pipeline.bucket))
        streams = load_delivery_streams(pipeline).values()
        report = lake.load(
            the_lake, client("s3", settings), pipeline.bucket, streams, pipeline.root / "s3", pipeline.root / "redshift"
        )
        return report, lake.row_counts(the_lake, pipeline.root / "redshift")
    with warehouse(settings, pipeline) as wh:
        s3 = client("s3", settings)
        streams = load_delivery_streams(pipeline).values()
        report = wh.load(s3, pipeline.bucket, streams, pipeline.root / "s3")
        if prune:
            loaded = wh.loaded_keys()
            for stream in streams:
                report.pruned += delete_keys(
                    s3, pipeline.bucket, [k for k in keys(s3, pipeline.bucket, stream.prefix) if k in loaded]
                )
            for prefix in [pipeline.dead_letter_prefix, *(s.error_prefix for s in streams)]:
                report.dead_letters += move_to_disk(s3, pipeline.bucket, prefix, dead_letter_dir(settings))
        return report, wh.row_counts()


def dead_letter_dir(settings: Settings) -> Path:
    """Where `coinstream run` keeps dead letters and objects a COPY refused whole, one file per S3 object."""
    return settings.state_dir / "dead-letters"


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every object key under a prefix."""
    try:
        return [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
    except Exception as exc:
        raise classify(exc, f"listing s3://{bucket}/{prefix}") from None


def delete_keys(s3: Any, bucket: str, found: list[str]) -> int:
    """Delete objects, 1,000 a call (S3's limit); how many went."""
    try:
        for at in range(0, len(found), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in found[at : at + 1000]]})
    except Exception as exc:
        raise classify(exc, f"deleting loaded objects from s3://{bucket}") from None
    return len(found)


def move_to_disk(s3: Any, bucket: str, prefix: str, folder: Path) -> int:
    """Each object under `prefix` written to `folder`/<key> (whole, then renamed) and only then deleted."""
    moved = keys(s3, bucket, prefix)
    for key in moved:
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise classify(exc, f"reading s3://{bucket}/{key}") from None
        part = path.with_name(path.name + ".part")
        part.write_bytes(body)
        os.replace(part, path)
    return delete_keys(s3, bucket, moved)


def warehouse_rows(settings: Settings, pipeline: Pipeline) -> dict[str, int]:
    """Rows per warehouse table ({} before the first load)."""
    if settings.warehouse == "iceberg":
        from warehouse import lake

        return lake.row_counts(lake.Lake(lake.config_of(settings, pipeline.bucket)), pipeline.root / "redshift")
    if not settings.warehouse_path.exists():
        return {}
    with warehouse(settings, pipeline) as wh:
        return wh.row_counts()
