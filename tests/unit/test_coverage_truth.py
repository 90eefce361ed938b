"""Coverage's truth, as a property (issue 38): for generated API histories — quiet stretches, a history that
starts inside the window, arrival-ordered timelines with late posts, posts whose three clocks differ, a crash
after any page and a resume — every minute a backfill records as read holds every record the API had for it,
with the API's own figures, and a finished backfill has read the whole window (Kraken: all it still serves).
A minute is never both unread and called read: what the checkpoint does not cover is a gap the next run asks for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from coinstream.config import Settings
from coinstream.http import ApiClient, Pacer
from coinstream.records import Envelope
from coinstream.timeutil import epoch_minute, minute_start
from producer.backfill import Checkpoints, Plan, Series, run, subtract
from producer.kinesis_writer import WriteResult
from producer.sources.bluesky import SearchHistory
from producer.sources.history import History
from producer.sources.mastodon import TagHistory
from producer.spool import Spool
from tests.candle_apis import EXCHANGES, Tape, history
from tests.history_api import figures
from tests.http_server import Reply, api_server
from tests.post_apis import BskyPost, Search, Status, Timeline

OPEN = epoch_minute(datetime.fromisoformat("2026-11-28T12:00:00+00:00"))
NOW = minute_start(OPEN) + timedelta(seconds=30)
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Stream:
    """Where the pages go: every record by key (a record may come twice; its figures never differ)."""

    def __init__(self) -> None:
        self.records: dict[str, Envelope] = {}

    def put(self, records: list[Envelope]) -> WriteResult:
        for r in records:
            assert self.records.setdefault(r.key, r).payload_bytes() == r.payload_bytes()
        return WriteResult(sent=len(records))


def backfill(make: Any, window: tuple[datetime, datetime], folder: Path, stream: Stream, crash_after: int) -> bool:
    """One `coinstream backfill` of the window into `folder`'s checkpoints (stopped after `crash_after` pages when
    that is not None): whether it finished."""
    checkpoints = Checkpoints(folder)
    series_name = make().series
    covered, resume = checkpoints.load(series_name)
    gaps = subtract(window, covered)
    if not gaps:
        return True
    stop = threading.Event()
    seen = [0]

    def on_page(*_: Any) -> None:
        seen[0] += 1
        if crash_after is not None and seen[0] >= crash_after:
            stop.set()

    found = Plan(window[0], window[1], [Series(make(), gaps, resume)], {})
    done = run(found, lambda: stream, Spool(folder / "spool"), checkpoints, now=NOW, on_page=on_page, stop=stop)  # type: ignore[arg-type,return-value]
    assert not done.series[0].stopped, done.series[0].stopped
    return done.complete and not done.interrupted


def read_minutes(folder: Path, series: str) -> set[int]:
    covered, _ = Checkpoints(folder).load(series)
    return {m for s, e in covered for m in range(epoch_minute(s), epoch_minute(e))}


quiet_stretches = st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 700)), max_size=4)


@pytest.mark.parametrize("exchange", EXCHANGES)
@EXAMPLES
@given(
    length=st.integers(30, 2400),
    first_traded=st.one_of(st.none(), st.integers(0, 2400)),
    quiet=quiet_stretches,
    crash_after=st.one_of(st.none(), st.integers(1, 6)),
)
def test_what_a_candle_backfill_calls_read_holds_every_candle_the_api_had(
    exchange: str,
    length: int,
    first_traded: int | None,
    quiet: list[tuple[int, int]],
    crash_after: int | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if exchange == "kraken":
        length = min(length, 719)
    start, end = OPEN - length, OPEN
    traded = set(range(start - 3000 if first_traded is None else start + first_traded, end))
    for offset, size in quiet:
        traded -= set(range(start + offset - size, start + offset))
    tape = Tape("KRW-BTC" if exchange in ("upbit", "coinone") else "USD-BTC", traded, lambda: OPEN)
    folder, stream = tmp_path_factory.mktemp("backfill"), Stream()
    window = (minute_start(start), minute_start(end))
    finished = backfill(lambda: history(exchange, tape), window, folder, stream, crash_after)
    if not finished:
        finished = backfill(lambda: history(exchange, tape), window, folder, stream, None)  # the resume
    assert finished
    read = read_minutes(folder, history(exchange, tape).series)
    delivered = {epoch_minute(e.event_time): e for e in stream.records.values()}
    for minute in read & traded:
        candle = delivered.get(minute)
        assert candle is not None, f"{minute_start(minute)} is recorded as read, its candle never came"
        assert str(candle.payload.open) == figures(minute, tape.market)["open"]  # type: ignore[union-attr]
    assert read == set(range(start, end))  # finished: the whole window is read (no minute unread and unsaid)


def _transport(reply: Any) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        answer: Reply = reply(dict(request.url.params))
        return httpx.Response(answer.status, json=answer.body, headers=answer.headers)

    return httpx.MockTransport(handle)


@EXAMPLES
@given(
    lateness=st.lists(st.integers(0, 23 * 60), min_size=1, max_size=120),
    flake=st.booleans(),
    crash_after=st.one_of(st.none(), st.integers(1, 4)),
)
def test_what_a_mastodon_backfill_calls_read_holds_every_post_written_in_it(
    lateness: list[int], flake: bool, crash_after: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    start, end = minute_start(OPEN - 240), minute_start(OPEN)

    # a post a minute from 30 h before the window on: every other one arrives on time, the rest up to 23 h
    # after they were written (an old post arriving inside the window sits on a page among the window's own)
    def late(n: int) -> timedelta:
        return timedelta(minutes=0 if n % 2 else lateness[n // 2 % len(lateness)])

    statuses = [
        Status(created + late(n), created, n, flake)
        for n, created in enumerate(start - timedelta(hours=30) + timedelta(minutes=k) for k in range(34 * 60))
        if created + late(n) < NOW
    ]
    timeline = Timeline(statuses, "http://mastodon.test")

    def make() -> History:
        found = TagHistory("http://mastodon.test", Pacer(1000))
        found.tag.api = ApiClient(
            "http://mastodon.test",
            httpx.Client(base_url="http://mastodon.test", transport=_transport(timeline.reply)),
            max_attempts=1,
        )
        return found

    folder, stream = tmp_path_factory.mktemp("mastodon"), Stream()
    if not backfill(make, (start, end), folder, stream, crash_after):
        assert backfill(make, (start, end), folder, stream, None)
    read = read_minutes(folder, make().series)
    delivered = {e.key for e in stream.records.values()}
    for s in statuses:
        if epoch_minute(s.created) in read:
            assert f"mastodon:https://remote.example/users/a/statuses/{s.n}" in delivered
    assert read == set(range(epoch_minute(start), epoch_minute(end)))


@pytest.fixture(scope="module")
def bluesky_api() -> Iterator[tuple[Settings, list[Search]]]:
    from tests.unit.test_backfill import _session_server

    current: list[Search] = [Search([])]
    with api_server() as bsky:
        bsky.on("/xrpc/app.bsky.feed.searchPosts", Reply(lambda q: current[0].reply(q)))
        with _session_server(bsky.url, []) as api_url:
            yield (
                Settings(
                    bluesky_handle="me.bsky.social",
                    bluesky_app_password=SecretStr("abcd-efgh-ijkl-mnop"),
                    bluesky_api_url=api_url,
                ),
                current,
            )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    written_before=st.lists(st.integers(0, 45), min_size=1, max_size=50),
    crash_after=st.one_of(st.none(), st.integers(1, 4)),
)
def test_what_a_bluesky_backfill_calls_read_holds_every_post_indexed_in_it(
    written_before: list[int], crash_after: int | None, bluesky_api: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    configured, current = bluesky_api
    start, end = minute_start(OPEN - 300), minute_start(OPEN)
    # a post indexed every 2 minutes around the window, each written up to 45 minutes before it was indexed
    posts = [
        BskyPost(indexed - timedelta(minutes=written_before[n % len(written_before)]), indexed, n)
        for n, indexed in enumerate(
            start - timedelta(minutes=120) + timedelta(minutes=2 * k, seconds=7) for k in range(270)
        )
    ]
    current[0] = Search(posts)
    folder, stream = tmp_path_factory.mktemp("bluesky"), Stream()
    configured = configured.model_copy(update={"state_dir": folder})
    if not backfill(lambda: SearchHistory(configured), (start, end), folder, stream, crash_after):
        assert backfill(lambda: SearchHistory(configured), (start, end), folder, stream, None)
    read = read_minutes(folder, SearchHistory(configured).series)
    delivered = {e.key for e in stream.records.values()}
    for p in posts:
        if epoch_minute(p.indexed) in read:
            assert f"bluesky:at://did:plc:a/app.bsky.feed.post/{p.n}" in delivered
    assert read == set(range(epoch_minute(start), epoch_minute(end)))
