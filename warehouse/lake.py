"""The warehouse without a cluster, locally: Apache Iceberg tables on the local stack's S3 (pyiceberg).

On AWS, Firehose's Iceberg destination appends delivered rows to Iceberg tables in the Glue catalog and
Athena queries them. Locally `coinstream load` does the appending (COINSTREAM_WAREHOUSE=iceberg): each
delivered object goes through the same COPY rules as the DuckDB warehouse (jsonpaths, types, MAXERROR,
stl_load_errors) in an in-memory staging warehouse, and what it admits is appended to the Iceberg table
of its kind, with a ledger table that makes `load` idempotent. The catalog is a SQL catalog (SQLite) in
the state folder; the table data lives under s3://<bucket>/iceberg/.

Readers (`analyze`) get a DuckDB warehouse built from the Iceberg scans, with the views of redshift/*.sql
on top: the same numbers through the same SQL, whichever warehouse holds the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coinstream.delivery import LAKE_DATABASE, DeliveryStream
from coinstream.errors import FatalError
from warehouse.loader import LoadReport, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa
    from mypy_boto3_s3 import S3Client

NAMESPACE = LAKE_DATABASE
#: Tables besides the raw ones that `load` keeps in the lake: rejected rows, and the objects already loaded.
BOOKKEEPING = ("stl_load_errors", "coinstream_loaded_objects")


@dataclass(frozen=True)
class LakeConfig:
    """Where the catalog and the table data are, and how to reach the S3 that holds them."""

    catalog_file: Path
    location: str
    s3_endpoint: str | None
    region: str
    access_key: str | None = None
    secret_key: str | None = None


class Lake:
    """The Iceberg tables of one pipeline: one per raw table, plus the bookkeeping tables."""

    def __init__(self, config: LakeConfig) -> None:
        try:
            from pyiceberg.catalog.sql import SqlCatalog
        except ImportError:
            raise FatalError(
                "COINSTREAM_WAREHOUSE=iceberg needs pyiceberg: run `make setup` (or pip install 'coinstream[iceberg]')"
            ) from None
        config.catalog_file.parent.mkdir(parents=True, exist_ok=True)
        properties = {
            "uri": f"sqlite:///{config.catalog_file}",
            "warehouse": config.location,
            "s3.region": config.region,
        }
        if config.s3_endpoint:
            properties["s3.endpoint"] = config.s3_endpoint
        if config.access_key and config.secret_key:
            properties["s3.access-key-id"] = config.access_key
            properties["s3.secret-access-key"] = config.secret_key
        self.catalog = SqlCatalog(NAMESPACE, **properties)
        self.catalog.create_namespace_if_not_exists(NAMESPACE)

    def names(self) -> set[str]:
        """The tables the lake has so far."""
        return {identifier[-1] for identifier in self.catalog.list_tables(NAMESPACE)}

    def append(self, name: str, rows: pa.Table) -> None:
        """Append rows to a table, creating it from their schema the first time."""
        if rows.num_rows == 0:
            return
        table = self.catalog.create_table_if_not_exists((NAMESPACE, name), schema=rows.schema)
        missing = [f.name for f in rows.schema if f.name not in {c.name for c in table.schema().fields}]
        if missing:  # a column added to redshift/*.sql since the table was made: added last, as ALTER TABLE does
            with table.update_schema() as update:
                update.union_by_name(rows.schema)
        table.append(rows)

    def compact(self, name: str, keep: timedelta) -> tuple[int, int]:
        """Rewrite a table's data files as one (each delivered object became a small file of its own) and expire
        the snapshots older than `keep` (time travel reaches back that far; their files are no longer read).
        Run it while no `load` runs: the rewrite replaces the table with what it read. (files before, after)."""
        table = self.catalog.load_table((NAMESPACE, name))
        before = len(table.inspect.files())
        if before > 1:
            table.overwrite(table.scan().to_arrow())
        expired = [
            s.snapshot_id for s in table.snapshots() if s.timestamp_ms < (datetime.now(UTC) - keep).timestamp() * 1000
        ]
        current = table.current_snapshot()
        expired = [i for i in expired if current is None or i != current.snapshot_id]
        if expired:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        table = self.catalog.load_table((NAMESPACE, name))
        return before, len(table.inspect.files())

    def scan(self, name: str) -> pa.Table | None:
        """Every row of a table (None: the lake has no such table yet)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table((NAMESPACE, name)).scan().to_arrow()
        except NoSuchTableError:
            return None


def load(
    lake: Lake,
    s3: S3Client,
    bucket: str,
    streams: Iterable[DeliveryStream],
    jsonpaths_dir: Path,
    redshift_dir: Path,
) -> LoadReport:
    """Append every delivered object not loaded yet to the lake, under the COPY rules of the local warehouse."""
    staging = Warehouse(Path(":memory:"), redshift_dir)
    try:
        staging.apply_ddl(fill=False)  # COPY's tables and ledger; nothing here reads the views
        ledger = lake.scan("coinstream_loaded_objects")
        if ledger is not None:
            _insert(staging, "coinstream_loaded_objects", ledger)

        def export(key: str, table: str) -> None:
            # the staging tables hold exactly this object's rows: each export empties them again
            reader = staging.db.cursor()  # its own connection to the staging database (what COPY committed)
            lake.append(table, reader.sql(f'SELECT * FROM "{table}"').to_arrow_table())
            for name in BOOKKEEPING:
                lake.append(
                    name,
                    reader.sql(f"SELECT * FROM {name} WHERE object_key = $key", params={"key": key}).to_arrow_table(),
                )
            reader.close()
            staging.db.execute(f'DELETE FROM "{table}"')

        return staging.load(s3, bucket, streams, jsonpaths_dir, on_copied=export)
    finally:
        staging.close()


def reader(lake: Lake, redshift_dir: Path) -> Warehouse:
    """An in-memory DuckDB warehouse holding the lake's rows, with every view of redshift/*.sql on top and the
    dashboard's rollups counted: what `analyze` reads when the warehouse is the lake. The caller closes it."""
    wh = Warehouse(Path(":memory:"), redshift_dir)
    wh.apply_ddl()
    for name in [*wh.raw_tables(), *BOOKKEEPING]:
        rows = lake.scan(name)
        if rows is not None:
            _insert(wh, name, rows)
    wh.recount_rollups()
    return wh


def _insert(wh: Warehouse, table: str, rows: pa.Table) -> None:
    """Insert arrow rows into a warehouse table by column name (a lake table made before a column was added
    lacks it: NULL, as in Redshift after ALTER TABLE ADD COLUMN)."""
    columns = [c for c in rows.column_names if c in wh.columns_of(table)]
    listed = ", ".join(f'"{c}"' for c in columns)
    cursor = wh.db.cursor()  # its own connection: the warehouse's may hold an unfinished result
    try:
        cursor.register("lake_rows", rows)
        cursor.execute(f'INSERT INTO "{table}" ({listed}) SELECT {listed} FROM lake_rows')
    finally:
        cursor.close()


def row_counts(lake: Lake, redshift_dir: Path) -> dict[str, int]:
    """Rows per raw table in the lake (0 for one it has no table of yet)."""
    wh = Warehouse(Path(":memory:"), redshift_dir)
    try:
        wh.apply_ddl(fill=False)
        tables = wh.raw_tables()
    finally:
        wh.close()
    names = lake.names()
    return {t: (lake.catalog.load_table((NAMESPACE, t)).scan().count() if t in names else 0) for t in tables}


def config_of(settings: Any, bucket: str) -> LakeConfig:
    """The lake of these settings: catalog in the state folder, data under s3://<bucket>/iceberg/."""
    local = settings.target == "local"
    return LakeConfig(
        catalog_file=settings.state_dir / "iceberg" / "catalog.db",
        location=f"s3://{bucket}/iceberg",
        s3_endpoint=settings.endpoint("s3"),
        region=settings.region,
        access_key="local" if local else None,
        secret_key="local" if local else None,
    )
