"""One block of the all-pairs score matrix: GEMM, exclusions, fused histogram, captures.

Everything here is a pure function of the block's inputs, so blocks can run in any order, on any
thread, worker or resumed process, and their :class:`BlockPartial` results add up exactly.

Scores. ``score(i, j)`` is defined as the float32 GEMM of the (validated, float32) rows, divided by
``scale``: with cosine and power-of-two bins the reference rows are pre-multiplied by
``scale = B / 2`` (a power of two, so the product is exact barring underflow of tiny products) and the
GEMM output ``x = scale * score`` is already in bin units.

Exact binning (cosine, ``edges = uniform_edges(-1, 1, B)``, ``B`` a power of two). The edges are
``-1 + b * 2 / B``, dyadic and exact in float64, so ``score`` lies in bin ``b`` iff
``b <= scale * score + B/2 < b + 1`` iff ``b = floor(x) + B/2``: ``x`` is exact (a float32 times a
power of two), ``floor`` is exact, and the integer offsets added afterwards are exact in float32 while
the slot count stays below 2**24. This is :func:`faceaudit.scores.bin_index` without its correction
steps, and provably equal to it; scores outside ``[-1, 1)`` land in guard slots folded into the
open-ended outer bins at the end. Other metrics or edges use ``bin_index`` itself (slower).

The host functions every backend may share live here too (a chunk of blocks, the exact rescan, the
pre-pass scores, the float32 error bound), so that a backend module imports this kernel and the plan,
never another backend or the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceaudit.scores import bin_index

#: the score excluded pairs (mated, i >= j) get before the captures: below every real score
SENTINEL = np.float32(-np.inf)


@dataclass
class BlockPlan:
    """What every block needs besides its embedding rows (shared, read-only)."""

    n: int
    block: int
    scale: float  # x = scale * score
    fast: bool  # dyadic cosine binning
    metric: str
    edges: np.ndarray
    n_bins: int
    n_groups: int
    group: np.ndarray  # intp (n,)
    slot_stride: int
    guard: int
    n_slots: int
    row_offset: np.ndarray  # float32 or int64 (n,): group_of_row * G * stride
    col_offset: np.ndarray  # float32 or int64 (n,): group_of_col * stride + base
    float_offsets: bool
    # Captures, in x units (float32). A pair (i, j), i < j, is a candidate when x >= capture_row[i] or
    # x >= capture_col[j] (a cheap test on the whole block); a candidate is kept when it reaches its
    # cell's tail level (x >= keep_cell[cell]) or either sample's per-probe summary threshold
    # (x >= keep_sample[i] or x >= keep_sample[j]). capture_row/capture_col are the per-sample minima of
    # those levels, so every pair that must be kept is a candidate.
    capture_row: np.ndarray  # float32 (n,)
    capture_col: np.ndarray  # float32 (n,)
    keep_sample: np.ndarray  # float32 (n,)
    keep_cell: np.ndarray  # float32 (G * G,), cell = group[i] * G + group[j]
    tail_only: bool = False  # second pass: captures only, no histogram or genuine
    sq_norm: np.ndarray | None = None  # euclidean
    mated_i: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # sorted by block key
    mated_j: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    mated_key: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    # Cells kept whole (no histogram row) make the layout non-separable: then row_offset[i] + col_offset[j]
    # is the cell code, slot = bin + cell_base[cell] (int64, G * G), and n_rows cells have rows (in cell
    # order) followed by one shared row for the cells kept whole. None: every cell has a row, in cell order.
    cell_base: np.ndarray | None = None
    n_rows: int = -1

    def block_key(self, bi: int, bj: int) -> int:
        nb = -(-self.n // self.block)
        return bi * nb + bj

    def mated_in(self, bi: int, bj: int) -> tuple[np.ndarray, np.ndarray]:
        k = self.block_key(bi, bj)
        lo, hi = np.searchsorted(self.mated_key, [k, k + 1])
        return self.mated_i[lo:hi], self.mated_j[lo:hi]

    def slots_to_rows(self, slots: np.ndarray) -> np.ndarray:
        """Fold the slot counts into histogram rows (guards into the outer bins): (G * G, B) in cell order
        when every cell has a row, else (n_rows + 1, B), the last the shared row of the cells kept whole."""
        B, S, g = self.n_bins, self.slot_stride, self.guard
        cells = slots[3:].reshape(-1, S)
        hist = cells[:, g : g + B].copy()
        hist[:, 0] += cells[:, :g].sum(axis=1)
        hist[:, -1] += cells[:, g + B :].sum(axis=1)
        return hist

    def slots_to_hist(self, slots: np.ndarray) -> np.ndarray:
        """The (G, G, B) histogram of a plan where every cell has a row (the fused kernel's plans)."""
        if self.cell_base is not None:
            raise ValueError("this plan keeps some cells whole: its slots hold rows, "
                             "not a (G, G, B) histogram")
        return self.slots_to_rows(slots).reshape(self.n_groups, self.n_groups, self.n_bins)


@dataclass
class BlockPartial:
    """What a set of blocks contributes; ``a + b`` merges exactly (counts add, captures concatenate)."""

    slots: np.ndarray  # int64 counts per (cell, bin) slot; slot 0 counts the excluded pairs
    pairs: int  # i < j pairs visited
    cap_i: np.ndarray  # int64 sample index (row, i < j)
    cap_j: np.ndarray
    cap_x: np.ndarray  # float32, x units
    gen_i: np.ndarray
    gen_j: np.ndarray
    gen_x: np.ndarray
    blocks: tuple[int, ...] = ()

    @classmethod
    def empty(cls, n_slots: int) -> BlockPartial:
        e = np.empty(0, np.int64)
        f = np.empty(0, np.float32)
        return cls(np.zeros(n_slots, np.int64), 0, e, e, f, e, e, f)

    @classmethod
    def sum(cls, parts: list[BlockPartial], n_slots: int, slots: np.ndarray | None = None,
            release: bool = False) -> BlockPartial:
        """``parts[0] + parts[1] + ...`` with one concatenation (not one per ``+``); ``slots``: their
        counts, when the caller has already summed them. ``release``: each field of the parts emptied
        once joined (the parts are spent), so the captures are held twice for one field at most."""
        if not parts:
            return cls.empty(n_slots)
        if slots is None:
            slots = np.zeros(n_slots, np.int64)
            for p in parts:
                slots += p.slots
        cat = {}
        for f in ("cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x"):
            cat[f] = np.concatenate([getattr(p, f) for p in parts])
            if release:
                for p in parts:
                    setattr(p, f, getattr(p, f)[:0])
        return cls(
            slots=slots, pairs=sum(p.pairs for p in parts), blocks=sum((p.blocks for p in parts), ()), **cat
        )

    def __add__(self, other: BlockPartial) -> BlockPartial:
        return BlockPartial(
            slots=self.slots + other.slots,
            pairs=self.pairs + other.pairs,
            cap_i=np.concatenate([self.cap_i, other.cap_i]),
            cap_j=np.concatenate([self.cap_j, other.cap_j]),
            cap_x=np.concatenate([self.cap_x, other.cap_x]),
            gen_i=np.concatenate([self.gen_i, other.gen_i]),
            gen_j=np.concatenate([self.gen_j, other.gen_j]),
            gen_x=np.concatenate([self.gen_x, other.gen_x]),
            blocks=self.blocks + other.blocks,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"slots": self.slots, "pairs": np.int64(self.pairs), "cap_i": self.cap_i, "cap_j": self.cap_j,
                "cap_x": self.cap_x, "gen_i": self.gen_i, "gen_j": self.gen_j, "gen_x": self.gen_x,
                "blocks": np.asarray(self.blocks, np.int64)}

    @classmethod
    def from_arrays(cls, a) -> BlockPartial:
        return cls(
            slots=a["slots"],
            pairs=int(a["pairs"]),
            cap_i=a["cap_i"],
            cap_j=a["cap_j"],
            cap_x=a["cap_x"],
            gen_i=a["gen_i"],
            gen_j=a["gen_j"],
            gen_x=a["gen_x"],
            blocks=tuple(int(b) for b in a["blocks"]),
        )


_TRIL_CACHE: dict[int, np.ndarray] = {}


def _tril(size: int) -> np.ndarray:
    m = _TRIL_CACHE.get(size)
    if m is None:
        m = np.tril(np.ones((size, size), bool))
        _TRIL_CACHE[size] = m
    return m


def numpy_block_scores(plan: BlockPlan, rows: np.ndarray, cols_scaled: np.ndarray,
                       r0: int, c0: int) -> np.ndarray:
    """The block's scores in x units (float32), before any exclusion."""
    x = rows @ cols_scaled.T
    if plan.metric == "euclidean":
        # negated distance, in float32, from the same GEMM: -sqrt(max(0, |a|^2 + |b|^2 - 2 a.b))
        sq = plan.sq_norm
        np.multiply(x, np.float32(-2.0), out=x)
        x += sq[r0 : r0 + rows.shape[0], None]
        x += sq[None, c0 : c0 + cols_scaled.shape[0]]
        np.maximum(x, np.float32(0.0), out=x)
        np.sqrt(x, out=x)
        np.negative(x, out=x)
    return x


def process_block(plan: BlockPlan, x: np.ndarray, bi: int, bj: int) -> BlockPartial:
    """Histogram and captures of one block's x (modified in place)."""
    r0, c0 = bi * plan.block, bj * plan.block
    nr, nc = x.shape
    diag = bi == bj
    sentinel = SENTINEL
    mi, mj = plan.mated_in(bi, bj)
    li, lj = mi - r0, mj - c0
    gen_x = x[li, lj].copy()
    x[li, lj] = sentinel
    if diag:
        tril = _tril(nr)
        x[tril] = sentinel
        pairs = nr * (nr - 1) // 2
    else:
        pairs = nr * nc
    # captures: a cheap candidate test on the block, then the exact per-cell / per-sample filter
    mask = x >= plan.capture_row[r0 : r0 + nr, None]
    mask |= x >= plan.capture_col[None, c0 : c0 + nc]
    flat = np.flatnonzero(mask)
    del mask
    cx = x.ravel()[flat]
    cap_i = flat // nc + r0
    cap_j = flat % nc + c0
    keep = keep_captures(plan, cap_i, cap_j, cx)
    cap_i, cap_j, cx = cap_i[keep], cap_j[keep], cx[keep]
    if plan.tail_only:
        e = np.empty(0, np.int64)
        return BlockPartial(np.zeros(plan.n_slots, np.int64), 0, cap_i, cap_j, cx, e, e,
                            np.empty(0, np.float32), (plan.block_key(bi, bj),))
    with np.errstate(invalid="ignore"):  # excluded pairs (-inf) are cast, then overwritten with slot 0
        idx = _slot_index(plan, x, r0, c0)
    idx[li, lj] = 0
    if diag:
        idx[_tril(nr)] = 0
    slots = np.bincount(idx.ravel(), minlength=plan.n_slots)
    if slots.size != plan.n_slots:
        raise AssertionError("a score fell outside the guard slots")  # impossible for validated input
    return BlockPartial(slots.astype(np.int64, copy=False), pairs, cap_i.astype(np.int64),
                        cap_j.astype(np.int64), cx, mi.astype(np.int64), mj.astype(np.int64), gen_x,
                        (plan.block_key(bi, bj),))


def keep_captures(plan: BlockPlan, i: np.ndarray, j: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Which candidates (i < j, score x) are kept: at or above the cell's tail level or either
    sample's summary threshold, and not excluded (the sentinel)."""
    g, G = plan.group, plan.n_groups
    keep = x >= plan.keep_cell[g[i] * G + g[j]]
    keep |= x >= plan.keep_sample[i]
    keep |= x >= plan.keep_sample[j]
    keep &= x > SENTINEL
    return keep


def _slot_index(plan: BlockPlan, x: np.ndarray, r0: int, c0: int) -> np.ndarray:
    nr, nc = x.shape
    if plan.cell_base is not None:
        return _slot_index_by_cell(plan, x, r0, c0)
    if plan.fast:
        np.floor(x, out=x)
        if plan.float_offsets:
            x += plan.row_offset[r0 : r0 + nr, None]
            x += plan.col_offset[None, c0 : c0 + nc]
            idx = x.astype(np.intp)
        else:
            idx = x.astype(np.intp)
            idx += plan.row_offset[r0 : r0 + nr, None]
            idx += plan.col_offset[None, c0 : c0 + nc]
    else:
        # generic edges: the exact bin_index on float64 scores
        s = x.astype(np.float64)
        if plan.scale != 1.0:
            s /= plan.scale
        idx = bin_index(s.ravel(), plan.edges).reshape(x.shape)
        del s
        idx += plan.row_offset[r0 : r0 + nr, None]
        idx += plan.col_offset[None, c0 : c0 + nc]
    return idx


def _slot_index_by_cell(plan: BlockPlan, x: np.ndarray, r0: int, c0: int) -> np.ndarray:
    """Slots of a layout with cells kept whole: the bin (as in the separable layout) plus the cell's base."""
    nr, nc = x.shape
    if plan.fast:
        np.floor(x, out=x)
        idx = x.astype(np.intp)
    else:
        s = x.astype(np.float64)
        if plan.scale != 1.0:
            s /= plan.scale
        idx = bin_index(s.ravel(), plan.edges).reshape(x.shape)
        del s
    code = plan.row_offset[r0 : r0 + nr, None] + plan.col_offset[None, c0 : c0 + nc]
    idx += plan.cell_base[code]
    return idx


def gemm_error_bound(d: int, precision: str = "fp32") -> float:
    """Bound on |score difference| between two float32 GEMMs of unit vectors, any summation order.

    Higham's gamma_d = d u / (1 - d u) bounds each against the exact dot product; two of them differ
    by at most twice that. bf16 inputs are rounded the same way in both, so u stays float32's.
    """
    u = 2.0**-24
    return 2.0 * d * u / (1.0 - d * u) + 1e-7


def host_sample_scores(emb: np.ndarray, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
    """Pre-pass scores (float64) of ``rows`` against ``refs`` on the host: a float32 GEMM."""
    a, b = emb[rows], emb[refs]
    x = (a @ b.T).astype(np.float64)
    if metric == "euclidean":
        sa = (a.astype(np.float64) ** 2).sum(1)
        sb = (b.astype(np.float64) ** 2).sum(1)
        x = -np.sqrt(np.maximum(sa[:, None] + sb[None, :] - 2.0 * x, 0.0))
    return x


def scaled_references(emb: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """The reference-side rows pre-multiplied by ``scale`` (a power of two: exact)."""
    return emb if plan.scale == 1.0 else emb * np.float32(plan.scale)


def numpy_chunk(plan: BlockPlan, emb: np.ndarray, emb_scaled: np.ndarray,
                blocks: Sequence[tuple[int, int]]) -> BlockPartial:
    """Sum of the partial results of some blocks (numpy): the unit of work of threads and Dask tasks."""
    b = plan.block
    # numpy calls BLAS only for aligned arrays (else its own loop, another summation order): arrays
    # deserialised on a Dask worker can be misaligned, and bit-identity needs the same GEMM everywhere
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")
    slots = np.zeros(plan.n_slots, np.int64)
    parts = []
    for bi, bj in blocks:
        x = numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b],
                               bi * b, bj * b)
        part = process_block(plan, x, bi, bj)
        del x
        slots += part.slots
        part.slots = None  # summed here: no block keeps its own copy of the counts
        parts.append(part)
    return BlockPartial.sum(parts, plan.n_slots, slots=slots)


def numpy_cell_max_below(
    plan: BlockPlan,
    emb: np.ndarray,
    emb_scaled: np.ndarray,
    blocks: Sequence[tuple[int, int]],
    level_x: np.ndarray,
    cells: np.ndarray,
) -> np.ndarray:
    """(G*G,) largest non-mated x < level_x[cell] per wanted cell over some blocks (exact rescan, rare)."""
    b = plan.block
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")

    def block_x(bi: int, bj: int) -> np.ndarray:
        return numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b],
                                  bi * b, bj * b)

    return cell_max_below_of(plan, block_x, blocks, level_x, cells)


def cell_max_below_of(
    plan: BlockPlan,
    block_x: Callable[[int, int], np.ndarray],
    blocks: Sequence[tuple[int, int]],
    level_x: np.ndarray,
    cells: np.ndarray,
) -> np.ndarray:
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
        _exclude_in_rescan(plan, x, bi, bj)
        nr, nc = x.shape
        cell = gr[:nr, None] * G + gc[None, :nc]
        for c in todo.tolist():
            m = (cell == c) & (x < np.float64(level_x[c]))
            if m.any():
                out[c] = max(out[c], float(x[m].max()))
    return out


def _exclude_in_rescan(plan: BlockPlan, x: np.ndarray, bi: int, bj: int) -> None:
    """Mated pairs and i >= j of a block's x set to -inf (in place)."""
    r0, c0 = bi * plan.block, bj * plan.block
    nr, nc = x.shape
    mi, mj = plan.mated_in(bi, bj)
    x[mi - r0, mj - c0] = -np.inf
    if bi == bj:
        x[np.tril(np.ones((nr, nc), bool))] = -np.inf
