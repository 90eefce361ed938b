"""One producer run, the way cron starts it: lock, send the spool, fetch, put, spool what failed.

Exit codes (`Outcome.code`): 0 sent, 3 partial (some records spooled for the next run),
4 nothing to do (no new records, or another run still holds the lock), 1 failure.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path

from coinstream import timeutil
from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.errors import TryLater
from coinstream.records import Kind
from producer.kinesis_writer import KinesisWriter
from producer.lock import AlreadyRunning, run_lock
from producer.sources import registry
from producer.sources.base import RunOptions
from producer.spool import DrainResult, Spool
from producer.state import StateFile

logger = logging.getLogger(__name__)


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
    #: malformed items the source skipped (each logged with its reason)
    skipped: int = 0
    message: str = ""


def run_name(kind: Kind, source: str, market: str) -> str:
    """The name of a producer's state, lock and spool: per market for candles."""
    return f"{kind.value}-{source}-{market}" if kind is Kind.CANDLE else f"{kind.value}-{source}"


def _adopt_unmarketed_state(folder: Path, kind: Kind, source: str, market: str) -> None:
    """Versions before per-market names kept one KRW-BTC candle state per source: take it over, once."""
    if kind is not Kind.CANDLE or market != "KRW-BTC":
        return
    old, new = f"{kind.value}-{source}", run_name(kind, source, market)
    for before, after in (
        (folder / f"{old}.state.json", folder / f"{new}.state.json"),
        (folder / "spool" / old, folder / "spool" / new),
    ):
        if before.exists() and not after.exists():
            before.rename(after)
            logger.info("%s: took over %s from an earlier version", new, before)


def produce(
    kind: Kind,
    source: str,
    settings: Settings,
    pipeline: Pipeline,
    *,
    from_dir: Path | None = None,
    market: str = "KRW-BTC",
    backfill_minutes: int = 60,
    now: datetime | None = None,
) -> Outcome:
    """One cron-safe run of one producer: lock, drain the spool, fetch, put, commit the cursor.

    Candle producers keep their state, lock and spool per market, so markets never share a position
    and runs of two markets never wait for each other.
    """
    options = RunOptions(
        kind,
        market=market,
        backfill_minutes=backfill_minutes,
        from_dir=from_dir,
        grace_seconds=settings.candle_grace_seconds,
        reread_minutes=settings.candle_reread_minutes,
    )
    fetcher = registry.build(source, settings, options)
    folder = settings.state_dir / "producer"
    name = run_name(kind, source, market)
    _adopt_unmarketed_state(folder, kind, source, market)
    spool = Spool(folder / "spool" / name)
    state_file = StateFile(folder / f"{name}.state.json")
    try:
        with run_lock(folder / f"{name}.lock"):
            # built only when there is something to send: most runs of a scheduled source have nothing due
            writer = functools.cache(lambda: KinesisWriter(pipeline.stream_name, client("kinesis", settings)))
            drained = spool.drain(writer()) if spool.files() else DrainResult()
            state = state_file.load()
            cursor = fetcher.cursor_type.model_validate(state) if state else None
            closed = ""
            try:
                envelopes, moved = fetcher.fetch(cursor, now or timeutil.now())
            except TryLater as exc:  # the API is closed for a while: keep the state, the next run asks again
                logger.warning("%s: %s", name, exc)
                envelopes, moved, closed = [], None, str(exc)
            out = Outcome(Code.SENT, fetched=len(envelopes), drained=drained.sent, skipped=len(fetcher.skips.reasons))
            if envelopes:
                result = writer().put(envelopes)
                spool.refuse(result.refused)
                out.sent, out.refused = result.sent, len(result.refused)
                if result.unsent:
                    spool.write(result.unsent)  # raises FatalError (exit 1) if it cannot: never a silent loss
                    out.spooled = len(result.unsent)
            # only now, with every record sent or on disk, does the run move its position on
            if moved is not None and moved != cursor:
                state_file.save(moved.model_dump(mode="json"))
            if fetcher.failed is not None:
                raise fetcher.failed  # what was fetched before the failure is sent and its position kept
            waiting = spool.pending()
            if out.spooled or waiting:
                out.code = Code.PARTIAL
                out.message = f"{waiting} records wait in the spool {spool.folder} for the next run"
                logger.warning("%s: %s", name, out.message)
            elif drained.quarantined:
                out.code = Code.PARTIAL
                out.message = (
                    f"{drained.quarantined} unreadable spool lines quarantined in {spool.folder / 'quarantine'}"
                )
            elif not envelopes and not drained.sent:
                out.code = Code.NOTHING
                out.message = closed or "nothing new to send"
            return out
    except AlreadyRunning as exc:
        logger.info("%s: %s; this run exits without doing anything", name, exc)
        return Outcome(Code.NOTHING, message=str(exc))
