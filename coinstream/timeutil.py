"""Time helpers: UTC inside, minute buckets, KST for display only, and times typed by users."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

from coinstream.errors import FatalError

KST = timezone(timedelta(hours=9), "KST")

#: A simulated clock for soak runs, `<start>,<speed>,<real epoch seconds>`: from that real instant on, the data's time
#: runs `speed` times faster from `start` (an ISO UTC time). Every process of a run reads the same variable, so a
#: supervisor killed and started again, its producers, healing and the loopback APIs agree on what minute it is.
#: Unset (always, outside tests and benchmarks): the wall clock.
SIMULATED_CLOCK = "COINSTREAM_SIMULATED_CLOCK"


def now() -> datetime:
    """What time it is for the data: which minutes are closed, what a window's end is (UTC)."""
    spec = os.environ.get(SIMULATED_CLOCK)
    if not spec:
        return datetime.now(UTC)
    start, speed, anchor = _simulated(spec)
    return start + timedelta(seconds=(time.time() - anchor) * speed)


def simulated_clock(start: datetime, speed: float, anchor: float | None = None) -> str:
    """The COINSTREAM_SIMULATED_CLOCK value of a clock at `start` now (or at real epoch `anchor`), `speed`x fast."""
    return f"{start.astimezone(UTC).isoformat()},{speed:g},{time.time() if anchor is None else anchor!r}"


@cache
def _simulated(spec: str) -> tuple[datetime, float, float]:
    try:
        start, speed, anchor = spec.split(",")
        at = datetime.fromisoformat(start)
        if at.tzinfo is None or float(speed) <= 0:
            raise ValueError
        return at.astimezone(UTC), float(speed), float(anchor)
    except ValueError:
        raise FatalError(
            f"{SIMULATED_CLOCK}={spec[:80]!r}: write START,SPEED,REAL_EPOCH (e.g. 2026-11-01T00:00:00+00:00,600,"
            f"{int(time.time())}), or unset it for the wall clock"
        ) from None


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
