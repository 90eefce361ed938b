"""Simulated source: candles and posts with a known, planted relation, for the demo and load tests.

Posts per minute follow a smooth, seeded process; BTC volume per minute follows the post rate of
`lag_minutes` earlier with weight `strength` (0: unrelated, 1: volume is a copy of the post rate),
the rest being noise. Every record says `"simulated": true`. Any minute can be generated on its own
and always comes out the same, so cron runs, replays and tests agree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from coinstream import records
from coinstream.config import Settings
from coinstream.records import Envelope, Kind
from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.base import MinuteCursor, RunOptions, Source
from producer.sources.history import History, Page

SOURCE_CANDLES = "simulated"
SOURCE_POSTS = "simulated"
_TEXTS = (
    "bitcoin is moving #bitcoin",
    "$BTC volume picking up",
    "비트코인 또 오른다 #BTC",
    "ビットコイン #bitcoin",
    "watching btc closely today",
)


#: The swing's memory: weights 0.9**k over the last 40 minutes, scaled to unit variance.
_DECAY, _MEMORY = 0.9, 40
_SWING_SCALE = 1 / math.sqrt(sum(_DECAY ** (2 * k) for k in range(_MEMORY)))


@dataclass(frozen=True)
class Simulation:
    """The planted relation: volume(t) follows posts(t - lag) with weight `strength`."""

    seed: int = 20261128
    posts_per_minute: float = 20.0
    lag_minutes: int = 5
    strength: float = 0.8
    base_volume: float = 3.0
    market: str = "KRW-BTC"

    def _noise(self, minute: int, stream: int) -> float:
        return random.Random(self.seed * 1_000_003 + minute * 7 + stream).gauss(0.0, 1.0)

    def activity(self, minute: int) -> float:
        """Relative post activity of an epoch minute: around 0, roughly within -1..1.

        A persistent random swing (an AR(1)-like moving average of seeded noise, computed from the minute
        alone so any minute can be emitted on its own) plus minute-to-minute noise: no fixed period, so a
        lag found between posts and volume is the planted one, not an alignment of cycles.
        """
        swing = sum(_DECAY**k * self._noise(minute - k, 3) for k in range(_MEMORY)) * _SWING_SCALE
        return 0.6 * swing + 0.25 * self._noise(minute, 1)

    def post_count(self, minute: int) -> int:
        """Posts in an epoch minute."""
        return max(0, round(self.posts_per_minute * (1 + 0.6 * self.activity(minute))))

    def volume(self, minute: int) -> float:
        """BTC volume in an epoch minute: planted on the activity `lag_minutes` earlier."""
        planted = self.activity(minute - self.lag_minutes)
        mixed = self.strength * planted + (1 - self.strength) * 0.5 * self._noise(minute, 2)
        return max(0.01, self.base_volume * (1 + 0.6 * mixed))


def candles(sim: Simulation, first: int, last: int, fetched_at: datetime) -> list[Envelope]:
    """Candles for epoch minutes first..last (inclusive)."""
    out = []
    for m in range(first, last + 1):
        at = minute_start(m)
        price = 131_000_000 + round(400_000 * math.sin(m / 180))
        volume = sim.volume(m)
        out.append(
            records.candle(
                SOURCE_CANDLES,
                sim.market,
                at,
                fetched_at,
                {
                    "open": str(price),
                    "high": str(price + 25_000),
                    "low": str(price - 25_000),
                    "close": str(price + 5_000),
                    "volume": f"{volume:.8f}",
                    "quote_volume": f"{volume * price:.4f}",
                },
                simulated=True,
            )
        )
    return out


def posts(sim: Simulation, first: int, last: int, fetched_at: datetime) -> list[Envelope]:
    """Posts for epoch minutes first..last (inclusive)."""
    out = []
    for m in range(first, last + 1):
        rng = random.Random(sim.seed * 31 + m)
        for i in range(sim.post_count(m)):
            post_id = f"{m}-{i}"
            at = minute_start(m) + timedelta(seconds=rng.randint(0, 59))
            out.append(
                records.post(
                    SOURCE_POSTS,
                    post_id,
                    at,
                    fetched_at,
                    text=rng.choice(_TEXTS),
                    author_id=str(rng.randint(1, 10_000)),
                    lang="en",
                    simulated=True,
                )
            )
    return out


class Simulated(Source[MinuteCursor]):
    """Candles and posts with a planted relation, minute by minute up to the last closed one."""

    name = "simulated"
    kinds = frozenset({Kind.CANDLE, Kind.POST})
    cursor_type = MinuteCursor
    summary = "simulated candles and posts with a planted relation (no network)"

    def __init__(self, kind: Kind, market: str, backfill_minutes: int) -> None:
        self.kind = kind
        self.sim = Simulation(market=market)
        self.backfill_minutes = backfill_minutes

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> Simulated:
        """The simulation of `options.market`, `options.backfill_minutes` on the first run."""
        return cls(options.kind, options.market, options.backfill_minutes)

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """The simulation's past, for the demo (asked for by name only)."""
        return [SimulatedHistory(market) for market in markets or ["KRW-BTC"]]

    def fetch(self, cursor: MinuteCursor | None, now: datetime) -> tuple[list[Envelope], MinuteCursor | None]:
        """Every closed minute after the cursor's (the last `backfill_minutes` on the first run)."""
        last_closed = epoch_minute(now) - 1
        first = cursor.last_minute + 1 if cursor else last_closed - self.backfill_minutes + 1
        if first > last_closed:
            return [], cursor
        make = candles if self.kind is Kind.CANDLE else posts
        return make(self.sim, first, last_closed, now), MinuteCursor(last_minute=last_closed)


class SimulatedHistory(History):
    """The simulation's past, an hour a page (no requests): the demo's backfill, with the keys live runs give."""

    source = "simulated"
    PAGE = timedelta(hours=1)

    def __init__(self, market: str) -> None:
        self.sim = Simulation(market=market)
        self.series = f"simulated {market}"

    def plan(self, start: datetime, end: datetime) -> int:
        """Nothing is asked of any API."""
        return 0

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """An hour of candles and posts at a time, newest first."""
        upper = datetime.fromisoformat(token) if token else end
        while upper > start:
            lower = max(start, upper - self.PAGE)
            first, last = epoch_minute(lower), epoch_minute(upper) - 1
            made = candles(self.sim, first, last, now) + posts(self.sim, first, last, now)
            yield Page(made, lower, lower.isoformat() if lower > start else None, requests=0)
            upper = lower
