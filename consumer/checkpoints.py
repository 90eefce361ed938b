"""Where each consumer application stands: its checkpoints, read from its KCL lease table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from coinstream.aws import classify

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient


@dataclass(frozen=True)
class ShardProgress:
    """One shard: how many records it holds and how many of them the app has checkpointed."""

    shard_id: str
    checkpoint: str | None
    owner: str | None
    records: int
    checkpointed: int

    @property
    def behind(self) -> int:
        return self.records - self.checkpointed


def lease_checkpoints(dynamodb: DynamoDBClient, table: str) -> dict[str, tuple[str | None, str | None]]:
    """shard id -> (checkpoint, lease owner) from an app's lease table; empty if it has none yet."""
    out: dict[str, tuple[str | None, str | None]] = {}
    try:
        pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        for page in pages:
            for item in page.get("Items", []):
                key = item["leaseKey"]["S"]
                checkpoint = item.get("checkpoint", {}).get("S")
                owner = item.get("leaseOwner", {}).get("S")
                out[key] = (checkpoint, owner)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return {}
        raise classify(exc, f"reading lease table {table}") from None
    return out


def shard_records(
    kinesis: KinesisClient, stream: str, shard_id: str, limit: int = 1_000_000
) -> list[tuple[int, bytes]]:
    """(sequence number, data) of every record in a shard, oldest first (local stack only: it reads the whole shard)."""
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    out: list[tuple[int, bytes]] = []
    while iterator and len(out) < limit:
        try:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ProvisionedThroughputExceededException":
                time.sleep(0.5)
                continue
            raise classify(exc, f"reading shard {shard_id}") from None
        out.extend((int(r["SequenceNumber"]), r["Data"]) for r in response["Records"])
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            break
        iterator = response.get("NextShardIterator")
    return out


def is_checkpointed(sequence_number: int, checkpoint: str | None) -> bool:
    """Whether a record at `sequence_number` lies at or before a lease's checkpoint."""
    if checkpoint == "SHARD_END":
        return True
    return bool(checkpoint and checkpoint.isdigit() and sequence_number <= int(checkpoint))


def list_shard_ids(kinesis: KinesisClient, stream: str) -> list[str]:
    """Ids of the stream's shards."""
    try:
        return [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    except Exception as exc:
        raise classify(exc, f"listing the shards of {stream}") from None


def progress(
    kinesis: KinesisClient,
    dynamodb: DynamoDBClient,
    stream: str,
    lease_table: str,
    records: dict[str, list[tuple[int, bytes]]] | None = None,
) -> list[ShardProgress]:
    """Per shard: records held and records checkpointed by the app owning `lease_table`."""
    leases = lease_checkpoints(dynamodb, lease_table)
    out = []
    for shard_id in list_shard_ids(kinesis, stream):
        held = records[shard_id] if records else shard_records(kinesis, stream, shard_id)
        checkpoint, owner = leases.get(shard_id, (None, None))
        done = sum(1 for seq, _ in held if is_checkpointed(seq, checkpoint))
        out.append(ShardProgress(shard_id, checkpoint, owner, len(held), done))
    return out


def stream_record_count(kinesis: KinesisClient, stream: str) -> dict[str, int]:
    """Records held per shard (local stack: kinesis-mock never trims by retention)."""
    return {shard: len(shard_records(kinesis, stream, shard)) for shard in list_shard_ids(kinesis, stream)}
