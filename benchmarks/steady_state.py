"""Steady state through the real daemon: Firehose packing and end-to-end latency of a trickle.

    python -m benchmarks.steady_state [--minutes 60] [--scale 30] [--window 60] [--baseline-minutes 3] [--smoke]
        [--results FILE]

Starts a private local stack and two long-running workers (`coinstream consume --app warehouse` and
`--app live`), then puts the mission's shape as it arrives: per minute one candle from each of two
exchanges and 100 posts spread over the minute, in ten puts. Time runs `--scale` times faster than
the clock (60 minutes in 2 at the default 30), and the warehouse's delivery window with it (60 s
becomes 2 s), so each window holds the same rows as it would in real time; `--scale 1` runs the hour.

Prints, from the processors' own counts: Firehose records and billed 5 KB units per 1,000 rows,
against the ideal (the same rows packed all at once, as a bulk run does) and against sending every
poll (window 0, measured in the same run); and latency p50/p95 from a post's put to its row in S3
(polled every 0.25 s) and, in the real-time baseline run, from a minute's last put to the `live`
application's DynamoDB minute showing all of its posts (live does not wait for a window; at x30 the
local stack's DynamoDB cannot keep up with its transactions, so the scaled run leaves it out).
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from benchmarks.corpus import TEXTS
from benchmarks.results import Figure, options, publish
from benchmarks.stack import command_env, private_stack, wait
from coinstream import records
from coinstream.aws import client
from coinstream.config import Pipeline, Settings
from coinstream.delivery import load_delivery_streams
from coinstream.live_table import read_minutes
from coinstream.processes import stop_group
from coinstream.records import Envelope
from consumer.enrich import enrich
from consumer.firehose_sink import billed_units, pack, row_line
from producer.kinesis_writer import KinesisWriter

POSTS_PER_MINUTE = 100
PUTS_PER_MINUTE = 10
_SUMMARY = re.compile(r"(\d+) rows in (\d+) Firehose records \((\d+) billed 5 KB units\)")


def minute_of(base: datetime, n: int, seed: int) -> tuple[list[Envelope], list[list[Envelope]]]:
    """Minute `n`: its two candles and its posts in PUTS_PER_MINUTE puts."""
    at = base + timedelta(minutes=n)
    fetched = at + timedelta(seconds=61)
    candles = [
        records.candle(
            exchange,
            "KRW-BTC",
            at,
            fetched,
            {"open": "131000000", "high": "131020000", "low": "130980000", "close": "131005000", "volume": "1.5"},
        )
        for exchange in ("coinone", "upbit")
    ]
    posts = [
        records.post(
            ("x", "bluesky", "mastodon")[i % 3],
            f"{seed}-{n}-{i}",
            at + timedelta(seconds=i * 60 // POSTS_PER_MINUTE),
            at + timedelta(seconds=i * 60 // POSTS_PER_MINUTE + 1),
            text=TEXTS[i % len(TEXTS)],
            author_id=str(1000 + i),
            lang="en",
        )
        for i in range(POSTS_PER_MINUTE)
    ]
    per_put = POSTS_PER_MINUTE // PUTS_PER_MINUTE
    return candles, [posts[i : i + per_put] for i in range(0, POSTS_PER_MINUTE, per_put)]


def ideal_units(envelopes: list[Envelope]) -> tuple[int, int]:
    """(rows, billed units) of the same rows packed all at once, per kind, as a bulk run packs them."""
    by_kind: dict[str, list[bytes]] = defaultdict(list)
    now = datetime.now(UTC)
    for e in envelopes:
        by_kind[e.kind.value].append(row_line(enrich(e, now)))
    return len(envelopes), sum(billed_units(r) for rows in by_kind.values() for r in pack(rows))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Workers:
    """`coinstream consume --app warehouse` and `--app live`, as long-running services."""

    def __init__(self, settings: Settings, window: float, logs: Path, apps: tuple[str, ...]) -> None:
        env = command_env(settings, delivery_window_seconds=str(window))
        self.logs = {app: logs / f"{app}-window-{window:g}.log" for app in apps}
        # the record processors log to their own file (consumer/app.py), shared by every run: read this run's part
        self.processor_log = settings.state_dir / "logs" / "processor-warehouse.log"
        self.offset = self.processor_log.stat().st_size if self.processor_log.exists() else 0
        self.procs = []
        for app, path in self.logs.items():
            with path.open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "operate", "consume", "--app", app],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def stop(self) -> tuple[int, int, int]:
        """Stop both gracefully; (rows, Firehose records, billed units) the warehouse's processors reported."""
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            finally:
                stop_group(proc.pid, timeout=5)
        with self.processor_log.open("rb") as log:
            log.seek(self.offset)
            lines = log.read().decode("utf-8", "replace").splitlines()
        found = [tuple(int(x) for x in m.groups()) for line in lines for m in _SUMMARY.finditer(line)]
        if not found:
            raise SystemExit(f"no record processor reported what it delivered in {self.processor_log}")
        return (sum(f[0] for f in found), sum(f[1] for f in found), sum(f[2] for f in found))


@dataclass
class Run:
    """What one trickle measured."""

    scale: float
    window: float  # seconds, unscaled
    minutes: int
    rows: int
    records: int
    units: int
    ideal_units: int
    row_latency: list[float]
    live_latency: list[float]

    def per_thousand(self) -> float:
        """Billed 5 KB units per 1,000 rows."""
        return self.units * 1000 / max(1, self.rows)

    def of_ideal(self) -> float:
        """The ideal packing's units over these units (1.0: as packed as a bulk run)."""
        return self.ideal_units / max(1, self.units)

    def report(self) -> str:
        """Two lines: packing against the ideal, then latency."""
        per_k = 1000 / max(1, self.rows)
        clock = "" if self.scale == 1 else f" (seconds of the clock at x{self.scale:g})"
        return (
            f"window {self.window:>3.0f} s, {self.minutes} minutes at x{self.scale:g} speed: {self.rows:,} rows -> "
            f"{self.records:,} Firehose records, {self.units:,} billed 5 KB units = {self.units * per_k:.1f} per "
            f"1,000 rows; ideal {self.ideal_units:,} units = {self.ideal_units * per_k:.1f} per 1,000 rows "
            f"({self.ideal_units / max(1, self.units):.0%} of ideal)\n"
            f"    put -> row in S3{clock}: p50 {statistics.median(self.row_latency):.1f} s, "
            f"p95 {percentile(self.row_latency, 95):.1f} s ({len(self.row_latency):,} rows)"
            + (
                f"; a minute's last put -> live minute complete: p50 {statistics.median(self.live_latency):.1f} s, "
                f"p95 {percentile(self.live_latency, 95):.1f} s ({len(self.live_latency)} minutes)"
                if self.live_latency
                else ""
            )
        )


def trickle(
    settings: Settings, pipeline: Pipeline, minutes: int, scale: float, window: float, seed: int, logs: Path
) -> Run:
    """One measured run: workers up, `minutes` of the mission's shape put in real time / scale, workers down."""
    kinesis, s3, dynamodb = client("kinesis", settings), client("s3", settings), client("dynamodb", settings)
    writer = KinesisWriter(pipeline.stream_name, kinesis)
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=seed)
    # the live application writes a DynamoDB transaction per minute and source on every poll: at x30 the
    # local stack's DynamoDB (moto) cannot keep up, so its latency is measured in real time only
    with_live = scale == 1
    workers = Workers(settings, window / scale, logs, ("warehouse", "live") if with_live else ("warehouse",))
    put_at: dict[str, float] = {}
    minute_done: dict[str, tuple[float, int]] = {}  # live minute -> (its last put, its posts)
    seen_rows: dict[str, float] = {}
    seen_objects: set[str] = set()
    last_key: dict[str, str] = {}
    live_complete: dict[str, float] = {}
    everything: list[Envelope] = []
    prefixes = [stream.prefix for stream in load_delivery_streams(pipeline).values()]

    def poll() -> bool:
        """Record what reached S3 and the live table since the last poll (True, for use in conditions)."""
        now = time.monotonic()
        for prefix in prefixes:
            # Firehose's keys hold the UTC time to the second, then a random id: list from the last second seen
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=pipeline.bucket, Prefix=prefix, StartAfter=last_key.get(prefix, "")
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    last_key[prefix] = max(last_key.get(prefix, ""), obj["Key"][: -len("-") - 36])
                    if obj["Key"] in seen_objects:
                        continue
                    seen_objects.add(obj["Key"])
                    body = s3.get_object(Bucket=pipeline.bucket, Key=obj["Key"])["Body"].read()
                    for line in body.splitlines():
                        key = records_key(line)
                        seen_rows.setdefault(key, now)
        for item in read_minutes(dynamodb, pipeline.live_table) if with_live else []:
            pk = item["minute"]
            if pk in minute_done and pk not in live_complete and sum(item["posts"].values()) >= minute_done[pk][1]:
                live_complete[pk] = now
        return True

    try:
        # the first records tell when both applications are reading: start the clock after that
        warm, _ = minute_of(base - timedelta(minutes=1), 0, seed)
        writer.put(warm)
        warm_minute = f"{base - timedelta(minutes=1):%Y-%m-%dT%H:%M}Z"
        wait("the warehouse's first rows", lambda: poll() and all(e.key in seen_rows for e in warm), 600, every=0.5)
        if with_live:
            wait(
                "the live application's first minute",
                lambda: any(m["minute"] == warm_minute for m in read_minutes(dynamodb, pipeline.live_table)),
                600,
                every=0.5,
            )
        step = 60 / scale / PUTS_PER_MINUTE
        start = time.monotonic()
        for n in range(minutes):
            candles, puts = minute_of(base, n, seed)
            for i, batch in enumerate([candles + puts[0], *puts[1:]]):
                target = start + (n * PUTS_PER_MINUTE + i) * step
                while time.monotonic() < target:
                    poll()
                    time.sleep(min(0.25, max(0.0, target - time.monotonic())))
                result = writer.put(batch)
                assert not result.unsent, "the local stream refused records"
                now = time.monotonic()
                for e in batch:
                    put_at[e.key] = now
                everything.extend(batch)
            pk = f"{base + timedelta(minutes=n):%Y-%m-%dT%H:%M}Z"
            minute_done[pk] = (time.monotonic(), POSTS_PER_MINUTE)
        if with_live:
            wait("the live minutes", lambda: poll() and len(live_complete) >= minutes, 300, every=0.5)
        else:
            wait("the last rows in S3", lambda: poll() and all(k in seen_rows for k in put_at), 300, every=0.5)
    finally:
        rows, firehose_records, units = workers.stop()
    poll()  # rows the stop delivered
    _, ideal = ideal_units(everything)
    post_latency = [seen_rows[k] - put_at[k] for k in put_at if k in seen_rows]
    live_latency = [live_complete[pk] - minute_done[pk][0] for pk in live_complete if pk in minute_done]
    return Run(
        scale=scale,
        window=window,
        minutes=minutes,
        rows=rows - len(warm),
        records=firehose_records,
        units=units,
        ideal_units=ideal,
        row_latency=post_latency,
        live_latency=live_latency,
    )


def records_key(line: bytes) -> str:
    """The record_key of one delivered row."""
    return str(orjson.loads(line)["record_key"])


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--scale", type=float, default=30.0, help="time runs this many times faster than the clock")
    parser.add_argument("--window", type=float, default=60.0, help="the delivery window, in unscaled seconds")
    parser.add_argument(
        "--baseline-minutes", type=int, default=3, help="minutes of the baseline run: no window, in real time"
    )
    parser.add_argument(
        "--baseline-scale",
        type=float,
        default=1.0,
        help="the baseline's speed-up (above 1, live's latency is not measured)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.baseline_minutes, args.baseline_scale = 3, 1, 6.0
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with private_stack("coinstream-steady-") as (settings, pipeline, logs):
        # the baseline first: the live application starts at the stream's oldest record, and the
        # scaled run's records would be a backlog for it, not a trickle
        baseline = trickle(settings, pipeline, args.baseline_minutes, args.baseline_scale, 0.0, 2, logs)
        runs = [trickle(settings, pipeline, args.minutes, args.scale, args.window, 1, logs), baseline]
    print(f"2 candles + {POSTS_PER_MINUTE} posts a minute, {pipeline.shards} shards, two workers; logs in {logs}")
    for run in runs:
        print(run.report())
    windowed = runs[0]
    command = (
        f"python -m benchmarks.steady_state --minutes {args.minutes} --scale {args.scale:g} --window {args.window:g} "
        f"--baseline-minutes {args.baseline_minutes}"
    )
    figures = [
        Figure(
            "steady_state.units",
            f"steady state through the real daemon, {args.window:g} s delivery window: billed 5 KB Firehose units "
            "per 1,000 rows",
            windowed.per_thousand(),
            "units",
            baseline=baseline.per_thousand(),
            baseline_what="no window, every poll sent",
            ratio=baseline.per_thousand() / max(1e-9, windowed.per_thousand()),
            ratio_what="fewer",
        ),
        Figure(
            "steady_state.of_ideal",
            "the same packing against the ideal (the same rows packed at once, as a bulk run does)",
            100 * windowed.of_ideal(),
            "% of ideal",
            baseline=100 * baseline.of_ideal(),
            baseline_what="no window",
        ),
        Figure(
            "steady_state.row_p95",
            f"a trickle at x{args.baseline_scale:g}, no window: put -> row in S3, p95",
            percentile(baseline.row_latency, 95),
            "s",
        ),
    ]
    if baseline.live_latency:
        figures.append(
            Figure(
                "steady_state.live_p95",
                "a minute's last put -> the `live` application's minute complete, p95",
                percentile(baseline.live_latency, 95),
                "s",
            )
        )
    publish("steady_state", command, figures, args)


if __name__ == "__main__":
    main()
