"""The warehouse's series: one per (exchange, market), every minute present, with the posts set against it.

`analyze` and the dashboard read them here, so both see the same numbers and never two exchanges mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from coinstream.errors import FatalError
from warehouse.rollups import readable

#: What `--posts` may name: the column of minute_metrics each choice reads.
POSTS = {
    "real": "posts_total",
    "x": "posts_x",
    "bluesky": "posts_bluesky",
    "mastodon": "posts_mastodon",
    "simulated": "posts_simulated",
}
_SOURCES = ("x", "bluesky", "mastodon")
#: The world series' exchange name: every real BTC market's volume summed per minute, market 'BTC'.
WORLD = "all"


@dataclass(frozen=True)
class Series:
    """One candle series of the warehouse: an exchange's market, minute by minute."""

    exchange: str
    market: str
    minutes: int
    first: datetime
    last: datetime

    @property
    def name(self) -> str:
        return f"{self.exchange} {self.market}"

    def posts_for(self, choice: str = "auto") -> str:
        """The posts to set against this series: the simulated ones for the simulated exchange, else the real ones."""
        if choice == "auto":
            return "simulated" if self.exchange == "simulated" else "real"
        return choice


def all_series(db: Any) -> list[Series]:
    """Every (exchange, market) candle series, in name order."""
    # candle_minutes has one row per minute from a series' first candle to its last: its count is the
    # span, and the first and last minutes are the same with or without copies (no window, no spine)
    rows = db.execute(
        "SELECT exchange, market, date_diff('minute', min(minute_utc), max(minute_utc)) + 1, min(minute_utc), "
        "max(minute_utc) FROM raw_candles GROUP BY exchange, market ORDER BY exchange, market"
    ).fetchall()
    found = [Series(*row) for row in rows]
    world = [s for s in found if s.market.endswith("-BTC") and s.exchange != "simulated"]
    if len(world) > 1:  # the world series: every real BTC market's volume summed per minute (candle_minutes)
        first, last = min(s.first for s in world), max(s.last for s in world)
        found.append(Series(WORLD, "BTC", int((last - first).total_seconds() // 60) + 1, first, last))
    return found


def pick_series(available: list[Series], exchange: str | None, market: str | None) -> list[Series]:
    """The series `--exchange`/`--market` name (all of them when neither does); FatalError naming the choices."""
    chosen = [
        s for s in available if (exchange is None or s.exchange == exchange) and (market is None or s.market == market)
    ]
    if not chosen:
        choices = ", ".join(f"--exchange {s.exchange} --market {s.market}" for s in available) or "none yet"
        raise FatalError(f"no candles for {exchange or 'any exchange'} {market or 'any market'}; choices: {choices}")
    return chosen


def series(
    db: Any,
    chosen: Series,
    start: datetime | None = None,
    end: datetime | None = None,
    posts: str = "auto",
) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """One series' minutes in [start, end) where posts were collected: (minutes, posts per minute, volume).

    Every minute of the series is there (volume 0 where nobody traded, posts 0 where nobody posted),
    so lags are minutes, not rows.
    """
    column = POSTS[chosen.posts_for(posts)]
    sql = (  # the column comes from POSTS, never from the user's text
        f"SELECT minute_utc, {column}, volume FROM minute_metrics "  # noqa: S608
        f"WHERE exchange = ? AND market = ? AND {column} IS NOT NULL"
    )
    if chosen.exchange == WORLD:
        sql += " AND reporting = series_count"  # a sum with a market missing is no minute of the world's volume
    params: list[Any] = [chosen.exchange, chosen.market]
    if start:
        sql += " AND minute_utc >= ?"
        params.append(start.replace(tzinfo=None))
    if end:
        sql += " AND minute_utc < ?"
        params.append(end.replace(tzinfo=None))
    rows = db.execute(sql + " ORDER BY minute_utc", params).fetchall()
    minutes = [r[0] for r in rows]
    return minutes, np.array([float(r[1]) for r in rows]), np.array([float(r[2]) for r in rows])


def price_moves(db: Any, chosen: Series, minutes: list[datetime]) -> np.ndarray:
    """The series' absolute 1-minute log return in each of `minutes` (0 where it did not trade; after a quiet
    stretch, the move from its last price): what the analysis holds fixed. For the world series, the
    volume-weighted mean of its markets' moves (all 0 where no minute has a price: the analysis then holds none)."""
    if not minutes:
        return np.zeros(0)
    world = chosen.exchange == WORLD
    where = "market LIKE '%-BTC' AND exchange NOT IN (?, 'simulated')" if world else "exchange = ? AND market = ?"
    params: list[Any] = [WORLD] if world else [chosen.exchange, chosen.market]
    names = {
        n
        for (n,) in db.execute(
            "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
        ).fetchall()
    }
    # the candles' rollup where the warehouse has raw tables (the minute spine's view costs seconds a month)
    table = readable(db)["latest_candles"] if "raw_candles" in names else "minute_metrics"
    rows = db.execute(
        "SELECT minute_utc, abs(ln(close_price / lag(close_price) OVER (PARTITION BY exchange, market "  # noqa: S608
        f"ORDER BY minute_utc))), volume FROM {table} AS candles "
        f"WHERE {where} AND minute_utc >= ? AND minute_utc <= ? AND close_price > 0",
        [*params, minutes[0].replace(tzinfo=None) - timedelta(minutes=1), minutes[-1].replace(tzinfo=None)],
    ).fetchall()
    index = {m.replace(tzinfo=None): i for i, m in enumerate(minutes)}
    weighted, weights = np.zeros(len(minutes)), np.zeros(len(minutes))
    for minute, move, volume in rows:
        i = index.get(minute)
        if i is None or move is None:
            continue
        weight = float(volume or 0) if world else 1.0
        weighted[i] += weight * float(move)
        weights[i] += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, weighted / np.where(weights > 0, weights, 1), 0.0)


def sources_counted(db: Any, chosen: Series, posts: str = "auto") -> list[str]:
    """The post sources a series' posts column adds up (those collected in the series' minutes)."""
    choice = chosen.posts_for(posts)
    if choice != "real":
        return [choice]
    row = db.execute(
        "SELECT " + ", ".join(f"count(posts_{s})" for s in _SOURCES) + " FROM minute_metrics "  # noqa: S608
        "WHERE exchange = ? AND market = ?",
        [chosen.exchange, chosen.market],
    ).fetchone()
    return [s for s, n in zip(_SOURCES, row, strict=True) if n]
