"""OKX spot 1-minute candles: `GET /api/v5/market/history-candles?instId=BTC-USDT&bar=1m&after=&limit=100`.

`{"code": "0", "msg": "", "data": [[ts (ms), o, h, l, c, vol (base), volCcy, volCcyQuote, confirm]]}`, every
figure decimal text, newest first; `confirm` is "0" while the candle is open. `after` pages back (older than).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource, pairs_of
from producer.sources.parsing import OnSkip, array_candles, epoch_ms_minute

SOURCE = "okx"
COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7}


def parse_candles(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """The closed (`confirm` "1") candles of one answer, oldest first."""
    what = f"okx candles {market}"
    if not isinstance(body, dict) or str(body.get("code")) != "0":
        said = body.get("msg") if isinstance(body, dict) else type(body).__name__
        raise BadPayload(f"{what}: error {body.get('code') if isinstance(body, dict) else None!r}: {str(said)[:200]}")
    return array_candles(
        body.get("data"),
        SOURCE,
        market,
        fetched_at,
        columns=COLUMNS,
        minute_of=lambda row: epoch_ms_minute(row[0]),
        what=what,
        on_skip=on_skip,
        closed=lambda row: len(row) > 8 and str(row[8]) == "1",
    )


class OkxCandles(CandleFetcher):
    """Closed 1-minute candles of one market, paging back with `after`."""

    read = staticmethod(parse_candles)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """Up to 100 candles older than `before`."""
        params: dict[str, Any] = {"instId": f"{self.target}-{self.quote}", "bar": "1m", "limit": 100}
        if before is not None:
            params["after"] = int(before.timestamp() * 1000)
        return "/api/v5/market/history-candles", params, f"okx candles {self.market}"


class Okx(ExchangeSource):
    """OKX's public spot candles (no key)."""

    name = "okx"
    summary = "OKX 1-minute spot candles (public API, no key; markets COINSTREAM_OKX_MARKETS)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "okx": lambda body, options, now: parse_candles(body, options.market, now)
    }
    client = OkxCandles
    url_setting = "okx_url"
    rate_setting = "okx_requests_per_second"
    page_minutes = 100
    probe_request = ("/api/v5/market/candles", {"instId": "BTC-USDT", "bar": "1m", "limit": 1})
    markets_request = ("/api/v5/public/instruments", {"instType": "SPOT"})

    @staticmethod
    def symbol(market: str) -> str:
        """BTC-USDT."""
        quote, _, target = market.partition("-")
        return f"{target}-{quote}"

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`{"code": "0", "data": [{"instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", ...}]}`"""
        return pairs_of(body["data"], "baseCcy", "quoteCcy")
