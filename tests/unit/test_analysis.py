"""The analysis recovers the relation planted in the simulated source, read back through the warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from benchmarks.analysis_calibration import NULLS, PLANTED_LAG, planted, verdicts
from producer.sources import simulated
from tests.warehouse_data import simulated_warehouse
from warehouse.analysis import MIN_MINUTES, analyze
from warehouse.cleaning import var_order
from warehouse.series import all_series, series


def test_planted_lag_and_sign_are_recovered_exactly(tmp_path: Path) -> None:
    sim = simulated.Simulation(lag_minutes=7, strength=0.8)
    simulated_warehouse(tmp_path / "w.duckdb", sim, minutes=360)
    db = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    (only,) = all_series(db)
    minutes, posts, volume = series(db, only)
    db.close()
    result = analyze(minutes, posts, volume)
    assert result.enough and result.minutes == 360
    assert result.best_lag == 7 and result.best_lag_r > 0.5  # posts lead volume by the planted 7 minutes
    assert result.peak_p < 0.01 and result.best_lag_r > result.band
    assert result.granger_posts_to_volume_p < 1e-6
    assert result.lead == "posts" and result.verdict.startswith("posts lead volume by 7 min")
    assert result.effect_low > 0  # more posts, more volume: the interval excludes 0
    assert "provisional" in result.verdict  # six hours: a shared daily cycle cannot be removed yet


def test_no_relation_planted_means_no_strong_correlation() -> None:
    sim = simulated.Simulation(lag_minutes=7, strength=0.0)
    m = list(range(29_000_000, 29_000_360))
    posts = np.array([sim.post_count(x) for x in m], dtype=float)
    volume = np.array([sim.volume(x) for x in m])
    result = analyze([datetime.fromtimestamp(x * 60, UTC) for x in m], posts, volume)
    assert abs(result.best_lag_r) < 0.3 and result.lead == "none" and result.verdict.startswith("no evidence")


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
        and "simulated KRW-BTC (simulated posts): posts lead volume by 5 min" in result.stdout  # the planted one
    )


@pytest.mark.takes(30)
@pytest.mark.parametrize("family", sorted(NULLS))
def test_no_relation_gives_a_false_lead_in_at_most_7_percent_of_100_seeds(family: str) -> None:
    found = verdicts(NULLS[family], seeds=100)
    false = [seed for seed, (lead, _) in enumerate(found) if lead in ("posts", "volume")]
    assert len(false) <= 7, f"{family}: a lead claimed for seeds {false}"


@pytest.mark.takes(30)
def test_a_lag_planted_on_a_shared_daily_cycle_is_recovered_in_95_percent_of_100_seeds() -> None:
    found = verdicts(planted, seeds=100)
    missed = [seed for seed, (lead, lag) in enumerate(found) if (lead, lag) != ("posts", PLANTED_LAG)]
    assert len(missed) <= 5, f"missed for seeds {missed}"


@pytest.mark.parametrize("family", ["white noise", "random walks", "a VAR(3) with a lead"])
def test_the_var_order_is_the_one_statsmodels_select_order_picks(family: str) -> None:
    from statsmodels.tsa.api import VAR

    rng = np.random.default_rng(12)
    for _ in range(20):
        n = int(rng.integers(70, 2000))
        noise = rng.standard_normal((n, 2))
        if family == "white noise":
            data = noise
        elif family == "random walks":
            data = np.cumsum(noise, axis=0)
        else:
            data = noise.copy()
            for t in range(3, n):
                data[t] += 0.5 * data[t - 1] - 0.2 * data[t - 2] + [0.0, 0.4 * data[t - 3, 0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = VAR(data).select_order(maxlags=15).aic
        assert var_order(data, 15) == expected
    with pytest.raises(ValueError, match="too large"):
        var_order(rng.standard_normal((40, 2)), 15)
