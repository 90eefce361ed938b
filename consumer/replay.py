"""Replay: move one consumer application's checkpoints back, leaving every other application alone.

The stream keeps records after they are read, so an application reads again simply by having its
lease checkpoints reset: to TRIM_HORIZON, or to the last record that arrived before a given time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from coinstream.aws import classify
from coinstream.errors import FatalError
from consumer.checkpoints import Lease, leases, list_shards, shard_records

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

TRIM_HORIZON = "TRIM_HORIZON"


@dataclass(frozen=True)
class Reset:
    """What replay does (or did) to one shard's lease."""

    shard_id: str
    old: str | None
    new: str
    records_to_read_again: int


def live_owners(dynamodb: DynamoDBClient, table: str, watch_seconds: float) -> set[str]:
    """Workers that renewed a lease while we watched: a live worker renews every few seconds."""
    before = {lease.shard_id: lease for lease in leases(dynamodb, table)}
    if not any(lease.owner for lease in before.values()):
        return set()
    time.sleep(watch_seconds)
    after = leases(dynamodb, table)
    return {
        lease.owner
        for lease in after
        if lease.owner and lease.shard_id in before and lease.counter != before[lease.shard_id].counter
    }


def plan(kinesis: KinesisClient, stream: str, current: list[Lease], since: datetime | None) -> list[Reset]:
    """New checkpoints: TRIM_HORIZON, or the last record that arrived before `since` (reading the shard).

    A parent shard closed by a split or merge (checkpoint SHARD_END) holds its own records, which its
    children do not have: it is reset like any other shard when it has records to read again.
    """
    out = []
    for lease in current:
        records = shard_records(kinesis, stream, lease.shard_id)
        if lease.checkpoint == "SHARD_END" and since is not None and not any(r.arrived_at >= since for r in records):
            continue  # a finished parent with nothing at or after `since`: nothing to read again
        new = TRIM_HORIZON
        if since is not None:
            before = [r for r in records if r.arrived_at < since]
            if before:
                new = str(before[-1].sequence_number)
        start = 0 if new == TRIM_HORIZON else int(new)
        old = int(lease.checkpoint) if lease.checkpoint and lease.checkpoint.isdigit() else None
        if lease.checkpoint == "SHARD_END":
            old = records[-1].sequence_number if records else None
        again = sum(1 for r in records if r.sequence_number > start and (old is None or r.sequence_number <= old))
        out.append(Reset(lease.shard_id, lease.checkpoint, new, again))
    return out


def apply(dynamodb: DynamoDBClient, table: str, resets: list[Reset], *, release: bool = False) -> int:
    """Write the new checkpoints. Bumping the lease counter makes any worker holding a lease drop it and take it
    again from the new checkpoint; `release` (live workers, --force) also clears the owner, for KCL's leader to
    hand the lease out again. With no live worker the owner stays: the application's only worker, which keeps
    one name from run to run on the local stack, finds the leases as its own when it starts next."""
    removed = ", leaseOwner" if release else ""
    for reset in resets:
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"leaseKey": {"S": reset.shard_id}},
                UpdateExpression=(
                    "SET checkpoint = :c, checkpointSubSequenceNumber = :zero, leaseCounter = leaseCounter + :one "
                    f"REMOVE pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState{removed}"
                ),
                ExpressionAttributeValues={":c": {"S": reset.new}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
                ConditionExpression="attribute_exists(leaseKey)",
            )
        except Exception as exc:
            raise classify(exc, f"resetting the checkpoint of {reset.shard_id} in {table}") from None
    return len(resets)


def prepare(
    dynamodb: DynamoDBClient, kinesis: KinesisClient, stream: str, table: str, since: datetime | None
) -> list[Reset] | None:
    """The resets a replay of the application owning lease table `table` would make (None: it never ran)."""
    current = leases(dynamodb, table)
    return plan(kinesis, stream, current, since) if current else None


def execute(dynamodb: DynamoDBClient, table: str, resets: list[Reset], *, force: bool, watch_seconds: float) -> int:
    """Apply the resets; refuse while workers renew their leases unless `force` (they re-take them then)."""
    live = live_owners(dynamodb, table, watch_seconds)
    if live and not force:
        raise FatalError(
            f"workers {', '.join(sorted(live))} hold live leases in {table}; stop them first, "
            "or pass --force (they drop their leases and take them again from the new checkpoints)"
        )
    return apply(dynamodb, table, resets, release=bool(live))


def leaseless_parents(kinesis: KinesisClient, stream: str, current: list[Lease], since: datetime | None) -> list[str]:
    """Closed shards with records to read again whose lease KCL already removed: a replay cannot reset them."""
    leased = {lease.shard_id for lease in current}
    out = []
    for shard in list_shards(kinesis, stream):
        if shard.closed and shard.shard_id not in leased:
            records = shard_records(kinesis, stream, shard.shard_id)
            if records and (since is None or any(r.arrived_at >= since for r in records)):
                out.append(shard.shard_id)
    return out


def start_over(dynamodb: DynamoDBClient, table: str, *, watch_seconds: float) -> list[str]:
    """Delete an application's KCL tables so its next worker reads every shard from TRIM_HORIZON (closed parents of
    a reshard included, which a checkpoint reset cannot reach once KCL removed their leases). Refused while any
    worker of the application is alive."""
    live = live_owners(dynamodb, table, watch_seconds)
    if live:
        raise FatalError(f"workers {', '.join(sorted(live))} hold live leases in {table}; stop them before --fresh")
    return delete_tables(dynamodb, table)


def delete_tables(dynamodb: DynamoDBClient, table: str) -> list[str]:
    """Delete an application's KCL tables (leases, coordinator state, worker metrics); the names deleted."""
    deleted = []
    for name in (table, f"{table}-CoordinatorState", f"{table}-WorkerMetricStats"):
        try:
            dynamodb.delete_table(TableName=name)
            dynamodb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        except dynamodb.exceptions.ResourceNotFoundException:
            continue
        except Exception as exc:
            raise classify(exc, f"deleting {name}") from None
        deleted.append(name)
    return deleted
