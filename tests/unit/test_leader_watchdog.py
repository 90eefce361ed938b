"""The leader watchdog against moto's in-process DynamoDB, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from consumer.leader_watchdog import LeaderWatchdog, release
from tests.conftest import moto_dynamodb_table

TABLE = "coinstream-warehouse-CoordinatorState"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with moto_dynamodb_table(TABLE, "key") as client:
        yield client


def lock(dynamodb: Any, version: str, owner: str = "w1") -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={
            "key": {"S": "Leader"},
            "ownerName": {"S": owner},
            "recordVersionNumber": {"S": version},
            "leaseDuration": {"S": "120000"},
        },
    )


def test_a_heartbeating_leader_is_left_alone(dynamodb: Any) -> None:
    clock = Clock()
    dog = LeaderWatchdog(dynamodb, "coinstream-warehouse", clock=clock)
    for i in range(20):
        lock(dynamodb, f"v{i}")  # the leader heartbeats every 30 s
        clock.now += 30
        assert not dog.check()
    assert dog.cleared == 0


def test_a_dead_leaders_lock_is_cleared_after_lease_plus_margin(dynamodb: Any) -> None:
    clock = Clock()
    dog = LeaderWatchdog(dynamodb, "coinstream-warehouse", clock=clock)
    lock(dynamodb, "v1")
    assert not dog.check()
    clock.now += 149
    assert not dog.check()  # 120 s lease + 30 s margin not yet over
    clock.now += 2
    assert dog.check() and dog.cleared == 1
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"key": {"S": "Leader"}})


def test_no_table_yet_is_not_an_error(dynamodb: Any) -> None:
    assert not LeaderWatchdog(dynamodb, "never-started").check()


def test_a_killed_workers_lock_is_released_at_once_and_no_other_workers(dynamodb: Any) -> None:
    def held() -> bool:
        return "Item" in dynamodb.get_item(TableName=TABLE, Key={"key": {"S": "Leader"}})

    release(dynamodb, "coinstream-live", "host-live")  # an application that never got that far: nothing to do
    lock(dynamodb, "v1", owner="w2")
    release(dynamodb, "coinstream-warehouse", "host-warehouse")
    assert held()  # another worker leads: its lock stays
    release(dynamodb, "coinstream-warehouse", None)
    assert held()  # a worker KCL named itself: nothing to match
    lock(dynamodb, "v2", owner="host-warehouse")
    release(dynamodb, "coinstream-warehouse", "host-warehouse")
    assert not held()  # the next worker can lead at once, not in two minutes
