"""What the dashboard shows, computed from the warehouse (and the local stack when it runs)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from warehouse.analysis import lagged_r

RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def chart_data(db: Any, range_name: str = "24h", window: int = 60, max_lag: int = 30) -> dict[str, Any]:
    """Every series of the dashboard for the newest `range_name` of data (ends at the newest candle, not now)."""
    newest = db.execute("SELECT max(minute_utc) FROM candles").fetchone()[0]
    out: dict[str, Any] = {"range": range_name, "window": window, "empty": newest is None}
    out["freshness"] = freshness(db)
    if newest is None:
        return out
    span = RANGES.get(range_name)
    start = newest - span + timedelta(minutes=1) if span else datetime(1970, 1, 1)
    candles = db.execute(
        "SELECT minute_utc, sum(volume), max(high_price), min(low_price), max(close_price) FROM candles "
        "WHERE minute_utc >= ? GROUP BY minute_utc ORDER BY minute_utc",
        [start],
    ).fetchall()
    minutes = [row[0] for row in candles]
    index = {m: i for i, m in enumerate(minutes)}
    # Same numbers as counting the deduplicated `posts` view (copies of a post share its key and its
    # minute), but the range filter reaches the table scan instead of following a window over all rows.
    counts = db.execute(
        "SELECT source, minute_utc, count(DISTINCT record_key) FROM raw_posts WHERE minute_utc >= ? "
        "GROUP BY source, minute_utc",
        [start],
    ).fetchall()
    posts: dict[str, list[int]] = {}
    for source, minute, count in counts:
        if minute in index:
            posts.setdefault(source, [0] * len(minutes))[index[minute]] = int(count)
    volume = np.array([float(r[1]) for r in candles])
    total = np.sum([np.array(v) for v in posts.values()], axis=0) if posts else np.zeros(len(minutes))
    rolling: list[float | None] = [None] * len(minutes)
    for i in range(window, len(minutes) + 1):
        a, b = total[i - window : i], volume[i - window : i]
        if np.std(a) > 0 and np.std(b) > 0:
            rolling[i - 1] = _num(float(np.corrcoef(a, b)[0, 1]))
    limit = min(max_lag, max(len(minutes) // 4, 0))
    lags = list(range(-limit, limit + 1))
    cross = [_num(lagged_r(total, volume, lag)) for lag in lags]
    valid = [(abs(r), lag) for lag, r in zip(lags, cross, strict=True) if r is not None]
    out.update(
        minutes=[_iso(m) for m in minutes],
        posts=posts,
        volume=[_num(v) for v in volume],
        high=[_num(float(r[2])) for r in candles],
        low=[_num(float(r[3])) for r in candles],
        close=[_num(float(r[4])) for r in candles],
        rolling=rolling,
        cross={"lags": lags, "r": cross, "best": max(valid)[1] if valid else None},
    )
    return out


def freshness(db: Any) -> dict[str, Any]:
    """Newest record per source, from the warehouse."""
    candle = db.execute("SELECT exchange, max(minute_utc) FROM candles GROUP BY exchange ORDER BY exchange").fetchall()
    # the newest time is the same with or without duplicates, so the raw table (no window) answers it
    post = db.execute("SELECT source, max(created_at) FROM raw_posts GROUP BY source ORDER BY source").fetchall()
    return {"candles": {e: _iso(t) for e, t in candle}, "posts": {s: _iso(t) for s, t in post}}
