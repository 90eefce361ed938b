"""The seed's way against coinstream's: one Firehose request per record, or PutRecords batches to Kinesis.

    python -m benchmarks.seed_baseline [--records 1000] [--runs 3] [--smoke] [--results FILE]

The original design put each record straight into Firehose with one `PutRecord` request; coinstream's
producers batch up to 500 records (5 MiB) per Kinesis `PutRecords`. Both run on the same records in the same
run against a private local stack (moto's Firehose, kinesis-mock's Kinesis); prints requests per 1,000
records (counted at the SDK) and records/s, medians of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.corpus import corpus
from benchmarks.results import Figure, options, publish
from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from coinstream.processes import free_port
from coinstream.records import Envelope, Kind
from operate import local_stack
from producer.kinesis_writer import KinesisWriter


def counting(service_client: Any, operation: str) -> list[int]:
    """A counter of `operation` requests the client sends (retries included)."""
    sent = [0]

    def count(**_: Any) -> None:
        sent[0] += 1

    service_client.meta.events.register(f"before-send.*.{operation}", count)
    return sent


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        args.records, args.runs = 100, 1
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    state = Path(tempfile.mkdtemp(prefix="coinstream-seed-baseline-"))
    settings = Settings(state_dir=state, kinesis_port=free_port(), kinesis_tls_port=free_port(), moto_port=free_port())
    pipeline = Pipeline.load(settings.pipeline_file)
    local_stack.up(settings, pipeline)
    try:
        records = [Envelope.from_bytes(b) for b in corpus(args.records * args.runs, duplicate_share=0)]
        firehose, kinesis = client("firehose", settings), client("kinesis", settings)
        posts_stream = load_delivery_streams(pipeline)[Kind.POST.value].name
        firehose_requests, kinesis_requests = counting(firehose, "PutRecord"), counting(kinesis, "PutRecords")
        seed_times, ours_times = [], []
        for run in range(args.runs):
            batch = records[run * args.records : (run + 1) * args.records]

            def seed(batch: list[Envelope] = batch) -> None:
                for envelope in batch:
                    firehose.put_record(DeliveryStreamName=posts_stream, Record={"Data": envelope.to_bytes() + b"\n"})

            def ours(batch: list[Envelope] = batch) -> None:
                result = KinesisWriter(pipeline.stream_name, kinesis).put(batch)
                assert not result.unsent, "the stream refused records"

            seed_times.append(timed(seed))
            ours_times.append(timed(ours))
            print(
                f"run {run + 1}: Firehose PutRecord per record {seed_times[-1]:.2f} s, "
                f"PutRecords {ours_times[-1]:.2f} s"
            )
        seed_median, ours_median = statistics.median(seed_times), statistics.median(ours_times)
        print(f"{args.records:,} records per run, median of {args.runs} runs, local stack")
        publish(
            "seed_baseline",
            f"python -m benchmarks.seed_baseline --records {args.records} --runs {args.runs}",
            [
                Figure(
                    "seed_baseline.requests",
                    f"the producer's requests for {args.records:,} records (Kinesis PutRecords)",
                    kinesis_requests[0] / args.runs,
                    "requests",
                    baseline=firehose_requests[0] / args.runs,
                    baseline_what="the seed's one Firehose PutRecord per record",
                    ratio=firehose_requests[0] / max(1, kinesis_requests[0]),
                    ratio_what="fewer",
                ),
                Figure(
                    "seed_baseline.throughput",
                    "the same records put, local stack",
                    args.records / ours_median,
                    "records/s",
                    baseline=args.records / seed_median,
                    baseline_what="one Firehose PutRecord per record",
                    ratio=seed_median / ours_median,
                    ratio_what="faster",
                ),
            ],
            args,
        )
    finally:
        local_stack.down(settings)


if __name__ == "__main__":
    main()
