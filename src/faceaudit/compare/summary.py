"""Per-probe 1:N summaries: each sample's best non-mated scores and where its first mate ranks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ProbeSummary", "float_order", "by_probe_score_desc_ref"]


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
