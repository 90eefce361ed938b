"""How long a KCL application takes to start and to stop, on the local stack.

    python -m benchmarks.kcl_start [--runs 3] [--no-baseline] [--smoke] [--results FILE]

Starts a private local stack, puts a few records, then per run starts `coinstream consume` (the real
MultiLangDaemon) and measures start -> every shard checkpointed past the records (first records processed
and delivered), then SIGTERM -> the command's exit:
- a brand-new application (its three DynamoDB tables deleted first): coinstream's start-up, and the
  baseline — KCL's own (no seeded leases, KCL's default properties);
- the same application started again after a graceful stop (a few new records put first): the only
  worker's start (it finds its leases as its own), and the baseline — a worker under a name the leases do
  not carry, which every restart was before the only worker kept one name.
Baselines are measured in the same run. Prints medians and ratios.
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

from benchmarks.results import Figure, options, publish
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


def one_run(settings: Settings, pipeline: Pipeline, last: dict[str, int], name: str, logs: Path) -> tuple[float, float]:
    """(start -> all checkpointed, SIGTERM -> exit) in seconds for one `coinstream consume` of the kind `name`."""
    if name in ("tuned", "baseline"):
        fresh(settings)
    # no delivery window: the figure is KCL's start, not the window the processor holds rows for (60 s by default)
    env = command_env(settings, kcl_fast_start="false" if name == "baseline" else "true", delivery_window_seconds="0")
    dynamodb = client("dynamodb", settings)
    table = application_name(APP)

    def checkpointed() -> bool:
        try:
            marks = {x.shard_id: x.checkpoint or "" for x in leases(dynamodb, table)}
        except Exception:
            return False
        return all(marks.get(s, "").isdigit() and int(marks[s]) >= seq for s, seq in last.items())

    other = ["--worker-id", f"restart-{time.time_ns()}"] if name == "restart baseline" else []
    argv = [sys.executable, "-m", "operate", "consume", "--app", APP, *other]
    with (logs / f"{name.replace(' ', '-')}-{time.time_ns()}.log").open("wb") as log:
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
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="measure only coinstream's properties")
    args = parser.parse_args()
    if args.smoke:  # one run of coinstream's own paths; the baselines are minutes of KCL's own timers
        args.runs, args.no_baseline = 1, True
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with private_stack("coinstream-kcl-start-") as (settings, pipeline, logs):
        sim = simulated.Simulation(seed=1)
        writer = KinesisWriter(pipeline.stream_name, client("kinesis", settings))
        first = 29_930_000

        def put_more() -> dict[str, int]:
            """A few new records on every shard; the last sequence number per shard."""
            nonlocal first
            records: list[Envelope] = simulated.posts(sim, first, first + 2, datetime.now(UTC))
            first += 2
            put = writer.put(records)
            assert not put.unsent and len(put.last_sequence) == pipeline.shards, "put records on every shard"
            return put.last_sequence

        last = put_more()
        names = ("tuned", "restart", "restart baseline", "baseline")
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for run in range(args.runs):
            for name in ("tuned", "restart") if args.no_baseline else names:
                if name.startswith("restart"):
                    last = put_more()
                started, stopped = one_run(settings, pipeline, last, name, logs)
                results[name].append((started, stopped))
                print(
                    f"run {run + 1} {name:16}: start -> checkpointed {started:6.1f} s, SIGTERM -> exit {stopped:5.1f} s"
                )
        print(f"median of {args.runs} runs, {pipeline.shards} shards, logs in {logs}")
        for name, found in results.items():
            if found:
                start_median = statistics.median(s for s, _ in found)
                stop_median = statistics.median(s for _, s in found)
                print(f"{name:16}: start -> records checkpointed {start_median:6.1f} s; stop {stop_median:5.1f} s")

        def median(name: str, stop: bool = False) -> float | None:
            found = results[name]
            return statistics.median(s[1] if stop else s[0] for s in found) if found else None

        def compared(fast: str, slow: str) -> dict[str, float | None]:
            base, figure = median(slow), median(fast)
            return {"baseline": base, "ratio": base / figure if base and figure else None}

        tuned, restart, stop = median("tuned"), median("restart"), median("tuned", stop=True)
        assert tuned is not None and restart is not None and stop is not None
        publish(
            "kcl_start",
            f"python -m benchmarks.kcl_start --runs {args.runs}" + (" --no-baseline" if args.no_baseline else ""),
            [
                Figure(
                    "kcl_start.new_app",
                    "a new KCL application, start to both shards checkpointed",
                    tuned,
                    "s",
                    baseline_what="KCL's own start-up (no seeded leases, KCL's defaults)",
                    ratio_what="faster",
                    **compared("tuned", "baseline"),
                ),
                Figure(
                    "kcl_start.restart",
                    "the same application started again after a graceful stop",
                    restart,
                    "s",
                    baseline_what="a worker under a name the leases do not carry",
                    ratio_what="faster",
                    **compared("restart", "restart baseline"),
                ),
                Figure("kcl_start.stop", "a graceful stop, SIGTERM to exit", stop, "s"),
            ],
            args,
        )


if __name__ == "__main__":
    main()
