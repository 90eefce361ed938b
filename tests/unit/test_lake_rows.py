"""Rows for Firehose's Iceberg destination: named as the Glue table's columns, every column present, timestamps in
microseconds, one JSON object per Firehose record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from coinstream import REPO_ROOT
from coinstream.config import Pipeline
from coinstream.errors import FatalError
from coinstream.records import Kind
from consumer.dead_letter import Origin
from consumer.enrich import enrich
from consumer.firehose_sink import FirehoseSink
from consumer.lake_rows import LakeRows, microseconds
from tests.conftest import make_candle, make_post
from tests.unit.conftest import STREAMS
from warehouse.athena import glue_columns

NOW = datetime(2026, 11, 27, 12, 5, 1, 250000, tzinfo=UTC)


def _pipeline() -> Pipeline:
    return Pipeline.load(REPO_ROOT / "pipeline.toml")


def test_each_kind_becomes_exactly_its_glue_tables_columns() -> None:
    shape = LakeRows.of(_pipeline())
    tables = glue_columns(REPO_ROOT / "redshift")
    candle = shape(Kind.CANDLE, enrich(make_candle(volume="2.25"), NOW))
    post = shape(Kind.POST, enrich(make_post(text="#Bitcoin up, $btc too"), NOW))
    assert list(candle) == [c for c, _ in tables["raw_candles"]]
    assert list(post) == [c for c, _ in tables["raw_posts"]]
    assert candle["open_price"] is not None and "open" not in candle  # COPY's jsonpaths renamed it
    assert b'"volume":2.25,' in orjson.dumps(candle)  # a JSON number
    wide = shape(Kind.CANDLE, enrich(make_candle(volume="123456789012345678901.12345678"), NOW))
    assert b'"volume":123456789012345678901.12345678,' in orjson.dumps(wide)  # exact: never through a float
    assert candle["minute_utc"] == int(datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()) * 1_000_000
    assert candle["processed_at"] == int(NOW.timestamp() * 1_000_000)
    assert post["created_at"] == int(datetime(2026, 11, 27, 12, 0, 17, tzinfo=UTC).timestamp()) * 1_000_000
    assert json.loads(post["hashtags"]) == ["bitcoin"] and json.loads(post["cashtags"]) == ["BTC"]
    assert post["lang"] == "en" and post["truncated"] is False


def test_microseconds_keep_the_fraction() -> None:
    assert microseconds("1970-01-01 00:00:01.000002") == 1_000_002
    assert microseconds("2026-11-27 12:00:17") == int(datetime(2026, 11, 27, 12, 0, 17, tzinfo=UTC).timestamp()) * 10**6


def test_the_sink_sends_one_shaped_object_per_record(aws: dict[str, Any]) -> None:
    sent: list[dict[str, Any]] = []
    firehose = aws["firehose"]
    firehose.meta.events.register(
        "provide-client-params.firehose.PutRecordBatch", lambda params, **_: sent.append(params)
    )
    sink = FirehoseSink(STREAMS, firehose, shape=LakeRows.of(_pipeline()))  # type: ignore[arg-type]
    for minute in range(30):
        sink.add(Kind.POST, enrich(make_post(post_id=str(minute), minute=minute), NOW), Origin(str(minute), "1", b"{}"))
    assert sink.flush() == []
    records = [r["Data"] for call in sent for r in call["Records"]]
    assert len(records) == 30 and sink.delivered_records == 30
    assert [orjson.loads(r)["post_id"] for r in records] == [str(m) for m in range(30)]


def test_a_jsonpaths_file_that_does_not_cover_the_table_is_named(tmp_path: Path) -> None:
    pipeline = _pipeline()
    root = tmp_path / "repo"
    for folder in ("redshift", "s3", "firehose_config"):
        (root / folder).mkdir(parents=True)
        for f in (pipeline.root / folder).glob("*.*"):
            (root / folder / f.name).write_bytes(f.read_bytes())
    (root / "pipeline.toml").write_bytes((pipeline.root / "pipeline.toml").read_bytes())
    paths = json.loads((root / "s3" / "candles_jsonpaths.json").read_text())
    paths["jsonpaths"].pop()
    (root / "s3" / "candles_jsonpaths.json").write_text(json.dumps(paths))
    with pytest.raises(FatalError, match=r"candles_jsonpaths.json: 13 paths for raw_candles's 14 columns"):
        LakeRows.of(Pipeline.load(root / "pipeline.toml"))
