"""Clears a dead KCL leader's lock so a live worker can lead.

KCL 3 elects a leader with a DynamoDB lock (`Leader` in the `<app>-CoordinatorState` table) that
its holder heartbeats every 30 s. When the leader dies without releasing it (SIGKILL, OOM kill,
a lost host), KCL 3.x never lets another worker take the lock over, so no worker assigns the
dead worker's leases and their shards stop being read, silently and for good
(awslabs/amazon-kinesis-client issue #1803; the recovery it names is deleting that item).
Every `coinstream consume` runs this watchdog beside its daemon: when the lock's record version
has not moved for longer than its lease duration plus a margin, it deletes the item on the
condition that the version is still the one it watched, and the live workers elect a new leader.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from coinstream.errors import CoinstreamError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

LEADER_KEY = "Leader"
DEFAULT_LEASE_MS = 120_000
MARGIN_SECONDS = 30.0


def _hash_key(dynamodb: DynamoDBClient, table: str) -> str:
    schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
    return next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")


def release(dynamodb: DynamoDBClient, app_table: str, worker_id: str | None) -> None:
    """The lock of a worker known to be gone (its daemon was killed after its record processors finished): give it
    up at once, as KCL's own shutdown does (its lock client deletes the item). Otherwise the next worker cannot lead
    until the lock's two minutes run out (DynamoDBLockBasedLeaderDecider.DEFAULT_LEASE_DURATION_MILLIS,
    hard-coded; the watchdog waits 30 s more), and unowned leases (a reshard's children, a forced replay) wait for
    a leader that long. Only a lock held under `worker_id`."""
    if worker_id is None:
        return  # KCL named the worker itself: nothing to match the lock against
    table = f"{app_table}-CoordinatorState"
    try:
        dynamodb.delete_item(
            TableName=table,
            Key={_hash_key(dynamodb, table): {"S": LEADER_KEY}},
            ConditionExpression="ownerName = :me",
            ExpressionAttributeValues={":me": {"S": worker_id}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "ConditionalCheckFailedException",
            "ResourceNotFoundException",
        ):
            return  # another worker leads, the lock was released already, or the app never got that far
        logger.warning("could not release the leader lock of %s: %s", worker_id, exc)
    except (CoinstreamError, OSError) as exc:  # only a faster start for the next worker is at stake
        logger.warning("could not release the leader lock of %s: %s", worker_id, exc)


class LeaderWatchdog:
    """Watches one application's leader lock; `check` is one observation, `start` runs it every `every` s."""

    def __init__(
        self, dynamodb: DynamoDBClient, app_table: str, *, every: float = 15.0, clock: Any = time.monotonic
    ) -> None:
        self.dynamodb = dynamodb
        self.table = f"{app_table}-CoordinatorState"
        self.every = every
        self.clock = clock
        self._seen: tuple[str, float] | None = None  # (record version, when first seen)
        self._key_name: str | None = None
        self._stop = threading.Event()
        self.cleared = 0

    def _key(self) -> str:
        if self._key_name is None:
            self._key_name = _hash_key(self.dynamodb, self.table)
        return self._key_name

    def check(self) -> bool:
        """Observe the lock once; True when it was found stale and cleared."""
        try:
            key = self._key()
            item = self.dynamodb.get_item(TableName=self.table, Key={key: {"S": LEADER_KEY}}, ConsistentRead=True).get(
                "Item"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False  # the application has not started its coordinator yet
            raise
        if not item or "recordVersionNumber" not in item:
            self._seen = None
            return False
        version = item["recordVersionNumber"]["S"]
        now = self.clock()
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, now)
            return False
        lease_ms = int(item.get("leaseDuration", {}).get("S", DEFAULT_LEASE_MS))
        stale_for = now - self._seen[1]
        if stale_for <= lease_ms / 1000 + MARGIN_SECONDS:
            return False
        owner = item.get("ownerName", {}).get("S", "?")
        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key={key: {"S": LEADER_KEY}},
                ConditionExpression="recordVersionNumber = :v",
                ExpressionAttributeValues={":v": {"S": version}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                self._seen = None  # it moved after all: the leader is alive
                return False
            raise
        self._seen = None
        self.cleared += 1
        logger.warning(
            "KCL leader %s stopped heartbeating %.0f s ago; cleared its lock so a live worker "
            "takes over (amazon-kinesis-client issue #1803)",
            owner,
            stale_for,
        )
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except (ClientError, CoinstreamError, OSError) as exc:
                # the stack may be restarting; the next round looks again
                logger.debug("leader watchdog: %s", exc)

    def start(self) -> LeaderWatchdog:
        """Run in a daemon thread until `stop`."""
        threading.Thread(target=self._run, name="leader-watchdog", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
