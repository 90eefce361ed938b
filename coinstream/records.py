"""The record contract: one versioned envelope for everything that travels on the stream.

Every producer emits envelopes; the consumer accepts nothing else. The natural key names the
fact the record carries (one candle minute of one market, one post of one source), so two
copies of the same fact have the same key however often they travel.

The contract is a set of msgspec structs: decoding and checking a record is the consumer's hot
path, and msgspec checks types, lengths and patterns in C while it parses (pydantic with the same
checks ran ~7x slower; see the README's performance section). The few rules types cannot say —
decimal text, UTC offsets, a plausible time range — run in `__post_init__` with a fast path for
the usual shape.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import orjson
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

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
#: An author's own clock may be older (posts imported from archives keep their first date).
AUTHORED_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

#: Plain decimal text of at most 30 integer digits: valid as it stands (every exchange's usual shape).
_PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,29})(?:\.[0-9]+)?")


def _decimal_text(value: str, *, positive: bool) -> str:
    """Exact decimal text as the warehouse stores it; anything else raises ValueError (refused, never guessed)."""
    if _PLAIN_DECIMAL.fullmatch(value) and (not positive or value.strip("0.")):
        return value
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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset (times are UTC inside coinstream)")
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _field_error(name: str, why: ValueError) -> ValueError:
    """A rule on one field failed: msgspec adds where the struct is, `_reason` joins the two."""
    return ValueError(f"`{name}`: {why}")


#: Decimal text: at most 80 characters, checked as a number in `__post_init__`.
DecimalText = Annotated[str, Meta(max_length=80)]


class _Payload(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Strict: unknown fields, numbers sent as JSON numbers, and booleans sent as text are refused."""

    #: made by the simulated source, never to be mixed with real data unless asked
    simulated: bool = False


class CandlePayload(_Payload, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One closed 1-minute candle of one market (prices in the quote currency, volume in the target)."""

    market: Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[A-Z0-9]+-[A-Z0-9]+$")]
    open: DecimalText
    high: DecimalText
    low: DecimalText
    close: DecimalText
    volume: DecimalText
    quote_volume: DecimalText | None = None

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close", "volume", "quote_volume"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                checked = _decimal_text(value, positive=name != "volume" and name != "quote_volume")
            except ValueError as exc:
                raise _field_error(name, exc) from None
            if checked is not value:
                force_setattr(self, name, checked)


class PostPayload(_Payload, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One post that mentions bitcoin. The text is kept whole here; the row caps it to its column."""

    post_id: Annotated[str, Meta(min_length=1, max_length=128)]
    text: str = ""
    author_id: Annotated[str, Meta(max_length=128)] | None = None
    lang: Annotated[str, Meta(max_length=16)] | None = None
    is_retweet: bool = False
    is_reply: bool = False
    #: the post's date on its author's clock, where the network's own time is the event time (Bluesky's
    #: `createdAt`): kept beside it, never counted by; None where the source's date is the network's own
    authored_at: datetime | None = None

    def __post_init__(self) -> None:
        at = self.authored_at
        if at is None:
            return
        if at.tzinfo is None:
            raise _field_error("authored_at", ValueError("must carry a UTC offset (times are UTC inside coinstream)"))
        if not AUTHORED_EARLIEST <= at <= LATEST:
            # an author's clock may say anything; only what a TIMESTAMP column cannot hold is refused
            raise _field_error(
                "authored_at",
                ValueError(f"{at.isoformat()} is outside {AUTHORED_EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d}"),
            )
        if at.tzinfo is not UTC:
            force_setattr(self, "authored_at", at.astimezone(UTC))


class PostCountPayload(_Payload, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How many posts matched `query` in one minute, as the source counted them."""

    query: Annotated[str, Meta(min_length=1, max_length=1024)]
    count: Annotated[int, Meta(ge=0)]


Payload = CandlePayload | PostPayload | PostCountPayload


class Envelope(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """One record on the stream (schema version 1); `kind` (the tag) decides the payload's type."""

    kind: ClassVar[Kind]
    v: Literal[1] = SCHEMA_VERSION
    source: Annotated[str, Meta(min_length=1, max_length=32)]
    key: Annotated[str, Meta(min_length=1, max_length=256)]
    event_time: datetime
    fetched_at: datetime
    payload: Payload

    def __post_init__(self) -> None:
        event_time, fetched_at = self.event_time, self.fetched_at
        if (
            event_time.tzinfo is UTC
            and fetched_at.tzinfo is UTC
            and EARLIEST <= event_time <= LATEST
            and EARLIEST <= fetched_at <= LATEST
        ):
            return  # the usual shape ("Z" times in range): nothing to check one by one
        for name in ("event_time", "fetched_at"):
            value = getattr(self, name)
            try:
                checked = _utc(value)
            except ValueError as exc:
                raise _field_error(name, exc) from None
            if checked is not value:
                force_setattr(self, name, checked)

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
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse stream bytes; a record that is not a valid envelope raises SkippableError."""
        try:
            return _DECODER.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise SkippableError(f"not a coinstream v{SCHEMA_VERSION} envelope: {_explain(data, exc)}") from None

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: one market's candles share a shard and keep their order."""
        if isinstance(self.payload, CandlePayload):
            return f"candle:{self.source}:{self.payload.market}"
        return self.key

    def payload_bytes(self) -> bytes:
        """The payload as compact JSON (field order fixed by the contract): what the record says."""
        return _ENCODER.encode(self.payload)

    @property
    def fingerprint(self) -> str:
        """Identity of the fact and its content: equal for exact duplicates, whenever fetched."""
        return hashlib.blake2b(self.key.encode() + b"\x00" + self.payload_bytes(), digest_size=16).hexdigest()


class CandleEnvelope(Envelope, frozen=True, forbid_unknown_fields=True, kw_only=True, tag="candle"):
    """A candle on the stream."""

    kind: ClassVar[Kind] = Kind.CANDLE
    payload: CandlePayload


class PostEnvelope(Envelope, frozen=True, forbid_unknown_fields=True, kw_only=True, tag="post"):
    """A post on the stream."""

    kind: ClassVar[Kind] = Kind.POST
    payload: PostPayload


class PostCountEnvelope(Envelope, frozen=True, forbid_unknown_fields=True, kw_only=True, tag="post_count"):
    """A per-minute post count on the stream."""

    kind: ClassVar[Kind] = Kind.POST_COUNT
    payload: PostCountPayload


AnyEnvelope = CandleEnvelope | PostEnvelope | PostCountEnvelope
_DECODER: msgspec.json.Decoder[AnyEnvelope] = msgspec.json.Decoder(AnyEnvelope)
_ENCODER = msgspec.json.Encoder()
_AT = re.compile(r"^(?P<why>.*?)(?: - at `\$\.?(?P<where>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_OWN_RULE = re.compile(r"^`(?P<field>\w+)`: (?P<why>.*)$", re.S)


def _reason(exc: Exception, kind: object = None) -> str:
    """msgspec's message as `where: why` (`payload.market: ...`), or what a record of a kind lacks."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    why, where = match["why"], match["where"] or ""
    own = _OWN_RULE.match(why)
    if own:
        why, where = own["why"], f"{where}.{own['field']}" if where else own["field"]
    missing = _MISSING.match(why)
    if missing and where == "payload":
        return f"a {kind if isinstance(kind, str) else 'record'} record has no payload field {missing['field']!r}"
    if missing:
        return f"{missing['field']}: field required"
    return f"{where or 'record'}: {why}"


def _explain(data: bytes, exc: Exception) -> str:
    """Why stream bytes are not an envelope; a record of another schema version says so first (error path only)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _reason(exc)
    if not isinstance(body, dict):
        return f"record: a JSON {type(body).__name__}, not an object"
    if body.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        return f"v: schema version {str(body['v'])[:20]}; this consumer reads version {SCHEMA_VERSION}"
    return _reason(exc, body.get("kind"))


def candle_key(source: str, market: str, minute: datetime) -> str:
    """Natural key of a candle: exchange, market and the minute it opened (UTC)."""
    return f"{source}:{market}:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def post_key(source: str, post_id: str) -> str:
    """Natural key of a post: its source and the id the source gave it."""
    return f"{source}:{post_id}"


def count_key(source: str, minute: datetime) -> str:
    """Natural key of a per-minute count: the source and the minute it counts (UTC)."""
    return f"{source}:count:{minute.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def envelope(
    kind: Kind, source: str, key: str, event_time: datetime, fetched_at: datetime, payload: Mapping[str, Any]
) -> Envelope:
    """An envelope of `kind` checked against the contract; a value outside it raises SkippableError naming it."""
    try:
        checked: Envelope = msgspec.convert(
            {
                "kind": kind.value,
                "source": source,
                "key": key,
                "event_time": event_time,
                "fetched_at": fetched_at,
                "payload": dict(payload),
            },
            AnyEnvelope,
        )
        return checked
    except msgspec.ValidationError as exc:
        raise SkippableError(f"{source} {kind.value} {key}: {_reason(exc, kind.value)}") from None


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
    return envelope(Kind.CANDLE, source, candle_key(source, market, minute), minute, fetched_at, payload)


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
    seen_at: datetime | None = None,
) -> Envelope:
    """A post record, built the one way every source builds posts; a bad field raises SkippableError.

    `created_at` is the post's date as the source gives it. Where that is the author's own clock and the
    network says when it saw the post (`seen_at`: Bluesky's Jetstream `time_us`, search's `indexedAt`), the post
    counts in the network's minute and the author's date travels beside it as `authored_at`.
    """
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
    if seen_at is not None:
        payload["authored_at"] = created_at
    event_time = seen_at if seen_at is not None else created_at
    return envelope(Kind.POST, source, post_key(source, post_id), event_time, fetched_at, payload)


def post_count(source: str, minute: datetime, count: int, query: str, fetched_at: datetime) -> Envelope:
    """A per-minute post count as the source counted it."""
    return envelope(
        Kind.POST_COUNT, source, count_key(source, minute), minute, fetched_at, {"query": query, "count": count}
    )
