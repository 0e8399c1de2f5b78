"""Exhaustive comparison: every pair i < j of an evaluation set, streamed into ScoreDistributions.

The n x n score matrix is never materialised. Its upper triangle is cut into square blocks; each block
is one GEMM followed by a fused pass (see :mod:`faceaudit.compare.kernel`) that histograms the non-mated
scores per (probe group, reference group) cell, keeps the mated ones exactly, and captures the few
scores the exact parts need. Pair (i, j), i < j, is attributed to cell (group[i], group[j]) with
probe = i, reference = j; every pair is counted exactly once and the totals are checked against
n(n-1)/2.

Tail cutoffs (the exactness rule, DESIGN.md). Per cell (probe group, reference group), the cutoff
``T[g, h]`` is :func:`faceaudit.build.required_tail_cutoff` of the *complete* histogram, as in
:func:`faceaudit.build.two_pass`, but without a second GEMM pass in the usual case. A pre-pass scores
every sample against a reference sample stratified by group (every group gets its share and at least
a few references, all of a small group), estimates each cell's histogram (weighted by the sampling
rate) and with the mated scores each cell's cutoff, and sets a per-cell capture level ``L[g, h]``
below it with a margin in FMR; cells with few pairs are captured whole (``L = -inf``). The block test
is per sample (a cell's level reaches it through the rows or the columns of its smaller group), and
the kernel keeps exactly the candidates at or above their cell's level (or a per-probe threshold), so a
tiny group whose EER lies deep in the bulk costs its own few pairs, never the other cells' bulk.

After the main pass ``T`` is computed from the exact histogram. Where ``T >= L`` the cell's tail is its
captured scores >= ``T`` and its ``below_max`` the largest captured score in ``[L, T)``; a cell with
scores below ``T`` but none captured there gets its ``below_max`` from an exact rescan of the blocks
holding it. Cells whose estimate was too high (``T < L``) get a second, capture-only pass at a level
below ``T``, over the blocks holding them. Either way the result is exact; the checks are not estimates.

Per-probe 1:N summaries (:class:`~faceaudit.compare.summary.ProbeSummary`). Each sample gets its own
capture threshold: below its k-th best sampled non-mated score and below its best mated score, each
lowered by a bound on the float32 rounding difference between two GEMMs. Every non-mated score at or
above a sample's threshold is captured (in either role), so its top-k and the rank of its first mate
are exact; this is checked when the summaries are assembled.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.build import group_subsets, required_tail_cutoff
from faceaudit.compare.errors import (
    CheckpointError,
    EmbeddingShapeError,
    NonFiniteEmbeddingError,
    NotNormalizedError,
    ZeroEmbeddingError,
)
from faceaudit.compare.kernel import BlockPartial, BlockPlan, numpy_block_scores, process_block
from faceaudit.compare.summary import ProbeSummary
from faceaudit.errors import InputError, SampleTableError
from faceaudit.scores import SampleIndex, ScoreDistributions, bin_index, uniform_edges

__all__ = ["compare_embeddings", "prepare_embeddings", "DEFAULT_BINS", "DEFAULT_BLOCK"]

DEFAULT_BINS = 4096
DEFAULT_BLOCK = 1024
#: unit-norm tolerance for cosine without ``normalize``
NORM_TOLERANCE = 1e-3
BACKENDS = ("auto", "numpy", "torch", "dask")


# ----- inputs ---------------------------------------------------------------------------------------
def prepare_embeddings(embeddings: Any, *, metric: str = "cosine", normalize: bool = False) -> np.ndarray:
    """Validate an (n, d) embedding matrix and return it as C-contiguous float32.

    Cosine similarity needs unit-norm rows: rows whose norm is off 1 by more than ``1e-3`` raise
    :class:`NotNormalizedError` unless ``normalize``; then (and always for cosine) rows are divided by
    their float64 norm, so that scores are cosines up to float32 rounding.
    """
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    if isinstance(embeddings, (list, tuple)) and embeddings and any(
            np.ndim(r) != 1 or np.size(r) != np.size(embeddings[0]) for r in embeddings):
        dims = sorted({int(np.size(r)) for r in embeddings})
        raise EmbeddingShapeError(f"embeddings of different dimensions: {dims[:5]}")
    a = np.asarray(embeddings)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise EmbeddingShapeError(f"embeddings must be a non-empty (n, d) matrix, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise EmbeddingShapeError(f"embeddings must be numeric, got {a.dtype}")
    a64 = a.astype(np.float64)
    bad = ~np.isfinite(a64).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise NonFiniteEmbeddingError(f"{rows.size} embedding(s) have NaN or infinite components, first at row {rows[0]}")
    norms = np.linalg.norm(a64, axis=1)
    zero = norms == 0
    if zero.any() and metric == "cosine":
        rows = np.flatnonzero(zero)
        raise ZeroEmbeddingError(f"{rows.size} embedding(s) are zero vectors (cosine undefined), first at row {rows[0]}")
    if metric == "cosine":
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any() and not normalize:
            rows = np.flatnonzero(off)
            raise NotNormalizedError(
                f"{rows.size} embedding(s) are not unit-norm (e.g. row {rows[0]} has norm {norms[rows[0]]:.6g}); "
                "cosine similarity needs normalised embeddings: pass normalize=True (--normalize)")
        a64 /= norms[:, None]
    elif normalize:
        a64 /= np.where(zero, 1.0, norms)[:, None]
    return np.ascontiguousarray(a64, dtype=np.float32)


def _check_samples(samples: SampleIndex) -> None:
    """Re-validate a hand-built SampleIndex: what from_columns checks, the engine relies on."""
    ids = samples.sample_ids.tolist()
    if len(set(ids)) != len(ids):
        dups = [k for k, c in Counter(ids).items() if c > 1]
        raise SampleTableError(f"duplicate sample_id: {len(dups)} id(s) appear more than once, e.g. {dups[:5]!r}")
    g = np.full(samples.n_subjects, -1, np.intp)
    g[samples.subject_of_sample] = samples.group_of_sample
    if (g[samples.subject_of_sample] != samples.group_of_sample).any():
        raise SampleTableError("a subject appears in more than one group: its mated pairs would have no group")


def _mated_pairs(samples: SampleIndex) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, of one subject, sorted by i then j."""
    subj = samples.subject_of_sample
    order = np.argsort(subj, kind="stable")
    s_sorted = subj[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], s_sorted.size]
    pi, pj = [], []
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a < 2:
            continue
        members = np.sort(order[a:b])
        iu, ju = np.triu_indices(b - a, k=1)
        pi.append(members[iu])
        pj.append(members[ju])
    if not pi:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i = np.concatenate(pi).astype(np.int64)
    j = np.concatenate(pj).astype(np.int64)
    o = np.lexsort((j, i))
    return i[o], j[o]


def _all_subsets(samples: SampleIndex) -> list[list[int]]:
    """Group subsets of every grouping the audit may report (each non-empty set of columns)."""
    cols = samples.group_columns
    groupings = [c for r in range(1, len(cols) + 1) for c in combinations(cols, r)]
    return list(group_subsets(samples, groupings).values())


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32: what torch's
    ``.to(torch.bfloat16).to(torch.float32)`` gives for finite values, without torch."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    r = ((u >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    return ((u + r) & np.uint32(0xFFFF0000)).view(np.float32)


def gemm_error_bound(d: int, precision: str = "fp32") -> float:
    """Bound on |score difference| between two float32 GEMMs of unit vectors, any summation order.

    Higham's gamma_d = d u / (1 - d u) bounds each against the exact dot product; two of them differ
    by at most twice that. bf16 inputs are rounded the same way in both, so u stays float32's.
    """
    u = 2.0**-24
    return 2.0 * d * u / (1.0 - d * u) + 1e-7


# ----- the run ---------------------------------------------------------------------------------------
#: a cell with at most this many (estimated) non-mated pairs is captured whole: its estimate is the
#: least reliable and the capture the cheapest; no more than SMALL_CELLS_TOTAL pairs in all
SMALL_CELL = 20_000
SMALL_CELLS_TOTAL = 500_000
#: a cell's capture level keeps at least twice the estimated share of its pairs above the estimated
#: cutoff, plus this share of the cell (the estimate's error is what a too-high level costs: a second pass)
LEVEL_MARGIN_SHARE = 5e-4
#: every group gets at least this many reference samples in the pre-pass (all of a smaller group)
MIN_REFERENCES_PER_GROUP = 32


def _f32_down(a: Any) -> np.ndarray:
    """float32 values never above the float64 ones (a capture level rounded up would miss scores)."""
    a = np.asarray(a, dtype=np.float64)
    f = a.astype(np.float32)
    up = f.astype(np.float64) > a
    f[up] = np.nextafter(f[up], np.float32(-np.inf))
    return f


class _GenuineSorted(ScoreDistributions):
    """A ScoreDistributions whose genuine scores are sorted ascending: a group subset's genuine scores
    are a masked view, no sort (``required_tail_cutoff`` asks for every subset's)."""

    def genuine_scores(self, groups: Any = None) -> np.ndarray:
        if groups is None:
            return self.genuine_score
        groups = sorted(set(groups))
        cache = getattr(self, "_by_group", None)
        if cache is None:
            gg = self.samples.group_of_sample[self.genuine_probe]
            o = np.argsort(gg.astype(np.int16) if self.n_groups < 2**15 else gg, kind="stable")  # radix
            starts = np.searchsorted(gg[o], np.arange(self.n_groups + 1))
            cache = self._by_group = (gg, o, starts)
        gg, o, starts = cache
        if len(groups) == self.n_groups:
            return self.genuine_score
        if len(groups) == 1:  # the group's scores, still sorted (a stable order by group)
            return self.genuine_score[o[starts[groups[0]] : starts[groups[0] + 1]]]
        lut = np.zeros(self.n_groups, bool)
        lut[groups] = True
        return self.genuine_score[lut[gg]]


class _Run:
    """One comparison run: plan, passes, checkpoints, assembly."""

    def __init__(self, emb: np.ndarray, samples: SampleIndex, *, metric: str, bins: int, block: int,
                 top_k: int, fmr_targets: Sequence[float], reference_sample: int, seed: int,
                 max_capture: int) -> None:
        self.emb = emb
        self.samples = samples
        self.n, self.d = emb.shape
        self.metric = metric
        self.block = int(block)
        self.top_k = int(top_k)
        self.targets = [float(t) for t in fmr_targets]
        self.G = samples.n_groups
        self.subsets = _all_subsets(samples)
        if metric == "cosine":
            self.edges = uniform_edges(-1.0, 1.0, bins)
            fast = bins >= 2 and (bins & (bins - 1)) == 0
            scale = float(bins // 2) if fast else 1.0
        else:
            sq = (emb.astype(np.float64) ** 2).sum(axis=1)
            top = float(2.0 * np.sqrt(sq.max())) * 1.001 + 1e-6
            self.edges = uniform_edges(-top, 0.0, bins)
            fast, scale = False, 1.0
        self.scale = scale
        self.fast = fast
        B = bins
        guard = max(2, int(np.ceil(0.01 * B / 2))) if fast else 0
        stride = B + 2 * guard
        n_slots = 3 + self.G * self.G * stride
        float_off = fast and n_slots < 2**24
        g = samples.group_of_sample.astype(np.int64)
        self.group_size = np.bincount(g, minlength=self.G)
        row_off = g * self.G * stride
        col_off = g * stride + 3 + guard + (B // 2 if fast else 0)
        dt = np.float32 if float_off else np.int64
        mi, mj = _mated_pairs(samples)  # sorted by (i, j)
        nb = -(-self.n // self.block)
        key = (mi // self.block) * nb + (mj // self.block)
        o = np.argsort(key, kind="stable")
        #: plan position p of a mated pair is position mated_order[p] in (i, j) order
        self.mated_order = o
        mi, mj, key = mi[o], mj[o], key[o]
        inf = np.full(self.n, np.inf, np.float32)
        self.plan = BlockPlan(
            n=self.n, block=self.block, scale=scale, fast=fast, metric=metric, edges=self.edges, n_bins=B,
            n_groups=self.G, group=samples.group_of_sample, slot_stride=stride, guard=guard, n_slots=n_slots,
            row_offset=row_off.astype(dt), col_offset=col_off.astype(dt), float_offsets=float_off,
            capture_row=inf, capture_col=inf.copy(), keep_sample=inf.copy(),
            keep_cell=np.full(self.G * self.G, np.inf, np.float32),
            sq_norm=(emb.astype(np.float64) ** 2).sum(axis=1).astype(np.float32) if metric == "euclidean" else None,
            mated_i=mi, mated_j=mj, mated_key=key,
        )
        self.blocks = [(bi, bj) for bi in range(nb) for bj in range(bi, nb)]
        # which groups each block row / column holds: a cell's pairs lie only in blocks holding both
        self.block_groups = np.zeros((nb, self.G), bool)
        self.block_groups[np.arange(self.n) // self.block, g] = True
        self.total_pairs = self.n * (self.n - 1) // 2
        self.reference_sample = reference_sample
        self.seed = seed
        self.max_capture = max_capture
        bound = gemm_error_bound(self.d)
        # euclidean: d^2 = |a|^2 + |b|^2 - 2ab has error ~ bound * 4 max|a|^2, and sqrt turns it into its root
        self.margin = bound if metric == "cosine" else float(np.sqrt(bound * 2.0 * float(self.edges[0]) ** 2)) + bound
        # per cell: every non-mated score >= cell_level is kept by the main pass (score units)
        self.cell_level = np.full((self.G, self.G), np.inf)
        # per sample, x units: top-k and first-mate capture thresholds of the per-probe summaries
        self.topk_x = np.full(self.n, np.inf, np.float32)
        self.mate_x = np.full(self.n, np.inf, np.float32)

    # ----- capture levels -----------------------------------------------------------------------
    def capture_arrays(self, cell_level: np.ndarray, keep_sample: np.ndarray) -> dict[str, np.ndarray]:
        """The plan's capture arrays for per-cell tail levels (score units) and per-sample thresholds.

        A cell's level reaches the block test through the samples of its smaller group (rows for a
        cell (g, h) with |g| <= |h|, else columns): a tiny group whose cells need a low level makes
        only its own few rows or columns candidates, filtered per cell in the kernel.
        """
        G = self.G
        keep_cell = _f32_down(cell_level.reshape(-1) * self.scale)
        kc = keep_cell.reshape(G, G)
        to_row = self.group_size[:, None] <= self.group_size[None, :]
        row_level = np.where(to_row, kc, np.float32(np.inf)).min(axis=1)
        col_level = np.where(~to_row, kc, np.float32(np.inf)).min(axis=0)
        g = self.samples.group_of_sample
        return {"capture_row": np.minimum(keep_sample, row_level[g]),
                "capture_col": np.minimum(keep_sample, col_level[g]),
                "keep_sample": keep_sample, "keep_cell": keep_cell}

    def set_capture(self, cell_level: np.ndarray, topk_x: np.ndarray, mate_x: np.ndarray) -> None:
        self.cell_level = np.asarray(cell_level, np.float64).reshape(self.G, self.G)
        self.topk_x, self.mate_x = np.asarray(topk_x, np.float32), np.asarray(mate_x, np.float32)
        for k, v in self.capture_arrays(self.cell_level, np.minimum(self.topk_x, self.mate_x)).items():
            setattr(self.plan, k, v)

    def state(self) -> dict[str, np.ndarray]:
        return {"cell_level": self.cell_level, "topk_x": self.topk_x, "mate_x": self.mate_x}

    def blocks_holding(self, cells: np.ndarray) -> list[tuple[int, int]]:
        """The blocks that hold at least one pair of a (G, G) mask's cells."""
        bg = self.block_groups.astype(np.int64)
        hold = (bg @ cells.astype(np.int64) @ bg.T) > 0  # hold[bi, bj]: some g in bi, h in bj, cell (g, h)
        return [(bi, bj) for bi, bj in self.blocks if hold[bi, bj]]

    # ----- pre-pass: capture thresholds -------------------------------------------------------
    def _references(self, rng: np.random.Generator) -> np.ndarray:
        """A reference sample stratified by group: every group gets its share of ``reference_sample``
        and at least MIN_REFERENCES_PER_GROUP (all of a smaller group), so that small groups, whose
        cells' cutoffs are the hardest to estimate, are estimated from all their samples."""
        n, size = self.n, self.group_size
        if n <= max(self.reference_sample, 2 * self.top_k + 64):
            return np.arange(n)
        want = np.maximum(np.round(self.reference_sample * size / n), MIN_REFERENCES_PER_GROUP)
        want = np.minimum(want, size).astype(np.int64)
        g = self.samples.group_of_sample
        order = np.argsort(g, kind="stable")
        starts = np.r_[0, np.cumsum(size)[:-1]]
        picks = [order[starts[h] + rng.choice(size[h], want[h], replace=False)] for h in range(self.G) if want[h]]
        return np.sort(np.concatenate(picks))

    def estimate(self, scores_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], threads: int = 1,
                 rows_per_step: int = 1024) -> None:
        """Set each sample's capture thresholds and each cell's tail level from a reference sample.

        Row steps run on ``threads`` threads with single-threaded BLAS (as the main pass): small
        GEMMs on a multi-threaded BLAS spin and stall on a shared machine."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        n, samples, G, B = self.n, self.samples, self.G, self.edges.size - 1
        rng = np.random.default_rng(self.seed)
        refs = self._references(rng)
        subj, g = samples.subject_of_sample, samples.group_of_sample
        k = min(self.top_k, refs.size)
        topk = np.full(n, np.inf if k == 0 else -np.inf)
        dump = G * G * B
        ref_code = g[refs].astype(np.int64) * B
        ref_subj = subj[refs]

        def step(a: int) -> np.ndarray:
            rows = np.arange(a, min(n, a + rows_per_step))
            s = scores_fn(rows, refs)  # (rows, R) scores, float64
            excluded = subj[rows][:, None] == ref_subj[None, :]  # self and mates
            code = self._bins(s)
            code += ref_code[None, :]
            code += (g[rows].astype(np.int64) * (G * B))[:, None]
            code[excluded] = dump
            counts = np.bincount(code.ravel(), minlength=dump + 1)
            del code
            if k > 0:
                # the k-th best sampled non-mated score is a lower bound of the true k-th best
                s[excluded] = -np.inf
                kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]
                enough = (~excluded).sum(axis=1) >= k
                topk[rows] = np.where(enough & np.isfinite(kth), (kth - self.margin) * self.scale, -np.inf)
            return counts

        counts = np.zeros(dump + 1, np.int64)
        with threadpool_limits(limits=1, user_api="blas"):
            if threads > 1:
                with ThreadPoolExecutor(threads) as pool:
                    gen = pool.submit(self._genuine_estimate)
                    for c in pool.map(step, range(0, n, rows_per_step)):
                        counts += c
                    gx, gi, best = gen.result()
            else:
                for a in range(0, n, rows_per_step):
                    counts += step(a)
                gx, gi, best = self._genuine_estimate()
        # unbiased for the count of every unordered pair: a sampled reference of group h stands for
        # size[h] / refs_in[h] of them, each pair is seen from both ends, and cells (g, h) and (h, g)
        # share the pairs of the two groups (every subset holds both or neither)
        refs_in = np.bincount(g[refs], minlength=G)
        w = np.where(refs_in > 0, self.group_size / np.maximum(refs_in, 1), 0.0)
        c = counts[:dump].reshape(G, G, B) * w[None, :, None]
        est = (c + c.transpose(1, 0, 2)) / 4.0
        # rank of the first mate: capture everything >= (an under-estimate of) the best mated score
        mate = np.where(np.isfinite(best), (best - self.margin) * self.scale, np.inf)
        self.set_capture(self._cell_levels(est, gx, gi), _f32_down(topk), _f32_down(mate))

    def _bins(self, s: np.ndarray) -> np.ndarray:
        """bin_index of float64 scores (the dyadic shortcut where it is exact)."""
        B = self.edges.size - 1
        if self.fast:
            b = np.floor(s * self.scale)
            b += B // 2
            np.clip(b, 0, B - 1, out=b)
            return b.astype(np.int64)
        return bin_index(s.ravel(), self.edges).reshape(s.shape).astype(np.int64)

    def _genuine_estimate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mated scores (float32 GEMMs, batched over subjects of one size), probes, each sample's best."""
        subj = self.samples.subject_of_sample
        order = np.argsort(subj, kind="stable")
        size = np.bincount(subj, minlength=self.samples.n_subjects)
        starts = np.r_[0, np.cumsum(size)[:-1]]
        best = np.full(self.n, -np.inf)
        scores, probes = [], []
        for m in np.unique(size[size >= 2]).tolist():
            members = order[starts[size == m][:, None] + np.arange(m)]  # (S, m), ascending within a subject
            e = self.emb[members]
            if self.metric == "euclidean":
                e64 = e.astype(np.float64)
                sq = (e64**2).sum(axis=2)
                gram = -np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * (e64 @ e64.transpose(0, 2, 1)), 0.0))
            else:
                gram = np.matmul(e, e.transpose(0, 2, 1))  # float32, as the main pass
            diag = np.arange(m)
            gram[:, diag, diag] = -np.inf
            best[members] = gram.max(axis=2)
            iu, ju = np.triu_indices(m, k=1)
            scores.append(gram[:, iu, ju].ravel())
            probes.append(members[:, iu].ravel())
        if not scores:
            return np.empty(0), np.empty(0, np.int64), best
        return np.concatenate(scores).astype(np.float64), np.concatenate(probes).astype(np.int64), best

    def _cell_levels(self, est: np.ndarray, gx: np.ndarray, gi: np.ndarray) -> np.ndarray:
        """Per cell, a capture level (score units, a bin edge) below the cutoff the estimated
        distribution requires, with a margin in FMR: at least twice the estimated share above the
        estimated cutoff plus LEVEL_MARGIN_SHARE of the cell, and 2 bins; small cells are captured whole."""
        G, edges = self.G, self.edges
        o = np.argsort(gx)  # an estimate: the order of ties does not matter
        dist = _GenuineSorted(
            samples=self.samples, edges=edges, impostor_hist=est, tail_cutoff=np.full((G, G), np.inf),
            tail_score=np.empty(0), tail_probe=np.empty(0, np.int64), tail_reference=np.empty(0, np.int64),
            below_max=np.full((G, G), -np.inf), genuine_score=gx[o], genuine_probe=gi[o], genuine_reference=gi[o],
            design="complete")
        cutoff = required_tail_cutoff(dist, self.targets, self.subsets)
        total = est.sum(axis=2)
        from_top = np.cumsum(est[:, :, ::-1], axis=2)[:, :, ::-1]
        level = np.full((G, G), -np.inf)
        budget = self.max_capture / max(self.total_pairs, 1)
        for g, h in np.ndindex(G, G):
            t, N = cutoff[g, h], total[g, h]
            if not np.isfinite(t) or N <= 0:
                continue  # -inf: keep all; +inf: nothing estimated there, keep all (it is tiny)
            bt = int(bin_index(np.array([t]), edges)[0])
            p = from_top[g, h, bt] / N
            q = min(1.0, 2.0 * p + LEVEL_MARGIN_SHARE, max(budget, p))
            bq = int(np.count_nonzero(from_top[g, h] >= q * N)) - 1
            b = min(bt - 2, bq)
            level[g, h] = edges[b] if b > 0 else -np.inf
        small = np.flatnonzero((total.reshape(-1) <= SMALL_CELL) & np.isfinite(level.reshape(-1)))
        small = small[np.argsort(total.reshape(-1)[small], kind="stable")]
        whole = small[np.cumsum(total.reshape(-1)[small]) <= SMALL_CELLS_TOTAL]
        level.reshape(-1)[whole] = -np.inf
        return level


# ----- block passes ----------------------------------------------------------------------------------
def scaled_references(emb: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """The reference-side rows pre-multiplied by ``scale`` (a power of two: exact)."""
    return emb if plan.scale == 1.0 else emb * np.float32(plan.scale)


def numpy_chunk(plan: BlockPlan, emb: np.ndarray, emb_scaled: np.ndarray, blocks: Sequence[tuple[int, int]]) -> BlockPartial:
    """Sum of the partial results of some blocks (numpy): the unit of work of threads and Dask tasks."""
    b = plan.block
    # numpy calls BLAS only for aligned arrays (else its own loop, another summation order): arrays
    # deserialised on a Dask worker can be misaligned, and bit-identity needs the same GEMM everywhere
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")
    slots = np.zeros(plan.n_slots, np.int64)
    parts = []
    for bi, bj in blocks:
        x = numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b], bi * b, bj * b)
        part = process_block(plan, x, bi, bj)
        del x
        slots += part.slots
        part.slots = None  # summed here: no block keeps its own copy of the counts
        parts.append(part)
    return BlockPartial.sum(parts, plan.n_slots, slots=slots)


def numpy_cell_max_below(plan: BlockPlan, emb: np.ndarray, emb_scaled: np.ndarray,
                         blocks: Sequence[tuple[int, int]], level_x: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(G*G,) largest non-mated x < level_x[cell] per wanted cell over some blocks (exact rescan, rare)."""
    b = plan.block
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")

    def block_x(bi: int, bj: int) -> np.ndarray:
        return numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b], bi * b, bj * b)

    return cell_max_below_of(plan, block_x, blocks, level_x, cells)


def cell_max_below_of(plan: BlockPlan, block_x: Callable[[int, int], np.ndarray],
                      blocks: Sequence[tuple[int, int]], level_x: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The rescan: per wanted cell (a (G*G,) mask), the largest non-mated x below its level (float64
    comparisons: the level is exact, not rounded to float32)."""
    b, G = plan.block, plan.n_groups
    out = np.full(G * G, -np.inf)
    g = plan.group
    level_x = np.asarray(level_x, np.float64).reshape(-1)
    wanted = np.asarray(cells, bool).reshape(-1)
    for bi, bj in blocks:
        r0, c0 = bi * b, bj * b
        gr, gc = g[r0 : r0 + b], g[c0 : c0 + b]
        here = np.zeros((G, G), bool)
        here[np.unique(gr)[:, None], np.unique(gc)[None, :]] = True
        todo = np.flatnonzero(wanted & here.reshape(-1))
        if not todo.size:
            continue
        x = block_x(bi, bj)
        nr, nc = x.shape
        mi, mj = plan.mated_in(bi, bj)
        x[mi - r0, mj - c0] = -np.inf
        if bi == bj:
            x[np.tril(np.ones((nr, nc), bool))] = -np.inf
        cell = gr[:nr, None] * G + gc[None, :nc]
        for c in todo.tolist():
            m = (cell == c) & (x < np.float64(level_x[c]))
            if m.any():
                out[c] = max(out[c], float(x[m].max()))
    return out


def _chunks(blocks: list[tuple[int, int]], block: int, n: int, chunk_pairs: int) -> list[list[tuple[int, int]]]:
    out: list[list[tuple[int, int]]] = [[]]
    acc = 0
    for bi, bj in blocks:
        nr = min(block, n - bi * block)
        nc = min(block, n - bj * block)
        if acc >= chunk_pairs and out[-1]:
            out.append([])
            acc = 0
        out[-1].append((bi, bj))
        acc += nr * nc
    return out


class _Progress:
    """A rich progress bar in pairs and pairs/s on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed:,.0f}/{task.total:,.0f} pairs"),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate="")
        self.t0 = time.perf_counter()
        self.done = 0

    def advance(self, pairs: int, description: str | None = None) -> None:
        self.done += pairs
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            kw = {"description": description} if description else {}
            self.bar.update(self.task, advance=pairs, rate=f"{rate / 1e6:,.1f} M pairs/s", **kw)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ----- backends -------------------------------------------------------------------------------------
class NumpyBackend:
    """Blocked float32 BLAS GEMM; blocks shared between ``threads`` threads (BLAS single-threaded then)."""

    name = "numpy"
    precision = "fp32"

    def __init__(self, emb: np.ndarray, threads: int | None = None) -> None:
        self.emb = emb
        self.threads = max(1, int(threads or os.cpu_count() or 1))

    def sample_scores(self, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
        a, b = self.emb[rows], self.emb[refs]
        x = (a @ b.T).astype(np.float64)
        if metric == "euclidean":
            sa = (a.astype(np.float64) ** 2).sum(1)
            sb = (b.astype(np.float64) ** 2).sum(1)
            x = -np.sqrt(np.maximum(sa[:, None] + sb[None, :] - 2.0 * x, 0.0))
        return x

    def run_chunks(self, plan: BlockPlan, chunks: list[list[tuple[int, int]]], todo: list[int]):
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        scaled = scaled_references(self.emb, plan)
        if self.threads == 1:
            for k in todo:
                yield k, numpy_chunk(plan, self.emb, scaled, chunks[k])
            return
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(self.threads) as pool:
            for k in todo:
                parts = [chunks[k][t :: self.threads] for t in range(self.threads)]
                futs = [pool.submit(numpy_chunk, plan, self.emb, scaled, p) for p in parts if p]
                yield k, BlockPartial.sum([f.result() for f in futs], plan.n_slots)

    def cell_max_below(self, plan: BlockPlan, blocks, level_x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return numpy_cell_max_below(plan, self.emb, scaled_references(self.emb, plan), blocks, level_x, cells)

    def close(self) -> None:
        pass


def _make_backend(backend: str, emb: np.ndarray, *, precision: str, device: str | None, threads: int | None,
                  scheduler: str | None, n_workers: int):
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        backend = "numpy"
        try:
            import torch

            if torch.cuda.is_available():
                backend = "torch"
        except ImportError:
            pass
    if backend == "numpy":
        if precision != "fp32":
            raise InputError("the numpy backend computes in fp32 only; bf16 needs --backend torch")
        return NumpyBackend(emb, threads)
    if backend == "torch":
        from faceaudit.compare.torch_backend import TorchBackend

        return TorchBackend(emb, precision=precision, device=device)
    from faceaudit.compare.dask_backend import DaskBackend

    if precision != "fp32":
        raise InputError("the dask backend computes in fp32 only")
    return DaskBackend(emb, scheduler=scheduler, n_workers=n_workers)


# ----- checkpoints ----------------------------------------------------------------------------------
def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def describe_scores(identity: str) -> str:
    """What computed the scores of a backend's ``score_identity``, and how to select it."""
    if identity.startswith("torch-"):
        from faceaudit.compare.torch_backend import describe_score_identity

        return describe_score_identity(identity)
    if identity == "float32-gemm":
        return "the float32 BLAS GEMM of the numpy and dask backends"
    return identity


class _Checkpoint:
    """A folder of per-chunk partial results, valid only for the run whose key it records.

    ``key`` covers the inputs, the settings and ``scores`` (the backend's ``score_identity``: which
    kernel computed the scores); ``data_key`` the inputs and settings alone, so that a checkpoint of the
    same run computed by another kernel is named as such."""

    def __init__(self, folder: str | os.PathLike | None, key: str, resume: bool, data_key: str | None = None,
                 scores: str | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.key = key
        self.data_key, self.scores = data_key, scores
        self.resumed: dict[int, BlockPartial] = {}
        self.state: dict[str, np.ndarray] | None = None
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        state_json = self.folder / "state.json"
        if resume and state_json.exists():
            try:
                state = json.loads(state_json.read_text())
                recorded = state["key"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"checkpoint {str(self.folder)!r} is damaged: {exc}") from None
            was = state.get("scores")
            if recorded != key and data_key is not None and state.get("data_key") == data_key and was != scores:
                raise CheckpointError(
                    f"checkpoint {str(self.folder)!r} holds this run's chunks with scores from "
                    f"{describe_scores(str(was))}, but this run computes them with {describe_scores(str(scores))}: "
                    "their scores differ in the last bits, so the chunks cannot be mixed. Resume with the kernel "
                    "that wrote it, or use another folder or run without resume")
            if recorded != key:
                raise CheckpointError(
                    f"checkpoint {str(self.folder)!r} belongs to another run (other embeddings, samples or "
                    "settings); use another folder or run without resume")
            with np.load(self.folder / "state.npz") as z:
                self.state = {k: z[k] for k in z.files}
            for p in sorted(self.folder.glob("chunk-*.npz")):
                with np.load(p) as z:
                    self.resumed[int(p.stem.split("-")[1])] = BlockPartial.from_arrays({k: z[k] for k in z.files})
        else:
            for p in list(self.folder.glob("chunk-*.npz")) + list(self.folder.glob("state.*")):
                p.unlink()

    def save_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.folder is None:
            return
        _atomic_savez(self.folder / "state.npz", arrays)
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"key": self.key, "data_key": self.data_key, "scores": self.scores}))
        os.replace(tmp, self.folder / "state.json")

    def save_chunk(self, k: int, part: BlockPartial) -> None:
        if self.folder is not None:
            _atomic_savez(self.folder / f"chunk-{k:06d}.npz", part.to_arrays())


# ----- the public entry point -----------------------------------------------------------------------
def compare_embeddings(
    embeddings: Any,
    samples: SampleIndex,
    *,
    backend: str = "auto",
    metric: str = "cosine",
    normalize: bool = False,
    bins: int = DEFAULT_BINS,
    block: int = DEFAULT_BLOCK,
    top_k: int = 20,
    fmr_targets: Iterable[float] = (1e-3, 1e-4, 1e-5),
    precision: str = "fp32",
    device: str | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    chunk_pairs: int = 1 << 25,
    reference_sample: int = 512,
    seed: int = 0,
    max_capture: int = 20_000_000,
    meta: dict[str, Any] | None = None,
    on_chunk: Callable[[int], Any] | None = None,
) -> ScoreDistributions:
    """Compare every pair of samples; return a complete-design :class:`ScoreDistributions`.

    Parameters
    ----------
    embeddings : (n, d) array, row i the embedding of ``samples`` row i (float16/32/64).
    samples : the sample table (ids, subjects, groups).
    backend : ``"numpy"`` (blocked BLAS), ``"torch"`` (CUDA when present, else CPU), ``"dask"``
        (blocks as tasks on a ``distributed`` cluster: a LocalCluster of ``n_workers`` or ``scheduler``)
        or ``"auto"`` (torch when it sees a GPU, else numpy).
    metric : ``"cosine"`` (unit-norm rows; ``normalize`` to scale them) or ``"euclidean"`` (scores are
        negated distances, as DESIGN.md's convention asks).
    precision : ``"fp32"`` or, torch only, ``"bf16"``: inputs rounded to bfloat16 (8 significant bits),
        products accumulated in fp32. bf16 changes scores by up to about 2**-7 * sum|a_k b_k| (both operands
        rounded by up to 2**-8 each; ~8e-3 for unit vectors at worst, typically far less), so thresholds and error rates move accordingly; the result is exact for the bf16
        scores, and records the precision in ``meta``.
    bins : histogram bins over [-1, 1] (cosine). A power of two takes the fused exact path.
    block : square block side; the block's float32 scores (block^2 * 4 bytes) and its slot indices
        (block^2 * 8 bytes) are the working memory per thread.
    top_k : per-probe non-mated scores kept in ``result.probe_summary``.
    fmr_targets : the target FMRs whose thresholds must be exact (with every group's EER).
    checkpoint_dir, resume : per-chunk partial results are saved there; with ``resume`` a killed run
        continues where it stopped and gives a bit-identical result.
    progress : a rich progress bar on stderr (pairs, pairs/s).

    The result has ``design="complete"``, ``impostor_subject_pairs=None`` and ``probe_summary`` set.
    """
    t_start = time.perf_counter()
    emb = prepare_embeddings(embeddings, metric=metric, normalize=normalize)
    if emb.shape[0] != samples.n_samples:
        raise EmbeddingShapeError(
            f"{emb.shape[0]} embeddings for {samples.n_samples} samples: the matrix must align with the sample table")
    _check_samples(samples)
    if samples.n_samples < 2:
        raise InputError("at least two samples are needed to compare")
    if precision not in ("fp32", "bf16"):
        raise InputError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
    if precision == "bf16":
        # the scores are computed from the bfloat16 values: the run's own estimates (best mates, top-k
        # and capture levels) must see the same values, or a bf16 mate can fall below its estimate
        emb = round_to_bfloat16(emb)
    if int(bins) < 2 or int(block) < 1 or int(top_k) < 0:
        raise InputError("bins must be >= 2, block >= 1 and top_k >= 0")
    run = _Run(emb, samples, metric=metric, bins=int(bins), block=int(block), top_k=int(top_k),
               fmr_targets=list(fmr_targets), reference_sample=int(reference_sample), seed=int(seed),
               max_capture=int(max_capture))
    eng = _make_backend(backend, emb, precision=precision, device=device, threads=threads, scheduler=scheduler,
                        n_workers=n_workers)
    if hasattr(eng, "prepare"):  # the kernel choice (under auto, a probe launch) before the key names it
        eng.prepare(run.plan)
    import hashlib

    from faceaudit import __version__ as version

    settings = {"metric": metric, "normalize": bool(normalize), "bins": int(bins), "block": int(block),
                "top_k": int(top_k), "fmr_targets": run.targets, "precision": precision, "backend": eng.name,
                "chunk_pairs": int(chunk_pairs), "reference_sample": int(reference_sample), "seed": int(seed),
                "max_capture": int(max_capture)}
    h = hashlib.sha256(emb.tobytes())
    h.update(samples.fingerprint().encode())
    h.update(json.dumps({k: v for k, v in settings.items() if k != "backend"}, sort_keys=True).encode())
    data_key = h.copy().hexdigest()
    scores = getattr(eng, "score_identity", "float32-gemm")
    h.update(scores.encode())
    h.update(b"capture-state/2")  # per-cell levels: older checkpoints belong to another run
    ckpt = _Checkpoint(checkpoint_dir, h.hexdigest(), resume, data_key=data_key, scores=scores)
    try:
        t_pre = time.perf_counter()
        if ckpt.state is not None:
            run.set_capture(ckpt.state["cell_level"], ckpt.state["topk_x"], ckpt.state["mate_x"])
        else:
            run.estimate(lambda rows, refs: eng.sample_scores(rows, refs, metric), threads=getattr(eng, "threads", 1))
            ckpt.save_state(run.state())
        t_pre = time.perf_counter() - t_pre
        chunks = _chunks(run.blocks, run.block, run.n, int(chunk_pairs))
        todo = [k for k in range(len(chunks)) if k not in ckpt.resumed]
        parts: dict[int, BlockPartial] = dict(ckpt.resumed)
        bar = _Progress(progress, run.total_pairs, f"comparing ({eng.name})")
        bar.advance(sum(p.pairs for p in parts.values()))
        t_main = time.perf_counter()
        try:
            for k, part in eng.run_chunks(run.plan, chunks, todo):
                ckpt.save_chunk(k, part)
                parts[k] = part
                bar.advance(part.pairs)
                if on_chunk is not None:
                    on_chunk(k)
        finally:
            bar.close()
        t_main = time.perf_counter() - t_main
        t_asm = time.perf_counter()
        ordered = [parts.pop(k) for k in range(len(chunks))]
        result = _assemble(run, eng, ordered)
        t_asm = time.perf_counter() - t_asm
    finally:
        eng.close()
    result.meta.update({
        "source": "faceaudit compare (exhaustive, all pairs i < j)",
        "faceaudit_version": version,
        "settings": settings,
        "device": getattr(eng, "device_name", "cpu"),
        "timing_s": {"total": round(time.perf_counter() - t_start, 4), "pre_pass": round(t_pre, 4),
                     "main_pass": round(t_main, 4), "assembly": round(t_asm, 4)},
        **(meta or {}),
    })
    return result


def _assemble(run: _Run, eng, parts: list[BlockPartial]) -> ScoreDistributions:
    plan = run.plan
    total = BlockPartial.sum(parts, plan.n_slots)
    parts.clear()
    hist = plan.slots_to_hist(total.slots)
    n_gen = int(total.gen_x.size)
    tril = sum(min(run.block, run.n - bi * run.block) * (min(run.block, run.n - bi * run.block) + 1) // 2
               for bi, bj in run.blocks if bi == bj)
    # every pair once: visited pairs, histogram + mated, excluded slot
    if (total.pairs != run.total_pairs or int(hist.sum()) + n_gen != run.total_pairs
            or n_gen != plan.mated_i.size or int(total.slots[0]) != n_gen + tril
            or len(set(total.blocks)) != len(run.blocks) or len(total.blocks) != len(run.blocks)):
        raise AssertionError(
            f"pair counts do not add up: visited {total.pairs}, histogram {int(hist.sum())} + mated {n_gen}, "
            f"expected n(n-1)/2 = {run.total_pairs}")
    scale = plan.scale
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # the per-probe summaries need none of the rest: alongside
        summary = pool.submit(_probe_summary, run, total, scale)
        dist = _assemble_tail(run, eng, total, hist)
        dist.probe_summary = summary.result()
    return dist


def _assemble_tail(run: _Run, eng, total: BlockPartial, hist: np.ndarray) -> ScoreDistributions:
    """Genuine scores, per-cell cutoffs from the exact histogram, the tail and below_max of every cell."""
    plan, samples, G, scale = run.plan, run.samples, run.G, run.plan.scale
    gs, gp, gr = _genuine_canonical(run, total)
    empty_i = np.empty(0, np.int64)
    coarse = _GenuineSorted(
        samples=samples, edges=run.edges, impostor_hist=hist, tail_cutoff=np.full((G, G), np.inf),
        tail_score=np.empty(0), tail_probe=empty_i, tail_reference=empty_i, below_max=np.full((G, G), -np.inf),
        genuine_score=gs, genuine_probe=gp, genuine_reference=gr, design="complete")
    T = required_tail_cutoff(coarse, run.targets, run.subsets) if hist.sum() else np.full((G, G), np.inf)
    del coarse
    level = run.cell_level.copy()
    ci, cj, cx = total.cap_i, total.cap_j, total.cap_x
    passes = ["main"]
    fail = T < level
    if fail.any():
        # the estimate was too high for some cells: capture them again, below T, from the exact histogram
        for g, h in zip(*np.nonzero(fail)):
            level[g, h] = _lower_level(run.edges, hist[g, h], T[g, h])
        arrays = run.capture_arrays(np.where(fail, level, np.inf), np.full(run.n, np.inf, np.float32))
        second = BlockPlan(**{**plan.__dict__, **arrays, "tail_only": True})
        blocks = run.blocks_holding(fail)
        chunks = _chunks(blocks, run.block, run.n, 1 << 25)
        extra = BlockPartial.sum([part for _, part in eng.run_chunks(second, chunks, list(range(len(chunks))))],
                                 plan.n_slots)
        g = samples.group_of_sample
        old = ~fail.reshape(-1)[g[ci] * G + g[cj]]
        ci, cj, cx = (np.concatenate([ci[old], extra.cap_i]), np.concatenate([cj[old], extra.cap_j]),
                      np.concatenate([cx[old], extra.cap_x]))
        passes.append(f"capture below the required cutoff in {int(fail.sum())} cell(s), {len(blocks)} block(s)")
    g = samples.group_of_sample
    cell = g[ci] * G + g[cj]
    cs = cx.astype(np.float64)
    cs /= scale
    in_tail = cs >= T.reshape(-1)[cell]
    below = np.full(G * G, -np.inf)
    band = ~in_tail & (cs >= level.reshape(-1)[cell])
    np.maximum.at(below, cell[band], cs[band])
    del band
    n_tail_cell = np.bincount(cell[in_tail], minlength=G * G)
    n_below_cell = hist.reshape(G * G, -1).sum(axis=1) - n_tail_cell
    missing = (n_below_cell > 0) & ~np.isfinite(below)
    if missing.any():
        # cells with scores below T but none captured in [level, T): their largest lies below level
        blocks = run.blocks_holding(missing.reshape(G, G))
        got = eng.cell_max_below(plan, blocks, level.reshape(-1) * scale, missing)
        below[missing] = got[missing] / scale
        passes.append(f"rescan of {int(missing.sum())} cell(s) for the largest score below the tail")
    tail_score, tail_probe, tail_ref = cs[in_tail], ci[in_tail].astype(np.int64), cj[in_tail].astype(np.int64)
    del cs, cell, in_tail
    o = np.lexsort((tail_ref, tail_probe, tail_score))  # the canonical order of ScoreDistributions
    finite = level[np.isfinite(level)]
    return ScoreDistributions(
        samples=samples, edges=run.edges, impostor_hist=hist, tail_cutoff=T, tail_score=tail_score[o],
        tail_probe=tail_probe[o], tail_reference=tail_ref[o], below_max=below.reshape(G, G), genuine_score=gs,
        genuine_probe=gp, genuine_reference=gr, exclusions=Counter(), impostor_subject_pairs=None,
        design="complete",
        meta={"tail_cutoff_rule": "per cell: required_tail_cutoff of the complete histogram (every EER and target-FMR "
                                  "threshold of every group subset containing the cell exact); tail captured in "
                                  "the main pass",
              "capture_level": [float(level.min()), float(level.max())] if level.size else [],
              "capture_level_finite": [float(finite.min()), float(finite.max())] if finite.size else [],
              "passes": passes, "pairs": run.total_pairs,
              "score_definition": f"float32 GEMM of {run.metric} rows"
                                  + (", unit-normalised in float64" if run.metric == "cosine" else "")})


def _genuine_canonical(run: _Run, total: BlockPartial) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mated scores, probes and references in the canonical order (score, probe, reference).

    Each block returns its mated pairs in the plan's order (by block, then (i, j)); placed back in
    (i, j) order, one stable sort by score gives the canonical order (no three-key lexsort)."""
    plan = run.plan
    keys = np.asarray(total.blocks, np.int64)
    lo = np.searchsorted(plan.mated_key, keys, side="left")
    lens = np.searchsorted(plan.mated_key, keys, side="right") - lo
    pos = np.repeat(lo - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(int(lens.sum()))
    if not (np.array_equal(plan.mated_i[pos], total.gen_i) and np.array_equal(plan.mated_j[pos], total.gen_j)):
        raise AssertionError("mated pairs came back out of the plan's order")
    m = pos.size
    where = np.empty(m, np.int64)
    where[pos] = np.arange(m)  # plan position -> position in the blocks' concatenation
    x = np.empty(m, np.float32)
    i = np.empty(m, np.int64)
    j = np.empty(m, np.int64)
    o = run.mated_order
    x[o] = total.gen_x[where]
    i[o] = plan.mated_i
    j[o] = plan.mated_j
    if m >= 2**32:
        c = np.argsort(x, kind="stable")
    else:  # (score, position in (i, j) order) packed in one uint64: one unstable (SIMD) sort
        packed = (_float_order(x).astype(np.uint64) << np.uint64(32)) | np.arange(m, dtype=np.uint64)
        packed.sort()
        c = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
        del packed
    s = x[c].astype(np.float64)
    s /= plan.scale
    return s, i[c], j[c]


def _float_order(x: np.ndarray) -> np.ndarray:
    """uint32 keys in the order of the float32 values (-0.0 and 0.0 equal, as comparisons have them)."""
    u = (np.asarray(x, np.float32) + np.float32(0.0)).view(np.uint32)
    return np.where(u >> np.uint32(31), ~u, u | np.uint32(0x80000000))


def _lower_level(edges: np.ndarray, hist: np.ndarray, T: float) -> float:
    """An edge below T with at least a quarter more scores of the cell than above T (and 2 bins of margin)."""
    if not np.isfinite(T):
        return -np.inf
    per_bin = hist.reshape(-1, hist.shape[-1]).sum(axis=0)
    from_top = np.cumsum(per_bin[::-1])[::-1]
    bT = int(bin_index(np.array([T]), edges)[0])
    need = from_top[bT] + max(1, from_top[bT] // 4)
    b = bT - 2
    while b > 0 and from_top[b] < need:
        b -= 1
    return float(edges[b]) if b > 0 else -np.inf


def _probe_summary(run: _Run, total: BlockPartial, scale: float) -> ProbeSummary:
    """Top-k and first-mate rank of every probe from the captured scores: only the top-k candidates
    (>= each probe's top-k threshold) are sorted, in one packed-key sort; best mates and ranks are
    reductions (no sort of the mated or the captured scores)."""
    n, k = run.n, run.top_k
    ci, cj, cx = total.cap_i, total.cap_j, total.cap_x
    tk = run.topk_x
    a = cx >= tk[ci]
    b = cx >= tk[cj]
    probe = np.concatenate([ci[a], cj[b]])
    ref = np.concatenate([cj[a], ci[b]])
    x = np.concatenate([cx[a], cx[b]])
    del a, b
    counts = np.bincount(probe, minlength=n)
    subj = run.samples.subject_of_sample
    n_mates = np.bincount(subj, minlength=run.samples.n_subjects)[subj] - 1
    n_nonmated = (n - 1) - n_mates
    if (counts < np.minimum(k, n_nonmated)).any():
        raise AssertionError("a probe's top-k capture was incomplete")  # the thresholds are lower bounds
    o, probe_sorted = _by_probe_score_desc_ref(probe, x, ref)
    start = np.r_[0, np.cumsum(counts)[:-1]]
    pos = np.arange(o.size) - start[probe_sorted]
    keep = pos < k
    sel, p, pos = o[keep], probe_sorted[keep], pos[keep]  # only the top k of each probe are gathered
    del o, probe_sorted, keep
    topk_score = np.full((n, k), -np.inf)
    topk_ref = np.full((n, k), -1, np.int64)
    topk_score[p, pos] = x[sel].astype(np.float64) / scale
    topk_ref[p, pos] = ref[sel]
    # best mate of each probe, in both roles; ties go to the lower reference index
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
        if (run.mate_x[has] > best[has]).any():
            raise AssertionError("a probe's rank capture was incomplete")
        # rank: 1 + non-mated scores >= the best mated one, in either role (all captured)
        above = np.bincount(ci[cx >= best[ci]], minlength=n) + np.bincount(cj[cx >= best[cj]], minlength=n)
        rank[has] = 1 + above[has]
    best_score = np.where(has, best.astype(np.float64) / scale, np.nan)
    return ProbeSummary(k=k, topk_score=topk_score, topk_reference=topk_ref, best_mated_score=best_score,
                        best_mated_reference=np.where(has, best_ref, -1), mate_rank=rank)


def _by_probe_score_desc_ref(probe: np.ndarray, x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order by probe, then score descending, then reference, and the probes in that order.

    (probe, score) are packed in one uint64 and sorted with the fast unstable sort; only the rare runs
    of equal (probe, score) are then ordered by reference."""
    if probe.size and int(probe.max()) >= 2**32:
        o = np.lexsort((ref, -x, probe))
        return o, probe[o]
    key = (probe.astype(np.uint64) << np.uint64(32)) | (~_float_order(x)).astype(np.uint64)
    o = np.argsort(key)
    ks = key[o]
    del key
    eq = ks[1:] == ks[:-1]
    if eq.any():
        run = np.zeros(ks.size, bool)
        run[1:] |= eq
        run[:-1] |= eq
        at = np.flatnonzero(run)
        sub = o[at]
        o[at] = sub[np.lexsort((ref[sub], ks[at]))]
    return o, (ks >> np.uint64(32)).astype(np.intp)
