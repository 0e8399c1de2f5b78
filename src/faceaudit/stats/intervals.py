"""Intervals on error rates.

* :func:`clopper_pearson`: the exact binomial interval (Clopper & Pearson 1934), which never falls
  below its nominal coverage; it treats comparisons as independent trials, which they are not when
  they share a person, so it is the *narrowest* honest interval, not the widest.
* :func:`rule_of_three`: the 95% upper bound 3/n for a zero count (Jovanovic & Levy 1997; ISO/IEC
  19795-1 recommends it): a zero count is never reported as "0%".
* :func:`subject_bootstrap`: resample *subjects*, not pairs (Bolle, Ratha & Pankanti 2004, "Error
  analysis of pattern recognition systems — the subsets bootstrap"): pairs that share a person are
  correlated, and only resampling people carries that correlation into the interval.

This module is where rates and intervals are built: :func:`rate` makes every
:class:`~faceaudit.results.Rate` faceaudit reports, :func:`percentile_interval` every interval read off
replicates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from faceaudit.errors import InputError
from faceaudit.results import Interval, Rate

if TYPE_CHECKING:  # scipy.sparse costs ~18 MiB to import: imported where a bootstrap needs it
    import scipy.sparse as sp

__all__ = [
    "Interval",
    "rate",
    "percentile_interval",
    "raise_high",
    "replicate_rates",
    "clopper_pearson",
    "rule_of_three",
    "subject_bootstrap",
    "subject_bootstrap_from_rates",
    "bootstrap_weights",
]


#: the method of a Clopper-Pearson interval taken at a non-integral expected count
CP_AT_EXPECTED = "clopper-pearson at the expected count"


def rate(
    count: int | None,
    total: int,
    *,
    level: float = 0.95,
    bootstrap: Interval | None = None,
    unit: str = "comparisons",
    expected_count: float | None = None,
    withhold_zero_bootstrap: bool = False,
) -> Rate:
    """The one way faceaudit builds a rate: ``count`` of ``total`` (or, over random galleries, a
    non-integral ``expected_count`` with ``count=None``), its value, the Clopper-Pearson interval, the
    given subject-bootstrap interval, and for a zero count the rule-of-three bound. With
    ``withhold_zero_bootstrap`` a zero count's bootstrap (a degenerate [0, 0]) is left out.

    >>> r = rate(0, 1000)
    >>> r.value, r.rule_of_three, r.exact.high > 0
    (0.0, 0.003, True)
    """
    total = int(total)
    if total == 0:
        return Rate(total=0, count=0, value=None, unit=unit)
    if expected_count is not None:
        cp = clopper_pearson(min(expected_count, float(total)), total, level)  # type: ignore[arg-type]
        return Rate(
            total=total,
            value=expected_count / total,
            expected_count=expected_count,
            unit=unit,
            exact=Interval(cp.low, cp.high, cp.level, CP_AT_EXPECTED),
            bootstrap=bootstrap,
        )
    count = int(count)  # type: ignore[arg-type]
    zero = count == 0
    withheld = zero and withhold_zero_bootstrap and bootstrap is not None
    return Rate(
        total=total,
        count=count,
        value=count / total,
        exact=clopper_pearson(count, total, level),
        bootstrap=None if withheld else bootstrap,
        rule_of_three=rule_of_three(total) if zero else None,
        unit=unit,
        bootstrap_withheld=withheld,
    )


def percentile_interval(
    replicates: np.ndarray | None,
    level: float,
    method: str,
    *,
    finite_only: bool = True,
    quantile_method: str = "linear",
) -> Interval | None:
    """The percentile interval of replicate values (non-finite ones dropped with ``finite_only``);
    None without replicates."""
    if replicates is None:
        return None
    r = np.asarray(replicates)
    if finite_only:
        r = r[np.isfinite(r)]
        if r.size == 0:
            return None
    a = (1 - level) / 2
    lo, hi = np.quantile(r, [a, 1 - a], method=quantile_method)
    return Interval(float(lo), float(hi), level, method)


def raise_high(
    interval: Interval | None, high: float | None, why: str, *, only_if_higher: bool = True
) -> Interval | None:
    """The interval with its high end raised to ``high`` (a rule-of-three bound where too few events
    were seen), ``why`` appended to its method."""
    if interval is None or high is None or (only_if_higher and high <= interval.high):
        return interval
    return Interval(interval.low, max(interval.high, high), interval.level, interval.method + why)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> Interval:
    """Exact two-sided binomial interval for k successes in n trials."""
    if n <= 0:
        raise InputError("an interval needs at least one trial")
    if not 0 <= k <= n:
        raise InputError(f"count {k} outside [0, {n}]")
    alpha = 1.0 - level
    from scipy.stats import beta  # here: scipy.stats costs ~50 MiB and a second to import

    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Interval(low, high, level, "clopper-pearson")


def rule_of_three(n: int) -> float:
    """95% upper bound on a rate observed 0 times in n trials: 3 / n (capped at 1)."""
    if n <= 0:
        raise InputError("the rule of three needs at least one trial")
    return min(1.0, 3.0 / n)


def bootstrap_weights(group_of_subject: np.ndarray, replicates: int, seed: int) -> np.ndarray:
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
    return subject_bootstrap_from_rates(
        replicate_rates(weights, numerator, denominator), level, weights.shape[0]
    )


def replicate_rates(
    weights: np.ndarray,
    numerator: sp.sparray | np.ndarray,
    denominator: sp.sparray | np.ndarray,
) -> np.ndarray:
    """The (replicates,) rates :func:`subject_bootstrap` takes its percentiles of (NaN where a
    replicate has no comparisons)."""
    if isinstance(numerator, np.ndarray) and numerator.ndim == 1:
        num = weights @ numerator
        den = weights @ denominator
    else:
        import scipy.sparse as sp

        num = np.einsum("ij,ij->i", np.asarray((sp.csr_array(numerator).T @ weights.T).T), weights)
        den = np.einsum("ij,ij->i", np.asarray((sp.csr_array(denominator).T @ weights.T).T), weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def subject_bootstrap_from_rates(rates: np.ndarray, level: float, replicates: int) -> Interval:
    """Percentile interval from the replicate rates (replicates with no comparisons are dropped)."""
    lo, hi = _percentile(rates, level)
    return Interval(lo, hi, level, f"subject bootstrap ({replicates} replicates, percentile)")
