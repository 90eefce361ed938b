"""What the dashboard shows, computed from the warehouse (and the local stack when it runs)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from coinstream import timeutil
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from warehouse.analysis import as_dict
from warehouse.family import METHOD, Pair, family_of, family_title, judge, pair_row
from warehouse.lag_tests import lagged_r, rolling_r
from warehouse.rollups import readable
from warehouse.series import WORLD, Series, all_series

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
    within: dict[str, int] | None = None,
    now: datetime | None = None,
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
        "freshness": freshness(db, now, within),
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
    # candle_minutes' numbers, on its minute spine built here: the latest copy of each candle comes from
    # the rollup `load` keeps, DuckDB rounds, numpy places. Per-cell Python and the view's window over a
    # month of minutes cost ~2 s; this ~0.1 s.
    tables = readable(db)
    first_minute = _epoch_minute(max(start, one.first))  # a range longer than the series: the series
    minutes = np.arange(first_minute, _epoch_minute(one.last) + 1, dtype=np.int64)
    if one.exchange == WORLD:  # the world series: every real BTC market's volume summed, no prices
        candles = db.execute(
            "SELECT epoch(minute_utc)::BIGINT // 60 AS minute, sum(volume)::DOUBLE AS volume, "
            "sum(volume)::VARCHAR AS volume_text, NULL::DOUBLE AS open, NULL::DOUBLE AS high, "
            "NULL::DOUBLE AS low, NULL::DOUBLE AS close "
            f"FROM {tables['latest_candles']} "
            "WHERE market LIKE '%-BTC' AND exchange <> 'simulated' AND minute_utc >= ? GROUP BY minute_utc",
            [start],
        ).fetchnumpy()
    else:
        candles = db.execute(
            "SELECT epoch(minute_utc)::BIGINT // 60 AS minute, volume::DOUBLE AS volume, volume_text, "
            "round(open_price::DOUBLE, 4) AS open, round(high_price::DOUBLE, 4) AS high, "
            "round(low_price::DOUBLE, 4) AS low, round(close_price::DOUBLE, 4) AS close "
            f"FROM {tables['latest_candles']} "
            "WHERE exchange = ? AND market = ? AND minute_utc >= ?",
            [one.exchange, one.market, start],
        ).fetchnumpy()
    at = np.asarray(candles["minute"], dtype=np.int64) - first_minute
    traded = np.zeros(len(minutes), dtype=bool)
    traded[at] = True
    volume = np.zeros(len(minutes))
    volume[at] = candles["volume"]
    volume_text = np.full(len(minutes), "0", dtype=object)
    volume_text[at] = candles["volume_text"]
    prices = {}
    for name in ("open", "high", "low", "close"):
        column = np.full(len(minutes), None, dtype=object)  # no price in a minute without trades
        if one.exchange != WORLD:  # nor in the world series: its markets quote different currencies
            column[at] = np.asarray(candles[name], dtype=float)
        prices[name] = column.tolist()
    # Same numbers as minute_posts (copies of a post share its key and its minute), read from the
    # rollup `load` keeps instead of counting distinct keys over every raw post.
    rollup = tables["post_minutes"]
    counts = db.execute(
        f"SELECT source, epoch(minute_utc)::BIGINT // 60 AS minute, posts FROM {rollup} WHERE minute_utc >= ?",
        [start],
    ).fetchnumpy()
    spans = {
        source: (first, last)
        for source, first, last in db.execute(
            f"SELECT source, epoch(min(minute_utc))::BIGINT // 60, epoch(max(minute_utc))::BIGINT // 60 "
            f"FROM {rollup} GROUP BY source"
        ).fetchall()
    }
    if one.exchange != "simulated":  # simulated posts go with simulated candles only
        spans.pop("simulated", None)
    posts: dict[str, list[int | None]] = {}
    total = np.zeros(len(minutes))
    count_sources = np.asarray(counts["source"], dtype=object)
    for source, (collected_from, collected_to) in spans.items():
        per_minute = np.zeros(len(minutes), dtype=np.int64)
        mine = count_sources == source
        place = np.searchsorted(minutes, np.asarray(counts["minute"], dtype=np.int64)[mine])
        inside = (place < len(minutes)) & (minutes[np.minimum(place, len(minutes) - 1)] == counts["minute"][mine])
        per_minute[place[inside]] = np.asarray(counts["posts"], dtype=np.int64)[mine][inside]
        total += per_minute
        shown: list[int | None] = list(per_minute.tolist())
        for i in np.flatnonzero((minutes < collected_from) | (minutes > collected_to)).tolist():
            shown[i] = None  # not collected then: not 0
        posts[source] = shown
    lead_in: list[float | None] = [None] * min(window - 1, len(minutes))
    rolled = np.round(np.asarray(rolling_r(total, volume, window), dtype=float), 4).tolist()
    rolling = lead_in + [None if math.isnan(r) else r for r in rolled]
    limit = min(max_lag, max(len(minutes) // 4, 0))
    lags = list(range(-limit, limit + 1))
    cross = [_num(lagged_r(total, volume, lag)) for lag in lags]
    valid = [(abs(r), lag) for lag, r in zip(lags, cross, strict=True) if r is not None]
    out.update(
        minutes=[f"{m}:00Z" for m in np.datetime_as_string(minutes.astype("datetime64[m]"), unit="m").tolist()],
        posts=posts,
        volume=np.round(volume, 4).tolist(),
        volume_text=volume_text.tolist(),
        **prices,
        traded=traded.tolist(),
        rolling=rolling,
        cross={"lags": lags, "r": cross, "best": max(valid)[1] if valid else None},
    )
    return out


def _epoch_minute(value: datetime) -> int:
    """Minutes since 1970 of a warehouse TIMESTAMP (UTC, without an offset)."""
    return int(value.replace(tzinfo=UTC).timestamp()) // 60


#: A post source may be quiet this many minutes (no post mentions bitcoin there) before its silence is news.
QUIET_MINUTES = 10


def within_minutes(settings: Settings, pipeline: Pipeline) -> dict[str, int]:
    """How old each source's newest row may be before it is stale, in minutes: its schedule, then delivery.

    Producers run every minute and a candle closes a minute after it opens; X's posts come as a sample once
    per `x_sample_every_minutes`; a consumer holds rows up to `delivery_window_seconds` and Firehose buffers
    up to its `IntervalInSeconds` before the warehouse has them (locally: until `coinstream load`).
    """
    buffered = max(
        (
            d.definition["RedshiftDestinationConfiguration"]["S3Configuration"]
            .get("BufferingHints", {})
            .get("IntervalInSeconds", 300)
            for d in load_delivery_streams(pipeline).values()
        ),
        default=300,
    )
    delivery = math.ceil((settings.delivery_window_seconds + buffered) / 60)
    return {
        "candles": 2 + delivery,
        "bluesky": 1 + QUIET_MINUTES + delivery,
        "mastodon": 1 + QUIET_MINUTES + delivery,
        "x": settings.x_sample_every_minutes + delivery,
        "simulated": 1 + delivery,
    }


def freshness(db: Any, now: datetime | None = None, within: dict[str, int] | None = None) -> dict[str, Any]:
    """Newest record per source, from the warehouse; with `within` (`within_minutes`), which are stale at `now`."""
    tables = readable(db)
    candle = db.execute(
        f"SELECT exchange, max(minute_utc) FROM {tables['latest_candles']} GROUP BY exchange ORDER BY exchange"
    ).fetchall()
    # the newest time is the same with or without duplicates, so the rollup (no window) answers it
    post = db.execute(
        f"SELECT source, max(last_created_at) FROM {tables['post_minutes']} GROUP BY source ORDER BY source"
    ).fetchall()
    out: dict[str, Any] = {"candles": {e: _iso(t) for e, t in candle}, "posts": {s: _iso(t) for s, t in post}}
    if within is None:
        return out
    at = now or timeutil.now()
    stale: dict[str, dict[str, str]] = {"candles": {}, "posts": {}}
    for kind, rows in (("candles", candle), ("posts", post)):
        for name, newest in rows:
            limit = within.get("candles" if kind == "candles" else name, within["candles"])
            if newest is None:
                continue
            # a candle is stamped with the minute it opened, which closed a minute later
            age = (at - newest.replace(tzinfo=UTC)).total_seconds() / 60 - (1 if kind == "candles" else 0)
            if age > limit:
                stale[kind][name] = f"stale: {_age(age)} old, expected within {limit} min"
    out["stale"] = stale
    return out


def _age(minutes: float) -> str:
    """An age as people say it: 24 min, 3.5 h, 6.2 days."""
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def range_start(available: list[Series], range_name: str) -> datetime | None:
    """Where a range of the dashboard starts: that long before the newest minute of any series (all: None)."""
    span = RANGES.get(range_name)
    if span is None or not available:
        return None
    return max(s.last for s in available) - span + timedelta(minutes=1)


def study(db: Any, range_name: str, window: int) -> list[Pair]:
    """The family `coinstream analyze` judges, over the dashboard's range: every series against its posts."""
    available = all_series(db)
    return judge(family_of(db, available, range_start(available, range_name), None), window=window)


def verdicts(pairs: list[Pair], selected: str | None) -> dict[str, Any]:
    """The pair table of the family, and for the selected series each of its pairs' verdict and checks."""
    return {
        "pairs": [pair_row(p) for p in pairs],
        "method": METHOD,
        "title": family_title(pairs),
        "analysis": {
            "series": selected,
            "verdicts": [
                {"posts": p.data.posts, "verdict": p.verdict, "checks": as_dict(p.result)["checks"]}
                for p in pairs
                if p.data.series == selected
            ],
        },
    }
