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
    return shift_p(a, b, np.arange(-limit, limit + 1), mirrored=False, limit=limit)[1]


def shift_p(a: np.ndarray, b: np.ndarray, searched: np.ndarray, *, mirrored: bool, limit: int) -> tuple[int, float]:
    """(the lag of the searched lags where the statistic peaks, its p-value against every circular shift of volume).

    The statistic at lag k is |r(k)|, or with `mirrored` |r(k)| - |r(-k)|: how much more posts k minutes earlier
    go with volume than posts k minutes later do. A same-minute link that persists a few minutes (news that moves
    both for a while) spreads over +-1, +-2 alike; a lead is what its mirror lacks. The p-value pays for the
    search over `searched` (the largest statistic of each shift is compared), and no shifted window overlaps
    the real one (shifts from 2 x limit + 1 on)."""
    n = len(a)
    full = np.abs(circular_ccf(a, b))
    shifts = np.arange(2 * limit + 1, n - 2 * limit)
    if len(shifts) < 20:
        return int(searched[0]), math.nan

    def stat(offset: np.ndarray) -> np.ndarray:
        here = full[(offset[..., None] + searched) % n]
        return np.asarray(here - full[(offset[..., None] - searched) % n] if mirrored else here, dtype=float)

    observed = stat(np.zeros(1, dtype=int))[0]
    best = int(np.argmax(observed))
    peaks = stat(shifts).max(axis=1)
    return int(searched[best]), float((1 + np.sum(peaks >= observed[best] - 1e-12)) / (1 + len(shifts)))


def lags(series: np.ndarray, p: int) -> np.ndarray:
    """Columns series(t-1) .. series(t-p) for t = p .. n-1."""
    n = len(series)
    return np.column_stack([series[p - i : n - i] for i in range(1, p + 1)])


#: Minutes of price moves a Granger test holds fixed besides the same minute's (a price move brings trading and
#: posting for several minutes, whatever the VAR's order)
HELD_LAGS = 10


def granger_p(effect: np.ndarray, cause: np.ndarray, order: int, held: np.ndarray | None = None) -> float:
    """p-value that `cause`'s past `order` minutes help predict `effect` beyond `effect`'s own past and `cause`'s
    value in the same minute (a same-minute link is a claim of its own, and news that moves both at once and
    fades would otherwise read as the past predicting), and, with `held`, beyond each of its columns in the same
    minute and the HELD_LAGS before (the price moves): a Wald
    F test with Newey-West (HAC) errors, robust to volatility bursts and to what autocorrelation a
    finite lag order leaves (count noise, differenced, is a moving average no short AR fully absorbs)."""
    import statsmodels.api as sm

    start = max(order, HELD_LAGS if held is not None else order)
    columns = [lags(effect, order)[start - order :], lags(cause, order)[start - order :], cause[start:, None]]
    for regressor in [] if held is None else np.asarray(held).reshape(len(effect), -1).T:
        columns += [regressor[start:, None], lags(regressor, HELD_LAGS)[start - HELD_LAGS :]]
    if np.ptp(effect) == 0 or np.ptp(cause) == 0:
        return math.nan  # a series that does not vary: nothing can be tested
    design = sm.add_constant(np.column_stack(columns), has_constant="add")
    bandwidth = int(4 * (len(effect) / 100) ** (2 / 9))  # Newey-West's rule of thumb
    fit = sm.OLS(effect[start:], design).fit(cov_type="HAC", cov_kwds={"maxlags": bandwidth})
    restriction = np.zeros((order, design.shape[1]))
    restriction[:, 1 + order : 1 + 2 * order] = np.eye(order)
    return float(fit.f_test(restriction).pvalue)


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
