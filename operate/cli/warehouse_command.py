"""`coinstream load`, `analyze`, `dashboard`: the warehouse side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinstream import timeutil
from coinstream.errors import FatalError
from operate.cli.common import context, friendly, out

app = typer.Typer()


@app.command()
@friendly
def analyze(
    from_: Annotated[str | None, typer.Option("--from", help="UTC start, e.g. 2026-11-28T00:00:00Z.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="UTC end (exclusive).")] = None,
    window: Annotated[int, typer.Option(help="Rolling correlation window, minutes.", min=10)] = 60,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange's series (default: every one).")] = None,
    market: Annotated[str | None, typer.Option(help="Only this market's series (default: every one).")] = None,
    posts: Annotated[
        str,
        typer.Option(
            help="Which posts: auto (simulated ones for the simulated exchange, else x+bluesky+mastodon), "
            "real, x, bluesky, mastodon or simulated."
        ),
    ] = "auto",
    html: Annotated[
        Path | None,
        typer.Option(help="Also write every series' charts and the pair table as one self-contained HTML file."),
    ] = None,
) -> None:
    """How strongly, and with what lag, posts per minute move with volume per minute, per exchange and market."""
    from coinstream.timeutil import parse_utc
    from warehouse.coverage import coverage
    from warehouse.family import family_of, judge, plural
    from warehouse.reading import open_reader, warehouse_name
    from warehouse.series import POSTS, all_series, pick_series

    if posts != "auto" and posts not in POSTS:
        raise FatalError(f"--posts {posts!r} is not a choice: use auto, {', '.join(POSTS)}")
    settings, pipeline = context()
    if html is not None and settings.target == "aws":
        raise FatalError("--html draws from a local warehouse; on AWS `analyze` prints the figures only")
    start = parse_utc(from_, "--from") if from_ else None
    end = parse_utc(to, "--to") if to else None
    db = open_reader(settings, pipeline)()  # the DuckDB file, or the lake's tables under the same views
    if db is None:
        raise FatalError(f"no rows in {warehouse_name(settings)} yet: run `coinstream demo` or `coinstream load`")
    try:
        chosen = pick_series(all_series(db), exchange, market)
        covered = {c.series: c for c in coverage(db, timeutil.now()) if c.kind == "candles"}
        pairs = judge(family_of(db, chosen, start, end, posts), window=window)
        results = [(one, p) for p in pairs for one in chosen if one.name == p.data.series]
        if html is not None:
            from warehouse.dashboard.data import chart_data, verdicts, within_minutes
            from warehouse.dashboard.server import standalone_html

            within, pages = within_minutes(settings, pipeline), {}
            for one in chosen:  # every series' charts, each with the verdicts of its pairs and the family's table
                page = chart_data(db, "all", window, exchange=one.exchange, market=one.market, within=within)
                pages[f"{one.exchange}|{one.market}"] = {**page, **verdicts(pairs, one.name), "stack": {}}
            html.write_text(standalone_html({"pages": pages, "first": next(iter(pages))}))
            out.print(f"charts of {len(pages)} series and the table of {plural(len(pairs), 'pair')} written to {html}")
    finally:
        db.close()
    out.print(_report(results, covered))
    out.print(_family_table(pairs))
    for pair in pairs:
        out.print(f"{pair.data.series} ({pair.data.posts} posts): {pair.verdict}")


def _gaps(result: Any, covered: Any) -> str:
    """The gaps of a series inside the window its analysis used (minutes without a candle)."""
    if covered is None or result.first is None:
        return "-"
    inside = [(start, n) for start, n in covered.gaps if result.first <= start <= result.last]
    if not inside:
        return "none"
    start, n = max(inside, key=lambda g: g[1])
    total = sum(n for _, n in inside)
    return f"{len(inside)}, {total} min without a candle (longest {n} min from {start:%m-%d %H:%M}; volume 0 there)"


def _report(results: list[tuple[Any, Any]], covered: dict[str, Any]) -> Table:
    """One column per pair, side by side: the window and its gaps (how far behind now: `coinstream coverage`),
    the figures, then the checks behind them."""
    from warehouse.analysis import describe

    table = Table("measure", *(p.data.name for _, p in results), title="posts/minute vs volume/minute")
    table.add_row("posts counted", *(p.data.posts for _, p in results))
    table.add_row("minutes used", *(str(p.result.minutes) for _, p in results))
    table.add_row("gaps in the window", *(_gaps(p.result, covered.get(one.name)) for one, p in results))
    described = [dict(describe(p.result)) for _, p in results]
    names = list(dict.fromkeys(name for rows in described for name in rows))
    for name in names:
        table.add_row(name, *(rows.get(name, "-") for rows in described))
    return table


def _family_table(pairs: list[Any]) -> Table:
    """Every pair tested: its same-minute link and its two leads (each p, and adjusted over every claim of the
    family), the main claim's p, whether it held in halves, and what the pair reads as."""
    from warehouse.family import METHOD, family_title, pair_row

    table = Table(
        "pair",
        "same minute",
        "leads (posts / volume)",
        "p",
        f"{METHOD}-adjusted p",
        "in halves",
        "lead",
        title=family_title(pairs),
    )
    for p in pairs:
        row = pair_row(p)
        table.add_row(row["pair"], row["together"], row["peak"], row["p"], row["adjusted"], row["halves"], row["lead"])
    return table


@app.command()
@friendly
def dashboard(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8050) -> None:
    """Serve the dashboard on 127.0.0.1 (offline: no CDN): posts vs volume, price band, correlations, freshness."""
    from coinstream.processes import Managed, ensure_port_free
    from operate import local_stack
    from warehouse.dashboard.data import within_minutes
    from warehouse.dashboard.server import chart_library, serve
    from warehouse.reading import open_reader

    settings, pipeline = context()
    chart_library()  # missing: one line naming the fix, before anything listens
    reader = open_reader(settings, pipeline)
    ensure_port_free(port, "dashboard", "--port", settings.host)
    server = serve(
        reader,
        settings.host,
        port,
        stack_panel=lambda: local_stack.stack_panel(settings, pipeline),
        within=within_minutes(settings, pipeline),
    )
    where = settings.warehouse_path if settings.warehouse == "redshift" else "the Iceberg tables (COINSTREAM_WAREHOUSE)"
    out.print(f"dashboard on http://{settings.host}:{port}/ (Ctrl-C stops it); warehouse {where}")
    me = Managed(f"dashboard-{port}", settings.state_dir)
    me.register(os.getpid())  # `coinstream local down` stops it too
    try:
        server.serve_forever()
    finally:
        server.server_close()
        me.pid_file.unlink(missing_ok=True)


@app.command()
@friendly
def load() -> None:
    """Do locally what Firehose's COPY does on AWS: load delivered S3 objects into the warehouse."""
    settings, pipeline = context()
    from operate import local_warehouse

    report, _ = local_warehouse.copy_delivered(settings, pipeline)
    rows = ", ".join(f"{n} rows into {t}" for t, n in report.rows.items())
    out.print(
        f"loaded {report.objects_loaded} objects ({rows}); {report.objects_skipped} already loaded; "
        f"{report.errors} rows rejected"
        + (
            f"; {report.objects_failed} objects failed whole (over MAXERROR: see stl_load_errors; "
            "parked under the stream's error prefix, as Firehose does)"
            if report.objects_failed
            else ""
        )
    )


@app.command()
@friendly
def compact(
    keep_hours: Annotated[float, typer.Option(help="Keep snapshots (time travel) this many hours back.", min=0)] = 24,
) -> None:
    """COINSTREAM_WAREHOUSE=iceberg: rewrite each table's small files as one, expire old snapshots (not during load)."""
    from datetime import timedelta

    settings, pipeline = context()
    if settings.warehouse != "iceberg":
        raise FatalError("compact is for COINSTREAM_WAREHOUSE=iceberg; the DuckDB warehouse needs none")
    from warehouse import lake

    the_lake = lake.Lake(lake.config_of(settings, pipeline.bucket))
    for name in sorted(the_lake.names()):
        before, after = the_lake.compact(name, timedelta(hours=keep_hours))
        out.print(f"{name}: {before} data files -> {after}")
