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
`python -m benchmarks.analysis_calibration` measures how often that is wrong.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

MIN_MINUTES = 60
ALPHA = 0.05
#: Fourier harmonics of the daily (and weekly) cycle: smooth enough not to eat minute-scale relations.
DAILY_HARMONICS = 4
WEEKLY_HARMONICS = 3
MINUTES_PER_DAY = 1440


@dataclass
class Check:
    """One line of the report's diagnostics: what was checked, and what came out."""

    name: str
    outcome: str


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


def lagged_r(posts: np.ndarray, volume: np.ndarray, lag: int) -> float:
    """Pearson r of posts(t) with volume(t + lag)."""
    if lag > 0:
        a, b = posts[:-lag], volume[lag:]
    elif lag < 0:
        a, b = posts[-lag:], volume[:lag]
    else:
        a, b = posts, volume
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def rolling_r(a: np.ndarray, b: np.ndarray, window: int) -> list[float]:
    """Pearson r of a and b over each `window` consecutive minutes, ending at minute window-1, window, ...
    (NaN where either is constant in the window)."""
    a = np.asarray(a, dtype=float) - np.mean(a)
    b = np.asarray(b, dtype=float) - np.mean(b)
    if len(a) < window:
        return []

    def sums(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return np.asarray(c[window:] - c[:-window], dtype=float)

    sa, sb = sums(a), sums(b)
    cov = sums(a * b) - sa * sb / window
    va, vb = sums(a * a) - sa * sa / window, sums(b * b) - sb * sb / window
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(va * vb)
    scale = 1e-9 * max(float(np.max(np.abs(a))) ** 2, float(np.max(np.abs(b))) ** 2, 1e-300)
    r[(va <= scale) | (vb <= scale)] = np.nan
    return [float(v) for v in np.clip(r, -1, 1)]


def analyze(
    minutes: list[datetime], posts: np.ndarray, volume: np.ndarray, *, max_lag: int = 30, window: int = 60
) -> Analysis:
    """Every figure of the report; `enough` is False (and the verdict says so) below MIN_MINUTES minutes."""
    out = Analysis(minutes=len(minutes), first=minutes[0] if minutes else None, last=minutes[-1] if minutes else None)
    if len(minutes) < MIN_MINUTES or np.std(posts) == 0 or np.std(volume) == 0:
        out.verdict = (
            f"too little data to conclude anything: {len(minutes)} minutes with candles "
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
    differenced = _needs_differencing(*_deseasonalise(minutes, x, y, None), out)
    if differenced:
        x, y, minutes = np.diff(x), np.diff(y), minutes[1:]
    x, y = _deseasonalise(minutes, x, y, out)
    limit = max(1, min(max_lag, len(x) // 8))  # leaves n/2 circular shifts for the peak's p-value
    a, b, out.prewhiten_order = _prewhiten(x, y, max(1, min(15, len(x) // 20)))
    out.cross, out.band = _cross(a, b, limit)
    finite = {lag: r for lag, r in out.cross.items() if not math.isnan(r)}
    if finite:
        out.best_lag = max(finite, key=lambda k: (abs(finite[k]), -abs(k)))
        out.best_lag_r = finite[out.best_lag]
        out.peak_p = _peak_p(a, b, limit)
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


def _fourier(minutes: list[datetime], period: int, harmonics: int) -> np.ndarray:
    t = np.array([m.timestamp() / 60 for m in minutes])
    cols = []
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * t / period), np.cos(2 * np.pi * k * t / period)]
    return np.column_stack(cols)


def _deseasonalise(
    minutes: list[datetime], x: np.ndarray, y: np.ndarray, out: Analysis | None
) -> tuple[np.ndarray, np.ndarray]:
    """Remove the daily (and weekly) cycle by least squares on Fourier terms, from two days of minutes on
    (reported in `out` when given)."""
    days = len(minutes) / MINUTES_PER_DAY
    if days < 2:
        if out is None:
            return x, y
        out.checks.append(
            Check(
                "daily cycle",
                f"not removed: {days * 24:.1f} hours of minutes, two days are needed to tell a shared daily cycle "
                "from a lead; read any lead as provisional",
            )
        )
        return x, y
    terms = [_fourier(minutes, MINUTES_PER_DAY, DAILY_HARMONICS)]
    what = "time of day"
    if days >= 14:
        terms.append(_fourier(minutes, 7 * MINUTES_PER_DAY, WEEKLY_HARMONICS))
        what = "time of day and day of week"
    design = np.column_stack([np.ones(len(minutes)), *terms])
    cleaned, shares = [], []
    for series in (x, y):
        coef, *_ = np.linalg.lstsq(design, series, rcond=None)
        rest = series - design @ coef + coef[0]
        cleaned.append(rest)
        total = np.var(series)
        shares.append(0.0 if total == 0 else 1 - np.var(rest) / total)
    if out is None:
        return cleaned[0], cleaned[1]
    out.checks.append(
        Check(
            "daily cycle",
            f"{what} removed (Fourier terms): it explained {shares[0]:.0%} of posts' variance, "
            f"{shares[1]:.0%} of volume's",
        )
    )
    return cleaned[0], cleaned[1]


def _stationarity(series: np.ndarray) -> tuple[float, float]:
    """(ADF p: small = stationary, KPSS p: small = not stationary)."""
    from statsmodels.tsa.stattools import adfuller, kpss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adf_p = float(adfuller(series, maxlag=min(15, len(series) // 10), autolag="AIC")[1])
        kpss_p = float(kpss(series, regression="c", nlags="auto")[1])
    return adf_p, kpss_p


def _needs_differencing(x: np.ndarray, y: np.ndarray, out: Analysis) -> bool:
    """Whether to difference: ADF cannot reject a unit root, or KPSS rejects stationarity, for either series.
    Both are then differenced, as Box and Jenkins do before a cross-correlation: a relation between the
    levels becomes one between the changes, where differencing only one series would break it."""
    found = {name: _stationarity(s) for name, s in (("posts", x), ("volume", y))}
    needs = [name for name, (adf_p, kpss_p) in found.items() if adf_p > ALPHA or kpss_p < ALPHA]
    detail = "; ".join(f"{name}: ADF p={a:.3g}, KPSS p={k:.3g}" for name, (a, k) in found.items())
    outcome = f"{', '.join(needs)} not stationary: both differenced" if needs else "both stationary: levels kept"
    out.checks.append(Check("stationarity", f"{detail}; {outcome}"))
    return bool(needs)


def _prewhiten(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Filter both series with posts' AR model (order by AIC); what is left of posts is white noise."""
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        order = ar_select_order(x, maxlag=max_lag, ic="aic", trend="c").ar_lags
        p = max(order) if order else 0
        if p == 0:
            return x - x.mean(), y - y.mean(), 0
        phi = AutoReg(x, lags=p, trend="c").fit().params[1:]

    def whiten(s: np.ndarray) -> np.ndarray:
        s = s - s.mean()
        past = sum(phi[i] * s[p - 1 - i : len(s) - 1 - i] for i in range(p))
        return np.asarray(s[p:] - past, dtype=float)

    return whiten(x), whiten(y), p


def _circular_ccf(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r of a(t) with b(t + j) for every circular shift j (one FFT)."""
    a = (a - a.mean()) / (a.std() or 1)
    b = (b - b.mean()) / (b.std() or 1)
    return np.asarray(np.real(np.fft.ifft(np.conj(np.fft.fft(a)) * np.fft.fft(b))) / len(a), dtype=float)


def _cross(a: np.ndarray, b: np.ndarray, limit: int) -> tuple[dict[int, float], float]:
    return {lag: lagged_r(a, b, lag) for lag in range(-limit, limit + 1)}, 1.96 / math.sqrt(len(a))


def _peak_p(a: np.ndarray, b: np.ndarray, limit: int) -> float:
    """Share of circular shifts of posts against volume whose largest |r| over lags -limit..limit reaches the
    unshifted one's: a p-value that pays for having searched every lag. Both sides use the circular r, so
    the comparison is like for like."""
    n = len(a)
    full = np.abs(_circular_ccf(a, b))
    window = np.arange(-limit, limit + 1)
    shifts = np.arange(2 * limit + 1, n - 2 * limit)  # no shifted window overlaps the real one
    if len(shifts) < 20:
        return math.nan
    observed = full[window % n].max()
    peaks = full[(shifts[:, None] + window[None, :]) % n].max(axis=1)
    return float((1 + np.sum(peaks >= observed - 1e-12)) / (1 + len(shifts)))


def _lags(series: np.ndarray, p: int) -> np.ndarray:
    """Columns series(t-1) .. series(t-p) for t = p .. n-1."""
    n = len(series)
    return np.column_stack([series[p - i : n - i] for i in range(1, p + 1)])


def granger_p(effect: np.ndarray, cause: np.ndarray, order: int) -> float:
    """p-value that `cause`'s past `order` minutes help predict `effect` beyond `effect`'s own past: a Wald
    F test with Newey-West (HAC) errors, robust to volatility bursts and to what autocorrelation a
    finite lag order leaves (count noise, differenced, is a moving average no short AR fully absorbs)."""
    import statsmodels.api as sm

    design = sm.add_constant(np.column_stack([_lags(effect, order), _lags(cause, order)]))
    bandwidth = int(4 * (len(effect) / 100) ** (2 / 9))  # Newey-West's rule of thumb
    fit = sm.OLS(effect[order:], design).fit(cov_type="HAC", cov_kwds={"maxlags": bandwidth})
    restriction = np.zeros((order, design.shape[1]))
    restriction[:, 1 + order :] = np.eye(order)
    return float(fit.f_test(restriction).pvalue)


def var_order(data: np.ndarray, maxlags: int) -> int:
    """The lag order AIC picks for a VAR with a constant of the columns of `data`, from 0 to `maxlags`: what
    statsmodels' `VAR(data).select_order(maxlags).aic` picks (every order fitted on the same last
    n - maxlags rows; AIC = log det of the ML residual covariance + 2 x free parameters / rows), with the
    lag matrix built once and one least-squares fit per order instead of a VAR model per order (10x
    cheaper; tests/unit/test_analysis.py compares the two)."""
    n, k = data.shape
    if maxlags > (n - k - 1) // (1 + k):
        raise ValueError(f"maxlags {maxlags} is too large for {n} observations of {k} series")
    rows = n - maxlags
    target = data[maxlags:]
    design = np.column_stack(
        [np.ones(rows), *(data[maxlags - lag : n - lag] for lag in range(1, maxlags + 1))]
    )  # a constant, then every series at lag 1, lag 2, ...
    aic = []
    for p in range(maxlags + 1):
        columns = design[:, : 1 + k * p]
        coefficients = np.linalg.lstsq(columns, target, rcond=1e-15)[0]
        resid = target - columns @ coefficients
        sign, logdet = np.linalg.slogdet(resid.T @ resid / rows)
        aic.append((logdet if sign > 0 else -np.inf) + 2 * (p * k * k + k) / rows)
    return int(np.argmin(aic))


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
    """OLS of cleaned volume on its own past (the VAR's order) and on posts `best_lag` minutes earlier, in SDs."""
    k, p = out.best_lag, out.var_order
    if k <= 0:
        return
    import statsmodels.api as sm

    z = (x - x.mean()) / (x.std() or 1)
    start = max(p, k)
    rows = len(y) - start
    own = [y[start - i : start - i + rows] for i in range(1, p + 1)]
    design = sm.add_constant(np.column_stack([*own, z[start - k : start - k + rows]]))
    fit = sm.OLS(y[start:], design).fit()
    low, high = fit.conf_int(ALPHA)[-1]
    out.effect, out.effect_low, out.effect_high = float(fit.params[-1]), float(low), float(high)
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
