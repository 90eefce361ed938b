"""What the warehouse holds of each series: the window it covers, every gap in it, and how far it is behind.

A candle series has a gap where minutes have no candle (a pipeline outage, a window nobody backfilled; on
Upbit also a minute nobody traded in, which its minute spine counts as volume 0). A post source has one where
minutes have no post, which on a quiet source is no fault. The tail is measured to the last closed minute,
not to the last row: a series that stopped an hour ago is an hour behind, not complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

#: One row per minute each series has data in: candle series by (exchange, market), post sources by source,
#: X's own counts apart from posts read.
_MINUTES = """
    SELECT 'candles' AS kind, exchange || ' ' || market AS series, minute_utc FROM candles
    UNION SELECT 'posts', source, minute_utc FROM posts
    UNION SELECT 'post counts', source, minute_utc FROM post_counts
"""


@dataclass
class Coverage:
    """One series' coverage."""

    kind: str
    series: str
    first: datetime
    last: datetime
    minutes: int
    #: (first missing minute, minutes missing), oldest first
    gaps: list[tuple[datetime, int]] = field(default_factory=list)
    #: minutes from the series' last minute to the last closed one
    behind: int = 0

    @property
    def span(self) -> int:
        """Minutes from the first to the last, both included."""
        return int((self.last - self.first) / timedelta(minutes=1)) + 1

    @property
    def missing(self) -> int:
        """Minutes of the span without data."""
        return self.span - self.minutes


def coverage(db: Any, now: datetime) -> list[Coverage]:
    """Every series of the warehouse, with its gaps and how far behind the last closed minute it is."""
    names = {
        n
        for (n,) in db.execute(
            "SELECT view_name FROM duckdb_views() UNION SELECT table_name FROM duckdb_tables()"
        ).fetchall()
    }
    if not {"candles", "posts", "post_counts"} <= names:
        return []  # a copy of minute_metrics alone (Athena's answer on AWS): no rows to measure
    found: dict[tuple[str, str], Coverage] = {}
    for kind, series, first, last, minutes in db.execute(
        f"SELECT kind, series, min(minute_utc), max(minute_utc), count(*) FROM ({_MINUTES}) "  # noqa: S608
        "GROUP BY kind, series ORDER BY kind, series"
    ).fetchall():
        found[(kind, series)] = Coverage(kind, series, first, last, minutes)
    gaps = db.execute(
        f"""SELECT kind, series, previous + INTERVAL 1 MINUTE, date_diff('minute', previous, minute_utc) - 1
            FROM (SELECT kind, series, minute_utc,
                         lag(minute_utc) OVER (PARTITION BY kind, series ORDER BY minute_utc) AS previous
                  FROM ({_MINUTES}))
            WHERE date_diff('minute', previous, minute_utc) > 1
            ORDER BY kind, series, minute_utc"""  # noqa: S608
    ).fetchall()
    for kind, series, start, missing in gaps:
        found[(kind, series)].gaps.append((start, missing))
    closed = now.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(minutes=1)
    for one in found.values():
        one.behind = max(0, int((closed - one.last) / timedelta(minutes=1)))
    return list(found.values())


def missing(found: Coverage | None, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The minutes of [start, end) (aware UTC) a series has no row for, as intervals, oldest first: before its first
    minute, its gaps, after its last; the whole window for a series the warehouse does not hold."""
    if start >= end:
        return []
    if found is None:
        return [(start, end)]

    def aware(at: datetime) -> datetime:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at

    minute = timedelta(minutes=1)
    holes = [(start, aware(found.first))]
    holes += [(aware(first), aware(first) + n * minute) for first, n in found.gaps]
    holes.append((aware(found.last) + minute, end))
    out = [(max(s, start), min(e, end)) for s, e in holes]
    return [(s, e) for s, e in out if s < e]
