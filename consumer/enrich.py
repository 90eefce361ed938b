"""Enrich: one envelope in, one warehouse row out (the fields the jsonpaths files map to columns)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind
from coinstream.text import matched_terms
from coinstream.timeutil import kst, minute, ts

_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9})\b")


def enrich(envelope: Envelope, processed_at: datetime) -> dict[str, Any]:
    """The warehouse row of one envelope; a payload that lacks a field raises SkippableError."""
    p = envelope.payload
    common = {
        "record_key": envelope.key,
        "simulated": bool(p.get("simulated", False)),
        "fetched_at": ts(envelope.fetched_at),
        "processed_at": ts(processed_at),
    }
    try:
        if envelope.kind is Kind.CANDLE:
            at = minute(envelope.event_time)
            return {
                **common,
                "exchange": envelope.source,
                "market": str(p["market"]),
                "minute_utc": ts(at),
                "minute_kst": kst(at),
                "open": str(p["open"]),
                "high": str(p["high"]),
                "low": str(p["low"]),
                "close": str(p["close"]),
                "volume": str(p["volume"]),
                "quote_volume": str(p["quote_volume"]),
            }
        if envelope.kind is Kind.POST_COUNT:
            at = minute(envelope.event_time)
            return {
                **common,
                "source": envelope.source,
                "query": str(p["query"]),
                "minute_utc": ts(at),
                "minute_kst": kst(at),
                "post_count": int(p["count"]),
            }
        text = str(p.get("text") or "")
        return {
            **common,
            "source": envelope.source,
            "post_id": str(p["post_id"]),
            "created_at": ts(envelope.event_time),
            "created_at_kst": kst(envelope.event_time),
            "minute_utc": ts(minute(envelope.event_time)),
            "author_id": p.get("author_id"),
            "lang": p.get("lang") or None,
            "text": text,
            "hashtags": sorted({h.lower() for h in _HASHTAG.findall(text)}),
            "cashtags": sorted({c.upper() for c in _CASHTAG.findall(text)}),
            "matched_terms": matched_terms(text),
            "is_retweet": bool(p.get("is_retweet", False)),
            "is_reply": bool(p.get("is_reply", False)),
        }
    except KeyError as exc:
        raise SkippableError(f"{envelope.kind} record {envelope.key} has no payload field {exc.args[0]!r}") from None
