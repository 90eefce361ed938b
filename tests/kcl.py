"""Helpers for tests that run KCL workers: wait for a condition, run a worker in the background, look at it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coinstream.config import Pipeline, Settings
from consumer.runner import app_progress, children


def wait_for(what: str, check: Callable[[], bool], timeout: float = 360, every: float = 2) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def caught_up(settings: Settings, pipeline: Pipeline, app: str) -> Callable[[], bool]:
    """True once `app` has checkpointed every record of the stream."""
    return lambda: all(s.behind == 0 for s in app_progress(settings, pipeline, app))


@contextmanager
def worker(env: dict[str, str], app: str, worker_id: str | None, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`coinstream consume` as a long-running service, in the background; always stopped afterwards. A worker
    with an id is one of several; one without is the application's only worker (it owns a new app's leases)."""
    logs.mkdir(parents=True, exist_ok=True)
    named = ["--worker-id", worker_id] if worker_id else []
    with (logs / f"{app}-{worker_id or 'only'}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "operate", "consume", "--app", app, *named],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def processor_pids(worker: subprocess.Popen[bytes]) -> list[int]:
    """Pids of the Python record processors a worker's daemon runs (one per leased shard): its descendants
    only, never another test's running side by side."""
    found, todo = [], [worker.pid]
    while todo:
        pid = todo.pop()
        todo.extend(children(pid))
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"consumer.app" in argv:
            found.append(pid)
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
