"""The local COPY: jsonpaths exactly as Redshift reads them, the DDL through sqlglot, idempotent loads."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coinstream import REPO_ROOT, records
from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError
from coinstream.tables import load_jsonpaths, parse_jsonpath
from consumer.enrich import enrich as to_row
from tests.conftest import FETCHED, make_candle, make_post
from warehouse.loader import Warehouse, extract, open_warehouse
from warehouse.rollups import NETWORK_TIME

BUCKET = "coinstream-landing"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    wh = Warehouse(tmp_path / "wh.duckdb", REPO_ROOT / "redshift")
    wh.apply_ddl()
    yield wh
    wh.close()


def streams() -> list[Any]:
    return list(load_delivery_streams(Pipeline.load(REPO_ROOT / "pipeline.toml")).values())


def put_rows(s3: Any, key: str, rows: list[dict[str, Any]] | list[bytes]) -> None:
    body = b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in rows)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_loading_the_same_object_twice_loads_it_once(s3: Any, warehouse: Warehouse) -> None:
    put_rows(s3, "firehose/candles/2026/11/27/12/a", [to_row(make_candle(i), FETCHED) for i in range(3)])
    put_rows(s3, "firehose/posts/2026/11/27/12/b", [to_row(make_post(str(i)), FETCHED) for i in range(2)])
    first = warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    second = warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert first.rows == {"raw_candles": 3, "raw_posts": 2, "raw_post_counts": 0} and first.objects_loaded == 2
    assert second.objects_loaded == 0 and second.objects_skipped == 2
    assert warehouse.row_counts() == {"raw_candles": 3, "raw_posts": 2, "raw_post_counts": 0}
    (open_price, minute) = warehouse.db.execute(
        "SELECT open_price, strftime(minute_utc, '%H:%M') FROM raw_candles ORDER BY minute_utc LIMIT 1"
    ).fetchone()
    assert str(open_price) == "100.00000000" and minute == "12:00"


def test_bad_rows_go_to_stl_load_errors_and_good_rows_load(s3: Any, warehouse: Warehouse) -> None:
    good = to_row(make_post("1"), FETCHED)
    wrong_type = {**to_row(make_post("2"), FETCHED), "created_at": "yesterday"}
    missing = {k: v for k, v in to_row(make_post("3"), FETCHED).items() if k != "post_id"}
    put_rows(
        s3,
        "firehose/posts/x",
        [
            json.dumps(good).encode() + b"\n",
            b"{not json\n",
            json.dumps(wrong_type).encode() + b"\n",
            json.dumps(missing).encode() + b"\n",
        ],
    )
    report = warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert report.rows["raw_posts"] == 1 and report.errors == 3
    reasons = [
        r[0] for r in warehouse.db.execute("SELECT err_reason FROM stl_load_errors ORDER BY line_number").fetchall()
    ]
    assert len(reasons) == 3 and "Invalid JSON" in reasons[0]


def test_multibyte_text_survives(s3: Any, warehouse: Warehouse) -> None:
    text = "비트코인 거래량 🚀 ビットコイン"
    put_rows(s3, "firehose/posts/k", [to_row(make_post("1", text=text), FETCHED)])
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert warehouse.db.execute("SELECT text FROM raw_posts").fetchone() == (text,)


def test_jsonpaths_key_must_be_exactly_jsonpaths(tmp_path: Path) -> None:
    file = tmp_path / "j.json"
    file.write_text(json.dumps({"jsonPaths": ["$['a']"]}))
    with pytest.raises(FatalError, match="exactly \"jsonpaths\".*silently falls back to 'auto'"):
        load_jsonpaths(file)


def test_jsonpaths_count_must_match_the_table(tmp_path: Path, s3: Any, warehouse: Warehouse) -> None:
    s3_dir = tmp_path / "s3"
    shutil.copytree(REPO_ROOT / "s3", s3_dir)
    doc = json.loads((s3_dir / "posts_jsonpaths.json").read_text())
    doc["jsonpaths"].pop()
    (s3_dir / "posts_jsonpaths.json").write_text(json.dumps(doc))
    with pytest.raises(FatalError, match="17 jsonpaths for 18 columns of raw_posts"):
        warehouse.load(s3, BUCKET, streams(), s3_dir)


def test_redshift_jsonpath_subset() -> None:
    assert parse_jsonpath("$['a']['b'][0]") == ["a", "b", 0]
    assert parse_jsonpath("$.a.b") == ["a", "b"]
    assert extract({"a": {"b": [7]}}, ["a", "b", 0]) == 7
    assert extract({"a": {}}, ["a", "b"]) is None
    for bad in ("$.a[*]", "$..a", "a.b", "$"):
        with pytest.raises(ValueError):
            parse_jsonpath(bad)


def test_ddl_that_is_not_redshift_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "001.sql").write_text("CREATE TABLE t (a INT;")
    with pytest.raises(FatalError, match="001.sql: not valid Redshift SQL"):
        Warehouse(tmp_path / "w.duckdb", tmp_path).apply_ddl()


def test_an_object_with_more_bad_rows_than_maxerror_fails_whole_and_is_parked(s3: Any, warehouse: Warehouse) -> None:
    posts = next(s for s in streams() if s.table == "raw_posts")
    assert posts.max_errors == 1000  # the rule the Firehose COPY options set, shared with this loader
    strict = dataclasses.replace(posts, max_errors=1)
    good = [json.dumps(to_row(make_post(str(i)), FETCHED)).encode() + b"\n" for i in range(3)]
    put_rows(s3, "firehose/posts/one-bad", [good[0], b"{not json\n"])
    put_rows(s3, "firehose/posts/two-bad", [good[1], b"{not json\n", b"[]\n", good[2]])
    report = warehouse.load(s3, BUCKET, [strict], REPO_ROOT / "s3")
    assert (report.objects_loaded, report.objects_failed, report.rows["raw_posts"]) == (1, 1, 1)
    assert warehouse.db.execute("SELECT post_id FROM raw_posts").fetchall() == [("0",)]
    failed = warehouse.db.execute("SELECT err_reason FROM stl_load_errors WHERE line_number = 0").fetchall()
    assert failed == [("COPY failed: 2 rows rejected, over MAXERROR 1; nothing of it loaded",)]
    parked = s3.list_objects_v2(Bucket=BUCKET, Prefix=posts.error_prefix)["Contents"]
    assert [o["Key"] for o in parked] == [posts.error_prefix + "two-bad"]
    again = warehouse.load(s3, BUCKET, [strict], REPO_ROOT / "s3")
    assert again.objects_failed == 0 and again.objects_skipped == 2  # Firehose does not retry a parked batch either


def test_a_warehouse_from_before_a_new_column_gets_it_appended(tmp_path: Path, s3: Any) -> None:
    import duckdb

    old = tmp_path / "old.duckdb"
    wh = Warehouse(old, REPO_ROOT / "redshift")
    wh.apply_ddl()
    wh.close()
    db = duckdb.connect(str(old))
    db.execute("ALTER TABLE raw_posts DROP COLUMN truncated")  # as a warehouse made before the column existed
    db.close()
    wh = Warehouse(old, REPO_ROOT / "redshift")
    try:
        wh.apply_ddl()
        put_rows(s3, "firehose/posts/a", [to_row(make_post("1"), FETCHED)])
        assert wh.load(s3, BUCKET, streams(), REPO_ROOT / "s3").rows["raw_posts"] == 1
        assert wh.db.execute("SELECT post_id, truncated FROM raw_posts").fetchall() == [("1", False)]
    finally:
        wh.close()


def _rollup(db: Any) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT source, strftime(minute_utc, '%H:%M'), posts, strftime(last_created_at, '%H:%M:%S') "
        "FROM post_minutes ORDER BY 1, 2"
    ).fetchall()


def _counted(db: Any) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT source, strftime(minute_utc, '%H:%M'), count(DISTINCT record_key), "
        f"strftime(max({NETWORK_TIME}), '%H:%M:%S') FROM raw_posts GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()


def test_the_posts_per_minute_rollup_counts_each_post_once_through_copies_replays_and_rejects(
    s3: Any, warehouse: Warehouse
) -> None:
    first = [to_row(make_post(str(i), minute=i % 3), FETCHED) for i in range(7)]
    put_rows(s3, "firehose/posts/a", first)
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert _rollup(warehouse.db) == [
        ("x", "12:00", 3, "12:00:17"),
        ("x", "12:01", 2, "12:01:17"),
        ("x", "12:02", 2, "12:02:17"),
    ]
    # a replay delivers copies in a new object, with one new post, one from another source and one bad row
    replayed = [
        *first[:4],
        to_row(make_post("new", minute=1), FETCHED),
        to_row(make_post("b", source="bluesky"), FETCHED),
    ]
    put_rows(s3, "firehose/posts/b", [*replayed, {**to_row(make_post("bad", minute=2), FETCHED), "created_at": "?"}])
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert _rollup(warehouse.db) == _counted(warehouse.db)
    assert ("x", "12:01", 3, "12:01:17") in _rollup(warehouse.db) and ("x", "12:02", 2, "12:02:17") in _rollup(
        warehouse.db
    )
    assert ("bluesky", "12:00", 1, "12:00:17") in _rollup(warehouse.db)


def test_a_warehouse_from_before_the_rollup_gets_it_counted_once(tmp_path: Path, s3: Any) -> None:
    put_rows(s3, "firehose/posts/a", [to_row(make_post(str(i), minute=i % 2), FETCHED) for i in range(5)])
    with open_warehouse(tmp_path / "old.duckdb", REPO_ROOT / "redshift") as wh:
        wh.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
        wh.db.execute("DROP TABLE post_minutes")  # as a warehouse made before the rollup existed
    with open_warehouse(tmp_path / "old.duckdb", REPO_ROOT / "redshift") as wh:
        assert _rollup(wh.db) == _counted(wh.db) == [("x", "12:00", 3, "12:00:17"), ("x", "12:01", 2, "12:01:17")]


def test_a_warehouse_wanted_for_its_shape_has_every_table_and_view_but_no_spine(warehouse: Warehouse) -> None:
    shape = Warehouse(Path(":memory:"), REPO_ROOT / "redshift")
    try:
        shape.apply_ddl(fill=False)

        def described(wh: Warehouse) -> tuple[list[Any], list[Any]]:
            names = wh.db.execute("SELECT table_name, table_type FROM information_schema.tables ORDER BY 1").fetchall()
            return names, wh.db.execute("DESCRIBE SELECT * FROM minute_metrics").fetchall()

        assert described(shape) == described(warehouse)  # what AthenaReader types Athena's CSV with
        assert shape.db.execute("SELECT count(*) FROM minute_numbers").fetchone() == (0,)
        assert warehouse.db.execute("SELECT count(*) FROM minute_numbers").fetchone()[0] > 0  # type: ignore[index]
    finally:
        shape.close()


def test_a_post_that_arrives_late_changes_its_old_minute_everywhere_a_user_reads_it(
    s3: Any, warehouse: Warehouse
) -> None:
    """Mastodon's remote posts reach an instance late and out of order; Bluesky's author clock can be years off.
    Each counts in the minute the network gave it, in the views, the metrics and the dashboard's rollup alike."""
    put_rows(s3, "firehose/candles/2026/11/27/12/a", [to_row(make_candle(i), FETCHED) for i in range(3)])
    put_rows(
        s3,
        "firehose/posts/2026/11/27/12/a",
        [to_row(make_post(str(i), minute=i, source="mastodon"), FETCHED) for i in range(3)],
    )
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    late = make_post("remote", minute=0, source="mastodon")  # fetched an hour later, for 12:00
    authored = records.post(
        "bluesky",
        "at://did:plc:a/app.bsky.feed.post/1",
        datetime(2019, 5, 1, tzinfo=UTC),
        FETCHED,
        text="bitcoin",
        seen_at=datetime(2026, 11, 27, 12, 0, 40, tzinfo=UTC),
    )
    later = FETCHED + timedelta(hours=1)
    put_rows(s3, "firehose/posts/2026/11/27/13/b", [to_row(late, later), to_row(authored, later)])
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    assert _rollup(warehouse.db) == _counted(warehouse.db)
    assert ("mastodon", "12:00", 2, "12:00:17") in _rollup(warehouse.db)
    assert ("bluesky", "12:00", 1, "12:00:00") in _rollup(warehouse.db)  # not 2019, not in the future either
    minute = warehouse.db.execute(
        "SELECT posts_mastodon, posts_bluesky FROM minute_metrics WHERE minute_utc = '2026-11-27 12:00:00' LIMIT 1"
    ).fetchall()
    assert minute == [(2, 1)]
    flagged = warehouse.db.execute(
        "SELECT source, dated_apart, created_at FROM posts ORDER BY source, post_id"
    ).fetchall()
    assert flagged[0][:2] == ("bluesky", True) and flagged[0][2].year == 2019
    assert all(not apart for source, apart, _ in flagged if source == "mastodon")


def test_coverage_names_every_gap_and_how_far_behind_the_last_closed_minute(s3: Any, warehouse: Warehouse) -> None:
    from warehouse.coverage import coverage

    kept = [m for m in range(30) if m not in (5, 6, 7, 20)]
    put_rows(s3, "firehose/candles/2026/11/27/12/a", [to_row(make_candle(m), FETCHED) for m in kept])
    put_rows(s3, "firehose/posts/2026/11/27/12/a", [to_row(make_post(str(m), minute=m), FETCHED) for m in (0, 1, 9)])
    warehouse.load(s3, BUCKET, streams(), REPO_ROOT / "s3")
    found = {(c.kind, c.series): c for c in coverage(warehouse.db, datetime(2026, 11, 27, 13, 0, 30, tzinfo=UTC))}
    candles = found[("candles", "coinone KRW-BTC")]
    assert (candles.first.minute, candles.last.minute, candles.minutes, candles.missing) == (0, 29, 26, 4)
    assert [(g.minute, n) for g, n in candles.gaps] == [(5, 3), (20, 1)]
    assert candles.behind == 30  # 12:29 is the last row, 12:59 the last closed minute
    posts = found[("posts", "x")]
    assert [(g.minute, n) for g, n in posts.gaps] == [(2, 7)]
