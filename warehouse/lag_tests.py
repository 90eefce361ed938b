"""The tests `analyze` runs on the cleaned series: the cross-correlation over lags and its peak's p-value (circular
shift surrogates), Granger causality in a VAR whose order AIC picks, and the effect's size."""

from __future__ import annotations

import math

import numpy as np

from warehouse.cleaning import ALPHA


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


def circular_ccf(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r of a(t) with b(t + j) for every circular shift j (one FFT)."""
    a = (a - a.mean()) / (a.std() or 1)
    b = (b - b.mean()) / (b.std() or 1)
    return np.asarray(np.real(np.fft.ifft(np.conj(np.fft.fft(a)) * np.fft.fft(b))) / len(a), dtype=float)


def cross(a: np.ndarray, b: np.ndarray, limit: int) -> tuple[dict[int, float], float]:
    """r at every lag from -limit to limit, and the 95% band of white noise."""
    return {lag: lagged_r(a, b, lag) for lag in range(-limit, limit + 1)}, 1.96 / math.sqrt(len(a))


def peak_p(a: np.ndarray, b: np.ndarray, limit: int) -> float:
    """Share of circular shifts of posts against volume whose largest |r| over lags -limit..limit reaches the
    unshifted one's: a p-value that pays for having searched every lag. Both sides use the circular r, so
    the comparison is like for like."""
    n = len(a)
    full = np.abs(circular_ccf(a, b))
    window = np.arange(-limit, limit + 1)
    shifts = np.arange(2 * limit + 1, n - 2 * limit)  # no shifted window overlaps the real one
    if len(shifts) < 20:
        return math.nan
    observed = full[window % n].max()
    peaks = full[(shifts[:, None] + window[None, :]) % n].max(axis=1)
    return float((1 + np.sum(peaks >= observed - 1e-12)) / (1 + len(shifts)))


def lags(series: np.ndarray, p: int) -> np.ndarray:
    """Columns series(t-1) .. series(t-p) for t = p .. n-1."""
    n = len(series)
    return np.column_stack([series[p - i : n - i] for i in range(1, p + 1)])


def granger_p(effect: np.ndarray, cause: np.ndarray, order: int) -> float:
    """p-value that `cause`'s past `order` minutes help predict `effect` beyond `effect`'s own past: a Wald
    F test with Newey-West (HAC) errors, robust to volatility bursts and to what autocorrelation a
    finite lag order leaves (count noise, differenced, is a moving average no short AR fully absorbs)."""
    import statsmodels.api as sm

    design = sm.add_constant(np.column_stack([lags(effect, order), lags(cause, order)]))
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


def effect(x: np.ndarray, y: np.ndarray, lag: int, order: int) -> tuple[float, float, float]:
    """OLS of cleaned volume on its own past (`order` minutes) and on posts `lag` minutes earlier, in SDs of posts:
    (estimate, low, high) of its 95% interval."""
    import statsmodels.api as sm

    z = (x - x.mean()) / (x.std() or 1)
    start = max(order, lag)
    rows = len(y) - start
    own = [y[start - i : start - i + rows] for i in range(1, order + 1)]
    design = sm.add_constant(np.column_stack([*own, z[start - lag : start - lag + rows]]))
    fit = sm.OLS(y[start:], design).fit()
    low, high = fit.conf_int(ALPHA)[-1]
    return float(fit.params[-1]), float(low), float(high)
