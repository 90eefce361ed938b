"""Does chatter move with trading, and which leads? An answer that holds when there is nothing to find.

Posts per minute and volume per minute both swing with the time of day and wander for hours, so
correlations of their levels say "posts lead volume" whatever the truth is. The report therefore
tests on series cleaned of what would fool it, in this order, and says what it did:

1. log1p of both (counts and volumes are skewed; a relation is proportional, not additive);
2. the time-of-day cycle (and the day-of-week cycle from two weeks on) removed by regression on
   Fourier terms, once there are two days of minutes; its share of the variance is reported;
3. ADF and KPSS per series: when either test calls either series non-stationary, both are differenced;
4. prewhitening: an AR model of posts (order by AIC) filters both series, so the cross-correlation
   of what is left is not smeared by autocorrelation; bands at +-1.96/sqrt(n), and the peak's
   p-value pays for the search over lags (circular-shift surrogates: every shift of posts against
   volume, the largest |r| over all lags each time);
5. Granger causality both ways in a VAR whose order AIC chose (never the peak's lag), with an
   effect size: how much volume moves per extra standard deviation of posts at the peak's lag.

"Posts lead volume" is said only when the peak is at a positive lag, beats its surrogates at 5%,
and Granger posts -> volume is significant at 5%; otherwise the verdict is "no evidence".
`python -m benchmarks.analysis_calibration` measures how often that is wrong. The cleaning steps are in
`warehouse/cleaning.py`, the tests in `warehouse/lag_tests.py`; the verdict is here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

from warehouse.cleaning import ALPHA, Check, deseasonalise, needs_differencing, prewhiten
from warehouse.lag_tests import cross, effect, granger_p, peak_p, rolling_r, var_order

MIN_MINUTES = 60


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
    #: the prewhitened cross-correlation: r per lag (+: posts lead), its band, its peak and the peak's p
    cross: dict[int, float] = field(default_factory=dict)
    band: float = math.nan
    best_lag: int = 0
    best_lag_r: float = math.nan
    peak_p: float = math.nan
    prewhiten_order: int = 0
    #: Granger causality in a VAR of the cleaned series
    var_order: int = 0
    granger_posts_to_volume_p: float = math.nan
    granger_volume_to_posts_p: float = math.nan
    #: volume's response to +1 SD of posts `best_lag` minutes earlier (in the cleaned volume's units)
    effect: float = math.nan
    effect_low: float = math.nan
    effect_high: float = math.nan
    effect_unit: str = ""
    #: descriptive: correlation of the levels over a rolling window
    rolling: list[float] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    lead: str = "none"
    verdict: str = ""


def analyze(
    minutes: list[datetime], posts: np.ndarray, volume: np.ndarray, *, max_lag: int = 30, window: int = 60
) -> Analysis:
    """Every figure of the report; `enough` is False (and the verdict says so) below MIN_MINUTES minutes."""
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
    out.checks.append(Check("transform", "log1p of posts and of volume"))
    # whether to difference is judged on the levels without their daily cycle (a cycle alone is no unit
    # root); the cycle is then removed from what is analysed: the levels, or their differences
    differenced, check = needs_differencing(*deseasonalise(minutes, x, y)[:2])
    out.checks.append(check)
    if differenced:
        x, y, minutes = np.diff(x), np.diff(y), minutes[1:]
    x, y, check = deseasonalise(minutes, x, y)
    out.checks.append(check)
    limit = max(1, min(max_lag, len(x) // 8))  # leaves n/2 circular shifts for the peak's p-value
    a, b, out.prewhiten_order = prewhiten(x, y, max(1, min(15, len(x) // 20)))
    out.cross, out.band = cross(a, b, limit)
    finite = {lag: r for lag, r in out.cross.items() if not math.isnan(r)}
    if finite:
        out.best_lag = max(finite, key=lambda k: (abs(finite[k]), -abs(k)))
        out.best_lag_r = finite[out.best_lag]
        out.peak_p = peak_p(a, b, limit)
    out.checks.append(
        Check(
            "prewhitened cross-correlation",
            f"AR({out.prewhiten_order}) filter of posts; peak r={out.best_lag_r:+.3f} at lag {out.best_lag:+d} min "
            f"(band +-{out.band:.3f}); p={out.peak_p:.3g} against every circular shift, all lags searched",
        )
    )
    _granger(x, y, limit, out)
    _effect(x, y, out, differenced)
    _verdict(out)
    return out


def _granger(x: np.ndarray, y: np.ndarray, limit: int, out: Analysis) -> None:
    # The order comes from an information criterion over the VAR of both series, never from the
    # cross-correlation's peak (choosing it from the peak found in the same data is lag hunting).
    out.var_order = max(1, var_order(np.column_stack([y, x]), min(limit, 15)))
    out.granger_posts_to_volume_p = granger_p(y, x, out.var_order)
    out.granger_volume_to_posts_p = granger_p(x, y, out.var_order)
    out.checks.append(
        Check(
            "Granger causality",
            f"VAR({out.var_order}), order by AIC: posts -> volume p={out.granger_posts_to_volume_p:.3g}, "
            f"volume -> posts p={out.granger_volume_to_posts_p:.3g} (F tests, Newey-West errors)",
        )
    )


def _effect(x: np.ndarray, y: np.ndarray, out: Analysis, differenced: bool) -> None:
    """Volume's response to +1 SD of posts at the peak's (positive) lag."""
    if out.best_lag <= 0:
        return
    out.effect, out.effect_low, out.effect_high = effect(x, y, out.best_lag, out.var_order)
    out.effect_unit = "change of log(1+volume) per minute" if differenced else "log(1+volume)"


def _verdict(out: Analysis) -> None:
    peak = out.peak_p < ALPHA
    if peak and out.best_lag > 0 and out.granger_posts_to_volume_p < ALPHA:
        out.lead = "posts"
        out.verdict = (
            f"posts lead volume by {out.best_lag} min: prewhitened r={out.best_lag_r:+.2f} (p={out.peak_p:.3g} over "
            f"all lags), Granger posts -> volume p={out.granger_posts_to_volume_p:.3g} in a VAR({out.var_order}); "
            f"+1 SD of posts moves {out.effect_unit} by {out.effect:+.3g} "
            f"(95% CI {out.effect_low:+.3g} .. {out.effect_high:+.3g})"
        )
    elif peak and out.best_lag < 0 and out.granger_volume_to_posts_p < ALPHA:
        out.lead = "volume"
        out.verdict = (
            f"volume leads posts by {-out.best_lag} min: prewhitened r={out.best_lag_r:+.2f} (p={out.peak_p:.3g} "
            f"over all lags), Granger volume -> posts p={out.granger_volume_to_posts_p:.3g} in a VAR({out.var_order})"
        )
    elif peak and out.best_lag == 0:
        out.lead = "together"
        out.verdict = (
            f"they move together within the same minute (prewhitened r={out.best_lag_r:+.2f}, p={out.peak_p:.3g}); "
            "no evidence that either leads"
        )
    else:
        out.verdict = (
            f"no evidence that posts lead volume or volume leads posts: the prewhitened peak (r={out.best_lag_r:+.2f} "
            f"at {out.best_lag:+d} min) has p={out.peak_p:.3g} over all lags; Granger p: posts -> volume "
            f"{out.granger_posts_to_volume_p:.3g}, volume -> posts {out.granger_volume_to_posts_p:.3g}"
        )
    if any(c.name == "daily cycle" and c.outcome.startswith("not removed") for c in out.checks) and out.lead != "none":
        out.verdict += " (provisional: under two days, a shared daily cycle is not removed)"


def describe(result: Analysis) -> list[tuple[str, str]]:
    """The report's rows for one series (measure, value)."""
    if not result.enough:
        return []
    rows = [
        ("from / to (UTC)", f"{result.first:%Y-%m-%d %H:%M} / {result.last:%Y-%m-%d %H:%M}"),
        ("Pearson r, levels (descriptive)", f"{result.pearson_levels:+.3f}"),
        ("Pearson r, first differences (descriptive)", f"{result.pearson_diffs:+.3f}"),
        ("prewhitened peak (+: posts lead)", f"{result.best_lag:+d} min, r = {result.best_lag_r:+.3f}"),
        ("peak p over all lags (shift surrogates)", f"{result.peak_p:.3g}"),
        ("Granger posts -> volume", f"p = {result.granger_posts_to_volume_p:.3g} (VAR {result.var_order})"),
        ("Granger volume -> posts", f"p = {result.granger_volume_to_posts_p:.3g} (VAR {result.var_order})"),
        (
            "effect of +1 SD posts at the peak lag",
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
        "checks": [{"name": c.name, "outcome": c.outcome} for c in result.checks],
        "cross": {str(k): (None if math.isnan(v) else round(v, 4)) for k, v in result.cross.items()},
        "band": None if math.isnan(result.band) else round(result.band, 4),
    }
