"""How long `analyze` (and the dashboard, in the background) takes to judge a full deployment's family.

    python -m benchmarks.judge [--days 7] [--runs 3] [--smoke] [--results FILE]

27 pairs: the calibration's market family (8 exchanges sharing a volume factor, heavy-tailed price moves, news
moving posts and volume in the same minute) plus the market's summed volume as a ninth series, each against 3
post sources, over `--days` of minutes, judged together (three claims a pair, Holm over all 81, halves where a
claim survives, Granger with price moves held fixed). Printed: the median seconds of `--runs`; the goal is under
15 s for a week.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from benchmarks.analysis_calibration import market_family
from benchmarks.results import Figure, options, publish
from warehouse.family import PairData, judge


def family_of_27(days: float) -> list[PairData]:
    """The 24 pairs of a shocks family and the world series (the exchanges' summed volume) against each source."""
    pairs = market_family(np.random.default_rng(7), "shocks", int(days * 1440))
    volume = np.sum([p.volume for p in pairs if p.posts == "source 0"], axis=0)
    world = [
        replace(p, series="all BTC", volume=volume, moves=None if p.moves is None else p.moves[:, 1:])
        for p in pairs
        if p.series == "exchange 0"
    ]
    return pairs + world


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        args.days, args.runs = 1, 1
    family = family_of_27(args.days)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        judge(family)
        times.append(time.perf_counter() - started)
    seconds = float(np.median(times))
    print(f"judging {len(family)} pairs over {args.days:g} days: {seconds:.1f} s (median of {args.runs})")
    publish(
        "judge",
        f"python -m benchmarks.judge --days {args.days:g} --runs {args.runs}",
        [Figure("judge.seconds", f"judging {len(family)} pairs over {args.days:g} days", seconds, "s")],
        args,
    )


if __name__ == "__main__":
    main()
