"""`coinstream run` over time: memory of every process, the state folder's size, CPU, and how long a start (cold, and
after a reboot) takes to have every minute of the window in the warehouse.

    python -m benchmarks.collect [--minutes 20] [--days 7] [--down 180] [--smoke] [--results FILE]

Against loopback Upbit and Coinone (tests/history_api.py: their paging, limits and no-trade minutes; a new candle
each minute, as the real APIs), with the producers run every 5 s and the stream emptied every 5 minutes (12 and 72
times the default pace), so that a short run goes through the cycles weeks would. Three phases: a cold start heals
`--days` of history; then `--minutes` of collecting, sampled every 5 s; then a reboot (the supervisor, kinesis-mock
and moto killed with SIGKILL, then `--down` seconds with nothing collected), and the start after it until no minute
is missing. The state folder is measured without the warehouse file, which grows with the data it holds (the record
of truth). The cold start's baseline is the time the APIs' published rate limits alone impose on its requests; the
reboot's, the cold start; each process's peak memory while collecting is shown beside its peak in the cold start.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from benchmarks.backfill import COINONE_PER_MINUTE, RATE, imposed
from benchmarks.results import Figure, options, publish
from benchmarks.stack import wait
from coinstream.timeutil import epoch_minute
from tests.history_api import Exchange, exchanges, expected_rows
from tests.stack import stack_env

KINDS = {
    "kinesis-mock": "kinesis-local",
    "moto server": "operate.moto_server",
    "KCL daemons": "MultiLangDaemon",
    "record processors": "consumer.app",
    "coinstream run": "operate run",
}


def _proc(pid: str) -> tuple[str, int, float] | None:
    """(command line, RSS bytes, CPU seconds) of a process, None if it is gone."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None
    return cmd, rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Every 5 s: RSS per kind of process (summed), the state folder's size, and CPU used by them all."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.peak: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.sizes: list[tuple[float, int]] = []
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5.0):
            self.sample()

    def pids(self) -> set[str]:
        """Every process the run started: those with a pid file under run/ (the supervisor, the stand-ins, the
        workers) and their descendants (the record processors)."""
        found: set[str] = set()
        todo = []
        for file in (self.state / "run").glob("*.pid"):
            try:
                todo.append(file.read_text().strip())
            except OSError:
                continue
        while todo:
            pid = todo.pop()
            if pid in found or not Path(f"/proc/{pid}").exists():
                continue
            found.add(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    todo += task.read_text().split()
                except OSError:
                    continue
        return found

    def sample(self) -> None:
        rss: dict[str, int] = dict.fromkeys(KINDS, 0)
        for pid in self.pids():
            found = _proc(pid)
            if found is None:
                continue
            for kind, mark in KINDS.items():
                if mark in found[0]:
                    rss[kind] += found[1]
                    self.cpu[pid] = found[2]
        for kind, total in rss.items():
            self.peak[kind] = max(self.peak[kind], total)
        size = 0
        for f in self.state.rglob("*"):
            try:
                size += f.stat().st_size if f.is_file() and f.name != "warehouse.duckdb" else 0
            except OSError:
                continue  # a file renamed or removed while it was summed
        self.sizes.append((time.monotonic(), size))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _missing(warehouse: Path, want: dict[str, dict[int, dict[str, str]]]) -> int | None:
    """Minutes of `want` the warehouse's candles view lacks (None while a load holds it)."""
    if not warehouse.exists():
        return sum(len(v) for v in want.values())
    try:
        db = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        held = {
            (e, m) for e, m in db.execute("SELECT exchange, epoch(minute_utc)::BIGINT // 60 FROM candles").fetchall()
        }
    except duckdb.Error:
        return None
    finally:
        db.close()
    return sum(1 for e, rows in want.items() for m in rows if (e, m) not in held)


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--minutes", type=float, default=20.0, help="minutes of collecting between the two starts")
    parser.add_argument("--days", type=int, default=7, help="the window healing keeps whole")
    parser.add_argument("--down", type=float, default=180.0, help="seconds the machine stays down at the reboot")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.days, args.down = 0.25, 1, 5.0
    state = Path(tempfile.mkdtemp(prefix="coinstream-collect-")) / "state"
    now = datetime.now(UTC)
    last = epoch_minute(now) - 1
    first = last - args.days * 1440 - 30
    upbit = Exchange(first=first, last=last, quiet={last - 200, last - 500})
    coinone = Exchange(first=first, last=last, per_minute=COINONE_PER_MINUTE)
    ticking = threading.Event()

    def tick() -> None:
        while not ticking.wait(1.0):
            upbit.last = coinone.last = epoch_minute(datetime.now(UTC)) - 1

    threading.Thread(target=tick, daemon=True).start()
    log = state.parent / "run.log"
    with ExitStack() as stack:
        stack.enter_context(exchanges(upbit, coinone))
        env = {
            **os.environ,
            **stack_env(state),
            "COINSTREAM_UPBIT_URL": upbit.url,
            "COINSTREAM_COINONE_URL": coinone.url,
            "COINSTREAM_DELIVERY_WINDOW_SECONDS": "5",
        }
        command = [
            sys.executable, "-m", "operate", "run", "--source", "upbit", "--source", "coinone",
            "--history", f"{args.days}d", "--produce-every", "5s", "--load-every", "5s", "--heal-every", "30s",
            "--compact-every", "5m",
        ]  # fmt: skip

        def start() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def complete() -> bool:
            end = epoch_minute(datetime.now(UTC) - timedelta(seconds=30))  # minutes closed 30 s ago and more
            begin = end - args.days * 1440 + 20  # the window's oldest minutes may have slid out while it ran
            want = {
                "upbit": expected_rows(upbit, begin, end, "KRW-BTC"),
                "coinone": expected_rows(coinone, begin, end, "KRW-BTC"),
            }
            return _missing(state / "warehouse.duckdb", want) == 0

        def requests() -> int:
            return upbit.requests + coinone.requests

        proc = start()
        sampler = stack.enter_context(Sampler(state))
        try:
            asked = (upbit.requests, coinone.requests)
            cold = wait("the cold start to hold every minute", complete, timeout=1800, every=1.0)
            cold_floor = max(
                imposed(upbit.requests - asked[0], RATE),
                imposed(coinone.requests - asked[1], COINONE_PER_MINUTE, 60.0),
            )
            print(f"cold start: every minute of {args.days} days in the warehouse after {cold:.1f} s")
            sampler.sample()
            cold_peak, sampler.peak = sampler.peak, dict.fromkeys(KINDS, 0)  # the steady run's peaks apart
            sizes_from = len(sampler.sizes)
            cpu_before = sum(sampler.cpu.values())
            started = time.monotonic()
            time.sleep(args.minutes * 60)
            sampler.sample()
            cpu_per_minute = (sum(sampler.cpu.values()) - cpu_before) / ((time.monotonic() - started) / 60)
            steady = [size for _, size in sampler.sizes[sizes_from:]] or [0]
            # a reboot: the supervisor, kinesis-mock and moto gone at once, with no goodbye
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for name in ("kinesis-mock", "moto"):
                try:
                    os.killpg(int((state / "run" / f"{name}.pid").read_text()), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            time.sleep(args.down)  # minutes nobody collected: the next start heals them
            asked = (upbit.requests, coinone.requests)
            proc = start()
            after = wait("the start after a reboot to hold every minute", complete, timeout=1800, every=1.0)
            print(f"after a reboot: every minute again after {after:.1f} s ({requests()} requests in all)")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            subprocess.run([*command[:3], "local", "down"], env=env, capture_output=True, check=False)
            ticking.set()
    mib = 1024 * 1024
    growth = (steady[-1] - steady[0]) / max(args.minutes / 60, 1e-9) / mib
    figures = [
        Figure(
            "collect.cold_start",
            f"a cold start until every minute of {args.days} days is in the warehouse",
            cold,
            "s",
            cold_floor,
            "the rate limits' own time for its requests",
            cold / cold_floor if cold_floor else None,
            "the rate limits' own time",
        ),
        Figure(
            "collect.after_reboot",
            "a start after a reboot (supervisor and stand-ins killed) until no minute is missing",
            after,
            "s",
            cold,
            "the cold start of the same run",
            after / cold,
            "the cold start's time",
        ),
        *(
            Figure(
                f"collect.peak_rss_{kind.lower().replace(' ', '_').replace('-', '_')}",
                f"peak RSS while collecting, {kind}",
                peak / mib,
                "MiB",
                cold_peak[kind] / mib,
                f"the cold start's peak ({args.days} days healed)",
            )
            for kind, peak in sampler.peak.items()
        ),
        Figure("collect.state_mib", "the state folder (the warehouse file aside) at the end", steady[-1] / mib, "MiB"),
        Figure(
            "collect.state_growth",
            "the state folder's growth (the warehouse file aside) while collecting",
            growth,
            "MiB/hour",
        ),
        Figure("collect.cpu", "CPU of every process while collecting", cpu_per_minute, "CPU s/minute"),
    ]
    publish("collect", f"python -m benchmarks.collect --minutes {args.minutes:g} --days {args.days}", figures, args)
    print(f"(logs under {state})")


if __name__ == "__main__":
    main()
