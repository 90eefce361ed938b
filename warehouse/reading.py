"""One way to read either warehouse: a DuckDB connection holding the raw tables, the views of redshift/*.sql and
the dashboard's rollups, whichever warehouse holds the rows.

- The DuckDB warehouse file (COINSTREAM_WAREHOUSE=redshift, locally): opened read-only for each reader.
- The lake (COINSTREAM_WAREHOUSE=iceberg, locally): the Iceberg tables scanned into an in-memory DuckDB with
  the same views, rebuilt only when a table's snapshot changed (a `load` committed), and shared by readers.
- The lake on AWS (COINSTREAM_TARGET=aws): Athena computes minute_metrics with its views (warehouse/athena.py);
  the result file it writes to S3 becomes that table in an in-memory DuckDB (what the analysis reads).

The analysis and the dashboard take a `Reader` and never ask which warehouse is behind it.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from coinstream.aws import run_athena
from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from warehouse import lake as lakes
from warehouse.loader import Warehouse, open_warehouse

#: A connection to read from (the caller closes it), or None while the warehouse holds nothing yet; raises
#: `Busy` while a writer holds the warehouse.
Reader = Callable[[], duckdb.DuckDBPyConnection | None]


#: Seconds a reader waits for a load to let go of the DuckDB file before it says the warehouse is busy.
BUSY_WAIT = 10.0


class Busy(FatalError):
    """The warehouse is being written (a `load` holds the DuckDB file); try again in a moment."""


def warehouse_file(path: Path, redshift_dir: Path) -> Reader:
    """Readers of the DuckDB warehouse file; first brings an older file's views and rollups up to date."""
    if path.exists():
        try:
            with open_warehouse(path, redshift_dir):
                pass  # a warehouse from an older version gets the views and rollups readers expect
        except FatalError:
            pass  # another command has it open: the readers wait for it

    def read() -> duckdb.DuckDBPyConnection | None:
        if not path.exists():
            return None
        deadline = time.monotonic() + BUSY_WAIT
        while True:  # a load (`coinstream run` does one a minute) holds the file for a moment: wait it out
            try:
                return duckdb.connect(str(path), read_only=True)
            except duckdb.Error:
                if time.monotonic() > deadline:
                    raise Busy(f"{path}: the warehouse is busy (a load is running); try again in a moment") from None
                time.sleep(0.2)

    return read


class LakeReader:
    """Readers of the lake: one in-memory DuckDB per version of the lake's tables, each reader a cursor of it."""

    def __init__(self, lake: lakes.Lake, catalog_file: Path, redshift_dir: Path) -> None:
        self.lake = lake
        self.catalog_file = catalog_file
        self.redshift_dir = redshift_dir
        self._lock = threading.Lock()
        self._version: tuple[tuple[str, str], ...] | None = None
        self._snapshot: Warehouse | None = None

    def version(self) -> tuple[tuple[str, str], ...]:
        """Each table's current metadata file: a commit to any table changes it (read from the SQL catalog)."""
        if not self.catalog_file.exists():
            return ()
        catalog = sqlite3.connect(f"file:{self.catalog_file}?mode=ro", uri=True)
        try:
            rows = catalog.execute(
                "SELECT table_name, metadata_location FROM iceberg_tables WHERE table_namespace = ?",
                (lakes.NAMESPACE,),
            ).fetchall()
        except sqlite3.OperationalError:
            # no table yet, or a pyiceberg that keeps its catalog otherwise: ask the catalog (slower, same answer)
            rows = [
                (name, self.lake.catalog.load_table((lakes.NAMESPACE, name)).metadata_location)
                for name in self.lake.names()
            ]
        finally:
            catalog.close()
        return tuple(sorted((str(name), str(location)) for name, location in rows))

    def __call__(self) -> duckdb.DuckDBPyConnection | None:
        with self._lock:
            version = self.version()
            if not version:
                return None
            if version != self._version or self._snapshot is None:
                # the previous snapshot is left to its readers; it goes when the last one closes
                self._snapshot = lakes.reader(self.lake, self.redshift_dir)
                self._version = version
            return self._snapshot.db.cursor()


@dataclass
class AthenaReader:
    """minute_metrics as Athena computes it over the Iceberg tables, in an in-memory DuckDB (with raw_candles'
    series bounds as a view of it): what `analyze` reads. Each call runs one query; Athena bills its scan."""

    athena: Any
    s3: Any
    workgroup: str
    database: str
    redshift_dir: Path
    delay: float = 1.0
    #: The one view the analysis reads (the series bounds it takes from raw_candles come from it too).
    QUERY: ClassVar[str] = "SELECT * FROM minute_metrics"

    def __call__(self) -> duckdb.DuckDBPyConnection | None:
        (query,) = run_athena(self.athena, self.workgroup, self.database, [self.QUERY], delay=self.delay)
        execution = self.athena.get_query_execution(QueryExecutionId=query)["QueryExecution"]
        bucket, _, key = execution["ResultConfiguration"]["OutputLocation"].removeprefix("s3://").partition("/")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        # the column types are the local view's: the same definitions, translated (warehouse/athena.py)
        shape = Warehouse(Path(":memory:"), self.redshift_dir)
        try:
            shape.apply_ddl(fill=False)
            columns = shape.db.execute("DESCRIBE SELECT * FROM minute_metrics").fetchall()
        finally:
            shape.close()
        db = duckdb.connect()
        listed = ", ".join(f'"{name}" {kind}' for name, kind, *_ in columns)
        db.execute(f"CREATE TABLE minute_metrics ({listed})")
        with tempfile.NamedTemporaryFile(suffix=".csv") as result:
            result.write(body)
            result.flush()
            # Athena's CSV: a header, every value quoted, NULL as an empty field
            db.execute(
                "INSERT INTO minute_metrics SELECT * FROM read_csv(?, header = true, all_varchar = true)", [result.name]
            )
        if not db.execute("SELECT count(*) FROM minute_metrics").fetchone()[0]:  # type: ignore[index]
            db.close()
            return None
        db.execute(  # the candle series as all_series reads them (the world series 'all' is made from them)
            "CREATE VIEW raw_candles AS SELECT exchange, market, minute_utc FROM minute_metrics "
            "WHERE traded AND exchange <> 'all'"
        )
        return db


def warehouse_name(settings: Settings) -> str:
    """Where the configured warehouse keeps its rows, as a user would look for them."""
    if settings.target == "aws":
        return f"the stack {settings.stack_name}'s warehouse"
    if settings.warehouse == "iceberg":
        return "the local Iceberg tables (COINSTREAM_WAREHOUSE=iceberg)"
    return f"the local warehouse ({settings.warehouse_path})"


def open_reader(settings: Settings, pipeline: Pipeline) -> Reader:
    """The reader of the configured warehouse (COINSTREAM_WAREHOUSE, COINSTREAM_TARGET)."""
    redshift_dir = pipeline.root / "redshift"
    if settings.target == "aws":
        from coinstream.aws import client, stack_outputs

        outputs = stack_outputs(settings)
        if outputs.get("Warehouse") != "iceberg":
            raise FatalError(
                f"stack {settings.stack_name} keeps its rows in Redshift: query the views there (query editor, or "
                "the Data API); `analyze` reads AWS through Athena, on a stack deployed with "
                "COINSTREAM_WAREHOUSE=iceberg"
            )
        athena = client("athena", settings)
        return AthenaReader(
            athena, client("s3", settings), outputs["AthenaWorkGroup"], outputs["LakeDatabase"], redshift_dir
        )
    if settings.warehouse == "iceberg":
        config = lakes.config_of(settings, pipeline.bucket)
        return LakeReader(lakes.Lake(config), config.catalog_file, redshift_dir)
    return warehouse_file(settings.warehouse_path, redshift_dir)
