"""`coinstream consume`, `replay`, `live`: the KCL consumer applications."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from coinstream.errors import FatalError
from operate.cli.common import context, err, friendly, out

app = typer.Typer()

AppName = Annotated[str, typer.Option("--app", help="Consumer application name (its own leases and checkpoints).")]


@app.command()
@friendly
def consume(
    app_name: AppName = "warehouse",
    until_caught_up: Annotated[bool, typer.Option(help="Stop once every record is checkpointed.")] = False,
    timeout: Annotated[float, typer.Option(help="With --until-caught-up: give up after this many seconds.")] = 300,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="KCL worker id: give each worker its own when several share an application. Default: on the "
            "local stack <host>-<app>, the application's only worker; on AWS one KCL makes up."
        ),
    ] = None,
) -> None:
    """Run a KCL worker (the real MultiLangDaemon) that delivers records to Firehose."""
    from consumer import runner

    settings, pipeline = context()
    pipeline.check_app(app_name)
    if not until_caught_up:
        raise typer.Exit(runner.run_forever(settings, pipeline, app_name, worker_id))
    with err.status("consuming...") as spinner:
        shards = runner.run_until_caught_up(
            settings,
            pipeline,
            app_name,
            timeout=timeout,
            on_progress=lambda s: spinner.update(
                f"consuming: {sum(x.checkpointed for x in s)}/{sum(x.records for x in s)} records checkpointed"
            ),
        )
    out.print(
        f"{app_name}: caught up, {sum(s.checkpointed for s in shards)} records checkpointed on {len(shards)} shards"
    )


@app.command()
@friendly
def replay(
    app_name: AppName,
    from_: Annotated[str, typer.Option("--from", help="trim-horizon, or a UTC time like 2026-11-28T12:00:00Z.")],
    force: Annotated[bool, typer.Option(help="Reset even while workers hold live leases (they re-take them).")] = False,
    watch_seconds: Annotated[float, typer.Option(help="How long to watch leases for live renewals.")] = 8.0,
    fresh: Annotated[
        bool,
        typer.Option(
            help="Start the app over from TRIM_HORIZON on every shard by deleting its KCL tables (reaches the "
            "parents of a reshard whose leases KCL already removed). Workers must be stopped."
        ),
    ] = False,
) -> None:
    """Reset one consumer application's checkpoints so its next `consume` reads again from there."""
    from coinstream.aws import client
    from coinstream.timeutil import parse_from
    from consumer import replay as rp
    from consumer.checkpoints import leases
    from consumer.daemon import application_name

    settings, pipeline = context()
    pipeline.check_app(app_name)
    since = parse_from(from_)
    table = application_name(app_name)
    dynamodb = client("dynamodb", settings)
    kinesis = client("kinesis", settings)
    if fresh:
        if since is not None:
            raise FatalError("--fresh reads every shard from TRIM_HORIZON: use --from trim-horizon with it")
        with err.status("checking for live workers..."):
            deleted = rp.start_over(dynamodb, table, watch_seconds=watch_seconds)
        out.print(
            f"deleted {', '.join(deleted) or 'nothing (no tables yet)'}; "
            f"the next `coinstream consume --app {app_name}` reads every shard from TRIM_HORIZON"
        )
        return
    resets = rp.prepare(dynamodb, kinesis, pipeline.stream_name, table, since)
    if resets is None:
        out.print(
            f"{app_name}: no checkpoints yet (lease table {table} is empty or missing); "
            "its first `consume` reads from TRIM_HORIZON anyway. Reset 0 shards."
        )
        return
    where = "TRIM_HORIZON" if since is None else f"the first record at or after {since.isoformat()}"
    out.print(f"replay {app_name!r} from {where}; other applications are not touched:")
    for r in resets:
        out.print(f"  {r.shard_id}: checkpoint {r.old} -> {r.new} ({r.records_to_read_again} records to read again)")
    missing = rp.leaseless_parents(kinesis, pipeline.stream_name, leases(dynamodb, table), since)
    for shard_id in missing:
        err.print(
            f"[yellow]warning:[/] {shard_id} is a closed parent shard whose lease KCL already removed: its records "
            f"are not read again; `coinstream replay --app {app_name} --from trim-horizon --fresh` starts over instead",
            highlight=False,
        )
    with err.status("checking for live workers..."):
        count = rp.execute(dynamodb, table, resets, force=force, watch_seconds=watch_seconds)
    out.print(f"reset {count} shards of {app_name!r}; the next `coinstream consume --app {app_name}` reads again")


@app.command()
@friendly
def live(
    minutes: Annotated[int, typer.Option(help="How many of the newest minutes to show.", min=1)] = 15,
    market: Annotated[
        list[str] | None,
        typer.Option(help="Only this series: an exchange (upbit), a market (KRW-BTC) or both (upbit KRW-BTC); repeat."),
    ] = None,
) -> None:
    """Per-minute figures the `live` consumer application keeps for the dashboard: posts per source, then each
    market's candle, one row per minute and market."""
    from coinstream.aws import client
    from coinstream.live_table import read_minutes

    settings, pipeline = context()
    rows = read_minutes(client("dynamodb", settings), pipeline.live_table)[-minutes:]
    if not rows:
        out.print("no live figures yet: run `coinstream consume --app live`")
        return
    for table in live_tables(rows, market or [], pipeline.live_table):
        out.print(table)


#: A candle's figures as `coinstream live` shows them.
CANDLE_FIGURES = ("volume", "high", "low", "close")


def live_tables(rows: list[dict[str, Any]], chosen: list[str], name: str) -> list[Table]:
    """The posts per minute, then one row per minute and market: a table as narrow as its figures, whatever the
    number of markets. `chosen` (exchange, market, or both) narrows the markets; an unknown one is a FatalError
    naming those there are."""
    sources = sorted({s for r in rows for s in r["posts"]})
    markets = sorted({m for r in rows for m in r["candles"]})

    def matches(key: str, wanted: str) -> bool:
        exchange, _, pair = key.partition("#")
        return wanted.replace(" ", "#").lower() in (exchange.lower(), pair.lower(), key.lower())

    for wanted in chosen:
        if not any(matches(m, wanted) for m in markets):
            shown = ", ".join(m.replace("#", " ") for m in markets) or "none yet"
            raise FatalError(f"--market {wanted!r}: no live figures for it; the markets there are {shown}")
    if chosen:
        markets = [m for m in markets if any(matches(m, w) for w in chosen)]
    posts = Table("minute (UTC)", *sources, title=f"posts per minute ({name})")
    for r in rows:
        posts.add_row(r["minute"], *(str(r["posts"].get(s, 0)) for s in sources))
    candles = Table("minute (UTC)", "exchange", "market", *CANDLE_FIGURES, title=f"candles ({name})")
    for r in rows:
        for m in markets:
            if m in r["candles"]:
                exchange, _, pair = m.partition("#")
                candles.add_row(r["minute"], exchange, pair, *(r["candles"][m].get(f, "") for f in CANDLE_FIGURES))
    return [posts, candles] if sources else [candles]
