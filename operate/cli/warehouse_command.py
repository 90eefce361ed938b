"""`coinstream load`, `analyze`, `dashboard`: the warehouse side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coinstream.errors import FatalError
from operate.cli.common import context, friendly, out

app = typer.Typer()


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
    from warehouse.loader import open_warehouse

    settings, pipeline = context()
    start = parse_from(from_) if from_ else None
    end = parse_from(to) if to else None
    if not settings.warehouse_path.exists():
        raise FatalError(f"no warehouse at {settings.warehouse_path} yet: run `coinstream demo` or `coinstream load`")
    with open_warehouse(settings.warehouse_path, pipeline.root / "redshift"):
        pass  # creates the views a warehouse from an older version may lack
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

    settings, pipeline = context()
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
def load() -> None:
    """Do locally what Firehose's COPY does on AWS: load delivered S3 objects into the warehouse."""
    settings, pipeline = context()
    from operate import local_stack

    report, _ = local_stack.copy_delivered(settings, pipeline)
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
