"""Replay's table work against moto's in-process DynamoDB: a fresh start deletes exactly the app's KCL tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream.errors import FatalError
from consumer import replay


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name in ("coinstream-warehouse", "coinstream-warehouse-CoordinatorState", "coinstream-live"):
            key = "leaseKey" if "Coordinator" not in name else "key"
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield client


def test_a_fresh_start_deletes_the_apps_kcl_tables_only(dynamodb: Any) -> None:
    deleted = replay.start_over(dynamodb, "coinstream-warehouse", watch_seconds=0)
    assert deleted == ["coinstream-warehouse", "coinstream-warehouse-CoordinatorState"]  # no WorkerMetricStats yet
    assert dynamodb.list_tables()["TableNames"] == ["coinstream-live"]


def test_a_fresh_start_is_refused_while_a_worker_renews_its_lease(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "live_owners", lambda *a, **k: {"worker-1"})
    with pytest.raises(FatalError, match="worker-1 hold live leases in coinstream-warehouse; stop them before --fresh"):
        replay.start_over(dynamodb, "coinstream-warehouse", watch_seconds=0)
    assert "coinstream-warehouse" in dynamodb.list_tables()["TableNames"]
