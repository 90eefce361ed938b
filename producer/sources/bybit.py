"""Bybit spot 1-minute klines: `GET /v5/market/kline?category=spot&symbol=BTCUSDT&interval=1&end=&limit=1000`.

`{"retCode": 0, "retMsg": "OK", "result": {"list": [[start (ms), open, high, low, close, volume, turnover]]}}`,
every figure decimal text, newest first; the newest is still open while its minute runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from coinstream.errors import BadPayload, TryLater
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource, pairs_of, split_symbol
from producer.sources.parsing import OnSkip, array_candles, epoch_ms_minute

SOURCE = "bybit"
COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 6}
#: retCode 10006: too many visits (rate limited), 10016: server busy
TRY_LATER = {10006, 10016}


def parse_klines(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The closed klines of one answer, oldest first."""
    what = f"bybit klines {market}"
    if not isinstance(body, dict):
        raise BadPayload(f"{what}: expected a JSON object, got {type(body).__name__}")
    if body.get("retCode") != 0:
        said = f"{what}: retCode {body.get('retCode')!r}: {str(body.get('retMsg'))[:200]}"
        raise TryLater(f"{said}; try later") if body.get("retCode") in TRY_LATER else BadPayload(said)
    result = body.get("result")
    result = result if isinstance(result, dict) else {}
    return array_candles(
        result.get("list"),
        SOURCE,
        market,
        fetched_at,
        columns=COLUMNS,
        minute_of=lambda row: epoch_ms_minute(row[0]),
        what=what,
        on_skip=on_skip,
    )


class BybitCandles(CandleFetcher):
    """Closed 1-minute klines of one market, paging back with `end`."""

    read = staticmethod(parse_klines)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """Up to 1000 klines that started before `before`."""
        symbol = f"{self.target}{self.quote}"
        params: dict[str, Any] = {"category": "spot", "symbol": symbol, "interval": "1", "limit": 1000}
        if before is not None:
            params["end"] = int((before - timedelta(milliseconds=1)).timestamp() * 1000)
        return "/v5/market/kline", params, f"bybit klines {self.market}"


class Bybit(ExchangeSource):
    """Bybit's public spot klines (no key)."""

    name = "bybit"
    summary = "Bybit 1-minute spot klines (public API, no key; markets COINSTREAM_BYBIT_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "bybit": lambda body, options, now: parse_klines(body, options.market, now)
    }
    client = BybitCandles
    url_setting = "bybit_url"
    rate_setting = "bybit_requests_per_second"
    page_minutes = 1000
    probe_request = ("/v5/market/kline", {"category": "spot", "symbol": "BTCUSDT", "interval": "1", "limit": 1})
    markets_request = ("/v5/market/instruments-info", {"category": "spot"})

    @staticmethod
    def symbol(market: str) -> str:
        """BTCUSDT."""
        quote, _, target = market.partition("-")
        return f"{target}{quote}"

    @staticmethod
    def said_market(body: Any) -> str | None:
        """`result.symbol` (BTCUSDT), split at a known quote currency."""
        result = body.get("result") if isinstance(body, dict) else None
        said = result.get("symbol") if isinstance(result, dict) else None
        return split_symbol(said) if isinstance(said, str) else None

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`{"retCode": 0, "result": {"list": [{"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT"}]}}`"""
        return pairs_of(body["result"]["list"], "baseCoin", "quoteCoin")
