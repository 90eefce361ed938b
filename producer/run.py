"""One producer run, the way cron starts it: lock, send the spool, fetch, put, spool what failed.

Exit codes (`Outcome.code`): 0 sent, 3 partial (some records spooled for the next run),
4 nothing to do (no new records, or another run still holds the lock), 1 failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.http import ApiClient
from coinstream.records import Envelope, Kind
from coinstream.timeutil import epoch_minute, minute_start
from producer.kinesis_writer import KinesisWriter
from producer.lock import AlreadyRunning, run_lock
from producer.sources import simulated
from producer.sources.bluesky import JetstreamListener
from producer.sources.coinone import CoinoneCandles
from producer.sources.mastodon import MastodonTag
from producer.sources.offline import replay
from producer.sources.upbit import UpbitCandles
from producer.sources.x_search import XRecentSearch
from producer.spool import Spool
from producer.state import StateFile

logger = logging.getLogger(__name__)


EXCHANGES: dict[str, type[CoinoneCandles] | type[UpbitCandles]] = {"coinone": CoinoneCandles, "upbit": UpbitCandles}


class Code(IntEnum):
    """Exit codes of a producer run."""

    SENT = 0
    FAILED = 1
    PARTIAL = 3
    NOTHING = 4


@dataclass
class Outcome:
    """What one run did."""

    code: Code
    fetched: int = 0
    sent: int = 0
    spooled: int = 0
    drained: int = 0
    refused: int = 0
    message: str = ""


def _fetch(
    kind: Kind,
    source: str,
    state: dict[str, Any],
    settings: Settings,
    *,
    from_dir: Path,
    market: str,
    backfill_minutes: int,
    now: datetime,
) -> list[Envelope]:
    """Fetch one run's records; the position to save afterwards goes into state["next_..."]."""
    if source == "offline":
        return replay(from_dir, kind, market=market, now=now)
    if source in EXCHANGES:
        if kind is not Kind.CANDLE:
            raise FatalError(f"{source} gives candles: use `coinstream produce candles --source {source}`")
        done = state.get("last_minute")
        since = minute_start(done) if isinstance(done, int) else None
        base_url = settings.coinone_url if source == "coinone" else settings.upbit_url
        candles = EXCHANGES[source](market, ApiClient(base_url)).fetch(since, now)
        if candles:
            state["next_last_minute"] = epoch_minute(candles[-1].event_time)
        return candles
    if source == "mastodon":
        if kind is not Kind.POST:
            raise FatalError("mastodon gives posts: use `coinstream produce posts --source mastodon`")
        cursors: dict[str, str] = dict(state.get("min_id") or {})
        posts: list[Envelope] = []
        for instance in [i.strip() for i in settings.mastodon_instances.split(",") if i.strip()]:
            found, newest = MastodonTag(ApiClient(instance)).fetch(cursors.get(instance), now)
            posts.extend(found)
            if newest:
                cursors[instance] = newest
        state["next_min_id"] = cursors
        return posts
    if source == "bluesky":
        if kind is not Kind.POST:
            raise FatalError("bluesky gives posts: use `coinstream produce posts --source bluesky`")
        cursor = state.get("cursor")
        listener = JetstreamListener(
            settings.bluesky_url, seconds=settings.bluesky_seconds, max_posts=settings.bluesky_max_posts
        )
        heard = listener.listen(cursor if isinstance(cursor, int) else None, now)
        if heard.cursor:
            state["next_cursor"] = heard.cursor
        return heard.posts
    if source == "x":
        if kind is not Kind.POST:
            raise FatalError("x gives posts: use `coinstream produce posts --source x`")
        return _fetch_x(state, settings, now)
    if source == "simulated":
        sim = simulated.Simulation(market=market)
        last_closed = epoch_minute(now) - 1
        done = state.get("last_minute")
        first = int(done) + 1 if isinstance(done, int) else last_closed - backfill_minutes + 1
        if first > last_closed:
            return []
        make = simulated.candles if kind is Kind.CANDLE else simulated.posts
        state["next_last_minute"] = last_closed
        return make(sim, first, last_closed, now)
    raise FatalError(f"unknown source {source!r}: use offline, simulated, coinone, upbit, x, mastodon or bluesky")


def _fetch_x(state: dict[str, Any], settings: Settings, now: datetime) -> list[Envelope]:
    """Recent search within the per-run and per-day read budgets; a 429 pauses runs until its reset."""
    paused = state.get("rate_limited_until")
    if isinstance(paused, int | float) and now.timestamp() < paused:
        logger.info("x: rate limited until %s; this run reads nothing", datetime.fromtimestamp(paused, UTC))
        return []
    day = now.date().isoformat()
    used = int((state.get("reads") or {}).get(day, 0))
    budget = min(settings.x_posts_per_run, settings.x_posts_per_day - used)
    if budget < 10:
        logger.warning(
            "x: the daily read budget of %d posts is used up; reading resumes tomorrow (UTC) "
            "(COINSTREAM_X_POSTS_PER_DAY)",
            settings.x_posts_per_day,
        )
        return []
    search = XRecentSearch(settings.x_token(), settings.x_query)
    # counts first: one cheap request gives every closed minute since the last counted one
    counted = state.get("counted_minute")
    since = minute_start(counted + 1) if isinstance(counted, int) else now - timedelta(minutes=60)
    counts = search.counts(since, now)
    if counts:
        state["next_counted_minute"] = epoch_minute(counts[-1].event_time)
    result = search.fetch(state.get("since_id"), budget, now)
    if result.stopped_by:
        logger.warning("x: stopped after reading %d posts: %s", result.read, result.stopped_by)
    if result.rate_limited_until:
        state["next_rate_limited_until"] = result.rate_limited_until
    if result.newest_id:
        state["next_since_id"] = result.newest_id
    state["next_reads"] = {day: used + result.read}  # only today's count is kept
    return counts + result.posts


def produce(
    kind: Kind,
    source: str,
    settings: Settings,
    pipeline: Pipeline,
    *,
    from_dir: Path,
    market: str = "KRW-BTC",
    backfill_minutes: int = 60,
    now: datetime | None = None,
) -> Outcome:
    """One cron-safe run of one producer."""
    name = f"{kind.value}-{source}"
    folder = settings.state_dir / "producer"
    spool = Spool(folder / "spool" / name)
    state_file = StateFile(folder / f"{name}.state.json")
    try:
        with run_lock(folder / f"{name}.lock"):
            writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings))
            drained = spool.drain(writer)
            state = state_file.load()
            envelopes = _fetch(
                kind,
                source,
                state,
                settings,
                from_dir=from_dir,
                market=market,
                backfill_minutes=backfill_minutes,
                now=now or datetime.now(UTC),
            )
            out = Outcome(Code.SENT, fetched=len(envelopes), drained=drained.sent)
            if envelopes:
                result = writer.put(envelopes)
                spool.refuse(result.refused)
                out.sent, out.refused = result.sent, len(result.refused)
                if result.unsent:
                    spool.write(result.unsent)  # raises FatalError (exit 1) if it cannot: never a silent loss
                    out.spooled = len(result.unsent)
            # only now, with every record sent or on disk, does the run move its position on
            moved = {k.removeprefix("next_"): state.pop(k) for k in [k for k in state if k.startswith("next_")]}
            if moved:
                state_file.save({**state, **moved})
            waiting = spool.pending()
            if out.spooled or waiting:
                out.code = Code.PARTIAL
                out.message = f"{waiting} records wait in the spool {spool.folder} for the next run"
                logger.warning("%s: %s", name, out.message)
            elif not envelopes and not drained.sent:
                out.code = Code.NOTHING
                out.message = "nothing new to send"
            return out
    except AlreadyRunning as exc:
        logger.info("%s: %s; this run exits without doing anything", name, exc)
        return Outcome(Code.NOTHING, message=str(exc))
