"""How long a new KCL application takes to start and to stop, on the local stack.

    python -m benchmarks.kcl_start [--runs 3]

Starts a private local stack, puts a few records, then per run and per configuration starts the
real MultiLangDaemon for a brand-new application (its three DynamoDB tables deleted first) and
measures start -> every shard checkpointed past the records (first records processed and delivered),
then SIGTERM -> the daemon's exit. Configurations: coinstream's properties, and the baseline — the
same properties without the start-up settings (KCL's defaults) — measured in the same run. Prints
medians and the ratio.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.stack import command_env, private_stack, wait
from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.processes import stop_group
from coinstream.records import Envelope
from consumer.checkpoints import leases
from consumer.daemon import application_name
from producer.kinesis_writer import KinesisWriter
from producer.sources import simulated

APP = "warehouse"


def fresh(settings: Settings) -> None:
    """Delete the application's lease, coordinator-state and worker-metrics tables: the next start is a new app."""
    dynamodb = client("dynamodb", settings)
    name = application_name(APP)
    for table in (name, f"{name}-CoordinatorState", f"{name}-WorkerMetricStats"):
        try:
            dynamodb.delete_table(TableName=table)
        except dynamodb.exceptions.ResourceNotFoundException:
            pass


def one_run(
    settings: Settings, pipeline: Pipeline, last: dict[str, int], baseline: bool, logs: Path
) -> tuple[float, float]:
    """(start -> all checkpointed, SIGTERM -> exit) in seconds for `coinstream consume` of a new application."""
    fresh(settings)
    # no delivery window: the figure is KCL's start, not the window the processor holds rows for (60 s by default)
    env = command_env(settings, kcl_fast_start="false" if baseline else "true", delivery_window_seconds="0")
    dynamodb = client("dynamodb", settings)
    table = application_name(APP)

    def checkpointed() -> bool:
        try:
            marks = {x.shard_id: x.checkpoint or "" for x in leases(dynamodb, table)}
        except Exception:
            return False
        return all(marks.get(s, "").isdigit() and int(marks[s]) >= seq for s, seq in last.items())

    argv = [sys.executable, "-m", "operate", "consume", "--app", APP]
    with (logs / f"{'baseline' if baseline else 'tuned'}-{time.time_ns()}.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started = wait("every shard checkpointed", checkpointed, 600)
            stop = time.perf_counter()
            proc.send_signal(signal.SIGTERM)  # what systemd sends the service: the command stops its daemon
            proc.wait(timeout=120)
            stopped = time.perf_counter() - stop
        finally:
            stop_group(proc.pid, timeout=5)
    return started, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="measure only coinstream's properties")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with private_stack("coinstream-kcl-start-") as (settings, pipeline, logs):
        sim = simulated.Simulation(seed=1)
        records: list[Envelope] = simulated.posts(sim, 29_930_000, 29_930_002, datetime.now(UTC))
        put = KinesisWriter(pipeline.stream_name, client("kinesis", settings)).put(records)
        assert not put.unsent and len(put.last_sequence) == pipeline.shards, "put records on every shard"
        results: dict[str, list[tuple[float, float]]] = {"tuned": [], "baseline": []}
        for run in range(args.runs):
            for name in ("tuned",) if args.no_baseline else ("tuned", "baseline"):
                started, stopped = one_run(settings, pipeline, put.last_sequence, name == "baseline", logs)
                results[name].append((started, stopped))
                print(
                    f"run {run + 1} {name:8}: start -> checkpointed {started:6.1f} s, SIGTERM -> exit {stopped:5.1f} s"
                )
        print(f"median of {args.runs} runs, a new application, {pipeline.shards} shards, logs in {logs}")
        for name, found in results.items():
            if found:
                start_median = statistics.median(s for s, _ in found)
                stop_median = statistics.median(s for _, s in found)
                print(f"{name:8}: start -> first records checkpointed {start_median:6.1f} s; stop {stop_median:5.1f} s")
        if results["baseline"]:
            ratio = statistics.median(s for s, _ in results["baseline"]) / statistics.median(
                s for s, _ in results["tuned"]
            )
            print(f"coinstream's properties start {ratio:.1f}x faster than KCL's defaults")


if __name__ == "__main__":
    main()
