"""Backfill: every source's past onto the stream with the live keys, resumable, polite, priced before it spends."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.kpl import user_records
from coinstream.records import Kind
from coinstream.timeutil import epoch_minute, minute_start
from producer.backfill import (
    Checkpoints,
    Outcome,
    Plan,
    check_budget,
    last_closed_minute,
    merge,
    parse_when,
    plan,
    run,
    subtract,
    when,
)
from producer.kinesis_writer import KinesisWriter
from producer.run import Code, produce
from producer.spool import Spool
from tests.history_api import Exchange, exchanges, expected_rows
from tests.http_server import Reply, api_server
from tests.post_apis import BskyPost, Search
from tests.x_api import fake_x

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
END = minute_start(epoch_minute(NOW))  # the last closed minute ends here
MINUTES = 900  # a window of 15 hours: 5 pages of 200 candles per market


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out: list[dict[str, Any]] = []
    while it:
        got = kinesis.get_records(ShardIterator=it, Limit=10000)
        out += [orjson.loads(data) for r in got["Records"] for data in user_records(r["Data"])]
        if not got["Records"]:
            break
        it = got.get("NextShardIterator")
    return out


@pytest.fixture
def apis(tmp_path: Path) -> Iterator[tuple[Exchange, Exchange]]:
    first = epoch_minute(END) - MINUTES - 100
    upbit = Exchange(first=first, last=epoch_minute(END) - 1, quiet={epoch_minute(END) - 17, epoch_minute(END) - 400})
    coinone = Exchange(first=epoch_minute(END) - 700, last=epoch_minute(END) - 1)  # history starts inside the window
    with exchanges(upbit, coinone) as both:
        yield both


def settings_for(tmp_path: Path, upbit: Exchange, coinone: Exchange, **more: Any) -> Settings:
    return Settings(
        **{
            "state_dir": tmp_path,
            "upbit_url": upbit.url,
            "coinone_url": coinone.url,
            "upbit_markets": "KRW-BTC,KRW-ETH",
            **more,
        }
    )


def backfill(settings: Settings, pipeline: Pipeline, kinesis: Any, found: Plan, **kwargs: Any) -> Outcome:
    writer = KinesisWriter(pipeline.stream_name, kinesis, aggregate=True)  # as `coinstream backfill` puts
    folder = settings.state_dir / "backfill"
    return run(found, lambda: writer, Spool(folder / "spool"), Checkpoints(folder), now=NOW, **kwargs)


def window(settings: Settings, sources: list[str], **kwargs: Any) -> Plan:
    return plan(settings, END - timedelta(minutes=MINUTES), END, sources=sources, now=NOW, **kwargs)


def by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r["payload"] for r in records}


def test_durations_dates_and_windows() -> None:
    assert parse_when("7d", NOW) == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_when("90m", NOW) == datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    assert parse_when("2026-11-27", NOW) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_when("2026-11-27T21:00+09:00", NOW) == datetime(2026, 11, 27, 12, tzinfo=UTC)
    with pytest.raises(FatalError, match=r"'a week' is not a time: give a duration before now \(7d"):
        parse_when("a week", NOW)
    t = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(10)]
    assert subtract((t[0], t[9]), [(t[2], t[4]), (t[6], t[7])]) == [(t[7], t[9]), (t[4], t[6]), (t[0], t[2])]
    assert merge([(t[4], t[6]), (t[0], t[2]), (t[2], t[3])]) == [(t[0], t[3]), (t[4], t[6])]


@pytest.mark.parametrize("second", [0, 5, 9, 10, 30, 59])
def test_since_7d_is_10080_minutes_whatever_the_second_it_is_asked(second: int) -> None:
    # CI once printed 10,079: `7d` counted back from the wall clock, the end from the last closed minute
    now = datetime(2026, 11, 28, 12, 0, second, tzinfo=UTC)
    start, end = when("7d", None, now, grace_seconds=10)
    assert end == last_closed_minute(now, 10)
    assert (end - start) == timedelta(days=7)
    start, end = when("7d", "1d", now, grace_seconds=10)
    assert (end - start) == timedelta(days=6)
    assert when("2026-11-27", "2026-11-28", now, grace_seconds=10) == (
        datetime(2026, 11, 27, tzinfo=UTC),
        datetime(2026, 11, 28, tzinfo=UTC),
    )


def test_every_minute_lands_once_with_the_apis_figures_through_a_429_a_bad_candle_and_the_first_page(
    tmp_path: Path,
    apis: tuple[Exchange, Exchange],
    moto_kinesis: tuple[Pipeline, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    upbit, coinone = apis
    upbit.fail_requests = {3}  # a 429 mid-way: honoured (Retry-After) and asked again
    coinone.malformed = {epoch_minute(END) - 250}  # one bad candle: skipped with its reason, its page kept
    pipeline, kinesis = moto_kinesis
    settings = settings_for(tmp_path, upbit, coinone)
    done = backfill(settings, pipeline, kinesis, window(settings, ["upbit", "coinone"]))
    assert done.complete and not done.spooled, [s.stopped for s in done.series]
    got = by_key(stream_records(kinesis, pipeline.stream_name))
    start = epoch_minute(END) - MINUTES
    for exchange, source, market in (
        (upbit, "upbit", "KRW-BTC"),
        (upbit, "upbit", "KRW-ETH"),
        (coinone, "coinone", "KRW-BTC"),
    ):
        want = expected_rows(exchange, start, epoch_minute(END), market)
        keys = {f"{source}:{market}:{minute_start(m):%Y-%m-%dT%H:%MZ}": f for m, f in want.items()}
        mine = {k: v for k, v in got.items() if k.startswith(f"{source}:{market}:")}
        assert mine.keys() == keys.keys()  # every minute the API has, once; none it does not have
        for key, f in keys.items():
            p = mine[key]
            assert (p["open"], p["high"], p["low"], p["close"], p["volume"], p["quote_volume"]) == (
                f["open"],
                f["high"],
                f["low"],
                f["close"],
                f["volume"],
                f["quote_volume"],
            )
    records = stream_records(kinesis, pipeline.stream_name)
    assert len(records) == len(got)  # nothing put twice
    # the scripted 429 was met and honoured (every minute above landed once). Whether the pacer kept every other
    # request inside the fake's 10-a-second window depends on this machine's load, so it is not asserted here:
    # `python -m benchmarks.backfill` measures it (no 429 in 5 runs)
    assert upbit.rate_limited >= 1
    assert "skipped a malformed item: coinone chart" in caplog.text
    coinone_series = next(s for s in done.series if s.name == "coinone KRW-BTC")
    assert coinone_series.finished and coinone_series.read_minutes == MINUTES  # its first page ends the window


def test_a_dry_runs_request_count_is_what_a_real_run_asks(
    tmp_path: Path, apis: tuple[Exchange, Exchange], moto_kinesis: tuple[Pipeline, Any]
) -> None:
    upbit, coinone = apis
    coinone.first = upbit.first  # full history: every page holds 200 candles
    upbit.quiet = set()
    pipeline, kinesis = moto_kinesis
    with fake_x() as x:
        x.now, x.page_buckets = NOW, 1440
        settings = settings_for(tmp_path, upbit, coinone, x_url=x.url, x_bearer_token=SecretStr("t" * 24))
        found = window(settings, ["upbit", "coinone", "x"])
        planned = {s.name: s.planned_requests() for s in found.series}
        done = backfill(settings, pipeline, kinesis, found)
        assert x.errors == []
    assert planned == {"upbit KRW-BTC": 5, "upbit KRW-ETH": 5, "coinone KRW-BTC": 2, "x counts": 1}
    assert {s.name: s.requests for s in done.series} == planned
    assert upbit.requests == 10 and coinone.requests == 2 and x.counts_requests == 1
    counts = [r for r in stream_records(kinesis, pipeline.stream_name) if r["kind"] == Kind.POST_COUNT.value]
    assert len(counts) == MINUTES and {r["key"] for r in counts} == {
        f"x:count:{minute_start(m):%Y-%m-%dT%H:%MZ}" for m in range(epoch_minute(END) - MINUTES, epoch_minute(END))
    }


def test_a_second_run_reads_nothing_and_a_refresh_puts_the_same_rows(
    tmp_path: Path, apis: tuple[Exchange, Exchange], moto_kinesis: tuple[Pipeline, Any]
) -> None:
    upbit, coinone = apis
    pipeline, kinesis = moto_kinesis
    settings = settings_for(tmp_path, upbit, coinone)
    backfill(settings, pipeline, kinesis, window(settings, ["upbit"]))
    first = stream_records(kinesis, pipeline.stream_name)
    asked = upbit.requests
    assert window(settings, ["upbit"]).series == []  # finished windows are not read again
    assert upbit.requests == asked
    backfill(settings, pipeline, kinesis, window(settings, ["upbit"], refresh=True))
    both = stream_records(kinesis, pipeline.stream_name)
    assert len(both) == 2 * len(first) and by_key(both) == by_key(first)  # the same keys with the same figures
    # a wider window reads only what is new to it
    wider = plan(settings, END - timedelta(minutes=MINUTES + 100), END, sources=["upbit"], now=NOW)
    assert [(s.name, s.gaps) for s in wider.series] == [
        (name, [(END - timedelta(minutes=MINUTES + 100), END - timedelta(minutes=MINUTES))])
        for name in ("upbit KRW-BTC", "upbit KRW-ETH")
    ]


def test_stopped_mid_way_it_resumes_where_it_stopped_and_never_reads_a_page_twice(
    tmp_path: Path, apis: tuple[Exchange, Exchange], moto_kinesis: tuple[Pipeline, Any]
) -> None:
    upbit, coinone = apis
    pipeline, kinesis = moto_kinesis
    # two requests a second: the reader is still reading when the writer has put the second page
    settings = settings_for(tmp_path, upbit, coinone, upbit_markets="KRW-BTC", upbit_requests_per_second=2)
    stop = threading.Event()
    pages = Counter[str]()

    def ctrl_c_after_two_pages(series: Any, page: Any, minutes: int) -> None:
        pages[series.name] += 1
        if pages[series.name] == 2:
            stop.set()

    first = backfill(
        settings, pipeline, kinesis, window(settings, ["upbit"]), on_page=ctrl_c_after_two_pages, stop=stop
    )
    assert first.interrupted and not first.complete
    asked_first = upbit.requests
    assert asked_first < 5
    second = backfill(settings, pipeline, kinesis, window(settings, ["upbit"]))
    assert second.complete
    tos = [q.get("to") for q in upbit.asked]
    assert len(tos) == len(set(tos)) == 5  # 5 pages in all, none asked twice: the second run did not start over
    records = stream_records(kinesis, pipeline.stream_name)
    want = expected_rows(upbit, epoch_minute(END) - MINUTES, epoch_minute(END), "KRW-BTC")
    assert len(by_key(records)) == len(want) == len(records)


def test_a_live_run_and_a_backfill_of_the_same_minutes_give_the_same_keys_and_figures(
    tmp_path: Path, apis: tuple[Exchange, Exchange], moto_kinesis: tuple[Pipeline, Any]
) -> None:
    upbit, coinone = apis
    pipeline, kinesis = moto_kinesis
    settings = settings_for(tmp_path, upbit, coinone, upbit_markets="KRW-BTC")
    live = produce(Kind.CANDLE, "upbit", settings, pipeline, now=NOW)  # the cron's first run: the newest page
    assert live.code is Code.SENT and live.sent > 100
    backfill(settings, pipeline, kinesis, window(settings, ["upbit"]))
    records = stream_records(kinesis, pipeline.stream_name)
    seen: dict[str, list[Any]] = {}
    for r in records:
        seen.setdefault(r["key"], []).append(r["payload"])
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert len(twice) == live.sent and all(a == b for a, b in twice.values())  # one fact, one key, one figure
    assert len(seen) == len(expected_rows(upbit, epoch_minute(END) - MINUTES, epoch_minute(END), "KRW-BTC"))


def test_bad_input_is_one_line_before_any_request(tmp_path: Path, apis: tuple[Exchange, Exchange]) -> None:
    upbit, coinone = apis
    settings = settings_for(tmp_path, upbit, coinone, x_bearer_token=SecretStr("t" * 24))
    with pytest.raises(FatalError, match=r"x counts reaches back to 2026-11-21T12:01Z at the earliest .*--source"):
        plan(settings, parse_when("8d", NOW), END, sources=["x"], now=NOW)
    with pytest.raises(FatalError, match="unknown source 'ftx' for backfill: use one of upbit, coinone, binance"):
        plan(settings, parse_when("1d", NOW), END, sources=["ftx"], now=NOW)
    with pytest.raises(FatalError, match="COINSTREAM_BLUESKY_HANDLE and COINSTREAM_BLUESKY_APP_PASSWORD"):
        plan(settings, parse_when("1d", NOW), END, sources=["bluesky"], now=NOW)
    with pytest.raises(FatalError, match="is not before --until"):
        plan(settings, END, END, now=NOW)
    cheap = settings.model_copy(update={"x_dollars_per_day": 0.01, "x_counts_backfill_window_minutes": 60})
    found = plan(cheap, parse_when("1d", NOW), END, sources=["x"], now=NOW)
    with pytest.raises(FatalError, match=r"the plan takes 24 requests \(\$0.120\) and the X budget has \$0.010 left"):
        check_budget(found, NOW)
    everything = plan(settings.model_copy(update={"x_bearer_token": None}), parse_when("1d", NOW), END, now=NOW)
    assert "no X bearer token" in everything.left_out["x"] and "bluesky" in everything.left_out
    assert upbit.requests == coinone.requests == 0


def statuses(newest: int, count: int) -> list[dict[str, Any]]:
    """A tag timeline: one status a minute back from minute `newest`, ids falling with time (newest first)."""
    out = []
    for n in range(count):
        minute = newest - n
        out.append(
            {
                "id": str(113_000_000 + minute),
                "created_at": f"{minute_start(minute):%Y-%m-%dT%H:%M:%S}.000Z",
                "uri": f"https://mastodon.example/users/a/statuses/{minute}",
                "content": "<p>#bitcoin</p>",
                "account": {"url": "https://mastodon.example/@a"},
            }
        )
    return out


def test_mastodon_history_pages_back_by_the_link_header_to_the_window_start(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    newest = epoch_minute(END) - 1
    timeline = statuses(newest, 300)
    with api_server() as instance:

        def tag(query: dict[str, str]) -> Reply:
            below = int(query["max_id"]) if "max_id" in query else 10**12
            page = [s for s in timeline if int(s["id"]) < below][: int(query["limit"])]
            link = f'<{instance.url}/api/v1/timelines/tag/bitcoin?max_id={page[-1]["id"]}>; rel="next"' if page else ""
            return Reply(page, headers={"Link": link} if link else {})

        instance.on("/api/v1/timelines/tag/bitcoin", Reply(tag))
        settings = Settings(
            state_dir=tmp_path, mastodon_instances=instance.url, mastodon_requests_per_second=5, mastodon_late_hours=1
        )
        found = plan(settings, END - timedelta(minutes=100), END, sources=["mastodon"], now=NOW)
        assert found.series[0].planned_requests() is None  # as many pages as were posted
        done = backfill(settings, pipeline, kinesis, found)
    assert done.complete
    keys = {r["key"] for r in stream_records(kinesis, pipeline.stream_name)}
    # pages until the posts were written an hour (the lateness margin) before the window's start
    assert len(keys) == 100 and [q.get("max_id") for _, q in instance.requests] == [
        None,
        *(str(113_000_000 + newest - n) for n in (39, 79, 119)),
    ]


def test_bluesky_history_signs_in_and_pages_search_by_cursor_counted_at_indexed_at(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    newest = epoch_minute(END) - 1
    # written 20 minutes before each is indexed: search sorts them by that (sortAt), the history counts at indexedAt
    search = Search(
        [
            BskyPost(minute_start(m - 20), minute_start(m) + timedelta(seconds=0.5), m)
            for m in range(newest, newest - 150, -1)
        ]
    )
    with api_server() as bsky:
        bsky.on("/xrpc/app.bsky.feed.searchPosts", Reply(search.reply))

        sessions: list[Any] = []
        with _session_server(bsky.url, sessions) as api_url:
            settings = Settings(
                state_dir=tmp_path,
                bluesky_handle="me.bsky.social",
                bluesky_app_password=SecretStr("abcd-efgh-ijkl-mnop"),
                bluesky_api_url=api_url,
            )
            done = backfill(
                settings,
                pipeline,
                kinesis,
                plan(settings, END - timedelta(minutes=150), END, sources=["bluesky"], now=NOW),
            )
    assert done.complete and sessions == [{"identifier": "me.bsky.social", "password": "abcd-efgh-ijkl-mnop"}]
    records = stream_records(kinesis, pipeline.stream_name)
    assert len({r["key"] for r in records}) == 150  # the last page is asked again below its oldest: one copy twice
    first = min(records, key=lambda r: r["event_time"])
    assert first["event_time"].startswith(f"{minute_start(newest - 149):%Y-%m-%dT%H:%M}:00.5")  # indexedAt
    assert first["payload"]["authored_at"].startswith(f"{minute_start(newest - 169):%Y-%m-%dT%H:%M}")


@contextmanager
def _session_server(search_url: str, sessions: list[Any]) -> Iterator[str]:
    """createSession (POST) answered here; every GET is passed to the search server, with its bearer checked."""
    import httpx

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            sessions.append(body)
            data = orjson.dumps({"accessJwt": "jwt-1", "did": "did:plc:me"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Bearer jwt-1":
                data = b'{"error":"AuthMissing","message":"Authentication Required"}'
                self.send_response(403)
            else:
                data = httpx.get(search_url + self.path).content
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_since_7d_on_x_starts_at_the_oldest_minute_x_answers_for(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, x_bearer_token=SecretStr("t" * 24))
    found = plan(settings, parse_when("7d", NOW), END, sources=["x"], now=NOW)
    assert found.series[0].gaps == [(datetime(2026, 11, 21, 12, 1, tzinfo=UTC), END)]


def test_market_names_the_markets_of_every_exchange_named(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    found = plan(settings, END - timedelta(hours=1), END, sources=["binance", "okx"], markets=["USDT-ETH"], now=NOW)
    assert [s.name for s in found.series] == ["binance USDT-ETH", "okx USDT-ETH"]
    default = plan(settings, END - timedelta(hours=1), END, sources=["bitstamp", "kraken"], now=NOW)
    assert [s.name for s in default.series] == ["bitstamp USD-BTC", "kraken USD-BTC"]


def test_a_market_an_exchange_does_not_list_is_left_out_with_its_list_and_the_others_go_on(tmp_path: Path) -> None:
    """`--market USDT-NOPE`: the exchange's own (free) market list says it is not there, before any candle request;
    an exchange whose list cannot be had keeps the series (its refused request will say why)."""
    from producer.backfill import drop_unlisted
    from tests.conftest import payload

    with api_server() as binance, api_server() as okx:
        binance.on("/api/v3/exchangeInfo", Reply(payload("markets/binance.json")))
        okx.on("/api/v5/public/instruments", Reply({"msg": "down"}, status=503))
        settings = Settings(state_dir=tmp_path, binance_url=binance.url, okx_url=okx.url)
        found = plan(
            settings, END - timedelta(hours=1), END, sources=["binance", "okx"], markets=["USDT-NOPE"], now=NOW
        )
        kept, dropped = drop_unlisted(settings, found, ["USDT-NOPE"], NOW)
    assert [s.name for s in kept.series] == ["okx USDT-NOPE"]
    assert list(dropped) == ["binance USDT-NOPE"]
    assert "binance does not list USDT-NOPE" in dropped["binance USDT-NOPE"]
    assert "USDT-BTC" in dropped["binance USDT-NOPE"]
    assert [path for path, _ in binance.requests] == ["/api/v3/exchangeInfo"]  # no candle was asked


@pytest.mark.parametrize(("reset_in", "waits"), [(2.0, True), (2 * 3600.0, False)])
def test_x_waits_out_a_near_429_and_stops_at_a_far_one_naming_when(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any], reset_in: float, waits: bool
) -> None:
    """A 429 whose reset is seconds away stopped the X series before ("the user must run the command again"); it is
    waited out now (and the refused request is not booked as billed). One hours away stops it, naming when."""
    from producer.sources.x_search import XCountsHistory

    pipeline, kinesis = moto_kinesis
    clock = [1_800_000_000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    with fake_x() as x, pytest.MonkeyPatch.context() as patch:
        patch.setattr(XCountsHistory, "sleep", staticmethod(sleep))
        patch.setattr(XCountsHistory, "clock", staticmethod(lambda: clock[0]))
        x.now, x.page_buckets, x.rate_limited, x.clock = NOW, 1440, {1: reset_in}, lambda: clock[0]
        settings = Settings(state_dir=tmp_path, x_url=x.url, x_bearer_token=SecretStr("t" * 24))
        found = plan(settings, END - timedelta(minutes=MINUTES), END, sources=["x"], now=NOW)
        done = backfill(settings, pipeline, kinesis, found)
    series = done.series[0]
    if waits:
        assert done.complete and slept and max(slept) <= reset_in + 1 and x.counts_requests == 2
        assert series.requests == 1  # the refused request is not on the bill
    else:
        reset = datetime.fromtimestamp(int(clock[0] + reset_in), UTC)
        assert not done.complete and not slept
        assert f"until {reset:%Y-%m-%d %H:%M:%S} UTC: run the command again after that" in series.stopped
