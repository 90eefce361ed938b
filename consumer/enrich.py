"""Enrich: one envelope in, one warehouse row out (the fields the jsonpaths files map to columns)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import orjson

from coinstream.records import DECIMAL_SCALE, CandlePayload, Envelope, PostCountPayload
from coinstream.text import matched_terms
from coinstream.timeutil import kst, ts

_SCALE = Decimal(1).scaleb(-DECIMAL_SCALE)
_WIDE = Context(prec=40)
#: Column widths of raw_posts (bytes, as Redshift counts VARCHAR): a row never holds more.
TEXT_BYTES = 65535
HASHTAGS_BYTES = 4096
CASHTAGS_BYTES = 1024
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9})\b")


#: Timestamp text of recent instants (fetch times, batch times): a record shares them with its neighbours,
#: and formatting one costs more than the rest of a candle's row.
stamp = functools.lru_cache(maxsize=20_000)(ts)


@functools.lru_cache(maxsize=20_000)
def _minute_text(year: int, month: int, day: int, hour: int, minute_: int) -> tuple[str, str]:
    at = datetime(year, month, day, hour, minute_, tzinfo=UTC)
    return ts(at), kst(at)


def _minute_columns(value: datetime) -> tuple[str, str]:
    """The UTC minute `value` falls in as (UTC text, KST text) (`value` is UTC: the contract made it so)."""
    return _minute_text(value.year, value.month, value.day, value.hour, value.minute)  # 5x cheaper than replace()


def enrich(envelope: Envelope, processed_at: datetime) -> dict[str, Any]:
    """The warehouse row of one envelope (its payload was checked against the contract when it was parsed).

    One dict literal per kind, no intermediate dicts: this is the consumer's hot path."""
    p = envelope.payload
    minute_utc, minute_kst = _minute_columns(envelope.event_time)
    if isinstance(p, CandlePayload):
        return {
            "record_key": envelope.key,
            "simulated": p.simulated,
            "fetched_at": stamp(envelope.fetched_at),
            "processed_at": stamp(processed_at),
            "exchange": envelope.source,
            "market": p.market,
            "minute_utc": minute_utc,
            "minute_kst": minute_kst,
            "open": decimal_column(p.open),
            "high": decimal_column(p.high),
            "low": decimal_column(p.low),
            "close": decimal_column(p.close),
            "volume": decimal_column(p.volume),
            "quote_volume": decimal_column(p.quote_volume) if p.quote_volume is not None else None,
        }
    if isinstance(p, PostCountPayload):
        return {
            "record_key": envelope.key,
            "simulated": p.simulated,
            "fetched_at": stamp(envelope.fetched_at),
            "processed_at": stamp(processed_at),
            "source": envelope.source,
            "query": p.query,
            "minute_utc": minute_utc,
            "minute_kst": minute_kst,
            "post_count": p.count,
        }
    created = envelope.event_time
    if p.authored_at is None:
        # the minute's text with the seconds written in: a third of the cost of formatting each instant
        created_at = f"{minute_utc[:17]}{created.second:02d}.{created.microsecond:06d}"
        created_at_kst = f"{minute_kst[:17]}{created.second:02d}"
    else:  # the author's own clock (Bluesky): kept as the post's date; the network's minute is minute_utc
        created_at, created_at_kst = ts(p.authored_at), kst(p.authored_at)
    text, cut_text = fit_text(p.text, TEXT_BYTES)
    hashtags, cut_tags = _tags(text, "#", _HASHTAG, str.lower, HASHTAGS_BYTES)
    cashtags, cut_cash = _tags(text, "$", _CASHTAG, str.upper, CASHTAGS_BYTES)
    return {
        "record_key": envelope.key,
        "simulated": p.simulated,
        "fetched_at": stamp(envelope.fetched_at),
        "processed_at": stamp(processed_at),
        "source": envelope.source,
        "post_id": p.post_id,
        "created_at": created_at,
        "created_at_kst": created_at_kst,
        "minute_utc": minute_utc,
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


def _tags(
    text: str, sign: str, pattern: re.Pattern[str], case: Callable[[str], str], max_bytes: int
) -> tuple[list[str], bool]:
    """The distinct tags of `text`, sorted, that fit their column (no sign in the text: no regex run)."""
    if sign not in text:
        return [], False
    return fit_list(sorted(set(map(case, pattern.findall(text)))), max_bytes)


def fit_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` of UTF-8 at a character boundary, and whether it was cut."""
    if 4 * len(text) <= max_bytes:  # no character takes more than 4 bytes: fits without encoding it
        return text, False
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode(errors="ignore"), True


def fit_list(items: list[str], max_bytes: int) -> tuple[list[str], bool]:
    """The first items whose JSON array (as COPY stores it in a VARCHAR) fits `max_bytes`, and whether any were left."""
    if not items or 2 + 6 * sum(map(len, items)) + 3 * len(items) <= max_bytes:
        return items, False  # fits even if every character took the longest JSON escape: the usual case
    kept: list[str] = []
    size = 2  # []
    for item in items:
        size += len(orjson.dumps(item)) + (1 if kept else 0)
        if size > max_bytes:
            return kept, True
        kept.append(item)
    return kept, False


#: Plain decimal text with at most the column's places: stored exactly as it is written (every exchange's shape).
_COLUMN_DECIMAL = re.compile(rf"(?:0|[1-9][0-9]{{0,29}})(?:\.[0-9]{{1,{DECIMAL_SCALE}}})?")


def decimal_column(text: str) -> str:
    """Decimal text as DECIMAL(38, 8) stores it: plain notation, at most 8 places (rounded half-even, as
    Redshift rounds a value with more places than the column's scale), so the stored number equals the row."""
    if _COLUMN_DECIMAL.fullmatch(text):
        return text  # what the Decimal below would write back: 3x cheaper on a candle's six numbers
    number = Decimal(text)
    if number.as_tuple().exponent < -DECIMAL_SCALE:  # type: ignore[operator]
        # the default context keeps 28 digits; DECIMAL(38, 8) holds 38 (a 21-digit price with 8 places failed)
        number = number.quantize(_SCALE, rounding=ROUND_HALF_EVEN, context=_WIDE)
    return format(number, "f")
