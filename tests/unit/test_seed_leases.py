"""A new application's leases, made before KCL starts on the local stack (moto's Kinesis and DynamoDB): exactly
what KCL's first shard sync would write, or nothing where KCL must decide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream.config import Settings
from consumer.checkpoints import leases, list_shards, seed_leases
from consumer.runner import name_worker

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


def test_a_worker_started_without_a_name_is_named_and_owns_a_new_applications_leases(tmp_path: Path) -> None:
    local = Settings(state_dir=tmp_path)
    worker, owner = name_worker(local, None)
    assert worker and owner == worker and name_worker(local, None)[0] != worker  # a new name per run
    assert name_worker(local, "w1") == ("w1", None)  # one of several: KCL's leader spreads the leases
    assert name_worker(local.model_copy(update={"kcl_fast_start": False}), None) == (None, None)
    assert name_worker(local.model_copy(update={"target": "aws"}), None) == (None, None)  # AWS: KCL's own start


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
