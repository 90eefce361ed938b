from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream.config import Pipeline, Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/unit/" in str(item.fspath):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def moto_kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Pipeline, Any]]:
    """moto's in-process Kinesis with the pipeline's stream (1 shard); producer runs put to it."""
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        pipeline = Pipeline.load(Settings().pipeline_file)
        kinesis.create_stream(StreamName=pipeline.stream_name, ShardCount=1)
        monkeypatch.setattr("producer.run.client", lambda service, settings: kinesis)
        yield pipeline, kinesis


#: The landing bucket and the delivery streams of the processor tests (moto in-process).
BUCKET = "landing"
STREAMS = {"candle": "fh-candles", "post": "fh-posts"}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        firehose = boto3.client("firehose", region_name="us-east-1")
        for kind, name in STREAMS.items():
            firehose.create_delivery_stream(
                DeliveryStreamName=name,
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::000000000000:role/x",
                    "BucketARN": f"arn:aws:s3:::{BUCKET}",
                    "Prefix": f"firehose/{kind}/",
                },
            )
        yield {"s3": s3, "firehose": firehose}
