"""Bitstamp 1-minute OHLC: `GET /api/v2/ohlc/btcusd/?step=60&limit=1000&end=`.

`{"data": {"pair": "BTC/USD", "ohlc": [{"timestamp", "open", "high", "low", "close", "volume"}]}}`, every field
decimal text, oldest first; the newest is still open while its minute runs. `end` (s) pages back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource
from producer.sources.parsing import OnSkip, closed_candle, epoch_s_minute, exact_number, parse_items

SOURCE = "bitstamp"
FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}


def parse_ohlc(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The closed candles of one answer, oldest first."""
    what = f"bitstamp ohlc {market}"
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("ohlc"), list):
        said = body.get("errors") or body.get("reason") or body.get("status") if isinstance(body, dict) else None
        raise BadPayload(f"{what}: no data.ohlc in the answer{f': {str(said)[:200]}' if said else ''}")
    number = exact_number(what)

    def build(candle: Any) -> Envelope | None:
        if not isinstance(candle, dict):
            raise BadPayload(f"{what}: a candle is not an object")
        try:
            minute = epoch_s_minute(candle["timestamp"])
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            raise BadPayload(f"{what}: bad timestamp {str(candle.get('timestamp'))[:40]!r}") from None
        return closed_candle(SOURCE, market, minute, candle, FIELDS, number, fetched_at, what)

    by_minute = {e.event_time: e for e in parse_items(data["ohlc"], build, what, on_skip)}
    return [by_minute[m] for m in sorted(by_minute)]


class BitstampCandles(CandleFetcher):
    """Closed 1-minute candles of one market, paging back with `end`."""

    read = staticmethod(parse_ohlc)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """Up to 1000 candles up to `before`: whether `end` includes its own candle is not documented, so the page
        asks up to `before` itself and the pager drops the candle at `before` (already read) if it comes."""
        params: dict[str, Any] = {"step": 60, "limit": 1000}
        if before is not None:
            params["end"] = int(before.timestamp())
        return f"/api/v2/ohlc/{self.target.lower()}{self.quote.lower()}/", params, f"bitstamp ohlc {self.market}"


class Bitstamp(ExchangeSource):
    """Bitstamp's public OHLC (no key)."""

    name = "bitstamp"
    summary = "Bitstamp 1-minute OHLC (public API, no key; markets COINSTREAM_BITSTAMP_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "bitstamp": lambda body, options, now: parse_ohlc(body, options.market, now)
    }
    client = BitstampCandles
    url_setting = "bitstamp_url"
    rate_setting = "bitstamp_requests_per_second"
    page_minutes = 1000
    probe_request = ("/api/v2/ohlc/btcusd/", {"step": 60, "limit": 1})
    markets_request = ("/api/v2/trading-pairs-info/", {})

    @staticmethod
    def symbol(market: str) -> str:
        """btcusd."""
        quote, _, target = market.partition("-")
        return f"{target}{quote}".lower()

    @staticmethod
    def said_market(body: Any) -> str | None:
        """`data.pair` (BTC/USD)."""
        data = body.get("data") if isinstance(body, dict) else None
        pair_ = data.get("pair") if isinstance(data, dict) else None
        if not isinstance(pair_, str) or "/" not in pair_:
            return None
        target, _, quote = pair_.partition("/")
        return f"{quote}-{target}".upper()

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`[{"name": "BTC/USD", "url_symbol": "btcusd", ...}]`"""
        names = [str(p.get("name", "")) for p in body if isinstance(p, dict)]
        return [f"{q}-{b}" for b, _, q in (n.partition("/") for n in names) if b and q]
