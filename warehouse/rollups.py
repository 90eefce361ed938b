"""Rollups the dashboard reads, kept by `load` in each COPY's own transaction (a local warehouse's indexes).

Counting distinct keys over every raw post, or ranking every raw candle's copies, on each dashboard
refresh cost seconds at a month of data; these tables hold the answers per minute and are recomputed
only for the minutes a loaded object touched, from the raw tables themselves — so a replayed or
reloaded copy changes nothing, and a later candle replaces an earlier one exactly as the views say.
The views, the analysis and Redshift read the raw tables and need none of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: A DECIMAL(38, 8) volume as the dashboard's tooltip shows it: exact, trailing zeros of the scale dropped.
VOLUME_TEXT = (
    "CASE WHEN volume = 0 THEN '0' WHEN contains(volume::VARCHAR, '.') "
    "THEN rtrim(rtrim(volume::VARCHAR, '0'), '.') ELSE volume::VARCHAR END"
)


#: A post's time as the network saw it: its date where that falls in the minute it counts in, else that minute.
NETWORK_TIME = (
    "CASE WHEN created_at >= minute_utc AND created_at < minute_utc + INTERVAL 1 MINUTE"
    " THEN created_at ELSE minute_utc END"
)


@dataclass(frozen=True)
class Rollup:
    """One rollup: its table, the raw table it follows, its key columns, and how to compute its rows."""

    name: str
    raw_table: str
    keys: tuple[str, ...]
    #: the rollup's columns, in the order of `ddl` and `rows`
    columns: tuple[str, ...]
    ddl: str
    #: SELECT of the rollup's rows from `raw` (the raw table, possibly narrowed to the touched keys)
    rows: str


ROLLUPS = (
    Rollup(
        name="post_minutes",
        raw_table="raw_posts",
        keys=("source", "minute_utc"),
        columns=("source", "minute_utc", "posts", "last_created_at"),
        ddl="""CREATE TABLE IF NOT EXISTS post_minutes (
            source VARCHAR NOT NULL, minute_utc TIMESTAMP NOT NULL, posts BIGINT NOT NULL,
            last_created_at TIMESTAMP, PRIMARY KEY (source, minute_utc))""",
        # copies of a post share its key and its minute: a count of distinct keys is a count of posts. The newest
        # time is the network's: an author's clock (Bluesky's createdAt) outside the minute counts as the minute
        rows=f"""SELECT source, minute_utc, count(DISTINCT record_key), max({NETWORK_TIME})
            FROM {{raw}} GROUP BY source, minute_utc""",
    ),
    Rollup(
        name="latest_candles",
        raw_table="raw_candles",
        keys=("exchange", "market", "minute_utc"),
        columns=(
            "exchange",
            "market",
            "minute_utc",
            "volume",
            "open_price",
            "high_price",
            "low_price",
            "close_price",
            "volume_text",
        ),
        ddl="""CREATE TABLE IF NOT EXISTS latest_candles (
            exchange VARCHAR NOT NULL, market VARCHAR NOT NULL, minute_utc TIMESTAMP NOT NULL,
            volume DECIMAL(38, 8), open_price DECIMAL(38, 8), high_price DECIMAL(38, 8),
            low_price DECIMAL(38, 8), close_price DECIMAL(38, 8), volume_text VARCHAR,
            PRIMARY KEY (exchange, market, minute_utc))""",
        # the candles view's rule: the latest fetch of a minute wins
        rows=f"""SELECT exchange, market, minute_utc, volume, open_price, high_price, low_price, close_price,
                   {VOLUME_TEXT}
            FROM (SELECT *, row_number() OVER (PARTITION BY exchange, market, minute_utc
                                               ORDER BY fetched_at DESC, processed_at DESC) AS copy_rank
                  FROM {{raw}}) WHERE copy_rank = 1""",
    ),
)
BY_RAW_TABLE = {r.raw_table: r for r in ROLLUPS}
BY_NAME = {r.name: r for r in ROLLUPS}


def readable(db: Any) -> dict[str, str]:
    """What a reader selects FROM for each rollup: the table, or — in a warehouse no command has given its
    rollups yet (made by an older version and not loaded since) — the same rows computed on the spot."""
    present = {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return {
        r.name: r.name
        if r.name in present
        else f"(SELECT * FROM ({r.rows.format(raw=r.raw_table)}) AS {r.name}({', '.join(r.columns)}))"
        for r in ROLLUPS
    }


def create(db: Any, tables: set[str]) -> None:
    """Create the rollups of the raw tables present; one found empty beside a filled raw table is counted now."""
    for rollup in ROLLUPS:
        if rollup.raw_table not in tables:
            continue
        db.execute(rollup.ddl)
        counts = f"SELECT (SELECT count(*) FROM {rollup.name}), (SELECT count(*) FROM {rollup.raw_table})"
        row = db.execute(counts).fetchone()
        if row is not None and row[0] == 0 and row[1] > 0:
            recount(db, rollup)


def recount(db: Any, rollup: Rollup) -> None:
    """Compute a rollup again from its whole raw table."""
    db.execute(f"DELETE FROM {rollup.name}")
    db.execute(f"INSERT INTO {rollup.name} " + rollup.rows.format(raw=rollup.raw_table))


def refresh(db: Any, rollup: Rollup, touched: str) -> None:
    """Recompute the rollup's rows for the keys in the table `touched` (the keys of rows just loaded)."""
    match = " AND ".join(f"m.{k} = t.{k}" for k in rollup.keys)
    db.execute(f"DELETE FROM {rollup.name} AS m USING {touched} AS t WHERE {match}")
    # the time range lets DuckDB skip the raw table's row groups outside it (rows arrive roughly in time order)
    narrowed = (
        f"(SELECT r.* FROM {rollup.raw_table} AS r SEMI JOIN {touched} AS t ON "
        + " AND ".join(f"r.{k} = t.{k}" for k in rollup.keys)
        + f" WHERE r.minute_utc BETWEEN (SELECT min(minute_utc) FROM {touched}) "
        f"AND (SELECT max(minute_utc) FROM {touched}))"
    )
    db.execute(f"INSERT INTO {rollup.name} " + rollup.rows.format(raw=narrowed))
