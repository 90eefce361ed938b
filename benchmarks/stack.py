"""What the benchmarks that run the real daemon share: a private local stack, the env for `coinstream`, waiting."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coinstream.config import Pipeline, Settings
from coinstream.processes import free_port
from operate import local_stack


@contextmanager
def private_stack(prefix: str) -> Iterator[tuple[Settings, Pipeline, Path]]:
    """A local stack on free ports with its state in a new temporary folder: (settings, pipeline, logs folder)."""
    state = Path(tempfile.mkdtemp(prefix=prefix))
    settings = Settings(state_dir=state, kinesis_port=free_port(), kinesis_tls_port=free_port(), moto_port=free_port())
    pipeline = Pipeline.load(settings.pipeline_file)
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    local_stack.up(settings, pipeline)
    try:
        yield settings, pipeline, logs
    finally:
        local_stack.down(settings)


def command_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `python -m operate ...` subprocess on this stack (plus COINSTREAM_* `extra`)."""
    return {
        **os.environ,
        "COINSTREAM_STATE_DIR": str(settings.state_dir),
        "COINSTREAM_KINESIS_PORT": str(settings.kinesis_port),
        "COINSTREAM_KINESIS_TLS_PORT": str(settings.kinesis_tls_port),
        "COINSTREAM_MOTO_PORT": str(settings.moto_port),
        **{f"COINSTREAM_{name.upper()}": value for name, value in extra.items()},
    }


def wait(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> float:
    """Seconds until `check` holds, polled every `every` s; stops the benchmark naming `what` after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start
