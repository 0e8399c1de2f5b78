"""Summary measures of how error rates differ across demographic groups.

Each takes one rate per group (groups without a defined rate are left out by the caller and
reported as such) and returns a number with the formula's source below.
"""

from __future__ import annotations

import numpy as np

from faceaudit.errors import InputError

__all__ = ["max_min_ratio", "max_geomean_ratio", "fairness_discrepancy_rate", "garbe", "gini"]


def _rates(rates) -> np.ndarray:
    r = np.asarray(list(rates), dtype=np.float64)
    if r.ndim != 1 or r.size < 2:
        raise InputError("a differential needs the rates of at least two groups")
    if np.any(~np.isfinite(r)) or np.any(r < 0) or np.any(r > 1):
        raise InputError("group rates must be finite and within [0, 1]")
    return r


def max_min_ratio(rates) -> float:
    """``max_g r_g / min_g r_g``; infinite when the smallest rate is zero and another is not.

    The plain worst-to-best ratio reported in NISTIR 8280 (Grother, Ngan & Hanaoka 2019).
    """
    r = _rates(rates)
    lo, hi = r.min(), r.max()
    if lo == 0:
        return float("nan") if hi == 0 else float("inf")
    return float(hi / lo)


def max_geomean_ratio(rates) -> float:
    """``max_g r_g / (prod_g r_g)^(1/G)``: NIST FRVT Part 8 (Grother 2022, "Face Recognition Vendor
    Test Part 8: Summarizing Demographic Differentials", NISTIR 8429), which uses the geometric mean
    so that one very low rate does not dominate as it does in max/min."""
    r = _rates(rates)
    if np.any(r == 0):
        return float("nan") if r.max() == 0 else float("inf")
    return float(r.max() / np.exp(np.mean(np.log(r))))


def fairness_discrepancy_rate(fmr_rates, fnmr_rates, alpha: float = 0.5) -> float:
    """FDR(t) = 1 - (alpha * A(t) + (1 - alpha) * B(t)), with A the largest difference in FMR
    between two groups and B the largest difference in FNMR.

    de Freitas Pereira & Marcel (2021), "Fairness in Biometrics: a figure of merit to assess
    biometric verification systems", IEEE T-BIOM 4(1). 1 is perfectly fair, 0 maximally unfair.
    """
    a = _rates(fmr_rates)
    b = _rates(fnmr_rates)
    if not 0 <= alpha <= 1:
        raise InputError("alpha must lie in [0, 1]")
    return float(1.0 - (alpha * (a.max() - a.min()) + (1 - alpha) * (b.max() - b.min())))


def gini(rates) -> float:
    """Gini coefficient with the small-sample correction n/(n-1) used by GARBE:
    ``G = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``; 0 when all rates are zero."""
    x = _rates(rates)
    n = x.size
    mean = x.mean()
    if mean == 0:
        return 0.0
    return float(n / (n - 1) * np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * mean))


def garbe(fmr_rates, fnmr_rates, alpha: float = 0.5) -> float:
    """GARBE(t) = alpha * Gini(FMR by group) + (1 - alpha) * Gini(FNMR by group).

    Gini Aggregation Rate for Biometric Equitability: Howard, Laird, Rubin, Sirotin, Tipton & Vemury
    (2022), "Evaluating Proposed Fairness Models for Face Recognition Algorithms", arXiv:2203.05051;
    proposed for ISO/IEC 19795-10. 0 is perfectly equitable; larger is less.
    """
    if not 0 <= alpha <= 1:
        raise InputError("alpha must lie in [0, 1]")
    return float(alpha * gini(fmr_rates) + (1 - alpha) * gini(fnmr_rates))
