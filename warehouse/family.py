"""Many series, one honest answer: every (exchange series x post source) pair tested, the tests counted.

With 12 pairs at 5% each, the chance of at least one false "posts lead volume" is about 46% even when every
test alone is calibrated. So a pair's lead is reported only when

- its p-value survives Holm's step-down adjustment over every pair tested (it keeps the family-wise error at
  5% under any dependence between the pairs; Benjamini-Hochberg would bound the false discovery rate instead,
  a weaker promise for a study whose claim is "there is a lead at all"), and
- it is stable: estimated in each half of the window apart, the lead keeps its direction and its lag's
  correlation stays outside that half's noise band. A lead that changes sign or vanishes in a half is
  reported as unstable, not as a lead.

A pair's p-value is the one its lead claim needs both parts of: the prewhitened peak over all lags and the
Granger test in the peak's direction (an intersection-union test: the larger p of the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from warehouse.analysis import ALPHA, MIN_MINUTES, Analysis, analyze
from warehouse.series import Series, series, sources_counted

#: The adjustment `coinstream analyze` applies across the pairs it tests.
METHOD = "Holm"


@dataclass(frozen=True)
class PairData:
    """One pair's minutes: the exchange series, the post source set against it, and the figures."""

    series: str
    posts: str
    minutes: list[datetime]
    post_counts: np.ndarray
    volume: np.ndarray

    @property
    def name(self) -> str:
        """As the report names it."""
        return f"{self.series} x {self.posts}"


@dataclass
class Pair:
    """One pair's analysis and what the family makes of it."""

    data: PairData
    result: Analysis
    #: the p-value of the pair's claim (nan: it makes none)
    p: float = float("nan")
    adjusted: float = float("nan")
    #: "stable", "unstable: why", or "" where no lead was in question
    stability: str = ""
    lead: str = "none"
    verdict: str = ""


def claim_p(result: Analysis) -> float:
    """The p-value of what the analysis would claim: a lead needs the peak and the Granger test in its direction."""
    if not result.enough:
        return float("nan")
    if result.best_lag > 0:
        return max(result.peak_p, result.granger_posts_to_volume_p)
    if result.best_lag < 0:
        return max(result.peak_p, result.granger_volume_to_posts_p)
    return result.peak_p


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted as a test)."""
    tested = sorted((p, i) for i, p in enumerate(ps) if not np.isnan(p))
    m = len(tested)
    out = [float("nan")] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def stability(data: PairData, result: Analysis) -> str:
    """Whether the lead holds in each half of the window: its direction, and its lag outside the half's band."""
    n = len(data.minutes)
    if n < 2 * MIN_MINUTES:
        return "unstable: too short to check in halves"
    half = n // 2
    for label, part in (("first", slice(0, half)), ("second", slice(half, n))):
        alone = analyze(data.minutes[part], data.post_counts[part], data.volume[part])
        if not alone.enough:
            return f"unstable: the {label} half has too little variation to judge"
        r = alone.cross.get(result.best_lag, float("nan"))
        if np.isnan(r) or np.sign(r) != np.sign(result.best_lag_r) or abs(r) <= alone.band:
            return f"unstable: at {result.best_lag:+d} min the {label} half's r={r:+.3f} (band +-{alone.band:.3f})"
        if np.sign(alone.best_lag) != np.sign(result.best_lag):
            return f"unstable: the {label} half's peak is at {alone.best_lag:+d} min, the other way round"
    return "stable"


def plural(n: int, word: str) -> str:
    """'1 pair', '2 pairs'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def tested(pairs: Sequence[Pair]) -> int:
    """How many pairs made a claim the family counts (a pair with too little data tests nothing)."""
    return sum(not np.isnan(p.p) for p in pairs)


def family_title(pairs: Sequence[Pair]) -> str:
    """The pair table's title, as the terminal, the dashboard and the saved report show it."""
    counted = tested(pairs)
    short = len(pairs) - counted
    return (
        f"{plural(counted, 'pair')} tested"
        + (f" ({plural(short, 'other')} with too little data)" if short else "")
        + f": a lead is reported only where its {METHOD}-adjusted p < {ALPHA:g} and it holds in both halves of the "
        "window"
    )


def judge(pairs: Sequence[PairData], *, alpha: float = ALPHA, window: int = 60) -> list[Pair]:
    """Every pair analysed, adjusted over the family, and checked for stability where a lead is in question."""
    out = [Pair(data, analyze(data.minutes, data.post_counts, data.volume, window=window)) for data in pairs]
    for pair in out:
        pair.p = claim_p(pair.result)
    over = plural(tested(out), "pair")
    for pair, adjusted in zip(out, holm([p.p for p in out]), strict=True):
        pair.adjusted = adjusted
        r = pair.result
        if not r.enough:
            pair.verdict, pair.lead = r.verdict, "too little data"
            continue
        if r.lead == "none" or np.isnan(adjusted) or adjusted >= alpha:
            pair.lead = "none"
            pair.verdict = (
                f"no lead: p={pair.p:.3g} for the {r.best_lag:+d} min peak, {adjusted:.3g} after {METHOD} over "
                f"{over}" + (f" (alone it would read: {r.lead} lead)" if r.lead in ("posts", "volume") else "")
            )
            continue
        pair.stability = stability(pair.data, r)
        if pair.stability != "stable":
            pair.lead = "unstable"
            pair.verdict = f"{r.verdict.split(':')[0]}, but {pair.stability}: not reported as a lead"
            continue
        pair.lead = r.lead
        pair.verdict = f"{r.verdict} [{METHOD}-adjusted p={adjusted:.3g} over {over}; holds in both halves]"
    return out


def family_of(
    db: Any, chosen: Sequence[Series], start: datetime | None, end: datetime | None, posts: str = "auto"
) -> list[PairData]:
    """Every (series x post source) pair of the warehouse in [start, end): the family `analyze` and the dashboard
    judge. `posts` names one source for every series; "auto" sets each real series against each real source
    collected beside it, and the simulated series against the simulated posts."""
    family = []
    for one in chosen:
        if posts != "auto":
            sources = [posts]
        elif one.posts_for(posts) == "real":
            sources = sources_counted(db, one, "real") or ["real"]
        else:
            sources = [one.posts_for(posts)]
        for source in sources:
            minutes, counts, volume = series(db, one, start, end, source)
            family.append(PairData(one.name, source, minutes, counts, volume))
    return family


def pair_row(pair: Pair) -> dict[str, str]:
    """One line of the pair table, as the terminal, the dashboard and the saved report show it."""
    r = pair.result
    return {
        "pair": pair.data.name,
        "series": pair.data.series,
        "posts": pair.data.posts,
        "peak": f"{r.best_lag:+d} min, r = {r.best_lag_r:+.3f}" if r.enough else "-",
        "p": "-" if np.isnan(pair.p) else f"{pair.p:.3g}",
        "adjusted": "-" if np.isnan(pair.adjusted) else f"{pair.adjusted:.3g}",
        "halves": pair.stability or "-",
        "lead": pair.lead,
        "verdict": pair.verdict,
    }
