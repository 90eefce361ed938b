"""Coinone public API v2 1-minute chart: parse its answer into candle envelopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind, candle_key

SOURCE = "coinone"
_PRICE_FIELDS = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "target_volume",
    "quote_volume": "quote_volume",
}


class BadPayload(SkippableError):
    """An API answer that is not what the API documents; the run logs it and fetches nothing from it."""


def _decimal(value: Any, field: str) -> str:
    # Coinone sends numbers as strings; keep them exact (never through float).
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadPayload(f"coinone chart: {field}={value!r} is not a number") from None
    if not number.is_finite():
        raise BadPayload(f"coinone chart: {field}={value!r} is not a finite number")
    return format(number, "f")  # plain notation: COPY into DECIMAL takes no exponent


def parse_chart(body: Any, market: str, fetched_at: datetime) -> list[Envelope]:
    """Candle envelopes for the closed minutes of one chart answer, oldest first.

    The newest candle is still open while its minute runs: only minutes that ended at or before
    `fetched_at` are facts and are emitted. The event time is the candle's own timestamp.
    """
    if not isinstance(body, dict):
        raise BadPayload(f"coinone chart: expected a JSON object, got {type(body).__name__}")
    if body.get("result") != "success":
        raise BadPayload(f"coinone chart: result={body.get('result')!r} error_code={body.get('error_code')!r}")
    chart = body.get("chart")
    if not isinstance(chart, list):
        raise BadPayload("coinone chart: 'chart' is missing or not a list")
    by_minute: dict[datetime, Envelope] = {}
    for candle in chart:
        if not isinstance(candle, dict):
            raise BadPayload("coinone chart: a candle is not an object")
        try:
            minute = datetime.fromtimestamp(int(candle["timestamp"]) / 1000, tz=UTC)
        except (KeyError, TypeError, ValueError):
            raise BadPayload(f"coinone chart: bad timestamp {candle.get('timestamp')!r}") from None
        if minute + timedelta(minutes=1) > fetched_at:
            continue  # still open
        payload: dict[str, Any] = {"market": market}
        for name, field in _PRICE_FIELDS.items():
            if field not in candle:
                raise BadPayload(f"coinone chart: candle at {minute:%Y-%m-%dT%H:%MZ} has no {field!r}")
            payload[name] = _decimal(candle[field], field)
        by_minute[minute] = Envelope(
            kind=Kind.CANDLE,
            source=SOURCE,
            key=candle_key(SOURCE, market, minute),
            event_time=minute,
            fetched_at=fetched_at,
            payload=payload,
        )
    return [by_minute[m] for m in sorted(by_minute)]
