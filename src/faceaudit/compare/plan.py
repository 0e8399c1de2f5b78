"""The plan of one comparison run: bins, slots, blocks, chunks, mated pairs and capture levels.

:class:`Planner` holds everything a run decides before any block is scored: the histogram edges and
their dyadic fast path, the slot layout of the fused histogram (:class:`~faceaudit.compare.kernel.BlockPlan`),
the block schedule of the upper triangle, the mated pairs in block order, and the capture levels the
pre-pass (:mod:`faceaudit.compare.prepass`) sets. Backends read its ``plan``; the assembly reads the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from faceaudit.build import group_subsets
from faceaudit.compare.capped import DEFAULT_MAX_TAIL, KeepRanges, score_bins
from faceaudit.compare.kernel import BlockPlan, gemm_error_bound
from faceaudit.compare.probes import ProbeThresholds
from faceaudit.scores import (
    SampleIndex,
    ScoreDistributions,
    check_histogram_memory,
    default_cell_limit,
    uniform_edges,
)

__all__ = ["Planner", "GenuineSorted", "make_chunks", "mated_pairs", "all_subsets", "f32_down", "f32_up",
           "complete_cell_pairs",
           "DEFAULT_BLOCK", "DEFAULT_CHUNK_PAIRS"]

DEFAULT_BLOCK = 1024
DEFAULT_CHUNK_PAIRS = 1 << 25


def mated_pairs(samples: SampleIndex) -> tuple[np.ndarray, np.ndarray]:
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


def complete_cell_pairs(samples: SampleIndex) -> np.ndarray:
    """(G, G) non-mated pairs per cell of the complete design: pairs i < j, filed under (group[i],
    group[j]), less the mated ones. O(n) per group."""
    G = samples.n_groups
    g = samples.group_of_sample.astype(np.int64)
    out = np.zeros((G, G), np.int64)
    for h in np.unique(g).tolist():
        is_h = g == h
        before = np.cumsum(is_h) - is_h  # samples of group h before each sample
        # exact in float64: every partial sum is below n^2 / 2 < 2**53
        out[h] = np.rint(np.bincount(g, weights=before, minlength=G)).astype(np.int64)
    mi, mj = mated_pairs(samples)
    out.reshape(-1)[:] -= np.bincount(g[mi] * G + g[mj], minlength=G * G)
    return out


def all_subsets(samples: SampleIndex) -> list[list[int]]:
    """Group subsets of every grouping the audit may report (each non-empty set of columns)."""
    cols = samples.group_columns
    groupings = [c for r in range(1, len(cols) + 1) for c in combinations(cols, r)]
    return list(group_subsets(samples, groupings).values())


def f32_down(a: Any) -> np.ndarray:
    """float32 values never above the float64 ones (a capture level rounded up would miss scores)."""
    a = np.asarray(a, dtype=np.float64)
    f = a.astype(np.float32)
    up = f.astype(np.float64) > a
    f[up] = np.nextafter(f[up], np.float32(-np.inf))
    return f


def f32_up(a: Any) -> np.ndarray:
    """float32 values never below the float64 ones (an upper bound rounded down would miss scores)."""
    a = np.asarray(a, dtype=np.float64)
    f = a.astype(np.float32)
    down = f.astype(np.float64) < a
    f[down] = np.nextafter(f[down], np.float32(np.inf))
    return f


def make_chunks(blocks: list[tuple[int, int]], block: int, n: int,
                chunk_pairs: int) -> list[list[tuple[int, int]]]:
    """Consecutive blocks grouped into chunks of about ``chunk_pairs`` pairs (the unit of checkpoints)."""
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


class GenuineSorted(ScoreDistributions):
    """A ScoreDistributions whose genuine scores are sorted ascending: a group subset's genuine scores
    are a masked view, no sort (``required_tail_cutoff`` asks for every subset's)."""

    def genuine_scores(self, groups: Any = None) -> np.ndarray:
        if groups is None:
            return self.genuine_score
        groups = sorted(set(groups))
        cache = getattr(self, "by_group_order", None)
        if cache is None:
            gg = self.samples.group_of_sample[self.genuine_probe]
            o = np.argsort(gg.astype(np.int16) if self.n_groups < 2**15 else gg, kind="stable")  # radix
            starts = np.searchsorted(gg[o], np.arange(self.n_groups + 1))
            cache = self.by_group_order = (gg, o, starts)
        gg, o, starts = cache
        if len(groups) == self.n_groups:
            return self.genuine_score
        if len(groups) == 1:  # the group's scores, still sorted (a stable order by group)
            return self.genuine_score[o[starts[groups[0]] : starts[groups[0] + 1]]]
        lut = np.zeros(self.n_groups, bool)
        lut[groups] = True
        return self.genuine_score[lut[gg]]


def _binning(emb: np.ndarray, metric: str, bins: int) -> tuple[np.ndarray, bool, float]:
    """Edges, whether the dyadic fast path applies, and the scale x = scale * score."""
    if metric == "cosine":
        edges = uniform_edges(-1.0, 1.0, bins)
        fast = bins >= 2 and (bins & (bins - 1)) == 0
        return edges, fast, float(bins // 2) if fast else 1.0
    sq = (emb.astype(np.float64) ** 2).sum(axis=1)
    top = float(2.0 * np.sqrt(sq.max())) * 1.001 + 1e-6
    return uniform_edges(-top, 0.0, bins), False, 1.0


class Planner:
    """One comparison run's plan: the block plan backends read, the schedule, the capture levels.

    Parameters are the run's settings (see :func:`faceaudit.compare.engine.compare_embeddings`); ``emb``
    is the validated float32 matrix (:func:`faceaudit.compare.inputs.prepare_embeddings`)."""

    def __init__(self, emb: np.ndarray, samples: SampleIndex, *, metric: str, bins: int, block: int,
                 top_k: int, fmr_targets: Sequence[float], reference_sample: int, seed: int,
                 max_capture: int, memory_limit: int | None = None, max_tail: int | None = None) -> None:
        self.emb = emb
        self.samples = samples
        self.n, self.d = emb.shape
        self.metric = metric
        self.block = int(block)
        self.top_k = int(top_k)
        self.targets = [float(t) for t in fmr_targets]
        self.G = samples.n_groups
        self.subsets = all_subsets(samples)
        self.edges, self.fast, self.scale = _binning(emb, metric, bins)
        self.group_size = np.bincount(samples.group_of_sample.astype(np.int64), minlength=self.G)
        # which cells get a histogram row (more than cell_limit non-mated pairs; the others are captured
        # whole): known before anything is allocated, and refused here if past the memory limit
        self.cell_limit = default_cell_limit(bins)
        self.cell_pairs = complete_cell_pairs(samples)
        check_histogram_memory(self.cell_pairs, bins, self.cell_limit, memory_limit)
        binned = self.cell_pairs.reshape(-1) > self.cell_limit
        #: per flat cell, its row of the histogram (-1: kept whole, no row)
        self.cell_row = np.full(self.G * self.G, -1, np.int64)
        self.cell_row[binned] = np.arange(int(binned.sum()))
        self.n_rows = int(binned.sum())
        self.plan = self._block_plan(bins)
        nb = -(-self.n // self.block)
        self.blocks = [(bi, bj) for bi in range(nb) for bj in range(bi, nb)]
        # which groups each block row / column holds: a cell's pairs lie only in blocks holding both
        self.block_groups = np.zeros((nb, self.G), bool)
        self.block_groups[np.arange(self.n) // self.block, samples.group_of_sample] = True
        self.total_pairs = self.n * (self.n - 1) // 2
        self.reference_sample = reference_sample
        self.seed = seed
        self.max_capture = max_capture
        #: the contiguous tail's budget in scores (compare --max-tail); None: no budget
        self.max_tail = DEFAULT_MAX_TAIL if max_tail is None else int(max_tail)
        #: the bin ranges per cell each chunk's captures are cut to (None: every capture is kept)
        self.keep: KeepRanges | None = None
        #: whether passes after the main one show a progress bar (compare_embeddings(progress=))
        self.progress = False
        bound = gemm_error_bound(self.d)
        # euclidean: d^2 = |a|^2 + |b|^2 - 2ab has error ~ bound * 4 max|a|^2, and sqrt turns it into its root
        self.margin = (bound if metric == "cosine"
                       else float(np.sqrt(bound * 2.0 * float(self.edges[0]) ** 2)) + bound)
        # per cell: every non-mated score >= cell_level is kept by the main pass (score units)
        self.cell_level = np.full((self.G, self.G), np.inf)
        # per sample, x units: top-k and first-mate capture thresholds of the per-probe summaries
        self.topk_x = np.full(self.n, np.inf, np.float32)
        self.mate_x = np.full(self.n, np.inf, np.float32)
        # per sample, x units: an upper bound of its best mated score (the rank counts scores above it)
        self.mate_hi_x = np.full(self.n, np.inf, np.float32)

    def _block_plan(self, bins: int) -> BlockPlan:
        """The slot layout (per cell, B bins between guard slots) and the mated pairs in block order."""
        G, B, fast, n = self.G, bins, self.fast, self.n
        guard = max(2, int(np.ceil(0.01 * B / 2))) if fast else 0
        stride = B + 2 * guard
        g = self.samples.group_of_sample.astype(np.int64)
        first = 3 + guard + (B // 2 if fast else 0)
        # every cell with pairs has a row (the empty ones get slots that stay 0): slot = bin + row offset
        # + column offset, at most about twice the rows (each pair of groups fills one orientation or both)
        if np.all((self.cell_row >= 0) | (self.cell_pairs.reshape(-1) == 0)):
            n_slots = 3 + G * G * stride
            float_off = fast and n_slots < 2**24
            dt = np.float32 if float_off else np.int64
            row_offset, col_offset = (g * G * stride).astype(dt), (g * stride + first).astype(dt)
            cell_base = None
        else:  # rows for some cells, one shared row for the cells kept whole: slot = bin + base[cell]
            n_slots = 3 + (self.n_rows + 1) * stride
            float_off = False
            row_offset, col_offset = g * G, g.copy()  # the cell code g[i] * G + g[j]
            cell_base = first + np.where(self.cell_row >= 0, self.cell_row, self.n_rows) * stride
        mi, mj = mated_pairs(self.samples)  # sorted by (i, j)
        nb = -(-n // self.block)
        key = (mi // self.block) * nb + (mj // self.block)
        o = np.argsort(key, kind="stable")
        #: plan position p of a mated pair is position mated_order[p] in (i, j) order
        self.mated_order = o
        inf = np.full(n, np.inf, np.float32)
        sq_norm = None
        if self.metric == "euclidean":
            sq_norm = (self.emb.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
        return BlockPlan(
            n=n,
            block=self.block,
            scale=self.scale,
            fast=fast,
            metric=self.metric,
            edges=self.edges,
            n_bins=B,
            n_groups=G,
            group=self.samples.group_of_sample,
            slot_stride=stride,
            guard=guard,
            n_slots=n_slots,
            row_offset=row_offset,
            col_offset=col_offset,
            float_offsets=float_off,
            cell_base=cell_base,
            n_rows=self.n_rows,
            capture_row=inf,
            capture_col=inf.copy(),
            keep_sample=inf.copy(),
            keep_cell=np.full(G * G, np.inf, np.float32),
            sq_norm=sq_norm,
            mated_i=mi[o],
            mated_j=mj[o],
            mated_key=key[o],
        )

    def rows_of_slots(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (n_rows, B) histogram rows of the cells that have one (in cell order) from the slot counts,
        and the shared row of the cells kept whole (zeros when every cell with pairs has a row)."""
        folded = self.plan.slots_to_rows(slots)
        if self.plan.cell_base is not None:
            return folded[:-1], folded[-1]
        has = self.cell_row >= 0
        if folded[~has].any():
            raise AssertionError("a cell without pairs has histogram counts")
        return folded[has], np.zeros(folded.shape[1], np.int64)

    def chunks(self, chunk_pairs: int) -> list[list[tuple[int, int]]]:
        """The run's blocks in chunks of about ``chunk_pairs`` pairs."""
        return make_chunks(self.blocks, self.block, self.n, chunk_pairs)

    # ----- capture levels -----------------------------------------------------------------------
    def capture_arrays(self, cell_level: np.ndarray, keep_sample: np.ndarray) -> dict[str, np.ndarray]:
        """The BlockPlan's capture fields for per-cell levels (score units) and per-sample thresholds."""
        keep_cell = f32_down(cell_level.reshape(-1) * self.scale)
        return {**self._candidate_levels(keep_cell, keep_sample), "keep_sample": keep_sample,
                "keep_cell": keep_cell}

    def _candidate_levels(self, keep_cell: np.ndarray, keep_sample: np.ndarray) -> dict[str, np.ndarray]:
        """The kernel's cheap candidate test per sample (row and column role): the lowest of its own
        threshold and the levels of the cells it is tested for in that role."""
        G = self.G
        kc = keep_cell.reshape(G, G)
        to_row = self.group_size[:, None] <= self.group_size[None, :]
        row_level = np.where(to_row, kc, np.float32(np.inf)).min(axis=1)
        col_level = np.where(~to_row, kc, np.float32(np.inf)).min(axis=0)
        g = self.samples.group_of_sample
        return {"capture_row": np.minimum(keep_sample, row_level[g]),
                "capture_col": np.minimum(keep_sample, col_level[g])}

    def raise_sample_thresholds(self, floor: np.ndarray | None) -> None:
        """The plan's per-sample thresholds raised to each probe's k-th best score so far (``floor``, x
        units, -inf until it has k; :meth:`ProbeAccumulator.floor`), between chunks of the main pass.

        Why it is exact: a score below a probe's k-th best so far cannot enter its top k (k better or
        equal ones are already held, and the floor only rises), and the rank band ``mate_x`` is kept as
        it was, so every capture the summaries or the cells' tails use is still captured; the fold cuts
        the same candidates by the same floor anyway. It only spares the kernel and the fold the scores
        between the pre-pass's top-k estimate (the k-th best of a reference sample, a low quantile) and
        the probe's true k-th best."""
        if floor is None or not self.top_k:
            return
        keep_sample = np.minimum(np.maximum(self.topk_x, floor), self.mate_x)
        plan = self.plan
        for k, v in self._candidate_levels(plan.keep_cell, keep_sample).items():
            setattr(plan, k, v)
        plan.keep_sample = keep_sample

    def set_capture(self, cell_level: np.ndarray, topk_x: np.ndarray, mate_x: np.ndarray,
                    mate_hi_x: np.ndarray | None = None, keep: np.ndarray | None = None) -> None:
        """Set the per-cell levels and per-sample thresholds (from the pre-pass or a checkpoint); a cell
        with pairs but no histogram row is captured whole (level -inf) whatever the estimate. ``keep``:
        the state of the ranges each chunk's captures are cut to (a capped tail), empty for none."""
        B = self.edges.size - 1
        self.keep = None if keep is None or np.asarray(keep).size == 0 else KeepRanges.from_state(keep, B)
        self.cell_level = np.asarray(cell_level, np.float64).reshape(self.G, self.G).copy()
        self.cell_level.reshape(-1)[(self.cell_row < 0) & (self.cell_pairs.reshape(-1) > 0)] = -np.inf
        self.topk_x, self.mate_x = np.asarray(topk_x, np.float32), np.asarray(mate_x, np.float32)
        self.mate_hi_x = (np.full(self.n, np.inf, np.float32) if mate_hi_x is None
                          else np.asarray(mate_hi_x, np.float32))
        for k, v in self.capture_arrays(self.cell_level, np.minimum(self.topk_x, self.mate_x)).items():
            setattr(self.plan, k, v)

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of the plan: the capture levels."""
        return {"cell_level": self.cell_level, "topk_x": self.topk_x, "mate_x": self.mate_x,
                "mate_hi_x": self.mate_hi_x,
                "keep": np.zeros((3, 0), np.int64) if self.keep is None else self.keep.state()}

    def keep_mask(self, cap_i: np.ndarray, cap_j: np.ndarray, cap_x: np.ndarray) -> np.ndarray | None:
        """Which of a chunk's captures the kept ranges hold (None: no ranges, keep by level)."""
        if self.keep is None:
            return None
        g = self.samples.group_of_sample
        _, b = score_bins(cap_x, self.scale, self.edges)
        return self.keep.mask(g[cap_i] * self.G + g[cap_j], b)

    def probe_thresholds(self) -> ProbeThresholds:
        """The per-probe summaries' thresholds (top-k, rank band)."""
        return ProbeThresholds(self.top_k, self.topk_x, self.mate_x, self.mate_hi_x)

    def blocks_holding(self, cells: np.ndarray) -> list[tuple[int, int]]:
        """The blocks that hold at least one pair of a (G, G) mask's cells."""
        bg = self.block_groups.astype(np.int64)
        hold = (bg @ cells.astype(np.int64) @ bg.T) > 0  # hold[bi, bj]: some g in bi, h in bj, cell (g, h)
        return [(bi, bj) for bi, bj in self.blocks if hold[bi, bj]]
