"""The `live` application's table on the local stack's moto server: how fast posts are counted, and how much memory
the server takes, against moto's own transactions (which copy a whole table for every item of a transaction).

    python -m benchmarks.live_table [--posts 3000] [--smoke] [--results FILE]

Two moto servers on loopback, one as the stack starts it (`operate/moto_server.py`: a transaction keeps a copy of
the items it touches) and one with `--copy-whole-tables` (moto's own behaviour, the baseline). Each gets the same
posts through the live application's own sink (`consumer.live_sink.LiveMetricsSink`: a key per post, counted in a
transaction with its minute), 50 at a time as a record processor's batches would; printed: posts counted a second
and the server's peak resident memory (VmHWM), for each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.results import Figure, options, publish
from benchmarks.stack import wait
from coinstream import live_table
from coinstream.processes import free_port
from coinstream.records import Kind
from consumer.enrich import enrich
from consumer.live_sink import LiveMetricsSink
from tests.conftest import FETCHED, make_post

BATCH = 50


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident set size (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_posts(posts: int, *baseline: str) -> tuple[float, float]:
    """(posts counted a second, the server's peak RSS in MiB) for `posts` posts through a fresh moto server."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "operate.moto_server", "-H", "127.0.0.1", "-p", str(port), *baseline],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ddb: Any = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's, on loopback
        )
        wait("moto server", lambda: _answers(ddb), timeout=60)
        live_table.create(ddb, "live")
        sink = LiveMetricsSink("live", ddb)
        rows = [enrich(make_post(f"p{n}", minute=(n // 40) % 60), FETCHED) for n in range(posts)]
        started = time.perf_counter()
        for first in range(0, posts, BATCH):
            for row in rows[first : first + BATCH]:
                sink.add(Kind.POST, row)
            sink.flush()
        return posts / (time.perf_counter() - started), peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(ddb: Any) -> bool:
    try:
        ddb.list_tables()
        return True
    except Exception:  # not up yet
        return False


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--posts", type=int, default=3000)
    args = parser.parse_args()
    if args.smoke:
        args.posts = 200
    rate, rss = count_posts(args.posts)
    base_rate, base_rss = count_posts(args.posts, "--copy-whole-tables")
    print(
        f"{args.posts} posts: {rate:.0f}/s and {rss:.0f} MiB at most; "
        f"moto's own transactions {base_rate:.0f}/s, {base_rss:.0f} MiB"
    )
    publish(
        "live_table",
        f"python -m benchmarks.live_table --posts {args.posts}",
        [
            Figure(
                "live_table.rate",
                f"posts counted into the live table, {args.posts} of them",
                rate,
                "posts/s",
                baseline=base_rate,
                baseline_what="moto's own transactions, copying the table per item",
                ratio=rate / base_rate,
                ratio_what="faster",
            ),
            Figure(
                "live_table.peak_rss",
                "moto server's peak memory while counting them",
                rss,
                "MiB",
                baseline=base_rss,
                baseline_what="moto's own transactions",
                ratio=base_rss / rss,
                ratio_what="less memory",
            ),
        ],
        args,
    )


if __name__ == "__main__":
    main()
