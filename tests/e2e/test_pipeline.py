"""The whole pipeline, as a user runs it: local stack, producers, the real KCL daemon, the warehouse."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from consumer.native import post_rows
from tests.conftest import payload
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
            assert "posts take the native path" in (state / "logs" / "kcl-warehouse.log").read_text()

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
