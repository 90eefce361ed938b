"""What every source shares: the error for an answer that is not what its API documents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from coinstream.errors import BadPayload
from coinstream.records import Envelope, Kind, candle_key


def closed_candle(
    source: str,
    market: str,
    minute: datetime,
    raw: dict[str, Any],
    fields: dict[str, str],
    number: Callable[[Any, str], str],
    fetched_at: datetime,
    what: str,
) -> Envelope | None:
    """The envelope of one exchange candle, or None while its minute is still open (only closed minutes are facts).

    `fields` maps our payload names to the API's field names; `number` turns an API value into exact
    decimal text (or raises BadPayload).
    """
    if minute + timedelta(minutes=1) > fetched_at:
        return None
    payload: dict[str, Any] = {"market": market}
    for name, field in fields.items():
        if field not in raw:
            raise BadPayload(f"{what}: candle at {minute:%Y-%m-%dT%H:%MZ} has no {field!r}")
        payload[name] = number(raw[field], field)
    return Envelope(
        kind=Kind.CANDLE,
        source=source,
        key=candle_key(source, market, minute),
        event_time=minute,
        fetched_at=fetched_at,
        payload=payload,
    )
