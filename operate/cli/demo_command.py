"""`coinstream demo` and `coinstream doctor`: run it all, check it all."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from operate.cli.common import FromDir, context, err, friendly, out, require_local

app = typer.Typer()


@app.command()
@friendly
def doctor() -> None:
    """Check each configured source and AWS endpoint; one line each, what works and what to fix."""
    from operate.doctor import checks

    settings, pipeline = context(deployed=False)  # doctor reports a missing stack as one of its lines
    failed = 0
    for check in checks(settings, pipeline):
        failed += not check.ok
        mark = "[green]ok  [/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.what}: {check.detail}", highlight=False)
    out.print(f"{failed} problem(s)" if failed else "all checks passed")
    raise typer.Exit(1 if failed else 0)


@app.command()
@friendly
def demo(
    source: Annotated[
        str, typer.Option(help="simulated (planted relation) or offline (recorded answers).")
    ] = "simulated",
    from_dir: FromDir = None,
    minutes: Annotated[int, typer.Option(help="simulated: minutes of data on the first run.", min=1)] = 120,
    history_minutes: Annotated[
        int, typer.Option(help="simulated: minutes before those to backfill through the stream (0: none).", min=0)
    ] = 240,
) -> None:
    """Run it all on the local stack: up, produce, consume until caught up, load; then a summary."""
    from operate.demo import run_demo

    settings, pipeline = context()
    require_local(settings)
    summary = run_demo(
        settings,
        pipeline,
        from_dir,
        say=lambda m: err.print(f"[bold]>[/] {m}"),
        source=source,
        minutes=minutes,
        history_minutes=history_minutes,
    )
    table = Table("table", "produced", "consumed", "delivered", "loaded", title="coinstream demo")
    for row in summary.rows:
        table.add_row(row.table, str(row.produced), str(row.consumed), str(row.delivered), str(row.loaded))
    out.print(table)
    out.print(summary.note)
