"""`coinstream demo`: the whole pipeline on the local stack, then what reached each stage."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import delivered_rows, load_delivery_streams
from coinstream.kpl import user_records
from coinstream.records import Kind
from consumer.checkpoints import is_checkpointed, leases, list_shard_ids, shard_records
from consumer.daemon import application_name
from consumer.runner import run_until_caught_up
from operate import local_stack, local_warehouse
from producer.run import produce

APP = "warehouse"


@dataclass(frozen=True)
class Row:
    """One line of the demo summary: how many records of one kind reached each stage."""

    table: str
    produced: int
    consumed: int
    delivered: int
    loaded: int


@dataclass
class Summary:
    """The demo's closing report."""

    rows: list[Row] = field(default_factory=list)
    note: str = ""


def records_by_kind(settings: Settings, pipeline: Pipeline, app: str) -> tuple[Counter[str], Counter[str]]:
    """Records on the whole stream by record kind (aggregates taken apart), and those of them `app` checkpointed:
    one read of every shard for both."""
    kinesis = client("kinesis", settings)
    checkpoints = {
        lease.shard_id: lease.checkpoint for lease in leases(client("dynamodb", settings), application_name(app))
    }
    on_stream: Counter[str] = Counter()
    checkpointed: Counter[str] = Counter()
    for shard_id in list_shard_ids(kinesis, pipeline.stream_name):
        checkpoint = checkpoints.get(shard_id)
        for record in shard_records(kinesis, pipeline.stream_name, shard_id):
            done = is_checkpointed(record.sequence_number, checkpoint)
            for data in user_records(record.data):  # a backfill's aggregate carries many
                try:
                    kind = str(json.loads(data)["kind"])
                except (ValueError, KeyError, TypeError):
                    kind = "unparseable"
                on_stream[kind] += 1
                if done:
                    checkpointed[kind] += 1
    return on_stream, checkpointed


def backfill_history(settings: Settings, pipeline: Pipeline, live_minutes: int, minutes: int) -> None:
    """`coinstream backfill --source simulated` of the `minutes` before the live run's."""
    from producer.backfill import Checkpoints, last_closed_minute, plan, run
    from producer.kinesis_writer import KinesisWriter
    from producer.spool import Spool

    now = datetime.now(UTC)
    until = last_closed_minute(now, 0) - timedelta(minutes=live_minutes)
    found = plan(settings, until - timedelta(minutes=minutes), until, sources=["simulated"], now=now)
    writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings), aggregate=True)
    folder = settings.state_dir / "backfill"
    run(found, lambda: writer, Spool(folder / "spool"), Checkpoints(folder), now=now)


def run_demo(
    settings: Settings,
    pipeline: Pipeline,
    from_dir: Path | None,
    say: Callable[[str], None],
    source: str = "simulated",
    minutes: int = 120,
    history_minutes: int = 240,
) -> Summary:
    """Up, produce candles and posts, consume until caught up, load; then count every stage."""
    say("starting the local stack (kinesis-mock, moto server)")
    local_stack.up(settings, pipeline)
    streams = load_delivery_streams(pipeline)
    s3 = client("s3", settings)
    # every column of the summary counts this run: what the stack held before it is taken off
    on_stream_before, consumed_before = records_by_kind(settings, pipeline, APP)
    delivered_before = {kind: delivered_rows(s3, pipeline.bucket, s.prefix)[1] for kind, s in streams.items()}
    for kind in (Kind.CANDLE, Kind.POST):
        where = f"recorded payloads in {from_dir}" if source == "offline" else f"the {source} source"
        say(f"producing {kind.value}s from {where}")
        produce(kind, source, settings, pipeline, from_dir=from_dir, backfill_minutes=minutes)
    if source == "simulated" and history_minutes:
        say(f"backfilling the {history_minutes // 60} hours before them: the simulation's history, through the stream")
        backfill_history(settings, pipeline, minutes, history_minutes)
    say("consuming with the KCL MultiLangDaemon until every record is checkpointed (a new KCL app starts in ~15 s)")
    run_until_caught_up(settings, pipeline, APP)
    say("loading delivered S3 objects into the local warehouse")
    report, totals = local_warehouse.copy_delivered(settings, pipeline)
    on_stream, checkpointed = records_by_kind(settings, pipeline, APP)
    # by the kind each record is (a posts run also puts X's per-minute counts), not by the command that put it
    produced, consumed = on_stream - on_stream_before, checkpointed - consumed_before
    summary = Summary()
    for kind_name, stream in streams.items():
        delivered = delivered_rows(s3, pipeline.bucket, stream.prefix)[1] - delivered_before[kind_name]
        loaded = report.rows.get(stream.table, 0)
        if not (produced[kind_name] or consumed[kind_name] or delivered or loaded):
            continue  # a kind this demo does not produce (X's per-minute counts)
        summary.rows.append(Row(stream.table, produced[kind_name], consumed[kind_name], delivered, loaded))
    dead = local_stack.status(settings, pipeline).objects.get(pipeline.dead_letter_prefix, (0, 0))[1]
    where = (
        f"the Iceberg tables under s3://{pipeline.bucket}/iceberg/"
        if settings.warehouse == "iceberg"
        else str(settings.warehouse_path)
    )
    summary.note = (
        f"Every column counts this run: produced = records put on the stream; consumed = records the '{APP}' app "
        f"checkpointed; delivered = rows Firehose landed in s3://{pipeline.bucket}; loaded = rows copied into "
        f"{where}, which holds {sum(totals.values())} rows in all. Exact duplicates are dropped by the consumer. "
        f"Dead-lettered records: {dead}. The stack is still up: `coinstream local status`, `coinstream local down`. "
        + "See it: `coinstream dashboard`, then open http://127.0.0.1:8050/ ; the numbers: `coinstream analyze`."
    )
    return summary
