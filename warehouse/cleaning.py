"""The cleaning steps `analyze` takes before it tests (warehouse/analysis.py says why, in order): the daily and
weekly cycles removed, stationarity judged, posts' autocorrelation filtered out. Each step says what it did as a
`Check`, the report's diagnostics line."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np

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


def fourier(minutes: list[datetime], period: int, harmonics: int) -> np.ndarray:
    """Sine and cosine columns of `harmonics` harmonics of a `period`-minute cycle."""
    t = np.array([m.timestamp() / 60 for m in minutes])
    cols = []
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * t / period), np.cos(2 * np.pi * k * t / period)]
    return np.column_stack(cols)


def deseasonalise(minutes: list[datetime], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, Check]:
    """Remove the daily (and weekly) cycle by least squares on Fourier terms, from two days of minutes on; the
    check says what was done."""
    days = len(minutes) / MINUTES_PER_DAY
    if days < 2:
        return (
            x,
            y,
            Check(
                "daily cycle",
                f"not removed: {days * 24:.1f} hours of minutes, two days are needed to tell a shared daily cycle "
                "from a lead; read any lead as provisional",
            ),
        )
    terms = [fourier(minutes, MINUTES_PER_DAY, DAILY_HARMONICS)]
    what = "time of day"
    if days >= 14:
        terms.append(fourier(minutes, 7 * MINUTES_PER_DAY, WEEKLY_HARMONICS))
        what = "time of day and day of week"
    design = np.column_stack([np.ones(len(minutes)), *terms])
    cleaned, shares = [], []
    for series in (x, y):
        coef, *_ = np.linalg.lstsq(design, series, rcond=None)
        rest = series - design @ coef + coef[0]
        cleaned.append(rest)
        total = np.var(series)
        shares.append(0.0 if total == 0 else 1 - np.var(rest) / total)
    return (
        cleaned[0],
        cleaned[1],
        Check(
            "daily cycle",
            f"{what} removed (Fourier terms): it explained {shares[0]:.0%} of posts' variance, "
            f"{shares[1]:.0%} of volume's",
        ),
    )


def stationarity(series: np.ndarray) -> tuple[float, float]:
    """(ADF p: small = stationary, KPSS p: small = not stationary)."""
    from statsmodels.tsa.stattools import adfuller, kpss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adf_p = float(adfuller(series, maxlag=min(15, len(series) // 10), autolag="AIC")[1])
        kpss_p = float(kpss(series, regression="c", nlags="auto")[1])
    return adf_p, kpss_p


def needs_differencing(x: np.ndarray, y: np.ndarray) -> tuple[bool, Check]:
    """Whether to difference: ADF cannot reject a unit root, or KPSS rejects stationarity, for either series.
    Both are then differenced, as Box and Jenkins do before a cross-correlation: a relation between the
    levels becomes one between the changes, where differencing only one series would break it."""
    found = {name: stationarity(s) for name, s in (("posts", x), ("volume", y))}
    needs = [name for name, (adf_p, kpss_p) in found.items() if adf_p > ALPHA or kpss_p < ALPHA]
    detail = "; ".join(f"{name}: ADF p={a:.3g}, KPSS p={k:.3g}" for name, (a, k) in found.items())
    outcome = f"{', '.join(needs)} not stationary: both differenced" if needs else "both stationary: levels kept"
    return bool(needs), Check("stationarity", f"{detail}; {outcome}")


def prewhiten(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Filter each series with its own AR model (order by AIC): Haugh's double prewhitening. What is left of each is
    white noise, so their cross-correlation at a lag is not smeared by either one's memory, and a same-minute link
    (news moving both, then fading) stays at lag 0 instead of spilling over the lags on both sides. Both keep the
    same length (the longer order's). Returns (posts, volume, posts' order)."""
    px, fx = _ar_filter(x, max_lag)
    py, fy = _ar_filter(y, max_lag)
    start = max(px, py)
    return fx[start - px :], fy[start - py :], px


def _ar_filter(s: np.ndarray, max_lag: int) -> tuple[int, np.ndarray]:
    """(the AR order AIC picks, the series filtered by that AR model: its innovations). The order is chosen as
    `var_order` chooses it (one lag matrix, every order on the same rows), the model fitted by least squares."""
    p = var_order(s[:, None], min(max_lag, (len(s) - 2) // 2))
    centred = s - s.mean()
    if p == 0:
        return 0, np.asarray(centred, dtype=float)
    design = np.column_stack([np.ones(len(s) - p), *(s[p - i : len(s) - i] for i in range(1, p + 1))])
    phi = np.linalg.lstsq(design, s[p:], rcond=None)[0][1:]
    past = sum(phi[i] * centred[p - 1 - i : len(s) - 1 - i] for i in range(p))
    return p, np.asarray(centred[p:] - past, dtype=float)


def var_order(data: np.ndarray, maxlags: int) -> int:
    """The lag order AIC picks for a VAR with a constant of the columns of `data`, from 0 to `maxlags`: what
    statsmodels' `VAR(data).select_order(maxlags).aic` picks (every order fitted on the same last
    n - maxlags rows; AIC = log det of the ML residual covariance + 2 x free parameters / rows), with the
    lag matrix built and factored once (QR) instead of a VAR model per order (tests/unit/test_analysis.py
    compares the two)."""
    n, k = data.shape
    if maxlags > (n - k - 1) // (1 + k):
        raise ValueError(f"maxlags {maxlags} is too large for {n} observations of {k} series")
    rows = n - maxlags
    target = data[maxlags:]
    design = np.column_stack(
        [np.ones(rows), *(data[maxlags - lag : n - lag] for lag in range(1, maxlags + 1))]
    )  # a constant, then every series at lag 1, lag 2, ...
    # one QR of the whole lag matrix gives every order's residual cross-products: the columns of order p are a
    # prefix of it, and what a prefix leaves of the target is the target less its projection on those columns
    q, _ = np.linalg.qr(design)
    projected = q.T @ target
    total = target.T @ target
    aic = []
    for p in range(maxlags + 1):
        used = projected[: 1 + k * p]
        sign, logdet = np.linalg.slogdet((total - used.T @ used) / rows)
        aic.append((logdet if sign > 0 else -np.inf) + 2 * (p * k * k + k) / rows)
    return int(np.argmin(aic))
