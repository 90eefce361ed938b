"""The history rule (issue 38): a window is "read" only where an answer covered it. Each exchange's pager is run
against a fake with the real API's quirks (tests/candle_apis.py): quiet stretches, Kraken's sliding 720 minutes,
Bitstamp's undocumented `end`, Coinone's 300-a-minute block."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from coinstream.timeutil import epoch_minute, minute_start
from producer.sources.history import Page
from tests.candle_apis import EXCHANGES, Tape, history
from tests.history_api import figures

OPEN = epoch_minute(datetime.fromisoformat("2026-11-28T12:00:00+00:00"))  # the minute still open
NOW = minute_start(OPEN) + timedelta(seconds=30)


def tape_for(exchange: str, traded: set[int], **kwargs: Any) -> Tape:
    return Tape("KRW-BTC" if exchange in ("upbit", "coinone") else "USD-BTC", traded, lambda: OPEN, **kwargs)


def read(exchange: str, tape: Tape, start: int, end: int) -> tuple[list[Page], dict[int, dict[str, str]]]:
    pages = list(history(exchange, tape).pages(minute_start(start), minute_start(end), None, NOW))
    found = {epoch_minute(c.event_time): c.payload for p in pages for c in p.records}
    return pages, found


def figures_of(payload: Any) -> tuple[str, str]:
    return str(payload.open), str(payload.volume)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_every_exchange_reads_a_window_with_quiet_stretches_whole(exchange: str) -> None:
    end = OPEN
    start = end - (700 if exchange == "kraken" else 2500)
    traded = set(range(start - 50, end)) - set(range(end - 900, end - 400)) - {end - 3, start + 7}
    tape = tape_for(exchange, traded)
    pages, found = read(exchange, tape, start, end)
    assert set(found) == {m for m in traded if start <= m < end}
    want = figures(end - 1, tape.market)
    assert figures_of(found[end - 1]) == (want["open"], want["volume"])
    assert pages[-1].reached == minute_start(start) and pages[-1].token is None


def test_kraken_records_as_read_only_what_its_answer_still_held() -> None:
    """The plan fixes the earliest minute Kraken serves; a request sent once the next minute has started is no
    longer served that minute. It is a gap, not a minute read (it failed before: the page said `start`)."""
    clock = [OPEN]
    tape = Tape("USD-BTC", set(range(OPEN - 800, OPEN)), lambda: clock[0])
    start = OPEN - 719  # what KrakenHistory.earliest said when the plan was made
    clock[0] = OPEN + 1  # a minute later, the request goes
    pages, found = read("kraken", tape, start, OPEN)
    assert min(found) == start + 1
    assert pages[-1].reached == minute_start(start + 1) and pages[-1].token is None


@pytest.mark.parametrize("inclusive", [True, False])
def test_bitstamp_loses_no_minute_whether_end_includes_its_own_candle_or_not(inclusive: bool) -> None:
    """Bitstamp does not document whether `end` includes its own candle; the pager asks overlapping pages and
    drops what it already read (it lost a minute per page boundary before, with an exclusive `end`)."""
    tape = tape_for("bitstamp", set(range(OPEN - 3000, OPEN)), bitstamp_end_inclusive=inclusive)
    _, found = read("bitstamp", tape, OPEN - 2500, OPEN)
    assert set(found) == set(range(OPEN - 2500, OPEN))


def test_coinone_asks_500_a_page_within_300_requests_a_minute() -> None:
    """Coinone allows 300 requests a minute (then blocks the client for a minute) and `size` up to 500."""
    from coinstream.config import Settings
    from coinstream.http import Pacer

    pacer = Pacer(Settings().coinone_requests_per_second)
    assert 60 / pacer.interval <= 300
    tape = tape_for("coinone", set(range(OPEN - 2000, OPEN)))
    read("coinone", tape, OPEN - 1500, OPEN)
    assert [q["size"] for q in tape.asked] == ["500"] * 3


def test_coinones_block_is_waited_out_and_the_history_goes_on() -> None:
    """Over 300 requests a minute Coinone answers errorCode 4 and blocks the client for a minute: a backfill waits
    that minute and goes on (before, the series stopped with "try later")."""
    clock = [OPEN]
    tape = Tape("KRW-BTC", set(range(OPEN - 3000, OPEN)), lambda: clock[0], coinone_per_minute=2)
    found = history("coinone", tape)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += 1  # the block lifts with the next minute

    found.sleep = sleep
    pages = list(found.pages(minute_start(OPEN - 2500), minute_start(OPEN), None, NOW))
    assert {epoch_minute(c.event_time) for p in pages for c in p.records} == set(range(OPEN - 2500, OPEN))
    assert waits == [60.0, 60.0] and tape.blocked == 2
