"""`coinstream backfill`: every source's past, through the same path as live records.

History travels as live records do (stream -> KCL consumer -> Firehose -> warehouse) with the keys the live
producers give the same facts, so a second backfill, or one that overlaps the cron, changes no number in the
views. Each series (an exchange's market, X's counts, an instance's tag timeline) is read back page by page
from the window's end, in its own thread, within its API's published rate; one writer thread puts each page on
the stream (what the stream does not take goes to the backfill's spool) and only then checkpoints how far back
the series is read. A second run of the same command reads only what is not read yet; `refresh` reads it all.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coinstream.config import Settings
from coinstream.errors import CoinstreamError, FatalError
from coinstream.timeutil import epoch_minute, minute_start
from producer.kinesis_writer import KinesisWriter
from producer.sources.history import History, Page
from producer.sources.registry import SOURCES
from producer.spool import Spool
from producer.state import StateFile

logger = logging.getLogger(__name__)

#: The sources whose past can be read, in the order a plan lists them (every one by default).
HISTORY_SOURCES = (
    "upbit",
    "coinone",
    "binance",
    "coinbase",
    "okx",
    "bybit",
    "kraken",
    "bitstamp",
    "x",
    "mastodon",
    "bluesky",
)
#: Those whose markets `--market` names.
EXCHANGES = ("upbit", "coinone", "binance", "coinbase", "okx", "bybit", "kraken", "bitstamp", "simulated")
#: ... and those read only when named: the simulation's past (the demo's backfill).
NAMED_ONLY = ("simulated",)
#: Pages fetched but not yet on the stream: what bounds the memory a backfill holds, whatever its window.
QUEUED_PAGES = 8

Interval = tuple[datetime, datetime]
#: A window may start this much before the oldest time an API serves: it then starts there (`--since 7d` on X's
#: 7-day counts lands a minute before their oldest whole minute by the time the plan is made).
SLACK = timedelta(minutes=10)


def parse_when(text: str, now: datetime) -> datetime:
    """`7d`, `36h`, `90m` (that long before now), or a UTC date or time (`2026-11-27`, `2026-11-27T12:00`)."""
    found = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if found:
        units = {"d": "days", "h": "hours", "m": "minutes"}
        return minute_start(epoch_minute(now - timedelta(**{units[found[2]]: int(found[1])})))
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FatalError(
            f"{text!r} is not a time: give a duration before now (7d, 36h, 90m) or a UTC date or time "
            "(2026-11-27, 2026-11-27T12:00)"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return minute_start(epoch_minute(at))


def last_closed_minute(now: datetime, grace_seconds: float) -> datetime:
    """The end of the newest minute that is a fact (closed, plus the exchanges' grace)."""
    return minute_start(epoch_minute(now - timedelta(seconds=grace_seconds)))


def when(since: str, until: str | None, now: datetime, grace_seconds: float) -> Interval:
    """`--since` and `--until` as a window. Durations count back from the last closed minute, not the wall clock:
    `7d` is 10,080 minutes whichever second it is asked at (counted from `now`, it lost one inside the grace)."""
    closed = last_closed_minute(now, grace_seconds)
    return parse_when(since, closed), parse_when(until, closed) if until else closed


def subtract(window: Interval, covered: Iterable[Interval]) -> list[Interval]:
    """The parts of `window` no covered interval holds, newest first."""
    gaps = [window]
    for c_start, c_end in covered:
        left: list[Interval] = []
        for g_start, g_end in gaps:
            if c_end <= g_start or c_start >= g_end:
                left.append((g_start, g_end))
                continue
            if g_start < c_start:
                left.append((g_start, c_start))
            if c_end < g_end:
                left.append((c_end, g_end))
        gaps = left
    return sorted(gaps, reverse=True)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Intervals joined where they touch or overlap, oldest first."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


class Checkpoints:
    """How far back each series is read: the intervals read whole, and where an unfinished one resumes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _file(self, series: str) -> StateFile:
        return StateFile(self.folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', series)}.json")

    def load(self, series: str) -> tuple[list[Interval], dict[str, str]]:
        """(intervals read, the resume point {reached, token} of a window stopped half way, or {})."""
        state = self._file(series).load() or {}
        covered = [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in state.get("covered", [])]
        return covered, dict(state.get("resume") or {})

    def advance(self, series: str, reached: datetime, end: datetime, token: str | None) -> None:
        """[reached, end) is read and its records are safe; the window resumes at `token` (None: it is done)."""
        covered, _ = self.load(series)
        joined = merge([*covered, *([(reached, end)] if reached < end else [])])
        state: dict[str, Any] = {"covered": [[s.isoformat(), e.isoformat()] for s, e in joined]}
        if token is not None:
            state["resume"] = {"reached": reached.isoformat(), "token": token}
        self._file(series).save(state)


@dataclass
class Series:
    """One series to read: what is left of the window, and what reading it did."""

    history: History
    #: the parts of the window not read yet, newest first
    gaps: list[Interval]
    #: resumes the gap that ends where an earlier run stopped
    resume: dict[str, str] = field(default_factory=dict)
    read_minutes: int = 0
    requests: int = 0
    records: int = 0
    stopped: str = ""
    finished: bool = False
    #: how far back each gap (by its end) is read in this run
    upper: dict[datetime, datetime] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """As progress and the summary name it."""
        return self.history.series

    @property
    def minutes(self) -> int:
        """Minutes left to read when the run began."""
        return sum(int((e - s) / timedelta(minutes=1)) for s, e in self.gaps)

    def planned_requests(self) -> int | None:
        """Requests the plan takes at most (None: depends on how much was posted)."""
        counts = [self.history.plan(s, e) for s, e in self.gaps]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)

    def dollars(self) -> float:
        """What the plan costs (X bills each request)."""
        return (self.planned_requests() or 0) * self.history.dollars_per_request


@dataclass(frozen=True)
class Plan:
    """What a backfill will read: its window, each series, and the sources left out (with the reason)."""

    since: datetime
    until: datetime
    series: list[Series]
    left_out: dict[str, str]
    #: series whose window starts later than asked (their API keeps less), and why
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def dollars(self) -> float:
        """The X bill of the whole plan."""
        return sum(s.dollars() for s in self.series)


def plan(
    settings: Settings,
    since: datetime,
    until: datetime,
    *,
    sources: list[str] | None = None,
    markets: list[str] | None = None,
    refresh: bool = False,
    now: datetime,
) -> Plan:
    """The series to read and what is left of each; bad input is one FatalError line, before any request."""
    if since >= until:
        raise FatalError(f"--since {since:%Y-%m-%dT%H:%MZ} is not before --until {until:%Y-%m-%dT%H:%MZ}")
    for name in sources or []:
        if name not in HISTORY_SOURCES + NAMED_ONLY:
            known = ", ".join(HISTORY_SOURCES + NAMED_ONLY)
            raise FatalError(f"unknown source {name!r} for backfill: use one of {known}")
    checkpoints = Checkpoints(settings.state_dir / "backfill")
    chosen: list[Series] = []
    left_out: dict[str, str] = {}
    notes: dict[str, str] = {}
    for name in sources or HISTORY_SOURCES:
        try:
            histories = SOURCES[name].histories(settings, markets if name in EXCHANGES else None)
        except FatalError as exc:
            if sources:  # asked for by name: its missing settings are the answer
                raise
            left_out[name] = str(exc)
            continue
        for history in histories:
            start = since
            earliest = history.earliest(now)
            if earliest is not None and earliest - SLACK <= since < earliest:
                start = earliest  # `--since 7d` on X: its window starts at the oldest minute X still answers for
            elif earliest is not None and since < earliest and not sources:
                start = earliest  # every source by default: each reads as far back as it can, and says so
                notes[history.series] = f"reaches back to {earliest:%Y-%m-%d %H:%M} UTC only: read from there"
            elif earliest is not None and since < earliest:
                raise FatalError(
                    f"{history.series} reaches back to {earliest:%Y-%m-%dT%H:%MZ} at the earliest (--since "
                    f"{since:%Y-%m-%dT%H:%MZ} is older): use --since {earliest:%Y-%m-%dT%H:%M} or later, or leave "
                    f"{history.source} out with --source"
                )
            covered, resume = ([], {}) if refresh else checkpoints.load(history.series)
            gaps = subtract((start, until), covered)
            if gaps:
                chosen.append(Series(history, gaps, resume))
    return Plan(since, until, chosen, left_out, notes)


def drop_unlisted(settings: Settings, found: Plan, markets: list[str], now: datetime) -> tuple[Plan, dict[str, str]]:
    """The plan without the series of `markets` (as asked by --market) that their exchange does not list, and why
    each went; an exchange whose list cannot be had keeps its series (a refused request then says why)."""
    from producer.sources.candles import ExchangeSource

    dropped: dict[str, str] = {}
    listings: dict[str, tuple[list[str], datetime] | None] = {}
    for series in found.series:
        source = SOURCES.get(series.history.source)
        market = getattr(getattr(series.history, "candles", None), "market", None)
        if market not in markets or not (isinstance(source, type) and issubclass(source, ExchangeSource)):
            continue
        if source.name not in listings:
            listings[source.name] = source.listing_of(settings).markets(now)
        listed = listings[source.name]
        if listed is not None and market not in listed[0]:
            btc = [m for m in listed[0] if m.endswith("-BTC")][:8]
            dropped[series.name] = (
                f"{source.name} does not list {market} (its list of {listed[1]:%Y-%m-%d}); its BTC markets include "
                f"{', '.join(btc) or 'none'}"
            )
    kept = [s for s in found.series if s.name not in dropped]
    return Plan(found.since, found.until, kept, found.left_out, found.notes), dropped


def check_budget(found: Plan, now: datetime) -> None:
    """A plan that would cost more than the X budget has left says so and stops, before the first request."""
    for series in found.series:
        cost = series.dollars()
        budget = getattr(series.history, "budget", None)
        if cost and budget is not None:
            left = budget(now).left
            if cost > left + 1e-9:
                raise FatalError(
                    f"{series.name}: the plan takes {series.planned_requests()} requests (${cost:.3f}) and the X "
                    f"budget has ${left:.3f} left today (COINSTREAM_X_DOLLARS_PER_DAY, _PER_MONTH): raise it, or "
                    "backfill a shorter window (--since)"
                )


#: Told of every page once its records are safe: (series, page, minutes it read).
OnPage = Callable[[Series, Page, int], None]


@dataclass
class Outcome:
    """What a backfill run did."""

    series: list[Series]
    spooled: int = 0
    refused: int = 0
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """Every series read to the start of its window."""
        return all(s.finished for s in self.series)


def run(
    found: Plan,
    writer: Callable[[], KinesisWriter],
    spool: Spool,
    checkpoints: Checkpoints,
    *,
    now: datetime,
    on_page: OnPage | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Read every series of the plan at once (each within its API's rate), one writer putting pages in order.

    A series whose API fails stops with the reason and the others go on; its checkpoint keeps what was read, so
    the next run resumes it. `stop` (Ctrl-C) ends each series after the page it is reading.
    """
    stop = stop or threading.Event()
    outcome = Outcome(found.series)
    pages: queue.Queue[tuple[Series, datetime, Page] | None] = queue.Queue(maxsize=QUEUED_PAGES)

    def read(series: Series) -> None:
        try:
            for start, end in series.gaps:
                token = series.resume.get("token") if series.resume.get("reached") == end.isoformat() else None
                for page in series.history.pages(start, end, token, now):
                    pages.put((series, end, page))
                    if stop.is_set():
                        return
            series.finished = True
        except CoinstreamError as exc:
            series.stopped = str(exc)
        except Exception as exc:  # a shape nobody foresaw stops this series, not the others, and says what
            logger.debug("backfill %s", series.name, exc_info=True)
            series.stopped = f"{type(exc).__name__}: {exc}"[:300]

    def write() -> None:
        while (item := pages.get()) is not None:
            series, end, page = item
            if page.records:
                result = writer().put(page.records)
                spool.refuse(result.refused)
                outcome.refused += len(result.refused)
                if result.unsent:
                    spool.write(result.unsent)  # kept for the next run: never a silent loss
                    outcome.spooled += len(result.unsent)
            checkpoints.advance(series.name, page.reached, end, page.token)
            minutes = int((series.upper.get(end, end) - page.reached) / timedelta(minutes=1))
            series.upper[end] = page.reached
            series.read_minutes += minutes
            series.requests += page.requests
            series.records += len(page.records)
            if on_page is not None:
                on_page(series, page, minutes)

    writer_thread = threading.Thread(target=write, name="backfill-writer")
    writer_thread.start()
    readers = [threading.Thread(target=read, args=(s,), name=f"backfill {s.name}") for s in found.series]
    for thread in readers:
        thread.start()
    try:
        for thread in readers:
            while thread.is_alive():
                thread.join(timeout=0.2)
    except KeyboardInterrupt:
        outcome.interrupted = True
        stop.set()
        for thread in readers:
            thread.join()
    finally:
        pages.put(None)
        writer_thread.join()
    if stop.is_set():
        outcome.interrupted = True
    return outcome
