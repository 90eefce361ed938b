"""Cron safety of a producer run: lock, spool, state; the simulated source's planted relation."""

from __future__ import annotations

import json
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.kinesis_writer import KinesisWriter, WriteResult
from producer.lock import AlreadyRunning, run_lock
from producer.run import Code, produce
from producer.sources import simulated
from producer.spool import Spool
from producer.state import StateFile
from tests.conftest import PAYLOADS, make_post
from tests.http_server import Reply, api_server

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def stack(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> tuple[Settings, Pipeline, Any]:
    """moto's in-process Kinesis and a state folder."""
    pipeline, kinesis = moto_kinesis
    return Settings(state_dir=tmp_path), pipeline, kinesis


def stream_count(kinesis: Any, stream: str) -> int:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return len(kinesis.get_records(ShardIterator=it, Limit=10000)["Records"])


def test_a_run_that_finds_another_running_does_nothing(stack: tuple[Settings, Pipeline, Any]) -> None:
    settings, pipeline, _ = stack
    with run_lock(settings.state_dir / "producer" / "post-offline.lock"):
        outcome = produce(Kind.POST, "offline", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    assert outcome.code is Code.NOTHING and "still holds" in outcome.message
    assert produce(Kind.POST, "offline", settings, pipeline, from_dir=PAYLOADS, now=NOW).code is Code.SENT


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with run_lock(path), pytest.raises(AlreadyRunning, match=str(os.getpid())), run_lock(path):
        pass
    with run_lock(path):
        pass


def test_unsent_records_are_spooled_and_sent_first_by_the_next_run(
    stack: tuple[Settings, Pipeline, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, pipeline, kinesis = stack
    real_put = KinesisWriter.put

    def stream_down(self: KinesisWriter, envelopes: Any) -> WriteResult:
        return WriteResult(unsent=list(envelopes))  # what put returns once its retries are used up

    monkeypatch.setattr(KinesisWriter, "put", stream_down)
    first = produce(Kind.CANDLE, "simulated", settings, pipeline, from_dir=PAYLOADS, backfill_minutes=10, now=NOW)
    assert first.code is Code.PARTIAL and first.spooled == 10 and stream_count(kinesis, pipeline.stream_name) == 0
    monkeypatch.setattr(KinesisWriter, "put", real_put)
    later = datetime(2026, 11, 28, 12, 2, 30, tzinfo=UTC)
    second = produce(Kind.CANDLE, "simulated", settings, pipeline, from_dir=PAYLOADS, now=later)
    assert second.code is Code.SENT and second.drained == 10 and second.sent == 2  # 12:00 and 12:01 are new
    assert stream_count(kinesis, pipeline.stream_name) == 12
    third = produce(Kind.CANDLE, "simulated", settings, pipeline, from_dir=PAYLOADS, now=later)
    assert third.code is Code.NOTHING


def test_a_spool_that_cannot_be_written_is_loud(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(FatalError, match="NOT saved"):
        Spool(blocked / "spool").write([make_post()])


def test_state_is_replaced_whole_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "s.json")
    assert state.load() == {}
    state.save({"last_minute": 5})
    assert state.load() == {"last_minute": 5} and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "s.json").write_text("{half")
    with pytest.raises(FatalError, match="s.json: producer state is unreadable"):
        state.load()


def test_simulated_records_say_so_and_plant_volume_after_posts() -> None:
    sim = simulated.Simulation(lag_minutes=5, strength=0.9)
    first, last = 29_000_000, 29_000_000 + 600
    posts = simulated.posts(sim, first, last, NOW)
    candles = simulated.candles(sim, first, last, NOW)
    assert all(p.payload.simulated for p in posts + candles) and len(candles) == 601
    counts = [sim.post_count(m) for m in range(first, last + 1)]
    volumes = [float(c.payload.volume) for c in candles]

    def corr(lag: int) -> float:
        a, b = counts[: len(counts) - lag], volumes[lag:]
        return statistics.correlation(a, b)

    best = max(range(0, 15), key=corr)
    assert best == 5 and corr(5) > 0.8 and corr(5) > corr(0) + 0.1
    assert simulated.posts(sim, first, first, NOW) == simulated.posts(sim, first, first, NOW)  # deterministic


def test_an_unreadable_spool_line_is_quarantined_alone_and_the_rest_is_sent(
    stack: tuple[Settings, Pipeline, Any],
) -> None:
    settings, pipeline, kinesis = stack
    spool = Spool(settings.state_dir / "producer" / "spool" / "post-offline")
    posts = [make_post(str(i)) for i in range(3)]
    file = spool.write(posts)
    assert file is not None
    lines = file.read_bytes().splitlines()
    file.write_bytes(lines[0] + b"\n" + b'{"v": 1, "kind": "post", "trunc\n' + b"\n".join(lines[1:]) + b"\n")
    outcome = produce(Kind.POST, "offline", settings, pipeline, from_dir=PAYLOADS, now=NOW)
    assert outcome.code is Code.PARTIAL and "1 unreadable spool lines quarantined" in outcome.message
    assert outcome.drained == 3 and spool.pending() == 0
    (kept,) = (spool.folder / "quarantine").glob("*.jsonl")
    entry = json.loads(kept.read_text())
    assert entry["line"] == '{"v": 1, "kind": "post", "trunc' and "not a coinstream v1 envelope" in entry["reason"]
    assert stream_count(kinesis, pipeline.stream_name) == 3 + outcome.sent


@pytest.mark.parametrize(
    ("answer", "said"), [("coinone_maintenance.json", "maintenance"), ("coinone_blocked.json", "rate")]
)
def test_a_closed_api_is_try_later_nothing_to_do_and_the_state_is_kept(
    stack: tuple[Settings, Pipeline, Any], answer: str, said: str
) -> None:
    settings, pipeline, _ = stack
    state = StateFile(settings.state_dir / "producer" / "candle-coinone-KRW-BTC.state.json")
    state.save({"last_minute": 29_000_000, "sent": {}})
    with api_server() as coinone:
        coinone.on("/public/v2/chart/KRW/BTC", Reply(json.loads((PAYLOADS / "errors" / answer).read_text())))
        outcome = produce(
            Kind.CANDLE, "coinone", settings.model_copy(update={"coinone_url": coinone.url}), pipeline, now=NOW
        )
    assert outcome.code is Code.NOTHING and said in outcome.message and "try later" in outcome.message
    assert len(coinone.requests) == 1  # not hammered within the run: the next cron run asks again
    assert state.load() == {"last_minute": 29_000_000, "sent": {}}


def test_a_search_that_fails_after_counts_keeps_the_counts_and_their_bill(
    stack: tuple[Settings, Pipeline, Any],
) -> None:
    settings, pipeline, kinesis = stack
    minute = {"start": "2026-11-28T11:59:00.000Z", "end": "2026-11-28T12:00:00.000Z", "tweet_count": 7}
    with api_server() as x:
        x.on("/2/tweets/counts/recent", Reply({"data": [minute], "meta": {"total_tweet_count": 7}}))
        x.on(
            "/2/tweets/search/recent", Reply(json.loads((PAYLOADS / "errors" / "x_unauthorized.json").read_text()), 401)
        )
        configured = settings.model_copy(update={"x_url": x.url, "x_bearer_token": SecretStr("t" * 24)})
        with pytest.raises(FatalError, match="HTTP 401, the bearer token is not valid"):
            produce(Kind.POST, "x", configured, pipeline, now=NOW)
    state = StateFile(settings.state_dir / "producer" / "post-x.state.json").load()
    assert state is not None and state["spent"]["2026-11-28"]["counts_requests"] == 1  # billed, so booked
    assert stream_count(kinesis, pipeline.stream_name) == 1  # the count it fetched went out before the failure
