"""Milliseconds per dashboard query over 30 days of minute data with 10 million posts.

    python -m benchmarks.dashboard_queries [--posts 10000000] [--days 30] [--runs 5] [--smoke] [--results FILE]

Builds a temporary DuckDB warehouse from the Redshift DDL (through sqlglot, as the local
warehouse does), fills it with SQL-generated rows, then times what one dashboard refresh runs
(`chart_data`) per range. Baselines in the same run: the same refresh computed from the raw tables
(no rollups, as before `load` kept them), and a bare `count(*)` over the posts view.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.results import Figure, options, publish
from coinstream import REPO_ROOT
from warehouse.dashboard.data import chart_data, study
from warehouse.loader import Warehouse


def median_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--posts", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.smoke:
        args.posts, args.days, args.runs = 20_000, 2, 1
    minutes = args.days * 1440
    path = Path(tempfile.mkdtemp(prefix="coinstream-dash-")) / "w.duckdb"
    wh = Warehouse(path, REPO_ROOT / "redshift")
    wh.apply_ddl()
    db = wh.db
    start = time.perf_counter()
    db.execute(f"""
        INSERT INTO raw_candles
        SELECT 'coinone:KRW-BTC:' || i, 'coinone', 'KRW-BTC', TIMESTAMP '2026-10-29' + i * INTERVAL 1 MINUTE,
               TIMESTAMP '2026-10-29 09:00' + i * INTERVAL 1 MINUTE, 131000000, 131020000, 130980000, 131005000,
               1 + random() * 3, 1.3e8 * (1 + random() * 3), false, now(), now()
        FROM range({minutes}) t(i)""")
    db.execute(f"""
        INSERT INTO raw_posts
        SELECT 'x:' || i, CASE i % 3 WHEN 0 THEN 'x' WHEN 1 THEN 'bluesky' ELSE 'mastodon' END, i::VARCHAR,
               TIMESTAMP '2026-10-29' + (i % {minutes}) * INTERVAL 1 MINUTE, TIMESTAMP '2026-10-29 09:00',
               TIMESTAMP '2026-10-29' + (i % {minutes}) * INTERVAL 1 MINUTE, 'a', 'en', 'bitcoin #bitcoin',
               '["bitcoin"]', '[]', '["bitcoin"]', false, false, false, now(), now(), false
        FROM range({args.posts}) t(i)""")
    wh.recount_rollups()  # what `load` keeps as it copies each object
    print(
        f"built {args.days} days ({minutes:,} minutes) and {args.posts:,} posts in {time.perf_counter() - start:.1f} s"
    )
    floor = median_ms(lambda: db.execute("SELECT count(*) FROM posts").fetchone(), args.runs)
    print(f"baseline, count(*) over the deduplicated posts view: {floor:,.0f} ms")
    with_rollups = {r: median_ms(lambda r=r: chart_data(db, r), args.runs) for r in ("24h", "7d", "30d")}
    # what the page adds once per (range, window) and new rows: the family's verdicts (3 pairs here)
    judged = {r: median_ms(lambda r=r: study(db, r, 60), args.runs) for r in ("24h", "7d", "30d")}
    # the same page computed from the raw tables, as it was before `load` kept the rollups (and as it
    # still is for a warehouse no load has touched since)
    db.execute("DROP TABLE post_minutes")
    db.execute("DROP TABLE latest_candles")
    from_raw = {r: median_ms(lambda r=r: chart_data(db, r), args.runs) for r in ("24h", "7d", "30d")}
    for range_name, ms in with_rollups.items():
        raw = from_raw[range_name]
        print(
            f"dashboard refresh, range {range_name:>3}: {ms:,.0f} ms (median of {args.runs}); from the raw tables "
            f"without the rollups: {raw:,.0f} ms ({raw / ms:.1f}x slower); count(*) baseline {ms / floor:.2f}x"
        )
    for range_name, ms in judged.items():
        print(
            f"the family's verdicts, range {range_name:>3}: {ms:,.0f} ms (median of {args.runs}; 3 pairs, kept until "
            "new rows arrive)"
        )
    wh.close()
    figures = [
        Figure(
            f"dashboard_queries.refresh_{r}",
            f"dashboard refresh, range {r}, {args.days} days, {args.posts:,} posts",
            ms,
            "ms",
            baseline=from_raw[r],
            baseline_what="from the raw tables (no rollups)",
            ratio=from_raw[r] / ms,
            ratio_what="faster",
        )
        for r, ms in with_rollups.items()
    ]
    figures += [
        Figure(f"dashboard_queries.verdicts_{r}", f"the family's verdicts the page shows, range {r}", ms, "ms")
        for r, ms in judged.items()
    ]
    publish(
        "dashboard_queries",
        f"python -m benchmarks.dashboard_queries --posts {args.posts} --days {args.days} --runs {args.runs}",
        figures,
        args,
    )


if __name__ == "__main__":
    main()
