"""LR systems fitted on weighted calibration points, bounded by ELUB, and subject-disjoint cross-validation.

Methods (each maps a score to a log10 LR; each is fitted with class-balanced weights, so that the fitted
odds are the LR whatever the numbers of mated and non-mated pairs):

* ``logistic``: log LR = a * score + b, weighted logistic regression by Newton's method, no penalty;
* ``pav``: isotonic (pool adjacent violators) on the points; between the fitted points the probability is
  interpolated linearly and beyond them held constant (as lir's IsotonicCalibrator). On the histogram
  representation it equals PAV on the raw scores above any score at or above the tail cutoff where both
  fits start a new block (there, each is the isotonic fit of the same exact scores above it; tested);
  below that, bins stand in for their scores;
* ``gaussian``: a normal density per class (weighted mean and variance); LR = ratio of the densities.

Every system is bounded by the ELUB of its own training LRs (Vergeer et al. 2016): no LR it reports is more
extreme than the calibration data support. Cross-validation folds are formed by subject: a pair of subjects
in folds (i, j) is evaluated by the system fitted on the pairs whose subjects lie in neither fold i nor fold
j, so that no person is in both the fitted and the evaluated data (K (K + 1) / 2 systems for K folds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaudit.evidence.errors import CalibrationError, SubjectsUnknownError
from faceaudit.evidence.metrics import check_weighted_labels, elub, pav_fit
from faceaudit.evidence.points import CalibrationPoints

__all__ = ["LRSystem", "fit_system", "METHODS", "cross_validate", "subject_folds", "CrossValidated"]

METHODS = ("logistic", "pav", "gaussian")
LN10 = np.log(10.0)


@dataclass(frozen=True)
class LRSystem:
    """A fitted score -> log10 LR map and its ELUB bounds."""

    method: str
    params: tuple[np.ndarray, ...]
    lower: float  # log10 LR bounds (ELUB)
    upper: float
    support: tuple[float, float]  # lowest and highest calibration score with weight

    def raw_log10_lr(self, score: np.ndarray) -> np.ndarray:
        s = np.asarray(score, np.float64)
        if self.method == "logistic":
            a, b = self.params
            return (a * s + b) / LN10
        if self.method == "pav":
            x, p = self.params
            q = np.interp(s, x, p)  # clipped to the end values outside [x0, xn]
            with np.errstate(divide="ignore"):
                return np.log10(q) - np.log10(1.0 - q)
        m1, s1, m0, s0 = self.params
        return (_norm_logpdf(s, m1, s1) - _norm_logpdf(s, m0, s0)) / LN10

    def log10_lr(self, score: np.ndarray) -> np.ndarray:
        return np.clip(self.raw_log10_lr(score), self.lower, self.upper)


def _norm_logpdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def _balanced(mated: np.ndarray, weight: np.ndarray) -> np.ndarray:
    w1, w0 = check_weighted_labels(mated, weight)
    return np.where(mated, weight / w1, weight / w0)


def _fit_logistic(x: np.ndarray, mated: np.ndarray, weight: np.ndarray, start=None) -> tuple[np.ndarray, ...]:
    """Newton's method on the standardised score; ``start`` (a, b) warm-starts a refit (bootstrap, folds)."""
    w = _balanced(mated, weight)
    keep = w > 0
    x, y, w = x[keep], mated[keep].astype(np.float64), w[keep]
    if x[y == 1].min() > x[y == 0].max():
        raise CalibrationError(
            "logistic regression has no finite fit: the mated and non-mated scores do "
            "not overlap (use --method pav)"
        )
    mu = float(np.dot(w, x) / w.sum())
    sd = float(np.sqrt(np.dot(w, (x - mu) ** 2) / w.sum())) or 1.0
    z = (x - mu) / sd
    inits = [np.zeros(2)]
    if start is not None:
        inits.insert(0, np.array([start[0] * sd, start[1] + start[0] * mu]))
    for beta in inits:  # a warm start that saturates the fit falls back to a cold one
        beta = _newton(z, y, w, beta)
        if beta is not None:
            break
    else:
        raise CalibrationError("logistic regression did not converge on these scores (use --method pav)")
    a = beta[0] / sd
    return (np.float64(a), np.float64(beta[1] - a * mu))


def _newton(z: np.ndarray, y: np.ndarray, w: np.ndarray, beta: np.ndarray) -> np.ndarray | None:
    """Newton's method for the weighted logistic log-likelihood; None where it breaks down."""
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh((beta[0] * z + beta[1]) / 2.0))  # logistic, no overflow
        r = w * (y - p)
        v = w * p * (1.0 - p)
        vz = v * z
        H = np.array([[np.dot(vz, z), vz.sum()], [vz.sum(), v.sum()]])
        try:
            step = np.linalg.solve(H, np.array([np.dot(r, z), r.sum()]))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.isfinite(beta).all():
            return None
        if np.max(np.abs(step)) < 1e-10 * (1.0 + np.max(np.abs(beta))):
            return beta
    return None


def _fit_pav(x: np.ndarray, mated: np.ndarray, weight: np.ndarray, start=None) -> tuple[np.ndarray, ...]:
    ux, llr = pav_fit(x, mated, weight)
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + 10.0 ** (-llr))
    return (ux, p)


def _fit_gaussian(x: np.ndarray, mated: np.ndarray, weight: np.ndarray, start=None) -> tuple[np.ndarray, ...]:
    out = []
    for cls in (True, False):
        w, v = weight[mated == cls], x[mated == cls]
        m = float(np.dot(w, v) / w.sum())
        s = float(np.sqrt(np.dot(w, (v - m) ** 2) / w.sum()))
        if not s > 0:
            raise CalibrationError("the two-Gaussian model needs scores that vary within each class")
        out += [np.float64(m), np.float64(s)]
    return tuple(out)


_FITTERS = {"logistic": _fit_logistic, "pav": _fit_pav, "gaussian": _fit_gaussian}


def fit_system(
    points: CalibrationPoints, method: str, weight: np.ndarray | None = None, start: LRSystem | None = None
) -> LRSystem:
    """Fit ``method`` on ``points`` (optionally re-weighted) and bound it by the ELUB of its training LRs.
    ``start``: a system fitted on similar data, to start an iterative fit from (the result does not
    depend on it beyond the convergence tolerance)."""
    if method not in _FITTERS:
        raise CalibrationError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    w = points.weight if weight is None else weight
    check_weighted_labels(points.mated, w)
    init = start.params if start is not None and start.method == method else None
    params = _FITTERS[method](points.score, points.mated, w, init)
    has = w > 0
    unbounded = LRSystem(
        method, params, -np.inf, np.inf, (float(points.score[has].min()), float(points.score[has].max()))
    )
    train = unbounded.raw_log10_lr(points.score)
    lower, upper = elub(train[has], points.mated[has], w[has])
    return LRSystem(method, params, lower, upper, unbounded.support)


def subject_folds(points: CalibrationPoints, k: int, seed: int) -> np.ndarray:
    """(S,) fold of each subject: within each group, subjects in random order dealt to folds in turn."""
    if k < 3:  # a pair across folds i and j is fitted on the other folds: with 2 there are none
        raise CalibrationError("subject-disjoint cross-validation needs at least 3 folds")
    rng = np.random.default_rng(seed)
    fold = np.zeros(points.n_subjects, np.intp)
    start = 0
    for g in range(points.n_groups):
        members = rng.permutation(np.flatnonzero(points.subject_group == g))
        fold[members] = (start + np.arange(members.size)) % k
        start += members.size
    return fold


@dataclass(frozen=True)
class CrossValidated:
    """Each evaluated point: its score, weight, label, groups and the held-out log10 LR. Bulk points
    appear once per fold pair, with the weight of that fold pair's bulk pairs."""

    log10_lr: np.ndarray
    points: CalibrationPoints
    folds: np.ndarray
    k: int
    train_subjects: dict  # (i, j) -> subjects the system for fold pair (i, j) was fitted on
    fold_pair: np.ndarray  # (n,) code i * k + j of the system that evaluated each point


def _fold_pair_bulk(points: CalibrationPoints, folds: np.ndarray, k: int) -> dict:
    """Per fold pair (i <= j), the share of each cell's bulk whose two subjects lie in folds i and j."""
    masks = np.stack([(folds == i).astype(np.float64) for i in range(k)])
    own = points.bulk_pairs(masks)  # (k, G*G)
    base = points.bulk_pairs(np.ones((1, points.n_subjects)))[0]
    out = {}
    for i in range(k):
        for j in range(i, k):
            if i == j:
                b = own[i]
            else:
                b = points.bulk_pairs((masks[i] + masks[j])[None, :])[0] - own[i] - own[j]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[(i, j)] = np.where(base > 0, b / np.where(base > 0, base, 1.0), 0.0)
    return out


def cross_validate(
    points: CalibrationPoints, method: str, k: int = 5, seed: int = 0, start: LRSystem | None = None
) -> CrossValidated:
    """Subject-disjoint K-fold cross-validation (see the module docstring)."""
    if not points.subjects_known:
        raise SubjectsUnknownError(
            "subject-disjoint cross-validation needs the subjects of the pairs; these "
            "scores come without a sample table"
        )
    folds = subject_folds(points, k, seed)
    ex = points.exact
    fa = np.where(ex, folds[np.maximum(points.subject_a, 0)], -1)
    fb = np.where(ex, folds[np.maximum(points.subject_b, 0)], -1)
    lo, hi = np.minimum(fa, fb), np.maximum(fa, fb)
    shares = _fold_pair_bulk(points, folds, k) if (~ex).any() else {}
    pieces, train_subjects = [], {}
    bulk_idx = np.flatnonzero(~ex)
    for i in range(k):
        for j in range(i, k):
            train = ((folds != i) & (folds != j)).astype(np.float64)
            train_subjects[(i, j)] = np.flatnonzero(train > 0)
            sel = np.flatnonzero(ex & (lo == i) & (hi == j))
            b_w = (
                points.weight[bulk_idx] * shares[(i, j)][points.bulk_cell[bulk_idx]]
                if shares
                else np.empty(0)
            )
            b_keep = bulk_idx[b_w > 0]
            if sel.size == 0 and b_keep.size == 0:
                continue
            try:
                system = fit_system(points, method, points.weights_under(train), start)
            except CalibrationError as exc:  # say which fold pair: more data or fewer folds helps
                raise type(exc)(f"cross-validation, system for folds {i} and {j}: {exc}") from None
            idx = np.concatenate([sel, b_keep])
            w = np.concatenate([points.weight[sel], b_w[b_w > 0]])
            pieces.append((idx, w, system.log10_lr(points.score[idx]), np.full(idx.size, i * k + j)))
    idx, w, llr, fp = (np.concatenate([p[m] for p in pieces]) for m in range(4))
    evaluated = points.subset(idx)
    evaluated = _with_weight(evaluated, w)
    return CrossValidated(llr, evaluated, folds, k, train_subjects, fp)


def _with_weight(points: CalibrationPoints, weight: np.ndarray) -> CalibrationPoints:
    import dataclasses

    return dataclasses.replace(points, weight=weight)
