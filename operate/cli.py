"""`coinstream`: one command in front of the local stack, the producers, the consumer and the warehouse."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from coinstream.config import Pipeline, Settings, load_settings
from coinstream.errors import CoinstreamError, FatalError
from coinstream.records import Kind
from producer.sources import registry

app = typer.Typer(
    help="Does chatter about bitcoin move with bitcoin trading? A streaming pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="The local stand-in for AWS (kinesis-mock + moto server).", no_args_is_help=True)
produce_app = typer.Typer(help="One producer run, as cron starts it.", no_args_is_help=True)
app.add_typer(local_app, name="local")
app.add_typer(produce_app, name="produce")

# Piped output (cron logs, tests) gets a wide fixed width so tables are not squeezed into 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1


def friendly(func: F) -> F:
    """Turn a CoinstreamError into one red line and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CoinstreamError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _context() -> tuple[Settings, Pipeline]:
    settings = load_settings()
    return settings, Pipeline.load(settings.pipeline_file)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )
    # tweepy logs request headers (the bearer token) at DEBUG: never let it, whatever --verbose says
    for noisy in ("botocore", "boto3", "urllib3", "tweepy", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _require_local(settings: Settings) -> None:
    if settings.target != "local":
        raise FatalError("this command manages the local stack; unset COINSTREAM_TARGET (it is 'aws')")


@local_app.command("up")
@friendly
def local_up(
    resources_only: Annotated[
        bool, typer.Option(help="Start nothing; create the resources on endpoints already running (containers).")
    ] = False,
) -> None:
    """Start kinesis-mock and moto server on loopback and create the pipeline's resources."""
    from operate import local_stack

    settings, pipeline = _context()
    _require_local(settings)
    if resources_only:
        local_stack.create_resources(settings, pipeline)
        out.print(f"resources created on {settings.endpoint('kinesis')} and {settings.endpoint('s3')}")
        return
    started = local_stack.up(settings, pipeline)
    out.print(
        f"local stack up ({', '.join(started)}): kinesis http://{settings.host}:{settings.kinesis_port}, "
        f"moto http://{settings.host}:{settings.moto_port}; state in {settings.state_dir}"
    )


@local_app.command("down")
@friendly
def local_down() -> None:
    """Stop every process of the local stack."""
    from operate import local_stack

    settings, _ = _context()
    stopped = local_stack.down(settings)
    out.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@local_app.command("status")
@friendly
def local_status() -> None:
    """What runs, on which port, and what each stream, bucket and table holds."""
    from coinstream.aws import client
    from consumer.checkpoints import stream_record_count
    from operate import local_stack

    settings, pipeline = _context()
    status = local_stack.status(
        settings,
        pipeline,
        count_records=lambda: stream_record_count(client("kinesis", settings), pipeline.stream_name),
        count_rows=lambda: _warehouse_counts(settings, pipeline),
    )
    table = Table("part", "state", "holds", title="coinstream local stack")
    for name, (pid, port) in status.processes.items():
        table.add_row(name, f"running, pid {pid}, port {port}" if pid else "stopped", "")
    if status.stream:
        shards = {k: v for k, v in status.stream.items() if k != "name"}
        table.add_row(f"stream {status.stream['name']}", f"{len(shards)} shards", f"{sum(shards.values())} records")
    for prefix, (objects, rows) in status.objects.items():
        what = "dead-lettered records" if prefix == pipeline.dead_letter_prefix else "rows"
        table.add_row(f"s3://{pipeline.bucket}/{prefix}", f"{objects} objects", f"{rows} {what}")
    if status.live_minutes is not None:
        table.add_row(f"dynamodb {pipeline.live_table}", "live app figures", f"{status.live_minutes} minutes")
    for name in status.delivery_streams:
        table.add_row(f"firehose {name}", "active", "")
    for name, rows in status.tables.items():
        table.add_row(f"table {name}", str(settings.warehouse_path.name), f"{rows} rows")
    out.print(table)
    for problem in status.problems:
        err.print(f"[yellow]warning:[/] {problem}")


def _warehouse_counts(settings: Settings, pipeline: Pipeline) -> dict[str, int]:
    from warehouse.loader import Warehouse

    if not settings.warehouse_path.exists():
        return {}
    wh = Warehouse(settings.warehouse_path, pipeline.root / "redshift")
    try:
        wh.apply_ddl()
        return wh.row_counts()
    finally:
        wh.close()


def _produce(kind: Kind, source: str, from_dir: Path | None, market: str, backfill_minutes: int) -> None:
    from producer.run import produce

    settings, pipeline = _context()
    o = produce(kind, source, settings, pipeline, from_dir=from_dir, market=market, backfill_minutes=backfill_minutes)
    out.print(
        f"{kind.value}s ({source}): {o.fetched} fetched, {o.sent} sent to {pipeline.stream_name}, "
        f"{o.drained} sent from the spool, {o.spooled} spooled, {o.refused} refused"
        + (f"; {o.message}" if o.message else "")
    )
    raise typer.Exit(int(o.code))


FromDir = Annotated[
    Path | None,
    typer.Option(
        "--from-dir",
        help="offline source: folder of recorded API answers, <source>/*.json (default: COINSTREAM_OFFLINE_DIR).",
        exists=True,
        file_okay=False,
    ),
]
Market = Annotated[str, typer.Option(help="Market, QUOTE-TARGET.")]
CandleSource = Annotated[str, typer.Option(help=f"One of: {', '.join(registry.names_for(Kind.CANDLE))}.")]
PostSource = Annotated[str, typer.Option(help=f"One of: {', '.join(registry.names_for(Kind.POST))}.")]
Backfill = Annotated[int, typer.Option(help="simulated source: minutes to emit on the first run.", min=1)]


@produce_app.command("candles")
@friendly
def produce_candles(
    source: CandleSource = "offline",
    from_dir: FromDir = None,
    market: Market = "KRW-BTC",
    backfill_minutes: Backfill = 60,
) -> None:
    """Put 1-minute BTC candles on the stream. Exit 0 sent, 3 partial (spooled), 4 nothing to do, 1 failed."""
    _produce(Kind.CANDLE, source, from_dir, market, backfill_minutes)


@produce_app.command("posts")
@friendly
def produce_posts(source: PostSource = "offline", from_dir: FromDir = None, backfill_minutes: Backfill = 60) -> None:
    """Put posts that mention bitcoin on the stream. Exit 0 sent, 3 partial (spooled), 4 nothing to do, 1 failed."""
    _produce(Kind.POST, source, from_dir, "KRW-BTC", backfill_minutes)


AppName = Annotated[str, typer.Option("--app", help="Consumer application name (its own leases and checkpoints).")]


@app.command()
@friendly
def consume(
    app_name: AppName = "warehouse",
    until_caught_up: Annotated[bool, typer.Option(help="Stop once every record is checkpointed.")] = False,
    timeout: Annotated[float, typer.Option(help="With --until-caught-up: give up after this many seconds.")] = 300,
    worker_id: Annotated[str | None, typer.Option(help="KCL worker id (default: a random one).")] = None,
) -> None:
    """Run a KCL worker (the real MultiLangDaemon) that delivers records to Firehose."""
    from consumer import runner

    settings, pipeline = _context()
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
) -> None:
    """Reset one consumer application's checkpoints so its next `consume` reads again from there."""
    from coinstream.aws import client
    from coinstream.timeutil import parse_from
    from consumer import replay as rp
    from consumer.checkpoints import leases
    from consumer.daemon import application_name

    settings, pipeline = _context()
    since = parse_from(from_)
    table = application_name(app_name)
    dynamodb = client("dynamodb", settings)
    current = leases(dynamodb, table)
    if not current:
        out.print(
            f"{app_name}: no checkpoints yet (lease table {table} is empty or missing); "
            "its first `consume` reads from TRIM_HORIZON anyway. Reset 0 shards."
        )
        return
    resets = rp.plan(client("kinesis", settings), pipeline.stream_name, current, since)
    where = "TRIM_HORIZON" if since is None else f"the first record at or after {since.isoformat()}"
    out.print(f"replay {app_name!r} from {where}; other applications are not touched:")
    for r in resets:
        out.print(f"  {r.shard_id}: checkpoint {r.old} -> {r.new} ({r.records_to_read_again} records to read again)")
    with err.status("checking for live workers..."):
        live = rp.live_owners(dynamodb, table, watch_seconds)
    if live and not force:
        raise FatalError(
            f"workers {', '.join(sorted(live))} of {app_name!r} hold live leases; stop them first, "
            "or pass --force (they drop their leases and take them again from the new checkpoints)"
        )
    count = rp.apply(dynamodb, table, resets)
    out.print(f"reset {count} shards of {app_name!r}; the next `coinstream consume --app {app_name}` reads again")


@app.command()
@friendly
def live(minutes: Annotated[int, typer.Option(help="How many of the newest minutes to show.")] = 15) -> None:
    """Per-minute figures the `live` consumer application keeps for the dashboard."""
    from coinstream.aws import client
    from coinstream.live_table import read_minutes

    settings, pipeline = _context()
    rows = read_minutes(client("dynamodb", settings), pipeline.live_table)[-minutes:]
    if not rows:
        out.print("no live figures yet: run `coinstream consume --app live`")
        return
    sources = sorted({s for r in rows for s in r["posts"]})
    markets = sorted({m for r in rows for m in r["candles"]})
    table = Table(
        "minute (UTC)",
        *(f"posts {s}" for s in sources),
        *(f"{m.replace('#', ' ')} {f}" for m in markets for f in ("volume", "high", "low", "close")),
        title=f"coinstream live ({pipeline.live_table})",
    )
    for r in rows:
        figures = [r["candles"].get(m, {}).get(f, "") for m in markets for f in ("volume", "high", "low", "close")]
        table.add_row(r["minute"], *(str(r["posts"].get(s, 0)) for s in sources), *figures)
    out.print(table)


@app.command()
@friendly
def deploy(
    check: Annotated[bool, typer.Option("--check", help="Print what would be created and its monthly cost.")] = False,
    render_to: Annotated[Path | None, typer.Option("--render", help="Write the CloudFormation template here.")] = None,
    posts_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 60.0,
    candles_per_minute: Annotated[float, typer.Option(help="Traffic the estimate assumes.")] = 2.0,
    record_bytes: Annotated[int, typer.Option(help="Average record size, bytes.")] = 400,
    redshift_node_type: Annotated[str, typer.Option(help="Redshift node type.")] = "ra3.large",
    redshift_nodes: Annotated[int, typer.Option(help="Redshift nodes.")] = 1,
) -> None:
    """The AWS side as one CloudFormation template (deploy/cloudformation.json) and its estimated cost."""
    import json

    from operate import deploy as dp

    _, pipeline = _context()
    base = pipeline.root / "deploy" / "base.json"
    if render_to is None and not check:
        raise FatalError("say what to do: --check (plan and cost) and/or --render PATH (write the template)")
    if render_to is not None:
        render_to.write_text(dp.render_text(pipeline, base))
        out.print(
            f"wrote {render_to}; deploy it with: aws cloudformation deploy --template-file {render_to} "
            "--stack-name coinstream --capabilities CAPABILITY_IAM --parameter-overrides VpcId=... PublicSubnetIds=..."
        )
    if check:
        template = dp.render(pipeline, base)
        resources = Table("logical id", "type", title="would be created")
        for logical, resource in template["Resources"].items():
            resources.add_row(logical, resource["Type"])
        out.print(resources)
        prices = json.loads((pipeline.root / "deploy" / "prices.json").read_text())
        traffic = dp.Traffic(posts_per_minute, candles_per_minute, record_bytes, 2, redshift_node_type, redshift_nodes)
        costs = dp.monthly_cost(pipeline, prices, traffic)
        table = Table(
            "item",
            "basis",
            "USD / month",
            title=f"estimate for {posts_per_minute:g} posts/min and {candles_per_minute:g} candles/min "
            f"({prices['region']} prices as of {prices['as_of']})",
        )
        for item, basis, usd in costs:
            table.add_row(item, basis, f"{usd:,.2f}")
        table.add_row("total", "", f"{sum(c[2] for c in costs):,.2f}")
        out.print(table)


@app.command()
@friendly
def analyze(
    from_: Annotated[str | None, typer.Option("--from", help="UTC start, e.g. 2026-11-28T00:00:00Z.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="UTC end (exclusive).")] = None,
    window: Annotated[int, typer.Option(help="Rolling correlation window, minutes.", min=10)] = 60,
    market: Annotated[str | None, typer.Option(help="Only this market's candles.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the charts as one self-contained HTML file.")] = None,
) -> None:
    """How strongly, and with what lag, posts per minute move with BTC volume per minute."""
    import duckdb

    from coinstream.timeutil import parse_from
    from warehouse.analysis import analyze as run_analysis
    from warehouse.analysis import series

    settings, pipeline = _context()
    start = parse_from(from_) if from_ else None
    end = parse_from(to) if to else None
    if not settings.warehouse_path.exists():
        raise FatalError(f"no warehouse at {settings.warehouse_path} yet: run `coinstream demo` or `coinstream load`")
    _warehouse_counts(settings, pipeline)  # makes sure the views exist
    db = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        minutes, posts, volume = series(db, start, end, market)
        if html is not None:
            from warehouse.dashboard.data import chart_data
            from warehouse.dashboard.server import standalone_html

            html.write_text(standalone_html({**chart_data(db, "all", window), "stack": {}}))
            out.print(f"charts written to {html}")
    finally:
        db.close()
    result = run_analysis(minutes, posts, volume, window=window)
    table = Table("measure", "value", title=f"posts/minute vs BTC volume/minute ({result.minutes} minutes used)")
    if result.enough:
        table.add_row("from / to (UTC)", f"{result.first:%Y-%m-%d %H:%M} / {result.last:%Y-%m-%d %H:%M}")
        table.add_row("Pearson r, levels", f"{result.pearson_levels:+.3f}")
        table.add_row("Spearman rho, levels", f"{result.spearman_levels:+.3f}")
        table.add_row("Pearson r, first differences", f"{result.pearson_diffs:+.3f}")
        table.add_row("Spearman rho, first differences", f"{result.spearman_diffs:+.3f}")
        table.add_row("strongest lag (+: posts lead)", f"{result.best_lag:+d} min, r = {result.best_lag_r:+.3f}")
        table.add_row(
            f"Granger posts -> volume (order {result.granger_order})", f"p = {result.granger_posts_to_volume_p:.3g}"
        )
        table.add_row(
            f"Granger volume -> posts (order {result.granger_order})", f"p = {result.granger_volume_to_posts_p:.3g}"
        )
        if result.rolling:
            table.add_row(
                f"rolling r over {window} min (min / median / max)",
                f"{min(result.rolling):+.2f} / {sorted(result.rolling)[len(result.rolling) // 2]:+.2f} / "
                f"{max(result.rolling):+.2f}",
            )
        out.print(table)
    out.print(result.verdict)


@app.command()
@friendly
def dashboard(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8050) -> None:
    """Serve the dashboard on 127.0.0.1 (offline: no CDN): posts vs volume, price band, correlations, freshness."""
    from coinstream.processes import ensure_port_free
    from operate import local_stack
    from warehouse.dashboard.server import serve

    settings, pipeline = _context()
    ensure_port_free(port, "dashboard", "--port", settings.host)
    server = serve(
        settings.warehouse_path, settings.host, port, stack_panel=lambda: local_stack.stack_panel(settings, pipeline)
    )
    out.print(f"dashboard on http://{settings.host}:{port}/ (Ctrl-C stops it); warehouse {settings.warehouse_path}")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@app.command()
@friendly
def doctor() -> None:
    """Check each configured source and AWS endpoint; one line each, what works and what to fix."""
    from operate.doctor import checks

    settings, pipeline = _context()
    failed = 0
    for check in checks(settings, pipeline):
        failed += not check.ok
        mark = "[green]ok  [/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.what}: {check.detail}", highlight=False)
    out.print(f"{failed} problem(s)" if failed else "all checks passed")
    raise typer.Exit(1 if failed else 0)


@app.command()
@friendly
def load() -> None:
    """Do locally what Firehose's COPY does on AWS: load delivered S3 objects into the warehouse."""
    settings, pipeline = _context()
    report = _load(settings, pipeline)
    rows = ", ".join(f"{n} rows into {t}" for t, n in report.rows.items())
    out.print(
        f"loaded {report.objects_loaded} objects ({rows}); {report.objects_skipped} already loaded; "
        f"{report.errors} rows rejected"
    )


def _load(settings: Settings, pipeline: Pipeline) -> Any:
    from coinstream.aws import client
    from coinstream.delivery import load_delivery_streams
    from warehouse.loader import Warehouse

    wh = Warehouse(settings.warehouse_path, pipeline.root / "redshift")
    try:
        wh.apply_ddl()
        return wh.load(
            client("s3", settings), pipeline.bucket, load_delivery_streams(pipeline).values(), pipeline.root / "s3"
        )
    finally:
        wh.close()


@app.command()
@friendly
def demo(
    source: Annotated[
        str, typer.Option(help="simulated (planted relation) or offline (recorded answers).")
    ] = "simulated",
    from_dir: FromDir = None,
    minutes: Annotated[int, typer.Option(help="simulated: minutes of data on the first run.", min=1)] = 120,
) -> None:
    """Run it all on the local stack: up, produce, consume until caught up, load; then a summary."""
    from operate.demo import run_demo

    settings, pipeline = _context()
    _require_local(settings)
    summary = run_demo(
        settings, pipeline, from_dir, say=lambda m: err.print(f"[bold]>[/] {m}"), source=source, minutes=minutes
    )
    table = Table("table", "produced", "consumed", "delivered", "loaded", title="coinstream demo")
    for row in summary.rows:
        table.add_row(row.table, str(row.produced), str(row.consumed), str(row.delivered), str(row.loaded))
    out.print(table)
    out.print(summary.note)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except CoinstreamError as exc:  # raised outside a command (settings, pipeline file)
        err.print(f"[red]error:[/] {exc}")
        sys.exit(EXIT_FAILURE)
