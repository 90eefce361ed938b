"""Enrich: one envelope in, one warehouse row out (the fields the jsonpaths files map to columns)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from coinstream.records import DECIMAL_SCALE, CandlePayload, Envelope, PostCountPayload
from coinstream.text import matched_terms
from coinstream.timeutil import kst, minute, ts

_SCALE = Decimal(1).scaleb(-DECIMAL_SCALE)
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9})\b")


def enrich(envelope: Envelope, processed_at: datetime) -> dict[str, Any]:
    """The warehouse row of one envelope (its payload was checked against the contract when it was parsed)."""
    p = envelope.payload
    common = {
        "record_key": envelope.key,
        "simulated": p.simulated,
        "fetched_at": ts(envelope.fetched_at),
        "processed_at": ts(processed_at),
    }
    if isinstance(p, CandlePayload):
        at = minute(envelope.event_time)
        return {
            **common,
            "exchange": envelope.source,
            "market": p.market,
            "minute_utc": ts(at),
            "minute_kst": kst(at),
            "open": decimal_column(p.open),
            "high": decimal_column(p.high),
            "low": decimal_column(p.low),
            "close": decimal_column(p.close),
            "volume": decimal_column(p.volume),
            "quote_volume": decimal_column(p.quote_volume) if p.quote_volume is not None else None,
        }
    if isinstance(p, PostCountPayload):
        at = minute(envelope.event_time)
        return {
            **common,
            "source": envelope.source,
            "query": p.query,
            "minute_utc": ts(at),
            "minute_kst": kst(at),
            "post_count": p.count,
        }
    text = p.text
    return {
        **common,
        "source": envelope.source,
        "post_id": p.post_id,
        "created_at": ts(envelope.event_time),
        "created_at_kst": kst(envelope.event_time),
        "minute_utc": ts(minute(envelope.event_time)),
        "author_id": p.author_id,
        "lang": p.lang or None,
        "text": text,
        "hashtags": sorted({h.lower() for h in _HASHTAG.findall(text)}),
        "cashtags": sorted({c.upper() for c in _CASHTAG.findall(text)}),
        "matched_terms": matched_terms(text),
        "is_retweet": p.is_retweet,
        "is_reply": p.is_reply,
    }


def decimal_column(text: str) -> str:
    """Decimal text as DECIMAL(38, 8) stores it: plain notation, at most 8 places (rounded half-even, as
    Redshift rounds a value with more places than the column's scale), so the stored number equals the row."""
    number = Decimal(text)
    if number.as_tuple().exponent < -DECIMAL_SCALE:  # type: ignore[operator]
        number = number.quantize(_SCALE, rounding=ROUND_HALF_EVEN)
    return format(number, "f")
