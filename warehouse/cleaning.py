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
