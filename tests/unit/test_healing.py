"""Healing (`coinstream run`): which minutes are read again, and why the rest are gaps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from coinstream import live_table, timeutil
from coinstream.config import Settings
from coinstream.errors import FatalError
from coinstream.timeutil import SIMULATED_CLOCK, simulated_clock
from operate import healing
from operate.supervisor import choose_sources, rotate
from producer.backfill import Checkpoints, last_closed_minute
from warehouse.coverage import Coverage, missing

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
M = timedelta(minutes=1)


def naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def test_missing_is_the_head_the_gaps_and_the_tail_inside_the_window() -> None:
    start, end = datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert missing(None, start, end) == [(start, end)]
    held = Coverage(
        "candles", "upbit KRW-BTC", naive(start + 10 * M), naive(start + 50 * M), 38, [(naive(start + 20 * M), 3)]
    )
    assert missing(held, start, end) == [
        (start, start + 10 * M),
        (start + 20 * M, start + 23 * M),
        (start + 51 * M, end),
    ]
    assert missing(held, start + 30 * M, start + 40 * M) == []  # a window inside what is held
    assert missing(held, end, start) == []


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_a_heal_reads_only_what_the_warehouse_lacks_and_no_history_read(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    end = last_closed_minute(NOW, settings.candle_grace_seconds)
    start = end - timedelta(hours=3)
    settled = end - healing.SETTLE
    # Upbit holds the whole window but a quiet minute (read already by a history) and a hole nobody read
    quiet, hole = start + 30 * M, start + 90 * M
    upbit = Coverage(
        "candles", "upbit KRW-BTC", naive(start), naive(end - M), 177, [(naive(quiet), 1), (naive(hole), 2)]
    )
    Checkpoints(settings.state_dir / "backfill").advance("upbit KRW-BTC", quiet, quiet + M, None)
    found, left_out = healing.plan(settings, [upbit], ["upbit", "coinone", "x"], timedelta(hours=3), NOW)
    gaps = {s.name: s.gaps for s in found.series}
    assert gaps["upbit KRW-BTC"] == [(hole, hole + 2 * M)]
    # Coinone has nothing in the warehouse: its whole window, up to the minutes still on their way
    assert gaps["coinone KRW-BTC"] == [(start, settled)]
    # only the chosen sources; X without a token is left out with its reason
    assert set(gaps) == {"upbit KRW-BTC", "coinone KRW-BTC"}
    assert "x" in left_out and "token" in left_out["x"].lower()


def test_coverage_says_why_a_gap_is_there(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    quiet = Coverage("candles", "upbit KRW-BTC", naive(start), naive(start + 60 * M), 60, [(naive(start + 5 * M), 1)])
    unread = Coverage(
        "candles", "coinone KRW-BTC", naive(start), naive(start + 60 * M), 60, [(naive(start + 7 * M), 1)]
    )
    kraken = Coverage("candles", "kraken USD-BTC", naive(start), naive(start + 60 * M), 60, [(naive(start + 9 * M), 1)])
    sample = Coverage("posts", "x", naive(start), naive(start + 60 * M), 2, [(naive(start + M), 59)])
    Checkpoints(settings.state_dir / "backfill").advance("upbit KRW-BTC", start, start + 60 * M, None)
    healing.Reasons(settings.state_dir / "backfill").save({"kraken USD-BTC": "Kraken serves the 720 newest minutes"})
    why = healing.explain(settings, [quiet, unread, kraken, sample])
    assert "no candle there" in why[("candles", "upbit KRW-BTC")]
    assert "not read back yet" in why[("candles", "coinone KRW-BTC")]
    assert why[("candles", "kraken USD-BTC")] == "Kraken serves the 720 newest minutes"
    assert "sample" in why[("posts", "x")]


def test_run_chooses_the_free_sources_and_x_only_with_its_token(tmp_path: Path) -> None:
    free = choose_sources(_settings(tmp_path), None)
    assert "x" not in free and {"upbit", "coinone", "kraken", "mastodon", "bluesky"} <= set(free)
    with_token = Settings(state_dir=tmp_path, x_bearer_token="t")  # type: ignore[arg-type]
    assert "x" in choose_sources(with_token, None)
    assert choose_sources(_settings(tmp_path), ["upbit", "upbit"]) == ["upbit"]
    with pytest.raises(FatalError, match="not a live source: use one of"):
        choose_sources(_settings(tmp_path), ["upbitt"])
    with pytest.raises(FatalError, match="COINSTREAM_X_BEARER_TOKEN"):
        choose_sources(_settings(tmp_path), ["x"])


def test_a_log_past_its_size_is_set_aside_once(tmp_path: Path) -> None:
    log = tmp_path / "kcl-warehouse.log"
    log.write_bytes(b"x" * 11)
    rotate(log, limit=10)
    assert not log.exists() and (tmp_path / "kcl-warehouse.log.1").stat().st_size == 11
    log.write_bytes(b"y" * 5)
    rotate(log, limit=10)
    assert log.exists()
    rotate(tmp_path / "absent.log")


def test_expired_live_items_go_as_dynamodbs_time_to_live_would() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        live_table.create(dynamodb, "live")
        for pk, expires in (("seen#a", 100), ("seen#b", 300), ("minute#2026-12-01T10:00Z", 50)):
            dynamodb.put_item(TableName="live", Item={"pk": {"S": pk}, "expires_at": {"N": str(expires)}})
        assert live_table.expire(dynamodb, "live", now=200) == 2
        left = [i["pk"]["S"] for i in dynamodb.scan(TableName="live")["Items"]]
        assert left == ["seen#b"]


def test_a_simulated_clock_is_one_clock_for_every_process_and_a_bad_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    anchor = time.time() - 10  # set by another process, ten real seconds ago
    monkeypatch.setenv(SIMULATED_CLOCK, simulated_clock(start, 600, anchor))
    assert timedelta(seconds=5990) <= timeutil.now() - start <= timedelta(seconds=6600)  # 10 s x 600, and this test
    monkeypatch.setenv(SIMULATED_CLOCK, "2026-11-01,fast,0")
    with pytest.raises(FatalError, match=r"^COINSTREAM_SIMULATED_CLOCK='2026-11-01,fast,0': write START,SPEED,"):
        timeutil.now()
    monkeypatch.delenv(SIMULATED_CLOCK)
    assert abs(timeutil.now() - datetime.now(UTC)) < timedelta(seconds=1)  # unset: the wall clock
