"""Many series, one honest answer: every (exchange series x post source) pair tested, the tests counted.

With 12 pairs at 5% each, the chance of at least one false "posts lead volume" is about 46% even when every
test alone is calibrated. So a pair's lead is reported only when

- its p-value survives Holm's step-down adjustment over every pair tested (it keeps the family-wise error at
  5% under any dependence between the pairs; Benjamini-Hochberg would bound the false discovery rate instead,
  a weaker promise for a study whose claim is "there is a lead at all"), and
- it is stable: estimated in each half of the window apart, the lead keeps its direction and its lag's
  correlation stays outside that half's noise band. A lead that changes sign or vanishes in a half is
  reported as unstable, not as a lead.

Each pair makes three claims, each tested and counted: they move together within the minute, posts lead
volume, volume leads posts (warehouse/analysis.py). A lead's p-value is the one it needs both parts of: the
prewhitened peak beyond its mirror over that direction's lags and the Granger test in that direction with
price moves held fixed (an intersection-union test: the larger p of the two). Holm runs over every claim of
the family, and each claim that survives it is checked in both halves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from warehouse.analysis import ALPHA, MIN_MINUTES, Analysis, analyze
from warehouse.series import WORLD, Series, price_moves, series, sources_counted

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
    #: the series' absolute 1-minute log return per minute (0 where nothing traded; None: not known), and in a
    #: second column the market's (every BTC market's, volume-weighted) where that is another series
    moves: np.ndarray | None = None

    @property
    def name(self) -> str:
        """As the report names it."""
        return f"{self.series} x {self.posts}"


@dataclass
class Claim:
    """One claim of a pair (the same-minute link, posts leading, volume leading) and what the family makes of it."""

    name: str
    p: float
    adjusted: float = float("nan")
    #: "stable", "unstable: why", or "" where it was not in question
    stability: str = ""

    @property
    def holds(self) -> bool:
        """Adjusted over the family below alpha, and in both halves of the window."""
        return self.stability == "stable"


@dataclass
class Pair:
    """One pair's analysis and what the family makes of it."""

    data: PairData
    result: Analysis
    #: its claims by name ("together", "posts", "volume")
    claims: dict[str, Claim] = field(default_factory=dict)
    #: the p-value of the pair's main claim (a lead's where it makes one, else the same-minute link's; nan: none)
    p: float = float("nan")
    adjusted: float = float("nan")
    #: the main claim's stability
    stability: str = ""
    #: "posts", "volume", "feedback" (both lead), "together" (only the same-minute link), "unstable", "none"
    lead: str = "none"
    together: bool = False
    verdict: str = ""


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


class Halves:
    """The pair analysed in each half of its window apart (computed once, for whichever claims need them)."""

    def __init__(self, data: PairData, whole: Analysis) -> None:
        self.data = data
        self.whole = whole
        self._found: list[tuple[str, Analysis]] | None = None

    def each(self) -> list[tuple[str, Analysis]] | str:
        """(label, analysis) per half, or why the halves cannot judge."""
        n = len(self.data.minutes)
        if n < 2 * MIN_MINUTES:
            return "unstable: too short to check in halves"
        if self._found is None:
            half = n // 2
            d = self.data
            self._found = [
                (
                    label,
                    analyze(
                        d.minutes[part],
                        d.post_counts[part],
                        d.volume[part],
                        differenced=self.whole.differenced,  # cleaned as the whole was: only r is compared
                        correlations_only=True,
                    ),
                )
                for label, part in (("first", slice(0, half)), ("second", slice(half, n)))
            ]
        for label, alone in self._found:
            if not alone.enough:
                return f"unstable: the {label} half has too little variation to judge"
        return self._found


def stability(halves: Halves, result: Analysis, claim: str) -> str:
    """Whether a claim holds in each half of the window: the same-minute r keeps its sign outside the half's band;
    a lead's r at its lag keeps its sign outside the band and still exceeds its mirror."""
    found = halves.each()
    if isinstance(found, str):
        return found
    for label, alone in found:
        if claim == "together":
            r = alone.together_r
            if np.isnan(r) or np.sign(r) != np.sign(result.together_r) or abs(r) <= alone.band:
                return f"unstable: in the same minute the {label} half's r={r:+.3f} (band +-{alone.band:.3f})"
            continue
        lead = result.posts_lead if claim == "posts" else result.volume_lead
        lag = lead.lag if claim == "posts" else -lead.lag
        r, mirror = alone.cross.get(lag, float("nan")), alone.cross.get(-lag, float("nan"))
        if np.isnan(r) or np.sign(r) != np.sign(lead.r) or abs(r) <= alone.band:
            return f"unstable: at {lag:+d} min the {label} half's r={r:+.3f} (band +-{alone.band:.3f})"
        if abs(r) <= abs(mirror):
            return f"unstable: at {lag:+d} min the {label} half's r={r:+.3f} does not exceed its mirror's {mirror:+.3f}"
    return "stable"


def plural(n: int, word: str) -> str:
    """'1 pair', '2 pairs'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def tested(pairs: Sequence[Pair]) -> int:
    """How many pairs made a claim the family counts (a pair with too little data tests nothing)."""
    return sum(any(not np.isnan(c.p) for c in p.claims.values()) for p in pairs)


def claims_tested(pairs: Sequence[Pair]) -> int:
    """How many claims the family's adjustment counted."""
    return sum(not np.isnan(c.p) for p in pairs for c in p.claims.values())


def family_title(pairs: Sequence[Pair]) -> str:
    """The pair table's title, as the terminal, the dashboard and the saved report show it."""
    counted = tested(pairs)
    short = len(pairs) - counted
    return (
        f"{plural(counted, 'pair')} tested"
        + (f" ({plural(short, 'other')} with too little data)" if short else "")
        + f": a claim (moving together within the minute, posts leading, volume leading) is reported only where "
        f"its {METHOD}-adjusted p < {ALPHA:g} over "
        + (f"all {plural(claims_tested(pairs), 'claim')}" if claims_tested(pairs) else "every claim made")
        + " and it holds in both halves of the window"
    )


def judge(pairs: Sequence[PairData], *, alpha: float = ALPHA, window: int = 60) -> list[Pair]:
    """Every pair analysed, each of its claims adjusted over every claim of the family, and checked for stability
    where it survives the adjustment."""
    out = [
        Pair(data, analyze(data.minutes, data.post_counts, data.volume, moves=data.moves, window=window))
        for data in pairs
    ]
    for pair in out:
        pair.claims = {name: Claim(name, p) for name, p in pair.result.claims().items()} if pair.result.enough else {}
    every = [claim for pair in out for claim in pair.claims.values()]
    for claim, adjusted in zip(every, holm([c.p for c in every]), strict=True):
        claim.adjusted = adjusted
    over = plural(claims_tested(out), "claim")
    for pair in out:
        _conclude(pair, alpha, over)
    return out


def _conclude(pair: Pair, alpha: float, over: str) -> None:
    """The pair's lead, stability and verdict from its claims."""
    r = pair.result
    if not r.enough:
        pair.verdict, pair.lead = r.verdict, "too little data"
        return
    halves = Halves(pair.data, r)
    for claim in pair.claims.values():
        if not np.isnan(claim.adjusted) and claim.adjusted < alpha:
            claim.stability = stability(halves, r, claim.name)
    together, posts, volume = (pair.claims[name] for name in ("together", "posts", "volume"))
    pair.together = together.holds
    leads = [c for c in (posts, volume) if c.holds]
    main = (
        min(leads, key=lambda c: c.adjusted)
        if leads
        else (min((c for c in (posts, volume) if c.stability), key=lambda c: c.adjusted, default=together))
    )
    pair.p, pair.adjusted, pair.stability = main.p, main.adjusted, main.stability
    pair.lead = (
        "feedback"
        if len(leads) == 2
        else leads[0].name
        if leads
        else "unstable"
        if any(c.stability.startswith("unstable") for c in (posts, volume))
        else "together"
        if together.holds
        else "none"
    )
    parts = []
    if together.holds:
        parts.append(
            f"they move together within the minute (r={r.together_r:+.2f}, adjusted p={together.adjusted:.3g})"
        )
    for claim in leads:
        lead = r.posts_lead if claim.name == "posts" else r.volume_lead
        said = f"{lead.phrase()}, adjusted p={claim.adjusted:.3g}"
        parts.append(f"and {claim.name} also {said.split(' ', 1)[1]}" if parts else said)
    for claim in (posts, volume):
        if claim.stability.startswith("unstable"):
            lead = r.posts_lead if claim.name == "posts" else r.volume_lead
            parts.append(f"{claim.name} would lead by {lead.lag} min, but {claim.stability}: not reported as a lead")
    for lead in (r.posts_lead, r.volume_lead):
        if lead.only_without_price:
            parts.append(
                f"{lead.leader} {'appear' if lead.leader == 'posts' else 'appears'} to lead by {lead.lag} min only "
                f"while price moves are not held fixed (Granger p={lead.granger_p:.3g} held, "
                f"{lead.granger_unheld_p:.3g} not held): not a lead"
            )
    if not parts:
        best = min((posts, volume, together), key=lambda c: c.p)
        parts.append(
            f"no claim holds: the strongest ({best.name}) has p={best.p:.3g}, {best.adjusted:.3g} after {METHOD}"
        )
    elif not leads:
        parts.append("no evidence that either leads")
    pair.verdict = "; ".join(parts) + f" [{METHOD} over {over}]"


def family_of(
    db: Any, chosen: Sequence[Series], start: datetime | None, end: datetime | None, posts: str = "auto"
) -> list[PairData]:
    """Every (series x post source) pair of the warehouse in [start, end): the family `analyze` and the dashboard
    judge. `posts` names one source for every series; "auto" sets each real series against each real source
    collected beside it, and the simulated series against the simulated posts."""
    family = []
    world = Series(WORLD, "BTC", 0, datetime.min, datetime.min)
    for one in chosen:
        if posts != "auto":
            sources = [posts]
        elif one.posts_for(posts) == "real":
            sources = sources_counted(db, one, "real") or ["real"]
        else:
            sources = [one.posts_for(posts)]
        per_source = [(source, *series(db, one, start, end, source)) for source in sources]
        every = sorted({m for _, minutes, _, _ in per_source for m in minutes})
        # once per series: its own moves and, beside them, the market's (a price is one price across exchanges)
        own = price_moves(db, one, every)
        measured = own if one.name == world.name else np.column_stack([own, price_moves(db, world, every)])
        moves = dict(zip(every, measured, strict=True)) if every else {}
        for source, minutes, counts, volume in per_source:
            held = np.array([moves[m] for m in minutes]) if moves else None
            family.append(PairData(one.name, source, minutes, counts, volume, held))
    return family


def pair_row(pair: Pair) -> dict[str, str]:
    """One line of the pair table, as the terminal, the dashboard and the saved report show it."""
    r = pair.result

    def shown(claim: str, text: str) -> str:
        c = pair.claims.get(claim)
        if c is None or np.isnan(c.p):
            return "-"
        mark = " holds" if c.holds else ""
        return f"{text}, p {c.p:.2g} (adj. {c.adjusted:.2g}){mark}"

    return {
        "pair": pair.data.name,
        "series": pair.data.series,
        "posts": pair.data.posts,
        "together": shown("together", f"r {r.together_r:+.2f}") if r.enough else "-",
        "peak": shown("posts", f"posts +{r.posts_lead.lag} min")
        + " / "
        + shown("volume", f"volume +{r.volume_lead.lag} min")
        if r.enough
        else "-",
        "p": "-" if np.isnan(pair.p) else f"{pair.p:.3g}",
        "adjusted": "-" if np.isnan(pair.adjusted) else f"{pair.adjusted:.3g}",
        "halves": pair.stability or "-",
        "lead": pair.lead,
        "verdict": pair.verdict,
    }
