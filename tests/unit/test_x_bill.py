"""The X bill: a day of cron runs against a loopback X costs what the README says, and budgets are enforced."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import SecretStr

from coinstream.config import Pipeline, Settings, load_settings
from coinstream.errors import FatalError
from coinstream.records import Envelope, Kind
from coinstream.timeutil import epoch_minute, minute_start
from coinstream.x_bill import XBudget, XPlan, XPrices, XUsage, carry_old_reads
from operate.doctor import x_spend
from producer.run import Code, produce
from producer.sources.x_search import XCursor
from tests.warehouse_data import warehouse_of
from tests.x_api import FakeX, fake_x

TOKEN = SecretStr("recorded-test-token-0000")
DAY = datetime(2026, 11, 28, tzinfo=UTC)
PRICES = XPrices(post_read=0.005, counts_request=0.005, as_of="2026-11-29", source="test")


def x_settings(tmp_path: Path, fake: FakeX, **overrides: Any) -> Settings:
    return Settings(state_dir=tmp_path, x_bearer_token=TOKEN, x_url=fake.url, **overrides)


def stream_envelopes(kinesis: Any, stream: str) -> list[Envelope]:
    found: list[Envelope] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        iterator = it["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            found += [Envelope.from_bytes(r["Data"]) for r in page["Records"]]
            iterator = page["NextShardIterator"] if page["Records"] else None
    return found


def state_of(tmp_path: Path) -> XCursor:
    return XCursor.model_validate_json((tmp_path / "producer" / "post-x.state.json").read_text())


def test_a_day_of_minute_cron_runs_costs_what_the_readme_says(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    with fake_x() as fake:
        settings = x_settings(tmp_path / "state", fake)
        # the day before ended with a run at midnight: from then on every run is steady state
        fake.now = DAY + timedelta(seconds=5)
        assert produce(Kind.POST, "x", settings, pipeline, now=fake.now).code is Code.SENT
        fake.counts_requests = fake.search_requests = fake.posts_returned = 0
        codes = []
        for minute in range(1, 1441):  # cron: every minute of the day, 5 s after it starts
            fake.now = DAY + timedelta(minutes=minute, seconds=5)
            codes.append(produce(Kind.POST, "x", settings, pipeline, now=fake.now).code)
        assert fake.errors == []
    # README: counts every 120 minutes = 12 requests, a sample of 10 posts every 720 minutes = 20 posts
    assert (fake.counts_requests, fake.search_requests, fake.posts_returned) == (12, 2, 20)
    # the sample slots (12:00, 00:00) fall on counts runs: 12 runs send, the other 1,428 ask X nothing
    assert codes.count(Code.SENT) == 12 and codes.count(Code.NOTHING) == 1440 - 12
    spent = state_of(tmp_path / "state").spent
    assert spent["2026-11-28"] == XUsage(reads=20, counts_requests=12)
    assert spent["2026-11-29"] == XUsage(reads=10, counts_requests=1)  # the next day's first run
    assert spent["2026-11-28"].dollars(PRICES) == pytest.approx(0.16) and 0.16 <= settings.x_dollars_per_day

    warehouse_of(tmp_path / "w.duckdb", stream_envelopes(kinesis, pipeline.stream_name))
    db = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = db.execute(
        "SELECT minute_utc, post_count FROM post_counts WHERE source = 'x' ORDER BY minute_utc"
    ).fetchall()
    counted = {epoch_minute(m.replace(tzinfo=UTC)): n for m, n in rows}
    assert len(rows) == len(counted)  # one row per minute
    # every minute the day's runs closed (X answers only for minutes that ended 10 s before the request,
    # so the run at 00:00:05 counts up to 23:58 and the next one takes 23:59 with its re-read)
    day = range(epoch_minute(DAY) - 1, epoch_minute(DAY) + 1439)
    assert set(day) <= set(counted) and len(day) == 1440
    # each minute holds its settled count, late-indexed posts included, once a later run re-read it
    last_window = range(epoch_minute(DAY) + 1440 - 6, epoch_minute(DAY) + 1440)
    assert all(counted[m] == FakeX.posts_in(m) for m in day if m not in last_window)
    rose = epoch_minute(DAY + timedelta(hours=2)) - 2  # 01:58: read at 02:00 with 2 posts not yet indexed
    copies = db.execute(
        "SELECT post_count FROM raw_post_counts WHERE minute_utc = ? ORDER BY fetched_at", [minute_start(rose)]
    ).fetchall()
    assert [c for (c,) in copies] == [FakeX.posts_in(rose) - 2, FakeX.posts_in(rose)]


def test_the_budget_stops_a_run_before_the_request_that_would_pass_it(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = moto_kinesis
    with fake_x() as fake:
        # one counts request a day and reads of 10 posts every minute; the day's budget holds 1 + 10 of them
        settings = x_settings(
            tmp_path, fake, x_counts_every_minutes=1440, x_sample_every_minutes=1, x_dollars_per_day=0.055
        )
        fake.page_buckets = 1440  # the first run counts the day before in one page
        fake.now = DAY + timedelta(hours=12, seconds=5)
        assert produce(Kind.POST, "x", settings, pipeline, now=fake.now).code is Code.SENT
        assert (fake.counts_requests, fake.posts_returned) == (1, 10)
        caplog.set_level(logging.INFO)
        caplog.clear()
        fake.now += timedelta(minutes=1)
        outcome = produce(Kind.POST, "x", settings, pipeline, now=fake.now)
        assert outcome.code is Code.NOTHING
        assert (fake.search_requests, fake.posts_returned) == (1, 10)  # the 11th post is never asked for
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "COINSTREAM_X_DOLLARS_PER_DAY" in warnings[0], warnings
        # the next UTC day has a new budget
        fake.now = DAY + timedelta(days=1, minutes=1, seconds=5)
        assert produce(Kind.POST, "x", settings, pipeline, now=fake.now).code is Code.SENT
        assert fake.posts_returned == 20
        # the month's budget binds too, and says so
        month = x_settings(tmp_path, fake, x_sample_every_minutes=1, x_dollars_per_month=0.11)
        fake.now += timedelta(minutes=1)
        caplog.clear()
        assert produce(Kind.POST, "x", month, pipeline, now=fake.now).code is Code.NOTHING
        assert "COINSTREAM_X_DOLLARS_PER_MONTH" in caplog.text and fake.posts_returned == 20


def test_counts_follow_every_page_and_move_on_only_when_all_were_read(
    tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]
) -> None:
    pipeline, kinesis = moto_kinesis
    with fake_x() as fake:
        fake.now = DAY + timedelta(seconds=5)
        # a day of minutes is five pages of 300; the budget pays for three requests and no read
        poor = x_settings(tmp_path, fake, x_counts_every_minutes=1440, x_sample_size=0, x_dollars_per_day=0.015)
        assert produce(Kind.POST, "x", poor, pipeline, now=fake.now).code is Code.SENT
        assert fake.counts_requests == 3 and state_of(tmp_path).counted_minute is None  # asked again, whole
        rich = x_settings(tmp_path, fake, x_counts_every_minutes=1440, x_sample_size=0)
        fake.now += timedelta(minutes=1)
        assert produce(Kind.POST, "x", rich, pipeline, now=fake.now).code is Code.SENT
        assert fake.counts_requests == 3 + 5 and fake.errors == []
        assert state_of(tmp_path).counted_minute == epoch_minute(DAY) - 1  # 23:59, the last minute closed 10 s before
    minutes = {e.key for e in stream_envelopes(kinesis, pipeline.stream_name)}
    assert len(minutes) == 1440 + 1


def test_doctor_shows_todays_spend_and_what_is_left(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert x_spend(settings, DAY).startswith("today $0.00 of $0.20 (0 counts requests, 0 posts read)")
    state = {"spent": {"2026-11-28": {"reads": 10, "counts_requests": 4}, "2026-11-02": {"reads": 100}}}
    (tmp_path / "producer").mkdir()
    (tmp_path / "producer" / "post-x.state.json").write_text(json.dumps(state))
    line = x_spend(settings, DAY + timedelta(hours=5))
    assert "today $0.07 of $0.20 (4 counts requests, 10 posts read), this month $0.57 of $5.00" in line
    assert line.endswith("; $0.13 left today")


def test_a_changed_schedule_takes_effect_at_its_next_slot(tmp_path: Path, moto_kinesis: tuple[Pipeline, Any]) -> None:
    pipeline, _ = moto_kinesis
    with fake_x() as fake:
        fake.page_buckets = 1440  # each counts run is one page here
        fake.now = DAY + timedelta(hours=1, minutes=30, seconds=5)
        produce(Kind.POST, "x", x_settings(tmp_path, fake, x_counts_every_minutes=5), pipeline, now=fake.now)
        daily = x_settings(tmp_path, fake, x_counts_every_minutes=1440, x_sample_size=0)
        for _ in range(60 * 24 - 1):  # the rest of the day and the next day until 01:29
            fake.now += timedelta(minutes=1)
            produce(Kind.POST, "x", daily, pipeline, now=fake.now)
        # a daily schedule counts once, at 00:00 of the next day, whatever the 5-minute one did before
        assert fake.counts_requests == 2 and fake.search_requests == 1


def test_a_read_asks_only_for_what_the_budget_has_left() -> None:
    now = DAY + timedelta(hours=3)
    budget = XBudget(PRICES, 1.0, 5.0, {"2026-11-28": XUsage(reads=100, counts_requests=25)}, now)
    assert budget.today_dollars == pytest.approx(0.625) and budget.reads_affordable(100) == 75
    budget.charge_reads(60)
    assert budget.reads_affordable(100) == 15
    budget.charge_reads(6)
    with pytest.raises(Exception, match="would exceed today's X budget"):
        budget.reads_affordable(100)  # 9 left, and X returns at least 10
    # last month's days do not count against this month, and are not kept
    old = XBudget(PRICES, 1.0, 0.1, {"2026-10-31": XUsage(reads=1000)}, now)
    assert old.month_dollars == 0 and old.spent == {}


def test_state_from_before_dollar_budgets_keeps_what_it_read() -> None:
    assert carry_old_reads({"since_id": "12", "reads": {"2026-11-28": 42}}) == {
        "since_id": "12",
        "spent": {"2026-11-28": {"reads": 42}},
    }
    cursor = XCursor.model_validate({"since_id": "12", "reads": {"2026-11-28": 42}})
    assert cursor.spent == {"2026-11-28": XUsage(reads=42)}


def test_the_plan_prices_the_schedule_and_caps_at_the_budget() -> None:
    default = Settings()
    plan = XPlan.of(default.x_counts_every_minutes, default.x_sample_every_minutes, default.x_sample_size)
    assert (plan.counts_requests_per_day, plan.reads_per_day) == (12, 20)
    lines = plan.lines(PRICES, default.x_dollars_per_month)
    assert sum(usd for _, _, usd in lines) == pytest.approx(0.16 * 730 / 24) and len(lines) == 2
    greedy = XPlan.of(1, 1, 100)  # every minute: 1,440 counts requests and 144,000 posts a day
    capped = greedy.lines(PRICES, 5.0)
    assert capped[-1][0].startswith("X budget cap") and sum(usd for _, _, usd in capped) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COINSTREAM_X_POSTS_PER_DAY": "3000"}, "replaced by COINSTREAM_X_DOLLARS_PER_DAY"),
        ({"COINSTREAM_X_SAMPLE_SIZE": "5"}, "at least 10 posts per read"),
        ({"COINSTREAM_X_COUNTS_EVERY_MINUTES": "7"}, "does not divide a day"),
        ({"COINSTREAM_X_DOLLARS_PER_DAY": "-1"}, "COINSTREAM_X_DOLLARS_PER_DAY"),
    ],
)
def test_bad_x_settings_are_one_line(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FatalError, match=message) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_the_prices_file_has_dated_sourced_x_prices() -> None:
    prices = XPrices.load(Settings().prices_file)
    assert prices.post_read > 0 and prices.counts_request > 0 and prices.as_of and "docs.x.com" in prices.source
    assert json.loads(Settings().prices_file.read_text())["x"]["as_of"] == prices.as_of
