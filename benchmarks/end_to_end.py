"""End-to-end throughput through the real KCL daemon on the local stack.

    python -m benchmarks.end_to_end [--records 5000] [--runs 3] [--smoke] [--results FILE]

Starts a private local stack (free ports, a temporary state folder) and one warm `warehouse`
worker, then per run puts N new records and measures the time until the worker has
checkpointed all of them (delivered to Firehose first). Baseline in the same run: the
producer's own PutRecords time for the same records. Prints medians; the stack is stopped after.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.corpus import corpus
from benchmarks.results import Figure, options, publish
from benchmarks.stack import wait
from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.processes import free_port, stop_group
from coinstream.records import Envelope
from consumer.checkpoints import leases
from consumer.daemon import application_name
from consumer.runner import start_worker
from operate import local_stack
from producer.kinesis_writer import KinesisWriter

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

APP = "warehouse"


def checkpointed_past(dynamodb: DynamoDBClient, table: str, last: dict[str, int]) -> bool:
    """Whether every shard's checkpoint has reached the last sequence number written to it."""
    checkpoints = {x.shard_id: x.checkpoint or "" for x in leases(dynamodb, table)}
    return all(checkpoints.get(shard, "").isdigit() and int(checkpoints[shard]) >= seq for shard, seq in last.items())


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        args.records, args.runs = 200, 1
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress as it happens
    state = Path(tempfile.mkdtemp(prefix="coinstream-bench-"))
    # no delivery window: the figure is throughput, not the 60 s the processor may hold rows to fill Firehose records
    settings = Settings(
        state_dir=state,
        kinesis_port=free_port(),
        kinesis_tls_port=free_port(),
        moto_port=free_port(),
        delivery_window_seconds=0,
    )
    pipeline = Pipeline.load(settings.pipeline_file)
    local_stack.up(settings, pipeline)
    worker = None
    try:
        kinesis, dynamodb = client("kinesis", settings), client("dynamodb", settings)
        table = application_name(APP)

        def checkpointed(last: dict[str, int]) -> bool:
            return checkpointed_past(dynamodb, table, last)

        worker = start_worker(settings, pipeline, APP, state / "logs" / "bench-worker.log")
        print(f"starting a warm worker (a new KCL application takes 15-45 s); logs in {state / 'logs'}")
        wait(
            "the worker to hold every lease",
            lambda: len([x for x in leases(dynamodb, table) if x.owner]) == pipeline.shards,
            600,
        )
        records = [Envelope.from_bytes(b) for b in corpus(args.records * args.runs, duplicate_share=0)]
        put_times, e2e_times = [], []
        for run in range(args.runs):
            batch = records[run * args.records : (run + 1) * args.records]
            start = time.perf_counter()
            result = KinesisWriter(pipeline.stream_name, kinesis).put(batch)
            put_done = time.perf_counter()
            assert not result.unsent, "the stream refused records"

            wait("the worker to checkpoint everything", functools.partial(checkpointed, result.last_sequence), 900)
            end = time.perf_counter()
            put_times.append(put_done - start)
            e2e_times.append(end - start)
            print(f"run {run + 1}: put {put_done - start:.2f} s, put+consume+deliver+checkpoint {end - start:.2f} s")
        put_median, e2e_median = statistics.median(put_times), statistics.median(e2e_times)
        print(f"{args.records:,} records per run, {pipeline.shards} shards, 1 worker, median of {args.runs} runs")
        publish(
            "end_to_end",
            f"python -m benchmarks.end_to_end --records {args.records} --runs {args.runs}",
            [
                Figure(
                    "end_to_end.throughput",
                    f"end to end through the real KCL daemon (put, KCL, processor, Firehose, checkpoint), "
                    f"{args.records:,} records a run",
                    args.records / e2e_median,
                    "records/s",
                    baseline=args.records / put_median,
                    baseline_what="the producer's PutRecords alone",
                    ratio=e2e_median / put_median,
                    ratio_what="the time of the puts alone",
                )
            ],
            args,
        )
    finally:
        if worker is not None:
            stop_group(worker.pid, timeout=30)
        local_stack.down(settings)


if __name__ == "__main__":
    main()
