"""How a source reads an API's answer: items skipped one at a time with their reason, numbers kept exact,
candles closed only after their minute ended."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from coinstream import records
from coinstream.errors import BadPayload, CoinstreamError, SkippableError
from coinstream.records import Envelope

logger = logging.getLogger(__name__)


#: Told the reason each time a malformed item is skipped (a `Skips`, or anything that logs).
OnSkip = Callable[[str], None]


class Skips:
    """The malformed items one run skipped: a log line each, counted in the run's summary; the run goes on."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        logger.warning("skipped a malformed item: %s", reason)
        self.reasons.append(reason)


def parse_items(
    items: Iterable[Any], build: Callable[[Any], Envelope | None], what: str, on_skip: OnSkip | None
) -> list[Envelope]:
    """Build an envelope from each item; an item that cannot be built is skipped with its reason, never the page."""
    skip = on_skip or Skips()
    out: list[Envelope] = []
    for item in items:
        try:
            envelope = build(item)
        except CoinstreamError as exc:
            skip(str(exc))
            continue
        except Exception as exc:  # a shape nobody foresaw costs that item, not the run
            skip(f"{what}: {type(exc).__name__}: {exc}"[:300])
            continue
        if envelope is not None:
            out.append(envelope)
    return out


class KeepsSkips:
    """What reads an API keeps the malformed items it skipped, for the run's summary."""

    @functools.cached_property
    def skips(self) -> Skips:
        """Malformed items skipped so far (each logged with its reason when skipped)."""
        return Skips()


def exact_number(what: str) -> Callable[[Any, str], str]:
    """An API value (decimal text, or a JSON number ApiClient decoded as Decimal) as exact decimal text."""

    def number(value: Any, field: str) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise BadPayload(f"{what}: {field}={str(value)[:40]!r} is not a number")
        try:
            parsed = Decimal(str(value))
        except InvalidOperation:
            raise BadPayload(f"{what}: {field}={str(value)[:40]!r} is not a number") from None
        if not parsed.is_finite():
            raise BadPayload(f"{what}: {field}={str(value)[:40]!r} is not a finite number")
        return format(parsed, "f")  # plain notation: COPY into DECIMAL takes no exponent

    return number


def array_candles(
    rows: Any,
    source: str,
    market: str,
    fetched_at: datetime,
    *,
    columns: Mapping[str, int],
    minute_of: Callable[[Any], datetime],
    what: str,
    on_skip: OnSkip | None,
    closed: Callable[[list[Any]], bool] | None = None,
) -> list[Envelope]:
    """Closed candles, oldest first, of an answer whose candles are arrays (Binance, Coinbase, OKX, Bybit, Kraken):
    `columns` names each figure's index, `minute_of` reads a row's minute, `closed` (if given) is the API's own
    word that a candle is final (OKX's `confirm`)."""
    if not isinstance(rows, list):
        raise BadPayload(f"{what}: expected a list of candles, got {type(rows).__name__}")
    fields = {name: str(index) for name, index in columns.items()}
    number = exact_number(what)

    def build(row: Any) -> Envelope | None:
        if not isinstance(row, list) or len(row) <= max(columns.values()):
            raise BadPayload(f"{what}: a candle is not an array of {max(columns.values()) + 1}: {str(row)[:80]}")
        try:
            minute = minute_of(row)
        except (TypeError, ValueError, OverflowError, OSError):
            raise BadPayload(f"{what}: bad candle time {str(row[0])[:40]!r}") from None
        if closed is not None and not closed(row):
            return None  # the API says the candle is still open
        return closed_candle(source, market, minute, dict(enumerate_text(row)), fields, number, fetched_at, what)

    by_minute = {e.event_time: e for e in parse_items(rows, build, what, on_skip)}
    return [by_minute[m] for m in sorted(by_minute)]


def enumerate_text(row: list[Any]) -> Iterator[tuple[str, Any]]:
    """(index as text, value) of an array candle, as `closed_candle` reads a candle's fields by name."""
    return ((str(i), v) for i, v in enumerate(row))


def epoch_ms_minute(value: Any) -> datetime:
    """A candle time in epoch milliseconds (number or text) as its UTC minute."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def epoch_s_minute(value: Any) -> datetime:
    """A candle time in epoch seconds (number or text) as its UTC minute."""
    return datetime.fromtimestamp(int(value), tz=UTC)


#: How far an exchange's clock may run ahead of ours before a candle's minute is called "in the future".
CLOCK_SLACK = timedelta(seconds=90)


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
    if minute > fetched_at + CLOCK_SLACK:
        raise BadPayload(
            f"{what}: a candle for {minute:%Y-%m-%dT%H:%MZ} is in the future (fetched at {fetched_at:%H:%M:%SZ}): "
            "a wrong time zone, or this host's clock is behind (check NTP)"
        )
    if minute + timedelta(minutes=1) > fetched_at:
        return None
    figures: dict[str, str | None] = {}
    for name, field in fields.items():
        if field not in raw:
            raise BadPayload(f"{what}: candle at {minute:%Y-%m-%dT%H:%MZ} has no {field!r}")
        figures[name] = number(raw[field], field)
    try:
        return records.candle(source, market, minute, fetched_at, figures)
    except SkippableError as exc:
        raise BadPayload(f"{what}: {exc}") from None
