"""The KCL daemon's command line: the local stack's short-lived daemon gets a lighter JVM, AWS its defaults."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coinstream.config import Pipeline, Settings
from consumer.daemon import LOCAL_JVM_OPTIONS, command


@pytest.mark.parametrize("target", ["local", "aws"])
def test_only_the_local_daemon_runs_the_quick_jit_tier_and_one_gc_thread(target: str, tmp_path: Path) -> None:
    settings = Settings(target=target, state_dir=tmp_path)
    argv, properties = command(settings, Pipeline.load(settings.pipeline_file), "warehouse")
    assert properties.exists() and argv[-1] == str(properties)
    assert (set(LOCAL_JVM_OPTIONS) <= set(argv)) == (target == "local")
    # the options are ones this JVM takes (a mistyped -XX option stops the JVM before KCL starts)
    checked = subprocess.run([argv[0], *LOCAL_JVM_OPTIONS, "-version"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
