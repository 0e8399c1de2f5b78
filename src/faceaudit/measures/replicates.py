"""Per-replicate group rates under the subject bootstrap, for differentials with intervals.

Same scheme as the audit's subject bootstrap (:func:`faceaudit.stats.intervals.bootstrap_weights`:
within each finest group, subjects redrawn with replacement): a subject drawn ``w`` times counts ``w``
times, a pair of distinct subjects drawn ``w_a`` and ``w_b`` times counts ``w_a * w_b`` times (pairs of
two copies of one subject are not non-mated pairs and never count). A group's FMR in a replicate is
its weighted false matches over its weighted non-mated comparisons, its FNMR the weighted misses over
the weighted mated comparisons. Every group's rates come from the same (R, subjects) weights, which is
what lets a ratio of two groups be recomputed per replicate.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from faceaudit.errors import InputError, NotExactError
from faceaudit.measures.differentials import GroupRate
from faceaudit.scores import ScoreDistributions

__all__ = ["fmr_replicates", "fnmr_replicates", "group_subject_mask", "group_rates"]


def group_subject_mask(dist: ScoreDistributions, groups: list[int]) -> np.ndarray:
    """Boolean mask over subjects: those in any of the finest ``groups``."""
    return np.isin(dist.samples.group_of_subject, list(groups))


def _rates(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def fnmr_replicates(dist: ScoreDistributions, weights: np.ndarray, groups: list[int],
                    threshold: float) -> np.ndarray:
    """(R,) FNMR of the subjects in ``groups`` at ``threshold`` in each replicate (NaN: no mated pairs)."""
    subj = dist.samples.subject_of_sample[dist.genuine_probe]
    inside = group_subject_mask(dist, groups)[subj]
    S = dist.samples.n_subjects
    miss = np.bincount(subj[inside & (dist.genuine_score < threshold)], minlength=S).astype(np.float64)
    total = np.bincount(subj[inside], minlength=S).astype(np.float64)
    return _rates(weights @ miss, weights @ total)


def fmr_replicates(dist: ScoreDistributions, weights: np.ndarray, groups: list[int],
                   threshold: float) -> np.ndarray:
    """(R,) FMR within ``groups`` (probe and reference both in them) at ``threshold`` per replicate.

    Needs the subject pairs of the non-mated comparisons: ``impostor_subject_pairs`` (listed design)
    or the complete design, where they follow from the samples per subject. The threshold must lie in
    the exact tail of every cell of the groups (NaN: no non-mated pairs in the replicate).
    """
    S = dist.samples.n_subjects
    cells = dist.cell_mask(groups, groups)
    totals = dist.nonmated_counts()
    _, exact = dist.nonmated_at_least_by_cell(threshold)
    if not exact[cells & (totals > 0)].all():
        raise NotExactError(f"threshold {threshold!r} lies below the exact tail of a cell of the group")
    sel = dist.tail_at_least(threshold, cells)
    ps = dist.samples.subject_of_sample[dist.tail_probe[sel]]
    rs = dist.samples.subject_of_sample[dist.tail_reference[sel]]
    false = sp.csr_array((np.ones(ps.size), (ps, rs)), shape=(S, S))
    num = _quadratic(false, weights)
    mask = group_subject_mask(dist, groups)
    if dist.design == "complete":
        n = np.bincount(dist.samples.subject_of_sample, minlength=S).astype(np.float64)
        n = np.where(mask, n, 0.0)
        den = ((weights @ n) ** 2 - (weights**2) @ (n**2)) / 2.0
    elif dist.impostor_subject_pairs is not None:
        keep = sp.diags_array(mask.astype(np.float64))
        den = _quadratic(keep @ dist.impostor_subject_pairs.astype(np.float64) @ keep, weights)
    else:
        raise InputError("no subject information for the non-mated pairs: replicate FMRs need it")
    return _rates(num, den)


def _quadratic(matrix: sp.sparray, weights: np.ndarray) -> np.ndarray:
    """w_r^T M w_r for every replicate row w_r of ``weights``."""
    mw = np.asarray(sp.csr_array(matrix) @ weights.T)  # (S, R)
    return np.einsum("ri,ir->r", weights, mw)


def group_rates(dist: ScoreDistributions, weights: np.ndarray | None, groups: dict[str, list[int]],
                threshold: float) -> tuple[list[GroupRate], list[GroupRate]]:
    """Each named group's FMR and FNMR at ``threshold`` as :class:`GroupRate` lists (point counts,
    subjects, and replicate rates where ``weights`` is given).

    FMR counts non-mated pairs with both samples in the group and every subject of the group;
    FNMR counts the group's mated pairs and the subjects who have one.
    """
    at_least, exact = dist.nonmated_at_least_by_cell(threshold)
    totals = dist.nonmated_counts()
    gsub = dist.samples.subject_of_sample[dist.genuine_probe]
    fmr, fnmr = [], []
    for name, members in groups.items():
        cells = dist.cell_mask(members, members)
        if not exact[cells & (totals > 0)].all():
            raise NotExactError(f"threshold {threshold!r} lies below the exact tail of group {name!r}")
        mask = group_subject_mask(dist, members)
        mated = mask[gsub]
        fm_reps = fnm_reps = None
        if weights is not None:
            fm_reps = (fmr_replicates(dist, weights, members, threshold) if totals[cells].sum()
                       else np.full(weights.shape[0], np.nan))
            fnm_reps = fnmr_replicates(dist, weights, members, threshold)
        fmr.append(GroupRate(name, int(at_least[cells].sum()), int(totals[cells].sum()), int(mask.sum()),
                             fm_reps))
        fnmr.append(GroupRate(name, int((dist.genuine_score[mated] < threshold).sum()), int(mated.sum()),
                              int(np.unique(gsub[mated]).size), fnm_reps))
    return fmr, fnmr
