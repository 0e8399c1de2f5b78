"""The calibration set as weighted points, with the subjects each point comes from.

A :class:`~faceaudit.scores.ScoreDistributions` keeps every mated score exactly (with its samples) and,
per cell of groups, the non-mated scores as a histogram plus every score at or above the cell's tail
cutoff, exactly (with its samples). The evidence module reads it as points:

* every mated score: weight 1, its subject;
* every exact non-mated (tail) score: weight 1, its two subjects;
* the non-mated scores below a cell's tail cutoff (the *bulk*): one point per non-empty bin, weight =
  the bin's count minus the tail scores in it, placed at the middle of the bin's part below the cell's
  largest bulk score. **Approximation**: a bulk score is moved by at most one bin width (the width is
  stated in every output); nothing at or above the tail cutoff is moved.

Bulk points have no subjects. Under a subject weighting ``w`` (a bootstrap draw, or a cross-validation
fold as a 0/1 mask) the bulk of a cell is scaled by ``B_c(w) / B_c(1)``, where ``B_c(w)`` is the weighted
number of bulk pairs of the cell: the weighted non-mated pairs of subjects (from the recorded pair counts,
or from the samples per subject in an all-pairs design) minus the weighted tail pairs. The counts are
exact; the *shape* of a cell's bulk is assumed not to depend on which subjects are drawn (the only
assumption, stated in every output).

Groups are those of ``grouping`` (columns of the sample table; a subject sits in one group). A
non-mated point's group pair is (probe group, reference group) in a listed design and the unordered pair
(lower, higher) in an all-pairs design, where the orientation of a pair carries no meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit.evidence.errors import SubjectsUnknownError, UnknownGroupError
from faceaudit.scores import ScoreDistributions, bin_index

__all__ = ["CalibrationPoints", "calibration_points", "parse_group"]


@dataclass(frozen=True)
class CalibrationPoints:
    score: np.ndarray
    weight: np.ndarray
    mated: np.ndarray
    subject_a: np.ndarray  # probe subject (mated: the subject); -1 for bulk points
    subject_b: np.ndarray  # reference subject; -1 for bulk points
    group_a: np.ndarray
    group_b: np.ndarray
    bulk_cell: np.ndarray  # cell code group_a * G + group_b for bulk points, -1 for exact ones
    grouping: tuple[str, ...]
    group_labels: tuple[tuple[str, ...], ...]
    subject_group: np.ndarray  # (S,) group of each subject under ``grouping``
    subject_ids: np.ndarray
    bin_width: float  # the most a bulk point is moved
    design: str
    _pairs: Any  # (S, S) csr of non-mated pair counts (listed) or None
    _samples_per_subject: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.group_labels)

    @property
    def n_subjects(self) -> int:
        return int(self.subject_group.size)

    @property
    def exact(self) -> np.ndarray:
        return self.bulk_cell < 0

    @property
    def subjects_known(self) -> bool:
        return self._pairs is not None or self.design == "complete"

    def group_index(self, label: tuple[str, ...]) -> int:
        try:
            return self.group_labels.index(tuple(label))
        except ValueError:
            raise UnknownGroupError(
                f"group {dict(zip(self.grouping, label))} is not in the calibration set; it has "
                f"{[dict(zip(self.grouping, g)) for g in self.group_labels]}"
            ) from None

    def cell_of(self, mask: np.ndarray | None = None) -> np.ndarray:
        return self.group_a * self.n_groups + self.group_b

    # ----- subject weightings ---------------------------------------------------------------
    def bulk_pairs(self, w: np.ndarray) -> np.ndarray:
        """(R, G*G) weighted number of bulk (non-tail) non-mated pairs per cell under subject weights
        ``w`` (R, S)."""
        if not self.subjects_known:
            raise SubjectsUnknownError(
                "the calibration set does not record which subjects its non-mated "
                "pairs come from (score arrays without a sample table)"
            )
        return self._total_pairs(w) - self._tail_pairs(w)

    def _total_pairs(self, w: np.ndarray) -> np.ndarray:
        G = self.n_groups
        R = w.shape[0]
        out = np.zeros((R, G * G))
        member = [self.subject_group == g for g in range(G)]
        if self._pairs is None:  # all pairs of samples, unordered: cells (g, h) with g <= h
            n = self._samples_per_subject
            wn = np.stack([(w * np.where(m, n, 0.0)).sum(axis=1) for m in member], axis=1)
            for g in range(G):
                own = (w**2 * np.where(member[g], n**2, 0.0)).sum(axis=1)
                out[:, g * G + g] = (wn[:, g] ** 2 - own) / 2.0
                for h in range(g + 1, G):
                    out[:, g * G + h] = wn[:, g] * wn[:, h]
            return out
        C = self._pairs
        for h in range(G):
            cw = C @ (w * member[h]).T  # (S, R): per probe subject, weighted pairs towards group h
            for g in range(G):
                out[:, g * G + h] = ((w * member[g]) * cw.T).sum(axis=1)
        return out

    def _tail_pairs(self, w: np.ndarray) -> np.ndarray:
        G = self.n_groups
        t = self.exact & ~self.mated
        prod = w[:, self.subject_a[t]] * w[:, self.subject_b[t]]
        cell = self.group_a[t] * G + self.group_b[t]
        return np.stack([np.bincount(cell, weights=row, minlength=G * G) for row in prod])

    def weights_under(self, w: np.ndarray) -> np.ndarray:
        """Point weights (n,) under one subject weighting ``w`` (S,): a mated pair counts w_s, an exact
        non-mated pair w_a w_b, a bulk point its count times its cell's bulk ratio."""
        out = np.empty(self.score.size)
        ex = self.exact
        mated = self.mated
        out[mated] = w[self.subject_a[mated]]
        nm = ex & ~mated
        out[nm] = w[self.subject_a[nm]] * w[self.subject_b[nm]]
        bulk = ~ex
        if bulk.any():
            ratio = self.bulk_ratio(w[None, :])[0]
            out[bulk] = self.weight[bulk] * ratio[self.bulk_cell[bulk]]
        return out

    def bulk_ratio(self, w: np.ndarray) -> np.ndarray:
        """(R, G*G) B_c(w) / B_c(1); 0 where the cell has no bulk."""
        base = self.bulk_pairs(np.ones((1, self.n_subjects)))[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(base > 0, self.bulk_pairs(w) / np.where(base > 0, base, 1.0), 0.0)

    def subset(self, keep: np.ndarray) -> CalibrationPoints:
        """The points where ``keep`` (bulk accounting unchanged: it is per cell)."""
        fields = {
            f: getattr(self, f)[keep]
            for f in ("score", "weight", "mated", "subject_a", "subject_b", "group_a", "group_b", "bulk_cell")
        }
        return _replace(self, **fields)


def _replace(p: CalibrationPoints, **kw) -> CalibrationPoints:
    import dataclasses

    return dataclasses.replace(p, **kw)


def parse_group(text: str) -> dict[str, str]:
    """``sex=female`` or ``sex=female,race=african`` -> {column: value} (values exactly as written)."""
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise UnknownGroupError(f"--group {text!r}: expected column=value[,column=value]")
        k, v = part.split("=", 1)
        out[k.strip()] = v
    return out


def calibration_points(dist: ScoreDistributions, grouping: tuple[str, ...] = ()) -> CalibrationPoints:
    """Read ``dist`` as weighted points grouped by ``grouping`` (columns of its sample table)."""
    s = dist.samples
    missing = [c for c in grouping if c not in s.group_columns]
    if missing:
        raise UnknownGroupError(
            f"group column(s) {missing} not in the calibration set's columns {list(s.group_columns)}"
        )
    pos = [s.group_columns.index(c) for c in grouping]
    coarse = [tuple(lab[i] for i in pos) for lab in s.group_labels]
    labels = tuple(sorted(set(coarse)))
    fine_to_coarse = np.array([labels.index(c) for c in coarse], dtype=np.intp)
    sample_group = fine_to_coarse[s.group_of_sample]
    subject_group = np.zeros(s.n_subjects, np.intp)
    subject_group[s.subject_of_sample] = sample_group
    complete = dist.design == "complete"
    exact = _exact_parts(dist, sample_group, complete)
    bulk = _bulk_parts(dist, fine_to_coarse, len(labels), complete)
    parts = [exact, bulk]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in exact}
    return CalibrationPoints(
        **cat,
        grouping=tuple(grouping),
        group_labels=labels,
        subject_group=subject_group,
        subject_ids=s.subject_ids,
        bin_width=float(np.max(np.diff(dist.edges))),
        design=dist.design,
        _pairs=None if dist.impostor_subject_pairs is None else sp.csr_array(dist.impostor_subject_pairs),
        _samples_per_subject=np.bincount(s.subject_of_sample, minlength=s.n_subjects).astype(np.float64),
    )


def _exact_parts(dist: ScoreDistributions, sample_group: np.ndarray, complete: bool) -> dict[str, np.ndarray]:
    subj = dist.samples.subject_of_sample
    ga, gb = sample_group[dist.tail_probe], sample_group[dist.tail_reference]
    if complete:
        ga, gb = np.minimum(ga, gb), np.maximum(ga, gb)
    gg = sample_group[dist.genuine_probe]
    n_g, n_t = dist.genuine_score.size, dist.tail_score.size
    return {
        "score": np.concatenate([dist.genuine_score, dist.tail_score]).astype(np.float64),
        "weight": np.ones(n_g + n_t),
        "mated": np.r_[np.ones(n_g, bool), np.zeros(n_t, bool)],
        "subject_a": np.concatenate([subj[dist.genuine_probe], subj[dist.tail_probe]]).astype(np.intp),
        "subject_b": np.concatenate([subj[dist.genuine_reference], subj[dist.tail_reference]]).astype(
            np.intp
        ),
        "group_a": np.concatenate([gg, ga]).astype(np.intp),
        "group_b": np.concatenate([gg, gb]).astype(np.intp),
        "bulk_cell": np.full(n_g + n_t, -1, np.intp),
    }


def _bulk_parts(
    dist: ScoreDistributions, fine_to_coarse: np.ndarray, G: int, complete: bool
) -> dict[str, np.ndarray]:
    """One point per (coarse cell, bin) with bulk scores: the histogram minus the tail scores."""
    Gf = dist.n_groups
    tail_sorted, starts, _ = dist.tail_index()  # the tail regrouped by cell, built once per distributions
    below = dist.below_max
    cols: dict[str, list] = {k: [] for k in ("score", "weight", "cell")}
    lo_edge, hi_edge = dist.edges[:-1], dist.edges[1:]
    for a in range(Gf):
        for b in range(Gf):
            # the cell's histogram (its row, or its exact scores binned) less its tail scores
            one = np.zeros((Gf, Gf), bool)
            one[a, b] = True
            row = dist.cell_histogram(one).astype(np.int64)
            c = a * Gf + b
            in_tail = bin_index(tail_sorted[starts[c] : starts[c + 1]], dist.edges)
            row -= np.bincount(in_tail, minlength=row.size)
            nz = np.flatnonzero(row)
            if nz.size == 0:
                continue
            ca, cb = fine_to_coarse[a], fine_to_coarse[b]
            if complete:
                ca, cb = min(ca, cb), max(ca, cb)
            # the middle of the bin's part at or below the cell's largest bulk score
            top = np.minimum(hi_edge[nz], below[a, b])
            cols["score"].append((lo_edge[nz] + np.maximum(top, lo_edge[nz])) / 2.0)
            cols["weight"].append(row[nz].astype(np.float64))
            cols["cell"].append(np.full(nz.size, ca * G + cb, np.intp))
    if not cols["score"]:
        empty = np.empty(0)
        return {
            "score": empty,
            "weight": empty,
            "mated": np.empty(0, bool),
            "subject_a": empty.astype(np.intp),
            "subject_b": empty.astype(np.intp),
            "group_a": empty.astype(np.intp),
            "group_b": empty.astype(np.intp),
            "bulk_cell": empty.astype(np.intp),
        }
    score, weight, cell = (np.concatenate(cols[k]) for k in ("score", "weight", "cell"))
    # merge the fine cells that map to one coarse cell, bin by bin
    key, inv = np.unique(np.stack([cell, score]), axis=1, return_inverse=True)
    weight = np.bincount(inv.ravel(), weights=weight)
    cell, score = key[0].astype(np.intp), key[1]
    n = score.size
    return {
        "score": score,
        "weight": weight,
        "mated": np.zeros(n, bool),
        "subject_a": np.full(n, -1, np.intp),
        "subject_b": np.full(n, -1, np.intp),
        "group_a": cell // G,
        "group_b": cell % G,
        "bulk_cell": cell,
    }
