"""Summary measures of how error rates differ across demographic groups.

Each takes one rate per group (groups without a defined rate are left out by the caller and
reported as such) and returns a number with the formula's source below.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit.errors import InputError
from faceaudit.results import Comparison, Differentials, Estimate, Exclusion, RateDifferentials, RatioEstimate

__all__ = [
    "max_min_ratio", "max_geomean_ratio", "fairness_discrepancy_rate", "garbe", "gini",
    "GroupRate", "Exclusion", "RatioEstimate", "Estimate", "RateDifferentials", "Comparison", "Differentials",
    "eligibility", "pairwise_ratio", "max_min", "max_geomean", "fdr_estimate", "garbe_estimate",
    "rate_differentials", "compare_groups", "differentials", "percentile_interval", "DEFAULT_MIN_SUBJECTS",
    "minimum_trials", "DEFAULT_UNLABELLED", "parse_comparison",
]


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


# ---------------------------------------------------------------------------------------------
# Differentials with intervals and a minimum-data rule (issue 12)
#
# Every ratio below is computed once from the point counts and once per subject-bootstrap replicate
# from the per-group replicate rates of the *same* replicates, so that the interval of a ratio carries
# the correlation between the groups' rates. Conventions, stated once:
#
# * a group enters a differential only where it can resolve the quantity (:func:`eligibility`);
# * at the point estimate, an entered group with zero errors takes its rule-of-three bound 3/n as its
#   rate where it would divide: the ratio is then a bound ("at least X"), never infinite;
# * in a replicate, a ratio whose denominator is zero while its numerator is not is unbounded; such
#   replicates rank above every finite one, so the interval's high end is open (``high_open``, ``high``
#   None) where more than (1 - level) / 2 of the replicates are unbounded. A replicate where a ratio is
#   0/0 or a group has no trials is undefined: it is dropped and counted.
# ---------------------------------------------------------------------------------------------

#: defaults of the minimum-data rule, justified in the README ("Differentials")
DEFAULT_MIN_SUBJECTS = 10
#: group values that mean "no label": such a group is listed as left out ("unlabelled"), not compared
DEFAULT_UNLABELLED = ("(missing)", "unknown")

KIND_ESTIMATE = "estimate"
KIND_LOWER = "lower_bound"
KIND_UPPER = "upper_bound"
KIND_UNDEFINED = "undefined"



@dataclass(frozen=True)
class GroupRate:
    """One group's errors at one threshold, with its subject-bootstrap replicate rates.

    ``replicates`` has shape (R,): the group's rate in each replicate, NaN where the replicate has no
    trials for the group. ``subjects`` counts the subjects who contribute trials.
    """

    group: str
    errors: int
    trials: int
    subjects: int
    replicates: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (0 <= self.errors <= self.trials) or self.subjects < 0:
            raise InputError(f"group {self.group!r}: errors {self.errors} must lie in [0, trials "
                             f"{self.trials}] and subjects be >= 0")
        if self.replicates is not None and np.asarray(self.replicates).ndim != 1:
            raise InputError(f"group {self.group!r}: replicate rates must be one value per replicate")

    @property
    def value(self) -> float | None:
        return self.errors / self.trials if self.trials else None

    @property
    def zero_bound(self) -> float:
        """The rate this group takes where it would divide with no errors: rule of three."""
        return min(1.0, 3.0 / self.trials)


def minimum_trials(resolution: float) -> int | None:
    """The fewest trials n whose rule-of-three bound 3/n lies below ``resolution`` (None for 0)."""
    if resolution <= 0:
        return None
    n = max(1, math.floor(3.0 / resolution))
    while not 3.0 / n < resolution:  # the same float comparison as the rule itself
        n += 1
    return n


def eligibility(groups: Sequence[GroupRate], *, resolution: float, min_subjects: int = DEFAULT_MIN_SUBJECTS,
                unlabelled: Collection[str] = DEFAULT_UNLABELLED) -> tuple[list[GroupRate], list[Exclusion]]:
    """Split groups into those that enter a differential and those left out (with the reason).

    A group enters where it is labelled (no part of its name, split at " | ", is in ``unlabelled``),
    has at least ``min_subjects`` subjects and enough trials that the rule-of-three bound lies strictly
    below ``resolution`` (3 / trials < resolution); the first failing test names the reason.
    """
    if not (math.isfinite(resolution) and resolution >= 0):
        raise InputError(f"the resolution of the minimum-data rule must be a rate >= 0, got {resolution!r}")
    if min_subjects < 1:
        raise InputError(f"the minimum number of subjects must be at least 1, got {min_subjects!r}")
    entered, left_out = [], []
    for g in groups:
        if any(part in unlabelled for part in g.group.split(" | ")):
            reason = "unlabelled"
        elif g.trials == 0:
            reason = "no_trials"
        elif g.subjects < min_subjects:
            reason = "too_few_subjects"
        elif not 3.0 / g.trials < resolution:
            reason = "too_few_trials"
        else:
            entered.append(g)
            continue
        left_out.append(Exclusion(g.group, reason, g.subjects, g.trials, min_subjects, resolution,
                                  minimum_trials(resolution)))
    return entered, left_out


def percentile_interval(values: np.ndarray, level: float) -> tuple[float | None, float | None, bool]:
    """Linear-interpolation percentile interval (numpy's default) of replicate values that may be +inf.

    NaN values must be removed first. Returns (low, high, high_open): an end that interpolates towards
    an unbounded replicate is open (None; ``high_open`` for the high end; a low end that is open means
    nearly every replicate is unbounded and then both ends are None).
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return None, None, False
    if np.isnan(v).any() or (v == -np.inf).any():
        raise InputError("replicate values for an interval must be numbers or +inf")
    ends = []
    for q in ((1 - level) / 2, (1 + level) / 2):
        h = (v.size - 1) * q
        i = int(math.floor(h))
        f = h - i
        j = min(i + 1, v.size - 1)
        a, b = v[i], v[j]
        if math.isinf(a) or (f > 0 and math.isinf(b)):
            ends.append(None)
        else:  # numpy's own arithmetic, so that a finite interval equals np.quantile's bit for bit
            ends.append(float(np.quantile(v[i:j + 1], f)) if f > 0 else float(a))
    low, high = ends
    if low is None:
        return None, None, True
    return low, high, high is None


def _replicate_matrix(groups: Sequence[GroupRate]) -> np.ndarray | None:
    """(R, G) replicate rates, or None where any group has none (no bootstrap)."""
    reps = [g.replicates for g in groups]
    if not reps or any(r is None for r in reps):
        return None
    sizes = {np.asarray(r).size for r in reps}
    if len(sizes) != 1:
        raise InputError("the groups' replicate rates differ in length: they must come from the same "
                         "replicates")
    return np.column_stack([np.asarray(r, dtype=np.float64) for r in reps])


def _ratio_replicates(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per replicate: +inf where den is 0 and num is not, NaN where 0/0 or a rate is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[(den == 0) & (num > 0)] = np.inf
    out[(den == 0) & (num == 0)] = np.nan
    return out


def _ratio(value: float | None, kind: str, reps: np.ndarray | None, level: float, num: str | None,
           den: str | None) -> RatioEstimate:
    if reps is None:
        return RatioEstimate(value, kind, None, None, False, level, num, den, 0, 0, 0)
    defined = reps[~np.isnan(reps)]
    low, high, open_ = percentile_interval(defined, level)
    return RatioEstimate(value, kind, low, high, open_, level, num, den, int(defined.size),
                         int(np.isinf(defined).sum()), int(reps.size - defined.size))


def pairwise_ratio(numerator: GroupRate, denominator: GroupRate, level: float = 0.95) -> RatioEstimate:
    """rate(numerator) / rate(denominator), e.g. women's FMR over men's.

    Zero errors: in the denominator the ratio is at least rate / (3/n); in the numerator at most
    (3/n) / rate; in both it is undefined.
    """
    a, b = numerator, denominator
    if not (a.trials and b.trials):
        raise InputError("a ratio needs trials in both groups")
    if a.errors and b.errors:
        value, kind = a.value / b.value, KIND_ESTIMATE
    elif a.errors:
        value, kind = a.value / b.zero_bound, KIND_LOWER
    elif b.errors:
        value, kind = a.zero_bound / b.value, KIND_UPPER
    else:
        value, kind = None, KIND_UNDEFINED
    m = _replicate_matrix([a, b])
    reps = None if m is None else _ratio_replicates(m[:, 0], m[:, 1])
    return _ratio(value, kind, reps, level, a.group, b.group)


def _bounded_rates(groups: Sequence[GroupRate]) -> np.ndarray:
    """Observed rates, with each zero-error group's rule-of-three bound in place of its 0."""
    return np.array([g.value if g.errors else g.zero_bound for g in groups], dtype=np.float64)


def max_min(groups: Sequence[GroupRate], level: float = 0.95) -> RatioEstimate:
    """max_g r_g / min_g r_g (NISTIR 8280), in each replicate over that replicate's rates.

    The point value divides the highest observed rate by the lowest rate after zero-error groups take
    their rule-of-three bound; it is then a lower bound (true rates of zero-error groups may be lower).
    """
    _at_least_two(groups)
    observed = np.array([g.value for g in groups])
    bounded = _bounded_rates(groups)
    hi, lo = int(np.argmax(observed)), int(np.argmin(bounded))
    if observed[hi] == 0:
        value, kind, den = None, KIND_UNDEFINED, None
    else:
        kind = KIND_LOWER if any(g.errors == 0 for g in groups) else KIND_ESTIMATE
        value, den = float(observed[hi] / bounded[lo]), groups[lo].group
    m = _replicate_matrix(groups)
    reps = None
    if m is not None:
        reps = _ratio_replicates(m.max(axis=1), m.min(axis=1))
        reps[np.isnan(m).any(axis=1)] = np.nan
    return _ratio(value, kind, reps, level, groups[hi].group if value is not None else None, den)


def max_geomean(groups: Sequence[GroupRate], level: float = 0.95) -> RatioEstimate:
    """max_g r_g / geomean_g r_g (NIST FRVT Part 8, NISTIR 8429); zero-error groups enter the
    geometric mean with their rule-of-three bound (then the value is a lower bound); in a replicate a
    zero rate makes the ratio unbounded."""
    _at_least_two(groups)
    observed = np.array([g.value for g in groups])
    hi = int(np.argmax(observed))
    if observed[hi] == 0:
        value, kind = None, KIND_UNDEFINED
    else:
        geo = float(np.exp(np.mean(np.log(_bounded_rates(groups)))))
        value = float(observed[hi] / geo)
        kind = KIND_LOWER if any(g.errors == 0 for g in groups) else KIND_ESTIMATE
    m = _replicate_matrix(groups)
    reps = None
    if m is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            geo_r = np.exp(np.mean(np.log(m), axis=1))  # 0 where any rate is 0, NaN where any is NaN
        reps = _ratio_replicates(m.max(axis=1), geo_r)
    return _ratio(value, kind, reps, level, groups[hi].group if value is not None else None, None)


def _at_least_two(groups: Sequence[GroupRate]) -> None:
    if len(groups) < 2:
        raise InputError("a differential needs at least two groups")
    if any(g.trials == 0 for g in groups):
        raise InputError("every group in a differential needs trials (apply the minimum-data rule first)")


def _estimate(value: float | None, reps: np.ndarray | None, level: float) -> Estimate:
    if reps is None:
        return Estimate(value, None, None, level, 0, 0)
    defined = reps[np.isfinite(reps)]
    low, high, _ = percentile_interval(defined, level)
    return Estimate(value, low, high, level, int(defined.size), int(reps.size - defined.size))


def _paired(fmr: Sequence[GroupRate], fnmr: Sequence[GroupRate]) -> tuple[list[GroupRate], list[GroupRate]]:
    """The groups present in both lists, in the order of ``fmr``."""
    names = {g.group for g in fnmr}
    a = [g for g in fmr if g.group in names]
    by_name = {g.group: g for g in fnmr}
    return a, [by_name[g.group] for g in a]


def fdr_estimate(fmr: Sequence[GroupRate], fnmr: Sequence[GroupRate], *, alpha: float = 0.5,
                 level: float = 0.95) -> Estimate:
    """FDR (de Freitas Pereira & Marcel 2021) over the groups present in both lists, per replicate too."""
    a, b = _paired(fmr, fnmr)
    _at_least_two(a)
    _at_least_two(b)
    value = fairness_discrepancy_rate([g.value for g in a], [g.value for g in b], alpha)
    ma, mb = _replicate_matrix(a), _replicate_matrix(b)
    reps = None
    if ma is not None and mb is not None:
        spread_a = ma.max(axis=1) - ma.min(axis=1)
        spread_b = mb.max(axis=1) - mb.min(axis=1)
        reps = 1.0 - (alpha * spread_a + (1 - alpha) * spread_b)  # NaN where a rate is NaN
    return _estimate(value, reps, level)


def _gini_rows(m: np.ndarray) -> np.ndarray:
    """Gini with the n/(n-1) correction per row of (R, G) rates; 0 where a row's mean is 0."""
    n = m.shape[1]
    mean = m.mean(axis=1)
    diffs = np.abs(m[:, :, None] - m[:, None, :]).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = n / (n - 1) * diffs / (2 * n * n * mean)
    return np.where(mean == 0, 0.0, g)


def garbe_estimate(fmr: Sequence[GroupRate], fnmr: Sequence[GroupRate], *, alpha: float = 0.5,
                   level: float = 0.95) -> Estimate:
    """GARBE (Howard et al. 2022) over the groups present in both lists, per replicate too."""
    a, b = _paired(fmr, fnmr)
    _at_least_two(a)
    _at_least_two(b)
    value = garbe([g.value for g in a], [g.value for g in b], alpha)
    ma, mb = _replicate_matrix(a), _replicate_matrix(b)
    reps = None
    if ma is not None and mb is not None:
        reps = alpha * _gini_rows(ma) + (1 - alpha) * _gini_rows(mb)
        reps[np.isnan(ma).any(axis=1) | np.isnan(mb).any(axis=1)] = np.nan
    return _estimate(value, reps, level)


def rate_differentials(rate: str, groups: Sequence[GroupRate], *, resolution: float,
                       min_subjects: int = DEFAULT_MIN_SUBJECTS, level: float = 0.95,
                       unlabelled: Collection[str] = DEFAULT_UNLABELLED) -> RateDifferentials:
    """Apply the minimum-data rule, then max/min, max/geomean and the highest/lowest pair's ratio."""
    entered, left_out = eligibility(groups, resolution=resolution, min_subjects=min_subjects,
                                    unlabelled=unlabelled)
    mm = mg = pair = None
    if len(entered) >= 2:
        mm = max_min(entered, level)
        mg = max_geomean(entered, level)
        if mm.kind != KIND_UNDEFINED:
            by_name = {g.group: g for g in entered}
            pair = pairwise_ratio(by_name[mm.numerator], by_name[mm.denominator], level)
    counts = tuple((g.group, g.errors, g.trials, g.subjects) for g in groups)
    return RateDifferentials(rate, float(resolution), tuple(g.group for g in entered), tuple(left_out),
                             mm, mg, pair, counts)


def compare_groups(grouping: str, numerator: str, denominator: str, fmr: Sequence[GroupRate],
                   fnmr: Sequence[GroupRate], *, fmr_resolution: float, fnmr_resolution: float,
                   min_subjects: int = DEFAULT_MIN_SUBJECTS, level: float = 0.95,
                   unlabelled: Collection[str] = DEFAULT_UNLABELLED) -> Comparison:
    """The ratio numerator / denominator of two named groups, for each rate where both entered."""
    if numerator == denominator:
        raise InputError(f"a comparison needs two different groups, got {numerator!r} twice")
    out = {}
    for rate, groups, resolution in (("fmr", fmr, fmr_resolution), ("fnmr", fnmr, fnmr_resolution)):
        by_name = {g.group: g for g in groups}
        missing = [n for n in (numerator, denominator) if n not in by_name]
        if missing:
            raise InputError(f"no group {missing[0]!r} in grouping {grouping!r}; it has {sorted(by_name)}")
        pair = [by_name[numerator], by_name[denominator]]
        entered, left_out = eligibility(pair, resolution=resolution, min_subjects=min_subjects,
                                        unlabelled=unlabelled)
        ratio = pairwise_ratio(*pair, level) if len(entered) == 2 else None
        out[rate] = (ratio, tuple(left_out))
    return Comparison(grouping, numerator, denominator, out["fmr"][0], out["fnmr"][0], out["fmr"][1],
                      out["fnmr"][1])


def differentials(grouping: str, fmr: Sequence[GroupRate], fnmr: Sequence[GroupRate], *, threshold: float,
                  fmr_resolution: float, fnmr_resolution: float, fmr_target: float | None = None,
                  min_subjects: int = DEFAULT_MIN_SUBJECTS, level: float = 0.95, alpha: float = 0.5,
                  compare: Sequence[tuple[str, str]] = (),
                  unlabelled: Collection[str] = DEFAULT_UNLABELLED) -> Differentials:
    """All differentials of one grouping at one threshold.

    ``fmr`` / ``fnmr``: each group's errors, trials, subjects and replicate rates at ``threshold``.
    ``fmr_resolution``: the FMR a group must be able to resolve (by default the target FMR);
    ``fnmr_resolution``: likewise for FNMR (by default the overall FNMR at the threshold).
    ``compare``: (numerator, denominator) group names whose ratio is wanted. ``unlabelled``: group
    values that mean "no label" (left out as ``unlabelled``).
    """
    if not 0 < level < 1:
        raise InputError(f"the interval level must lie in (0, 1), got {level!r}")
    rule = {"min_subjects": min_subjects, "level": level, "unlabelled": tuple(unlabelled)}
    f = rate_differentials("fmr", fmr, resolution=fmr_resolution, **rule)
    n = rate_differentials("fnmr", fnmr, resolution=fnmr_resolution, **rule)
    both_f = [g for g in fmr if g.group in f.groups and g.group in n.groups]
    both_n = [g for g in fnmr if g.group in f.groups and g.group in n.groups]
    fdr = gb = None
    if len(both_f) >= 2:
        fdr = fdr_estimate(both_f, both_n, alpha=alpha, level=level)
        gb = garbe_estimate(both_f, both_n, alpha=alpha, level=level)
    comps = tuple(compare_groups(grouping, a, b, fmr, fnmr, fmr_resolution=fmr_resolution,
                                 fnmr_resolution=fnmr_resolution, **rule) for a, b in compare)
    return Differentials(grouping, fmr_target, float(threshold), int(min_subjects), level, f, n, fdr, gb,
                         comps, tuple(unlabelled))


def parse_comparison(text: str) -> tuple[str, str, str]:
    """``"sex=female:male"`` -> ``("sex", "female", "male")``: the ratio female / male within grouping
    sex. An intersection is named as the audit names it: ``"sex x race=female | african:male | african"``
    (``"sex,race=..."`` is accepted for the grouping). Names are taken exactly as written."""
    if not isinstance(text, str) or text.count("=") != 1:
        raise InputError(f"--compare {text!r}: write it as GROUPING=numerator:denominator "
                         "(e.g. sex=female:male)")
    grouping, pair = text.split("=")
    parts = pair.split(":")
    if len(parts) != 2 or not all(parts) or not grouping:
        raise InputError(f"--compare {text!r}: name the grouping and exactly two groups, GROUPING=a:b")
    if parts[0] == parts[1]:
        raise InputError(f"--compare {text!r}: the two groups must differ")
    return " x ".join(grouping.split(",")), parts[0], parts[1]
