"""Starts KCL workers: in the foreground as a service, or until the app has caught up (demo, tests)."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coinstream.aws import child_env, client
from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.processes import Managed, stop_group
from consumer import leader_watchdog
from consumer.checkpoints import ShardProgress, progress, seed_leases
from consumer.daemon import application_name, command

logger = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _fast_start(settings: Settings) -> bool:
    return settings.target == "local" and settings.kcl_fast_start


@dataclass(frozen=True)
class Identity:
    """Who a starting worker is to KCL."""

    #: the daemon's workerIdentifier (None: KCL makes one up)
    worker_id: str | None
    #: whose a new application's seeded leases are (None: unowned, for KCL's leader to spread)
    owner: str | None = None
    #: the only worker's lock, handed to the daemon: held exactly as long as the worker lives
    lock: int | None = None


def name_worker(settings: Settings, app: str, worker_id: str | None) -> Identity:
    """Name a worker about to start.

    A worker started without a name is the application's only one (`consume`, `demo`). On the local stack it gets
    the same name every run, `<host>-<app>`, and a new application's leases are seeded as its own: KCL's first
    lease discovery finds leases owned by itself and starts on them at once, on the first run and on every later
    one (a new name would find the last run's leases owned by a worker that is gone, and wait for the leader to
    see them expire and reassign them: ~48 s more, benchmarks/kcl_start.py). A lock under the state folder, held
    by the daemon, keeps the name to one live worker. Named workers (`--worker-id`, several of one application)
    get unowned leases, which KCL's leader spreads."""
    if worker_id is not None or not _fast_start(settings):
        return Identity(worker_id)
    named = f"{socket.gethostname()}-{app}"
    path = settings.state_dir / "kcl" / f"{app}.only-worker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FatalError(
            f"another `coinstream consume --app {app}` without --worker-id is running on this stack; stop it, "
            "or give every worker of the application its own --worker-id"
        ) from None
    return Identity(named, named, fd)


def _fds(identity: Identity) -> tuple[int, ...]:
    return () if identity.lock is None else (identity.lock,)


def _release(identity: Identity) -> None:
    """Close this process's copy of the lock: once the daemon started with it, the daemon alone holds it."""
    if identity.lock is not None:
        os.close(identity.lock)


def _prepare(settings: Settings, pipeline: Pipeline, app: str, worker_id: str | None) -> tuple[list[str], Identity]:
    """The daemon's command line and the worker's identity, with a new application's leases seeded. Java and the
    jars are checked before anything is written to DynamoDB: one line if either is missing."""
    identity = name_worker(settings, app, worker_id)
    try:
        argv, _ = command(settings, pipeline, app, identity.worker_id)
        seed(settings, pipeline, app, identity.owner)
    except BaseException:
        _release(identity)
        raise
    return argv, identity


def seed(settings: Settings, pipeline: Pipeline, app: str, owner: str | None = None) -> None:
    """On the local stack (one host), give a new application its leases so KCL skips its start-up waits."""
    if _fast_start(settings):
        made = seed_leases(
            client("kinesis", settings),
            client("dynamodb", settings),
            pipeline.stream_name,
            application_name(app),
            owner,
        )
        if made:
            logger.info(
                "new application %s: seeded %d leases at TRIM_HORIZON%s",
                application_name(app),
                made,
                f", owned by worker {owner}" if owner else "",
            )


def run_forever(settings: Settings, pipeline: Pipeline, app: str, worker_id: str | None = None) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT, then stop it gracefully; 0 on a clean stop.

    On the signal the daemon's shutdown hook asks every record processor to finish its batch,
    deliver, and checkpoint (`shutdown_requested`) before it exits.
    """
    argv, identity = _prepare(settings, pipeline, app, worker_id)
    # Same process group as this command, and told to stop if this command dies: killing the
    # service (systemd, a supervisor, `kill -9 -PGID`) must never leave an orphaned daemon.
    proc = subprocess.Popen(
        argv,
        env=child_env(settings),
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
        pass_fds=_fds(identity),
    )
    _release(identity)
    me = Managed(worker_name(app, os.getpid()), settings.state_dir)
    me.register(os.getpid())  # `coinstream local down` stops this command, which stops its worker gracefully
    watchdog = leader_watchdog.LeaderWatchdog(client("dynamodb", settings), application_name(app)).start()
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not stopping:
            stopping.append(signum)
            logger.info("stopping the KCL worker gracefully (signal %d)", signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    processors: set[int] = set()
    while proc.poll() is None and not stopping:
        processors = children(proc.pid) or processors
        time.sleep(0.2)
    if stopping:
        _stop_worker(settings, app, identity, proc, processors)
    code = proc.wait()
    watchdog.stop()
    me.pid_file.unlink(missing_ok=True)
    return 0 if stopping else code


def stop_daemon(proc: subprocess.Popen[bytes], processors: set[int], timeout: float = 60.0) -> bool:
    """Stop a KCL daemon gracefully: SIGTERM to it alone, so its shutdown hook has every record processor
    deliver and checkpoint (`shutdown_requested`) and exit; then make sure it is gone. True when it was killed.

    Once every record processor has exited, nothing is left to save, yet KCL 3.1.3's Scheduler waits out
    failoverTimeMillis for shard consumers it no longer runs (Scheduler.shouldShutdown: "Lease failover
    time is reached, so forcing shutdown"): that wait is cut short.
    """
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if processors and not processors & children(proc.pid):
            if not _exited_within(proc, 1.0):
                logger.info("record processors are done; ending KCL's forced-shutdown wait")
                proc.kill()
                killed = True
            break
    stop_group(proc.pid, timeout=5)  # anything left in its process group
    return killed


def _stop_worker(
    settings: Settings,
    app: str,
    identity: Identity,
    proc: subprocess.Popen[bytes],
    processors: set[int],
    timeout: float = 60.0,
) -> None:
    """Stop the daemon gracefully; if it had to be killed, give up its leader lock as KCL's shutdown would have."""
    if stop_daemon(proc, processors, timeout):
        leader_watchdog.release(client("dynamodb", settings), application_name(app), identity.worker_id)
    Managed(worker_name(app, proc.pid), settings.state_dir).pid_file.unlink(missing_ok=True)


def children(pid: int) -> set[int]:
    """Pids of a process's children (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(x) for x in task.read_text().split())
        except OSError:
            continue
    return found


def _exited_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def start_worker(
    settings: Settings, pipeline: Pipeline, app: str, log_file: Path, worker_id: str | None = None
) -> subprocess.Popen[bytes]:
    """Start one worker in the background, logging to `log_file`."""
    return _start(settings, pipeline, app, log_file, worker_id)[0]


@dataclass
class Worker:
    """A worker a supervisor started: stopped with `stop()` (it checkpoints), and told to stop if the supervisor
    dies, however it dies."""

    settings: Settings
    app: str
    proc: subprocess.Popen[bytes]
    identity: Identity
    processors: set[int]

    def alive(self) -> bool:
        """The daemon still runs (its record processors noted for the stop)."""
        self.processors = children(self.proc.pid) or self.processors
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """Stop it gracefully: every record processor delivers and checkpoints, then it exits."""
        _stop_worker(self.settings, self.app, self.identity, self.proc, self.processors, timeout=timeout)


def supervised_worker(settings: Settings, pipeline: Pipeline, app: str, log_file: Path) -> Worker:
    """Start an application's only worker for a supervisor (`coinstream run`): in its own process group, so the
    terminal's Ctrl-C reaches the supervisor alone (it stops the worker in order), and sent SIGTERM by Linux when
    the supervisor dies (a SIGKILL'd supervisor leaves no worker behind: the daemon's shutdown hook checkpoints)."""
    proc, identity = _start(settings, pipeline, app, log_file, bound=True)
    return Worker(settings, app, proc, identity, set())


def _start(
    settings: Settings, pipeline: Pipeline, app: str, log_file: Path, worker_id: str | None = None, bound: bool = False
) -> tuple[subprocess.Popen[bytes], Identity]:
    argv, identity = _prepare(settings, pipeline, app, worker_id)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            env=child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=_fds(identity),
            preexec_fn=_die_with_parent if bound else None,
        )
    _release(identity)
    Managed(worker_name(app, proc.pid), settings.state_dir).register(proc.pid)  # `coinstream local down` stops it
    return proc, identity


def worker_name(app: str, pid: int) -> str:
    """A worker's name under the state folder's run/ (its pid file: `coinstream local down` stops every one)."""
    return f"kcl-{app}-{pid}"


def app_progress(settings: Settings, pipeline: Pipeline, app: str) -> list[ShardProgress]:
    """Where `app` stands on every shard of the stream."""
    return progress(
        client("kinesis", settings), client("dynamodb", settings), pipeline.stream_name, application_name(app)
    )


def run_until_caught_up(
    settings: Settings,
    pipeline: Pipeline,
    app: str,
    *,
    timeout: float = 300.0,
    on_progress: Callable[[list[ShardProgress]], None] | None = None,
) -> list[ShardProgress]:
    """Run a worker until every record in the stream is checkpointed, then stop it gracefully."""
    # "Caught up" is read from the checkpoints, which wait for the delivery window: a one-shot run keeps
    # it short (its stop delivers whatever is held anyway).
    settings = settings.model_copy(update={"delivery_window_seconds": min(settings.delivery_window_seconds, 1.0)})
    log_file = settings.state_dir / "logs" / f"kcl-{app}.log"
    proc, identity = _start(settings, pipeline, app, log_file)
    deadline = time.monotonic() + timeout
    processors: set[int] = set()

    def stopped(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # the worker is stopped below (it checkpoints), never left running

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        while True:
            time.sleep(2)
            processors = children(proc.pid) or processors
            if proc.poll() is not None:
                raise FatalError(f"the KCL daemon exited with code {proc.returncode}; see {log_file}")
            shards = app_progress(settings, pipeline, app)
            if on_progress:
                on_progress(shards)
            if all(s.behind == 0 for s in shards):
                return shards
            if time.monotonic() > deadline:
                behind = sum(s.behind for s in shards)
                raise FatalError(f"the consumer is still {behind} records behind after {timeout:.0f}s; see {log_file}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut the stop short
        _stop_worker(settings, app, identity, proc, processors, timeout=30)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        signal.signal(signal.SIGTERM, previous)
