"""Where each consumer application stands: its leases and checkpoints, and what the stream holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from coinstream.aws import classify
from coinstream.kpl import user_records
from coinstream.retry import retrying

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient


@dataclass(frozen=True)
class Lease:
    """The parts of a KCL lease item that coinstream reads."""

    shard_id: str
    checkpoint: str | None
    owner: str | None
    counter: int


@dataclass(frozen=True)
class StoredRecord:
    """One record as the stream holds it."""

    sequence_number: int
    data: bytes
    arrived_at: datetime


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


def leases(dynamodb: DynamoDBClient, table: str) -> list[Lease]:
    """Every lease in an application's lease table, by shard; empty when the app has never run."""
    try:
        pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        items = [item for page in pages for item in page.get("Items", [])]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []
        raise classify(exc, f"reading lease table {table}") from None
    except Exception as exc:
        raise classify(exc, f"reading lease table {table}") from None
    found = [
        Lease(
            shard_id=item["leaseKey"]["S"],
            checkpoint=item.get("checkpoint", {}).get("S"),
            owner=item.get("leaseOwner", {}).get("S"),
            counter=int(item.get("leaseCounter", {}).get("N", "0")),
        )
        for item in items
    ]
    return sorted(found, key=lambda lease: lease.shard_id)


def shard_records(kinesis: KinesisClient, stream: str, shard_id: str, limit: int = 1_000_000) -> list[StoredRecord]:
    """Every record in a shard, oldest first. It reads the whole shard: cheap locally, costly on a big stream."""
    try:
        iterator: str | None = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    except Exception as exc:
        raise classify(exc, f"reading shard {shard_id} of {stream}") from None
    out: list[StoredRecord] = []
    while iterator and len(out) < limit:
        # 5 reads/s per shard, shared with the running workers: a throttled read waits and tries again
        for attempt in retrying(logger, max_attempts=20, initial=0.5, max_wait=5.0):
            with attempt:
                try:
                    response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                except Exception as exc:
                    raise classify(exc, f"reading shard {shard_id} of {stream}") from None
        out.extend(
            StoredRecord(int(r["SequenceNumber"]), r["Data"], r["ApproximateArrivalTimestamp"])
            for r in response["Records"]
        )
        if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
            break
        iterator = response.get("NextShardIterator")
    return out


def is_checkpointed(sequence_number: int, checkpoint: str | None) -> bool:
    """Whether a record at `sequence_number` lies at or before a lease's checkpoint."""
    if checkpoint == "SHARD_END":
        return True
    return bool(checkpoint and checkpoint.isdigit() and sequence_number <= int(checkpoint))


@dataclass(frozen=True)
class Shard:
    """A shard of the stream, open or closed by a split or merge (a closed one keeps its records for the retention)."""

    shard_id: str
    parents: tuple[str, ...]
    closed: bool
    #: the hash keys it takes (starting, ending), as decimal text
    hash_range: tuple[str, str] = ("", "")


def list_shards(kinesis: KinesisClient, stream: str) -> list[Shard]:
    """Every shard of the stream the API still lists, parents of a reshard included."""
    try:
        pages = kinesis.get_paginator("list_shards").paginate(StreamName=stream)
        found = [s for page in pages for s in page["Shards"]]
    except Exception as exc:
        raise classify(exc, f"listing the shards of {stream}") from None
    return [
        Shard(
            s["ShardId"],
            tuple(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p),
            "EndingSequenceNumber" in s["SequenceNumberRange"],
            (s["HashKeyRange"]["StartingHashKey"], s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in found
    ]


def seed_leases(
    kinesis: KinesisClient, dynamodb: DynamoDBClient, stream: str, table: str, owner: str | None = None
) -> int:
    """Give a new application its lease table with one lease per shard at TRIM_HORIZON, as KCL's first shard
    sync would, owned by `owner` (None: unowned); returns the leases made (0: left to KCL). For one host (the
    local stack) only.

    KCL 3.1.3 waits a random 1-30 s before its first shard sync while the lease table is empty
    (Scheduler.shouldInitiateLeaseSync, MIN/MAX_WAIT_TIME_FOR_LEASE_TABLE_CHECK_MILLIS: hard-coded, so that a
    fleet starting together does not sync shards all at once). With leases present it skips the wait and the
    sync; it adds its lease-owner index to the table itself. Unowned leases wait for the leader's
    LeaseAssignmentManager, whose first pass runs before any worker has reported metrics and so assigns
    nothing: the leases are assigned one `leaseAssignmentIntervalMillis` later (20 s) and found by the worker's
    next lease discovery (every 10 s). A lease owned by the worker about to start is found by that worker's
    first discovery, at once, and the leader leaves an owned lease alone until it expires (a worker that never
    came would lose it after failoverTimeMillis). A stream that was resharded is left to KCL, whose sync knows
    how to write the parents of each lease."""
    try:
        dynamodb.describe_table(TableName=table)
        return 0  # not new: KCL's own leases, or another worker's seed
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    except Exception as exc:
        raise classify(exc, f"reading lease table {table}") from None
    shards = list_shards(kinesis, stream)
    if not shards or any(s.parents or s.closed for s in shards):
        return 0
    try:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return 0  # another worker of the application got there first
    except Exception as exc:
        raise classify(exc, f"creating lease table {table}") from None
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    made = 0
    for shard in shards:
        try:
            dynamodb.put_item(
                TableName=table,
                Item={
                    "leaseKey": {"S": shard.shard_id},
                    "leaseCounter": {"N": "0"},
                    "checkpoint": {"S": "TRIM_HORIZON"},
                    "checkpointSubSequenceNumber": {"N": "0"},
                    "ownerSwitchesSinceCheckpoint": {"N": "0"},
                    **({"leaseOwner": {"S": owner}} if owner else {}),
                    # without its hash range KCL's lease auditor counts the stream as having holes
                    "startingHashKey": {"S": shard.hash_range[0]},
                    "endingHashKey": {"S": shard.hash_range[1]},
                },
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
            made += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            continue
    return made


def list_shard_ids(kinesis: KinesisClient, stream: str) -> list[str]:
    """Ids of the stream's shards."""
    return [s.shard_id for s in list_shards(kinesis, stream)]


def progress(kinesis: KinesisClient, dynamodb: DynamoDBClient, stream: str, lease_table: str) -> list[ShardProgress]:
    """Per shard: records held and records checkpointed by the app owning `lease_table`."""
    by_shard = {lease.shard_id: lease for lease in leases(dynamodb, lease_table)}
    shards = list_shards(kinesis, stream)
    out = []
    for shard in shards:
        held = shard_records(kinesis, stream, shard.shard_id)
        lease = by_shard.get(shard.shard_id)
        checkpoint, owner = (lease.checkpoint, lease.owner) if lease else (None, None)
        if (
            lease is None
            and shard.closed
            and any(shard.shard_id in s.parents and s.shard_id in by_shard for s in shards)
        ):
            checkpoint = "SHARD_END"  # KCL removes a finished parent's lease once its children have begun
        done = sum(len(user_records(r.data)) for r in held if is_checkpointed(r.sequence_number, checkpoint))
        out.append(ShardProgress(shard.shard_id, checkpoint, owner, sum(len(user_records(r.data)) for r in held), done))
    return out


def stream_record_count(kinesis: KinesisClient, stream: str) -> dict[str, int]:
    """Records held per shard, an aggregate's each counted (local stack: kinesis-mock never trims by retention)."""
    return {
        shard: sum(len(user_records(r.data)) for r in shard_records(kinesis, stream, shard))
        for shard in list_shard_ids(kinesis, stream)
    }
