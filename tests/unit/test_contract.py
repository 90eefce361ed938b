"""The contract between the DDL in redshift/, the jsonpaths in s3/ and the enriched record.

Any two of them disagreeing is exactly how a COPY breaks silently; these tests fail first.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.records import Kind, count_key, envelope
from coinstream.tables import load_jsonpaths, redshift_statements
from consumer.enrich import enrich
from tests.conftest import FETCHED, make_candle, make_post
from warehouse.loader import Warehouse, to_duckdb

#: Row fields whose column has another name (the price columns say what they are).
RENAMED = {"open": "open_price", "high": "high_price", "low": "low_price", "close": "close_price"}
SAMPLES = {
    "candle": make_candle(1),
    "post": make_post("1", text="#bitcoin $BTC"),
    "post_count": envelope(
        Kind.POST_COUNT, "x", count_key("x", FETCHED), FETCHED, FETCHED, {"query": "bitcoin", "count": 12}
    ),
}


def ddl_columns() -> dict[str, list[str]]:
    out = {}
    for sql_file in sorted((REPO_ROOT / "redshift").glob("*.sql")):
        for statement in redshift_statements(sql_file):
            if isinstance(statement, exp.Create) and statement.kind == "TABLE":
                out[statement.this.this.name] = [c.name for c in statement.find_all(exp.ColumnDef)]
    return out


@pytest.mark.parametrize("kind", ["candle", "post", "post_count"])
def test_ddl_jsonpaths_and_enriched_record_agree(kind: str) -> None:
    stream = load_delivery_streams(Pipeline.load(REPO_ROOT / "pipeline.toml"))[kind]
    columns = ddl_columns()[stream.table]
    paths = load_jsonpaths(REPO_ROOT / "s3" / stream.jsonpaths_file)
    row = enrich(SAMPLES[kind], datetime(2026, 11, 27, tzinfo=UTC))
    assert all(len(p) == 1 and isinstance(p[0], str) for p in paths), "rows are flat: one name per path"
    fields = [str(p[0]) for p in paths]
    assert len(fields) == len(columns), (
        f"{stream.jsonpaths_file}: {len(fields)} paths, {stream.table}: {len(columns)} columns"
    )
    assert [RENAMED.get(f, f) for f in fields] == columns, "jsonpaths must follow the DDL's column order"
    assert set(fields) == set(row), f"enriched {kind} row and jsonpaths differ: {set(fields) ^ set(row)}"


def test_every_jsonpaths_file_is_used_and_keyed_exactly_jsonpaths() -> None:
    streams = load_delivery_streams(Pipeline.load(REPO_ROOT / "pipeline.toml")).values()
    named = {s.jsonpaths_file for s in streams}
    on_disk = {p.name for p in (REPO_ROOT / "s3").glob("*.json")}
    assert named == on_disk
    for name in on_disk:
        assert list(json.loads((REPO_ROOT / "s3" / name).read_text())) == ["jsonpaths"]


@pytest.mark.parametrize("sql_file", sorted((REPO_ROOT / "redshift").glob("*.sql")), ids=lambda p: p.name)
def test_each_redshift_file_parses_as_redshift_and_runs_locally(sql_file: Path, tmp_path: Path) -> None:
    db = duckdb.connect(str(tmp_path / "w.duckdb"))
    earlier = sorted(p for p in (REPO_ROOT / "redshift").glob("*.sql") if p.name < sql_file.name)
    for f in [*earlier, sql_file]:
        for statement in redshift_statements(f):
            db.execute(to_duckdb(statement))


def test_minute_metrics_counts_posts_once_and_zero_fills(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb", REPO_ROOT / "redshift")
    wh.apply_ddl()
    now = datetime(2026, 11, 27, 13, tzinfo=UTC)
    for minute in range(3):
        row = enrich(make_candle(minute, volume=f"{minute + 1}.5"), now)
        wh.db.execute(
            "INSERT INTO raw_candles SELECT * FROM (SELECT ?, ?, ?, ?::TIMESTAMP, ?::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP, ?::TIMESTAMP)",
            [
                row[k]
                for k in (
                    "record_key",
                    "exchange",
                    "market",
                    "minute_utc",
                    "minute_kst",
                    "open",
                    "high",
                    "low",
                    "close",
                    "volume",
                    "quote_volume",
                    "simulated",
                    "fetched_at",
                    "processed_at",
                )
            ],
        )
    for post, copies in ((make_post("a", minute=0), 2), (make_post("b", minute=0), 1), (make_post("c", minute=2), 1)):
        row = enrich(post, now)
        for _ in range(copies):  # the same post delivered twice counts once
            wh.db.execute(
                f"INSERT INTO raw_posts VALUES ({', '.join('?' for _ in range(18))})",
                [
                    json.dumps(v) if isinstance(v, list) else v
                    for v in (
                        row[k]
                        for k in (
                            "record_key",
                            "source",
                            "post_id",
                            "created_at",
                            "created_at_kst",
                            "minute_utc",
                            "author_id",
                            "lang",
                            "text",
                            "hashtags",
                            "cashtags",
                            "matched_terms",
                            "is_retweet",
                            "is_reply",
                            "simulated",
                            "fetched_at",
                            "processed_at",
                            "truncated",
                        )
                    )
                ],
            )
    got = wh.db.execute(
        "SELECT strftime(minute_utc, '%H:%M'), posts_total, posts_x, volume::VARCHAR FROM minute_metrics "
        "WHERE exchange <> 'all' ORDER BY minute_utc"
    ).fetchall()
    assert got == [("12:00", 2, 2, "1.50000000"), ("12:01", 0, 0, "2.50000000"), ("12:02", 1, 1, "3.50000000")]
    wh.close()


def test_the_benchmarks_pydantic_baseline_has_the_contracts_fields() -> None:
    """benchmarks/processor.py measures the contract against the same contract in pydantic: a field added to one
    and not the other would make that baseline refuse every record (as `authored_at` once did, unnoticed)."""
    import msgspec

    from benchmarks import processor
    from coinstream.records import CandleEnvelope, CandlePayload, PostEnvelope, PostPayload

    for ours, theirs in (
        (CandlePayload, processor._LeanCandle),
        (PostPayload, processor._LeanPost),
        (CandleEnvelope, processor._LeanCandleEnvelope),
        (PostEnvelope, processor._LeanPostEnvelope),
    ):
        fields = {f.encode_name for f in msgspec.structs.fields(ours)}
        if ours in (CandleEnvelope, PostEnvelope):
            fields.add("kind")  # the tag, a field in pydantic's union
        assert fields == set(theirs.model_fields), f"{theirs.__name__} differs from {ours.__name__}"
