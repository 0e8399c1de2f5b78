"""The pre-pass: capture levels of the main pass from a reference sample (an estimate, checked after).

Every sample is scored against a reference sample stratified by group (every group gets its share and
at least MIN_REFERENCES_PER_GROUP references, all of a small group). From these scores the pre-pass
estimates each cell's histogram (weighted by the sampling rate) and with the mated scores each cell's
tail cutoff, and sets a per-cell capture level below it with a margin in FMR; cells with few pairs are
captured whole (level ``-inf``). It also sets each sample's per-probe thresholds: below its k-th best
sampled non-mated score and below its best mated score, each lowered by the float32 error bound. The
assembly (:mod:`faceaudit.compare.assembly`) checks every estimate and repairs a too-high one exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from faceaudit.build import required_tail_cutoff
from faceaudit.compare.capped import estimate_keep
from faceaudit.compare.plan import GenuineSorted, Planner, f32_down, f32_up
from faceaudit.partition import edge_of
from faceaudit.scores import bin_index

__all__ = ["estimate_capture", "cell_levels", "SMALL_CELL", "SMALL_CELLS_TOTAL", "LEVEL_MARGIN_SHARE",
           "MIN_REFERENCES_PER_GROUP"]

#: a cell with at most this many (estimated) non-mated pairs is captured whole: its estimate is the
#: least reliable and the capture the cheapest; no more than SMALL_CELLS_TOTAL pairs in all
SMALL_CELL = 20_000
SMALL_CELLS_TOTAL = 500_000
#: a cell's capture level keeps at least twice the estimated share of its pairs above the estimated
#: cutoff, plus this share of the cell (the estimate's error is what a too-high level costs: a second pass)
LEVEL_MARGIN_SHARE = 5e-4
#: every group gets at least this many reference samples in the pre-pass (all of a smaller group)
MIN_REFERENCES_PER_GROUP = 32

ScoresFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def references(run: Planner, rng: np.random.Generator) -> np.ndarray:
    """A reference sample stratified by group: every group gets its share of ``reference_sample``
    and at least MIN_REFERENCES_PER_GROUP (all of a smaller group), so that small groups, whose
    cells' cutoffs are the hardest to estimate, are estimated from all their samples."""
    n, size = run.n, run.group_size
    if n <= max(run.reference_sample, 2 * run.top_k + 64):
        return np.arange(n)
    want = np.maximum(np.round(run.reference_sample * size / n), MIN_REFERENCES_PER_GROUP)
    want = np.minimum(want, size).astype(np.int64)
    g = run.samples.group_of_sample
    order = np.argsort(g, kind="stable")
    starts = np.r_[0, np.cumsum(size)[:-1]]
    picks = [order[starts[h] + rng.choice(size[h], want[h], replace=False)] for h in range(run.G) if want[h]]
    return np.sort(np.concatenate(picks))


def score_bins(run: Planner, s: np.ndarray) -> np.ndarray:
    """bin_index of float64 scores (the dyadic shortcut where it is exact)."""
    B = run.edges.size - 1
    if run.fast:
        b = np.floor(s * run.scale)
        b += B // 2
        np.clip(b, 0, B - 1, out=b)
        return b.astype(np.int64)
    return bin_index(s.ravel(), run.edges).reshape(s.shape).astype(np.int64)


class _RowSteps:
    """The pre-pass over rows: per step, the sampled histogram counts and each row's top-k bound."""

    def __init__(self, run: Planner, scores_fn: ScoresFn, refs: np.ndarray) -> None:
        self.run, self.scores_fn, self.refs = run, scores_fn, refs
        samples, G, B = run.samples, run.G, run.edges.size - 1
        self.k = min(run.top_k, refs.size)
        self.topk = np.full(run.n, np.inf if self.k == 0 else -np.inf)
        # a sampled row for each cell whose row or transpose's row the estimate needs (B bins each, the
        # cells kept whole and the excluded pairs in the dump slot)
        rows = estimated_rows(run)
        self.n_est = int(rows.size)
        self.est_row = np.full(G * G, -1, np.int64)
        self.est_row[rows] = np.arange(rows.size)
        self.dump = self.n_est * B
        self.base = np.where(self.est_row >= 0, self.est_row * B, self.dump)
        self.ref_group = samples.group_of_sample[refs].astype(np.int64)
        self.ref_subj = samples.subject_of_sample[refs]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        run, k = self.run, self.k
        subj, g = run.samples.subject_of_sample, run.samples.group_of_sample
        s = self.scores_fn(rows, self.refs)  # (rows, R) scores, float64
        excluded = subj[rows][:, None] == self.ref_subj[None, :]  # self and mates
        code = score_bins(run, s)
        cell = (g[rows].astype(np.int64) * run.G)[:, None] + self.ref_group[None, :]
        base = self.base[cell]
        code += base
        code[excluded | (base == self.dump)] = self.dump
        counts = np.bincount(code.ravel(), minlength=self.dump + 1)
        del code
        if k > 0:
            # the k-th best sampled non-mated score is a lower bound of the true k-th best
            s[excluded] = -np.inf
            kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]
            enough = (~excluded).sum(axis=1) >= k
            self.topk[rows] = np.where(enough & np.isfinite(kth), (kth - run.margin) * run.scale, -np.inf)
        return counts


def estimate_capture(run: Planner, scores_fn: ScoresFn, threads: int = 1, rows_per_step: int = 1024) -> None:
    """Set each sample's capture thresholds and each cell's tail level from a reference sample.

    Row steps run on ``threads`` threads with single-threaded BLAS (as the main pass): small
    GEMMs on a multi-threaded BLAS spin and stall on a shared machine."""
    G, B = run.G, run.edges.size - 1
    refs = references(run, np.random.default_rng(run.seed))
    step = _RowSteps(run, scores_fn, refs)
    starts = range(0, run.n, rows_per_step)

    def rows(a: int) -> np.ndarray:
        return step(np.arange(a, min(run.n, a + rows_per_step)))

    counts = np.zeros(step.dump + 1, np.int64)
    with threadpool_limits(limits=1, user_api="blas"):
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                gen = pool.submit(genuine_estimate, run)
                for c in pool.map(rows, starts):
                    counts += c
                gx, gi, best = gen.result()
        else:
            for a in starts:
                counts += rows(a)
            gx, gi, best = genuine_estimate(run)
    # unbiased for the count of every unordered pair: a sampled reference of group h stands for
    # size[h] / refs_in[h] of them, each pair is seen from both ends, and cells (g, h) and (h, g)
    # share the pairs of the two groups (every subset holds both or neither)
    refs_in = np.bincount(run.samples.group_of_sample[refs], minlength=G)
    w = np.where(refs_in > 0, run.group_size / np.maximum(refs_in, 1), 0.0)
    est = _estimate_rows(run, step, counts[: step.dump].reshape(step.n_est, B), w)
    # rank of the first mate: capture everything >= (an under-estimate of) the best mated score
    mate = np.where(np.isfinite(best), (best - run.margin) * run.scale, np.inf)
    mate_hi = np.where(np.isfinite(best), (best + run.margin) * run.scale, np.inf)
    level = cell_levels(run, est, gx, gi)
    keep = keep_ranges(run, est, gx, gi, level, refs.size / max(run.n, 1))
    if keep is not None:  # the kernel captures down to the lowest kept bin; the chunks are cut to the ranges
        lowest = keep.lowest(G * G)
        level = np.minimum(level, np.array([edge_of(run.edges, int(k)) for k in lowest]).reshape(G, G))
    run.set_capture(level, f32_down(step.topk), f32_down(mate), f32_up(mate_hi),
                    None if keep is None else keep.state())


def keep_ranges(run: Planner, est: np.ndarray, gx: np.ndarray, gi: np.ndarray, level: np.ndarray,
                rate: float):
    """The bin ranges each chunk's captures are cut to where the estimated required tail passes
    ``run.max_tail`` (:func:`faceaudit.compare.capped.estimate_keep`), else None."""
    if not run.n_rows:
        return None
    dist = _estimated(run, est, gx, gi)
    T = required_tail_cutoff(dist, run.targets, run.subsets)
    return estimate_keep(dist, est, run.cell_row, T, level, run.subsets, run.targets, run.max_tail, rate)


def _estimated(run: Planner, est: np.ndarray, gx: np.ndarray, gi: np.ndarray) -> GenuineSorted:
    """The estimated distributions: the sampled histogram and the mated scores, no tail."""
    G = run.G
    o = np.argsort(gx)  # an estimate: the order of ties does not matter
    return GenuineSorted(
        samples=run.samples, edges=run.edges, hist_rows=est, hist_row_of_cell=run.cell_row.reshape(G, G),
        tail_cutoff=np.full((G, G), np.inf), tail_score=np.empty(0), tail_probe=np.empty(0, np.int64),
        tail_reference=np.empty(0, np.int64), below_max=np.full((G, G), -np.inf), genuine_score=gx[o],
        genuine_probe=gi[o], genuine_reference=gi[o], cell_limit=run.cell_limit, design="complete")


def genuine_estimate(run: Planner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mated scores (float32 GEMMs, batched over subjects of one size), probes, each sample's best."""
    subj = run.samples.subject_of_sample
    order = np.argsort(subj, kind="stable")
    size = np.bincount(subj, minlength=run.samples.n_subjects)
    starts = np.r_[0, np.cumsum(size)[:-1]]
    best = np.full(run.n, -np.inf)
    scores, probes = [], []
    for m in np.unique(size[size >= 2]).tolist():
        members = order[starts[size == m][:, None] + np.arange(m)]  # (S, m), ascending within a subject
        gram = _gram(run, run.emb[members])
        diag = np.arange(m)
        gram[:, diag, diag] = -np.inf
        best[members] = gram.max(axis=2)
        iu, ju = np.triu_indices(m, k=1)
        scores.append(gram[:, iu, ju].ravel())
        probes.append(members[:, iu].ravel())
    if not scores:
        return np.empty(0), np.empty(0, np.int64), best
    return np.concatenate(scores).astype(np.float64), np.concatenate(probes).astype(np.int64), best


def _gram(run: Planner, e: np.ndarray) -> np.ndarray:
    """(S, m, m) scores within each subject's m samples (float32 GEMMs for cosine, as the main pass)."""
    if run.metric == "euclidean":
        e64 = e.astype(np.float64)
        sq = (e64**2).sum(axis=2)
        return -np.sqrt(
            np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * (e64 @ e64.transpose(0, 2, 1)), 0.0)
        )
    return np.matmul(e, e.transpose(0, 2, 1))


def cell_levels(run: Planner, est: np.ndarray, gx: np.ndarray, gi: np.ndarray) -> np.ndarray:
    """Per cell, a capture level (score units, a bin edge) below the cutoff the estimated
    distribution requires, with a margin in FMR: at least twice the estimated share above the
    estimated cutoff plus LEVEL_MARGIN_SHARE of the cell, and 2 bins; small cells are captured whole,
    and so are the cells without a histogram row (``est`` has a row for each of the others)."""
    G, edges = run.G, run.edges
    dist = _estimated(run, est, gx, gi)
    cutoff = required_tail_cutoff(dist, run.targets, run.subsets).reshape(-1)
    total = np.zeros(G * G)
    has = np.flatnonzero(run.cell_row >= 0)
    total[has] = est.sum(axis=1)
    level = np.full(G * G, -np.inf)
    budget = run.max_capture / max(run.total_pairs, 1)
    for c, r in zip(has.tolist(), run.cell_row[has].tolist()):
        t, N = cutoff[c], total[c]
        if not np.isfinite(t) or N <= 0:
            continue  # -inf: keep all; +inf: nothing estimated there, keep all (it is tiny)
        from_top = np.cumsum(est[r, ::-1])[::-1]
        bt = int(bin_index(np.array([t]), edges)[0])
        p = from_top[bt] / N
        q = min(1.0, 2.0 * p + LEVEL_MARGIN_SHARE, max(budget, p))
        bq = int(np.count_nonzero(from_top >= q * N)) - 1
        b = min(bt - 2, bq)
        level[c] = edges[b] if b > 0 else -np.inf
    small = np.flatnonzero((total <= SMALL_CELL) & np.isfinite(level))
    small = small[np.argsort(total[small], kind="stable")]
    whole = small[np.cumsum(total[small]) <= SMALL_CELLS_TOTAL]
    level[whole] = -np.inf
    return level.reshape(G, G)


def estimated_rows(run: Planner) -> np.ndarray:
    """Flat cells whose sampled counts the estimate reads: those with a histogram row and their transposes."""
    G = run.G
    has = (run.cell_row >= 0).reshape(G, G)
    return np.flatnonzero(has | has.T)


def _estimate_rows(run: Planner, step: _RowSteps, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n_rows, B) estimated histogram of each cell with a row, from the sampled counts: a sampled
    reference of group h stands for w[h] pairs, each pair is seen from both ends, and cells (g, h) and
    (h, g) share the pairs of the two groups (every subset holds both or neither)."""
    G = run.G
    cells = np.flatnonzero(run.cell_row >= 0)
    g, h = cells // G, cells % G
    return (c[step.est_row[cells]] * w[h][:, None] + c[step.est_row[h * G + g]] * w[g][:, None]) / 4.0
