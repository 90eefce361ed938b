"""Kraken 1-minute OHLC: `GET /0/public/OHLC?pair=XBTUSD&interval=1`.

`{"error": [], "result": {"XXBTZUSD": [[time (s), open, high, low, close, vwap, volume, count]], "last": ...}}`,
figures as decimal text, oldest first. Kraken serves the last 720 intervals only and cannot page back past
them; the last entry is the frame still open.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from coinstream.errors import BadPayload, TryLater
from coinstream.records import Envelope
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, CandleHistory, ExchangeSource, split_symbol
from producer.sources.parsing import OnSkip, array_candles, epoch_s_minute

SOURCE = "kraken"
COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 6}
#: What Kraken keeps of 1-minute OHLC.
KEPT_MINUTES = 720


def pair(market: str) -> str:
    """QUOTE-TARGET (USD-BTC) as Kraken names the pair (XBTUSD)."""
    quote, _, target = market.partition("-")
    return f"{'XBT' if target == 'BTC' else target}{quote}"


def parse_ohlc(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The committed frames of one answer, oldest first (the last one is still open and never kept)."""
    what = f"kraken ohlc {market}"
    if not isinstance(body, dict):
        raise BadPayload(f"{what}: expected a JSON object, got {type(body).__name__}")
    errors = [str(e) for e in body.get("error") or []]
    if errors:
        said = f"{what}: {', '.join(errors)[:200]}"
        # Kraken's own words for "not now" (EGeneral:Too many requests is what real answers carry besides EAPI's)
        busy = ("EAPI:Rate limit", "EService:Unavailable", "EService:Busy", "EGeneral:Too many requests")
        if any(e.startswith(busy) for e in errors):
            raise TryLater(f"{said}; try later")
        raise BadPayload(said)
    result = body.get("result")
    result = result if isinstance(result, dict) else {}
    rows = next((v for k, v in result.items() if k != "last" and isinstance(v, list)), None)
    if rows is None:
        raise BadPayload(f"{what}: the answer holds no pair's candles")
    frames = rows[:-1]  # Kraken: "the last entry in the OHLC array is for the current, not-yet-committed frame"
    return array_candles(
        frames,
        SOURCE,
        market,
        fetched_at,
        columns=COLUMNS,
        minute_of=lambda row: epoch_s_minute(row[0]),
        what=what,
        on_skip=on_skip,
    )


class KrakenCandles(CandleFetcher):
    """Closed 1-minute frames of one pair: the last 720 minutes, one request (Kraken pages no further back)."""

    read = staticmethod(parse_ohlc)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """The last 720 minutes, whatever `before` is."""
        return "/0/public/OHLC", {"pair": pair(self.market), "interval": 1}, f"kraken ohlc {self.market}"

    pages_back = False

    def served_from(self, body: Any) -> datetime | None:
        """The 720 minutes served end with the open frame (the answer's last row), whatever traded in them."""
        try:
            rows = next(v for k, v in body["result"].items() if k != "last" and isinstance(v, list))
            return epoch_s_minute(rows[-1][0]) - timedelta(minutes=KEPT_MINUTES - 1)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration, AttributeError, OverflowError, OSError):
            return None


class KrakenHistory(CandleHistory):
    """Kraken's history reaches back 720 minutes, no further."""

    def earliest(self, now: datetime) -> datetime:
        """The oldest minute Kraken still serves."""
        return minute_start(epoch_minute(now - timedelta(minutes=KEPT_MINUTES)) + 1)


class Kraken(ExchangeSource):
    """Kraken's public OHLC (no key)."""

    name = "kraken"
    summary = "Kraken 1-minute OHLC (public API, no key; the last 720 minutes; markets COINSTREAM_KRAKEN_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "kraken": lambda body, options, now: parse_ohlc(body, options.market, now)
    }
    client = KrakenCandles
    history = KrakenHistory
    url_setting = "kraken_url"
    rate_setting = "kraken_requests_per_second"
    page_minutes = KEPT_MINUTES
    probe_request = ("/0/public/OHLC", {"pair": "XBTUSD", "interval": 1})
    markets_request = ("/0/public/AssetPairs", {})

    @staticmethod
    def symbol(market: str) -> str:
        """XBTUSD."""
        return pair(market)

    @staticmethod
    def said_market(body: Any) -> str | None:
        """The result's pair key (XXBTZUSD, XBTUSDT): Kraken's XBT is BTC, its X and Z prefixes mark the old codes."""
        result = body.get("result") if isinstance(body, dict) else None
        key = next((k for k in result if k != "last"), None) if isinstance(result, dict) else None
        if not isinstance(key, str):
            return None
        if len(key) == 8 and key[0] == "X" and key[4] in "XZ":
            key = key[1:4] + key[5:]
        return split_symbol(key.replace("XBT", "BTC", 1) if key.startswith("XBT") else key)

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`{"error": [], "result": {"XXBTZUSD": {"wsname": "XBT/USD", ...}}}`: Kraken's XBT is BTC."""
        names = [str(p.get("wsname", "")) for p in body["result"].values() if isinstance(p, dict)]
        return [f"{q}-{'BTC' if b == 'XBT' else b}" for b, _, q in (n.partition("/") for n in names) if b and q]
