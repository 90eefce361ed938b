"""Does chatter move with trading, and which leads? An answer that holds when there is nothing to find.

Posts per minute and volume per minute both swing with the time of day and wander for hours, so
correlations of their levels say "posts lead volume" whatever the truth is. The report therefore
tests on series cleaned of what would fool it, in this order, and says what it did:

1. log1p of both (counts and volumes are skewed; a relation is proportional, not additive);
2. the time-of-day cycle (and the day-of-week cycle from two weeks on) removed by regression on
   Fourier terms, once there are two days of minutes; its share of the variance is reported;
3. ADF and KPSS per series: when either test calls either series non-stationary, both are differenced;
4. prewhitening: each series is filtered by its own AR model (order by AIC; Haugh's double
   prewhitening), so the cross-correlation of what is left is not smeared by either one's memory;
   bands at +-1.96/sqrt(n), and each p-value pays for the search over its lags (circular-shift
   surrogates: every shift of volume against posts, the largest statistic over the lags each time);
5. Granger causality both ways in a VAR whose order AIC chose (never the peak's lag), with the leader's
   same-minute value held (the same-minute link is its own claim) and the price moves held fixed — the
   series' own and the market's absolute 1-minute log return, in the same minute and the ten before: news
   moves the price, and a price move brings both trading and posting — and an effect size: how much
   volume moves per extra standard deviation of posts at the lead's lag.

Two claims are judged apart, because news moves posts and volume in the same minute far more often than
one leads the other: "they move together within the minute" (the prewhitened r at lag 0, against every
circular shift) and "posts lead volume by k minutes" (the lag among 2..limit where |r(k)| most exceeds its
mirror |r(-k)|, its p-value paying for the search over those lags only, and Granger posts -> volume with
price moves held fixed) — and the mirror claim that volume leads. A same-minute link that lasts a few
minutes spreads over +-1, +-2 alike, so a lead is what its mirror lacks; and a one-minute offset is the same
moment seen through two minute buckets (FIRST_LEAD). A lead claims nothing unless both
of its tests hold (an intersection-union test: its p is the larger of the two); one that holds only
without price moves held fixed is reported as such, not as a lead. `python -m benchmarks.analysis_calibration`
measures how often this is wrong, on families with the traits of real markets. The cleaning steps are in
`warehouse/cleaning.py`, the tests in `warehouse/lag_tests.py`; the verdict is here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

from warehouse.cleaning import ALPHA, Check, deseasonalise, needs_differencing, prewhiten, var_order
from warehouse.lag_tests import cross, effect, granger_p, peak_p, rolling_r, shift_p

MIN_MINUTES = 60
#: The shortest lead claimed. Minutes are buckets: news at 12:00:50 that moves posts at once and trades for twenty
#: seconds lands in 12:00 for one and 12:01 for the other, so a one-minute offset is the same moment seen through
#: two buckets (and a same-minute link that fades a little slower in one series looks like it). A lead is a
#: relation two minutes or more apart.
FIRST_LEAD = 2


@dataclass
class Lead:
    """One direction's lead claim: its lag, its tests, and its p (the larger of the two it needs)."""

    #: "posts" (posts lead volume, positive lags) or "volume" (volume leads posts)
    leader: str
    lag: int = 0
    r: float = math.nan
    #: how much |r| at the lag exceeds its mirror's
    beyond_mirror: float = math.nan
    #: the shift surrogates' p of that excess, paying for the search over this direction's lags
    peak_p: float = math.nan
    #: Granger in this direction with the price moves held fixed (nan: no price moves to hold)
    granger_p: float = math.nan
    #: Granger in this direction without them
    granger_unheld_p: float = math.nan
    #: the Granger tests were not run: the peak alone already fails (the claim's p is then the peak's)
    peak_failed: bool = False

    @property
    def p(self) -> float:
        """The claim's p: both tests must hold; with price moves at hand, Granger counts with them held fixed."""
        if self.peak_failed:
            return self.peak_p  # at least this, and already too large: the claim cannot hold whatever Granger says
        granger = self.granger_unheld_p if math.isnan(self.granger_p) else self.granger_p
        if math.isnan(granger) or math.isnan(self.peak_p):
            return math.nan  # a test that cannot be run supports no claim
        return max(self.peak_p, granger)

    @property
    def only_without_price(self) -> bool:
        """Whether the lead holds only while price moves are not held fixed."""
        return self.peak_p < ALPHA and self.granger_unheld_p < ALPHA <= self.granger_p

    @property
    def other(self) -> str:
        return "volume" if self.leader == "posts" else "posts"

    def phrase(self) -> str:
        """The claim as a verdict says it."""
        held = (
            f"Granger {self.leader} -> {self.other} p={self.granger_p:.3g} with price moves held fixed"
            if not math.isnan(self.granger_p)
            else f"Granger {self.leader} -> {self.other} p={self.granger_unheld_p:.3g} (no price moves to hold fixed)"
        )
        verb = "lead" if self.leader == "posts" else "leads"
        return (
            f"{self.leader} {verb} {self.other} by {self.lag} min (r={self.r:+.2f}, {self.beyond_mirror:+.2f} beyond "
            f"its mirror, p={self.peak_p:.3g} over {'positive' if self.leader == 'posts' else 'negative'} lags; "
            f"{held})"
        )


@dataclass
class Analysis:
    """The numbers `coinstream analyze` prints."""

    minutes: int
    first: datetime | None = None
    last: datetime | None = None
    enough: bool = False
    #: descriptive only: correlations of the raw levels and first differences
    pearson_levels: float = math.nan
    spearman_levels: float = math.nan
    pearson_diffs: float = math.nan
    spearman_diffs: float = math.nan
    #: the prewhitened cross-correlation: r per lag (+: posts lead), its band, its largest |r| (descriptive) and
    #: that peak's p over all lags
    cross: dict[int, float] = field(default_factory=dict)
    band: float = math.nan
    best_lag: int = 0
    best_lag_r: float = math.nan
    peak_p: float = math.nan
    prewhiten_order: int = 0
    #: the same-minute claim: r at lag 0 and its p against every circular shift
    together_r: float = math.nan
    together_p: float = math.nan
    #: the two lead claims
    posts_lead: Lead = field(default_factory=lambda: Lead("posts"))
    volume_lead: Lead = field(default_factory=lambda: Lead("volume"))
    #: Granger causality in a VAR of the cleaned series (with the price moves held fixed where there are any)
    var_order: int = 0
    granger_posts_to_volume_p: float = math.nan
    granger_volume_to_posts_p: float = math.nan
    #: whether the series' price moves were held fixed (and how), or why not
    price: str = ""
    #: volume's response to +1 SD of posts at the posts lead's lag (in the cleaned volume's units)
    effect: float = math.nan
    effect_low: float = math.nan
    effect_high: float = math.nan
    effect_unit: str = ""
    #: descriptive: correlation of the levels over a rolling window
    rolling: list[float] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    #: "posts", "volume", "feedback" (both lead), "together" (only the same-minute link), or "none"
    lead: str = "none"
    together: bool = False
    verdict: str = ""
    #: whether both series were differenced before the tests
    differenced: bool = False

    def claims(self) -> dict[str, float]:
        """Each claim this analysis can make, with its p (nan: it cannot be tested)."""
        return {"together": self.together_p, "posts": self.posts_lead.p, "volume": self.volume_lead.p}


def analyze(
    minutes: list[datetime],
    posts: np.ndarray,
    volume: np.ndarray,
    *,
    moves: np.ndarray | None = None,
    max_lag: int = 30,
    window: int = 60,
    differenced: bool | None = None,
    correlations_only: bool = False,
) -> Analysis:
    """Every figure of the report; `enough` is False (and the verdict says so) below MIN_MINUTES minutes.

    `moves` is the series' absolute 1-minute log return per minute (0 where nothing traded): the Granger tests
    hold it fixed. Without it (or where it never moves) they run without, and the report says so. A half of a
    window (the stability check) passes the whole's `differenced` and `correlations_only`: it is checked on the
    cross-correlation alone, cleaned as the whole was."""
    out = Analysis(minutes=len(minutes), first=minutes[0] if minutes else None, last=minutes[-1] if minutes else None)
    if len(minutes) < MIN_MINUTES or np.std(posts) == 0 or np.std(volume) == 0:
        out.verdict = (
            f"too little data to conclude anything: {len(minutes)} minutes with both candles and collected posts "
            f"(at least {MIN_MINUTES} with varying posts and volume are needed)"
        )
        return out
    out.enough = True
    posts, volume = np.asarray(posts, dtype=float), np.asarray(volume, dtype=float)
    out.pearson_levels = float(stats.pearsonr(posts, volume)[0])
    out.spearman_levels = float(stats.spearmanr(posts, volume)[0])
    out.pearson_diffs = float(stats.pearsonr(np.diff(posts), np.diff(volume))[0])
    out.spearman_diffs = float(stats.spearmanr(np.diff(posts), np.diff(volume))[0])
    if len(minutes) > window:
        out.rolling = [r for r in rolling_r(posts, volume, window) if not math.isnan(r)]

    x, y = np.log1p(np.clip(posts, 0, None)), np.log1p(np.clip(volume, 0, None))
    z = price_regressor(moves, len(minutes))
    out.checks.append(Check("transform", "log1p of posts and of volume"))
    # whether to difference is judged on the levels without their daily cycle (a cycle alone is no unit
    # root); the cycle is then removed from what is analysed: the levels, or their differences
    if differenced is None:
        differenced, check = needs_differencing(*deseasonalise(minutes, x, y)[:2])
        out.checks.append(check)
    out.differenced = differenced
    if differenced:
        x, y, minutes = np.diff(x), np.diff(y), minutes[1:]
        z = None if z is None else z[1:]  # a volatility, not a level: held fixed as it is in each minute
    x, y, check = deseasonalise(minutes, x, y)
    out.checks.append(check)
    if z is not None:
        z = np.column_stack([deseasonalise(minutes, column, column)[0] for column in z.T])
    limit = max(1, min(max_lag, len(x) // 8))  # leaves n/2 circular shifts for the peak's p-value
    a, b, out.prewhiten_order = prewhiten(x, y, max(1, min(15, len(x) // 20)))
    out.cross, out.band = cross(a, b, limit)
    finite = {lag: r for lag, r in out.cross.items() if not math.isnan(r)}
    if finite:
        out.best_lag = max(finite, key=lambda k: (abs(finite[k]), -abs(k)))
        out.best_lag_r = finite[out.best_lag]
        out.peak_p = peak_p(a, b, limit)
        out.together_r = finite.get(0, math.nan)
        out.together_p = shift_p(a, b, np.array([0]), mirrored=False, limit=limit)[1]
        for lead, sign in ((out.posts_lead, 1), (out.volume_lead, -1)):
            searched = sign * np.arange(FIRST_LEAD, max(FIRST_LEAD, limit) + 1)
            lead.lag, lead.peak_p = shift_p(a, b, searched, mirrored=True, limit=max(FIRST_LEAD, limit))
            lead.lag = abs(lead.lag)
            lead.r = out.cross.get(sign * lead.lag, math.nan)
            lead.beyond_mirror = abs(lead.r) - abs(out.cross.get(-sign * lead.lag, math.nan))
    out.checks.append(
        Check(
            "prewhitened cross-correlation",
            f"AR({out.prewhiten_order}) filter of posts; r={out.together_r:+.3f} in the same minute "
            f"(p={out.together_p:.3g}); largest |r| at {out.best_lag:+d} min (band +-{out.band:.3f}); posts lead: "
            f"{out.posts_lead.lag} min (p={out.posts_lead.peak_p:.3g}), volume leads: {out.volume_lead.lag} min "
            f"(p={out.volume_lead.peak_p:.3g}), each beyond its mirror, against every circular shift",
        )
    )
    if correlations_only:
        return out
    _granger(x, y, z, limit, out)
    _effect(x, y, out, differenced)
    _verdict(out)
    return out


def price_regressor(moves: np.ndarray | None, n: int) -> np.ndarray | None:
    """The price moves as the Granger tests hold them, one column per measure of them (the series' own, the
    market's): log(1 + |log return| / its median move), so a burst of volatility counts in proportion, not by its
    heavy tail. None where there are none (or they never move)."""
    if moves is None or len(moves) != n:
        return None
    columns = []
    for column in np.asarray(moves, dtype=float).reshape(n, -1).T:
        column = np.nan_to_num(np.abs(column))
        moving = column[column > 0]
        if len(moving) >= MIN_MINUTES and np.std(column) > 0:
            columns.append(np.log1p(column / np.median(moving)))
    return np.column_stack(columns) if columns else None


def _granger(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, limit: int, out: Analysis) -> None:
    # The order comes from an information criterion over the VAR of both series, never from the
    # cross-correlation's peak (choosing it from the peak found in the same data is lag hunting).
    out.var_order = max(1, var_order(np.column_stack([y, x]), min(limit, 15)))
    p = out.var_order
    for lead, effect_, cause in ((out.posts_lead, y, x), (out.volume_lead, x, y)):
        if not lead.peak_p < ALPHA:  # a lead needs both; the peak fails, so Granger cannot change the claim
            lead.peak_failed = True
            continue
        if z is not None:
            lead.granger_p = granger_p(effect_, cause, p, held=z)
        # without the price moves: the test itself where there are none; else only where it could tell that a
        # lead vanished with them held (the peak holds and the held test does not), as the verdict then says
        if z is None or (lead.granger_p >= ALPHA and lead.peak_p < ALPHA):
            lead.granger_unheld_p = granger_p(effect_, cause, p)
    if z is not None:
        measures = "the series' own and the market's" if z.shape[1] > 1 else "the series' own"
        out.price = f"held fixed: |1-minute log return|, {measures}, in the same minute and the ten before"
    else:
        out.price = "not held fixed: no price moves for this series"
    out.granger_posts_to_volume_p = (
        out.posts_lead.granger_unheld_p if math.isnan(out.posts_lead.granger_p) else out.posts_lead.granger_p
    )
    out.granger_volume_to_posts_p = (
        out.volume_lead.granger_unheld_p if math.isnan(out.volume_lead.granger_p) else out.volume_lead.granger_p
    )
    held = ""
    if z is not None:
        unheld = (out.posts_lead.granger_unheld_p, out.volume_lead.granger_unheld_p)
        shown = ["-" if math.isnan(u) else f"{u:.3g}" for u in unheld]
        held = f" with price moves held fixed (without, where it could matter: {shown[0]}, {shown[1]})"
    out.checks.append(
        Check(
            "Granger causality",
            f"VAR({p}), order by AIC: posts -> volume {_shown(out.posts_lead, out.granger_posts_to_volume_p)}, "
            f"volume -> posts {_shown(out.volume_lead, out.granger_volume_to_posts_p)}{held} (F tests, Newey-West "
            "errors; run only where the lead's peak holds)",
        )
    )


def _shown(lead: Lead, p: float) -> str:
    return "not run (its peak fails)" if lead.peak_failed else f"p={p:.3g}"


def _effect(x: np.ndarray, y: np.ndarray, out: Analysis, differenced: bool) -> None:
    """Volume's response to +1 SD of posts at the posts lead's lag."""
    if not out.posts_lead.lag:
        return
    out.effect, out.effect_low, out.effect_high = effect(x, y, out.posts_lead.lag, out.var_order)
    out.effect_unit = "change of log(1+volume) per minute" if differenced else "log(1+volume)"


def _verdict(out: Analysis) -> None:
    out.together = out.together_p < ALPHA
    leading = [lead for lead in (out.posts_lead, out.volume_lead) if lead.p < ALPHA]
    out.lead = (
        "feedback" if len(leading) == 2 else leading[0].leader if leading else "together" if out.together else "none"
    )
    parts = []
    if out.together:
        parts.append(
            f"they move together within the minute (prewhitened r={out.together_r:+.2f}, p={out.together_p:.3g})"
        )
    for lead in leading:
        said = lead.phrase()
        if lead.leader == "posts" and not math.isnan(out.effect):
            said += (
                f"; +1 SD of posts moves {out.effect_unit} by {out.effect:+.3g} "
                f"(95% CI {out.effect_low:+.3g} .. {out.effect_high:+.3g})"
            )
        parts.append(f"and {lead.leader} also {said.split(' ', 1)[1]}" if parts else said)
    vanished = [lead for lead in (out.posts_lead, out.volume_lead) if lead.only_without_price]
    for lead in vanished:
        parts.append(
            f"{lead.leader} {'appear' if lead.leader == 'posts' else 'appears'} to lead {lead.other} by "
            f"{lead.lag} min, but not with price moves held fixed "
            f"(Granger p={lead.granger_p:.3g} held, {lead.granger_unheld_p:.3g} not held): not a lead"
        )
    if not leading:
        parts.append(
            "no evidence that either leads"
            + (
                f": posts lead p={out.posts_lead.p:.3g} ({out.posts_lead.lag} min), volume leads "
                f"p={out.volume_lead.p:.3g} ({out.volume_lead.lag} min)"
                if not vanished
                else ""
            )
        )
    out.verdict = "; ".join(parts)
    if any(c.name == "daily cycle" and c.outcome.startswith("not removed") for c in out.checks) and out.lead != "none":
        out.verdict += " (provisional: under two days, a shared daily cycle is not removed)"


def describe(result: Analysis) -> list[tuple[str, str]]:
    """The report's rows for one series (measure, value)."""
    if not result.enough:
        return []

    def lead_row(lead: Lead) -> str:
        granger = (
            "Granger not run (the peak fails)"
            if lead.peak_failed
            else f"Granger p = {lead.granger_unheld_p:.3g} (no price moves to hold)"
            if math.isnan(lead.granger_p)
            else f"Granger p = {lead.granger_p:.3g} with price moves held"
            + ("" if math.isnan(lead.granger_unheld_p) else f" / {lead.granger_unheld_p:.3g} without")
        )
        return (
            f"{lead.lag} min, r = {lead.r:+.3f} ({lead.beyond_mirror:+.3f} beyond its mirror); peak p = "
            f"{lead.peak_p:.3g}, {granger}"
        )

    rows = [
        ("from / to (UTC)", f"{result.first:%Y-%m-%d %H:%M} / {result.last:%Y-%m-%d %H:%M}"),
        ("Pearson r, levels (descriptive)", f"{result.pearson_levels:+.3f}"),
        ("Pearson r, first differences (descriptive)", f"{result.pearson_diffs:+.3f}"),
        ("same minute (prewhitened)", f"r = {result.together_r:+.3f}, p = {result.together_p:.3g}"),
        ("posts lead volume by", lead_row(result.posts_lead)),
        ("volume leads posts by", lead_row(result.volume_lead)),
        ("price moves", result.price),
        ("largest |r| (+: posts lead)", f"{result.best_lag:+d} min, r = {result.best_lag_r:+.3f}"),
        (
            "effect of +1 SD posts at the posts lead's lag",
            f"{result.effect:+.3g} [{result.effect_low:+.3g}, {result.effect_high:+.3g}]"
            if not math.isnan(result.effect)
            else "-",
        ),
        ("lead", result.lead),
    ]
    return rows + [(f"check: {c.name}", c.outcome) for c in result.checks]


def as_dict(result: Analysis) -> dict[str, Any]:
    """The report for a page (the dashboard's saved HTML report shows the diagnostics)."""
    return {
        "verdict": result.verdict,
        "lead": result.lead,
        "together": result.together,
        "checks": [{"name": c.name, "outcome": c.outcome} for c in result.checks],
        "cross": {str(k): (None if math.isnan(v) else round(v, 4)) for k, v in result.cross.items()},
        "band": None if math.isnan(result.band) else round(result.band, 4),
    }
