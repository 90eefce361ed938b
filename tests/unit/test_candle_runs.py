"""Candle runs as cron starts them: late trades caught by re-reading, a grace after each minute, many markets."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from coinstream.config import Pipeline, Settings
from coinstream.records import Envelope, Kind
from producer.run import Code, produce
from tests.http_server import Reply, api_server
from tests.warehouse_data import warehouse_of

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PATH = "/v1/candles/minutes/1"


def upbit_answer(clock: dict[str, datetime], volumes: dict[int, str], delay: float = 0.0) -> Any:
    """Upbit's answer for a query: the candles of minutes 0.. up to the clock's (open) minute, newest first."""

    def answer(query: dict[str, str]) -> list[dict[str, Any]]:
        time.sleep(delay)
        now = clock["now"]
        shown = [m for m in sorted(volumes, reverse=True) if T0 + timedelta(minutes=m) <= now]
        return [
            {
                "market": query["market"],
                "candle_date_time_utc": f"{T0 + timedelta(minutes=m):%Y-%m-%dT%H:%M:%S}",
                "opening_price": 100.0,
                "high_price": 110.0,
                "low_price": 90.0,
                "trade_price": 105.0,
                "candle_acc_trade_price": 1000.0,
                "candle_acc_trade_volume": float(volumes[m]),
                "unit": 1,
            }
            for m in shown
        ]

    return answer


def stream_records(kinesis: Any, pipeline: Pipeline) -> list[Envelope]:
    shard = kinesis.list_shards(StreamName=pipeline.stream_name)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=pipeline.stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    got = kinesis.get_records(ShardIterator=it["ShardIterator"], Limit=10_000)["Records"]
    return [Envelope.from_bytes(r["Data"]) for r in got]


def test_a_candle_that_grows_after_it_was_sent_is_sent_again_and_the_warehouse_keeps_the_later_value_once(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    volumes = {m: "1" for m in range(6)}
    clock = {"now": T0 + timedelta(minutes=4, seconds=20)}
    with api_server() as server:
        server.on(PATH, Reply(upbit_answer(clock, volumes)))
        settings = Settings(state_dir=tmp_path, upbit_url=server.url)

        def run() -> Any:
            return produce(Kind.CANDLE, "upbit", settings, pipeline, now=clock["now"])

        assert run().sent == 4  # 12:00..12:03; 12:04 is still open
        volumes[3] = "1.5"  # a late trade lands in 12:03 after it was read
        clock["now"] = T0 + timedelta(minutes=5, seconds=15)
        second = run()
        assert second.sent == 2  # 12:03 again (changed), 12:04 (closed); 12:00..12:02 unchanged: not sent
        clock["now"] = T0 + timedelta(minutes=5, seconds=40)
        assert run().code is Code.NOTHING  # re-read, nothing changed
    sent = stream_records(kinesis, pipeline)
    assert [(e.event_time.minute, e.candle.volume) for e in sent] == [
        (0, "1.0"),
        (1, "1.0"),
        (2, "1.0"),
        (3, "1.0"),
        (3, "1.5"),
        (4, "1.0"),
    ]
    warehouse_of(tmp_path / "w.duckdb", sent)
    db = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = db.execute(
        "SELECT strftime(minute_utc, '%M'), volume::VARCHAR FROM candles WHERE minute_utc = '2026-11-27 12:03:00'"
    ).fetchall()
    db.close()
    assert rows == [("03", "1.50000000")]  # the later fetch, once


def test_a_minute_counts_as_closed_only_after_the_grace(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> None:
    pipeline, _ = moto_kinesis
    clock = {"now": T0 + timedelta(minutes=3, seconds=4)}
    with api_server() as server:
        server.on(PATH, Reply(upbit_answer(clock, {m: "1" for m in range(4)})))
        settings = Settings(state_dir=tmp_path, upbit_url=server.url, candle_grace_seconds=5)
        assert produce(Kind.CANDLE, "upbit", settings, pipeline, now=clock["now"]).sent == 2  # 12:02 ended 4 s ago
        clock["now"] += timedelta(seconds=2)
        assert produce(Kind.CANDLE, "upbit", settings, pipeline, now=clock["now"]).sent == 1  # now 12:02 is closed


def test_two_markets_alternately_and_at_once_each_get_all_their_minutes(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    clock = {"now": T0 + timedelta(minutes=3, seconds=30)}
    with api_server() as server:
        server.on(PATH, Reply(upbit_answer(clock, {m: "1" for m in range(12)}, delay=0.5)))
        settings = Settings(state_dir=tmp_path, upbit_url=server.url)
        for market in ("KRW-BTC", "KRW-ETH"):  # alternately
            assert produce(Kind.CANDLE, "upbit", settings, pipeline, market=market, now=clock["now"]).sent == 3
        clock["now"] = T0 + timedelta(minutes=9, seconds=30)
        outcomes: dict[str, Any] = {}
        threads = [
            threading.Thread(
                target=lambda m=market: outcomes.__setitem__(
                    m, produce(Kind.CANDLE, "upbit", settings, pipeline, market=m, now=clock["now"])
                )
            )
            for market in ("KRW-BTC", "KRW-ETH")
        ]
        for thread in threads:  # at once: each holds its own lock while the (slow) API answers
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert {m: o.sent for m, o in outcomes.items()} == {"KRW-BTC": 6, "KRW-ETH": 6}
    per_market: dict[str, list[int]] = {}
    for e in stream_records(kinesis, pipeline):
        per_market.setdefault(e.candle.market, []).append(e.event_time.minute)
    assert {m: sorted(v) for m, v in per_market.items()} == {"KRW-BTC": list(range(9)), "KRW-ETH": list(range(9))}
    assert sorted(p.name for p in (tmp_path / "producer").glob("*.state.json")) == [
        "candle-upbit-KRW-BTC.state.json",
        "candle-upbit-KRW-ETH.state.json",
    ]


def test_the_state_of_an_earlier_version_is_taken_over_by_the_krw_btc_market(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, _ = moto_kinesis
    folder = tmp_path / "producer"
    folder.mkdir()
    last = int((T0 + timedelta(minutes=2)).timestamp() // 60)
    (folder / "candle-upbit.state.json").write_text(json.dumps({"last_minute": last}))
    clock = {"now": T0 + timedelta(minutes=5, seconds=30)}
    with api_server() as server:
        server.on(PATH, Reply(upbit_answer(clock, {m: "1" for m in range(6)})))
        settings = Settings(state_dir=tmp_path, upbit_url=server.url, candle_reread_minutes=0)
        assert produce(Kind.CANDLE, "upbit", settings, pipeline, now=clock["now"]).sent == 2  # 12:03, 12:04
    assert not (folder / "candle-upbit.state.json").exists()
    assert json.loads((folder / "candle-upbit-KRW-BTC.state.json").read_text())["last_minute"] == last + 2
