"""The local stack's DynamoDB keeps DynamoDB's promise that each transaction is atomic.

moto's threaded server undoes other connections' writes when a transaction is cancelled, so two KCL
processors counting posts into one minute, one of them replaying, used to lose counts (CI saw 39 of
40). The stack serves moto one request at a time; this drives the live sink itself from three
threads, as the processors would, against that server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coinstream.aws import child_env, client
from coinstream.config import Settings
from coinstream.live_table import read_minutes
from coinstream.processes import free_port
from consumer.enrich import enrich
from consumer.live_sink import LiveMetricsSink
from operate import local_stack
from tests.conftest import FETCHED, make_post
from tests.kcl import wait_for

TABLE = "live"
PER_WRITER = 120


def test_concurrent_counting_with_a_replay_loses_no_post(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, moto_port=free_port())  # type: ignore[call-arg]
    moto = local_stack.moto_proc(settings)
    moto.start(local_stack.moto_command(settings), child_env(settings))
    try:
        dynamodb = client("dynamodb", settings)
        wait_for("moto server to answer", lambda: _answers(dynamodb), timeout=60)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        replayed = [make_post("replayed", minute=1)]
        first = LiveMetricsSink(TABLE, dynamodb)
        first.add("post", enrich(replayed[0], FETCHED))
        assert first.flush() == []

        def count(writer: str) -> None:
            sink = LiveMetricsSink(TABLE, client("dynamodb", settings))
            for i in range(PER_WRITER):  # one transaction per post: as many interleavings as possible
                sink.add("post", enrich(make_post(f"{writer}-{i}", minute=0), FETCHED))
                assert sink.flush() == []

        def replay() -> None:
            sink = LiveMetricsSink(TABLE, client("dynamodb", settings))
            for _ in range(PER_WRITER):  # every transaction is cancelled: the key was counted already
                sink.add("post", enrich(replayed[0], FETCHED))
                assert sink.flush() == []

        failures: list[BaseException] = []

        def run(job: Callable[[], None]) -> None:
            try:
                job()
            except BaseException as exc:
                failures.append(exc)

        jobs: list[Callable[[], None]] = [lambda: count("a"), lambda: count("b"), replay]
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert failures == []
        minutes = {m["minute"]: m["posts"] for m in read_minutes(dynamodb, TABLE)}
        assert minutes == {"2026-11-27T12:00Z": {"x": 2 * PER_WRITER}, "2026-11-27T12:01Z": {"x": 1}}
    finally:
        moto.stop()


def _answers(dynamodb: Any) -> bool:
    try:
        dynamodb.list_tables()
    except Exception:
        return False
    return True
