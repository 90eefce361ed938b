"""Does chatter move with trading, and which leads? Correlation, lag and Granger causality per minute.

Reads the warehouse's `minute_metrics` view: posts per minute (all sources) against BTC volume per
minute. A positive lag means posts lead volume by that many minutes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

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


def series(
    db: Any, start: datetime | None, end: datetime | None, market: str | None = None
) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """Minutes with a candle in [start, end): (minutes, posts per minute, volume per minute)."""
    sql = "SELECT minute_utc, posts_total, volume FROM minute_metrics WHERE volume IS NOT NULL"
    params: list[Any] = []
    if start:
        sql += " AND minute_utc >= ?"
        params.append(start.replace(tzinfo=None))
    if end:
        sql += " AND minute_utc < ?"
        params.append(end.replace(tzinfo=None))
    if market:
        sql += " AND market = ?"
        params.append(market)
    rows = db.execute(sql + " ORDER BY minute_utc", params).fetchall()
    minutes = [r[0] for r in rows]
    return minutes, np.array([float(r[1]) for r in rows]), np.array([float(r[2]) for r in rows])


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
