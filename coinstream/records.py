"""The record contract: one versioned envelope for everything that travels on the stream.

Every producer emits envelopes; the consumer accepts nothing else. The natural key names the
fact the record carries (one candle minute of one market, one post of one source), so two
copies of the same fact have the same key however often they travel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

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


#: The warehouse's number type is DECIMAL(38, 8): 30 digits before the point, 8 after.
DECIMAL_INTEGER_DIGITS = 30
DECIMAL_SCALE = 8
#: Times outside this range are refused: nothing about bitcoin happened before its genesis block.
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _decimal_text(value: str, *, positive: bool) -> str:
    """Exact decimal text as the warehouse stores it; anything else raises ValueError (refused, never guessed)."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{value[:40]!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value[:40]!r} is not a finite number")
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{value[:40]!r} must be {'above' if positive else 'at least'} zero")
    if number.adjusted() >= DECIMAL_INTEGER_DIGITS:
        raise ValueError(
            f"{value[:40]!r} has more than {DECIMAL_INTEGER_DIGITS} digits before the point (DECIMAL(38,8))"
        )
    return value.strip()


#: A price: decimal text, finite, above zero, within DECIMAL(38,8) (more than 8 decimals are rounded by the row).
Price = Annotated[str, Field(max_length=80), AfterValidator(lambda v: _decimal_text(v, positive=True))]
#: A volume: decimal text, finite, zero or more, within DECIMAL(38,8).
Volume = Annotated[str, Field(max_length=80), AfterValidator(lambda v: _decimal_text(v, positive=False))]


class _Payload(BaseModel):
    """Strict: unknown fields, numbers sent as JSON numbers, and booleans sent as text are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    #: made by the simulated source, never to be mixed with real data unless asked
    simulated: StrictBool = False


class CandlePayload(_Payload):
    """One closed 1-minute candle of one market (prices in the quote currency, volume in the target)."""

    market: str = Field(min_length=3, max_length=32, pattern=r"^[A-Z0-9]+-[A-Z0-9]+$")
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume
    quote_volume: Volume | None = None


class PostPayload(_Payload):
    """One post that mentions bitcoin. The text is kept whole here; the row caps it to its column."""

    post_id: str = Field(min_length=1, max_length=128)
    text: str = ""
    author_id: str | None = Field(default=None, max_length=128)
    lang: str | None = Field(default=None, max_length=16)
    is_retweet: StrictBool = False
    is_reply: StrictBool = False


class PostCountPayload(_Payload):
    """How many posts matched `query` in one minute, as the source counted them."""

    query: str = Field(min_length=1, max_length=1024)
    count: StrictInt = Field(ge=0)


Payload = CandlePayload | PostPayload | PostCountPayload
PAYLOADS: dict[Kind, type[CandlePayload] | type[PostPayload] | type[PostCountPayload]] = {
    Kind.CANDLE: CandlePayload,
    Kind.POST: PostPayload,
    Kind.POST_COUNT: PostCountPayload,
}


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


class Envelope(BaseModel):
    """One record on the stream (schema version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    kind: Kind
    source: str = Field(min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=256)
    event_time: datetime
    fetched_at: datetime
    payload: Payload

    @model_validator(mode="before")
    @classmethod
    def _payload_of_its_kind(cls, data: Any) -> Any:
        """Validate the payload as its kind's model, so an error names the payload's own field."""
        if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
            return data
        try:
            model = PAYLOADS[Kind(str(data.get("kind")))]
        except ValueError:
            return data  # the kind itself is wrong: its own error says so
        try:
            return {**data, "payload": model.model_validate(data["payload"])}
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "missing":
                raise ValueError(f"a {data['kind']} record has no payload field {first['loc'][0]!r}") from None
            raise ValueError(f"payload.{_first_error(exc)}") from None

    @model_validator(mode="after")
    def _matches_kind(self) -> Envelope:
        if not isinstance(self.payload, PAYLOADS[self.kind]):
            raise ValueError(f"a {self.kind.value} record must carry a {PAYLOADS[self.kind].__name__}")
        return self

    @field_validator("event_time", "fetched_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset (times are UTC inside coinstream)")
        if not EARLIEST <= value <= LATEST:
            raise ValueError(f"{value.isoformat()} is outside {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d}")
        return value.astimezone(UTC)

    @property
    def candle(self) -> CandlePayload:
        """The payload of a candle record."""
        assert isinstance(self.payload, CandlePayload), self.kind
        return self.payload

    @property
    def post(self) -> PostPayload:
        """The payload of a post record."""
        assert isinstance(self.payload, PostPayload), self.kind
        return self.payload

    @property
    def post_count(self) -> PostCountPayload:
        """The payload of a post-count record."""
        assert isinstance(self.payload, PostCountPayload), self.kind
        return self.payload

    def to_bytes(self) -> bytes:
        """Serialise as compact JSON, the bytes put on the stream."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse stream bytes; a record that is not a valid envelope raises SkippableError."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise SkippableError(f"not a coinstream v{SCHEMA_VERSION} envelope: {_first_error(exc)}") from None

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: one market's candles share a shard and keep their order."""
        if self.kind is Kind.CANDLE:
            return f"candle:{self.source}:{self.candle.market}"
        return self.key

    @property
    def fingerprint(self) -> str:
        """Identity of the fact and its content: equal for exact duplicates, whenever fetched."""
        body = orjson.dumps(self.payload.model_dump(), option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(self.key.encode() + b"\x00" + body, digest_size=16).hexdigest()


def candle_key(source: str, market: str, minute: datetime) -> str:
    """Natural key of a candle: exchange, market and the minute it opened (UTC)."""
    return f"{source}:{market}:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def post_key(source: str, post_id: str) -> str:
    """Natural key of a post: its source and the id the source gave it."""
    return f"{source}:{post_id}"


def count_key(source: str, minute: datetime) -> str:
    """Natural key of a per-minute count: the source and the minute it counts (UTC)."""
    return f"{source}:count:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def _build(
    kind: Kind, source: str, key: str, event_time: datetime, fetched_at: datetime, payload: dict[str, Any]
) -> Envelope:
    try:
        return Envelope.model_validate(
            {
                "kind": kind,
                "source": source,
                "key": key,
                "event_time": event_time,
                "fetched_at": fetched_at,
                "payload": payload,
            }
        )
    except ValidationError as exc:
        raise SkippableError(f"{source} {kind.value} {key}: {_first_error(exc)}") from None


def candle(
    source: str,
    market: str,
    minute: datetime,
    fetched_at: datetime,
    figures: Mapping[str, str | None],
    *,
    simulated: bool = False,
) -> Envelope:
    """A candle record: `figures` are open, high, low, close, volume and quote_volume as exact decimal text.

    Every source builds candles here; a value outside the contract raises SkippableError naming it.
    """
    payload = {"market": market, **figures, **({"simulated": True} if simulated else {})}
    return _build(Kind.CANDLE, source, candle_key(source, market, minute), minute, fetched_at, payload)


def post(
    source: str,
    post_id: str,
    created_at: datetime,
    fetched_at: datetime,
    *,
    text: str,
    author_id: str | None = None,
    lang: str | None = None,
    is_retweet: bool = False,
    is_reply: bool = False,
    simulated: bool = False,
) -> Envelope:
    """A post record, built the one way every source builds posts; a bad field raises SkippableError."""
    payload: dict[str, Any] = {
        "post_id": post_id,
        "text": text,
        "author_id": author_id,
        "lang": lang,
        "is_retweet": is_retweet,
        "is_reply": is_reply,
    }
    if simulated:
        payload["simulated"] = True
    return _build(Kind.POST, source, post_key(source, post_id), created_at, fetched_at, payload)


def post_count(source: str, minute: datetime, count: int, query: str, fetched_at: datetime) -> Envelope:
    """A per-minute post count as the source counted it."""
    return _build(
        Kind.POST_COUNT, source, count_key(source, minute), minute, fetched_at, {"query": query, "count": count}
    )
