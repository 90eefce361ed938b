"""Coinbase Exchange 1-minute candles: `GET /products/BTC-USD/candles?granularity=60&start=&end=`.

Each candle is an array of JSON numbers: time (s), low, high, open, close, volume (base), newest first, at most
300 a request; no quote volume; the newest is still open while its minute runs. Errors: `{"message": ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource, pairs_of
from producer.sources.parsing import OnSkip, array_candles, epoch_s_minute

SOURCE = "coinbase"
COLUMNS = {"low": 1, "high": 2, "open": 3, "close": 4, "volume": 5}
PAGE = 300


def parse_candles(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The closed candles of one answer, oldest first."""
    if isinstance(body, dict):
        raise BadPayload(f"coinbase candles {market}: error {str(body.get('message'))[:200]!r}")
    return array_candles(
        body,
        SOURCE,
        market,
        fetched_at,
        columns=COLUMNS,
        minute_of=lambda row: epoch_s_minute(row[0]),
        what=f"coinbase candles {market}",
        on_skip=on_skip,
    )


class CoinbaseCandles(CandleFetcher):
    """Closed 1-minute candles of one product, paging back with `start`/`end` (300 minutes a request)."""

    read = staticmethod(parse_candles)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """The 300 minutes before `before` (the newest when None)."""
        params: dict[str, Any] = {"granularity": 60}
        if before is not None:
            end = before - timedelta(minutes=1)  # `end` is inclusive
            params["start"] = (end - timedelta(minutes=PAGE - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            params["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"/products/{self.target}-{self.quote}/candles", params, f"coinbase candles {self.market}"


class Coinbase(ExchangeSource):
    """Coinbase Exchange's public candles (no key)."""

    name = "coinbase"
    summary = "Coinbase 1-minute candles (public API, no key; markets COINSTREAM_COINBASE_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "coinbase": lambda body, options, now: parse_candles(body, options.market, now)
    }
    client = CoinbaseCandles
    url_setting = "coinbase_url"
    rate_setting = "coinbase_requests_per_second"
    page_minutes = PAGE
    probe_request = ("/products/BTC-USD/candles", {"granularity": 60})
    markets_request = ("/products", {})

    @staticmethod
    def symbol(market: str) -> str:
        """BTC-USD."""
        quote, _, target = market.partition("-")
        return f"{target}-{quote}"

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`[{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", ...}]`"""
        return pairs_of(body, "base_currency", "quote_currency")
