"""Rows as Firehose's Apache Iceberg destination takes them (COINSTREAM_WAREHOUSE=iceberg on AWS).

Redshift's COPY maps a row's JSON keys to columns through the jsonpaths files of s3/. Firehose's Iceberg
destination has no such map: it matches each record's top-level keys to the table's column names, wants every
column present (null where the row has none), timestamps as microseconds since the epoch, and one JSON object per
record (it is billed per byte, with no 5 KB rounding, so nothing is lost by not packing). Decimals go as exact
JSON numbers (the row carries them as text, so no float ever rounds them). The same jsonpaths and
DDL that COPY uses define the shape here, so the two warehouses cannot disagree on which key is which column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlglot import exp

from coinstream.config import Pipeline
from coinstream.delivery import load_delivery_streams
from coinstream.errors import FatalError
from coinstream.records import Kind
from coinstream.tables import load_jsonpaths, table_columns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TEXT = {exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR, exp.DataType.Type.TEXT, exp.DataType.Type.NVARCHAR}

#: (JSON key of the row, column of the table, how the value is written: "timestamp", "text", "number" or "as_is")
Field = tuple[str, str, str]


def microseconds(text: str) -> int:
    """A UTC timestamp column's text ("2026-11-28 12:00:00[.ffffff]") as microseconds since the epoch."""
    return (datetime.fromisoformat(text).replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def _how(kind: exp.DataType) -> str:
    if kind.this == exp.DataType.Type.TIMESTAMP:
        return "timestamp"
    if kind.this in _TEXT:
        return "text"
    return "number" if kind.this == exp.DataType.Type.DECIMAL else "as_is"


class LakeRows:
    """Turns a consumer row into the record of its kind's Iceberg table."""

    def __init__(self, fields: Mapping[Kind, Sequence[Field]]) -> None:
        self.fields = fields

    @classmethod
    def of(cls, pipeline: Pipeline) -> LakeRows:
        """The shapes the pipeline's files define: each delivery stream's jsonpaths against its table's DDL."""
        tables: dict[str, list[tuple[str, exp.DataType]]] = {}
        for sql_file in sorted((pipeline.root / "redshift").glob("*.sql")):
            tables.update(table_columns(sql_file))
        fields: dict[Kind, list[Field]] = {}
        for kind, stream in load_delivery_streams(pipeline).items():
            jsonpaths = pipeline.root / "s3" / stream.jsonpaths_file
            paths = load_jsonpaths(jsonpaths)
            columns = tables.get(stream.table)
            if columns is None or len(columns) != len(paths):
                raise FatalError(
                    f"{jsonpaths}: {len(paths)} paths for {stream.table}'s {len(columns or [])} columns; "
                    "COPY and the Iceberg rows need one path per column, in DDL order"
                )
            shaped = []
            for steps, (column, kind_of) in zip(paths, columns, strict=True):
                if len(steps) != 1 or not isinstance(steps[0], str):
                    raise FatalError(
                        f"{jsonpaths}: {column} is read from a nested path; Iceberg rows are flat: name a top-level key"
                    )
                shaped.append((steps[0], column, _how(kind_of)))
            fields[Kind(kind)] = shaped
        return cls(fields)

    def __call__(self, kind: Kind, row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, column, how in self.fields[kind]:
            value = row.get(key)
            if value is not None:
                if how == "timestamp":
                    value = microseconds(value)
                elif how == "text" and isinstance(value, list | dict):
                    value = orjson.dumps(value).decode()  # as COPY stores a JSON array in a VARCHAR
                elif how == "number" and isinstance(value, str):
                    value = orjson.Fragment(value)  # the decimal text as an exact JSON number, never a float
            out[column] = value
        return out
