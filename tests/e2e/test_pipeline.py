"""The whole pipeline, as a user runs it: local stack, producers, the real KCL daemon, the warehouse."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from coinstream.timeutil import epoch_minute
from consumer.native import post_rows
from tests.conftest import payload
from tests.history_api import Exchange, exchanges, expected_rows
from tests.stack import coinstream, processes_mentioning, running_stack


@pytest.mark.takes(75)
def test_every_produced_record_reaches_the_warehouse_exactly_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running_stack(state) as (settings, _pipeline, env):
        for kind, sent in (("candles", 30), ("posts", 42)):
            result = coinstream(env, "produce", kind)
            assert result.returncode == 0, result.stderr
            assert f"{sent} sent" in result.stdout

        consumed = coinstream(env, "consume", "--until-caught-up", "--timeout", "420")
        assert consumed.returncode == 0, consumed.stderr + (state / "logs" / "kcl-warehouse.log").read_text()[-3000:]
        assert "72 records checkpointed on 2 shards" in consumed.stdout
        if post_rows() is not None or os.environ.get("COINSTREAM_REQUIRE_NATIVE"):  # the processors took it too
            assert "posts take the native path" in (state / "logs" / "processor-warehouse.log").read_text()

        loaded = coinstream(env, "load")
        assert loaded.returncode == 0, loaded.stderr
        assert "30 rows into raw_candles, 40 rows into raw_posts" in loaded.stdout
        again = coinstream(env, "load")
        assert "loaded 0 objects" in again.stdout and "already loaded" in again.stdout

        # the warehouse without a cluster: the same delivered objects appended to Iceberg tables on the stack's S3
        lake_env = {**env, "COINSTREAM_WAREHOUSE": "iceberg"}
        into_lake = coinstream(lake_env, "load")
        assert into_lake.returncode == 0, into_lake.stderr
        assert "30 rows into raw_candles, 40 rows into raw_posts" in into_lake.stdout
        assert "loaded 0 objects" in coinstream(lake_env, "load").stdout
        figures = coinstream(env, "analyze", "--window", "10")
        from_lake = coinstream(lake_env, "analyze", "--window", "10")
        assert figures.returncode == 0 and "posts/minute vs volume/minute" in figures.stdout, figures.stderr
        assert from_lake.stdout == figures.stdout  # identical figures, whichever warehouse holds the rows
        compacted = coinstream(lake_env, "compact", "--keep-hours", "0")
        assert compacted.returncode == 0 and "raw_posts: " in compacted.stdout and "-> 1" in compacted.stdout
        assert coinstream(lake_env, "analyze", "--window", "10").stdout == figures.stdout

        status = coinstream(env, "local", "status")
        assert status.returncode == 0 and "72 records" in status.stdout and "30 rows" in status.stdout

        db = duckdb.connect(str(settings.warehouse_path), read_only=True)
        chart = {c["timestamp"]: c for c in payload("coinone/chart_KRW_BTC_1m.json")["chart"]}
        candles = db.execute(
            "SELECT epoch_ms(minute_utc), close_price, volume, quote_volume, market, exchange, count(*) OVER "
            "(PARTITION BY record_key) FROM raw_candles"
        ).fetchall()
        assert len(candles) == 30
        for ms, close, volume, quote_volume, market, exchange, copies in candles:
            raw = chart[ms]
            assert copies == 1 and market == "KRW-BTC" and exchange == "coinone"
            assert close == Decimal(raw["close"]) and volume == Decimal(raw["target_volume"])
            assert quote_volume == Decimal(raw["quote_volume"])

        recorded = {
            p["id"]: p
            for page in ("x/recent_search_page1.json", "x/recent_search_page2.json")
            for p in payload(page)["data"]
        }
        posts = db.execute(
            "SELECT post_id, text, author_id, strftime(created_at, '%Y-%m-%dT%H:%M:%S.000Z') FROM raw_posts"
        ).fetchall()
        assert sorted(p[0] for p in posts) == sorted(recorded)  # 40 distinct posts, each once
        for post_id, text, author, created in posts:
            assert (text, author, created) == (
                recorded[post_id]["text"],
                recorded[post_id]["author_id"],
                recorded[post_id]["created_at"],
            )
        assert db.execute("SELECT count(*) FROM stl_load_errors").fetchone() == (0,)
        db.close()

    # no KCL daemon or record processor of this run is left either
    assert processes_mentioning(str(state / "kcl")) == []
    assert processes_mentioning(f"-p {env['COINSTREAM_MOTO_PORT']}") == []


@pytest.mark.takes(70)
def test_a_backfill_and_a_live_run_over_the_same_minutes_reach_the_warehouse_once_each(tmp_path: Path) -> None:
    """History through the same path as live records: KPL-aggregated on the stream, taken apart by the real KCL
    daemon, one row per minute in the views however many copies travelled, with the API's own figures."""
    now = datetime.now(UTC)
    last = epoch_minute(now) - 1
    upbit = Exchange(first=last - 500, last=last, quiet={last - 250})
    coinone = Exchange(first=last - 500, last=last)
    with exchanges(upbit, coinone), running_stack(tmp_path / "state") as (settings, _pipeline, env):
        env = {**env, "COINSTREAM_UPBIT_URL": upbit.url}
        live = coinstream(env, "produce", "candles", "--source", "upbit")
        assert live.returncode == 0, live.stderr
        back = coinstream(env, "backfill", "--since", "5h", "--source", "upbit")
        assert back.returncode == 0, back.stdout + back.stderr
        assert "every series is read back to" in back.stdout
        consumed = coinstream(env, "consume", "--until-caught-up", "--timeout", "420")
        assert consumed.returncode == 0, consumed.stderr
        loaded = coinstream(env, "load")
        assert loaded.returncode == 0, loaded.stderr
        db = duckdb.connect(str(settings.warehouse_path), read_only=True)
        rows = db.execute(
            "SELECT epoch(minute_utc)::BIGINT // 60, open_price, close_price, volume FROM candles "
            "WHERE exchange = 'upbit' ORDER BY minute_utc"
        ).fetchall()
        raw = db.execute("SELECT count(*) FROM raw_candles").fetchone()
        dead = db.execute("SELECT count(*) FROM raw_posts").fetchone()
        db.close()
    start = epoch_minute(now - timedelta(hours=5)) + 1  # the command's own clock may have moved a minute on
    # every minute before this one had closed, grace included, when the test began: both runs read them
    closed = epoch_minute(now - timedelta(seconds=10))
    want = expected_rows(upbit, start, closed, "KRW-BTC")
    traded = expected_rows(upbit, start - 2, last + 1, "KRW-BTC")
    got = {m: (o, c, v) for m, o, c, v in rows}
    assert len(rows) == len(got) and set(want) <= set(got) <= set(traded)  # once each, none missing, none invented
    for minute, (o, c, v) in got.items():
        f = traded[minute]
        assert (o, c, v) == (Decimal(f["open"]), Decimal(f["close"]), Decimal(f["volume"]))
    # the live run's newest page (200 minutes; 199 when the test began inside a minute's grace, its newest minute not
    # yet closed) travelled twice, live and in the backfill: the consumer dropped the exact copies
    fetched, sent = (int(n) for n in re.findall(r"(\d+) (?:fetched|sent to)", live.stdout)[:2])
    assert fetched == sent and sent in (199, 200) and raw == (len(got),), live.stdout
    assert dead == (0,)
