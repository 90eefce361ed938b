"""Time helpers: UTC inside, minute buckets, KST for display only, and times typed by users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from coinstream.errors import FatalError

KST = timezone(timedelta(hours=9), "KST")


def ts(value: datetime) -> str:
    """A UTC timestamp as Redshift COPY's TIMEFORMAT 'auto' reads it (isoformat: 10x cheaper than strftime)."""
    return value.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")[:26]


def kst(value: datetime) -> str:
    """The same instant in Korea Standard Time, for display only (no offset: KST is in the column name)."""
    return value.astimezone(KST).isoformat(sep=" ", timespec="seconds")[:19]


def minute(value: datetime) -> datetime:
    """The UTC minute bucket an instant falls in."""
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def epoch_minute(at: datetime) -> int:
    """Minutes since 1970-01-01T00:00Z."""
    return int(at.astimezone(UTC).timestamp() // 60)


def minute_start(minute: int) -> datetime:
    """The UTC start of an epoch minute."""
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def parse_from(value: str, flag: str = "--from") -> datetime | None:
    """A replay's start: `trim-horizon` -> None; otherwise an ISO 8601 UTC time."""
    if value.lower().replace("_", "-") == "trim-horizon":
        return None
    return parse_utc(value, flag, "trim-horizon or ")


def parse_utc(value: str, flag: str, other: str = "") -> datetime:
    """An ISO 8601 UTC time given as `flag`; anything else is one line naming the form (and `other` choices)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FatalError(f"{flag} {value!r}: use {other}a UTC time such as 2026-11-28T12:00:00Z") from None
    if when.tzinfo is None:
        raise FatalError(f"{flag} {value!r}: add the UTC offset (Z or +00:00); times are UTC")
    return when
