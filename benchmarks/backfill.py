"""Backfill speed and memory against loopback APIs that enforce the published rate limits.

    python -m benchmarks.backfill [--days 7] [--runs 5] [--memory-days 7 30] [--smoke] [--results FILE]

Upbit and Coinone candle history servers (two markets each; Upbit 10 requests a second, 429 past it; Coinone 300
a minute, 500 candles a page, errorCode 4 "blocked" past it), X's
counts endpoint and a stream, all on 127.0.0.1. Each run backfills `--days` of all of them into a fresh
checkpoint folder. The baseline, measured in the same run, is what the APIs' rate limits alone impose: an API
that allows r requests in any second lets request k (from 0) start k // r seconds in. Printed: the median wall time
over that (the goal is at most 1.10: the pipeline is never the bottleneck), what Kinesis' write limit (1,000
records a second per shard) would impose on the same records with the pipeline's shards, and the peak RSS of a
child process backfilling 7 and 30 days (memory stays flat: a bounded queue of pages, whatever the window).

The stream here is moto server's Kinesis: kinesis-mock, the local stack's stand-in (it speaks what KCL
needs), takes PutRecords at a few hundred records a second on this machine and would measure itself.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from pydantic import SecretStr

from benchmarks.results import Figure, options, publish
from benchmarks.stack import wait
from coinstream.config import Pipeline, Settings
from coinstream.processes import free_port
from coinstream.timeutil import epoch_minute
from producer.backfill import Checkpoints, last_closed_minute, plan, run
from producer.kinesis_writer import KinesisWriter
from producer.spool import Spool
from tests.history_api import Exchange, exchanges
from tests.x_api import fake_x

RATE = 10  # Upbit's published requests per second
COINONE_PER_MINUTE = 300  # Coinone's published requests per minute (its public API)
MARKETS = "KRW-BTC,KRW-ETH"


def imposed(requests: int, per_window: int = RATE, window: float = 1.0) -> float:
    """Seconds before the last of `requests` may start, under a limit of `per_window` in any one window (request
    k, from 0, may start k // per_window windows in)."""
    return float((requests - 1) // per_window) * window if requests else 0.0


def serve_fakes(days: int, end_minute: int, now: datetime, conn: Connection) -> None:
    """In a process of its own, as the real APIs are: the fake exchanges and X; their URLs, then their counts."""
    minutes = days * 1440
    upbit = Exchange(first=end_minute - minutes - 10, last=end_minute - 1)
    coinone = Exchange(first=end_minute - minutes - 10, last=end_minute - 1, per_minute=COINONE_PER_MINUTE)
    with exchanges(upbit, coinone), fake_x() as x:
        x.now, x.page_buckets = now, 1440
        conn.send((upbit.url, coinone.url, x.url))
        conn.recv()  # the backfill is done
        conn.send(
            {
                "upbit_requests": upbit.requests,
                "coinone_requests": coinone.requests,
                "x_requests": x.counts_requests,
                "rate_limited": upbit.rate_limited + coinone.rate_limited,
            }
        )


def backfill_once(kinesis: Any, stream: str, days: int) -> dict[str, float]:
    """One backfill of `days` from fresh fakes into a fresh checkpoint folder: wall time, requests, baseline."""
    now = datetime.now(UTC)
    end = last_closed_minute(now, 10.0)
    folder = Path(tempfile.mkdtemp(prefix="coinstream-backfill-"))
    ours, theirs = multiprocessing.Pipe()
    fakes = multiprocessing.Process(target=serve_fakes, args=(days, epoch_minute(end), now, theirs), daemon=True)
    fakes.start()
    upbit_url, coinone_url, x_url = ours.recv()
    configured = Settings(
        state_dir=folder,
        upbit_url=upbit_url,
        coinone_url=coinone_url,
        upbit_markets=MARKETS,
        coinone_markets=MARKETS,
        x_url=x_url,
        x_bearer_token=SecretStr("t" * 24),
        x_dollars_per_day=10.0,
        x_dollars_per_month=100.0,
    )
    sources = ["upbit", "coinone", *(["x"] if days <= 7 else [])]  # X counts reach back 7 days
    found = plan(configured, end - timedelta(days=days), end, sources=sources, now=now)
    writer = KinesisWriter(stream, kinesis, aggregate=True)
    put = {"records": 0, "bytes": 0}
    send = kinesis.put_records

    def counted(**kwargs: Any) -> Any:
        put["records"] += len(kwargs["Records"])
        put["bytes"] += sum(len(r["Data"]) + len(r["PartitionKey"]) for r in kwargs["Records"])
        return send(**kwargs)

    writer.kinesis = SimpleNamespace(put_records=counted)  # type: ignore[assignment]
    started = time.monotonic()
    done = run(found, lambda: writer, Spool(folder / "spool"), Checkpoints(folder), now=now)
    wall = time.monotonic() - started
    ours.send("done")
    stats = ours.recv()
    fakes.join(timeout=10)
    if not done.complete or done.spooled:
        raise SystemExit(f"the backfill did not finish: {[s.stopped for s in done.series]}, {done.spooled} spooled")
    return {
        "wall": wall,
        "baseline": max(imposed(stats["upbit_requests"]), imposed(stats["coinone_requests"], COINONE_PER_MINUTE, 60.0)),
        "requests": stats["upbit_requests"] + stats["coinone_requests"] + stats["x_requests"],
        "rate_limited": stats["rate_limited"],
        "records": sum(s.records for s in done.series),
        "stream_records": put["records"],
        "stream_mib": put["bytes"] / 2**20,
    }


@contextmanager
def moto_kinesis() -> Iterator[tuple[Any, str]]:
    """moto server on a free loopback port with one stream of the pipeline's shards: (client, stream name)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "operate.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kinesis = boto3.client(
            "kinesis",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's, on loopback
        )
        wait("moto server", lambda: _answers(kinesis), timeout=60)
        pipeline = Pipeline.load(Settings().pipeline_file)
        kinesis.create_stream(StreamName=pipeline.stream_name, ShardCount=pipeline.shards)
        yield kinesis, pipeline.stream_name
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(kinesis: Any) -> bool:
    try:
        kinesis.list_streams()
        return True
    except Exception:  # not up yet
        return False


def child(days: int) -> None:
    """Run one backfill in this process (started by `main`) and print its figures with the peak RSS."""
    with moto_kinesis() as (kinesis, stream):
        figures = backfill_once(kinesis, stream, days)
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-days", type=int, nargs="*", default=[7, 30])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.days, args.runs, args.memory_days = 1, 1, [1]
    if args.child:
        child(args.child)
        return
    shards = Pipeline.load(Settings().pipeline_file).shards
    with moto_kinesis() as (kinesis, stream):
        ratios, walls, baselines = [], [], []
        for n in range(args.runs):
            f = backfill_once(kinesis, stream, args.days)
            ratios.append(f["wall"] / f["baseline"])
            walls.append(f["wall"])
            baselines.append(f["baseline"])
            print(
                f"run {n + 1}: {args.days} days, {f['requests']:.0f} requests, {f['records']:.0f} records in "
                f"{f['wall']:.2f} s; the APIs' rate limits alone impose {f['baseline']:.2f} s "
                f"-> {f['wall'] / f['baseline']:.3f}x; {f['rate_limited']:.0f} answered 429 (and were asked again)"
            )
    print(
        f"backfill of {args.days} days (Upbit and Coinone, 2 markets each, and X counts): median "
        f"{statistics.median(walls):.2f} s, {statistics.median(ratios):.3f}x the time the APIs' rate limits impose "
        f"(goal <= 1.10), {args.runs} runs"
    )
    limit = max(f["stream_mib"] / shards, f["stream_records"] / (1000 * shards))
    print(
        f"stream: {f['records']:.0f} records in {f['stream_records']:.0f} aggregated stream records, "
        f"{f['stream_mib']:.1f} MiB; on Kinesis with the pipeline's {shards} shards (1 MiB and 1,000 records a "
        f"second each) writing them takes at least {limit:.1f} s (unaggregated: {f['records'] / (1000 * shards):.1f} s)"
    )
    figures = [
        Figure(
            "backfill.wall",
            f"backfill of {args.days} days ({f['requests']:.0f} requests, {f['records']:.0f} records) against "
            "loopback APIs that enforce their published rate limits",
            statistics.median(walls),
            "s",
            baseline=statistics.median(baselines),
            baseline_what="the time the rate limits alone impose",
            ratio=statistics.median(ratios),
            ratio_what="the rate limits' own time (goal <= 1.10)",
        )
    ]
    for days in args.memory_days:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.backfill", "--child", str(days)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"the {days}-day child failed: {done.stderr[-2000:]}")
        f = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"peak RSS backfilling {days} days: {f['peak_rss_mib']:.0f} MiB ({f['records']:.0f} records, "
            f"{f['wall']:.1f} s, {f['wall'] / f['baseline']:.3f}x the rate limits' time)"
        )
        figures.append(
            Figure(f"backfill.peak_rss_{days}d", f"peak RSS of a backfill of {days} days", f["peak_rss_mib"], "MiB")
        )
    publish(
        "backfill",
        f"python -m benchmarks.backfill --days {args.days} --runs {args.runs} --memory-days "
        + " ".join(str(d) for d in args.memory_days),
        figures,
        args,
    )


if __name__ == "__main__":
    main()
