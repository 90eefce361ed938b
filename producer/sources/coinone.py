"""Coinone public API v2 1-minute chart: parse its answer into candle envelopes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from coinstream.errors import BadPayload, CoinstreamError, TryLater
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource, pairs_of
from producer.sources.parsing import OnSkip, closed_candle, exact_number, parse_items

SOURCE = "coinone"
#: Candles a chart page holds at most (`size`; Coinone answers 200 when none is asked).
PAGE = 500
_PRICE_FIELDS = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "target_volume",
    "quote_volume": "quote_volume",
}


#: Coinone sends numbers as strings: kept exact, never through a float.
_NUMBER = exact_number("coinone chart")

#: Codes that close the API for a while: 4 "Blocked user access" (too many requests), 405 server maintenance.
TRY_LATER_CODES = frozenset({"4", "405"})
#: How long Coinone blocks a client that asked more than its 300 requests a minute (errorCode 4).
BLOCKED_SECONDS = 60.0


def answer_error(body: dict[str, Any], what: str) -> CoinstreamError:
    """The error of an answer that is not `result: success`. Coinone sends errors with HTTP 200 in three spellings
    (`error_code`/`error_msg`, `errorCode`/`errorMsg`, and `errorCode` with `status: "maintenance"`): each is
    named by its code and message; maintenance and rate limiting are TryLater, anything else BadPayload."""
    code = body.get("error_code", body.get("errorCode"))
    message = body.get("error_msg", body.get("errorMsg"))
    status = body.get("status")
    said = f"result={str(body.get('result'))[:40]!r} error code {str(code)[:20]!r}" + (
        f" ({str(message)[:200]})" if message else ""
    )
    if status == "maintenance" or str(code) in TRY_LATER_CODES:
        why = "under maintenance" if status == "maintenance" or str(code) == "405" else "rate-limiting this client"
        wait = BLOCKED_SECONDS if str(code) == "4" and status != "maintenance" else None
        return TryLater(f"{what}: Coinone is {why}: {said}; try later (the next scheduled run asks again)", wait)
    return BadPayload(f"{what}: {said}")


def parse_chart(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Candle envelopes for the closed minutes of one chart answer, oldest first.

    The newest candle is still open while its minute runs: only minutes that ended at or before
    `fetched_at` are facts and are emitted. The event time is the candle's own timestamp.
    """
    if not isinstance(body, dict):
        raise BadPayload(f"coinone chart: expected a JSON object, got {type(body).__name__}")
    if body.get("result") != "success":
        raise answer_error(body, f"coinone chart {market}")
    chart = body.get("chart")
    if not isinstance(chart, list):
        raise BadPayload("coinone chart: 'chart' is missing or not a list")

    def build(candle: Any) -> Envelope | None:
        if not isinstance(candle, dict):
            raise BadPayload("coinone chart: a candle is not an object")
        try:
            minute = datetime.fromtimestamp(int(candle["timestamp"]) / 1000, tz=UTC)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            raise BadPayload(f"coinone chart: bad timestamp {str(candle.get('timestamp'))[:40]!r}") from None
        return closed_candle(SOURCE, market, minute, candle, _PRICE_FIELDS, _NUMBER, fetched_at, "coinone chart")

    by_minute = {e.event_time: e for e in parse_items(chart, build, "coinone chart", on_skip)}
    return [by_minute[m] for m in sorted(by_minute)]


class CoinoneCandles(CandleFetcher):
    """Closed 1-minute candles of one market since a given minute, paging back over downtime."""

    read = staticmethod(parse_chart)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """The chart ending just before `before` (Coinone pages back with `timestamp`, ms)."""
        params: dict[str, Any] = {"interval": "1m", "size": PAGE}
        if before is not None:
            params["timestamp"] = int(before.timestamp() * 1000) - 1
        return f"/public/v2/chart/{self.quote}/{self.target}", params, f"coinone chart {self.market}"

    def is_last_page(self, body: Any) -> bool:
        """Coinone says `is_last` when nothing older exists."""
        return isinstance(body, dict) and body.get("is_last") is True


class Coinone(ExchangeSource):
    """Coinone's public chart API (no key)."""

    name = "coinone"
    summary = "Coinone 1-minute candles (public API, no key)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "coinone": lambda body, options, now: parse_chart(body, options.market, now)
    }

    client = CoinoneCandles
    url_setting = "coinone_url"
    rate_setting = "coinone_requests_per_second"
    page_minutes = PAGE
    probe_request = ("/public/v2/chart/KRW/BTC", {"interval": "1m"})
    markets_request = ("/public/v2/markets/KRW", {})

    @staticmethod
    def symbol(market: str) -> str:
        """KRW_BTC (its chart path is /KRW/BTC)."""
        return market.replace("-", "_")

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`{"result": "success", "markets": [{"quote_currency": "KRW", "target_currency": "BTC", ...}]}`"""
        return pairs_of(body["markets"], "target_currency", "quote_currency")
