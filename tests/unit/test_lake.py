"""The warehouse without a cluster, locally: Iceberg tables (pyiceberg, SQL catalog) on a moto server's S3.

The same delivered objects loaded into the DuckDB warehouse and into the lake give the same rows, the same
rejected rows and the same analysis figures; loading again appends nothing.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.delivery import DeliveryStream, load_delivery_streams
from coinstream.processes import free_port
from coinstream.timeutil import epoch_minute
from consumer.enrich import enrich
from producer.sources import simulated
from tests.warehouse_data import NOW, figures
from warehouse import lake
from warehouse.dashboard.server import serve
from warehouse.loader import Warehouse
from warehouse.reading import LakeReader, warehouse_file

BUCKET = "coinstream-landing"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[tuple[str, Any]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="local", aws_secret_access_key="local"
    )
    try:
        yield endpoint, s3
    finally:
        server.stop()


def _deliver(s3: Any, bucket: str) -> None:
    pipeline = Pipeline.load(REPO_ROOT / "pipeline.toml")
    streams = load_delivery_streams(pipeline)
    sim = simulated.Simulation(seed=7, lag_minutes=2)
    last = epoch_minute(NOW) - 1
    first = last - 180
    envelopes = [*simulated.candles(sim, first, last, NOW), *simulated.posts(sim, first, last, NOW)]
    rows: dict[str, list[bytes]] = {}
    for e in envelopes:
        rows.setdefault(e.kind.value, []).append(json.dumps(enrich(e, NOW)).encode())
    s3.create_bucket(Bucket=bucket)
    for kind, lines in rows.items():
        half = len(lines) // 2  # two objects per kind, as Firehose lands one per buffer interval
        for part, chunk in enumerate((lines[:half], lines[half:])):
            s3.put_object(Bucket=bucket, Key=f"{streams[kind].prefix}2026/11/28/1{part}/rows", Body=b"\n".join(chunk))
    # a row COPY rejects (not a number where a number goes): stl_load_errors, in both warehouses
    s3.put_object(Bucket=bucket, Key=f"{streams['candle'].prefix}2026/11/28/12/bad", Body=b'{"open_price": "x"}\n')


def _delivered(
    tmp_path: Path, moto_s3: tuple[str, Any], name: str
) -> tuple[Any, str, list[DeliveryStream], lake.LakeConfig, lake.Lake]:
    """A bucket of its own with the delivered objects, and an empty lake over it: (s3, bucket, streams, config, lake)."""
    endpoint, s3 = moto_s3
    bucket = f"{BUCKET}-{name}"
    _deliver(s3, bucket)
    streams = list(load_delivery_streams(Pipeline.load(REPO_ROOT / "pipeline.toml")).values())
    config = lake.LakeConfig(
        catalog_file=tmp_path / "iceberg" / "catalog.db",
        location=f"s3://{bucket}/iceberg",
        s3_endpoint=endpoint,
        region="us-east-1",
        access_key="local",
        secret_key="local",
    )
    return s3, bucket, streams, config, lake.Lake(config)


def test_the_lake_holds_what_the_duckdb_warehouse_holds_and_analysis_agrees(
    tmp_path: Path, moto_s3: tuple[str, Any]
) -> None:
    s3, bucket, streams, config, the_lake = _delivered(tmp_path, moto_s3, "lake")
    first = lake.load(the_lake, s3, bucket, streams, REPO_ROOT / "s3", REPO_ROOT / "redshift")
    again = lake.load(lake.Lake(config), s3, bucket, streams, REPO_ROOT / "s3", REPO_ROOT / "redshift")
    assert first.objects_loaded == 5 and first.errors == 1
    assert again.objects_loaded == 0 and again.objects_skipped == 5  # the ledger lives in the lake too
    assert {"raw_candles", "raw_posts", "stl_load_errors", "coinstream_loaded_objects"} <= the_lake.names()
    data = s3.list_objects_v2(Bucket=bucket, Prefix="iceberg/")["Contents"]
    assert any(o["Key"].endswith(".parquet") for o in data)  # the table data is on S3, as Parquet

    # compaction: each delivered object became a data file; one rewrite makes one, old snapshots expire
    posts = the_lake.catalog.load_table(("coinstream", "raw_posts"))
    rows, snapshots = posts.scan().count(), len(posts.snapshots())
    assert the_lake.compact("raw_posts", keep=timedelta(0)) == (2, 1)
    posts = the_lake.catalog.load_table(("coinstream", "raw_posts"))
    assert posts.scan().count() == rows and len(posts.snapshots()) == 1 < snapshots

    duck = Warehouse(tmp_path / "wh.duckdb", REPO_ROOT / "redshift")
    duck.apply_ddl()
    duck.load(s3, bucket, streams, REPO_ROOT / "s3")
    read = lake.reader(the_lake, REPO_ROOT / "redshift")
    try:
        assert read.row_counts() == duck.row_counts() == lake.row_counts(the_lake, REPO_ROOT / "redshift")
        for view in ("candles", "posts", "minute_metrics"):
            query = f"SELECT * FROM {view} ORDER BY ALL"
            assert read.db.execute(query).fetchall() == duck.db.execute(query).fetchall(), view
        errors = "SELECT object_key, line_number, err_reason FROM stl_load_errors ORDER BY ALL"
        assert read.db.execute(errors).fetchall() == duck.db.execute(errors).fetchall() != []
        lake_figures, duck_figures = figures(read.db), figures(duck.db)
        assert lake_figures == duck_figures and len(duck_figures) == 1
    finally:
        read.close()
        duck.close()


def test_the_dashboard_reads_the_lake_through_the_same_interface_as_the_duckdb_file(
    tmp_path: Path, moto_s3: tuple[str, Any]
) -> None:
    s3, bucket, streams, config, the_lake = _delivered(tmp_path, moto_s3, "dashboard")
    lake_reader = LakeReader(the_lake, config.catalog_file, REPO_ROOT / "redshift")
    assert lake_reader() is None  # nothing loaded yet: the page says it is empty
    lake.load(the_lake, s3, bucket, streams, REPO_ROOT / "s3", REPO_ROOT / "redshift")
    duck = Warehouse(tmp_path / "wh.duckdb", REPO_ROOT / "redshift")
    duck.apply_ddl()
    duck.load(s3, bucket, streams, REPO_ROOT / "s3")
    duck.close()
    file_reader = warehouse_file(tmp_path / "wh.duckdb", REPO_ROOT / "redshift")

    def page(reader: Any) -> dict[str, Any]:
        server = serve(reader, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/api/data?range=all&window=30"
            with urllib.request.urlopen(url, timeout=30) as answer:
                return dict(json.loads(answer.read()))
        finally:
            server.shutdown()
            server.server_close()

    from_lake, from_file = page(lake_reader), page(file_reader)
    assert from_lake == from_file and from_lake.get("minutes"), sorted(from_lake)
    version = lake_reader.version()
    held = lake_reader()
    assert held is not None
    held.close()
    assert lake_reader._snapshot is not None and lake_reader.version() == version  # reused while nothing changes

    # a later load is seen on the next request: the lake's version changed, the snapshot is rebuilt
    first_object = s3.list_objects_v2(Bucket=bucket, Prefix=streams[0].prefix)["Contents"][0]["Key"]
    copy = s3.get_object(Bucket=bucket, Key=first_object)["Body"].read()  # a replayed delivery: raw rows twice
    s3.put_object(Bucket=bucket, Key=f"{streams[0].prefix}2026/11/28/13/replayed", Body=copy)
    lake.load(the_lake, s3, bucket, streams, REPO_ROOT / "s3", REPO_ROOT / "redshift")
    assert lake_reader.version() != version
    after = lake_reader()
    assert after is not None
    table = streams[0].table
    count = after.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    after.close()
    assert count is not None and count[0] == lake.row_counts(the_lake, REPO_ROOT / "redshift")[table]
