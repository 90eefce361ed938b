"""Offline sources: recorded answers shaped exactly like the Coinone and X APIs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from coinstream.errors import FatalError
from coinstream.records import Kind
from producer.sources.coinone import BadPayload, parse_chart
from producer.sources.offline import replay
from producer.sources.parsing import Skips
from producer.sources.x_answers import parse_recent_search
from tests.conftest import PAYLOADS, payload
from tests.recordings import recording

CHART = "coinone/chart_KRW_BTC_1m.json"


def test_coinone_candles_come_out_sorted_exact_and_keyed_by_their_own_minute() -> None:
    body = payload(CHART)
    fetched = datetime(2026, 11, 28, tzinfo=UTC)
    candles = parse_chart(body, "KRW-BTC", fetched)
    assert len(candles) == 30
    times = [c.event_time for c in candles]
    assert times == sorted(times) and times[0] == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    first_raw = next(c for c in body["chart"] if c["timestamp"] == int(times[0].timestamp() * 1000))
    assert Decimal(candles[0].payload.volume) == Decimal(first_raw["target_volume"])
    assert candles[0].payload.close == first_raw["close"]
    assert candles[0].key == "coinone:KRW-BTC:2026-11-27T12:00Z"
    assert all(c.fetched_at == fetched for c in candles)


def test_coinone_newest_open_minute_is_not_emitted() -> None:
    body = payload(CHART)
    # fetched 20 s into 12:29: the 12:29 candle is still open
    candles = parse_chart(body, "KRW-BTC", datetime(2026, 11, 27, 12, 29, 20, tzinfo=UTC))
    assert len(candles) == 29 and candles[-1].event_time == datetime(2026, 11, 27, 12, 28, tzinfo=UTC)


def test_coinone_keeps_big_numbers_exact() -> None:
    body = {
        "result": "success",
        "error_code": "0",
        "chart": [
            {
                "timestamp": 1764244800000,
                "open": "131500000.123456789",
                "high": "1",
                "low": "1",
                "close": "1",
                "target_volume": "0.00000001",
                "quote_volume": "98765432109876543.21",
            }
        ],
    }
    (candle,) = parse_chart(body, "KRW-BTC", datetime(2026, 12, 1, tzinfo=UTC))
    assert candle.payload.open == "131500000.123456789"
    assert candle.payload.quote_volume == "98765432109876543.21"
    assert candle.payload.volume == "0.00000001"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"result": "error", "error_code": "107"}, "error code '107'"),
        ({"result": "success", "chart": "nope"}, "not a list"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_coinone_bad_answers_say_what_is_wrong(body: object, match: str) -> None:
    with pytest.raises(BadPayload, match=match):
        parse_chart(body, "KRW-BTC", datetime(2026, 12, 1, tzinfo=UTC))


GOOD_CANDLE = {
    "timestamp": 1764244860000,
    "open": "1",
    "high": "1",
    "low": "1",
    "close": "1",
    "target_volume": "1",
    "quote_volume": "1",
}


@pytest.mark.parametrize(
    ("candle", "match"),
    [
        ({"timestamp": "soon"}, "bad timestamp"),
        ({**GOOD_CANDLE, "timestamp": 1764244800000, "open": "abc"}, "not a number"),
        ({"timestamp": 1764244800000, "open": "1"}, "has no 'high'"),
        ({**GOOD_CANDLE, "timestamp": 1764244800000, "target_volume": "-2"}, "at least zero"),
        ("a string", "not an object"),
    ],
)
def test_a_malformed_coinone_candle_is_skipped_with_its_reason_and_the_rest_kept(candle: object, match: str) -> None:
    skips = Skips()
    body = {"result": "success", "chart": [candle, GOOD_CANDLE]}
    (kept,) = parse_chart(body, "KRW-BTC", datetime(2026, 12, 1, tzinfo=UTC), skips)
    assert kept.event_time == datetime(2025, 11, 27, 12, 1, tzinfo=UTC)
    assert len(skips.reasons) == 1 and re.search(match, skips.reasons[0])


def test_x_recent_search_pages_become_posts() -> None:
    fetched = datetime(2026, 11, 28, tzinfo=UTC)
    page = payload("x/recent_search_page1.json")
    posts = parse_recent_search(page, fetched)
    assert len(posts) == len(page["data"]) == 22
    first = page["data"][0]
    assert posts[0].key == f"x:{first['id']}" and posts[0].payload.text == first["text"]
    assert posts[0].event_time == datetime.fromisoformat(first["created_at"])
    assert parse_recent_search({"meta": {"result_count": 0}}, fetched) == []


def test_x_error_answer_is_refused() -> None:
    with pytest.raises(BadPayload, match="Unauthorized"):
        parse_recent_search({"errors": [{"title": "Unauthorized"}]}, datetime.now(UTC))


def test_offline_replay_reads_every_recorded_page(tmp_path: Path) -> None:
    posts = replay(recording(tmp_path, "x"), Kind.POST)
    assert len(posts) == 42 and len({p.key for p in posts}) == 40  # the pages overlap by two posts


def test_malformed_payload_file_is_one_fatal_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "coinone").mkdir()
    (tmp_path / "coinone" / "chart.json").write_text('{"result": "success", "chart": [')
    with pytest.raises(FatalError, match=r"chart.json: not valid JSON"):
        replay(tmp_path, Kind.CANDLE)
    (tmp_path / "coinone" / "chart.json").write_text(json.dumps({"result": "error", "error_code": "107"}))
    with pytest.raises(FatalError, match=r"chart.json: coinone chart KRW-BTC: result='error'"):
        replay(tmp_path, Kind.CANDLE)
    (tmp_path / "coinone" / "chart.json").write_text(json.dumps({"result": "error", "error_code": "4"}))
    with pytest.raises(FatalError, match=r"chart.json: coinone chart KRW-BTC: Coinone is rate-limiting"):
        replay(tmp_path, Kind.CANDLE)
    with pytest.raises(FatalError, match="no recorded payload files"):
        replay(tmp_path, Kind.POST)


def test_offline_replays_every_registered_source_in_a_recording() -> None:
    def by_source(kind: Kind) -> dict[tuple[str, str], int]:
        counted: dict[tuple[str, str], int] = {}
        for e in replay(PAYLOADS, kind):
            counted[(e.source, e.kind.value)] = counted.get((e.source, e.kind.value), 0) + 1
        return counted

    # Upbit's numbers are JSON numbers: replayed as exact decimals, as the live client reads them
    assert by_source(Kind.CANDLE) == {
        ("coinone", "candle"): 30,
        ("upbit", "candle"): 28,
        ("binance", "candle"): 31,  # replayed now: the recordings' newest minutes have long closed
        ("coinbase", "candle"): 30,
        ("okx", "candle"): 30,  # its newest says confirm "0": open, whenever it is replayed
        ("bybit", "candle"): 31,
        ("kraken", "candle"): 30,  # Kraken's last frame is the open one, whenever it is replayed
        ("bitstamp", "candle"): 31,
    }
    assert by_source(Kind.POST) == {
        ("x", "post"): 42,
        ("x", "post_count"): 6,
        ("mastodon", "post"): 6,
        ("bluesky", "post"): 4,
    }


def test_the_replayer_labels_each_recording_with_the_market_it_is_of(tmp_path: Path) -> None:
    """Each recorded answer was labelled with one fixed market per exchange (issue 38): Kraken's XBTUSDT answer and
    a Coinbase ETH-USD answer both landed as USD-BTC. The market comes from the body where it names one (Kraken's
    result key, Bitstamp's pair, Bybit's symbol, Upbit's candles), else from the file's name in the exchange's own
    spelling; a body that names another market than its file's name is refused in one line."""
    kraken = json.loads((PAYLOADS / "kraken" / "ohlc_XBTUSD_1.json").read_text())
    kraken["result"] = {"XBTUSDT": next(v for k, v in kraken["result"].items() if k != "last"), "last": 0}
    (tmp_path / "kraken").mkdir()
    (tmp_path / "kraken" / "ohlc.json").write_text(json.dumps(kraken))
    (tmp_path / "coinbase").mkdir()
    (tmp_path / "coinbase" / "candles_ETH-USD_60.json").write_text(
        (PAYLOADS / "coinbase" / "candles_BTC-USD_60.json").read_text()
    )
    markets = {(e.source, e.candle.market) for e in replay(tmp_path, Kind.CANDLE)}
    assert markets == {("kraken", "USDT-BTC"), ("coinbase", "USD-ETH")}
    for e in replay(PAYLOADS, Kind.CANDLE):  # the project's own recordings: each as its name and body say
        assert e.candle.market == {
            "coinone": "KRW-BTC",
            "upbit": "KRW-BTC",
            "kraken": "USD-BTC",
            "coinbase": "USD-BTC",
            "bitstamp": "USD-BTC",
        }.get(e.source, "USDT-BTC")
    (tmp_path / "kraken" / "ohlc.json").rename(tmp_path / "kraken" / "ohlc_XBTUSD_1.json")
    with pytest.raises(FatalError) as said:
        replay(tmp_path, Kind.CANDLE)
    assert str(said.value) == (
        f"{tmp_path / 'kraken' / 'ohlc_XBTUSD_1.json'}: the answer is for USDT-BTC but its name says USD-BTC (XBTUSD): "
        "rename the file or re-record it"
    )
