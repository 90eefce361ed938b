"""A private local stack for one test module: free ports, its own state folder, stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coinstream.config import Pipeline, Settings
from coinstream.processes import free_port
from operate import local_stack
from tests.recordings import CLASSIC, recording


def stack_env(state_dir: Path) -> dict[str, str]:
    """COINSTREAM_* variables for a stack on free ports with its state under `state_dir`."""
    return {
        "COINSTREAM_STATE_DIR": str(state_dir),
        # `produce` without --source replays this recording: Coinone candles and X posts
        "COINSTREAM_OFFLINE_DIR": str(recording(state_dir.parent / "recording", *CLASSIC)),
        "COINSTREAM_KINESIS_PORT": str(free_port()),
        "COINSTREAM_KINESIS_TLS_PORT": str(free_port()),
        "COINSTREAM_MOTO_PORT": str(free_port()),
        # long-running workers in tests hold rows 1 s, not 60 (tests wait for checkpoints)
        "COINSTREAM_DELIVERY_WINDOW_SECONDS": "1",
    }


@contextmanager
def running_stack(state_dir: Path) -> Iterator[tuple[Settings, Pipeline, dict[str, str]]]:
    """Start a stack, yield (settings, pipeline, env for `coinstream` subprocesses), always stop it.

    After the stop, every process the stack started must be gone.
    """
    env = stack_env(state_dir)
    settings = Settings(**{k.removeprefix("COINSTREAM_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    pipeline = Pipeline.load(settings.pipeline_file)
    local_stack.up(settings, pipeline)
    pids = [p.pid() for p in (local_stack.kinesis_proc(settings), local_stack.moto_proc(settings))]
    assert all(pids), "the stack did not record its pids"
    try:
        yield settings, pipeline, {**os.environ, **env}
    finally:
        local_stack.down(settings)
        alive = [pid for pid in pids if pid and Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        assert alive == [], f"processes left after `local down`: {alive}"


def _zombie(pid: int) -> bool:
    try:
        return ") Z" in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def coinstream(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the `coinstream` command as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "operate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (to prove nothing is left behind)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and ") Z" not in stat:
            out.append(cmdline)
    return out
