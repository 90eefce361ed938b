"""The record contract: one versioned envelope for everything that travels on the stream.

Every producer emits envelopes; the consumer accepts nothing else. The natural key names the
fact the record carries (one candle minute of one market, one post of one source), so two
copies of the same fact have the same key however often they travel.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coinstream.errors import SkippableError

SCHEMA_VERSION: Literal[1] = 1


class Kind(StrEnum):
    """What a record is about; each kind has its own delivery stream and table."""

    CANDLE = "candle"
    POST = "post"
    #: posts per minute as counted by the source itself (X's counts endpoint), not posts read
    POST_COUNT = "post_count"


#: Kinds whose facts can be revised: a later copy of the same key replaces the earlier one.
REPLACEABLE = frozenset({Kind.CANDLE, Kind.POST_COUNT})


class Envelope(BaseModel):
    """One record on the stream (schema version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    kind: Kind
    source: str = Field(min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=256)
    event_time: datetime
    fetched_at: datetime
    payload: dict[str, Any]

    @field_validator("event_time", "fetched_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset (times are UTC inside coinstream)")
        return value.astimezone(UTC)

    def to_bytes(self) -> bytes:
        """Serialise as compact JSON, the bytes put on the stream."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse stream bytes; a record that is not a valid envelope raises SkippableError."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise SkippableError(f"not a coinstream v{SCHEMA_VERSION} envelope: {where}: {first['msg']}") from None

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: one market's candles share a shard and keep their order."""
        if self.kind is Kind.CANDLE:
            return f"candle:{self.source}:{self.payload.get('market', '')}"
        return self.key

    @property
    def fingerprint(self) -> str:
        """Identity of the fact and its content: equal for exact duplicates, whenever fetched."""
        body = json.dumps(self.payload, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(f"{self.key}\x00{body}".encode(), digest_size=16).hexdigest()


def candle_key(source: str, market: str, minute: datetime) -> str:
    """Natural key of a candle: exchange, market and the minute it opened (UTC)."""
    return f"{source}:{market}:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def post_key(source: str, post_id: str) -> str:
    """Natural key of a post: its source and the id the source gave it."""
    return f"{source}:{post_id}"


def count_key(source: str, minute: datetime) -> str:
    """Natural key of a per-minute count: the source and the minute it counts (UTC)."""
    return f"{source}:count:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
