"""`coinstream run`: collect for real on this machine — every part of the pipeline in one foreground command."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from coinstream.errors import FatalError
from operate.cli.common import context, friendly, out

app = typer.Typer()


def _duration(text: str, flag: str) -> timedelta:
    """`7d`, `36h`, `90m`, `30s` as a duration; anything else one line naming the flag."""
    import re

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*", text)
    if not found or float(found[1]) <= 0:
        raise FatalError(f"{flag} {text!r} is not a duration: write it like 7d, 36h, 90m or 30s")
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    return timedelta(**{units[found[2]]: float(found[1])})


def _said(span: timedelta) -> str:
    """A duration the way the flags write it: 7d, 36h, 90m, 30s."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@app.command("run")
@friendly
def run(
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this source; repeat (default: upbit, coinone, binance, coinbase, okx, bybit, kraken, bitstamp, "
            "mastodon, bluesky, and x when COINSTREAM_X_BEARER_TOKEN is set)."
        ),
    ] = None,
    history: Annotated[
        str, typer.Option(help="The window healing keeps whole, each API as far back as it serves (7d, 36h).")
    ] = "7d",
    load_every: Annotated[str, typer.Option(help="How often delivered rows are loaded into the warehouse.")] = "60s",
    heal_every: Annotated[
        str, typer.Option(help="How often the warehouse's gaps are read again from the APIs.")
    ] = "1h",
    compact_every: Annotated[
        str, typer.Option(help="How often the stream is emptied once everything on it is read and loaded.")
    ] = "6h",
    dashboard: Annotated[
        int | None, typer.Option(help="Also serve the dashboard on 127.0.0.1 on this port.", min=1, max=65535)
    ] = None,
    produce_every: Annotated[
        str, typer.Option(hidden=True, help="Producer runs this often (cron's minute; tests pass time faster).")
    ] = "60s",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run, how often, and what X would cost; start nothing.")
    ] = False,
) -> None:
    """Collect for real on this machine: the local stack, every producer each minute, the consumer applications,
    loads, healing of the warehouse's gaps; Ctrl-C stops every part in order."""
    from operate.supervisor import CANDLE_SOURCES, Options, Supervisor, choose_sources

    settings, pipeline = context()
    if settings.target != "local":
        raise FatalError("`coinstream run` runs the local stack; on AWS the deployed stack runs every part")
    if settings.warehouse != "redshift":
        raise FatalError("`coinstream run` loads the DuckDB warehouse; unset COINSTREAM_WAREHOUSE (iceberg)")
    options = Options(
        sources=choose_sources(settings, source),
        history=_duration(history, "--history"),
        produce_every=_duration(produce_every, "--produce-every").total_seconds(),
        load_every=_duration(load_every, "--load-every").total_seconds(),
        heal_every=_duration(heal_every, "--heal-every").total_seconds(),
        compact_every=_duration(compact_every, "--compact-every").total_seconds(),
        dashboard_port=dashboard,
    )
    if dry_run:
        out.print(_plan_table(settings, pipeline, options, CANDLE_SOURCES))
        return
    supervisor = Supervisor(settings, pipeline, options, lambda line: out.print(line, highlight=False))
    try:
        supervisor.start()
        out.print(
            f"collecting from {', '.join(options.sources)} into {settings.warehouse_path}; "
            "a line a minute; Ctrl-C stops every part in order"
        )
        supervisor.run()
    finally:
        supervisor.stop()
    out.print("stopped: the producers finished their runs, the workers checkpointed; the stack still runs")


def _plan_table(settings, pipeline, options, candle_sources) -> Table:  # type: ignore[no-untyped-def]
    """What `run` would start: each part, what it does, how often; X's monthly bill when X is chosen."""
    from coinstream.x_bill import XPlan, XPrices

    def every(seconds: float) -> str:
        return f"every {_said(timedelta(seconds=seconds))}"

    table = Table("part", "what", "how often", title="coinstream run --dry-run")
    for name in options.sources:
        if name in candle_sources:
            table.add_row(f"produce {name}", f"1-minute candles of {', '.join(settings.markets(name))}", "every minute")
        elif name == "x":
            table.add_row(
                "produce x",
                f"counts per minute; a sample of {settings.x_sample_size} posts",
                f"counts every {settings.x_counts_every_minutes} min, sample every {settings.x_sample_every_minutes} "
                "min, each minute checked",
            )
        else:
            table.add_row(f"produce {name}", "posts that mention bitcoin", "every minute")
    for app_name in pipeline.apps:
        table.add_row(f"consume {app_name}", "a KCL worker (the real MultiLangDaemon)", "all the time")
    table.add_row("load", f"delivered rows into {settings.warehouse_path}", every(options.load_every))
    table.add_row(
        "heal",
        f"the warehouse's gaps in the last {_said(options.history)}, read again from the APIs",
        every(options.heal_every),
    )
    table.add_row("compact", "empty the stream once read by every application and loaded", every(options.compact_every))
    if options.dashboard_port:
        table.add_row("dashboard", f"http://{settings.host}:{options.dashboard_port}/", "all the time")
    if "x" in options.sources:
        prices = XPrices.load(settings.prices_file)
        plan = XPlan.of(settings.x_counts_every_minutes, settings.x_sample_every_minutes, settings.x_sample_size)
        lines = plan.lines(prices, settings.x_dollars_per_month)
        total = sum(usd for _, _, usd in lines)
        table.add_row("X bill", f"{total:,.2f} USD a month (budget {settings.x_dollars_per_month:,.2f})", "")
    else:
        table.add_row("X bill", "none: X is not chosen (set COINSTREAM_X_BEARER_TOKEN to add it)", "")
    return table
