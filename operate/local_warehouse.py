"""Locally, what Firehose's COPY step (or its Iceberg destination) does on AWS: delivered S3 objects into the
DuckDB warehouse file (or the lake's tables)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from warehouse.loader import LoadReport, Warehouse, open_warehouse


def warehouse(settings: Settings, pipeline: Pipeline) -> AbstractContextManager[Warehouse]:
    """The local warehouse file with the tables and views of the pipeline's redshift/ folder."""
    return open_warehouse(settings.warehouse_path, pipeline.root / "redshift")


def copy_delivered(settings: Settings, pipeline: Pipeline) -> tuple[LoadReport, dict[str, int]]:
    """What Firehose's COPY step does on AWS: load every delivered S3 object not loaded yet; (report, row counts).
    With COINSTREAM_WAREHOUSE=iceberg, what its Iceberg destination does: append them to the lake's tables."""
    if settings.warehouse == "iceberg":
        from warehouse import lake

        the_lake = lake.Lake(lake.config_of(settings, pipeline.bucket))
        streams = load_delivery_streams(pipeline).values()
        report = lake.load(
            the_lake, client("s3", settings), pipeline.bucket, streams, pipeline.root / "s3", pipeline.root / "redshift"
        )
        return report, lake.row_counts(the_lake, pipeline.root / "redshift")
    with warehouse(settings, pipeline) as wh:
        report = wh.load(
            client("s3", settings), pipeline.bucket, load_delivery_streams(pipeline).values(), pipeline.root / "s3"
        )
        return report, wh.row_counts()


def warehouse_rows(settings: Settings, pipeline: Pipeline) -> dict[str, int]:
    """Rows per warehouse table ({} before the first load)."""
    if settings.warehouse == "iceberg":
        from warehouse import lake

        return lake.row_counts(lake.Lake(lake.config_of(settings, pipeline.bucket)), pipeline.root / "redshift")
    if not settings.warehouse_path.exists():
        return {}
    with warehouse(settings, pipeline) as wh:
        return wh.row_counts()
