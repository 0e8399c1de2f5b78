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
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit.build import default_groupings, group_subsets
from faceaudit.data.decisions import ClosedComparisons
from faceaudit.errors import EmptyError, InputError, NotExactError
from faceaudit.measures.verification import det_curve, eer
from faceaudit.stats.intervals import (
    Interval,
    bootstrap_weights,
    clopper_pearson,
    rule_of_three,
    subject_bootstrap,
)

__all__ = [
    "Rate",
    "GroupRates",
    "CrossGroupRates",
    "PointRates",
    "ClosedAudit",
    "BelowCensoringError",
    "rate",
    "closed_audit",
    "SYSTEM_DECISION",
]

#: where a decision-only point comes from: the system's own, unknown, threshold
SYSTEM_DECISION = "system_decision"


class BelowCensoringError(NotExactError):
    """A threshold below the censoring level was asked: no score below it was reported."""


@dataclass(frozen=True)
class Rate:
    """A counted rate: ``count`` of ``total``, exact interval, rule-of-three bound for 0, bootstrap."""

    count: int
    total: int
    exact: Interval | None
    rule_of_three: float | None = None
    bootstrap: Interval | None = None

    @property
    def value(self) -> float | None:
        return self.count / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        """The audit's rate entry (:func:`faceaudit.audit.rate_entry`)."""
        if not self.total:
            return {"count": 0, "total": 0, "value": None, "note": "no comparisons"}
        out: dict[str, Any] = {
            "count": self.count,
            "total": self.total,
            "value": self.value,
            "clopper_pearson": self.exact.as_dict(),
        }
        if self.rule_of_three is not None:
            out["rule_of_three_upper"] = self.rule_of_three
        if self.bootstrap is not None:
            out["subject_bootstrap"] = self.bootstrap.as_dict()
        return out


def rate(count: int, total: int, level: float = 0.95, bootstrap: Interval | None = None) -> Rate:
    if total == 0:
        return Rate(0, 0, None)
    return Rate(
        int(count),
        int(total),
        clopper_pearson(int(count), int(total), level),
        rule_of_three(int(total)) if count == 0 else None,
        bootstrap,
    )


@dataclass(frozen=True)
class GroupRates:
    grouping: tuple[str, ...]
    values: tuple[str, ...]
    subjects: int
    fmr: Rate
    fnmr: Rate


@dataclass(frozen=True)
class CrossGroupRates:
    """FMR per (probe group, reference group) of one grouping; ``fmr[i][j]``: probe ``labels[i]``."""

    grouping: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    fmr: tuple[tuple[Rate, ...], ...]


@dataclass(frozen=True)
class PointRates:
    """Rates at one operating point. ``threshold`` is None for the system's own decision."""

    threshold: float | None
    source: str  # SYSTEM_DECISION or "score_threshold"
    overall: GroupRates
    by_group: tuple[GroupRates, ...]
    cross_group: tuple[CrossGroupRates, ...]


@dataclass(frozen=True)
class CensoredCurve:
    """Exact DET points above the censoring level for one group (counts, thresholds ascending), and
    the EER where it lies above the level (else None)."""

    grouping: tuple[str, ...]
    values: tuple[str, ...]
    threshold: np.ndarray
    false_matches: np.ndarray
    false_non_matches: np.ndarray
    nonmated: int
    mated: int
    eer: float | None
    eer_threshold: float | None


@dataclass(frozen=True)
class ClosedAudit:
    kind: str
    censored_below: float | None
    censored_mated: int
    censored_nonmated: int
    mated: int
    nonmated: int
    points: tuple[PointRates, ...]
    curves: tuple[CensoredCurve, ...]
    level: float
    bootstrap_replicates: int
    bootstrap_seed: int
    exclusions: tuple[tuple[str, int], ...]


class _Boot:
    """Subject-bootstrap replicates of FMR and FNMR (listed design: per subject pair denominators)."""

    def __init__(self, closed: ClosedComparisons, replicates: int, seed: int, level: float) -> None:
        d = closed.dist
        self.d, self.level = d, level
        s = d.samples
        self.sos, self.S = s.subject_of_sample, s.n_subjects
        self.w = bootstrap_weights(s.group_of_subject, replicates, seed)
        self.gsub = self.sos[d.genuine_probe]

    def fnmr(self, subjects: np.ndarray, threshold: float) -> Interval:
        d = self.d
        inside = subjects[self.gsub]
        errors = np.bincount(self.gsub[inside & (d.genuine_score < threshold)], minlength=self.S).astype(
            float
        )
        totals = np.bincount(self.gsub[inside], minlength=self.S).astype(float)
        return subject_bootstrap(self.w, errors, totals, self.level)

    def fmr(self, groups: list[int], subjects: np.ndarray, threshold: float) -> Interval:
        d, S = self.d, self.S
        sel = d.tail_at_least(threshold, d.cell_mask(groups, groups))
        ps, rs = self.sos[d.tail_probe[sel]], self.sos[d.tail_reference[sel]]
        false = sp.coo_array((np.ones(ps.size), (ps, rs)), shape=(S, S)).tocsr()
        keep = sp.diags_array(subjects.astype(np.float64))
        den = (keep @ d.impostor_subject_pairs.astype(np.float64) @ keep).tocsr()
        return subject_bootstrap(self.w, false, den, self.level)


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
    boot: _Boot | None,
) -> PointRates:
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
        b_fmr = boot.fmr(groups, subjects, threshold) if boot is not None and n_nm else None
        b_fnmr = boot.fnmr(subjects, threshold) if boot is not None and n_m else None
        fm = int(at_least[cells].sum())
        fnm = int(np.searchsorted(genuine, threshold, side="left"))
        entries[key] = GroupRates(
            tuple(key[0]),
            tuple(key[1]),
            int(subjects.sum()),
            rate(fm, n_nm, level, b_fmr),
            rate(fnm, n_m, level, b_fnmr),
        )
    cross = []
    for grouping in groupings:
        keys = [k for k in subsets if k[0] == tuple(grouping)]
        matrix = []
        for kp in keys:
            row = []
            for kr in keys:
                cells = d.cell_mask(subsets[kp], subsets[kr])
                row.append(rate(int(at_least[cells].sum()), int(totals[cells].sum()), level))
            matrix.append(tuple(row))
        cross.append(CrossGroupRates(tuple(grouping), tuple(k[1] for k in keys), tuple(matrix)))
    overall = entries.pop(((), ()))
    return PointRates(
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
    if fm_c * genuine.size < fnm_c * view.total or view.tail.size < 2:
        # FMR < FNMR at the level: the rates cross below it, where nothing was reported (and
        # verification.eer indexes past a tail of fewer than 2 scores when a bulk lies below it)
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
) -> ClosedAudit:
    """Rates at every answerable operating point.

    Decision-only: the system's decision (``thresholds`` must be empty). Censored: each threshold in
    ``thresholds`` (default: the censoring level), each ``>= censored_below``; and with ``curves``,
    the exact DET above the level and the EER where it lies above it, per group.
    """
    d = closed.dist
    cols = d.samples.group_columns
    groupings = default_groupings(cols) if groupings is None else [tuple(g) for g in groupings]
    for g in groupings:
        unknown = [c for c in g if c not in cols]
        if unknown:
            raise InputError(f"unknown group column(s) {unknown}; the sample table has {list(cols)}")
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
        asked = [(t, "score_threshold") for t in thresholds]
    subsets = group_subsets(d.samples, groupings)
    boot = _Boot(closed, int(bootstrap), seed, level) if bootstrap and bootstrap > 0 else None
    points = tuple(_point(closed, t, src, subsets, groupings, level, boot) for t, src in asked)
    found = ()
    if closed.kind == "censored" and curves:
        found = tuple(c for c in (_curve(closed, k, g) for k, g in subsets.items()) if c is not None)
    return ClosedAudit(
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
    )
