"""A warehouse filled with simulated data, loaded exactly as the pipeline loads it (for analysis and dashboard tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.records import Envelope
from coinstream.timeutil import epoch_minute
from consumer.enrich import enrich
from producer.sources import simulated
from warehouse.analysis import analyze
from warehouse.loader import Warehouse
from warehouse.series import all_series, series

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def warehouse_of(path: Path, envelopes: Iterable[Envelope], now: datetime = NOW) -> None:
    """A warehouse holding `envelopes`, enriched, delivered to S3 and loaded exactly as the pipeline does."""
    pipeline = Pipeline.load(REPO_ROOT / "pipeline.toml")
    streams = load_delivery_streams(pipeline)
    rows: dict[str, list[str]] = {}
    for e in envelopes:
        rows.setdefault(e.kind.value, []).append(json.dumps(enrich(e, now)))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=pipeline.bucket)
        for kind, lines in rows.items():
            s3.put_object(Bucket=pipeline.bucket, Key=f"{streams[kind].prefix}rows", Body="\n".join(lines).encode())
        wh = Warehouse(path, REPO_ROOT / "redshift")
        wh.apply_ddl()
        wh.load(s3, pipeline.bucket, streams.values(), REPO_ROOT / "s3")
        wh.close()


def simulated_warehouse(path: Path, sim: simulated.Simulation, minutes: int) -> None:
    """Simulated candles and posts for the `minutes` minutes before NOW."""
    last = epoch_minute(NOW) - 1
    first = last - minutes + 1
    warehouse_of(path, [*simulated.candles(sim, first, last, NOW), *simulated.posts(sim, first, last, NOW)])


def figures(db: Any) -> list[tuple[str, Any]]:
    """The analysis of every series a warehouse connection holds, as `coinstream analyze` computes it."""
    out = []
    for one in all_series(db):
        minutes, counts, volume = series(db, one, None, None, "auto")
        out.append((one.name, analyze(minutes, counts, volume, window=60)))
    return out
