"""What the dashboard shows, computed from the warehouse (and the local stack when it runs)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from warehouse.analysis import lagged_r, rolling_r
from warehouse.series import all_series

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


def chart_data(
    db: Any,
    range_name: str = "24h",
    window: int = 60,
    max_lag: int = 30,
    *,
    exchange: str | None = None,
    market: str | None = None,
) -> dict[str, Any]:
    """Every series of the dashboard for one (exchange, market), over the newest `range_name` of its minutes.

    The numbers are minute_metrics' (volume 0 on a minute without trades, posts 0 on a minute
    without posts inside a source's collected span); the first series is shown when none is named.
    """
    available = all_series(db)
    out: dict[str, Any] = {
        "range": range_name,
        "window": window,
        "series": [{"exchange": s.exchange, "market": s.market} for s in available],
        "freshness": freshness(db),
    }
    chosen = [s for s in available if s.exchange == (exchange or s.exchange) and s.market == (market or s.market)]
    out["empty"] = not chosen
    if not chosen:
        if exchange or market:
            out["error"] = f"no candles for {exchange or 'any exchange'} {market or 'any market'}"
        return out
    one = chosen[0]
    out["selected"] = {"exchange": one.exchange, "market": one.market}
    span = RANGES.get(range_name)
    start = one.last - span + timedelta(minutes=1) if span else one.first
    candles = db.execute(
        "SELECT minute_utc, volume, open_price, high_price, low_price, close_price, traded FROM candle_minutes "
        "WHERE exchange = ? AND market = ? AND minute_utc >= ? ORDER BY minute_utc",
        [one.exchange, one.market, start],
    ).fetchall()
    minutes = [row[0] for row in candles]
    index = {m: i for i, m in enumerate(minutes)}
    # Same numbers as minute_posts (copies of a post share its key and its minute), but the range
    # filter reaches the table scan instead of following a window over all rows.
    counts = db.execute(
        "SELECT source, minute_utc, count(DISTINCT record_key) FROM raw_posts WHERE minute_utc >= ? "
        "GROUP BY source, minute_utc",
        [start],
    ).fetchall()
    spans = {
        source: (first, last)
        for source, first, last in db.execute(
            "SELECT source, min(minute_utc), max(minute_utc) FROM raw_posts GROUP BY source"
        ).fetchall()
    }
    if one.exchange != "simulated":  # simulated posts go with simulated candles only
        spans.pop("simulated", None)
    posts: dict[str, list[int | None]] = {
        source: [0 if first <= m <= last else None for m in minutes] for source, (first, last) in spans.items()
    }
    for source, minute, count in counts:
        if source in posts and minute in index:
            posts[source][index[minute]] = int(count)
    volume = np.array([float(r[1]) for r in candles])
    zeroed = [[v or 0 for v in per_source] for per_source in posts.values()]
    total = np.sum(zeroed, axis=0) if zeroed else np.zeros(len(minutes))
    lead_in: list[float | None] = [None] * min(window - 1, len(minutes))
    rolling = lead_in + [_num(r) for r in rolling_r(total, volume, window)]
    limit = min(max_lag, max(len(minutes) // 4, 0))
    lags = list(range(-limit, limit + 1))
    cross = [_num(lagged_r(total, volume, lag)) for lag in lags]
    valid = [(abs(r), lag) for lag, r in zip(lags, cross, strict=True) if r is not None]
    out.update(
        minutes=[_iso(m) for m in minutes],
        posts=posts,
        volume=[_num(v) for v in volume],
        volume_text=[_decimal(r[1]) for r in candles],
        open=[_price(r[2]) for r in candles],
        high=[_price(r[3]) for r in candles],
        low=[_price(r[4]) for r in candles],
        close=[_price(r[5]) for r in candles],
        traded=[bool(r[6]) for r in candles],
        rolling=rolling,
        cross={"lags": lags, "r": cross, "best": max(valid)[1] if valid else None},
    )
    return out


def _price(value: Any) -> float | None:
    return None if value is None else _num(float(value))


def _decimal(value: Any) -> str:
    """A stored decimal as text, trailing zeros of the scale dropped (1.50000000 -> 1.5), as the tooltip shows it."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def freshness(db: Any) -> dict[str, Any]:
    """Newest record per source, from the warehouse."""
    candle = db.execute("SELECT exchange, max(minute_utc) FROM candles GROUP BY exchange ORDER BY exchange").fetchall()
    # the newest time is the same with or without duplicates, so the raw table (no window) answers it
    post = db.execute("SELECT source, max(created_at) FROM raw_posts GROUP BY source ORDER BY source").fetchall()
    return {"candles": {e: _iso(t) for e, t in candle}, "posts": {s: _iso(t) for s, t in post}}
