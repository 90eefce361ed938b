"""The pure core of the consumer: parse, drop exact duplicates, shape rows for the warehouse."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from coinstream.errors import SkippableError
from coinstream.records import Envelope, Kind


def ts(value: datetime) -> str:
    """A UTC timestamp as Redshift COPY's TIMEFORMAT 'auto' reads it."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Deduper:
    """Remembers the fingerprints of the last `capacity` records; memory never grows past that."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0

    def is_new(self, envelope: Envelope) -> bool:
        """True the first time a fact with this content is seen, False for an exact duplicate."""
        fp = envelope.fingerprint
        if fp in self._seen:
            self._seen.move_to_end(fp)
            self.dropped += 1
            return False
        self._seen[fp] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


def to_row(envelope: Envelope, processed_at: datetime) -> dict[str, Any]:
    """The warehouse row of one envelope: the fields its jsonpaths file maps to table columns."""
    p = envelope.payload
    common = {
        "record_key": envelope.key,
        "simulated": bool(p.get("simulated", False)),
        "fetched_at": ts(envelope.fetched_at),
        "processed_at": ts(processed_at),
    }
    try:
        if envelope.kind is Kind.CANDLE:
            return {
                **common,
                "exchange": envelope.source,
                "market": str(p["market"]),
                "minute_utc": ts(envelope.event_time.replace(second=0, microsecond=0)),
                "open": str(p["open"]),
                "high": str(p["high"]),
                "low": str(p["low"]),
                "close": str(p["close"]),
                "volume": str(p["volume"]),
                "quote_volume": str(p["quote_volume"]),
            }
        return {
            **common,
            "source": envelope.source,
            "post_id": str(p["post_id"]),
            "created_at": ts(envelope.event_time),
            "minute_utc": ts(envelope.event_time.replace(second=0, microsecond=0)),
            "author_id": p.get("author_id"),
            "lang": p.get("lang"),
            "text": str(p.get("text", "")),
        }
    except KeyError as exc:
        raise SkippableError(f"{envelope.kind} record {envelope.key} has no payload field {exc.args[0]!r}") from None
