"""The analysis recovers the relation planted in the simulated source, read back through the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from producer.sources import simulated
from tests.warehouse_data import simulated_warehouse
from warehouse.analysis import MIN_MINUTES, all_series, analyze, series


def test_planted_lag_and_sign_are_recovered_exactly(tmp_path: Path) -> None:
    sim = simulated.Simulation(lag_minutes=7, strength=0.8)
    simulated_warehouse(tmp_path / "w.duckdb", sim, minutes=360)
    db = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    (only,) = all_series(db)
    minutes, posts, volume = series(db, only)
    db.close()
    result = analyze(minutes, posts, volume)
    assert result.enough and result.minutes == 360
    assert result.best_lag == 7 and result.best_lag_r > 0  # posts lead volume by the planted 7 minutes
    assert result.best_lag_r == pytest.approx(0.95, abs=0.05)  # stated tolerance for strength 0.8
    assert result.granger_posts_to_volume_p < 1e-6 < result.granger_volume_to_posts_p
    assert "posts lead volume" in result.verdict


def test_no_relation_planted_means_no_strong_correlation() -> None:
    sim = simulated.Simulation(lag_minutes=7, strength=0.0)
    m = list(range(29_000_000, 29_000_360))
    posts = np.array([sim.post_count(x) for x in m], dtype=float)
    volume = np.array([sim.volume(x) for x in m])
    result = analyze([datetime.fromtimestamp(x * 60, UTC) for x in m], posts, volume)
    assert abs(result.best_lag_r) < 0.3


def test_too_little_data_is_said_plainly() -> None:
    minutes = [datetime.fromtimestamp(60 * i, UTC) for i in range(MIN_MINUTES - 1)]
    result = analyze(minutes, np.arange(MIN_MINUTES - 1, dtype=float), np.arange(MIN_MINUTES - 1, dtype=float))
    assert not result.enough and result.verdict.startswith("too little data to conclude anything")


def test_analyze_command_prints_the_table(tmp_path: Path) -> None:
    simulated_warehouse(tmp_path / "w.duckdb", simulated.Simulation(), minutes=120)
    env = {**os.environ, "COINSTREAM_WAREHOUSE_FILE": str(tmp_path / "w.duckdb")}
    result = subprocess.run(
        [sys.executable, "-m", "operate", "analyze", "--window", "30"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Granger posts -> volume" in result.stdout
        and "+5 min" in result.stdout
        and "120" in result.stdout.split("minutes used")[1].splitlines()[0]
    )
