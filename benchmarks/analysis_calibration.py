"""How often `coinstream analyze` is wrong: seeded families of series through the analysis function.

    python -m benchmarks.analysis_calibration [--seeds 100] [--days 2] [--smoke] [--results FILE]

Prints one line per family. For the null families (no relation at all) the figure is how often
the verdict claimed a lead either way (at alpha = 0.05 it should be about 5% or less); for the
planted family (volume follows posts 7 minutes later, on top of a shared daily cycle) how often
the verdict found that lag in that direction.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks.results import Figure, options, publish
from warehouse.analysis import analyze
from warehouse.family import Pair, PairData, judge

START = datetime(2026, 11, 2, tzinfo=UTC)
PLANTED_LAG = 7

Family = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def _daily(n: int, shift: int = 0) -> np.ndarray:
    t = np.arange(n) - shift
    return 0.6 * np.sin(2 * np.pi * t / 1440) + 0.25 * np.sin(4 * np.pi * t / 1440 + 1.0)


def random_walks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent random walks (in logs): posts and volume wander for hours, unrelated."""
    posts = np.round(20 * np.exp(0.02 * np.cumsum(rng.normal(size=n))))
    return posts, 3 * np.exp(0.02 * np.cumsum(rng.normal(size=n)))


def ar1_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent, strongly autocorrelated AR(1) series (phi 0.9)."""
    return np.round(20 * np.exp(0.3 * _ar1(rng, n, 0.9))), 3 * np.exp(0.3 * _ar1(rng, n, 0.9))


def daily_cycle(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A shared time-of-day cycle, volume's 20 minutes later, each with its own AR(1) noise: no causal link."""
    posts = np.round(20 * np.exp(_daily(n) + 0.3 * _ar1(rng, n, 0.8)))
    return posts, 3 * np.exp(_daily(n, shift=20) + 0.3 * _ar1(rng, n, 0.8))


def planted(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The daily-cycle family plus a real link: volume follows posts' own swings 7 minutes later."""
    swings = 0.3 * _ar1(rng, n, 0.8)
    posts = np.round(20 * np.exp(_daily(n) + swings))
    follows = np.concatenate([np.zeros(PLANTED_LAG), swings[:-PLANTED_LAG]])
    return posts, 3 * np.exp(_daily(n, shift=20) + 0.3 * _ar1(rng, n, 0.8) + 0.5 * follows)


NULLS: dict[str, Family] = {"random walks": random_walks, "AR(1) pairs": ar1_pairs, "daily cycle": daily_cycle}


def verdicts(family: Family, seeds: int, days: float = 2) -> list[tuple[str, int]]:
    """(lead, best lag) of the analysis on `seeds` seeded draws of a family."""
    n = int(days * 1440)
    minutes = [START + timedelta(minutes=i) for i in range(n)]
    found = []
    for seed in range(seeds):
        posts, volume = family(np.random.default_rng(seed), n)
        result = analyze(minutes, posts, volume)
        found.append((result.lead, result.best_lag))
    return found


#: A family as `analyze` meets it on a full deployment: 6 exchange series x 2 post sources.
FAMILY_PAIRS = 12
#: The pair of the planted family that carries the planted lag.
PLANTED_PAIR = 5


def family_verdicts(seeds: int, days: float = 2, *, planted_pair: int | None = None) -> list[list[Pair]]:
    """The family's pairs, judged together, for `seeds` seeded draws: null pairs of every family in turn, and
    (with `planted_pair`) that one pair with the planted lag."""
    n = int(days * 1440)
    minutes = [START + timedelta(minutes=i) for i in range(n)]
    nulls = list(NULLS.values())
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        pairs = []
        for k in range(FAMILY_PAIRS):
            family = planted if k == planted_pair else nulls[k % len(nulls)]
            posts, volume = family(rng, n)
            pairs.append(PairData(f"series {k}", "posts", minutes, posts, volume))
        out.append(judge(pairs))
    return out


def family_rates(seeds: int, days: float = 2) -> tuple[float, float, float]:
    """(share of null families with any false lead, share of planted families whose planted pair is found at its
    lag, share of planted families with a lead on another pair)."""
    nulls = family_verdicts(seeds, days)
    false = sum(any(p.lead in ("posts", "volume") for p in pairs) for pairs in nulls) / seeds
    found = family_verdicts(seeds, days, planted_pair=PLANTED_PAIR)
    hit = (
        sum(
            pairs[PLANTED_PAIR].lead == "posts" and pairs[PLANTED_PAIR].result.best_lag == PLANTED_LAG
            for pairs in found
        )
        / seeds
    )
    leaked = (
        sum(any(p.lead in ("posts", "volume") for k, p in enumerate(pairs) if k != PLANTED_PAIR) for pairs in found)
        / seeds
    )
    return false, hit, leaked


def slug(name: str) -> str:
    """A family's name as a figure key: "AR(1) pairs" -> "ar_1_pairs"."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--days", type=float, default=2)
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.days = 2, 1
    figures = []
    for name, family in NULLS.items():
        started = time.perf_counter()
        found = verdicts(family, args.seeds, args.days)
        false = sum(lead in ("posts", "volume") for lead, _ in found) / len(found)
        print(f"null {name}: false lead {false:.0%} ({args.seeds} seeds, {time.perf_counter() - started:.0f} s)")
        figures.append(
            Figure(
                f"analysis_calibration.null_{slug(name)}",
                f"one pair, null family {name}: a false lead",
                100 * false,
                "%",
            )
        )
    started = time.perf_counter()
    found = verdicts(planted, args.seeds, args.days)
    hit = sum(lead == "posts" and lag == PLANTED_LAG for lead, lag in found) / len(found)
    print(f"planted: recovered {hit:.0%} (lag {PLANTED_LAG}, posts lead; {time.perf_counter() - started:.0f} s)")
    figures.append(
        Figure("analysis_calibration.planted", f"one pair, a lead planted at {PLANTED_LAG} min: found", 100 * hit, "%")
    )
    started = time.perf_counter()
    false, hit, leaked = family_rates(args.seeds, args.days)
    print(
        f"family-wise: false lead {false:.0%} ({FAMILY_PAIRS} null pairs per seed, Holm; goal <= 7%); planted pair "
        f"recovered {hit:.0%} (goal >= 95%), a lead on another of its pairs {leaked:.0%} "
        f"({args.seeds} seeds, {time.perf_counter() - started:.0f} s)"
    )
    figures += [
        Figure(
            "analysis_calibration.family_false",
            f"a family of {FAMILY_PAIRS} null pairs (Holm): any false lead",
            100 * false,
            "% of families",
        ),
        Figure("analysis_calibration.family_hit", "a family's planted pair: found", 100 * hit, "% of families"),
        Figure(
            "analysis_calibration.family_leaked",
            "a lead claimed on another of its pairs",
            100 * leaked,
            "% of families",
        ),
    ]
    publish(
        "analysis_calibration",
        f"python -m benchmarks.analysis_calibration --seeds {args.seeds} --days {args.days:g}",
        figures,
        args,
    )


if __name__ == "__main__":
    main()
