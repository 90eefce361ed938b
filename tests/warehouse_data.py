"""A warehouse filled with simulated data, loaded exactly as the pipeline loads it (for analysis and dashboard tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
from moto import mock_aws

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.timeutil import epoch_minute
from consumer.enrich import enrich
from producer.sources import simulated
from warehouse.loader import Warehouse

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def simulated_warehouse(path: Path, sim: simulated.Simulation, minutes: int) -> None:
    """Simulated candles and posts, enriched and loaded exactly as the pipeline loads them."""
    last = epoch_minute(NOW) - 1
    first = last - minutes + 1
    pipeline = Pipeline.load(REPO_ROOT / "pipeline.toml")
    streams = load_delivery_streams(pipeline)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=pipeline.bucket)
        for kind, make in (("candle", simulated.candles), ("post", simulated.posts)):
            rows = [json.dumps(enrich(e, NOW)) for e in make(sim, first, last, NOW)]
            s3.put_object(Bucket=pipeline.bucket, Key=f"{streams[kind].prefix}sim", Body="\n".join(rows).encode())
        wh = Warehouse(path, REPO_ROOT / "redshift")
        wh.apply_ddl()
        wh.load(s3, pipeline.bucket, streams.values(), REPO_ROOT / "s3")
        wh.close()
