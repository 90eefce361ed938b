"""`coinstream demo` from a fresh state folder, as a new user's first command (after `make setup`).

    python -m benchmarks.demo [--runs 3] [--no-baseline] [--smoke] [--results FILE]

Each run starts the demo in a new state folder on free ports (its own local stack, stopped after), and once more
in the same folder (it then adds only the minutes since the first). The baseline, measured in the same run, is the
fresh demo with `COINSTREAM_KCL_FAST_START=false` (KCL's own start-up: no seeded leases). Prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results import Figure, options, publish
from benchmarks.stack import command_env
from coinstream.config import Settings
from coinstream.processes import free_port


def one_demo(state: Path, settings: Settings, **extra: str) -> float:
    """Seconds of one `coinstream demo` in `state` (the stack left up, as the demo leaves it)."""
    env = command_env(settings, **extra)
    start = time.perf_counter()
    with (state / "demo-runs.log").open("ab") as log:
        done = subprocess.run([sys.executable, "-m", "operate", "demo"], env=env, stdout=log, stderr=log, check=False)
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"coinstream demo exited {done.returncode}; see {state / 'demo-runs.log'}")
    return took


def down(settings: Settings) -> None:
    """`coinstream local down` for that state folder."""
    subprocess.run(
        [sys.executable, "-m", "operate", "local", "down"],
        env=command_env(settings),
        capture_output=True,
        check=False,
    )


def fresh(again: bool = True, **extra: str) -> tuple[float, float | None, Path]:
    """A fresh demo, then (with `again`) the same demo again in its folder: (seconds, seconds or None, folder)."""
    state = Path(tempfile.mkdtemp(prefix="coinstream-bench-demo-"))
    settings = Settings(state_dir=state, kinesis_port=free_port(), kinesis_tls_port=free_port(), moto_port=free_port())
    try:
        first = one_demo(state, settings, **extra)
        second = one_demo(state, settings) if again and not extra else None
    finally:
        down(settings)
    return first, second, state


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip KCL's own start-up (about a minute a run)")
    args = parser.parse_args()
    if args.smoke:  # one fresh demo: the demo a new user runs first
        args.runs, args.no_baseline = 1, True
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    firsts, agains, baselines = [], [], []
    for run in range(args.runs):
        first, again, state = fresh(again=not args.smoke)
        firsts.append(first)
        if again is not None:
            agains.append(again)
        line = f"run {run + 1}: fresh {first:.1f} s" + (f", again in the same folder {again:.1f} s" if again else "")
        if not args.no_baseline:
            baselines.append(fresh(kcl_fast_start="false")[0])
            line += f"; KCL's own start-up {baselines[-1]:.1f} s"
        print(f"{line} (logs in {state})")
    first, base = statistics.median(firsts), statistics.median(baselines) if baselines else None
    publish(
        "demo",
        f"python -m benchmarks.demo --runs {args.runs}" + (" --no-baseline" if args.no_baseline else ""),
        [
            Figure(
                "demo.fresh",
                "`coinstream demo` in a fresh state folder, stack start to summary",
                first,
                "s",
                baseline=base,
                baseline_what="KCL's own start-up (COINSTREAM_KCL_FAST_START=false)",
                ratio=base / first if base else None,
                ratio_what="faster",
            ),
        ]
        + (
            [Figure("demo.again", "the same demo again in the same folder", statistics.median(agains), "s")]
            if agains
            else []
        ),
        args,
    )


if __name__ == "__main__":
    main()
