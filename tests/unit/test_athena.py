"""The views as Athena (Trino) SQL, generated from redshift/*.sql with sqlglot.

Athena cannot run here, so the translation is checked two ways: every statement parses as Trino SQL and uses no
Redshift-only function, and the Athena SQL, translated once more into DuckDB, computes exactly the rows the
Redshift SQL computes on the same raw rows (duplicates, gaps and all).
"""

from __future__ import annotations

from pathlib import Path

import boto3
import duckdb
import pytest
import sqlglot
from botocore.stub import Stubber
from moto import mock_aws
from sqlglot.errors import ErrorLevel

from coinstream import REPO_ROOT
from coinstream.errors import FatalError
from producer.sources import simulated
from tests.warehouse_data import figures, simulated_warehouse
from warehouse.athena import glue_columns, view_statements
from warehouse.loader import Warehouse
from warehouse.reading import AthenaReader, warehouse_file

REDSHIFT = REPO_ROOT / "redshift"
VIEWS = ("candles", "posts", "post_counts", "candle_minutes", "minute_posts", "minute_metrics")


@pytest.mark.parametrize("statement", view_statements(REDSHIFT), ids=lambda s: " ".join(s.split()[:5]))
def test_each_statement_is_trino_sql_without_redshift_functions(statement: str) -> None:
    parsed = sqlglot.parse_one(statement, read="trino", error_level=ErrorLevel.RAISE)
    assert parsed is not None
    for redshift_only in ("DATEADD(", "DATEDIFF(", "GETDATE(", "CONVERT_TIMEZONE(", "DISTKEY", "SORTKEY"):
        assert redshift_only not in statement.upper()


def test_every_view_is_created_and_the_spine_is_a_view_on_athena() -> None:
    statements = view_statements(REDSHIFT)
    created = [sqlglot.parse_one(s, read="athena").this.name for s in statements if s.startswith("CREATE")]
    assert set(VIEWS) | {"minute_numbers"} <= set(created)
    assert not [s for s in statements if s.upper().startswith(("CREATE TABLE", "INSERT"))]


def test_the_athena_views_compute_what_the_redshift_views_compute(tmp_path: Path) -> None:
    native = tmp_path / "native.duckdb"
    simulated_warehouse(native, simulated.Simulation(seed=3, lag_minutes=2), minutes=240)
    wh = Warehouse(native, REDSHIFT)
    wh.apply_ddl()
    # copies of the same facts fetched later (a replay; a corrected candle) and a minute without a candle
    wh.db.execute(
        "INSERT INTO raw_candles SELECT * REPLACE (fetched_at + INTERVAL 1 MINUTE AS fetched_at, "
        "volume * 2 AS volume) FROM raw_candles WHERE minute(minute_utc) % 7 = 0"
    )
    wh.db.execute("INSERT INTO raw_posts SELECT * FROM raw_posts WHERE minute(minute_utc) % 5 = 0")
    wh.db.execute("DELETE FROM raw_candles WHERE minute(minute_utc) % 11 = 3")
    # X's counts of each minute, some counted twice (the later count wins)
    wh.db.execute(
        "INSERT INTO raw_post_counts SELECT 'x:count:' || minute_utc, 'x', 'bitcoin', minute_utc, minute_kst, "
        "epoch(minute_utc)::BIGINT % 97, false, fetched_at, fetched_at FROM candles"
    )
    wh.db.execute(
        "INSERT INTO raw_post_counts SELECT * REPLACE (post_count + 1 AS post_count, "
        "fetched_at + INTERVAL 2 MINUTE AS fetched_at) FROM raw_post_counts WHERE minute(minute_utc) % 3 = 0"
    )
    wh.close()

    lake = duckdb.connect()
    lake.execute(f"ATTACH '{native}' AS native (READ_ONLY)")
    for table in glue_columns(REDSHIFT):
        lake.execute(f"CREATE TABLE {table} AS SELECT * FROM native.{table}")
    for statement in view_statements(REDSHIFT):
        lake.execute(sqlglot.transpile(statement, read="athena", write="duckdb")[0])
    for view in VIEWS:
        expected = lake.execute(f"SELECT * FROM native.{view} ORDER BY ALL").fetchall()
        got = lake.execute(f"SELECT * FROM {view} ORDER BY ALL").fetchall()
        assert got == expected, view
        assert expected, f"{view} is empty: the comparison proves nothing"
    lake.close()


def test_glue_columns_are_the_raw_tables_in_iceberg_types() -> None:
    tables = glue_columns(REDSHIFT)
    assert set(tables) == {"raw_candles", "raw_posts", "raw_post_counts"}
    candles = dict(tables["raw_candles"])
    assert candles["record_key"] == "string"
    assert candles["minute_utc"] == "timestamp"
    assert candles["volume"] == "decimal(38,8)"
    assert dict(tables["raw_post_counts"])["post_count"] == "bigint"
    assert "minute_numbers" not in tables  # Athena's spine is a view


def test_a_column_type_iceberg_lacks_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "001_raw.sql").write_text("CREATE TABLE raw_x (k VARCHAR(8) NOT NULL, shape GEOMETRY);")
    with pytest.raises(FatalError, match=r"raw_x\.shape is GEOMETRY.*use one of"):
        glue_columns(tmp_path)


def test_analyze_on_aws_reads_athenas_minute_metrics_and_gets_the_localfigures(tmp_path: Path) -> None:
    """Athena answered by botocore's Stubber, its result file (CSV as Athena writes it) on moto's S3: the figures
    equal those of the DuckDB warehouse holding the same rows."""
    native = tmp_path / "native.duckdb"
    simulated_warehouse(native, simulated.Simulation(seed=5, lag_minutes=3), minutes=300)
    file_db = warehouse_file(native, REDSHIFT)()
    assert file_db is not None
    expected = figures(file_db)
    timestamps = [n for n, kind, *_ in file_db.execute("DESCRIBE minute_metrics").fetchall() if kind == "TIMESTAMP"]
    listed = ", ".join(
        f"strftime({c}, '%Y-%m-%d %H:%M:%S.%g') AS {c}" if c in timestamps else c
        for (c,) in file_db.execute("SELECT column_name FROM (DESCRIBE minute_metrics)").fetchall()
    )
    csv = tmp_path / "result.csv"
    file_db.execute(f"COPY (SELECT {listed} FROM minute_metrics) TO '{csv}' (HEADER, FORCE_QUOTE *)")
    file_db.close()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="landing")
        s3.put_object(Bucket="landing", Key="athena-results/q1.csv", Body=csv.read_bytes())
        athena = boto3.client("athena", region_name="us-east-1")
        with Stubber(athena) as stub:
            stub.add_response(
                "start_query_execution",
                {"QueryExecutionId": "q1"},
                {
                    "QueryString": "SELECT * FROM minute_metrics",
                    "WorkGroup": "coinstream",
                    "QueryExecutionContext": {"Database": "coinstream"},
                },
            )
            stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
            stub.add_response(
                "get_query_execution",
                {
                    "QueryExecution": {
                        "Status": {"State": "SUCCEEDED"},
                        "ResultConfiguration": {"OutputLocation": "s3://landing/athena-results/q1.csv"},
                    }
                },
            )
            db = AthenaReader(athena, s3, "coinstream", "coinstream", REDSHIFT, delay=0.01)()
    assert db is not None
    assert figures(db) == expected and expected
    db.close()
