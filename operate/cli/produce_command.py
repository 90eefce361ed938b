"""`coinstream produce candles|posts`: one producer run, as cron starts it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinstream.records import Kind
from operate.cli.common import FromDir, context, friendly, out
from producer.sources import registry

app = typer.Typer(help="One producer run, as cron starts it.", no_args_is_help=True)


def _produce(kind: Kind, source: str, from_dir: Path | None, markets: list[str] | None, backfill_minutes: int) -> None:
    from coinstream.config import check_market
    from producer.run import Code, produce

    settings, pipeline = context()
    chosen = [check_market(m) for m in markets] if markets else settings.markets(source)
    codes = []
    for market in chosen if kind is Kind.CANDLE and source != "offline" else ["KRW-BTC"]:
        o = produce(
            kind, source, settings, pipeline, from_dir=from_dir, market=market, backfill_minutes=backfill_minutes
        )
        if source == "offline":  # every recorded exchange and market in one run, not one market
            label = f"{source}: every recording under {from_dir or settings.offline_dir}"
        else:
            label = f"{source} {market}" if kind is Kind.CANDLE else source
        out.print(
            f"{kind.value}s ({label}): {o.fetched} fetched, "
            f"{o.sent} sent to {pipeline.stream_name}, {o.drained} sent from the spool, {o.spooled} spooled, "
            f"{o.refused} refused"
            + (f", {o.skipped} malformed items skipped (see the log)" if o.skipped else "")
            + (f"; {o.message}" if o.message else "")
        )
        codes.append(o.code)
    # the worst outcome wins: failed, then partial, then sent; "nothing to do" only when every market had nothing
    for code in (Code.FAILED, Code.PARTIAL, Code.SENT):
        if code in codes:
            raise typer.Exit(int(code))
    raise typer.Exit(int(Code.NOTHING))


Market = Annotated[
    list[str] | None,
    typer.Option(help="Market, QUOTE-TARGET; repeat for several (default: COINSTREAM_<SOURCE>_MARKETS, else KRW-BTC)."),
]
CandleSource = Annotated[str, typer.Option(help=f"One of: {', '.join(registry.names_for(Kind.CANDLE))}.")]
PostSource = Annotated[str, typer.Option(help=f"One of: {', '.join(registry.names_for(Kind.POST))}.")]
Backfill = Annotated[int, typer.Option(help="simulated source: minutes to emit on the first run.", min=1)]


@app.command("candles")
@friendly
def produce_candles(
    source: CandleSource = "offline",
    from_dir: FromDir = None,
    market: Market = None,
    backfill_minutes: Backfill = 60,
) -> None:
    """Put 1-minute BTC candles on the stream. Exit 0 sent, 3 partial (spooled), 4 nothing to do, 1 failed."""
    _produce(Kind.CANDLE, source, from_dir, market, backfill_minutes)


@app.command("posts")
@friendly
def produce_posts(source: PostSource = "offline", from_dir: FromDir = None, backfill_minutes: Backfill = 60) -> None:
    """Put posts that mention bitcoin on the stream. Exit 0 sent, 3 partial (spooled), 4 nothing to do, 1 failed."""
    _produce(Kind.POST, source, from_dir, None, backfill_minutes)
