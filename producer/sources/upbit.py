"""Upbit 1-minute candles: closed minutes since a given one, paging back with `to` over downtime.

Minutes without a trade have no candle at all on Upbit; nothing is invented for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from coinstream.errors import BadPayload
from coinstream.records import Envelope
from producer.sources.base import RecordedParser
from producer.sources.candles import CandleFetcher, ExchangeSource
from producer.sources.parsing import OnSkip, closed_candle, parse_items

SOURCE = "upbit"
_FIELDS = {
    "open": "opening_price",
    "high": "high_price",
    "low": "low_price",
    "close": "trade_price",
    "volume": "candle_acc_trade_volume",
    "quote_volume": "candle_acc_trade_price",
}


def _number(value: Any, field: str) -> str:
    # The API sends JSON numbers; ApiClient decodes them as Decimal, so their digits survive.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadPayload(f"upbit candles: {field}={value!r} is not a number")
    return format(Decimal(value), "f")


def utc_minute(text: str) -> datetime:
    """`candle_date_time_utc` as a UTC time. Upbit sends it without a zone (it is UTC by its name); a time that
    does carry an offset is converted, never relabelled."""
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def parse_candles(body: Any, market: str, fetched_at: datetime, on_skip: OnSkip | None = None) -> list[Envelope]:
    """Envelopes for the closed minutes of one answer, oldest first."""
    if isinstance(body, dict) and "error" in body:
        error = body["error"] if isinstance(body["error"], dict) else {"message": body["error"]}
        raise BadPayload(f"upbit candles: error {error.get('name')!r}: {str(error.get('message'))[:200]!r}")
    if not isinstance(body, list):
        raise BadPayload(f"upbit candles: expected a JSON list, got {type(body).__name__}")

    def build(candle: Any) -> Envelope | None:
        if not isinstance(candle, dict):
            raise BadPayload("upbit candles: a candle is not an object")
        try:
            minute = utc_minute(str(candle["candle_date_time_utc"]))
        except (KeyError, ValueError):
            raise BadPayload(
                f"upbit candles: bad candle_date_time_utc {str(candle.get('candle_date_time_utc'))[:40]!r}"
            ) from None
        return closed_candle(SOURCE, market, minute, candle, _FIELDS, _number, fetched_at, "upbit candles")

    out = {e.event_time: e for e in parse_items(body, build, "upbit candles", on_skip)}
    return [out[m] for m in sorted(out)]


def remaining_req_wait(header: str | None) -> float | None:
    """Seconds to hold back by Upbit's `Remaining-Req` header (None where it leaves requests this second)."""
    fields = dict(part.strip().partition("=")[::2] for part in (header or "").split(";"))
    left = fields.get("sec", "")
    return 1.0 if left.isdigit() and int(left) == 0 else None


class UpbitCandles(CandleFetcher):
    """Closed 1-minute candles of one market since a given minute."""

    read = staticmethod(parse_candles)

    def page(self, before: datetime | None) -> tuple[str, dict[str, Any], str]:
        """Up to 200 candles ending before `before` (Upbit pages back with `to`)."""
        params: dict[str, Any] = {"market": self.market, "count": 200}
        if before is not None:
            params["to"] = before.strftime("%Y-%m-%dT%H:%M:%SZ")
        return "/v1/candles/minutes/1", params, f"upbit candles {self.market}"


class Upbit(ExchangeSource):
    """Upbit's public candle API (no key); minutes without trades have no candle."""

    name = "upbit"
    summary = "Upbit 1-minute candles (public API, no key)"
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "upbit": lambda body, options, now: parse_candles(body, options.market, now)
    }

    client = UpbitCandles
    url_setting = "upbit_url"
    rate_setting = "upbit_requests_per_second"

    @staticmethod
    def spent(headers: Any) -> float | None:
        """`Remaining-Req: group=candles; min=1800; sec=0`: no request left this second, so wait for the next."""
        return remaining_req_wait(headers.get("remaining-req"))

    probe_request = ("/v1/candles/minutes/1", {"market": "KRW-BTC", "count": 1})
    markets_request = ("/v1/market/all", {})

    @staticmethod
    def symbol(market: str) -> str:
        """KRW-BTC: already QUOTE-TARGET."""
        return market

    @staticmethod
    def said_market(body: Any) -> str | None:
        """Each candle's `market` (KRW-BTC)."""
        said = {c.get("market") for c in body if isinstance(c, dict)} if isinstance(body, list) else set()
        return str(next(iter(said))) if len(said) == 1 else None

    @staticmethod
    def listed(body: Any) -> list[str]:
        """`[{"market": "KRW-BTC", "korean_name": ..., "english_name": "Bitcoin"}]`: already QUOTE-TARGET."""
        return [str(m["market"]) for m in body if isinstance(m, dict) and "market" in m]
