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


def _lease(dynamodb: Any, owner: str) -> None:
    dynamodb.put_item(
        TableName="coinstream-warehouse",
        Item={
            "leaseKey": {"S": "shardId-000000000000"},
            "leaseOwner": {"S": owner},
            "leaseCounter": {"N": "7"},
            "checkpoint": {"S": "49000000000000000000000000000000000000000000000000000002"},
            "pendingCheckpoint": {"S": "49000000000000000000000000000000000000000000000000000003"},
        },
    )


def test_a_reset_keeps_a_gone_workers_name_so_the_only_worker_finds_its_leases_as_its_own(dynamodb: Any) -> None:
    _lease(dynamodb, "host-warehouse")
    reset = replay.Reset(
        "shardId-000000000000", "49000000000000000000000000000000000000000000000000000002", "TRIM_HORIZON", 2
    )
    assert replay.execute(dynamodb, "coinstream-warehouse", [reset], force=False, watch_seconds=0) == 1
    item = dynamodb.get_item(TableName="coinstream-warehouse", Key={"leaseKey": {"S": "shardId-000000000000"}})["Item"]
    assert item["checkpoint"]["S"] == "TRIM_HORIZON" and "pendingCheckpoint" not in item
    assert item["leaseOwner"]["S"] == "host-warehouse" and item["leaseCounter"]["N"] == "8"


def test_a_forced_reset_takes_the_lease_from_a_live_worker(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _lease(dynamodb, "w1")
    monkeypatch.setattr(replay, "live_owners", lambda *a, **k: {"w1"})
    reset = replay.Reset("shardId-000000000000", None, "TRIM_HORIZON", 2)
    with pytest.raises(FatalError, match="w1 hold live leases"):
        replay.execute(dynamodb, "coinstream-warehouse", [reset], force=False, watch_seconds=0)
    assert replay.execute(dynamodb, "coinstream-warehouse", [reset], force=True, watch_seconds=0) == 1
    item = dynamodb.get_item(TableName="coinstream-warehouse", Key={"leaseKey": {"S": "shardId-000000000000"}})["Item"]
    assert "leaseOwner" not in item and item["leaseCounter"]["N"] == "8"  # the holder's next renewal fails
