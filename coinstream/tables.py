"""The warehouse's tables as the repository's files define them: the Redshift DDL of redshift/*.sql (parsed with
sqlglot) and the jsonpaths files of s3/ with which COPY maps a row's JSON keys to those columns, one to one.

Every layer reads them: the local warehouse loads with them, the Athena side turns them into Glue columns, and
the consumer shapes rows for Firehose's Iceberg destination (which matches JSON keys to column names) with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError
from sqlglot.tokens import Tokenizer, TokenType

from coinstream.errors import FatalError

_PATH_TOKEN = re.compile(r"""\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(\d+)\s*\]|\.([A-Za-z_][\w]*)""")


def redshift_statements(sql_file: Path) -> list[exp.Expr]:
    """Parse a file of Redshift SQL; a statement Redshift would not accept fails with the file named."""
    try:
        return [s for s in sqlglot.parse(sql_file.read_text(), read="redshift", error_level=ErrorLevel.RAISE) if s]
    except ParseError as exc:
        raise FatalError(
            f"{sql_file}: not valid Redshift SQL: {exc.errors[0]['description'] if exc.errors else exc}"
        ) from None


def redshift_texts(sql_file: Path) -> list[str]:
    """Each statement of a file of Redshift SQL as written there (no trailing semicolon, comments between them
    dropped): what goes to Redshift itself, never sqlglot's rewriting of it."""
    text = sql_file.read_text()
    redshift_statements(sql_file)  # refuses a file Redshift would not accept, naming it
    out, start = [], 0
    tokens = Tokenizer().tokenize(text)
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            inside = [t for t in tokens if start <= t.start < token.start]
            if inside:
                out.append(text[inside[0].start : token.start].strip())
            start = token.end + 1
    rest = [t for t in tokens if t.start >= start and t.token_type != TokenType.SEMICOLON]
    if rest:
        out.append(text[rest[0].start :].strip())
    return out


def parse_jsonpath(path: str) -> list[str | int]:
    """Steps of a Redshift JSONPath ($['a']['b'], $.a.b, $['a'][0]).

    Wildcards and filters are refused, as Redshift refuses them.
    """
    if not path.startswith("$"):
        raise ValueError(f"{path!r} does not start with $")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if not match:
            raise ValueError(
                f"{path!r}: unsupported at {path[pos:]!r} (Redshift takes only explicit names and indexes)"
            )
        name1, name2, index, dotted = match.groups()
        steps.append(int(index) if index is not None else (name1 if name1 is not None else name2 or dotted))
        pos = match.end()
    if not steps:
        raise ValueError(f"{path!r} names no element")
    return steps


def load_jsonpaths(file: Path) -> list[list[str | int]]:
    """Read a jsonpaths file exactly as COPY would, refusing what COPY would silently misread."""
    try:
        doc = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FatalError(f"{file}: cannot read a jsonpaths file ({exc})") from None
    if not isinstance(doc, dict) or list(doc) != ["jsonpaths"]:
        found = list(doc) if isinstance(doc, dict) else type(doc).__name__
        raise FatalError(
            f'{file}: the only top-level key must be exactly "jsonpaths" (found {found}); '
            "with any other key Redshift COPY silently falls back to 'auto'"
        )
    try:
        return [parse_jsonpath(p) for p in doc["jsonpaths"]]
    except (TypeError, ValueError) as exc:
        raise FatalError(f"{file}: {exc}") from None


def table_columns(sql_file: Path) -> dict[str, list[tuple[str, exp.DataType]]]:
    """The CREATE TABLEs of one Redshift SQL file: {table: [(column, type)]} in DDL (and so COPY) order."""
    tables: dict[str, list[tuple[str, exp.DataType]]] = {}
    for statement in redshift_statements(sql_file):
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            schema = statement.this
            name = schema.this.name if isinstance(schema, exp.Schema) else schema.name
            tables[name] = [(c.name, c.args["kind"]) for c in statement.find_all(exp.ColumnDef)]
    return tables
