"""Every benchmark still runs: its smoke mode (smallest sizes, one run) ends 0, prints its figure lines with numbers
and writes them to a results file — a change that breaks a benchmark (a contract field its baseline lacks, a
renamed function) fails here, not in the next person's `make bench`."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITE
from benchmarks.results import figures, load
from coinstream import REPO_ROOT

#: Seconds each smoke run takes here, for the scheduler (tests/conftest.py starts the longest first).
TAKES = {
    "collect": 90,
    "demo": 35,
    "steady_state": 45,
    "kcl_start": 35,
    "end_to_end": 30,
    "backfill": 15,
    "seed_baseline": 15,
}
_FIGURE = re.compile(r"^figure ([a-z_]+\.[a-z0-9_]+) = (-?[\d,]+(?:\.\d+)?) ", re.MULTILINE)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.takes(TAKES.get(n, 5))) for n in SUITE])
def test_benchmark_smoke(name: str, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke", "--results", str(results)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, (
        f"benchmarks.{name} --smoke exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    printed = dict(_FIGURE.findall(done.stdout))
    assert printed, f"benchmarks.{name} printed no figure line:\n{done.stdout[-2000:]}"
    written = figures(load(results))
    assert set(written) == set(printed), "every printed figure is in the results file, and only those"
    for key, (figure, entry) in written.items():
        assert key.startswith(f"{name}.")
        # a share may be 0, a growth may be a shrink; anything else measured is more than nothing
        if key.endswith("_growth"):
            assert math.isfinite(figure.value), f"{key} is not a figure: {figure.value}"
        else:
            assert figure.value >= 0 if "%" in figure.unit else figure.value > 0, (
                f"{key} is not a figure: {figure.value}"
            )
        assert entry["command"].endswith("--smoke") and entry["machine"]["cores"] >= 1
    if name == "demo":
        check_the_docs_demo_table(done.stdout)


def demo_table(text: str) -> dict[str, list[int]]:
    """The rows of the first `coinstream demo` summary in `text`: table -> produced, consumed, delivered, loaded."""
    rows: dict[str, list[int]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 5 and cells[0].startswith("raw_") and cells[0] not in rows:
            rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


def check_the_docs_demo_table(stdout: str) -> None:
    """The demo's table in the README and the getting-started page is what a fresh demo prints: the candles
    exactly (six hours of one market), the posts within a quarter (the simulation's rate follows the hour)."""
    found = re.search(r"\(logs in (\S+)\)", stdout)
    assert found, stdout
    ran = demo_table((Path(found.group(1)) / "demo-runs.log").read_text())
    assert set(ran) == {"raw_candles", "raw_posts"} and all(len(set(r)) == 1 for r in ran.values()), ran
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "index.md"):
        said = demo_table(page.read_text())
        assert said["raw_candles"] == ran["raw_candles"], f"{page.name}: the demo now prints {ran}"
        assert abs(said["raw_posts"][0] - ran["raw_posts"][0]) <= ran["raw_posts"][0] / 4, f"{page.name}: {ran}"
