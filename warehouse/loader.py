"""The local warehouse: a DuckDB file that stands in for Redshift.

Tables come from the Redshift DDL under redshift/, translated with sqlglot. `load` does what
Firehose's COPY step does on AWS: it reads the objects delivered to S3 and maps each JSON row to
columns with the very jsonpaths files a Redshift COPY uses. A ledger of loaded objects makes a
second load of the same object a no-op.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from coinstream.aws import classify
from coinstream.delivery import DeliveryStream
from coinstream.errors import FatalError
from coinstream.tables import load_jsonpaths, redshift_statements
from warehouse import rollups

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)
logging.getLogger("sqlglot").setLevel(logging.ERROR)  # DISTKEY/SORTKEY have no DuckDB meaning; that is expected

_LEDGER = """
CREATE TABLE IF NOT EXISTS coinstream_loaded_objects (
    object_key VARCHAR PRIMARY KEY, table_name VARCHAR, etag VARCHAR, rows BIGINT, loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS stl_load_errors (
    object_key VARCHAR, line_number BIGINT, table_name VARCHAR, err_reason VARCHAR,
    raw_line VARCHAR, logged_at TIMESTAMP
);
"""


def to_duckdb(statement: exp.Expr) -> str:
    """Translate one Redshift statement to DuckDB SQL."""
    return statement.sql(dialect="duckdb", unsupported_level=ErrorLevel.IGNORE)


def extract(row: Any, steps: list[str | int]) -> Any:
    """The value at one jsonpath, or None where the row lacks it (COPY loads NULL)."""
    value = row
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return None
        elif not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


@dataclass
class LoadReport:
    """What one `load` did."""

    objects_loaded: int = 0
    objects_skipped: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    #: objects whose COPY failed whole (more rejected rows than MAXERROR): left unloaded, retried next time
    objects_failed: int = 0
    #: loaded objects deleted from the bucket, and dead letters moved to disk (`coinstream run`)
    pruned: int = 0
    dead_letters: int = 0


class Warehouse:
    """The DuckDB file with the tables of redshift/*.sql and a ledger of loaded S3 objects."""

    def __init__(self, path: Path, redshift_dir: Path) -> None:
        self.path = path
        self.redshift_dir = redshift_dir
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30.0
        while True:  # a reader (`analyze`, `coverage`, the dashboard) holds it for a while: wait for it
            try:
                self.db = duckdb.connect(str(path))
                break
            except duckdb.IOException as exc:
                if time.monotonic() > deadline:
                    raise FatalError(
                        f"{path}: cannot open the warehouse ({exc}); is another coinstream command using it?"
                    ) from None
                time.sleep(0.25)
        self.db.execute("SET enable_progress_bar = false")  # the spine's number table takes a second, once
        self._columns: dict[str, list[str]] = {}

    def close(self) -> None:
        self.db.close()

    def apply_ddl(self, *, fill: bool = True) -> None:
        """Create the tables (and views) of every redshift/*.sql file, in file-name order. `fill=False` leaves out
        the rows some files insert (the 10-million-row minute spine, ~1 s): for a warehouse wanted for its shape
        (column types, COPY staging), never for reading minute_metrics."""
        self.db.execute(_LEDGER)
        for sql_file in sorted(self.redshift_dir.glob("*.sql")):
            for statement in redshift_statements(sql_file):
                if not fill and isinstance(statement, exp.Insert):
                    continue
                name = None
                if isinstance(statement, exp.Create) and statement.kind == "TABLE":
                    schema = statement.this
                    name = schema.this.name if isinstance(schema, exp.Schema) else schema.name
                    self._columns[name] = [c.name for c in statement.find_all(exp.ColumnDef)]
                try:
                    self.db.execute(to_duckdb(statement))
                    if name is not None:
                        self._add_new_columns(name, statement)
                except duckdb.Error as exc:
                    raise FatalError(f"{sql_file}: does not run on the local warehouse: {exc}") from None
        rollups.create(self.db, set(self._columns))

    def recount_rollups(self) -> None:
        """Compute the dashboard's rollups again from the raw tables (rows that reached them other than by `load`)."""
        for rollup in rollups.ROLLUPS:
            rollups.recount(self.db, rollup)

    def _add_new_columns(self, table: str, create: exp.Expr) -> None:
        """A warehouse file made by an older version gets the columns added since (always appended last, as
        Redshift's ALTER TABLE ADD COLUMN does), so COPY's column order still matches the jsonpaths."""
        have = {
            r[0]
            for r in self.db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        }
        for column in create.find_all(exp.ColumnDef):
            if column.name not in have:
                kind = column.args["kind"].sql(dialect="duckdb")
                self.db.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column.name}" {kind}')

    def columns(self, table: str) -> list[str]:
        """Column names of a table, in DDL (and so COPY) order."""
        if table not in self._columns:
            raise FatalError(f"table {table!r} is not defined by any file in {self.redshift_dir}")
        return self._columns[table]

    def load(
        self,
        s3: S3Client,
        bucket: str,
        streams: Iterable[DeliveryStream],
        jsonpaths_dir: Path,
        on_copied: Callable[[str, str], None] | None = None,
    ) -> LoadReport:
        """COPY every not-yet-loaded object under each delivery stream's prefix into its table; `on_copied(key,
        table)` runs after each object's COPY committed (loaded or failed whole)."""
        report = LoadReport()
        loaded = self.loaded_keys()
        for stream in streams:
            columns = self.columns(stream.table)
            paths = load_jsonpaths(jsonpaths_dir / stream.jsonpaths_file)
            if len(paths) != len(columns):
                raise FatalError(
                    f"{jsonpaths_dir / stream.jsonpaths_file}: {len(paths)} jsonpaths for {len(columns)} columns of "
                    f"{stream.table}; COPY needs one expression per column, in column order"
                )
            report.rows.setdefault(stream.table, 0)
            try:
                keys = [
                    (o["Key"], o.get("ETag", ""))
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=stream.prefix)
                    for o in page.get("Contents", [])
                ]
            except Exception as exc:
                raise classify(exc, f"listing s3://{bucket}/{stream.prefix}") from None
            for key, etag in sorted(keys):
                if key in loaded:
                    report.objects_skipped += 1
                    continue
                try:
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                except Exception as exc:
                    raise classify(exc, f"reading s3://{bucket}/{key}") from None
                rows, errors = self._copy(key, stream.table, columns, paths, body, etag, stream.max_errors)
                if on_copied is not None:
                    on_copied(key, stream.table)
                if rows < 0:  # as Firehose does once its retries end: the object goes under the error prefix
                    report.objects_failed += 1
                    report.errors += errors
                    parked = stream.error_prefix + key.removeprefix(stream.prefix)
                    try:
                        s3.copy_object(Bucket=bucket, Key=parked, CopySource={"Bucket": bucket, "Key": key})
                    except Exception as exc:
                        raise classify(exc, f"parking s3://{bucket}/{key} under {stream.error_prefix}") from None
                    continue
                report.objects_loaded += 1
                report.rows[stream.table] += rows
                report.errors += errors
        return report

    def loaded_keys(self) -> set[str]:
        """Keys of every object a COPY has taken (loaded, or failed whole and parked)."""
        return {r[0] for r in self.db.execute("SELECT object_key FROM coinstream_loaded_objects").fetchall()}

    def _types(self, table: str) -> list[tuple[str, str, bool]]:
        rows = self.db.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        return [(str(n), str(t), bool(nullable)) for n, t, nullable in rows]

    def _stage(self, staged: list[list[Any]], width: int) -> None:
        """Insert the staged rows ([line, c0, c1, ...]) into coinstream_stage in one scan of column arrays
        (DuckDB's executemany inserts row by row: ~1.8 ms a row, 4 s for the demo's 2,400 rows)."""
        by_column = list(zip(*staged, strict=True))
        arrays = {"line": np.array(by_column[0], dtype=np.int64)}
        arrays.update((f"c{i}", np.array(by_column[i + 1], dtype=object)) for i in range(width))
        self.db.register("coinstream_staged_rows", arrays)
        try:
            self.db.execute("INSERT INTO coinstream_stage SELECT * FROM coinstream_staged_rows")
        finally:
            self.db.unregister("coinstream_staged_rows")

    def _copy(
        self,
        key: str,
        table: str,
        columns: list[str],
        paths: list[list[str | int]],
        body: bytes,
        etag: str,
        max_errors: int,
    ) -> tuple[int, int]:
        """COPY one object as Redshift does: up to `max_errors` rejected rows go to stl_load_errors and the rest
        load; past that the whole COPY fails, nothing of the object loads, and (-1, errors) is returned."""
        staged, errors = [], []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a row must be a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                errors.append((key, number, table, f"Invalid JSON row: {exc}", line[:1024].decode(errors="replace")))
                continue
            values = [extract(row, p) for p in paths]
            staged.append(
                [number, *(None if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values)]
            )
        types = {name: (dtype, nullable) for name, dtype, nullable in self._types(table)}
        stage_cols = ", ".join(f"c{i} VARCHAR" for i in range(len(columns)))
        # A value that does not convert to its column's type, or a NULL in a NOT NULL column, rejects
        # the row into stl_load_errors, as Redshift COPY would report it.
        bad_checks = " OR ".join(
            f"(c{i} IS NOT NULL AND TRY_CAST(c{i} AS {types[c][0]}) IS NULL)"
            + ("" if types[c][1] else f" OR c{i} IS NULL")
            for i, c in enumerate(columns)
        )
        casts = ", ".join(f"CAST(c{i} AS {types[c][0]})" for i, c in enumerate(columns))
        column_list = ", ".join(f'"{c}"' for c in columns)
        self.db.execute("BEGIN TRANSACTION")
        try:
            self.db.execute(f"CREATE OR REPLACE TEMP TABLE coinstream_stage (line BIGINT, {stage_cols})")
            if staged:
                self._stage(staged, len(columns))
            rejected = self.db.execute(
                f"SELECT line, to_json(coinstream_stage)::VARCHAR FROM coinstream_stage WHERE {bad_checks}"  # noqa: S608
            ).fetchall()
            for line_number, raw in rejected:
                errors.append(
                    (key, line_number, table, "a value does not fit its column's type or NOT NULL", raw[:1024])
                )
            if len(errors) > max_errors:
                failed = f"COPY failed: {len(errors)} rows rejected, over MAXERROR {max_errors}; nothing of it loaded"
                errors.append((key, 0, table, failed, ""))
                self.db.executemany("INSERT INTO stl_load_errors VALUES (?, ?, ?, ?, ?, now())", errors)
                # recorded with -1 rows: a failed COPY is not retried by later loads (Firehose parks it too)
                self.db.execute("INSERT INTO coinstream_loaded_objects VALUES (?, ?, ?, -1, now())", [key, table, etag])
                self.db.execute("DROP TABLE coinstream_stage")
                self.db.execute("COMMIT")
                logger.error("%s: %s (see stl_load_errors)", key, failed)
                return -1, len(errors) - 1
            self.db.execute(
                f"INSERT INTO {table} ({column_list}) SELECT {casts} FROM coinstream_stage "  # noqa: S608
                f"WHERE NOT ({bad_checks}) ORDER BY line"
            )
            good = len(staged) - len(rejected)
            rollup = rollups.BY_RAW_TABLE.get(table)
            if rollup is not None and good:
                keys = ", ".join(f'CAST(c{columns.index(k)} AS {types[k][0]}) AS "{k}"' for k in rollup.keys)
                touched = f"SELECT DISTINCT {keys} FROM coinstream_stage WHERE NOT ({bad_checks})"  # noqa: S608
                self.db.execute(f"CREATE OR REPLACE TEMP TABLE coinstream_touched AS {touched}")
                rollups.refresh(self.db, rollup, "coinstream_touched")
                self.db.execute("DROP TABLE coinstream_touched")
            if errors:
                self.db.executemany("INSERT INTO stl_load_errors VALUES (?, ?, ?, ?, ?, now())", errors)
            self.db.execute(
                "INSERT INTO coinstream_loaded_objects VALUES (?, ?, ?, ?, now())", [key, table, etag, good]
            )
            self.db.execute("DROP TABLE coinstream_stage")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if errors:
            logger.warning("%s: %d rows rejected, see the stl_load_errors table", key, len(errors))
        return good, len(errors)

    def raw_tables(self) -> list[str]:
        """The tables COPY loads (redshift/*.sql's raw_*; not the spine's number tables)."""
        return [t for t in self._columns if t.startswith("raw_")]

    def columns_of(self, table: str) -> list[str]:
        """Column names of any table of the warehouse (the bookkeeping ones too), in order."""
        cursor = self.db.cursor()
        try:
            rows = cursor.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
            ).fetchall()
        finally:
            cursor.close()
        return [str(r[0]) for r in rows]

    def row_counts(self) -> dict[str, int]:
        """Rows per raw table (what COPY loads; not the spine's number tables)."""
        tables = self.raw_tables()
        return {t: int(self.db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}  # type: ignore[index]  # noqa: S608


@contextmanager
def open_warehouse(path: Path, redshift_dir: Path) -> Iterator[Warehouse]:
    """The warehouse with every table and view of `redshift_dir` in place; closed when the block ends."""
    wh = Warehouse(path, redshift_dir)
    try:
        wh.apply_ddl()
        yield wh
    finally:
        wh.close()
