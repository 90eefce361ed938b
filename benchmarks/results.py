"""One way for every benchmark to report: the figure lines it prints, the results file `make bench` writes, and the
tables the docs render from that file (so a page can only quote what a benchmark printed).

Each benchmark takes `--smoke` (its smallest sizes, one run: what CI runs to prove it still works) and `--results
FILE` (merge its figures into FILE, with when, at which commit and on what machine they were measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coinstream import REPO_ROOT

#: The results file `make bench` writes and the docs read.
RESULTS = REPO_ROOT / "benchmarks" / "results.json"


@dataclass(frozen=True)
class Figure:
    """One measured figure, with the baseline measured in the same run and how the two compare."""

    key: str  # "<benchmark>.<figure>", unique in the results file
    what: str  # what was measured, as the docs' table names it
    value: float
    unit: str
    baseline: float | None = None  # the same measure of the baseline, same run, same unit
    baseline_what: str = ""
    ratio: float | None = None  # how many times the figure beats (or costs) the baseline
    ratio_what: str = ""  # e.g. "faster", "of ideal", "the rate limits' own time"

    def line(self) -> str:
        """The line a benchmark prints for this figure (CI's smoke test reads it)."""
        text = f"figure {self.key} = {number(self.value)} {self.unit}"
        if self.baseline is not None:
            text += f"; baseline ({self.baseline_what}) {number(self.baseline)} {self.unit}"
        if self.ratio is not None:
            text += f"; {number(self.ratio)}x {self.ratio_what}".rstrip()
        return text


def number(value: float) -> str:
    """A figure as the docs print it: three significant digits, thousands separated."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{digits}f}"


def options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The two options every benchmark takes."""
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes, one run: proves it still works")
    parser.add_argument("--results", type=Path, help="merge the figures into this results file (make bench)")
    return parser


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "system": platform.system().lower(),
    }


def commit() -> str:
    """The checkout's commit, with `+` when its tracked files have changes ("" outside a git checkout)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO_ROOT, check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+" if dirty else "")


def publish(benchmark: str, command: str, figures: list[Figure], args: argparse.Namespace) -> None:
    """Print every figure's line and, with `--results`, merge them into the results file under `benchmark`."""
    for figure in figures:
        if not figure.key.startswith(benchmark + "."):
            raise ValueError(f"figure {figure.key} does not belong to benchmark {benchmark}")
        print(figure.line())
    sys.stdout.flush()
    if args.results is None:
        return
    if args.smoke:
        command += " --smoke"
    path: Path = args.results
    data = load(path) if path.exists() else {"benchmarks": {}}
    data["benchmarks"][benchmark] = {
        "command": command,
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": commit(),
        "machine": machine(),
        "figures": [asdict(f) for f in figures],
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load(path: Path = RESULTS) -> dict[str, Any]:
    """The results file, as written by `publish`."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def figures(data: dict[str, Any]) -> dict[str, tuple[Figure, dict[str, Any]]]:
    """Every figure in the results, by key, with its benchmark's entry (command, date, commit, machine)."""
    out: dict[str, tuple[Figure, dict[str, Any]]] = {}
    for entry in data["benchmarks"].values():
        for raw in entry["figures"]:
            out[raw["key"]] = (Figure(**raw), entry)
    return out
