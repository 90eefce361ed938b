"""Starts KCL workers: in the foreground as a service, or until the app has caught up (demo, tests)."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from coinstream.aws import child_env, client
from coinstream.config import Pipeline, Settings
from coinstream.errors import FatalError
from coinstream.processes import stop_group
from consumer.checkpoints import ShardProgress, progress
from consumer.daemon import application_name, command

logger = logging.getLogger(__name__)


def run_forever(settings: Settings, pipeline: Pipeline, app: str, worker_id: str | None = None) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT; returns the daemon's exit code."""
    argv, _ = command(settings, pipeline, app, worker_id)
    proc = subprocess.Popen(argv, env=child_env(settings), stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signal.SIGTERM)  # the daemon's shutdown hook ends leases and checkpoints

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return proc.wait()


def start_worker(
    settings: Settings, pipeline: Pipeline, app: str, log_file: Path, worker_id: str | None = None
) -> subprocess.Popen[bytes]:
    """Start one worker in the background, logging to `log_file`."""
    argv, _ = command(settings, pipeline, app, worker_id)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            argv,
            env=child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


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
    log_file = settings.state_dir / "logs" / f"kcl-{app}.log"
    proc = start_worker(settings, pipeline, app, log_file)
    deadline = time.monotonic() + timeout
    try:
        while True:
            time.sleep(2)
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
        stop_group(proc.pid, timeout=30)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
