"""Performance measures of likelihood ratios, on weighted points.

Every function takes log10 LRs, labels (True = same person, H1) and non-negative weights (a histogram bin
is one point whose weight is its count; an exact score has weight 1). With unit weights they reproduce
lir 1.3.1 (``lir.metrics``, ``lir.algorithms.bayeserror.elub``, ``lir.metrics.devpav``): see
``tests/golden/lir.json``.

* Cllr (Brümmer & du Preez 2006), equal class weights: the mean over both classes of the log2 cost.
* PAV (pool adjacent violators, isotonic regression of the label on the LR with class-balanced weights,
  tied inputs pooled first), and Cllr_min = Cllr of the PAV-transformed LRs.
* devPAV (Vergeer et al. 2021): mean absolute distance between the PAV transform and the identity line
  (log10 scale), over the range where the PAV LRs are finite.
* ELUB (Vergeer et al. 2016): the empirical lower and upper bounds, the most extreme log10 LRs the data
  support (expected utility never below that of the neutral LR = 1, one misleading point of each
  class added), on a grid of 0.01.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import isotonic_regression

from faceaudit.evidence.errors import NoMatedScoresError, NoNonMatedScoresError

__all__ = ["cllr", "pav_log10_lr", "pav_fit", "cllr_min", "devpav", "elub", "misleading"]

LN10 = np.log(10.0)


def check_weighted_labels(mated: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    w1 = float(weight[mated].sum())
    w0 = float(weight[~mated].sum())
    if w1 <= 0:
        raise NoMatedScoresError("no same-person (mated) comparisons carry weight")
    if w0 <= 0:
        raise NoNonMatedScoresError("no different-person (non-mated) comparisons carry weight")
    return w1, w0


def _unit(weight: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)


def cllr(llr: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Log-likelihood-ratio cost in bits: 1 for an uninformative system, 0 for a perfect one."""
    llr, mated = np.asarray(llr, np.float64), np.asarray(mated, bool)
    weight = _unit(weight, llr.size)
    w1, w0 = check_weighted_labels(mated, weight)
    # log2(1 + 10^x) = logaddexp(0, x ln 10) / ln 2: no overflow for large |x|
    with np.errstate(invalid="ignore"):
        cost1 = np.logaddexp(0.0, -llr[mated] * LN10) / np.log(2.0)
        cost0 = np.logaddexp(0.0, llr[~mated] * LN10) / np.log(2.0)
    c1 = _wsum(cost1, weight[mated]) / w1
    c0 = _wsum(cost0, weight[~mated]) / w0
    return float((c0 + c1) / 2.0)


def _wsum(cost: np.ndarray, w: np.ndarray) -> float:
    """Weighted sum where a zero weight times an infinite cost counts as 0 (a point not drawn)."""
    keep = w > 0
    return float(np.dot(cost[keep], w[keep]))


def pav_fit(
    x: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic fit of P(same | x) with class-balanced weights: (unique x ascending, log10 LR there).

    Class-balanced weights make the fitted odds the likelihood ratio (as lir's IsotonicCalibrator). Tied
    x are pooled before the fit, so equal inputs always get equal outputs.
    """
    x, mated = np.asarray(x, np.float64), np.asarray(mated, bool)
    weight = _unit(weight, x.size)
    w1, w0 = check_weighted_labels(mated, weight)
    ux, inv = np.unique(x, return_inverse=True)
    a1 = np.bincount(inv, weights=np.where(mated, weight, 0.0), minlength=ux.size)
    a0 = np.bincount(inv, weights=np.where(mated, 0.0, weight), minlength=ux.size)
    return _pav_unique(ux, a1 / w1, a0 / w0)


def _pav_unique(ux: np.ndarray, a1: np.ndarray, a0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PAV on unique inputs with class-normalised weights per input (each class sums to 1)."""
    total = a1 + a0
    keep = total > 0  # a unique x whose points all have weight 0 is not data
    ux, a1, total = ux[keep], a1[keep], total[keep]
    p = isotonic_regression(a1 / total, weights=total, increasing=True).x
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return ux, np.log10(p) - np.log10(1.0 - p)


def pav_log10_lr(x: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """The PAV-transformed log10 LR of every input point (in input order)."""
    ux, out = pav_fit(x, mated, weight)
    idx = np.searchsorted(ux, np.asarray(x, np.float64))
    idx = np.clip(idx, 0, ux.size - 1)  # points of weight 0 outside the fitted range: nearest end
    return out[idx]


def cllr_min(llr: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Cllr after the optimal monotone recalibration (PAV): the discrimination part of Cllr."""
    return cllr(pav_log10_lr(llr, mated, weight), mated, weight)


def devpav(llr: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean |PAV(x) - x| (log10) over the range of x where PAV is finite; nan where none is."""
    return _devpav_xy(*pav_fit(llr, mated, weight))  # unique inputs (weight > 0) and their PAV values


def _devpav_xy(x: np.ndarray, y: np.ndarray) -> float:
    if np.isinf(x).any():  # an infinite input LR: lir's pathological cases
        return _devpav_infinite(x, y)
    fin = np.isfinite(y)
    if not fin.any():
        return float("nan")
    x, y = x[fin], y[fin]
    if x.size == 1:
        return float(abs(x[0] - y[0]))
    d1, d2, dx = y[:-1] - x[:-1], y[1:] - x[1:], np.diff(x)
    same = d1 * d2 >= 0
    a1, a2 = np.abs(d1), np.abs(d2)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = dx * (d1**2 + d2**2) / (2.0 * (a1 + a2))
    area = np.where(same, dx * (a1 + a2) / 2.0, crossing)
    return float(area.sum() / (x[-1] - x[0]))


def _devpav_infinite(x: np.ndarray, y: np.ndarray) -> float:
    # lir: a PAV transform that stays finite up to an infinite input LR has infinite deviation
    if (y[0] != -np.inf and x[-1] == np.inf and y[-1] != np.inf) or (y[0] != -np.inf and x[0] == -np.inf):
        return float("inf")
    return float("nan")


def _accept_share(lr_sorted: np.ndarray, cum_w: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Weighted count of LRs strictly above each threshold."""
    k = np.searchsorted(lr_sorted, thresholds, side="right")
    return cum_w[-1] - np.concatenate([[0.0], cum_w])[k]


def elub(
    llr: np.ndarray,
    mated: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    add_misleading: float = 1.0,
    step: float = 0.01,
    extremes: tuple[float, float] = (-9.0, 9.0),
) -> tuple[float, float]:
    """Empirical lower and upper bound on log10 LR (Vergeer et al. 2016), as lir 1.3.1 computes it."""
    llr, mated = np.clip(np.asarray(llr, np.float64), *extremes), np.asarray(mated, bool)
    weight = _unit(weight, llr.size)
    w1, w0 = check_weighted_labels(mated, weight)
    lo = max(float(llr[weight > 0].min()), -np.log10(w1 + 1))
    hi = min(float(llr[weight > 0].max()), np.log10(w0 + 1))
    s_lo, s_hi = min(0, int(np.floor_divide(lo, step))), max(0, int(np.floor_divide(hi, step)) + 1)
    grid = np.linspace(s_lo * step, s_hi * step, s_hi - s_lo + 1)
    t = 10**grid
    neutral = 1.0 - (1.0 > t) + t * (1.0 > t)
    lr = 10**llr
    parts = []
    for cls in (True, False):
        o = np.argsort(lr[mated == cls], kind="stable")
        parts.append(_accept_share(lr[mated == cls][o], np.cumsum(weight[mated == cls][o]), t))
    p1 = parts[0] / (w1 + add_misleading)
    p0 = (parts[1] + add_misleading) / (w0 + add_misleading)
    ratio = neutral / (1.0 - p1 + t * p0)
    left = grid[(grid <= 0) & (ratio < 1)]
    right = grid[(grid >= 0) & (ratio < 1)]
    lower = np.max(left + step, initial=grid.min())
    upper = np.min(right - step, initial=grid.max())
    return float(min(lower, 0.0)), float(max(upper, 0.0))


def misleading(
    llr: np.ndarray, mated: np.ndarray, weight: np.ndarray | None = None, strong: float = 2.0
) -> dict[str, float]:
    """Rates of misleading evidence: LR < 1 for the same person, LR > 1 for different people, and of
    strongly misleading evidence (|log10 LR| > ``strong`` the wrong way); NaN where a class is empty."""
    llr, mated = np.asarray(llr, np.float64), np.asarray(mated, bool)
    w = _unit(weight, llr.size)
    w1, w0 = float(w[mated].sum()), float(w[~mated].sum())
    nan = float("nan")
    return {
        "mated_below_1": float(w[mated][llr[mated] < 0].sum() / w1) if w1 > 0 else nan,
        "nonmated_above_1": float(w[~mated][llr[~mated] > 0].sum() / w0) if w0 > 0 else nan,
        "mated_strongly": float(w[mated][llr[mated] < -strong].sum() / w1) if w1 > 0 else nan,
        "nonmated_strongly": float(w[~mated][llr[~mated] > strong].sum() / w0) if w0 > 0 else nan,
    }


def _costs(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log2 costs of each log10 LR as a same-person and as a different-person comparison."""
    with np.errstate(invalid="ignore"):
        return np.logaddexp(0.0, -u * LN10) / np.log(2.0), np.logaddexp(0.0, u * LN10) / np.log(2.0)


class PreparedLLR:
    """Fixed LRs under many weightings (bootstrap replicates): sorted once, each weighting then costs a
    few bincounts and one isotonic fit over the distinct LRs. Gives exactly what the functions above give."""

    def __init__(self, llr: np.ndarray, mated: np.ndarray) -> None:
        self.mated = np.asarray(mated, bool)
        self.ux, inv = np.unique(np.asarray(llr, np.float64), return_inverse=True)
        self.inv = inv.ravel()
        self.cost1, self.cost0 = _costs(self.ux)

    def stats(self, w: np.ndarray, strong: float) -> dict[str, float]:
        n = self.ux.size
        a1 = np.bincount(self.inv, weights=np.where(self.mated, w, 0.0), minlength=n)
        a0 = np.bincount(self.inv, weights=np.where(self.mated, 0.0, w), minlength=n)
        w1, w0 = a1.sum(), a0.sum()
        nan = float("nan")
        out = dict.fromkeys(("cllr", "cllr_min", "cllr_cal", "devpav"), nan)
        if w1 > 0 and w0 > 0:
            c = (_wsum(self.cost1, a1) / w1 + _wsum(self.cost0, a0) / w0) / 2.0
            x, y = _pav_unique(self.ux, a1 / w1, a0 / w0)
            keep = (a1 + a0) > 0
            p1, p0 = _costs(y)
            cmin = (_wsum(p1, a1[keep]) / w1 + _wsum(p0, a0[keep]) / w0) / 2.0
            out.update(cllr=float(c), cllr_min=float(cmin), cllr_cal=float(c - cmin), devpav=_devpav_xy(x, y))
        u = self.ux
        out["mated_below_1"] = float(a1[u < 0].sum() / w1) if w1 > 0 else nan
        out["nonmated_above_1"] = float(a0[u > 0].sum() / w0) if w0 > 0 else nan
        out["mated_strongly"] = float(a1[u < -strong].sum() / w1) if w1 > 0 else nan
        out["nonmated_strongly"] = float(a0[u > strong].sum() / w0) if w0 > 0 else nan
        return out
