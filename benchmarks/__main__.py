"""Every benchmark at its documented size, one after another, into one results file (`make bench`).

    python -m benchmarks [--smoke] [--results benchmarks/results.json] [--only NAME ...] [--skip NAME ...]

The docs' performance table and the README's figures are rendered from that file (`benchmarks/report.py`), so
they can only quote what a benchmark printed. `--smoke` runs each at its smallest size, once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results import RESULTS

#: Each benchmark and the arguments of its documented size (the figures in the docs come from these).
SUITE: dict[str, list[str]] = {
    "processor": ["--records", "100000", "--runs", "7"],
    "analysis_calibration": ["--seeds", "100", "--days", "2"],
    "judge": ["--days", "7", "--runs", "3"],
    "dashboard_queries": ["--runs", "5"],
    "backfill": ["--runs", "5"],
    "live_table": ["--posts", "3000"],
    "seed_baseline": ["--records", "1000", "--runs", "3"],
    "end_to_end": ["--records", "5000", "--runs", "3"],
    "kcl_start": ["--runs", "3"],
    "steady_state": ["--minutes", "60", "--baseline-minutes", "3"],
    "demo": ["--runs", "3"],
    "collect": ["--minutes", "10", "--days", "7"],
    "ci_run": ["--runs", "3", "--uncached-bases"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each benchmark at its smallest size, once")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", choices=sorted(SUITE), default=[])
    parser.add_argument("--skip", nargs="*", choices=sorted(SUITE), default=[])
    args = parser.parse_args()
    failed = []
    for name, sizes in SUITE.items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        command = [sys.executable, "-m", f"benchmarks.{name}", *(["--smoke"] if args.smoke else sizes)]
        print(f"== {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        if subprocess.run([*command, "--results", str(args.results)], check=False).returncode:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        raise SystemExit(f"benchmarks failed: {', '.join(failed)}")
    print(f"every figure is in {args.results}")


if __name__ == "__main__":
    main()
