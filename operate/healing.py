"""Healing: the minutes a series lacks in the warehouse, read again from its API while the API still has them.

`coinstream run` asks the warehouse (the record of truth) which minutes each series is missing inside the window it
keeps (`--history`), leaves out what a history already read (an answer covered it: a minute nobody traded in stays
without a candle, and is not asked again) and the newest minutes (still on their way through the stream), and
backfills the rest through the same path as live records. What cannot be read is kept with its reason, which
`coinstream coverage` shows beside the gap.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coinstream import timeutil
from coinstream.config import Pipeline, Settings
from producer import backfill
from producer.backfill import Interval, Series
from producer.sources.history import History
from producer.state import StateFile
from warehouse.coverage import Coverage, coverage, missing

logger = logging.getLogger(__name__)

#: Minutes still travelling (producer -> stream -> KCL -> Firehose -> load) are not gaps yet.
SETTLE = timedelta(minutes=15)


def warehouse_series(history: History) -> tuple[str, str]:
    """The (kind, series) `coverage` names the series a history reads."""
    if history.source == "x":
        return "post counts", "x"
    if history.source in ("mastodon", "bluesky"):
        return "posts", history.source
    return "candles", history.series


def settle(settings: Settings, history: History) -> timedelta:
    """How long after its minute closed a series' newest minutes may still be missing without being a gap: X's
    counts arrive every `x_counts_every_minutes`, everything else within the minute."""
    if history.source == "x":
        return SETTLE + timedelta(minutes=settings.x_counts_every_minutes + settings.x_counts_reread_minutes)
    return SETTLE


@dataclass
class Reasons:
    """Why a series' window could not be read: kept beside the backfill's checkpoints, shown by `coverage`."""

    folder: Path
    said: dict[str, str] = field(default_factory=dict)

    @property
    def _file(self) -> StateFile:
        return StateFile(self.folder / "reasons.json")

    def load(self) -> dict[str, str]:
        """Series -> why its last heal stopped (absent: it read what it asked)."""
        return dict(self._file.load() or {})

    def save(self, reasons: dict[str, str]) -> None:
        """Keep the latest reason of each series; a series healed whole loses its reason."""
        self._file.save(reasons)


def forget_reads(settings: Settings) -> None:
    """kinesis-mock (re)started after a crash or a reboot: what a history read in its last seconds before may be
    gone with it (it writes its stream every 5 s), so each warehouse gap is read again once, not marked read."""
    for file in (settings.state_dir / "backfill").glob("*.json"):
        if file.name != "reasons.json":  # the checkpoints (producer.backfill.Checkpoints), not why a series stopped
            file.unlink(missing_ok=True)


def covered(settings: Settings, pipeline: Pipeline, now: datetime | None = None) -> list[Coverage]:
    """What the warehouse holds of each series now ([] before the first load); the file is closed again."""
    from warehouse.reading import open_reader

    db = open_reader(settings, pipeline)()
    if db is None:
        return []
    try:
        return coverage(db, now or timeutil.now())
    finally:
        db.close()


def plan(
    settings: Settings, found_now: list[Coverage], sources: list[str], history: timedelta, now: datetime
) -> tuple[backfill.Plan, dict[str, str]]:
    """What to read: each chosen series' warehouse gaps in [now - history, its settled end), less what a history
    already read; and the sources left out with their reason."""
    end = backfill.last_closed_minute(now, settings.candle_grace_seconds)
    start = end - history
    found = backfill.plan(settings, start, end, now=now)
    held = {(c.kind, c.series): c for c in found_now}
    chosen: list[Series] = []
    for series in found.series:
        if series.history.source not in sources:
            continue
        settled = end - settle(settings, series.history)
        holes = missing(held.get(warehouse_series(series.history)), start, settled)
        gaps = _intersect(series.gaps, holes)
        if gaps:
            chosen.append(Series(series.history, gaps, series.resume))
    left_out = {name: why for name, why in found.left_out.items() if name in sources}
    return backfill.Plan(start, end, chosen, left_out, found.notes), left_out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The parts both lists hold, newest first (as a backfill reads them)."""
    out = [(max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b if max(s1, s2) < min(e1, e2)]
    return sorted(out, reverse=True)


@dataclass
class HealReport:
    """What one heal did."""

    series: int = 0
    minutes: int = 0
    records: int = 0
    requests: int = 0
    #: series -> why it could not be read (left out, or stopped)
    reasons: dict[str, str] = field(default_factory=dict)


def heal(
    settings: Settings,
    pipeline: Pipeline,
    found_now: list[Coverage],
    sources: list[str],
    history: timedelta,
    *,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> HealReport:
    """Backfill every chosen series' gaps still inside the window; keep why a series could not be read."""
    from coinstream.aws import client
    from producer.kinesis_writer import KinesisWriter
    from producer.spool import Spool

    now = now or timeutil.now()
    found, left_out = plan(settings, found_now, sources, history, now)
    folder = settings.state_dir / "backfill"
    reasons = Reasons(folder)
    report = HealReport(reasons=dict(left_out))
    spool = Spool(folder / "spool")
    writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings), aggregate=True)
    if spool.files():
        spool.drain(writer)
    if found.series:
        done = backfill.run(found, lambda: writer, spool, backfill.Checkpoints(folder), now=now, stop=stop)
        for s in done.series:
            report.series += 1
            report.minutes += s.read_minutes
            report.records += s.records
            report.requests += s.requests
            if s.stopped:
                report.reasons[s.name] = s.stopped
    kept = {k: v for k, v in reasons.load().items() if k not in {s.name for s in found.series}}
    reasons.save({**kept, **report.reasons})
    return report


#: Gaps no history fills, whatever is asked: said as they are.
NEVER_READ = {
    ("posts", "x"): "X's posts are a sample (COINSTREAM_X_SAMPLE_EVERY_MINUTES), never read back: its counts give "
    "posts per minute",
    ("posts", "simulated"): "the simulation has no history of posts",
}


def explain(settings: Settings, found: list[Coverage]) -> dict[tuple[str, str], str]:
    """Why each series' gaps are there, where it is known: the reason its last heal or backfill could not read it,
    or that a history read every gap and the API had nothing there (no trade, no post)."""
    reasons = Reasons(settings.state_dir / "backfill").load()
    checkpoints = backfill.Checkpoints(settings.state_dir / "backfill")
    out: dict[tuple[str, str], str] = {}
    for c in found:
        key = (c.kind, c.series)
        source = c.series.split()[0]
        said = [why for name, why in reasons.items() if name in (c.series, source) or name.split()[0] == source]
        if key in NEVER_READ:
            out[key] = NEVER_READ[key]
        elif said:
            out[key] = said[0]
        elif c.gaps and c.kind == "candles":
            read, _ = checkpoints.load(c.series)
            minute = timedelta(minutes=1)
            holes = [(first.replace(tzinfo=UTC), first.replace(tzinfo=UTC) + n * minute) for first, n in c.gaps]
            unread = [h for hole in holes for h in backfill.subtract(hole, read)]
            out[key] = (
                "every gap was read from the API: it had no candle there (no trade)"
                if not unread
                else f"{len(unread)} not read back yet: `coinstream backfill` or `coinstream run` reads them"
            )
    return out
