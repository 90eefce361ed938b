"""The live sink against moto's in-process DynamoDB: exact per-minute counts, however often a post arrives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from coinstream.live_table import read_minutes
from coinstream.records import Kind
from consumer.enrich import enrich
from consumer.live_sink import LiveMetricsSink
from tests.conftest import FETCHED, make_candle, make_post, moto_dynamodb_table

TABLE = "live"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with moto_dynamodb_table(TABLE, "pk") as client:
        yield client


def test_posts_are_counted_once_per_minute_and_source_even_when_replayed(dynamodb: Any) -> None:
    posts = [make_post(str(i), minute=i % 2) for i in range(150)] + [make_post("b1", source="bluesky")]
    for _ in range(2):  # the second pass is a replay: nothing may count twice
        sink = LiveMetricsSink(TABLE, dynamodb)
        for p in posts[:120]:
            sink.add("post", enrich(p, FETCHED))
        sink.flush()
    sink = LiveMetricsSink(TABLE, dynamodb)
    for p in posts[100:]:  # overlaps the first pass by 20 posts
        sink.add("post", enrich(p, FETCHED))
    assert sink.flush() == [] and sink.written == 51 and sink.pending_rows() == 0
    minutes = read_minutes(dynamodb, TABLE)
    assert [m["minute"] for m in minutes] == ["2026-11-27T12:00Z", "2026-11-27T12:01Z"]
    assert minutes[0]["posts"] == {"x": 75, "bluesky": 1} and minutes[1]["posts"] == {"x": 75}


def test_a_later_candle_copy_replaces_an_earlier_one_never_the_reverse(dynamodb: Any) -> None:
    first = make_candle(3, volume="1.0")
    later = replace(
        first,
        **{
            "fetched_at": FETCHED + timedelta(minutes=5),
            "payload": replace(first.payload, **{"volume": "2.0"}),
        },
    )
    sink = LiveMetricsSink(TABLE, dynamodb)
    for envelope in (first, later, first):
        sink.add("candle", enrich(envelope, FETCHED))
    sink.flush()
    (minute,) = read_minutes(dynamodb, TABLE)
    assert minute["candles"]["coinone#KRW-BTC"]["volume"] == "2.0"
    assert minute["candles"]["coinone#KRW-BTC"]["close"] == "105"


def test_the_stacks_moto_keeps_transactions_atomic_without_copying_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's TransactWriteItems deep-copied the whole table for every item of a transaction; on the live table
    (a key per post counted) the server grew from 255 MB to 3.3 GB in 80 s (issue 39). The stack's moto server keeps
    a copy of the touched items only: no table is ever copied, and a cancelled transaction still leaves nothing."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    from operate import moto_server

    monkeypatch.setattr(models.DynamoDBBackend, "transact_write_items", models.DynamoDBBackend.transact_write_items)
    moto_server._transactions_copy_what_they_touch()

    def no_copy(self: Table, memo: object) -> Table:
        raise AssertionError("a whole table was copied")

    with moto_dynamodb_table("live", "pk") as ddb:
        sink = LiveMetricsSink("live", ddb)
        for n in range(60):
            sink.add(Kind.POST, enrich(make_post(f"p{n}", minute=n % 3), FETCHED))
        sink.flush()
        monkeypatch.setattr(Table, "__deepcopy__", no_copy, raising=False)
        for n in range(40, 80):  # 20 already counted: their transaction is cancelled and retried without them
            sink.add(Kind.POST, enrich(make_post(f"p{n}", minute=n % 3), FETCHED))
        sink.flush()
        counted = sum(sum(m["posts"].values()) for m in read_minutes(ddb, "live"))
        assert counted == 80
        fails = [
            {
                "Put": {
                    "TableName": "live",
                    "Item": {"pk": {"S": "seen#new"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": "live",
                    "Item": {"pk": {"S": "seen#x:p1"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        with pytest.raises(ddb.exceptions.TransactionCanceledException):
            ddb.transact_write_items(TransactItems=fails)
        assert "Item" not in ddb.get_item(TableName="live", Key={"pk": {"S": "seen#new"}})
