"""`.ci/run` in fresh clones of the checkout's HEAD, as CI runs it (`CI=true`, the images included).

    python -m benchmarks.ci_run [--runs 3] [--uncached-bases] [--smoke] [--results FILE]

Each run clones HEAD into a new temporary folder and runs `CI=true bash .ci/run` there, timing the whole command
and reading pytest's closing line. With `--uncached-bases` the image bases (`make images` builds them from
Debian's packages) are removed before each run, as on a new machine. The baseline is the limit CI must keep:
ten minutes. `--smoke` clones once and dry-runs the targets (`make -n test`), proving the mechanics only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results import Figure, options, publish
from coinstream import REPO_ROOT

LIMIT_MINUTES = 10.0
BASES = ("localhost/coinstream-base:bookworm", "localhost/coinstream-rust-base:bookworm")
_PASSED = re.compile(r"=+ (\d+) passed(?:, (\d+) skipped)?.* in ([\d.]+)s")


def clone() -> Path:
    """A fresh clone of HEAD in a new temporary folder."""
    where = Path(tempfile.mkdtemp(prefix="coinstream-ci-")) / "coinstream"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(where)], check=True)
    return where


def one_run(uncached: bool, smoke: bool) -> tuple[float, str]:
    """Minutes of one `.ci/run` in a fresh clone, and pytest's closing figures (or the dry run's note)."""
    if uncached and shutil.which("podman"):
        subprocess.run(["podman", "rmi", "--force", *BASES], capture_output=True, check=False)
    start = time.perf_counter()
    where = clone()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "COINSTREAM_"))}
    command = ["make", "-n", "test"] if smoke else ["bash", ".ci/run"]
    log = where.parent / "ci.log"
    with log.open("wb") as out:
        done = subprocess.run(command, cwd=where, env={**env, "CI": "true"}, stdout=out, stderr=out, check=False)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed in {where} (exit {done.returncode}); see {log}")
    found = _PASSED.findall(log.read_text(errors="replace"))
    note = f"{found[-1][0]} passed, pytest {float(found[-1][2]) / 60:.1f} min" if found else "dry run"
    shutil.rmtree(where, ignore_errors=True)  # the clone; its log stays beside it
    return minutes, f"{note}; log {log}"


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--uncached-bases", action="store_true", help="remove the image bases before each run")
    args = parser.parse_args()
    if args.smoke:
        args.runs = 1
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    minutes = []
    for run in range(args.runs):
        took, note = one_run(args.uncached_bases, args.smoke)
        minutes.append(took)
        print(f"run {run + 1}: {took:.1f} minutes ({note})")
    median = statistics.median(minutes)
    bases = "uncached image bases" if args.uncached_bases else "image bases cached"
    publish(
        "ci_run",
        f"python -m benchmarks.ci_run --runs {args.runs}" + (" --uncached-bases" if args.uncached_bases else ""),
        [
            Figure(
                "ci_run.fresh_clone",
                f"`CI=true bash .ci/run` in a fresh clone, installs and images included ({bases})",
                median,
                "minutes",
                baseline=LIMIT_MINUTES,
                baseline_what="the limit CI keeps",
                ratio=median / LIMIT_MINUTES,
                ratio_what="of the limit",
            )
        ],
        args,
    )


if __name__ == "__main__":
    main()
