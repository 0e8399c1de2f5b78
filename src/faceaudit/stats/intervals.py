"""Intervals on error rates.

* :func:`clopper_pearson`: the exact binomial interval (Clopper & Pearson 1934), which never falls
  below its nominal coverage; it treats comparisons as independent trials, which they are not when
  they share a person, so it is the *narrowest* honest interval, not the widest.
* :func:`rule_of_three`: the 95% upper bound 3/n for a zero count (Jovanovic & Levy 1997; ISO/IEC
  19795-1 recommends it): a zero count is never reported as "0%".
* :func:`subject_bootstrap`: resample *subjects*, not pairs (Bolle, Ratha & Pankanti 2004, "Error
  analysis of pattern recognition systems — the subsets bootstrap"): pairs that share a person are
  correlated, and only resampling people carries that correlation into the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import beta

from faceaudit.errors import InputError

__all__ = [
    "Interval",
    "clopper_pearson",
    "rule_of_three",
    "subject_bootstrap",
    "subject_bootstrap_from_rates",
    "bootstrap_weights",
]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    method: str

    def as_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "level": self.level, "method": self.method}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> Interval:
    """Exact two-sided binomial interval for k successes in n trials."""
    if n <= 0:
        raise InputError("an interval needs at least one trial")
    if not 0 <= k <= n:
        raise InputError(f"count {k} outside [0, {n}]")
    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Interval(low, high, level, "clopper-pearson")


def rule_of_three(n: int) -> float:
    """95% upper bound on a rate observed 0 times in n trials: 3 / n (capped at 1)."""
    if n <= 0:
        raise InputError("the rule of three needs at least one trial")
    return min(1.0, 3.0 / n)


def bootstrap_weights(
    group_of_subject: np.ndarray, replicates: int, seed: int
) -> np.ndarray:
    """(replicates, subjects) multiplicities: each replicate redraws, within each group, as many
    subjects as the group has, with replacement (stratified, so every group keeps its size)."""
    rng = np.random.default_rng(seed)
    S = group_of_subject.size
    W = np.zeros((replicates, S), dtype=np.float64)
    for g in np.unique(group_of_subject):
        members = np.flatnonzero(group_of_subject == g)
        draws = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size), size=replicates)
        W[:, members] = draws
    return W


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return float(lo), float(hi)


def subject_bootstrap(
    weights: np.ndarray,
    numerator: sp.sparray | np.ndarray,
    denominator: sp.sparray | np.ndarray,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of a rate under subject resampling.

    For a mated rate pass per-subject vectors (errors and comparisons per subject): the replicate rate
    is ``(w . e) / (w . n)``. For a non-mated rate pass (subjects x subjects) sparse matrices of
    false matches and of comparisons per subject pair: a pair of subjects drawn ``w_a`` and ``w_b``
    times counts ``w_a * w_b`` times, so the replicate rate is ``(w F w) / (w C w)``.
    """
    if isinstance(numerator, np.ndarray) and numerator.ndim == 1:
        num = weights @ numerator
        den = weights @ denominator
    else:
        num = np.einsum("ij,ij->i", np.asarray((sp.csr_array(numerator).T @ weights.T).T), weights)
        den = np.einsum("ij,ij->i", np.asarray((sp.csr_array(denominator).T @ weights.T).T), weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return subject_bootstrap_from_rates(rates, level, weights.shape[0])


def subject_bootstrap_from_rates(rates: np.ndarray, level: float, replicates: int) -> Interval:
    """Percentile interval from the replicate rates (replicates with no comparisons are dropped)."""
    lo, hi = _percentile(rates, level)
    return Interval(lo, hi, level, f"subject bootstrap ({replicates} replicates, percentile)")
