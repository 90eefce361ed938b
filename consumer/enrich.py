"""Enrich: one envelope in, one warehouse row out (the fields the jsonpaths files map to columns)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import orjson

from coinstream.records import DECIMAL_SCALE, CandlePayload, Envelope, PostCountPayload
from coinstream.text import matched_terms
from coinstream.timeutil import kst, minute, ts

_SCALE = Decimal(1).scaleb(-DECIMAL_SCALE)
_WIDE = Context(prec=40)
#: Column widths of raw_posts (bytes, as Redshift counts VARCHAR): a row never holds more.
TEXT_BYTES = 65535
HASHTAGS_BYTES = 4096
CASHTAGS_BYTES = 1024
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
    text, cut_text = fit_text(p.text, TEXT_BYTES)
    hashtags, cut_tags = fit_list(sorted({h.lower() for h in _HASHTAG.findall(text)}), HASHTAGS_BYTES)
    cashtags, cut_cash = fit_list(sorted({c.upper() for c in _CASHTAG.findall(text)}), CASHTAGS_BYTES)
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
        "hashtags": hashtags,
        "cashtags": cashtags,
        "matched_terms": matched_terms(text),
        "is_retweet": p.is_retweet,
        "is_reply": p.is_reply,
        "truncated": cut_text or cut_tags or cut_cash,
    }


def fit_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` of UTF-8 at a character boundary, and whether it was cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode(errors="ignore"), True


def fit_list(items: list[str], max_bytes: int) -> tuple[list[str], bool]:
    """The first items whose JSON array (as COPY stores it in a VARCHAR) fits `max_bytes`, and whether any were left."""
    if 2 + sum(6 * len(item) + 3 for item in items) <= max_bytes:
        return items, False  # fits even if every character took the longest JSON escape: the usual case
    kept: list[str] = []
    size = 2  # []
    for item in items:
        size += len(orjson.dumps(item)) + (1 if kept else 0)
        if size > max_bytes:
            return kept, True
        kept.append(item)
    return kept, False


def decimal_column(text: str) -> str:
    """Decimal text as DECIMAL(38, 8) stores it: plain notation, at most 8 places (rounded half-even, as
    Redshift rounds a value with more places than the column's scale), so the stored number equals the row."""
    number = Decimal(text)
    if number.as_tuple().exponent < -DECIMAL_SCALE:  # type: ignore[operator]
        # the default context keeps 28 digits; DECIMAL(38, 8) holds 38 (a 21-digit price with 8 places failed)
        number = number.quantize(_SCALE, rounding=ROUND_HALF_EVEN, context=_WIDE)
    return format(number, "f")
