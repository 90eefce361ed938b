"""X as a source: per-minute counts on their own schedule and a sample of posts, within a dollar budget; and the
counts of the last 7 days as a history."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field, model_validator

from coinstream.config import Settings
from coinstream.errors import CoinstreamError, TransientError
from coinstream.records import Envelope, Kind
from coinstream.secrets import x_token
from coinstream.timeutil import epoch_minute, minute_start
from coinstream.x_bill import BudgetSpent, XBudget, XPrices, XUsage, carry_old_reads
from producer.lock import run_lock
from producer.sources.base import Cursor, Probe, RecordedParser, RunOptions, Source
from producer.sources.history import History, Page
from producer.sources.x_answers import SOURCE, parse_counts, parse_recent_search
from producer.sources.x_client import CountsResult, XRecentSearch
from producer.state import StateFile

logger = logging.getLogger(__name__)


class XCursor(Cursor):
    """Where X reading resumes, which slots are done, and what X billed per UTC day this month."""

    since_id: str | None = None
    #: the last minute whose count was read (epoch minutes)
    counted_minute: int | None = None
    #: the epoch minute of the last complete counts run and of the last sample read (a run is due once its
    #: period's slot on the clock moves past theirs; kept as minutes so a changed period still compares)
    counts_run_minute: int | None = None
    sample_run_minute: int | None = None
    rate_limited_until: int | float | None = None
    spent: dict[str, XUsage] = Field(default_factory=dict)

    _carry_old_reads = model_validator(mode="before")(carry_old_reads)


class X(Source[XCursor]):
    """X API v2 through tweepy: per-minute counts on their own schedule, a sample of posts, within a dollar budget."""

    name = "x"
    kinds = frozenset({Kind.POST, Kind.POST_COUNT})
    cursor_type = XCursor
    summary = (
        "X per-minute counts (every COINSTREAM_X_COUNTS_EVERY_MINUTES) and a sample of posts; needs "
        "COINSTREAM_X_BEARER_TOKEN, billed per request and post within COINSTREAM_X_DOLLARS_PER_DAY/_MONTH"
    )
    recorded: ClassVar[Mapping[str, RecordedParser]] = {
        "x": lambda body, options, now: parse_recent_search(body, now),
        "x_counts": lambda body, options, now: parse_counts(body, "recorded", now),
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def build(cls, settings: Settings, options: RunOptions) -> X:
        """The token is read only when a run really asks X (most runs have nothing due and ask nothing)."""
        return cls(settings)

    def fetch(self, cursor: XCursor | None, now: datetime) -> tuple[list[Envelope], XCursor | None]:
        """What is due: the counts since the last counted minute, then one sample read; each within the budget."""
        s = self.settings
        cursor = cursor or XCursor()
        paused = cursor.rate_limited_until
        if paused is not None and now.timestamp() < paused:
            logger.info("x: rate limited until %s; this run asks nothing", datetime.fromtimestamp(paused, UTC))
            return [], None
        running = epoch_minute(now)
        counts_due = _due(cursor.counts_run_minute, running, s.x_counts_every_minutes)
        sample_due = s.x_sample_size > 0 and _due(cursor.sample_run_minute, running, s.x_sample_every_minutes)
        if not (counts_due or sample_due):
            return [], None
        budget = XBudget(XPrices.load(s.prices_file), s.x_dollars_per_day, s.x_dollars_per_month, cursor.spent, now)
        search = XRecentSearch(x_token(s), s.x_query, base_url=s.x_url)
        moved = cursor.model_dump()
        envelopes: list[Envelope] = []
        stop = ""
        if counts_due:
            counted = self._counts(search, cursor, budget, now)
            envelopes += counted.counts
            if counted.complete:
                moved.update(counted_minute=epoch_minute(counted.end) - 1, counts_run_minute=running)
            stop = counted.stopped_by
            moved["rate_limited_until"] = counted.rate_limited_until or cursor.rate_limited_until
        if sample_due and not stop:
            try:
                size = budget.reads_affordable(s.x_sample_size)
            except BudgetSpent as exc:
                stop = str(exc)
            else:
                try:
                    result = search.sample(cursor.since_id, size, now, self.skips)
                except CoinstreamError as exc:
                    if not counts_due:
                        raise
                    # the counts request was billed and its minutes fetched: keep both, then fail the run
                    self.failed = exc
                    moved["spent"] = budget.spent
                    return envelopes, XCursor.model_validate(moved)
                budget.charge_reads(result.read)
                envelopes += result.posts
                moved.update(since_id=result.newest_id or cursor.since_id)
                if result.stopped_by:
                    stop = f"x: {result.stopped_by}"
                    moved["rate_limited_until"] = result.rate_limited_until or cursor.rate_limited_until
                else:
                    moved["sample_run_minute"] = running
        if stop:
            logger.warning("%s", stop)
        moved["spent"] = budget.spent
        return envelopes, XCursor.model_validate(moved)

    def _counts(self, search: XRecentSearch, cursor: XCursor, budget: XBudget, now: datetime) -> _Counted:
        """Every closed minute since the last counted one, the last few again (late-indexed posts raise them)."""
        s = self.settings
        # X answers only for times at least 10 s in the past; the minute that ended less than 10 s ago waits
        end = minute_start(epoch_minute(now - timedelta(seconds=10)))
        oldest = end - timedelta(days=7) + timedelta(minutes=1)  # the recent endpoint's window
        if cursor.counted_minute is None:
            start = end - timedelta(minutes=s.x_counts_every_minutes)
        else:
            start = minute_start(cursor.counted_minute + 1 - s.x_counts_reread_minutes)
        if start < oldest:
            logger.warning(
                "x counts: minutes before %s are older than X's 7-day window and cannot be counted any more",
                oldest.isoformat(),
            )
            start = oldest
        if start >= end:
            return _Counted([], True, end)
        result = search.counts(start, end, budget, now, self.skips)
        counted_end = min(end, result.whole_end or end)
        return _Counted(result.counts, result.complete, counted_end, result.stopped_by, result.rate_limited_until)

    @classmethod
    def histories(cls, settings: Settings, markets: list[str] | None) -> list[History]:
        """X's per-minute counts of the last 7 days (needs the token: every request is billed)."""
        x_token(settings)  # not configured: one line naming the settings, before anything is planned
        return [XCountsHistory(settings)]

    @classmethod
    def probes(cls, settings: Settings) -> list[Probe]:
        """Only that a token is configured: every X request is billed. The token is never printed."""

        def token() -> str:
            return f"configured ({len(x_token(settings).get_secret_value())} characters)"

        return [
            Probe(
                "source x (token only: every X request is billed)",
                token,
                "set COINSTREAM_X_BEARER_TOKEN or COINSTREAM_X_BEARER_TOKEN_FILE",
            )
        ]


def _due(last_run: int | None, running: int, every: int) -> bool:
    """Whether the clock has entered a new slot of `every` minutes (aligned to UTC midnight) since `last_run`."""
    return last_run is None or running // every > last_run // every


@dataclass
class _Counted:
    counts: list[Envelope]
    complete: bool
    end: datetime
    stopped_by: str = ""
    rate_limited_until: int | None = None


class XCountsHistory(History):
    """X's per-minute counts of the last 7 days (counts/recent, granularity=minute), read back one window of
    `COINSTREAM_X_COUNTS_BACKFILL_WINDOW_MINUTES` a request, within the dollar budget the live producer keeps.

    The budget's ledger is the live producer's own state: while this reads, it holds that producer's lock (a
    live X run meanwhile does nothing and the next one goes on), and books each request there as it is made.
    """

    source = SOURCE
    series = "x counts"
    #: a 429 whose reset is this near is waited out (X's rate limits run in 15-minute windows); a later one stops
    LONGEST_WAIT = 15 * 60.0
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prices = XPrices.load(settings.prices_file)
        self.dollars_per_request = self.prices.counts_request
        self.window = timedelta(minutes=settings.x_counts_backfill_window_minutes)
        self.folder = settings.state_dir / "producer"

    def earliest(self, now: datetime) -> datetime:
        """counts/recent answers for the last 7 days (to the minute)."""
        return minute_start(epoch_minute(now - timedelta(days=7)) + 1)

    def plan(self, start: datetime, end: datetime) -> int:
        """One request per window (X may page a window: each further page is one more request, and is booked)."""
        return math.ceil((end - start) / self.window)

    def estimate(self, since: datetime, until: datetime, now: datetime) -> tuple[int, float]:
        """(requests, dollars) a backfill of [since, until) would take, clipped to what X answers for: what the plan
        would cost with a token (none is needed to say so)."""
        start = max(since, self.earliest(now))
        requests = self.plan(start, until) if start < until else 0
        return requests, requests * self.dollars_per_request

    def budget(self, now: datetime) -> XBudget:
        """The live producer's budget as its state holds it now."""
        state = StateFile(self.folder / "post-x.state.json").load()
        spent = XCursor.model_validate(state).spent if state else {}
        s = self.settings
        return XBudget(self.prices, s.x_dollars_per_day, s.x_dollars_per_month, spent, now)

    def wait_out(self, until: int | None) -> bool:
        """Wait for a 429's reset when it is near (within X's 15-minute rate window), and say whether it was."""
        if until is None:
            return False
        wait = until - self.clock() + 1  # X's reset is a whole second: one more is past it
        if wait > self.LONGEST_WAIT:
            return False
        logger.warning("x counts: rate limited (HTTP 429); waiting %.0f s for X's reset, then going on", max(0, wait))
        self.sleep(max(0.0, wait))
        return True

    @staticmethod
    def why(result: CountsResult) -> str:
        """Why a counts window stopped: a far reset names when to run the command again."""
        if result.rate_limited_until is not None:
            at = datetime.fromtimestamp(result.rate_limited_until, UTC)
            return f"rate limited (HTTP 429) until {at:%Y-%m-%d %H:%M:%S} UTC: run the command again after that"
        return result.stopped_by

    def pages(self, start: datetime, end: datetime, token: str | None, now: datetime) -> Iterator[Page]:
        """Windows from the end back to the start, each one billed request (or more) booked before it is made."""
        search = XRecentSearch(x_token(self.settings), self.settings.x_query, base_url=self.settings.x_url)
        state_file = StateFile(self.folder / "post-x.state.json")
        with run_lock(self.folder / "post-x.lock"):
            upper = datetime.fromisoformat(token) if token else end
            while upper > start:
                lower = max(start, upper - self.window)
                budget = self.budget(now)
                before = budget.today.counts_requests
                result = search.counts(lower, upper, budget, now, self.skips)
                state = state_file.load() or {}
                state_file.save({**state, "spent": {d: u.model_dump() for d, u in budget.spent.items()}})
                requests = budget.today.counts_requests - before
                if not result.complete and self.wait_out(result.rate_limited_until):
                    continue  # the same window again, once X's window has reset
                if not result.complete:
                    raise TransientError(f"x counts {lower:%Y-%m-%dT%H:%MZ}..{upper:%H:%MZ}: {self.why(result)}")
                yield Page(result.counts, lower, lower.isoformat() if lower > start else None, requests)
                upper = lower
