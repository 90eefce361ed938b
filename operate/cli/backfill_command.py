"""`coinstream backfill` and `coinstream coverage`: read every source's past, and show what the warehouse holds."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from coinstream import timeutil
from coinstream.errors import FatalError
from operate.cli.common import context, friendly, out

if TYPE_CHECKING:
    from producer.backfill import Outcome, Plan

app = typer.Typer()
logger = logging.getLogger(__name__)

PARTIAL = 3


def _plan_table(found: Plan) -> Table:
    table = Table(
        "series",
        "to read",
        "requests",
        "X cost",
        title=f"backfill {found.since:%Y-%m-%d %H:%M} .. {found.until:%Y-%m-%d %H:%M} UTC",
    )
    for series in found.series:
        planned = series.planned_requests()
        table.add_row(
            series.name,
            f"{series.minutes:,} min in {len(series.gaps)} window{'s' if len(series.gaps) > 1 else ''}",
            f"{planned:,}" if planned is not None else "until the posts reach --since",
            f"${series.dollars():.3f}" if series.history.dollars_per_request else "free",
        )
    return table


def _summary_table(done: Outcome) -> Table:
    table = Table("series", "minutes read", "requests", "records", "status", title="backfill")
    for s in done.series:
        status = "done" if s.finished else f"stopped: {s.stopped}" if s.stopped else "interrupted: run again to resume"
        if s.history.skips.reasons:
            status += f" ({len(s.history.skips.reasons)} malformed items skipped, see the log)"
        table.add_row(s.name, f"{s.read_minutes:,}", f"{s.requests:,}", f"{s.records:,}", status)
    return table


@app.command()
@friendly
def backfill(
    since: Annotated[
        str, typer.Option(help="Start: a duration before the last closed minute (7d, 36h, 90m) or a UTC date/time.")
    ] = "7d",
    until: Annotated[
        str | None, typer.Option(help="End (exclusive), the same way (default: the last closed minute).")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="An exchange (upbit, coinone, binance, coinbase, okx, bybit, kraken, bitstamp), x, mastodon, "
            "bluesky or simulated; repeat (default: every configured one)."
        ),
    ] = None,
    market: Annotated[
        list[str] | None, typer.Option(help="Exchange market, QUOTE-TARGET; repeat (default: the configured ones).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the requests and the X cost; ask nothing (but, with --market, the market lists)."
        ),
    ] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Read windows again that earlier runs finished.")] = False,
) -> None:
    """Read every source's past onto the stream (same keys as live: running it twice changes nothing)."""
    from coinstream.aws import client
    from coinstream.config import check_market
    from producer.backfill import Checkpoints, check_budget, drop_unlisted, plan, run, when
    from producer.kinesis_writer import KinesisWriter
    from producer.spool import Spool

    settings, pipeline = context()
    now = timeutil.now()
    start, end = when(since, until, now, settings.candle_grace_seconds)
    found = plan(
        settings,
        start,
        end,
        sources=source,
        markets=[check_market(m) for m in market] if market else None,
        refresh=refresh,
        now=now,
    )
    if market:  # a market named here, not configured: is it one the exchange lists? (its free market list)
        found, unlisted = drop_unlisted(settings, found, [check_market(m) for m in market], now)
        for name, why in unlisted.items():
            out.print(f"{name}: left out ({why})", highlight=False)
    for name, why in found.left_out.items():
        out.print(f"{name}: left out ({why})", highlight=False)
    for name, why in found.notes.items():
        out.print(f"{name}: {why}", highlight=False)
    if not found.series:
        out.print("nothing to read: every series is read for this window (--refresh reads it again)")
        raise typer.Exit(4)
    out.print(_plan_table(found))
    check_budget(found, now)
    if dry_run:
        line = f"dry run: nothing was asked; the plan costs ${found.dollars:.3f} of X's budget"
        if "x" in found.left_out:
            from producer.sources.x_search import XCountsHistory

            requests, dollars = XCountsHistory(settings).estimate(found.since, found.until, now)
            line += (
                f" (X is left out: with a token its counts would take {requests} requests, ${dollars:.3f}; "
                "set COINSTREAM_X_BEARER_TOKEN)"
            )
        out.print(line)
        return
    folder = settings.state_dir / "backfill"
    spool = Spool(folder / "spool")
    writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings), aggregate=True)
    if spool.files():
        drained = spool.drain(writer)
        out.print(f"{drained.sent} records of an earlier backfill sent from its spool")
    if out.is_terminal:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[requests]} requests, {task.fields[records]} records"),
            TimeRemainingColumn(),
            console=out,
        )
        tasks = {
            s.name: progress.add_task(s.name, total=max(1, s.minutes), requests=0, records=0) for s in found.series
        }

        def on_page(series, page, minutes):  # type: ignore[no-untyped-def]
            progress.update(tasks[series.name], advance=minutes, requests=series.requests, records=series.records)

        with progress:
            done = run(found, lambda: writer, spool, Checkpoints(folder), now=now, on_page=on_page)
    else:

        def on_page(series, page, minutes):  # type: ignore[no-untyped-def]
            logger.info(
                "%s: read back to %s (%d of %d minutes, %d requests, %d records)",
                series.name,
                f"{page.reached:%Y-%m-%d %H:%M}",
                series.read_minutes,
                series.minutes,
                series.requests,
                series.records,
            )

        done = run(found, lambda: writer, spool, Checkpoints(folder), now=now, on_page=on_page)
    out.print(_summary_table(done))
    records = sum(s.records for s in done.series)
    tail = f"; {done.spooled} spooled for the next run" if done.spooled else ""
    if done.interrupted:
        out.print(f"interrupted: {records} records are on the stream{tail}; the same command resumes where it stopped")
        raise typer.Exit(130)
    if not done.complete:
        out.print(
            f"{records} records put on {pipeline.stream_name}{tail}; "
            "some series stopped (above): the same command resumes them"
        )
        raise typer.Exit(PARTIAL)
    out.print(
        f"{records} records put on {pipeline.stream_name}{tail}; "
        f"every series is read back to {found.since:%Y-%m-%d %H:%M} UTC"
    )


@app.command()
@friendly
def coverage(
    gaps: Annotated[int, typer.Option(help="Gaps listed per series, longest first (the rest are counted).", min=0)] = 5,
) -> None:
    """Per series: the window the warehouse covers, every gap in it, and how far behind the last closed minute."""
    from warehouse.coverage import coverage as measure
    from warehouse.reading import open_reader, warehouse_name

    settings, pipeline = context()
    db = open_reader(settings, pipeline)()
    if db is None:
        raise FatalError(
            f"no rows in {warehouse_name(settings)} yet: run `coinstream backfill` (or `coinstream demo`), then "
            "`coinstream consume --until-caught-up` and `coinstream load`"
        )
    try:
        found = measure(db, timeutil.now())
    finally:
        db.close()
    from operate.healing import explain

    why = explain(settings, found)
    table = Table("kind", "series", "from (UTC)", "to (UTC)", "minutes", "missing", "behind", "gaps", title="coverage")
    if why:
        table.add_column("why")
    for one in found:
        longest = sorted(one.gaps, key=lambda g: (-g[1], g[0]))[:gaps]
        said = ", ".join(f"{start:%m-%d %H:%M} +{n} min" for start, n in longest)
        more = len(one.gaps) - len(longest)
        table.add_row(
            one.kind,
            one.series,
            f"{one.first:%Y-%m-%d %H:%M}",
            f"{one.last:%Y-%m-%d %H:%M}",
            f"{one.minutes:,}",
            f"{one.missing:,}",
            f"{one.behind:,} min",
            (f"{len(one.gaps)}: {said}" + (f" (+{more} more)" if more else "")) if one.gaps else "none",
            *([why.get((one.kind, one.series), "")] if why else []),
        )
    out.print(table)
    out.print(
        "missing: minutes of the span without a row (on Upbit also minutes nobody traded; a quiet post source "
        "has minutes without posts); behind: minutes to the last closed minute. `coinstream backfill` fills gaps "
        "(`coinstream run` heals them as it collects)."
    )
