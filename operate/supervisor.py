"""`coinstream run`: the whole study on one machine, in one foreground process.

It starts the local stack (kinesis-mock durable on disk) if it is not up, runs every chosen producer each minute as
cron would, the consumer applications as workers, loads what Firehose delivered on an interval, heals the
warehouse's gaps from the APIs' history on start and then periodically, and bounds what the stand-ins hold: loaded
objects leave the bucket, and once every application has read the stream and the warehouse has loaded it, the
stream is emptied (kinesis-mock never trims). A stop (Ctrl-C, SIGTERM, `coinstream local down`) lets the producers
finish their run and the workers checkpoint; a SIGKILL leaves no worker behind (Linux tells them), and the next
start heals what was lost.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from coinstream import timeutil
from coinstream.config import Pipeline, Settings
from coinstream.errors import CoinstreamError, FatalError
from coinstream.processes import Managed
from coinstream.records import Kind

logger = logging.getLogger(__name__)

#: The sources `run` collects from unless told otherwise: no account needed (X joins when its token is set).
CANDLE_SOURCES = ("upbit", "coinone", "binance", "coinbase", "okx", "bybit", "kraken", "bitstamp")
POST_SOURCES = ("x", "mastodon", "bluesky")


def choose_sources(settings: Settings, names: list[str] | None) -> list[str]:
    """The sources to run: those named (each checked), else every free one and X when its token is set."""
    known = CANDLE_SOURCES + POST_SOURCES
    for name in names or []:
        if name not in known:
            raise FatalError(f"--source {name!r} is not a live source: use one of {', '.join(known)}")
    has_token = bool(settings.x_bearer_token or settings.x_bearer_token_file or settings.x_bearer_token_parameter)
    if names and "x" in names and not has_token:
        raise FatalError(
            "--source x needs X's bearer token: set COINSTREAM_X_BEARER_TOKEN (or _FILE, _PARAMETER), "
            "and a budget with COINSTREAM_X_DOLLARS_PER_DAY and _PER_MONTH"
        )
    if names:
        return list(dict.fromkeys(names))
    return [s for s in known if s != "x" or has_token]


@dataclass(frozen=True)
class Options:
    """How `run` paces its parts."""

    sources: list[str]
    #: the window healing keeps whole (each API as far back as it serves)
    history: timedelta = timedelta(days=7)
    #: seconds between producer runs (cron's minute)
    produce_every: float = 60.0
    load_every: float = 60.0
    heal_every: float = 3600.0
    #: seconds between emptying the stream once everything on it is read and loaded (0: never)
    compact_every: float = 6 * 3600.0
    #: how long a stop or a compaction waits for the applications to read what is on the stream
    catch_up_seconds: float = 180.0
    dashboard_port: int | None = None


@dataclass
class Tally:
    """What the parts did since the last status line."""

    records: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    healed_minutes: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self, lag: dict[str, int], open_reasons: int) -> str:
        """One line: records per source, rows loaded, each application's lag, what healing did."""
        fetched = ", ".join(f"{k} {v}" for k, v in sorted(self.records.items())) or "none"
        lags = ", ".join(f"{app} {n}" for app, n in lag.items()) or "-"
        said = f"{timeutil.now():%H:%M} UTC: records {fetched}; loaded {self.rows} rows; lag {lags}"
        if self.healed_minutes:
            said += f"; healed {self.healed_minutes} minutes"
        if open_reasons:
            said += f"; {open_reasons} series cannot be read back (`coinstream coverage` says why)"
        if self.problems:
            said += "; " + "; ".join(dict.fromkeys(self.problems))
        return said


#: A worker's log is set aside (one older copy kept) when it starts past this size: bounded over weeks.
LOG_BYTES = 20 * 1024 * 1024


def rotate(path: Path, limit: int = LOG_BYTES) -> None:
    """Move a log past `limit` bytes to `<name>.1` (replacing the older copy)."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


class Supervisor:
    """Every part of the pipeline on the local stack, started, paced and stopped in order."""

    def __init__(self, settings: Settings, pipeline: Pipeline, options: Options, say: Callable[[str], None]) -> None:
        self.settings, self.pipeline, self.options, self.say = settings, pipeline, options, say
        self.stopping = threading.Event()
        self.heal_stop = threading.Event()
        self.warehouse_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="produce")
        self.running: dict[str, Future[None]] = {}
        self.workers: dict[str, Any] = {}
        self.tally = Tally()
        self.tally_lock = threading.Lock()
        self.heal_thread: threading.Thread | None = None
        self.reasons: dict[str, str] = {}
        self.me = Managed("coinstream-run", settings.state_dir)
        self.dashboard: Any = None
        self.started = False

    # -- start and stop -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """The stack (durable), leftovers of an earlier run stopped, the workers, the dashboard."""
        from operate import local_stack

        if self.me.pid() is not None:
            raise FatalError(
                f"`coinstream run` is already running (pid {self.me.pid()}) on this state folder; stop it first"
            )
        if local_stack.kinesis_proc(self.settings).pid() and not local_stack.durable(self.settings):
            self.say(
                "warning: the local stack was started by `coinstream local up`, which keeps the stream in memory "
                "only; `coinstream local down`, then `coinstream run`, keeps it on disk"
            )
        if local_stack.kinesis_proc(self.settings).pid() is None:
            from operate.healing import forget_reads

            forget_reads(self.settings)
        local_stack.up(self.settings, self.pipeline, durable=True)
        self.me.register(os.getpid())  # `coinstream local down` stops this run first, which stops its parts in order
        self.started = True
        self._stop_leftovers()
        for app in self.pipeline.apps:
            self._start_worker(app)
        if self.options.dashboard_port is not None:
            self._start_dashboard(self.options.dashboard_port)

    def _stop_leftovers(self) -> None:
        """Workers an earlier run left (killed with it, they are stopping): wait for them, they checkpoint."""
        for file in sorted((self.settings.state_dir / "run").glob("kcl-*.pid")):
            Managed(file.stem, self.settings.state_dir).stop(timeout=30)

    def _start_worker(self, app: str) -> None:
        from consumer.runner import supervised_worker

        logs = self.settings.state_dir / "logs"
        log_file = logs / f"kcl-{app}.log"
        for path in (log_file, logs / f"processor-{app}.log"):
            rotate(path)
        self.workers[app] = supervised_worker(self.settings, self.pipeline, app, log_file)

    def _stop_workers(self) -> None:
        for app, worker in list(self.workers.items()):
            worker.stop(timeout=60)
            del self.workers[app]

    def _start_dashboard(self, port: int) -> None:
        """`coinstream dashboard` in a process of its own: its readers and the loader never share a DuckDB
        process (a file open read-only here could not be written here)."""
        from coinstream.aws import child_env
        from coinstream.processes import ensure_port_free
        from warehouse.dashboard.server import chart_library

        chart_library()  # missing: one line naming the fix, before anything starts
        ensure_port_free(port, "dashboard", "--dashboard", self.settings.host)
        self.dashboard = Managed(f"dashboard-{port}", self.settings.state_dir)
        self.dashboard.start(
            [sys.executable, "-m", "operate", "dashboard", "--port", str(port)], child_env(self.settings)
        )
        self.say(f"dashboard on http://{self.settings.host}:{port}/ (log: {self.dashboard.log_file})")

    def stop(self) -> None:
        """In order: no new runs, producers finish theirs, healing stops after its page, the workers deliver,
        checkpoint and exit, a last load; the stack keeps running (`coinstream local down` stops it)."""
        self.stopping.set()
        self.heal_stop.set()
        if not self.started:
            return  # the stack did not start (or another run holds this state folder): nothing to stop
        self.pool.shutdown(wait=True)
        if self.heal_thread is not None:
            self.heal_thread.join()
        self._stop_workers()
        try:
            self._load()
        except CoinstreamError as exc:
            self.say(f"the last load failed: {exc}")
        if self.dashboard is not None:
            self.dashboard.stop()
        self.me.pid_file.unlink(missing_ok=True)

    # -- the loop -----------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until SIGINT/SIGTERM: each part when it is due, a status line a minute."""

        def on_signal(signum: int, _frame: object) -> None:
            if not self.stopping.is_set():
                self.say(f"stopping (signal {signum}): producers finish their run, workers checkpoint")
            self.stopping.set()
            self.heal_stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        now = time.monotonic()
        due = {"produce": now, "load": now + self.options.load_every, "heal": now, "status": now + 60.0}
        due["compact"] = now + self.options.compact_every if self.options.compact_every else float("inf")
        while not self.stopping.is_set():
            now = time.monotonic()
            self._watch()
            if now >= due["produce"]:
                self._produce()
                due["produce"] = now + self.options.produce_every
            if now >= due["load"]:
                self._guarded("load", self._load)
                due["load"] = now + self.options.load_every
            if now >= due["heal"] and (self.heal_thread is None or not self.heal_thread.is_alive()):
                self._heal()
                due["heal"] = now + self.options.heal_every
            if now >= due["compact"]:
                self._guarded("compaction", self._compact)
                due["compact"] = now + self.options.compact_every
            if now >= due["status"]:
                self._status()
                due["status"] = now + 60.0
            self.stopping.wait(0.5)

    def _guarded(self, what: str, part: Callable[[], None]) -> None:
        """A part that failed says so in the status line and is tried again when next due."""
        try:
            part()
        except CoinstreamError as exc:
            logger.warning("%s: %s", what, exc)
            with self.tally_lock:
                self.tally.problems.append(f"{what}: {exc}")

    def _watch(self) -> None:
        """A stand-in or a worker that stopped is started again (the stack first, then its workers)."""
        from operate import local_stack

        if not (local_stack.kinesis_proc(self.settings).pid() and local_stack.moto_proc(self.settings).pid()):
            self.say("the local stack stopped; starting it again (the stream is read back from disk)")
            self._stop_workers()
            if local_stack.kinesis_proc(self.settings).pid() is None:
                from operate.healing import forget_reads

                forget_reads(self.settings)
            local_stack.up(self.settings, self.pipeline, durable=True)
        for app in self.pipeline.apps:
            worker = self.workers.get(app)
            if worker is None or not worker.alive():
                if worker is not None:
                    self.say(f"the {app} worker exited (code {worker.proc.returncode}); starting it again")
                    worker.stop(timeout=5)
                self._start_worker(app)

    # -- producers ----------------------------------------------------------------------------------------------

    def _produce(self) -> None:
        """Each source's run, as cron starts it each minute; a source whose last run still runs is skipped."""
        for source in self.options.sources:
            if source in self.running and not self.running[source].done():
                continue
            self.running[source] = self.pool.submit(self._produce_one, source)

    def _produce_one(self, source: str) -> None:
        from producer.run import Code, produce

        kind = Kind.CANDLE if source in CANDLE_SOURCES else Kind.POST
        markets = self.settings.markets(source) if kind is Kind.CANDLE else ["KRW-BTC"]
        for market in markets:
            if self.stopping.is_set():
                return
            try:
                done = produce(kind, source, self.settings, self.pipeline, market=market)
            except CoinstreamError as exc:
                with self.tally_lock:
                    self.tally.problems.append(f"{source}: {exc}")
                continue
            except Exception as exc:  # one source's surprise never stops the others
                logger.exception("%s %s", source, market)
                with self.tally_lock:
                    self.tally.problems.append(f"{source}: {type(exc).__name__}: {exc}"[:200])
                continue
            with self.tally_lock:
                self.tally.records[source] = self.tally.records.get(source, 0) + done.sent + done.drained
                if done.code is Code.PARTIAL:
                    self.tally.problems.append(f"{source}: {done.message}")

    # -- load, heal, compact ------------------------------------------------------------------------------------

    def _load(self) -> None:
        from operate import local_warehouse

        with self.warehouse_lock:
            report, _ = local_warehouse.copy_delivered(self.settings, self.pipeline, prune=True)
        with self.tally_lock:
            self.tally.rows += sum(report.rows.values())
            if report.dead_letters:
                where = local_warehouse.dead_letter_dir(self.settings)
                self.tally.problems.append(f"{report.dead_letters} dead letters kept in {where}")

    def _heal(self) -> None:
        self.heal_stop.clear()
        self.heal_thread = threading.Thread(target=self._heal_once, name="heal", daemon=True)
        self.heal_thread.start()

    def _heal_once(self) -> None:
        from operate import healing

        try:
            with self.warehouse_lock:  # read, then closed: the loader writes the same file from this process
                found = healing.covered(self.settings, self.pipeline)
            report = healing.heal(
                self.settings, self.pipeline, found, self.options.sources, self.options.history, stop=self.heal_stop
            )
        except CoinstreamError as exc:
            with self.tally_lock:
                self.tally.problems.append(f"heal: {exc}")
            return
        except Exception as exc:
            logger.exception("heal")
            with self.tally_lock:
                self.tally.problems.append(f"heal: {type(exc).__name__}: {exc}"[:200])
            return
        fresh = {name: why for name, why in report.reasons.items() if self.reasons.get(name) != why}
        self.reasons = report.reasons
        with self.tally_lock:
            self.tally.healed_minutes += report.minutes
        if report.minutes:
            self.say(
                f"healing read {report.minutes:,} minutes of {report.series} series ({report.records:,} records, "
                f"{report.requests:,} requests)"
            )
        for name, why in fresh.items():  # said once, then counted in the status line
            self.say(f"healing cannot read {name}: {why}")

    def lag(self) -> dict[str, int]:
        """Records each application has yet to checkpoint."""
        from consumer.runner import app_progress

        out = {}
        for app in self.pipeline.apps:
            try:
                out[app] = sum(s.behind for s in app_progress(self.settings, self.pipeline, app))
            except CoinstreamError:
                continue
        return out

    def _compact(self) -> None:
        """Empty the stream once every application has read it and the warehouse loaded it: producers and healing
        pause, the workers stop (they checkpoint) and their KCL tables go with the old shards."""
        from coinstream import live_table
        from coinstream.aws import client
        from consumer.daemon import application_name
        from consumer.replay import delete_tables
        from operate import local_stack

        for future in list(self.running.values()):
            future.result()
        self.heal_stop.set()
        if self.heal_thread is not None:
            self.heal_thread.join()
        deadline = time.monotonic() + self.options.catch_up_seconds
        while any(self.lag().values()):
            if time.monotonic() > deadline or self.stopping.is_set():
                self.say(f"compaction put off: the applications are still behind ({self.lag()})")
                return
            self.stopping.wait(2.0)
        self._stop_workers()
        try:
            self._load()
            dynamodb = client("dynamodb", self.settings)
            for app in self.pipeline.apps:
                delete_tables(dynamodb, application_name(app))
            local_stack.renew_stream(self.settings, self.pipeline)
            live_table.expire(dynamodb, self.pipeline.live_table, time.time())
        finally:
            for app in self.pipeline.apps:
                self._start_worker(app)
        self.say("the stream is emptied: every record on it was read by every application and loaded")

    def _status(self) -> None:
        with self.tally_lock:
            tally, self.tally = self.tally, Tally()
        self.say(tally.line(self.lag(), len(self.reasons)))
