"""Does chatter move with trading, and which leads? Correlation, lag and Granger causality per minute.

Reads the warehouse's `minute_metrics` view, one series per (exchange, market): posts per minute
against that market's volume per minute, never two exchanges mixed. A positive lag means posts lead
volume by that many minutes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

from coinstream.errors import FatalError

MIN_MINUTES = 60


@dataclass
class Analysis:
    """The numbers `coinstream analyze` prints."""

    minutes: int
    first: datetime | None = None
    last: datetime | None = None
    pearson_levels: float = math.nan
    spearman_levels: float = math.nan
    pearson_diffs: float = math.nan
    spearman_diffs: float = math.nan
    best_lag: int = 0
    best_lag_r: float = math.nan
    cross: dict[int, float] = field(default_factory=dict)
    granger_posts_to_volume_p: float = math.nan
    granger_volume_to_posts_p: float = math.nan
    granger_order: int = 0
    rolling: list[float] = field(default_factory=list)
    enough: bool = False
    verdict: str = ""


#: What `--posts` may name: the column of minute_metrics each choice reads.
POSTS = {
    "real": "posts_total",
    "x": "posts_x",
    "bluesky": "posts_bluesky",
    "mastodon": "posts_mastodon",
    "simulated": "posts_simulated",
}
_SOURCES = ("x", "bluesky", "mastodon")


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
    rows = db.execute(
        "SELECT exchange, market, count(*), min(minute_utc), max(minute_utc) FROM candle_minutes "
        "GROUP BY exchange, market ORDER BY exchange, market"
    ).fetchall()
    return [Series(*row) for row in rows]


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


def lagged_r(posts: np.ndarray, volume: np.ndarray, lag: int) -> float:
    """Pearson r of posts(t) with volume(t + lag)."""
    if lag > 0:
        a, b = posts[:-lag], volume[lag:]
    elif lag < 0:
        a, b = posts[-lag:], volume[:lag]
    else:
        a, b = posts, volume
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def analyze(
    minutes: list[datetime], posts: np.ndarray, volume: np.ndarray, *, max_lag: int = 30, window: int = 60
) -> Analysis:
    """Every figure of the report; `enough` is False (and the verdict says so) below MIN_MINUTES minutes."""
    out = Analysis(minutes=len(minutes), first=minutes[0] if minutes else None, last=minutes[-1] if minutes else None)
    if len(minutes) < MIN_MINUTES or np.std(posts) == 0 or np.std(volume) == 0:
        out.verdict = (
            f"too little data to conclude anything: {len(minutes)} minutes with candles "
            f"(at least {MIN_MINUTES} with varying posts and volume are needed)"
        )
        return out
    out.enough = True
    out.pearson_levels = float(stats.pearsonr(posts, volume)[0])
    out.spearman_levels = float(stats.spearmanr(posts, volume)[0])
    dp, dv = np.diff(posts), np.diff(volume)
    out.pearson_diffs = float(stats.pearsonr(dp, dv)[0])
    out.spearman_diffs = float(stats.spearmanr(dp, dv)[0])
    limit = min(max_lag, len(minutes) // 4)
    out.cross = {lag: lagged_r(posts, volume, lag) for lag in range(-limit, limit + 1)}
    out.best_lag = max((lag for lag in out.cross if not math.isnan(out.cross[lag])), key=lambda k: abs(out.cross[k]))
    out.best_lag_r = out.cross[out.best_lag]
    out.granger_order = max(1, min(abs(out.best_lag) or 1, 15))
    out.granger_posts_to_volume_p = granger_p(volume, posts, out.granger_order)
    out.granger_volume_to_posts_p = granger_p(posts, volume, out.granger_order)
    if len(minutes) > window:
        out.rolling = [
            float(np.corrcoef(posts[i - window : i], volume[i - window : i])[0, 1])
            for i in range(window, len(minutes) + 1)
        ]
    lead = (
        "posts lead volume" if out.best_lag > 0 else "volume leads posts" if out.best_lag < 0 else "they move together"
    )
    out.verdict = (
        f"strongest cross-correlation r={out.best_lag_r:+.2f} at lag {out.best_lag:+d} min ({lead}); "
        f"Granger p: posts->volume {out.granger_posts_to_volume_p:.3g}, "
        f"volume->posts {out.granger_volume_to_posts_p:.3g} (order {out.granger_order})"
    )
    return out


def granger_p(effect: np.ndarray, cause: np.ndarray, order: int) -> float:
    """p-value (SSR F test) that `cause`'s past helps predict `effect` beyond `effect`'s own past."""
    from statsmodels.tsa.stattools import grangercausalitytests

    data = np.column_stack([effect, cause])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = grangercausalitytests(data, maxlag=[order])
    return float(result[order][0]["ssr_ftest"][1])
