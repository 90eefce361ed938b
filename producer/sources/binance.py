"""Binance spot 1-minute klines: `GET /api/v3/klines?symbol=BTCUSDT&interval=1m&endTime=&limit=1000`.

Each kline is an array: open time (ms), open, high, low, close, volume (base), close time (ms), quote volume,
trades, ... with every figure as decimal text, oldest first; the newest is still open until its close time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource, pairs_of
from producer.sources.parsing import OnSkip, array_candles, epoch_ms_minute

SOURCE = "binance"
COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7}


def symbol(market: str) -> str:
    """QUOTE-TARGET (USDT-BTC) as Binance names it (BTCUSDT)."""
    quote, _, target = market.partition("-")
    return f"{target}{quote}"


def parse_klines(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The closed candles of one answer, oldest first (an error answer is `{"code": -1121, "msg": ...}`)."""
    if isinstance(body, dict):
        raise BadPayload(f"binance klines {market}: error {body.get('code')!r}: {str(body.get('msg'))[:200]}")
    return array_candles(
        body,
        SOURCE,
        market,
        fetched_at,
        columns=COLUMNS,
        minute_of=lambda row: epoch_ms_minute(row[0]),
        what=f"binance klines {market}",
        on_skip=on_skip,
    )


class BinanceCandles(CandleFetcher):
    """Closed 1-minute klines of one market, paging back with `endTime`."""

    read = staticmethod(parse_klines)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """Up to 1000 klines opened before `before`."""
        params: dict[str, Any] = {"symbol": symbol(self.market), "interval": "1m", "limit": 1000}
        if before is not None:
            params["endTime"] = int((before - timedelta(milliseconds=1)).timestamp() * 1000)
        return "/api/v3/klines", params, f"binance klines {self.market}"


class Binance(ExchangeSource):
    """Binance's public spot klines (no key)."""

    name = "binance"
    summary = "Binance 1-minute spot klines (public API, no key; markets COINSTREAM_BINANCE_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "binance": lambda body, options, now: parse_klines(body, options.market, now)
    }
    client = BinanceCandles
    url_setting = "binance_url"
    rate_setting = "binance_requests_per_second"
    page_minutes = 1000
    probe_request = ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1})
    markets_request = ("/api/v3/exchangeInfo", {"permissions": "SPOT", "symbolStatus": "TRADING"})

    @staticmethod
    def symbol(market: str) -> str:
        """BTCUSDT."""
        return symbol(market)

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`{"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", ...}]}`"""
        return pairs_of(body["symbols"], "baseAsset", "quoteAsset")
