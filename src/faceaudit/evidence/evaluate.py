"""Validation of an LR system on a calibration set: cross-validated measures with subject-bootstrap
intervals, overall, per group and per group pair; the LR of one score with its interval.

Intervals resample subjects (stratified by group, :func:`faceaudit.stats.intervals.bootstrap_weights`).
For the validation measures the held-out LRs are kept and the pairs re-weighted (the interval covers the
sampling of the evaluated people, not the refitting); for the LR of a score and the per-group LR curves
the system is refitted, ELUB included, on every replicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaudit.evidence import metrics as m
from faceaudit.evidence.errors import CalibrationError, NoMatedScoresError, OutsideSupportError
from faceaudit.evidence.fit import CrossValidated, LRSystem, cross_validate, fit_system
from faceaudit.evidence.points import CalibrationPoints
from faceaudit.evidence.results import (
    Criterion,
    Estimate,
    EvidenceResult,
    Flag,
    GroupCalibration,
    PairMisleading,
    Population,
    Statement,
    SystemSummary,
    Validation,
)
from faceaudit.stats.intervals import bootstrap_weights

__all__ = ["evaluate", "DEFAULT_CRITERIA", "plot_data", "ece_curve"]

STAT_KEYS = (
    "cllr",
    "cllr_min",
    "cllr_cal",
    "devpav",
    "mated_below_1",
    "nonmated_above_1",
    "mated_strongly",
    "nonmated_strongly",
)
#: metric -> (performance characteristic, largest acceptable value); faceaudit's defaults, settable
DEFAULT_CRITERIA = {
    "cllr": ("accuracy", 0.3),
    "cllr_min": ("discriminating power", 0.2),
    "cllr_cal": ("calibration", 0.05),
    "devpav": ("calibration", 0.3),
    "nonmated_above_1": ("misleading evidence (different people)", 0.01),
    "mated_below_1": ("misleading evidence (same person)", 0.05),
    "max_group_difference": ("generalisation across groups", 0.5),
}


def stats(llr: np.ndarray, mated: np.ndarray, w: np.ndarray, strong: float) -> dict[str, float]:
    """Every validation measure at once (NaN where a class has no weight)."""
    try:
        c, pav = m.cllr(llr, mated, w), m.pav_log10_lr(llr, mated, w)
        cmin = m.cllr(pav, mated, w)
        dev = m.devpav(llr, mated, w)
    except CalibrationError:
        c = cmin = dev = float("nan")
    out = {"cllr": c, "cllr_min": cmin, "cllr_cal": c - cmin, "devpav": dev}
    out.update(m.misleading(llr, mated, w, strong))
    return out


def _interval(value: float, reps: np.ndarray | None, level: float) -> Estimate:
    if reps is None:
        return Estimate(float(value))
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Estimate(float(value), None, None, level, "subject bootstrap (no finite replicate)")
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return Estimate(
        float(value), float(lo), float(hi), level, f"subject bootstrap ({reps.size} replicates, percentile)"
    )


def _collapse(llr: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal LRs pooled (exact: a bounded system gives many LRs equal to its bounds)."""
    u, inv = np.unique(llr, return_inverse=True)
    return u, np.bincount(inv.ravel(), weights=w, minlength=u.size)


def ece_curve(llr: np.ndarray, mated: np.ndarray, w: np.ndarray, prior_log10: np.ndarray) -> np.ndarray:
    """Empirical cross-entropy (Ramos et al. 2013) at each prior log10 odds, in bits."""
    (l1, v1), (l0, v0) = _collapse(llr[mated], w[mated]), _collapse(llr[~mated], w[~mated])
    w1, w0 = v1.sum(), v0.sum()
    p1 = 1.0 / (1.0 + 10.0 ** (-prior_log10))
    out = np.empty(prior_log10.size)
    with np.errstate(invalid="ignore"):
        for i, o in enumerate(prior_log10):  # one prior at a time: memory O(points)
            c1 = np.dot(np.logaddexp(0, -(l1 + o) * m.LN10), v1) / w1 / np.log(2)
            c0 = np.dot(np.logaddexp(0, (l0 + o) * m.LN10), v0) / w0 / np.log(2)
            out[i] = p1[i] * c1 + (1 - p1[i]) * c0
    return out


def plot_data(llr: np.ndarray, mated: np.ndarray, w: np.ndarray) -> tuple[dict, dict, dict]:
    """Tippett (share of LRs above each log10 LR), ECE (system, PAV-calibrated, neutral) and the PAV
    transform, decimated for plotting."""
    fin = llr[np.isfinite(llr)]
    grid = np.linspace(float(fin.min()) - 0.1, float(fin.max()) + 0.1, 201)
    tip = {"log10_lr": grid.tolist()}
    for name, cls in (("mated", True), ("nonmated", False)):
        v, ww = llr[mated == cls], w[mated == cls]
        o = np.argsort(v)
        cum = np.concatenate([[0.0], np.cumsum(ww[o])])
        tip[name] = ((cum[-1] - cum[np.searchsorted(v[o], grid, side="right")]) / cum[-1]).tolist()
    priors = np.linspace(-2.5, 2.5, 51)
    pav = m.pav_log10_lr(llr, mated, w)
    ece = {
        "prior_log10_odds": priors.tolist(),
        "system": ece_curve(llr, mated, w, priors).tolist(),
        "pav": ece_curve(pav, mated, w, priors).tolist(),
        "neutral": ece_curve(np.zeros_like(llr), mated, w, priors).tolist(),
    }
    ux, uy = m.pav_fit(llr, mated, w)
    step = max(1, ux.size // 400)
    keep = np.unique(np.r_[np.arange(0, ux.size, step), ux.size - 1])
    tr = {"log10_lr": ux[keep].tolist(), "pav_log10_lr": [v if np.isfinite(v) else None for v in uy[keep]]}
    return tip, ece, tr


def validation(llr, mated, w, reps: list[dict] | None, level: float, strong: float) -> Validation:
    point = stats(llr, mated, w, strong)
    arr = {k: (np.array([r[k] for r in reps]) if reps else None) for k in STAT_KEYS}
    est = {k: _interval(point[k], arr[k], level) for k in STAT_KEYS}
    # a statistic whose resampled values sit on one side of it (PAV-based Cllr_min is optimistic on the
    # smaller effective samples a resampling gives): said, not hidden
    flags = tuple(
        Flag.of("estimate_outside_interval", metric=k, value=e.value, low=e.low, high=e.high)
        for k, e in est.items()
        if e.low is not None and not e.low <= e.value <= e.high
    )
    tip, ece, tr = plot_data(llr, mated, w)
    return Validation(**est, strong_log10=strong, tippett=tip, ece=ece, pav_transform=tr, flags=flags)


@dataclass
class _Group:
    g: int
    label: tuple[str, ...]
    points: CalibrationPoints  # this group's pairs: its mated pairs and non-mated pairs within the group
    cv_mask: np.ndarray  # the same pairs among the pooled cross-validated points
    own_cv: CrossValidated
    system: LRSystem


def _group_mask(p: CalibrationPoints, g: int) -> np.ndarray:
    return (p.group_a == g) & (p.group_b == g)


def _prepare_groups(points, cv, method, folds, seed, start, target) -> tuple[list[_Group], list[Flag]]:
    out, flags = [], []
    if points.n_groups < 2 and target is None:  # one group: its own system is the pooled one
        return out, flags
    for g, label in enumerate(points.group_labels):
        sub = points.subset(_group_mask(points, g))
        try:
            system = fit_system(sub, method, start=start)
            own_cv = cross_validate(sub, method, folds, seed, start=system)
        except CalibrationError as exc:
            flags.append(
                Flag.of("group_not_calibrated", group=label, reason=type(exc).__name__, detail=str(exc))
            )
            continue
        out.append(_Group(g, label, sub, _group_mask(cv.points, g), own_cv, system))
    return out, flags


def _joint_support(points: CalibrationPoints) -> tuple[float, float]:
    has = points.weight > 0
    s1, s0 = points.score[has & points.mated], points.score[has & ~points.mated]
    return max(float(s1.min()), float(s0.min())), min(float(s1.max()), float(s0.max()))


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(x)
    c = np.cumsum(w[o])
    return float(x[o][np.searchsorted(c, c[-1] / 2.0)])


def _medians(p: CalibrationPoints) -> dict[str, float]:
    mt = p.mated
    return {
        "median_mated": _weighted_median(p.score[mt], p.weight[mt]),
        "median_nonmated": _weighted_median(p.score[~mt], p.weight[~mt]),
    }


def _grid(points: CalibrationPoints, system: LRSystem, n: int) -> np.ndarray:
    """Scores for the LR-vs-score curves and their differences: where the pooled system's LR lies strictly
    within its bounds (elsewhere every system sits at a bound and a difference compares bounds, not
    calibration), within the range where both kinds of comparison were seen."""
    lo, hi = _joint_support(points)
    cand = np.linspace(lo, hi, 4001)
    raw = system.raw_log10_lr(cand)
    inside = (raw > system.lower) & (raw < system.upper)
    if inside.sum() >= 2:
        lo, hi = float(cand[inside].min()), float(cand[inside].max())
    return np.linspace(lo, hi, n)


def _check_score(points: CalibrationPoints, score: float) -> list[Flag]:
    if not np.isfinite(score):
        raise OutsideSupportError(f"the score {score!r} is not a finite number")
    has = points.weight > 0
    lo, hi = float(points.score[has].min()), float(points.score[has].max())
    if not lo <= score <= hi:
        raise OutsideSupportError(
            f"the score {score!r} lies outside every score of the calibration set ({lo!r} to {hi!r}): no LR "
            "is extrapolated to it"
        )
    jlo, jhi = _joint_support(points)
    if not jlo <= score <= jhi:
        return [Flag.of("outside_joint_support", score=score, low=jlo, high=jhi)]
    return []


def _replicates(points, cv, groups, method, W, score, grid, strong, pair_cells, start) -> dict:  # noqa: PLR0913
    """Every replicate's measures (held-out LRs fixed, pairs re-weighted) and refitted LRs."""
    R = 0 if W is None else W.shape[0]
    out = {
        "overall": [],
        "pooled": [[] for _ in groups],
        "own": [[] for _ in groups],
        "diff": np.full((len(groups), R, grid.size), np.nan),
        "pairs": np.full((R, len(pair_cells)), np.nan),
        "score_pooled": np.full(R, np.nan),
        "score_group": np.full((len(groups), R), np.nan),
    }
    if R == 0:
        return out
    G = points.n_groups
    cell_cv = cv.points.group_a * G + cv.points.group_b
    pair_sel = [(~cv.points.mated) & (cell_cv == a * G + b) for a, b in pair_cells]
    above = cv.log10_lr > 0
    overall = m.PreparedLLR(cv.log10_lr, cv.points.mated)
    pooled_g = [m.PreparedLLR(cv.log10_lr[g.cv_mask], cv.points.mated[g.cv_mask]) for g in groups]
    own_g = [m.PreparedLLR(g.own_cv.log10_lr, g.own_cv.points.mated) for g in groups]
    for r in range(R):
        wcv = cv.points.weights_under(W[r])
        out["overall"].append(overall.stats(wcv, strong))
        for i, sel in enumerate(pair_sel):
            tot = wcv[sel].sum()
            out["pairs"][r, i] = wcv[sel & above].sum() / tot if tot > 0 else np.nan
        for k, grp in enumerate(groups):
            out["pooled"][k].append(pooled_g[k].stats(wcv[grp.cv_mask], strong))
            out["own"][k].append(own_g[k].stats(grp.own_cv.points.weights_under(W[r]), strong))
        _refits(out, r, points, groups, method, W[r], score, grid, start)
    return out


def _refits(out, r, points, groups, method, w, score, grid, start) -> None:
    """The pooled and each group's system refitted on replicate weights ``w`` (LR of the score, curves)."""
    try:
        pooled = fit_system(points, method, points.weights_under(w), start=start)
    except CalibrationError:
        return
    if score is not None:
        out["score_pooled"][r] = pooled.log10_lr(np.array([score]))[0]
    for k, grp in enumerate(groups):
        try:
            own = fit_system(grp.points, method, grp.points.weights_under(w), start=grp.system)
        except CalibrationError:
            continue
        out["diff"][k, r] = own.log10_lr(grid) - pooled.log10_lr(grid)
        if score is not None:
            out["score_group"][k, r] = own.log10_lr(np.array([score]))[0]


def _group_results(groups, cv, pooled_system, grid, reps, level, strong, have_reps) -> list[GroupCalibration]:
    res = []
    for k, grp in enumerate(groups):
        msk = grp.cv_mask
        wcv = cv.points.weight
        pooled_val = validation(
            cv.log10_lr[msk],
            cv.points.mated[msk],
            wcv[msk],
            reps["pooled"][k] if have_reps else None,
            level,
            strong,
        )
        own_val = validation(
            grp.own_cv.log10_lr,
            grp.own_cv.points.mated,
            grp.own_cv.points.weight,
            reps["own"][k] if have_reps else None,
            level,
            strong,
        )
        own_curve, pooled_curve = grp.system.log10_lr(grid), pooled_system.log10_lr(grid)
        diff = own_curve - pooled_curve
        d = reps["diff"][k] if have_reps else None
        diffs = tuple(_interval(diff[i], None if d is None else d[:, i], level) for i in range(grid.size))
        max_abs = _interval(
            float(np.max(np.abs(diff))), None if d is None else np.max(np.abs(d), axis=1), level
        )
        p = grp.points
        res.append(
            GroupCalibration(
                label=grp.label,
                n_mated=float(p.weight[p.mated].sum()),
                n_nonmated=float(p.weight[~p.mated].sum()),
                pooled=pooled_val,
                own=own_val,
                scores=tuple(grid.tolist()),
                pooled_log10_lr=tuple(pooled_curve.tolist()),
                own_log10_lr=tuple(own_curve.tolist()),
                difference=diffs,
                max_abs_difference=max_abs,
                **_medians(p),
            )
        )
    return res


def _pairs(points, cv, pair_cells, reps, level, have_reps) -> list[PairMisleading]:
    G = points.n_groups
    cell_cv = cv.points.group_a * G + cv.points.group_b
    out = []
    for i, (a, b) in enumerate(pair_cells):
        sel = (~cv.points.mated) & (cell_cv == a * G + b)
        w = cv.points.weight[sel]
        rate = float(w[cv.log10_lr[sel] > 0].sum() / w.sum())
        out.append(
            PairMisleading(
                points.group_labels[a],
                points.group_labels[b],
                float(w.sum()),
                _interval(rate, reps["pairs"][:, i] if have_reps else None, level),
            )
        )
    return out


def _population(points: CalibrationPoints) -> Population:
    rows = []
    for g, label in enumerate(points.group_labels):
        n_subj = int((points.subject_group == g).sum())
        mated = points.mated & (points.group_a == g)
        nm = ~points.mated & ((points.group_a == g) | (points.group_b == g))
        rows.append((label, n_subj, float(points.weight[mated].sum()), float(points.weight[nm].sum())))
    return Population(points.grouping, tuple(rows))


def _matrix(val: Validation, groups: list[GroupCalibration], criteria: dict) -> list[Criterion]:
    rows = []
    for metric, (characteristic, bound) in criteria.items():
        if metric == "max_group_difference":
            if not groups:
                continue
            worst = max(groups, key=lambda g: g.max_abs_difference.value)
            est = worst.max_abs_difference
        else:
            est = getattr(val, metric)
        rows.append(Criterion(characteristic, metric, float(bound), est, _status(est, bound)))
    return rows


def _status(est: Estimate, bound: float) -> str:
    if est.value is None or not np.isfinite(est.value):
        return "not-measured"
    if est.value > bound:
        return "fail"
    if est.high is not None and est.high > bound:
        return "inconclusive"
    return "pass"


def _target(points: CalibrationPoints, group: dict[str, str] | None) -> int | None:
    if not group:
        return None
    if set(group) != set(points.grouping):
        raise CalibrationError(
            f"--group names {sorted(group)} but the calibration is grouped by {list(points.grouping)}"
        )
    g = points.group_index(tuple(group[c] for c in points.grouping))
    sub = points.subset(_group_mask(points, g))
    if not (sub.mated & (sub.weight > 0)).any():
        raise NoMatedScoresError(
            f"the calibration set has no same-person scores of group {group}: no "
            "group-specific LR can be given"
        )
    return g


def _statement(points, system, groups, target, score, reps, level, have_reps) -> Statement:
    flags = _check_score(points, score)
    pooled = float(system.log10_lr(np.array([score]))[0])
    est = _interval(pooled, reps["score_pooled"] if have_reps else None, level)
    if pooled in (system.lower, system.upper):
        flags.append(Flag.of("at_bound", which="pooled", bound=pooled))
    group_est, label = None, ()
    if target is not None:
        k = next((i for i, g in enumerate(groups) if g.g == target), None)
        if k is None:  # the group could not be calibrated: say why by refitting (raises the named error)
            fit_system(points.subset(_group_mask(points, target)), system.method)
            raise CalibrationError(f"group {points.group_labels[target]} could not be calibrated")
        grp = groups[k]
        flags += [
            Flag.of(f.code, group=grp.label, **dict(f.params))
            for f in _check_score(grp.points, score)
            if f.code == "outside_joint_support"
        ]
        val = float(grp.system.log10_lr(np.array([score]))[0])
        group_est = _interval(val, reps["score_group"][k] if have_reps else None, level)
        if val in (grp.system.lower, grp.system.upper):
            flags.append(Flag.of("at_bound", which="group", bound=val))
        if have_reps:
            d = reps["score_group"][k] - reps["score_pooled"]
            dd = _interval(val - pooled, d, level)
            if dd.low is not None and (dd.low > 0 or dd.high < 0):
                flags.append(Flag.of("group_lr_differs", difference=val - pooled, low=dd.low, high=dd.high))
        label = tuple(zip(points.grouping, grp.label))
    return Statement(float(score), label, est, group_est, tuple(flags))


def evaluate(
    points: CalibrationPoints,
    method: str = "logistic",
    *,
    folds: int = 5,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    score: float | None = None,
    group: dict[str, str] | None = None,
    strong: float = 2.0,
    criteria: dict | None = None,
    grid_size: int = 41,
    provenance: dict | None = None,
) -> EvidenceResult:
    """Fit, cross-validate and bootstrap; the LR of ``score`` (pooled and for ``group``) when given."""
    target = _target(points, group)
    if score is not None:
        _check_score(points, score)  # refuse before any work
    system = fit_system(points, method)
    cv = cross_validate(points, method, folds, seed, start=system)
    groups, flags = _prepare_groups(points, cv, method, folds, seed, system, target)
    grid = _grid(points, system, grid_size)
    W = None
    if bootstrap > 0 and points.subjects_known:
        W = bootstrap_weights(points.subject_group, bootstrap, seed)
    elif bootstrap > 0:
        flags.append(Flag.of("no_subject_bootstrap", reason="subjects_unknown"))
    G = points.n_groups
    cells = np.unique(cv.points.group_a[~cv.points.mated] * G + cv.points.group_b[~cv.points.mated])
    pair_cells = [(int(c) // G, int(c) % G) for c in cells] if G > 1 else []
    reps = _replicates(points, cv, groups, method, W, score, grid, strong, pair_cells, system)
    have = W is not None
    val = validation(
        cv.log10_lr, cv.points.mated, cv.points.weight, reps["overall"] if have else None, level, strong
    )
    group_res = _group_results(groups, cv, system, grid, reps, level, strong, have)
    statement = None
    if score is not None:
        statement = _statement(points, system, groups, target, score, reps, level, have)
    flags += _binned_flag(points)
    crit = dict(DEFAULT_CRITERIA)
    crit.update(criteria or {})
    summary = _summary(points, system, method, folds)
    settings = {
        "method": method,
        "folds": folds,
        "bootstrap": bootstrap,
        "seed": seed,
        "level": level,
        "score": score,
        "group": group,
        "strong_log10": strong,
        "grouping": list(points.grouping),
        "criteria": {k: list(v) for k, v in crit.items()},
    }
    return EvidenceResult(
        summary,
        val,
        _population(points),
        tuple(group_res),
        tuple(_pairs(points, cv, pair_cells, reps, level, have)),
        statement,
        tuple(_matrix(val, group_res, crit)),
        tuple(flags),
        settings,
        provenance or {},
    )


def _summary(points: CalibrationPoints, system, method: str, folds: int) -> SystemSummary:
    """The LR system and the calibration data it was fitted on, as the document describes them."""
    jlo, jhi = _joint_support(points)
    return SystemSummary(
        method=method,
        lower_log10=system.lower,
        upper_log10=system.upper,
        support=system.support,
        joint_support=(jlo, jhi),
        n_mated=float(points.weight[points.mated].sum()),
        n_nonmated=float(points.weight[~points.mated].sum()),
        n_subjects=points.n_subjects,
        n_exact_nonmated=int((points.exact & ~points.mated).sum()),
        bin_width=points.bin_width,
        folds=folds,
        design=points.design,
        **_medians(points),
    )


def _binned_flag(points: CalibrationPoints) -> list[Flag]:
    """A flag when part of the non-mated scores enter as histogram bins (at their bin's middle)."""
    if not (~points.exact).any():
        return []
    share = float(points.weight[~points.exact].sum() / points.weight[~points.mated].sum())
    return [Flag.of("bulk_binned", bin_width=points.bin_width, bulk_share=share)]
