"""1:1 rates of a closed matcher at the thresholds its results can answer.

* decision-only results: FMR and FNMR at the system's own operating point (a match is score 1, the
  point is ``score >= 1``), overall, per group and across groups. Nothing else: no EER, no
  target-FMR threshold, no DET.
* censored results (scores reported only at or above ``c``): the same rates at any threshold
  ``T >= c`` (default ``c`` itself), the exact DET above ``c``, and the EER only where it lies above
  ``c``. A threshold below ``c`` is refused (:class:`BelowCensoringError`): the scores there were
  never seen.

Definitions are those of :mod:`faceaudit.measures.verification` and :func:`faceaudit.audit.audit`
(group FMR over pairs with probe and reference both in the group; cross-group cells probe group x
reference group in file orientation), so that on the same pairs the numbers are the audit's. Every
rate carries count, total, the exact Clopper-Pearson interval, the rule-of-three bound for a zero
count and, per group, the subject bootstrap (subjects resampled within their group).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from faceaudit.audit import SubjectBootstrap
from faceaudit.data.decisions import ClosedComparisons
from faceaudit.errors import EmptyError, InputError, NotExactError
from faceaudit.groups import OVERALL, group_name, group_subsets, grouping_name, resolve_groupings
from faceaudit.measures.verification import det_curve, eer
from faceaudit.results import (
    CensoredCurve,
    ClosedAuditResult,
    ClosedGroupRates,
    ClosedPoint,
    CrossGroupMatrix,
)
from faceaudit.stats.intervals import rate

__all__ = ["BelowCensoringError", "closed_audit", "SYSTEM_DECISION", "SCORE_THRESHOLD"]

#: where a decision-only point comes from: the system's own, unknown, threshold
SYSTEM_DECISION = "system_decision"
SCORE_THRESHOLD = "score_threshold"


class BelowCensoringError(NotExactError):
    """A threshold below the censoring level was asked: no score below it was reported."""


def _check_threshold(closed: ClosedComparisons, threshold: float) -> None:
    if threshold != threshold:
        raise InputError("threshold is NaN")
    if closed.kind == "decision":
        raise InputError(
            "decision-only results have no score: the only operating point is the system's own "
            "decision; give no threshold"
        )
    if threshold < closed.censored_below:
        raise BelowCensoringError(
            f"threshold {threshold!r} lies below the censoring level {closed.censored_below!r}: the system "
            f"reported no score below it ({closed.censored_mated} mated and {closed.censored_nonmated} "
            "non-mated comparisons are known only to be below it); nothing is measured there"
        )


def _point(
    closed: ClosedComparisons,
    threshold: float,
    source: str,
    subsets: dict,
    groupings: list,
    level: float,
    boot: SubjectBootstrap | None,
) -> ClosedPoint:
    d = closed.dist
    gsubj = d.samples.group_of_subject
    at_least, exact = d.nonmated_at_least_by_cell(threshold)
    totals = d.nonmated_counts()
    if not exact[totals > 0].all():  # the readers keep every score at or above the level exactly
        raise BelowCensoringError(f"threshold {threshold!r} is not above every unreported score")
    entries = {}
    for key, groups in subsets.items():
        cells = d.cell_mask(groups, groups)
        subjects = np.isin(gsubj, groups)
        genuine = d.genuine_scores(groups)
        n_nm, n_m = int(totals[cells].sum()), int(genuine.size)
        # the audit's own subject bootstrap: the same weights and replicates as `audit` on the same pairs
        b_fmr = boot.fmr(key, subjects, subjects, threshold, level) if boot is not None and n_nm else None
        b_fnmr = boot.fnmr(subjects, threshold, level) if boot is not None and n_m else None
        fm = int(at_least[cells].sum())
        fnm = int(np.searchsorted(genuine, threshold, side="left"))
        entries[key] = ClosedGroupRates(
            tuple(key[0]),
            tuple(key[1]),
            int(subjects.sum()),
            rate(fm, n_nm, level=level, bootstrap=b_fmr),
            rate(fnm, n_m, level=level, bootstrap=b_fnmr),
        )
    cross = []
    for grouping in groupings:
        keys = [k for k in subsets if k[0] == tuple(grouping)]
        matrix = tuple(
            tuple(
                rate(int(at_least[c].sum()), int(totals[c].sum()), level=level)
                for c in (d.cell_mask(subsets[kp], subsets[kr]) for kr in keys)
            )
            for kp in keys
        )
        labels = tuple(group_name(k[1]) for k in keys)
        cross.append(
            CrossGroupMatrix(
                grouping=grouping_name(grouping),
                fmr_target=None,
                threshold=threshold,
                probe_groups=labels,
                reference_groups=labels,
                fmr=matrix,
            )
        )
    overall = entries.pop(OVERALL)
    return ClosedPoint(
        None if source == SYSTEM_DECISION else float(threshold),
        source,
        overall,
        tuple(entries.values()),
        tuple(cross),
    )


def _curve(closed: ClosedComparisons, key: tuple, groups: list[int]) -> CensoredCurve | None:
    d = closed.dist
    view, genuine = d.impostor_view(d.cell_mask(groups, groups)), d.genuine_scores(groups)
    if view.total == 0 or genuine.size == 0:
        return None
    c = closed.censored_below
    curve = det_curve(view, genuine)
    keep = curve["threshold"] >= c
    e_value = e_thr = None
    reported = np.concatenate([view.tail[view.tail >= c], genuine[genuine >= c]])
    fm_c = int(view.tail.size - np.searchsorted(view.tail, c, side="left"))
    fnm_c = int(np.searchsorted(genuine, c, side="left"))
    if fm_c * genuine.size < fnm_c * view.total:
        # FMR < FNMR at the level: the rates cross below it, where nothing was reported
        return CensoredCurve(
            tuple(key[0]),
            tuple(key[1]),
            curve["threshold"][keep],
            curve["false_matches"][keep],
            curve["false_non_matches"][keep],
            int(view.total),
            int(genuine.size),
            None,
            None,
        )
    try:
        e = eer(view, genuine)
        # a candidate threshold between an unreported score and the lowest reported one would rest on
        # the stand-in value of the unreported scores: only a midpoint of two reported scores counts
        if reported.size and e.threshold >= c and (np.isneginf(c) or e.threshold > reported.min()):
            e_value, e_thr = float(e.eer), float(e.threshold)
    except NotExactError:
        pass
    return CensoredCurve(
        tuple(key[0]),
        tuple(key[1]),
        curve["threshold"][keep],
        curve["false_matches"][keep],
        curve["false_non_matches"][keep],
        int(view.total),
        int(genuine.size),
        e_value,
        e_thr,
    )


def closed_audit(
    closed: ClosedComparisons,
    *,
    thresholds: Iterable[float] = (),
    groupings: Iterable[Sequence[str]] | None = None,
    level: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
    curves: bool = True,
) -> ClosedAuditResult:
    """Rates at every answerable operating point.

    Decision-only: the system's decision (``thresholds`` must be empty). Censored: each threshold in
    ``thresholds`` (default: the censoring level), each ``>= censored_below``; and with ``curves``,
    the exact DET above the level and the EER where it lies above it, per group.
    """
    d = closed.dist
    groupings = resolve_groupings(d.samples.group_columns, groupings)
    if d.n_mated == 0 and d.n_nonmated == 0:
        raise EmptyError("the results hold no comparison between two different samples")
    thresholds = [float(t) for t in thresholds]
    if closed.kind == "decision":
        if thresholds:
            _check_threshold(closed, thresholds[0])
        asked = [(1.0, SYSTEM_DECISION)]
    else:
        if not thresholds:
            thresholds = [closed.censored_below] if np.isfinite(closed.censored_below) else []
        if not thresholds:
            raise InputError("uncensored scores: give the thresholds to measure at")
        for t in thresholds:
            _check_threshold(closed, t)
        asked = [(t, SCORE_THRESHOLD) for t in thresholds]
    subsets = group_subsets(d.samples, groupings)
    boot = SubjectBootstrap(d, int(bootstrap), seed) if bootstrap and bootstrap > 0 else None
    points = tuple(_point(closed, t, src, subsets, groupings, level, boot) for t, src in asked)
    found = ()
    if closed.kind == "censored" and curves:
        found = tuple(c for c in (_curve(closed, k, g) for k, g in subsets.items()) if c is not None)
    return ClosedAuditResult(
        kind=closed.kind,
        censored_below=closed.censored_below,
        censored_mated=closed.censored_mated,
        censored_nonmated=closed.censored_nonmated,
        mated=d.n_mated,
        nonmated=d.n_nonmated,
        points=points,
        curves=found,
        level=level,
        bootstrap_replicates=int(bootstrap) if boot is not None else 0,
        bootstrap_seed=seed,
        exclusions=tuple(sorted(d.exclusions.items())),
        manifest=dict(closed.manifest),
    )
