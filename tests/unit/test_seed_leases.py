"""A new application's leases, made before KCL starts on the local stack (moto's Kinesis and DynamoDB): exactly
what KCL's first shard sync would write, or nothing where KCL must decide."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream.config import Settings
from coinstream.errors import FatalError
from consumer.checkpoints import leases, list_shards, seed_leases
from consumer.runner import Identity, name_worker

STREAM = "coinstream-raw"
TABLE = "coinstream-warehouse"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName=STREAM, ShardCount=2)
        yield kinesis, boto3.client("dynamodb", region_name="us-east-1")


def test_a_new_application_gets_one_unowned_lease_per_shard_at_trim_horizon(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    assert seed_leases(kinesis, dynamodb, STREAM, TABLE) == 2
    found = leases(dynamodb, TABLE)
    assert [(x.shard_id, x.checkpoint, x.owner, x.counter) for x in found] == [
        ("shardId-000000000000", "TRIM_HORIZON", None, 0),
        ("shardId-000000000001", "TRIM_HORIZON", None, 0),
    ]
    items = {i["leaseKey"]["S"]: i for i in dynamodb.scan(TableName=TABLE)["Items"]}
    for shard in list_shards(kinesis, STREAM):  # the hash ranges cover the stream: KCL's auditor sees no hole
        assert (items[shard.shard_id]["startingHashKey"]["S"], items[shard.shard_id]["endingHashKey"]["S"]) == (
            shard.hash_range
        )
    assert seed_leases(kinesis, dynamodb, STREAM, TABLE) == 0  # a second worker of the app: nothing twice


def test_the_only_worker_of_a_new_application_gets_its_leases_as_its_own(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    assert seed_leases(kinesis, dynamodb, STREAM, TABLE, owner="host-1a2b") == 2
    assert [(x.shard_id, x.checkpoint, x.owner, x.counter) for x in leases(dynamodb, TABLE)] == [
        ("shardId-000000000000", "TRIM_HORIZON", "host-1a2b", 0),
        ("shardId-000000000001", "TRIM_HORIZON", "host-1a2b", 0),
    ]


def test_a_worker_started_without_a_name_has_one_name_per_application_and_one_life_at_a_time(tmp_path: Path) -> None:
    local = Settings(state_dir=tmp_path)
    first = name_worker(local, "warehouse", None)
    assert first.worker_id and first.owner == first.worker_id and first.worker_id.endswith("-warehouse")
    with pytest.raises(FatalError, match="without --worker-id is running on this stack"):
        name_worker(local, "warehouse", None)  # while the first lives
    other = name_worker(local, "live", None)  # another application: its own name and lock
    assert other.worker_id != first.worker_id
    for held in (first, other):
        os.close(held.lock)  # type: ignore[arg-type]  # the worker is gone
    again = name_worker(local, "warehouse", None)
    assert again.worker_id == first.worker_id  # the next run finds the last run's leases as its own
    os.close(again.lock)  # type: ignore[arg-type]
    assert name_worker(local, "warehouse", "w1") == Identity("w1")  # one of several: KCL's leader spreads leases
    assert name_worker(local.model_copy(update={"kcl_fast_start": False}), "warehouse", None) == Identity(None)
    assert name_worker(local.model_copy(update={"target": "aws"}), "warehouse", None) == Identity(None)  # AWS: KCL's


def test_an_application_that_has_run_is_left_alone(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert seed_leases(kinesis, dynamodb, STREAM, TABLE) == 0
    assert leases(dynamodb, TABLE) == []


def test_a_resharded_stream_is_left_to_kcls_own_shard_sync(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    kinesis.split_shard(
        StreamName=STREAM, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126)
    )  # a closed parent and two children: only KCL writes their lineage
    assert seed_leases(kinesis, dynamodb, STREAM, TABLE) == 0
    assert TABLE not in dynamodb.list_tables()["TableNames"]
