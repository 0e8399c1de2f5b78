"""Per-probe 1:N summaries: each sample's best non-mated scores and where its first mate ranks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faceaudit.compare.kernel import BlockPartial
    from faceaudit.scores import SampleIndex

__all__ = ["ProbeSummary", "build_probe_summary", "float_order"]


@dataclass(frozen=True)
class ProbeSummary:
    """For every sample as a probe against all the other samples as references (exact).

    * ``topk_score[p]``: the ``k`` highest non-mated scores of probe ``p``, descending (``-inf`` pads a
      probe with fewer than ``k`` non-mated comparisons); ``topk_reference`` the reference sample
      indices (``-1`` pads; ties are broken by the lower reference index);
    * ``best_mated_score[p]`` / ``best_mated_reference[p]``: its best mated comparison (NaN / -1 when
      the probe's subject has no other sample);
    * ``mate_rank[p]``: 1 + the number of non-mated scores >= the best mated score (ties count
      against the mate), the rank at which a closed-set search would return the first mate; 0 when
      the probe has no mate.
    """

    k: int
    topk_score: np.ndarray  # (n, k) float64
    topk_reference: np.ndarray  # (n, k) int64
    best_mated_score: np.ndarray  # (n,) float64
    best_mated_reference: np.ndarray  # (n,) int64
    mate_rank: np.ndarray  # (n,) int64

    def rank_one_rate(self) -> tuple[int, int]:
        """(probes whose first mate ranks first, probes with a mate)."""
        has = self.mate_rank > 0
        return int((self.mate_rank[has] == 1).sum()), int(has.sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"k": np.int64(self.k), "topk_score": self.topk_score, "topk_reference": self.topk_reference,
                "best_mated_score": self.best_mated_score, "best_mated_reference": self.best_mated_reference,
                "mate_rank": self.mate_rank}

    @classmethod
    def from_arrays(cls, a) -> ProbeSummary:
        return cls(
            k=int(a["k"]),
            topk_score=np.asarray(a["topk_score"]),
            topk_reference=np.asarray(a["topk_reference"]),
            best_mated_score=np.asarray(a["best_mated_score"]),
            best_mated_reference=np.asarray(a["best_mated_reference"]),
            mate_rank=np.asarray(a["mate_rank"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeSummary):
            return NotImplemented
        return self.k == other.k and all(
            np.array_equal(getattr(self, f), getattr(other, f), equal_nan=f == "best_mated_score")
            for f in ("topk_score", "topk_reference", "best_mated_score", "best_mated_reference", "mate_rank")
        )

    __hash__ = None  # type: ignore[assignment]


def float_order(x: np.ndarray) -> np.ndarray:
    """uint32 keys in the order of the float32 values (-0.0 and 0.0 equal, as comparisons have them)."""
    u = (np.asarray(x, np.float32) + np.float32(0.0)).view(np.uint32)
    return np.where(u >> np.uint32(31), ~u, u | np.uint32(0x80000000))


def build_probe_summary(samples: SampleIndex, k: int, topk_x: np.ndarray, mate_x: np.ndarray,
                        total: BlockPartial, scale: float) -> ProbeSummary:
    """Top-k and first-mate rank of every probe from the captured scores (x units; ``topk_x`` and
    ``mate_x`` the per-sample capture thresholds the captures are complete above)."""
    topk_score, topk_ref = _top_k(samples, k, topk_x, total, scale)
    best, best_ref, rank = _first_mates(samples.n_samples, mate_x, total)
    has = best_ref >= 0
    best_score = np.where(has, best.astype(np.float64) / scale, np.nan)
    return ProbeSummary(k=k, topk_score=topk_score, topk_reference=topk_ref, best_mated_score=best_score,
                        best_mated_reference=best_ref, mate_rank=rank)


def _top_k(samples: SampleIndex, k: int, topk_x: np.ndarray, total: BlockPartial,
           scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Only the top-k candidates (>= each probe's top-k threshold) are sorted, in one packed-key sort."""
    n = samples.n_samples
    ci, cj, cx = total.cap_i, total.cap_j, total.cap_x
    a = cx >= topk_x[ci]
    b = cx >= topk_x[cj]
    probe = np.concatenate([ci[a], cj[b]])
    ref = np.concatenate([cj[a], ci[b]])
    x = np.concatenate([cx[a], cx[b]])
    del a, b
    counts = np.bincount(probe, minlength=n)
    subj = samples.subject_of_sample
    n_mates = np.bincount(subj, minlength=samples.n_subjects)[subj] - 1
    n_nonmated = (n - 1) - n_mates
    if (counts < np.minimum(k, n_nonmated)).any():
        raise AssertionError("a probe's top-k capture was incomplete")  # the thresholds are lower bounds
    o, probe_sorted = by_probe_score_desc_ref(probe, x, ref)
    start = np.r_[0, np.cumsum(counts)[:-1]]
    pos = np.arange(o.size) - start[probe_sorted]
    keep = pos < k
    sel, p, pos = o[keep], probe_sorted[keep], pos[keep]  # only the top k of each probe are gathered
    del o, probe_sorted, keep
    topk_score = np.full((n, k), -np.inf)
    topk_ref = np.full((n, k), -1, np.int64)
    topk_score[p, pos] = x[sel].astype(np.float64) / scale
    topk_ref[p, pos] = ref[sel]
    return topk_score, topk_ref


def _first_mates(
    n: int, mate_x: np.ndarray, total: BlockPartial
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each probe's best mated x (float32), its reference (-1: none; ties to the lower index) and the
    rank of its first mate: reductions over both roles, no sort."""
    ci, cj, cx = total.cap_i, total.cap_j, total.cap_x
    gi, gj, gx = total.gen_i, total.gen_j, total.gen_x
    best = np.full(n, -np.inf, np.float32)
    np.maximum.at(best, gi, gx)
    np.maximum.at(best, gj, gx)
    none = np.iinfo(np.int64).max
    best_ref = np.full(n, none, np.int64)
    tie = gx == best[gi]
    np.minimum.at(best_ref, gi[tie], gj[tie])
    tie = gx == best[gj]
    np.minimum.at(best_ref, gj[tie], gi[tie])
    has = best_ref != none
    rank = np.zeros(n, np.int64)
    if has.any():
        if (mate_x[has] > best[has]).any():
            raise AssertionError("a probe's rank capture was incomplete")
        # rank: 1 + non-mated scores >= the best mated one, in either role (all captured)
        above = np.bincount(ci[cx >= best[ci]], minlength=n) + np.bincount(cj[cx >= best[cj]], minlength=n)
        rank[has] = 1 + above[has]
    return best, np.where(has, best_ref, -1), rank


def by_probe_score_desc_ref(
    probe: np.ndarray, x: np.ndarray, ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The order by probe, then score descending, then reference, and the probes in that order.

    (probe, score) are packed in one uint64 and sorted with the fast unstable sort; only the rare runs
    of equal (probe, score) are then ordered by reference."""
    if probe.size and int(probe.max()) >= 2**32:
        o = np.lexsort((ref, -x, probe))
        return o, probe[o]
    key = (probe.astype(np.uint64) << np.uint64(32)) | (~float_order(x)).astype(np.uint64)
    o = np.argsort(key)
    ks = key[o]
    del key
    eq = ks[1:] == ks[:-1]
    if eq.any():
        tied = np.zeros(ks.size, bool)
        tied[1:] |= eq
        tied[:-1] |= eq
        at = np.flatnonzero(tied)
        sub = o[at]
        o[at] = sub[np.lexsort((ref[sub], ks[at]))]
    return o, (ks >> np.uint64(32)).astype(np.intp)
