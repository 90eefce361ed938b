"""`coinstream local up|down|status`: the local stand-in for AWS."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from operate.cli.common import context, err, friendly, out, require_local

app = typer.Typer(help="The local stand-in for AWS (kinesis-mock + moto server).", no_args_is_help=True)


@app.command("up")
@friendly
def local_up(
    resources_only: Annotated[
        bool, typer.Option(help="Start nothing; create the resources on endpoints already running (containers).")
    ] = False,
) -> None:
    """Start kinesis-mock and moto server on loopback and create the pipeline's resources."""
    from operate import local_stack

    settings, pipeline = context()
    require_local(settings)
    if resources_only:
        local_stack.create_resources(settings, pipeline)
        out.print(f"resources created on {settings.endpoint('kinesis')} and {settings.endpoint('s3')}")
        return
    started = local_stack.up(settings, pipeline)
    out.print(
        f"local stack up ({', '.join(started)}): kinesis http://{settings.host}:{settings.kinesis_port}, "
        f"moto http://{settings.host}:{settings.moto_port}; state in {settings.state_dir}"
    )


@app.command("down")
@friendly
def local_down() -> None:
    """Stop every process of the local stack."""
    from operate import local_stack

    settings, _ = context()
    stopped = local_stack.down(settings)
    out.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("status")
@friendly
def local_status() -> None:
    """What runs, on which port, and what each stream, bucket and table holds."""
    from coinstream.aws import client
    from consumer.checkpoints import stream_record_count
    from operate import local_stack, local_warehouse

    settings, pipeline = context()
    status = local_stack.status(
        settings,
        pipeline,
        count_records=lambda: stream_record_count(client("kinesis", settings), pipeline.stream_name),
        count_rows=lambda: local_warehouse.warehouse_rows(settings, pipeline),
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
        err.print(f"[yellow]warning:[/] {escape(problem)}")  # an exception's text, printed as written
