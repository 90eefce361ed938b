"""The world's largest spot markets: Binance, Coinbase, OKX, Bybit, Kraken and Bitstamp, from recordings shaped
as each API documents its candles (tests/payloads/<exchange>/), through the same client the producer runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coinstream.errors import TryLater
from coinstream.http import ApiClient
from coinstream.records import Envelope
from producer.sources.binance import BinanceCandles, parse_klines
from producer.sources.bitstamp import BitstampCandles
from producer.sources.bitstamp import parse_ohlc as bitstamp_ohlc
from producer.sources.bybit import BybitCandles
from producer.sources.bybit import parse_klines as bybit_klines
from producer.sources.candles import CandleFetcher
from producer.sources.coinbase import CoinbaseCandles
from producer.sources.coinbase import parse_candles as coinbase_candles
from producer.sources.kraken import parse_ohlc as kraken_ohlc
from producer.sources.okx import OkxCandles
from producer.sources.okx import parse_candles as okx_candles
from tests.conftest import PAYLOADS
from tests.http_server import Reply, api_server

#: 41 s into the recordings' newest minute (12:30), which is still open
NOW = datetime(2026, 11, 27, 12, 30, 41, tzinfo=UTC)
OPEN = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)

RECORDINGS = {
    "binance": ("binance/klines_BTCUSDT_1m.json", lambda b: parse_klines(b, "USDT-BTC", NOW), 30),
    "coinbase": ("coinbase/candles_BTC-USD_60.json", lambda b: coinbase_candles(b, "USD-BTC", NOW), 29),
    "okx": ("okx/history-candles_BTC-USDT_1m.json", lambda b: okx_candles(b, "USDT-BTC", NOW), 30),
    "bybit": ("bybit/kline_spot_BTCUSDT_1.json", lambda b: bybit_klines(b, "USDT-BTC", NOW), 30),
    "kraken": ("kraken/ohlc_XBTUSD_1.json", lambda b: kraken_ohlc(b, "USD-BTC", NOW), 30),
    "bitstamp": ("bitstamp/ohlc_btcusd_60.json", lambda b: bitstamp_ohlc(b, "USD-BTC", NOW), 30),
}


def recorded(path: str) -> Any:
    from decimal import Decimal

    return json.loads((PAYLOADS / path).read_text(), parse_float=Decimal)  # as ApiClient reads answers


def figures_of(exchange: str, body: Any, minute: datetime) -> tuple[str, str, str]:
    """(open, close, volume) of one minute as the recording writes them (the exchange's own digits)."""
    ms, s = int(minute.timestamp() * 1000), int(minute.timestamp())
    if exchange == "binance":
        row = next(r for r in body if r[0] == ms)
        return row[1], row[4], row[5]
    if exchange == "coinbase":
        row = next(r for r in body if r[0] == s)
        return str(row[3]), str(row[4]), str(row[5])
    if exchange == "okx":
        row = next(r for r in body["data"] if r[0] == str(ms))
        return row[1], row[4], row[5]
    if exchange == "bybit":
        row = next(r for r in body["result"]["list"] if r[0] == str(ms))
        return row[1], row[4], row[5]
    if exchange == "kraken":
        row = next(r for r in body["result"]["XXBTZUSD"] if r[0] == s)
        return row[1], row[4], row[6]
    row = next(r for r in body["data"]["ohlc"] if r["timestamp"] == str(s))
    return row["open"], row["close"], row["volume"]


@pytest.mark.parametrize("exchange", sorted(RECORDINGS))
def test_closed_candles_keep_the_exchanges_digits_and_the_open_one_is_never_stored(exchange: str) -> None:
    path, parse, closed = RECORDINGS[exchange]
    body = recorded(path)
    candles: list[Envelope] = parse(body)
    assert len(candles) == closed and OPEN not in {c.event_time for c in candles}
    assert [c.event_time for c in candles] == sorted(c.event_time for c in candles)  # oldest first, whatever came
    raw = json.loads((PAYLOADS / path).read_text())  # the wire text's digits, not a float's
    for candle in candles[::7]:
        o, c, v = figures_of(exchange, raw, candle.event_time)
        assert (candle.candle.open, candle.candle.close, candle.candle.volume) == (str(o), str(c), str(v))
        assert candle.key == f"{exchange}:{candle.candle.market}:{candle.event_time:%Y-%m-%dT%H:%MZ}"


def test_coinbase_a_minute_nobody_traded_has_no_candle_and_bitstamp_says_volume_0() -> None:
    coinbase = coinbase_candles(recorded(RECORDINGS["coinbase"][0]), "USD-BTC", NOW)
    assert datetime(2026, 11, 27, 12, 13, tzinfo=UTC) not in {c.event_time for c in coinbase}
    bitstamp = bitstamp_ohlc(recorded(RECORDINGS["bitstamp"][0]), "USD-BTC", NOW)
    quiet = next(c for c in bitstamp if c.event_time.minute == 21)
    assert quiet.candle.volume == "0.00000000"


def shifted(exchange: str, body: Any, hours: int) -> Any:
    """The same recording, every time `hours` earlier: an older page."""
    text = json.dumps(body)
    data = json.loads(text)
    ms, s = hours * 3_600_000, hours * 3600
    if exchange == "binance":
        return [[r[0] - ms, *r[1:6], r[6] - ms, *r[7:]] for r in data]
    if exchange == "coinbase":
        return [[r[0] - s, *r[1:]] for r in data]
    if exchange == "okx":
        data["data"] = [[str(int(r[0]) - ms), *r[1:8], "1"] for r in data["data"]]
        return data
    if exchange == "bybit":
        data["result"]["list"] = [[str(int(r[0]) - ms), *r[1:]] for r in data["result"]["list"]]
        return data
    data["data"]["ohlc"] = [{**r, "timestamp": str(int(r["timestamp"]) - s)} for r in data["data"]["ohlc"]]
    return data


PAGING: dict[str, tuple[type[CandleFetcher], str, str, str]] = {
    "binance": (BinanceCandles, "USDT-BTC", "/api/v3/klines", "endTime"),
    "coinbase": (CoinbaseCandles, "USD-BTC", "/products/BTC-USD/candles", "end"),
    "okx": (OkxCandles, "USDT-BTC", "/api/v5/market/history-candles", "after"),
    "bybit": (BybitCandles, "USDT-BTC", "/v5/market/kline", "end"),
    "bitstamp": (BitstampCandles, "USD-BTC", "/api/v2/ohlc/btcusd/", "end"),
}


@pytest.mark.parametrize("exchange", sorted(PAGING))
def test_paging_back_across_a_gap_reads_every_page_once(exchange: str) -> None:
    """The newest page, then the page before its oldest candle (an hour older: a gap of half an hour between)."""
    client, market, path, cursor = PAGING[exchange]
    body = json.loads((PAYLOADS / RECORDINGS[exchange][0]).read_text())
    with api_server() as server:
        server.on(
            path,
            Reply(body),
            Reply(shifted(exchange, body, 1)),
            Reply([] if exchange in ("binance", "coinbase") else {}),
        )
        since = datetime(2026, 11, 27, 11, 10, tzinfo=UTC)
        candles = client(market, ApiClient(server.url, max_attempts=1), max_pages=2).fetch(since, NOW)
    minutes = [c.event_time for c in candles]
    assert len(minutes) == len(set(minutes)) and minutes == sorted(minutes)
    assert minutes[0] > since and minutes[-1] == datetime(2026, 11, 27, 12, 29, tzinfo=UTC)
    assert datetime(2026, 11, 27, 11, 29, tzinfo=UTC) in minutes  # from the older page
    assert not [
        m for m in minutes if datetime(2026, 11, 27, 11, 31, tzinfo=UTC) < m < datetime(2026, 11, 27, 12, tzinfo=UTC)
    ]
    first, second = server.requests[0][1], server.requests[1][1]
    assert cursor not in first and cursor in second  # the newest page, then the one before its oldest candle


def test_rate_limit_answers_say_try_later_or_are_waited_out() -> None:
    with pytest.raises(TryLater, match="retCode 10006: Too many visits!; try later"):
        bybit_klines({"retCode": 10006, "retMsg": "Too many visits!", "result": {}}, "USDT-BTC", NOW)
    with pytest.raises(TryLater, match="EAPI:Rate limit exceeded; try later"):
        kraken_ohlc({"error": ["EAPI:Rate limit exceeded"]}, "USD-BTC", NOW)
    waits: list[float] = []
    body = json.loads((PAYLOADS / RECORDINGS["binance"][0]).read_text())
    with api_server() as server:
        server.on(
            "/api/v3/klines", Reply({"code": -1003, "msg": "Too many requests"}, 429, {"Retry-After": "3"}), Reply(body)
        )
        candles = BinanceCandles("USDT-BTC", ApiClient(server.url, sleep=waits.append)).fetch(None, NOW)
    assert len(candles) == 30 and waits == [3.0]  # Binance's Retry-After honoured, then answered


def test_an_open_candle_is_not_stored_in_a_live_run_against_the_recording(tmp_path: Path) -> None:
    """The producer's own path: closed minutes plus the grace, the open one left for the next run."""
    from coinstream.config import Settings
    from coinstream.records import Kind
    from producer.sources.base import RunOptions
    from producer.sources.okx import Okx

    body = json.loads((PAYLOADS / RECORDINGS["okx"][0]).read_text())
    with api_server() as server:
        server.on("/api/v5/market/history-candles", Reply(body))
        source = Okx.build(
            Settings(okx_url=server.url, state_dir=tmp_path),
            RunOptions(Kind.CANDLE, market="USDT-BTC"),
        )
        sent, cursor = source.fetch(None, NOW + timedelta(seconds=0))
    assert len(sent) == 30 and cursor is not None and max(c.event_time for c in sent).minute == 29


def test_the_world_series_is_the_sum_of_its_markets_in_the_views_the_analysis_and_the_dashboard(tmp_path: Path) -> None:
    from coinstream import REPO_ROOT
    from coinstream.records import Kind
    from producer.sources.offline import replay
    from tests.warehouse_data import warehouse_of
    from warehouse.dashboard.data import chart_data
    from warehouse.reading import warehouse_file
    from warehouse.series import all_series

    candles = replay(PAYLOADS, Kind.CANDLE, now=NOW)  # 8 exchanges, 12:00..12:29 (Coinbase: no 12:13, Upbit: gaps)
    warehouse_of(tmp_path / "w.duckdb", candles)
    db = warehouse_file(tmp_path / "w.duckdb", REPO_ROOT / "redshift")()
    assert db is not None
    world = next(s for s in all_series(db) if s.exchange == "all")
    assert (world.market, world.minutes) == ("BTC", 30)
    by_minute: dict[datetime, float] = {}
    markets: dict[datetime, int] = {}
    for c in candles:
        by_minute[c.event_time] = by_minute.get(c.event_time, 0.0) + float(c.candle.volume)
        markets[c.event_time] = markets.get(c.event_time, 0) + 1
    rows = db.execute(
        "SELECT minute_utc, volume::DOUBLE, reporting, series_count FROM minute_metrics WHERE exchange = 'all' "
        "ORDER BY minute_utc"
    ).fetchall()
    assert [(m.replace(tzinfo=UTC), round(v, 6), r) for m, v, r, _ in rows] == [
        (m, round(by_minute[m], 6), markets[m]) for m in sorted(by_minute)
    ]
    assert {n for *_, n in rows} == {8}  # every market's span covers the window
    page = chart_data(db, "all", 60, exchange="all", market="BTC")
    assert page["selected"] == {"exchange": "all", "market": "BTC"}
    assert [round(v, 4) for v in page["volume"]] == [round(by_minute[m], 4) for m in sorted(by_minute)]
    assert set(page["open"]) == {None}  # no price for a sum of markets quoted in different currencies
    db.close()


#: How each exchange answers a candle request for a market it does not list (its documented error answer).
UNLISTED = {
    "binance": Reply({"code": -1121, "msg": "Invalid symbol."}, 400),
    "coinbase": Reply({"message": "NotFound"}, 404),
    "okx": Reply({"code": "51001", "msg": "Instrument ID does not exist", "data": []}),
    "bybit": Reply({"retCode": 10001, "retMsg": "Not supported symbols", "result": {}, "retExtInfo": {}, "time": 1}),
    "kraken": Reply({"error": ["EQuery:Unknown asset pair"]}),
    "bitstamp": Reply({"status": "error", "reason": "Currency pair not found", "code": "API0006"}, 404),
    "upbit": Reply({"error": {"name": "404", "message": "Code not found"}}, 404),
    "coinone": Reply({"result": "error", "error_code": "107", "error_msg": "Parameter error"}),
}
#: The BTC markets each recorded market list (tests/payloads/markets/) holds, as the error names them.
LISTED = {
    "binance": "EUR-BTC, FDUSD-BTC, USDC-BTC, USDT-BTC",
    "coinbase": "EUR-BTC, USD-BTC, USDT-BTC",
    "okx": "USDC-BTC, USDT-BTC",
    "bybit": "USDC-BTC, USDT-BTC",
    "kraken": "EUR-BTC, USD-BTC, USDT-BTC",
    "bitstamp": "EUR-BTC, USD-BTC",
    "upbit": "KRW-BTC, USDT-BTC",
    "coinone": "KRW-BTC",
}


@pytest.mark.parametrize("exchange", sorted(UNLISTED))
def test_a_market_the_exchange_does_not_list_is_one_line_naming_those_it_does(exchange: str, tmp_path: Path) -> None:
    from coinstream.config import Settings
    from coinstream.errors import CoinstreamError, FatalError
    from coinstream.records import Kind
    from producer.sources import registry
    from producer.sources.base import RunOptions
    from producer.sources.candles import ExchangeSource

    kind = registry.SOURCES[exchange]
    assert issubclass(kind, ExchangeSource)
    listing = json.loads((PAYLOADS / "markets" / f"{exchange}.json").read_text())

    def source(market: str, url: str) -> ExchangeSource:
        settings = Settings(**{kind.url_setting: url}, state_dir=tmp_path)
        return kind.build(settings, RunOptions(Kind.CANDLE, market=market))

    with api_server() as server:
        path, _, _ = source("USDX-BTC", server.url).candles.page(None)
        server.on(path, UNLISTED[exchange])
        server.on(kind.markets_request[0], Reply(listing))
        for _ in range(2):  # the second run reads the list this one kept: asked once a week, never every run
            with pytest.raises(FatalError) as said:
                source("USDX-BTC", server.url).fetch(None, NOW)
            assert str(said.value) == (
                f"{exchange} does not list the market USDX-BTC (its list of 2026-11-27); it lists {LISTED[exchange]}: "
                f"set COINSTREAM_{exchange.upper()}_MARKETS to one of them"
            )
        asked = [p for p, _ in server.requests if p == kind.markets_request[0]]
        assert len(asked) == 1 and kind.markets_request[1].items() <= server.requests[1][1].items()
        # a market it does list, refused for another reason: that reason, as the exchange gave it
        listed = LISTED[exchange].split(", ")[0]
        listed_path, _, _ = source(listed, server.url).candles.page(None)
        server.on(listed_path, UNLISTED[exchange])
        with pytest.raises(CoinstreamError) as other:
            source(listed, server.url).fetch(None, NOW)
        assert "does not list" not in str(other.value)


def test_an_empty_answer_covers_only_its_own_span_and_the_pager_goes_on_behind_it() -> None:
    """Coinbase answers [] for a range nobody traded in (issue 38): that proves nothing about older minutes. The
    history steps back one page span at a time past the quiet stretch, finds the older candles, and records as read
    only the spans that were asked, down to the window's start."""
    from producer.sources.candles import CandleHistory
    from producer.sources.coinbase import PAGE

    body = json.loads((PAYLOADS / RECORDINGS["coinbase"][0]).read_text())  # 12:00..12:29
    start, end = datetime(2026, 11, 27, 0, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    with api_server() as server:
        # the newest page, then five quiet hours, then trades again six hours earlier, then nothing
        server.on("/products/BTC-USD/candles", Reply(body), Reply([]), Reply(shifted("coinbase", body, 6)), Reply([]))
        history = CandleHistory("coinbase", CoinbaseCandles("USD-BTC", ApiClient(server.url, max_attempts=1)), PAGE)
        pages = list(history.pages(start, end, None, NOW))
    found = {c.event_time for p in pages for c in p.records}
    assert datetime(2026, 11, 27, 6, 29, tzinfo=UTC) in found  # behind the quiet stretch: read, not assumed away
    reached = [p.reached for p in pages]
    assert reached == sorted(reached, reverse=True) and reached[-1] == start and pages[-1].token is None
    # each answer covered at most the span it was asked for: no stretch is recorded as read unasked
    assert all(newer - older <= timedelta(minutes=PAGE) for newer, older in zip([end, *reached], reached, strict=False))
