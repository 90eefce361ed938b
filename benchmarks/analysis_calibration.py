"""How often `coinstream analyze` is wrong: seeded families of series through the analysis function.

    python -m benchmarks.analysis_calibration [--seeds 100] [--days 2] [--market-seeds 10] [--smoke] [--results FILE]

Prints one line per family. For the null families (no relation at all) the figure is how often
the verdict claimed a lead either way (at alpha = 0.05 it should be about 5% or less); for the
planted family (volume follows posts 7 minutes later, on top of a shared daily cycle) how often
the verdict found that lag in that direction. Then families with the traits of real markets
(`market_family`: 8 exchanges x 3 post sources, 3 days, news moving both in the same minute, heavy
tails, volatility clustering, a common volume factor, no-trade minutes), judged 24 pairs at a time:
shocks only, volume leading posts, a 4-minute posts lead planted on one pair behind the shocks, and
price moves driving both with no direct link.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks.results import Figure, options, publish
from warehouse.analysis import analyze
from warehouse.family import Pair, PairData, judge

START = datetime(2026, 11, 2, tzinfo=UTC)
#: What reads as a lead (either way)
LEADS = ("posts", "volume", "feedback")
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
        lag = result.posts_lead.lag if result.lead == "posts" else -result.volume_lead.lag
        found.append((result.lead, lag))
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
    false = sum(any(p.lead in LEADS for p in pairs) for pairs in nulls) / seeds
    found = family_verdicts(seeds, days, planted_pair=PLANTED_PAIR)
    hit = (
        sum(
            pairs[PLANTED_PAIR].lead == "posts" and pairs[PLANTED_PAIR].result.posts_lead.lag == PLANTED_LAG
            for pairs in found
        )
        / seeds
    )
    leaked = sum(any(p.lead in LEADS for k, p in enumerate(pairs) if k != PLANTED_PAIR) for pairs in found) / seeds
    return false, hit, leaked


def slug(name: str) -> str:
    """A family's name as a figure key: "AR(1) pairs" -> "ar_1_pairs"."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main() -> None:
    parser = options(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--days", type=float, default=2)
    parser.add_argument("--market-seeds", type=int, help="families of each market kind (default: a tenth of --seeds)")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.days, args.market_seeds = 2, 1, 1
    figures = []
    for name, family in NULLS.items():
        started = time.perf_counter()
        found = verdicts(family, args.seeds, args.days)
        false = sum(lead in LEADS for lead, _ in found) / len(found)
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
    market_seeds = max(1, args.seeds // 10) if args.market_seeds is None else args.market_seeds
    # the smoke run checks that it runs and reports (tests/unit/test_family.py checks what one family finds)
    market_days = 0.5 if args.smoke else MARKET_DAYS
    figures.append(
        Figure("analysis_calibration.market_families", "market families of each kind", market_seeds, "families")
    )
    for kind in MARKET_KINDS:
        started = time.perf_counter()
        rates = market_rates(kind, market_seeds, market_days)
        print(
            f"market families, {kind}: a false posts lead in {rates['false']:.0%} of families, the planted pair "
            f"recovered in {rates['hit']:.0%}, volume's lead found in {rates['volume']:.0%} "
            f"({market_seeds} families of {EXCHANGES * SOURCES} pairs over {market_days:g} days, "
            f"{time.perf_counter() - started:.0f} s)"
        )
        key = slug(kind)
        figures.append(
            Figure(
                f"analysis_calibration.market_{key}_false",
                f"market families, {kind}: any false posts lead",
                100 * rates["false"],
                "% of families",
            )
        )
        if kind == "planted":
            figures.append(
                Figure(
                    "analysis_calibration.market_planted_hit",
                    f"market families: the planted {MARKET_LAG}-minute lead behind same-minute co-movement found",
                    100 * rates["hit"],
                    "% of families",
                )
            )
        if kind == "volume leads":
            figures.append(
                Figure(
                    "analysis_calibration.market_volume_leads_found",
                    "market families, volume leads: volume's lead found on some pair",
                    100 * rates["volume"],
                    "% of families",
                )
            )
    publish(
        "analysis_calibration",
        f"python -m benchmarks.analysis_calibration --seeds {args.seeds} --days {args.days:g} --market-seeds "
        f"{market_seeds}",
        figures,
        args,
    )


# Families with the traits of real markets: eight exchange series sharing a common volume factor, heavy-tailed
# price moves with volatility clustering, minutes nobody traded in, three post sources, and news shocks that move
# posts and volume in the same minute; each kind adds (or not) a link on top.
EXCHANGES = 8
SOURCES = 3
MARKET_DAYS = 3
#: the exchange and the post source of the planted lead, and its lag
MARKET_PLANTED = (5, 1)
MARKET_LAG = 4
#: volume leads posts by this much in the "volume leads" kind
VOLUME_LAG = 3
MARKET_KINDS = ("shocks", "volume leads", "planted", "price")


def _filter(impulses: np.ndarray, decay: float) -> np.ndarray:
    from scipy.signal import lfilter

    return np.asarray(lfilter([1.0], [1.0, -decay], impulses), dtype=float)


def _lagged(series: np.ndarray, lag: int) -> np.ndarray:
    return np.concatenate([np.zeros(lag), series[:-lag]])


def _unit_ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """AR(1) with variance 1."""
    return np.asarray(_ar1(rng, n, phi) * np.sqrt(1 - phi**2), dtype=float)


def market_family(rng: np.random.Generator, kind: str, n: int = MARKET_DAYS * 1440) -> list[PairData]:
    """The 24 pairs (8 exchanges x 3 post sources) of one family of `kind`; moves are each exchange's |log return|.

    - "shocks": news moves posts and volume in the same minute (decaying over a few minutes), no lead;
    - "volume leads": on top, every post source follows the common volume factor 3 minutes later;
    - "planted": on top of the shocks, exchange 5's volume follows post source 1's own swings 4 minutes later;
    - "price": price moves drive both, posts in the same minute and volume 2 minutes later: no direct link.
    """
    minutes = [START + timedelta(minutes=i) for i in range(n)]
    daily = _daily(n)
    log_sigma = 0.5 * _unit_ar1(rng, n, 0.995)  # volatility clustering
    returns = 0.0007 * np.exp(log_sigma) * rng.standard_t(3, n) / np.sqrt(3)  # heavy tails
    news = _filter((rng.random(n) < 1 / 150) * rng.exponential(1.0, n), 0.6) if kind != "price" else np.zeros(n)
    returns = returns + 0.002 * news * rng.choice([-1.0, 1.0], n)  # news moves the price too
    move = np.log1p(np.abs(returns) / np.median(np.abs(returns)))
    common = 0.4 * _unit_ar1(rng, n, 0.97)
    swings = [0.35 * _unit_ar1(rng, n, 0.8) for _ in range(SOURCES)]
    posts = []
    for s in range(SOURCES):
        level = np.log([30.0, 8.0, 3.0][s]) + daily + swings[s] + 0.9 * news
        if kind == "volume leads":
            level = level + 1.2 * _lagged(common, VOLUME_LAG)
        if kind == "price":
            level = level + 0.35 * move
        posts.append(rng.poisson(np.exp(level)).astype(float))
    pairs = []
    exchange_moves, exchange_volumes = [], []
    for e in range(EXCHANGES):
        idiosyncratic = 0.00005 * rng.standard_normal(n)  # arbitrage keeps the exchanges' prices together
        log_price = np.cumsum(returns + idiosyncratic)
        level = np.log(5.0 / (e + 1)) + _daily(n, shift=10) + common + 0.3 * _unit_ar1(rng, n, 0.8) + 0.8 * news
        if kind == "planted" and e == MARKET_PLANTED[0]:
            level = level + 1.0 * _lagged(swings[MARKET_PLANTED[1]], MARKET_LAG)
        if kind == "price":
            level = level + 0.35 * _lagged(move, 2)
        volume = np.exp(level) * rng.gamma(4.0, 0.25, n)
        quiet = rng.random(n) < [0.0, 0.0, 0.01, 0.02, 0.05, 0.05, 0.1, 0.15][e]  # no trade: volume 0, no move
        volume[quiet] = 0.0
        # no trade, no price: a quiet minute does not move, the next traded one moves from the last traded price
        last = np.maximum.accumulate(np.where(quiet, 0, np.arange(n)))
        traded_price = log_price[last]
        own_moves = np.abs(np.diff(traded_price, prepend=traded_price[0]))
        exchange_moves.append(own_moves)
        exchange_volumes.append(volume)
        for s in range(SOURCES):
            pairs.append(PairData(f"exchange {e}", f"source {s}", minutes, posts[s], volume, own_moves))
    # the market's move: every exchange's, volume-weighted (the warehouse's `all BTC` series), held beside each own
    weights = np.array(exchange_volumes)
    market = (np.array(exchange_moves) * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12)
    return [replace(p, moves=np.column_stack([exchange_moves[int(p.series.split()[1])], market])) for p in pairs]


def market_rates(kind: str, seeds: int, days: float = MARKET_DAYS) -> dict[str, float]:
    """Over `seeds` families of `kind` (`days` days, 24 pairs, judged together): the share with a false "posts lead"
    (any pair reading posts leading, the planted pair aside), the share whose planted pair is found at its lag,
    the share with any pair reading posts leading at all, and the share with volume's lead found on a pair."""
    planted_index = MARKET_PLANTED[0] * SOURCES + MARKET_PLANTED[1]
    false = hit = any_posts = volume = 0
    for seed in range(seeds):
        pairs = judge(market_family(np.random.default_rng(20_000 + seed), kind, int(days * 1440)))
        posts_lead = [k for k, p in enumerate(pairs) if p.lead in ("posts", "feedback")]
        any_posts += bool(posts_lead)
        volume += any(p.lead in ("volume", "feedback") for p in pairs)
        false += any(k != planted_index or kind != "planted" for k in posts_lead)
        found = pairs[planted_index]
        hit += kind == "planted" and found.claims["posts"].holds and found.result.posts_lead.lag == MARKET_LAG
    return {"false": false / seeds, "hit": hit / seeds, "any_posts": any_posts / seeds, "volume": volume / seeds}


if __name__ == "__main__":
    main()
