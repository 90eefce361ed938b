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
