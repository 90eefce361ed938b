"""The warehouse without a cluster on AWS: the raw tables as Glue (Iceberg) tables, the views as Athena SQL.

One definition serves both engines: redshift/*.sql. Its CREATE TABLEs become the columns of the Glue tables
Firehose delivers into (Iceberg types), and every other statement — the deduplicating views, the minute spines,
minute_metrics — is translated to Athena's dialect (Trino) with sqlglot. A file of redshift/athena/ with the name
of one in redshift/ replaces that file on Athena, for what cannot be translated: 003's table of minute numbers,
filled by INSERT ... SELECT, is a view of sequence() there.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError

from coinstream.errors import FatalError
from coinstream.tables import redshift_statements, table_columns

#: Folder under redshift/ of the files that replace, on Athena, the file of the same name.
OVERRIDES = "athena"

_T = exp.DataType.Type
#: Redshift column types as Glue column types of an Iceberg table (Iceberg has no VARCHAR(n): string).
_GLUE_TYPES = {
    _T.VARCHAR: "string",
    _T.NVARCHAR: "string",
    _T.CHAR: "string",
    _T.NCHAR: "string",
    _T.TEXT: "string",
    _T.TIMESTAMP: "timestamp",
    _T.BOOLEAN: "boolean",
    _T.SMALLINT: "int",
    _T.INT: "int",
    _T.BIGINT: "bigint",
    _T.FLOAT: "float",
    _T.DOUBLE: "double",
    _T.DATE: "date",
}


def _files(redshift_dir: Path) -> list[tuple[Path, bool]]:
    """Each SQL file Athena runs, in file-name order: (path, whether it is an Athena override)."""
    out = []
    for sql_file in sorted(redshift_dir.glob("*.sql")):
        override = redshift_dir / OVERRIDES / sql_file.name
        out.append((override, True) if override.exists() else (sql_file, False))
    return out


def view_statements(redshift_dir: Path) -> list[str]:
    """Every statement Athena runs to create the views, in order, one statement per string (Athena's
    StartQueryExecution takes one at a time). The raw tables are not among them: they are Glue tables."""
    out: list[str] = []
    for sql_file, is_override in _files(redshift_dir):
        if is_override:
            try:
                statements = [s for s in sqlglot.parse(sql_file.read_text(), read="athena") if s]
            except ParseError as exc:
                raise FatalError(f"{sql_file}: not valid Athena SQL: {exc}") from None
        else:
            statements = [
                s for s in redshift_statements(sql_file) if not (isinstance(s, exp.Create) and s.kind == "TABLE")
            ]
        for statement in statements:
            try:
                out.append(statement.sql(dialect="athena", comments=False, unsupported_level=ErrorLevel.RAISE))
            except sqlglot.errors.UnsupportedError as exc:
                raise FatalError(
                    f"{sql_file}: a statement has no Athena translation ({exc}); "
                    f"write the Athena form in {sql_file.parent / OVERRIDES / sql_file.name}"
                ) from None
    return out


def glue_columns(redshift_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The raw tables as Glue columns: {table: [(column, Glue type)]} in DDL order (the order Firehose's
    records need not follow: it matches JSON keys to column names)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for sql_file, is_override in _files(redshift_dir):
        if not is_override:
            for name, columns in table_columns(sql_file).items():
                tables[name] = [(column, glue_type(sql_file, name, column, kind)) for column, kind in columns]
    return tables


def glue_type(sql_file: Path, table: str, column: str, kind: exp.DataType) -> str:
    """The Glue (Iceberg) type of a Redshift column type; a type Iceberg lacks is named with the fix."""
    if kind.this == _T.DECIMAL:
        precision, scale = ([p.name for p in kind.expressions] + ["18", "0"])[:2]
        return f"decimal({precision},{scale})"
    if kind.this not in _GLUE_TYPES:
        raise FatalError(
            f"{sql_file}: {table}.{column} is {kind.sql(dialect='redshift')}, which has no Iceberg type here; "
            f"use one of VARCHAR, TIMESTAMP, BOOLEAN, INTEGER, BIGINT, DOUBLE PRECISION, DATE or DECIMAL(p, s)"
        )
    return _GLUE_TYPES[kind.this]
