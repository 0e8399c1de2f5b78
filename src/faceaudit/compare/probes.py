"""Per-probe 1:N summaries in O(n k) memory: a running top-k and first-mate counts, chunk by chunk.

The kernels capture every non-mated pair at or above either sample's per-probe threshold (``keep_sample``:
below the sample's k-th best sampled score and below its best mated score, each lowered by the float32
error bound). Those captures are not kept: each chunk's are reduced at once (:func:`reduce_captures`) to

* its candidates for each probe's top k (in either role, at or above the probe's top-k threshold and the
  k-th best seen so far), cut to the chunk's own k best per probe;
* per probe, the count of its non-mated scores at or above ``mate_hi`` (an upper bound of its best mated
  score), and the few scores in ``[mate_lo, mate_hi)`` (``mate_lo`` the capture threshold), which decide
  the rank once the best mated score is known;

and :class:`ProbeAccumulator` merges them into a running (n, k) top-k (ties to the lower reference
index, as one global sort would) and the per-probe counts. Memory is O(n k) plus one chunk's captures,
whatever the set size; the result is the one a sort of all the captures gives, bit for bit, in any
chunk order (the merge keeps the k first of a total order), so resumed runs and Dask's completion order
give the same summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaudit.compare.summary import ProbeSummary, by_probe_score_desc_ref, float_order

__all__ = ["ProbeThresholds", "ProbePartial", "ProbeAccumulator", "reduce_captures", "fold_captures",
           "NO_REFERENCE", "FOLD_BATCH"]

#: the reference index of an empty top-k slot (sorts after every real one)
NO_REFERENCE = np.int64(2**62)
_FIELDS = ("top_p", "top_r", "top_x", "band_p", "band_x", "above_p", "above_n")
#: captures reduced and folded at a time: each batch raises the probes' k-th best, so the next batches'
#: candidates are mostly cut before any sort
FOLD_BATCH = 1 << 18


@dataclass(frozen=True)
class ProbeThresholds:
    """Per sample, x units (float32): top-k capture threshold, rank band ``[mate_lo, mate_hi)``."""

    k: int
    topk_x: np.ndarray
    mate_lo: np.ndarray
    mate_hi: np.ndarray


@dataclass
class ProbePartial:
    """What some chunks contribute to the per-probe summaries (O(k) per probe they touch)."""

    top_p: np.ndarray  # int64 probe of each top-k candidate
    top_r: np.ndarray  # int64 its reference
    top_x: np.ndarray  # float32 its score (x units)
    band_p: np.ndarray  # int64 probe of each score in its rank band
    band_x: np.ndarray  # float32
    above_p: np.ndarray  # int64 probes with scores >= their mate_hi (unique)
    above_n: np.ndarray  # int64 how many

    def to_arrays(self, prefix: str = "probe_") -> dict[str, np.ndarray]:
        return {prefix + f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_arrays(cls, a, prefix: str = "probe_") -> ProbePartial:
        return cls(**{f: np.asarray(a[prefix + f]) for f in _FIELDS})

    @classmethod
    def fields(cls, prefix: str = "probe_") -> tuple[str, ...]:
        return tuple(prefix + f for f in _FIELDS)

    @classmethod
    def concat(cls, parts: list[ProbePartial], n: int) -> ProbePartial:
        """Several partials as one (the ``above`` counts of a probe added)."""
        cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS[:5]}
        above = np.zeros(n, np.int64)
        for p in parts:
            above[p.above_p] += p.above_n
        ap = np.flatnonzero(above).astype(np.int64)
        return cls(**cat, above_p=ap, above_n=above[ap])


def _first_k(p: np.ndarray, r: np.ndarray, x: np.ndarray, k: int):
    """The k first (score descending, then reference) of each probe: (probe, ref, x, position)."""
    o, ps = by_probe_score_desc_ref(p, x, r)
    start = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]]) if ps.size else np.empty(0, np.intp)
    pos = np.arange(ps.size) - np.repeat(start, np.diff(np.r_[start, ps.size]))
    keep = pos < k
    o = o[keep]
    return ps[keep], r[o], x[o], pos[keep]


def reduce_captures(th: ProbeThresholds, n: int, cap_i: np.ndarray, cap_j: np.ndarray, cap_x: np.ndarray,
                    floor: np.ndarray | None = None) -> ProbePartial:
    """One chunk's captures (non-mated, i < j, x units) reduced for the per-probe summaries; ``floor``:
    each probe's k-th best so far (candidates below it cannot enter its top k)."""
    tops, bands = [], []
    above = np.zeros(n, np.int64)
    top = th.topk_x if floor is None else np.maximum(th.topk_x, floor)  # per sample
    # the lowest score any test below takes, per sample: most captures (the cells' tails) fail it and
    # are dropped with one look-up, not four
    low = np.minimum(np.minimum(top, th.mate_lo), th.mate_hi) if th.k else np.minimum(th.mate_lo, th.mate_hi)
    for p, r in ((cap_i, cap_j), (cap_j, cap_i)):  # each pair in both roles
        used = np.flatnonzero(cap_x >= low[p])  # in capture order: the bands keep theirs
        p, r, x = p[used], r[used], cap_x[used]
        if th.k:
            m = x >= top[p]
            tops.append((p[m], r[m], x[m]))
        hi = x >= th.mate_hi[p]
        above += np.bincount(p[hi], minlength=n)
        band = ~hi & (x >= th.mate_lo[p])
        bands.append((p[band], x[band]))
    e = np.empty(0, np.int64)
    if tops:
        tp, tr, tx, _ = _first_k(*(np.concatenate(c) for c in zip(*tops)), th.k)
    else:
        tp, tr, tx = e, e, np.empty(0, np.float32)
    ap = np.flatnonzero(above)
    return ProbePartial(
        tp.astype(np.int64),
        tr.astype(np.int64),
        tx.astype(np.float32),
        np.concatenate([b[0] for b in bands]).astype(np.int64),
        np.concatenate([b[1] for b in bands]).astype(np.float32),
        ap.astype(np.int64),
        above[ap],
    )


def fold_captures(acc: ProbeAccumulator, cap_i: np.ndarray, cap_j: np.ndarray, cap_x: np.ndarray,
                  batch: int = FOLD_BATCH) -> ProbePartial:
    """Reduce a chunk's captures batch by batch into ``acc`` (each batch cut by the k-th best so far);
    the chunk's own reduction (for its checkpoint) is returned. Candidates cut by the floor cannot enter
    a top k: ``k`` better ones were folded before, from chunks already saved or from this one."""
    parts = []
    for a in range(0, max(cap_x.size, 1), batch):
        part = reduce_captures(
            acc.th, acc.n, cap_i[a : a + batch], cap_j[a : a + batch], cap_x[a : a + batch], acc.floor()
        )
        acc.fold(part)
        parts.append(part)
    return parts[0] if len(parts) == 1 else ProbePartial.concat(parts, acc.n)


def _probe_score_keys(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """uint64 keys ascending in (probe, score descending)."""
    return (p.astype(np.uint64) << np.uint64(32)) | (~float_order(x)).astype(np.uint64)


def merge_sorted(top_x: np.ndarray, top_r: np.ndarray, p: np.ndarray, r: np.ndarray, x: np.ndarray) -> bool:
    """Merge candidates into the running (n, k) top-k in place, without a sort, when they are in the
    order of a chunk's reduction (probe, score descending, reference); False (nothing changed)
    otherwise, for the caller's sort.

    Each row and each probe's candidates are in that total order, so the merged row is the two lists
    interleaved: a candidate lands at its position among its probe's candidates plus the held entries
    before it (a search in the rows' keys, ascending in (probe, score descending) across the flattened
    rows; where a held score equals the candidate's, the held ones with a lower reference come first);
    a held entry moves down by the candidates before it. O(rows touched x k + candidates)."""
    n, k = top_x.shape
    if n >= 2**32:
        return False
    key = _probe_score_keys(p, x)
    step = key[1:] > key[:-1]
    if not (step | ((key[1:] == key[:-1]) & (r[1:] > r[:-1]))).all():
        return False
    first = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    touched = p[first]
    count = np.diff(np.r_[first, p.size])
    row = np.repeat(np.arange(touched.size), count)
    held_x, held_r = top_x[touched], top_r[touched]
    held = ((touched.astype(np.uint64) << np.uint64(32))[:, None]
            | (~float_order(held_x)).astype(np.uint64)).ravel()
    at = np.searchsorted(held, key)
    tied = np.flatnonzero(held[np.minimum(at, held.size - 1)] == key)
    if tied.size:  # equal scores: the held entries of that score with a lower reference come first
        span = np.searchsorted(held, key[tied], side="right") - at[tied]
        cols = at[tied, None] + np.arange(k)
        inside = np.arange(k) < span[:, None]
        at[tied] += (inside & (held_r.ravel()[np.where(inside, cols, 0)] < r[tied, None])).sum(axis=1)
    at -= row * k  # held entries before each candidate (0..k)
    pos = at + np.arange(p.size) - np.repeat(first, count)
    before = np.bincount(row * (k + 1) + at, minlength=touched.size * (k + 1)).reshape(-1, k + 1)
    held_pos = np.arange(k) + np.cumsum(before, axis=1)[:, :k]
    # rows of k + 1: whatever falls past the k-th place is written to the last column, then dropped
    base = np.arange(touched.size) * (k + 1)
    new_x = np.empty((touched.size, k + 1), held_x.dtype)
    new_r = np.empty((touched.size, k + 1), held_r.dtype)
    to = (base[:, None] + np.minimum(held_pos, k)).ravel()
    new_x.reshape(-1)[to], new_r.reshape(-1)[to] = held_x.ravel(), held_r.ravel()
    to = base[row] + np.minimum(pos, k)
    new_x.reshape(-1)[to], new_r.reshape(-1)[to] = x, r
    top_x[touched], top_r[touched] = new_x[:, :k], new_r[:, :k]
    return True


class ProbeAccumulator:
    """The running per-probe top-k and rank counts of a run (O(n k) memory)."""

    def __init__(self, n: int, thresholds: ProbeThresholds) -> None:
        self.n, self.th, k = n, thresholds, thresholds.k
        self.top_x = np.full((n, k), -np.inf, np.float32)
        self.top_r = np.full((n, k), NO_REFERENCE, np.int64)
        self.above = np.zeros(n, np.int64)
        self.band_p: list[np.ndarray] = []
        self.band_x: list[np.ndarray] = []

    def floor(self) -> np.ndarray | None:
        """Each probe's k-th best score so far (-inf until it has k)."""
        return self.top_x[:, -1] if self.th.k else None

    def fold(self, part: ProbePartial) -> None:
        """Merge a chunk's reduction (any order: the result does not depend on it)."""
        self.above[part.above_p] += part.above_n
        if part.band_p.size:
            self.band_p.append(part.band_p)
            self.band_x.append(part.band_x)
        k = self.th.k
        if not k or not part.top_p.size:
            return
        keep = part.top_x >= self.top_x[part.top_p, -1]
        p, r, x = part.top_p[keep], part.top_r[keep], part.top_x[keep]
        if not p.size or merge_sorted(self.top_x, self.top_r, p, r, x):
            return
        touched = np.unique(p)  # ties or unsorted candidates: one sort of the rows and the candidates
        P = np.concatenate([np.repeat(touched, k), p])
        R = np.concatenate([self.top_r[touched].ravel(), r])
        X = np.concatenate([self.top_x[touched].ravel(), x])
        ps, rs, xs, pos = _first_k(P, R, X, k)
        self.top_x[ps, pos] = xs
        self.top_r[ps, pos] = rs

    def summary(self, subject_of_sample: np.ndarray, gen_i: np.ndarray, gen_j: np.ndarray, gen_x: np.ndarray,
                scale: float) -> ProbeSummary:
        """The exact summaries, checked: every probe's top k complete, its best mate inside its band."""
        n, k = self.n, self.th.k
        filled = self.top_r != NO_REFERENCE
        subj = subject_of_sample
        n_nonmated = (n - 1) - (np.bincount(subj)[subj] - 1)
        if (filled.sum(axis=1) < np.minimum(k, n_nonmated)).any():
            raise AssertionError("a probe's top-k capture was incomplete")  # the thresholds are lower bounds
        topk_score = np.where(filled, self.top_x.astype(np.float64) / scale, -np.inf)
        best, best_ref = best_mates(n, gen_i, gen_j, gen_x)
        has = best_ref >= 0
        rank = np.zeros(n, np.int64)
        if has.any():
            if (self.th.mate_lo[has] > best[has]).any() or (self.th.mate_hi[has] < best[has]).any():
                raise AssertionError("a probe's rank capture was incomplete")
            bp = np.concatenate(self.band_p) if self.band_p else np.empty(0, np.int64)
            bx = np.concatenate(self.band_x) if self.band_x else np.empty(0, np.float32)
            # rank: 1 + non-mated scores >= the best mated one: those >= mate_hi >= best, and the band's
            band = np.bincount(bp[bx >= best[bp]], minlength=n)
            rank[has] = 1 + self.above[has] + band[has]
        return ProbeSummary(k=k, topk_score=topk_score, topk_reference=np.where(filled, self.top_r, -1),
                            best_mated_score=np.where(has, best.astype(np.float64) / scale, np.nan),
                            best_mated_reference=best_ref, mate_rank=rank)


def best_mates(
    n: int, gen_i: np.ndarray, gen_j: np.ndarray, gen_x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's best mated x (float32, -inf: none) and its reference (-1: none; ties to the lower
    index), in both roles: reductions, no sort."""
    best = np.full(n, -np.inf, np.float32)
    np.maximum.at(best, gen_i, gen_x)
    np.maximum.at(best, gen_j, gen_x)
    none = np.iinfo(np.int64).max
    best_ref = np.full(n, none, np.int64)
    tie = gen_x == best[gen_i]
    np.minimum.at(best_ref, gen_i[tie], gen_j[tie])
    tie = gen_x == best[gen_j]
    np.minimum.at(best_ref, gen_j[tie], gen_i[tie])
    return best, np.where(best_ref != none, best_ref, -1)
