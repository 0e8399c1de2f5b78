"""A tail capped to a memory budget (``--max-tail``): exact answers from the bins where they fall.

When the contiguous tail every answer needs (``required_tail_cutoff``) holds more than ``max_tail``
scores, the cells' cutoffs are raised (:func:`capped_cutoffs`: the lowest common edge at which the tail
fits, never below a cell's required cutoff) and each answer below them is kept as a window: the exact
scores of its histogram bin in every cell of its subset (:mod:`faceaudit.tail_windows`), plus each
cell's largest score below the bin and smallest above it. Every choice is a function of the exact
histogram and the exact mated scores alone, so the result does not depend on any estimate.

What the pass keeps. The pre-pass estimates the same cutoffs and answer bins on its sampled histogram
(:func:`estimate_keep`) and, where the estimated required tail passes the budget, each chunk's captures
are cut as they arrive to ranges of bins per cell (:class:`KeepRanges`): the contiguous part from a
little below the estimated capped cutoff, and a band around each estimated answer bin (a margin in
count that shrinks with the number of sampled scores behind the estimate). After the pass the exact
needs (:func:`needed_ranges`) are checked against what was kept; the cells where a need was missed get
a capture-only pass over the blocks holding them, cut per chunk to their needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaudit.partition import DEFAULT_MAX_TAIL, tail_sizes
from faceaudit.scores import bin_index
from faceaudit.tail_windows import TailWindows, answer_bins, cutoff_bin

__all__ = ["KeepRanges", "needed_ranges", "estimate_keep", "build_windows",
           "DEFAULT_MAX_TAIL", "TAIL_KEEP_MARGIN", "BAND_MARGIN"]

#: the pass keeps the contiguous tail down to where the estimated count is this times the budget
TAIL_KEEP_MARGIN = 1.25
#: relative margin in count of an answer's band: BAND_MARGIN[0] + BAND_MARGIN[1] / sqrt(sampled count)
BAND_MARGIN = (0.05, 4.0)


@dataclass
class KeepRanges:
    """Per cell, bin ranges [lo, hi) whose scores are kept (sorted, merged; hi = B: open above)."""

    cell: np.ndarray  # int64
    lo: np.ndarray
    hi: np.ndarray
    n_bins: int

    @classmethod
    def of(cls, cell, lo, hi, n_bins: int) -> KeepRanges:
        """Sorted and merged (overlapping or touching ranges of one cell become one)."""
        cell, lo, hi = (np.asarray(a, np.int64) for a in (cell, lo, hi))
        o = np.lexsort((lo, cell))
        cell, lo, hi = cell[o], lo[o], hi[o]
        out_c, out_lo, out_hi = [], [], []
        for c, a, z in zip(cell.tolist(), lo.tolist(), hi.tolist()):
            if out_c and out_c[-1] == c and a <= out_hi[-1]:
                out_hi[-1] = max(out_hi[-1], z)
            else:
                out_c.append(c)
                out_lo.append(a)
                out_hi.append(z)
        return cls(np.array(out_c, np.int64), np.array(out_lo, np.int64), np.array(out_hi, np.int64), n_bins)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        width = self.n_bins + 1
        return self.cell * width + self.lo, self.cell * width + self.hi

    def mask(self, cell: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each (cell, bin) lies in a range."""
        starts, ends = self.keys()
        key = np.asarray(cell, np.int64) * (self.n_bins + 1) + b
        i = np.searchsorted(starts, key, side="right") - 1
        ok = i >= 0
        ok[ok] &= key[ok] < ends[i[ok]]
        return ok

    def covers(self, cell: int, lo: int, hi: int) -> bool:
        """Whether [lo, hi) of ``cell`` lies inside one range."""
        starts, ends = self.keys()
        width = self.n_bins + 1
        i = int(np.searchsorted(starts, cell * width + lo, side="right")) - 1
        return i >= 0 and self.cell[i] == cell and ends[i] >= cell * width + hi

    def contiguous_lo(self, n_cells: int) -> np.ndarray:
        """(n_cells,) per cell the lowest bin of its range open above (n_bins where none)."""
        out = np.full(n_cells, self.n_bins, np.int64)
        top = self.hi >= self.n_bins
        out[self.cell[top]] = self.lo[top]
        return out

    def restricted(self, cells: np.ndarray) -> KeepRanges:
        """The ranges of the flat cells where ``cells`` is True."""
        k = np.asarray(cells, bool)[self.cell]
        return KeepRanges(self.cell[k], self.lo[k], self.hi[k], self.n_bins)

    def lowest(self, n_cells: int) -> np.ndarray:
        """(n_cells,) per cell the lowest kept bin (n_bins where none)."""
        out = np.full(n_cells, self.n_bins, np.int64)
        np.minimum.at(out, self.cell, self.lo)
        return out

    def state(self) -> np.ndarray:
        return np.stack([self.cell, self.lo, self.hi]) if self.cell.size else np.zeros((3, 0), np.int64)

    @classmethod
    def from_state(cls, a: np.ndarray, n_bins: int) -> KeepRanges:
        a = np.asarray(a, np.int64).reshape(3, -1)
        return cls.of(a[0], a[1], a[2], n_bins)


def score_bins(x: np.ndarray, scale: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float64, score units) and bins of captured x values (float32, x units)."""
    s = x.astype(np.float64)
    s /= scale
    return s, bin_index(s, edges)


def _nonempty_around(row: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The last non-empty bin below ``lo`` (lo when none) and the first non-empty bin from ``hi``
    (hi - 1 when none): the bins holding the largest score below and the smallest above."""
    below = np.flatnonzero(row[:lo])
    above = np.flatnonzero(row[hi:])
    return (int(below[-1]) if below.size else lo), (hi + int(above[0]) if above.size else hi - 1)


def needed_ranges(coarse, rows: np.ndarray, cell_row: np.ndarray, C: np.ndarray, subsets: list,
                  targets: list[float]) -> tuple[KeepRanges, list[tuple[int, int]]]:
    """The exact bin ranges a capped run needs per cell with a row (its tail from the bin holding its
    largest score below the cutoff; each window's bin and the bins holding the scores next to it), and
    the windows (cell, bin), from the exact histogram."""
    B = rows.shape[1]
    edges = coarse.edges
    windows: set[tuple[int, int]] = set()
    for cells, bins in answer_bins(coarse, subsets, targets):
        for c in np.flatnonzero(cells & (cell_row >= 0)).tolist():
            row = rows[cell_row[c]]
            bC = cutoff_bin(edges, float(C.reshape(-1)[c]))
            windows.update((c, b) for b in bins if b < bC)
    rc, rlo, rhi = [], [], []
    for c in np.flatnonzero(cell_row >= 0).tolist():
        row = rows[cell_row[c]]
        bC = cutoff_bin(edges, float(C.reshape(-1)[c]))
        lo, _ = _nonempty_around(row, bC, B)
        rc.append(c)
        rlo.append(lo)
        rhi.append(B)
    for c, b in sorted(windows):
        lo, hi = _nonempty_around(rows[cell_row[c]], b, b + 1)
        rc.append(c)
        rlo.append(lo)
        rhi.append(hi + 1)
    return KeepRanges.of(rc, rlo, rhi, B), sorted(windows)


def build_windows(rows: np.ndarray, cell_row: np.ndarray, edges: np.ndarray, windows: list[tuple[int, int]],
                  s: np.ndarray, cell: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray,
                  tail_min: np.ndarray) -> TailWindows:
    """The windows from the captures below their cell's cutoff (scores ``s``, cells, bins, sample pairs)
    that hold every needed range of their cells, and each cell's smallest tail score: in-bin scores, the
    largest captured below and the smallest above (the true ones, which lie in needed bins or are the
    tail's smallest), each count checked against the histogram."""
    o = np.lexsort((j, i, s, cell))
    s, cell, b, i, j = s[o], cell[o], b[o], i[o], j[o]
    starts = np.searchsorted(cell, np.arange(cell_row.size + 1))
    parts, below, above, lens = [], [], [], []
    for c, k in windows:
        lo_c, hi_c = starts[c], starts[c + 1]
        bc = b[lo_c:hi_c]
        a, z = lo_c + np.searchsorted(bc, k, side="left"), lo_c + np.searchsorted(bc, k, side="right")
        if z - a != int(rows[cell_row[c]][k]):
            raise AssertionError(f"window ({c}, {k}): {z - a} scores captured, the histogram counts "
                                 f"{int(rows[cell_row[c]][k])}")
        has_below = int(rows[cell_row[c]][:k].sum()) > 0
        has_above = int(rows[cell_row[c]][k + 1:].sum()) > 0
        nxt = float(s[z]) if z < hi_c else float(tail_min[c])
        if (a > lo_c) != has_below or (nxt < np.inf) != has_above:
            raise AssertionError(f"window ({c}, {k}): the scores next to the bin were not captured")
        below.append(float(s[a - 1]) if a > lo_c else -np.inf)
        above.append(nxt)
        parts.append(np.arange(a, z))
        lens.append(z - a)
    take = np.concatenate([np.empty(0, np.int64), *parts]).astype(np.int64)
    return TailWindows(
        cell=np.array([c for c, _ in windows], np.int64), bin=np.array([k for _, k in windows], np.int64),
        below_max=np.array(below, np.float64), above_min=np.array(above, np.float64),
        start=np.r_[0, np.cumsum(lens)].astype(np.int64), score=s[take],
        probe=i[take].astype(np.int64), reference=j[take].astype(np.int64))


# ----- the pre-pass's estimate --------------------------------------------------------------------
def _band(ft: np.ndarray, b: int, rate: float) -> tuple[int, int]:
    """Bins around an estimated answer bin ``b`` of a subset's estimated counts-from-the-top ``ft``
    within a relative count margin (wider where fewer sampled scores stand behind the estimate)."""
    p = float(ft[b])
    m = BAND_MARGIN[0] + BAND_MARGIN[1] / np.sqrt(max(p * rate, 1.0))
    hi_q, lo_q = p * (1.0 + m), p * (1.0 - m)
    above = np.flatnonzero(ft >= hi_q)
    below = np.flatnonzero(ft <= lo_q)
    return (int(above[-1]) if above.size else 0), (int(below[0]) if below.size else ft.size - 1)


def _eer_band(hist: np.ndarray, genuine: np.ndarray, edges: np.ndarray,
              rate: float) -> tuple[int, int, int]:
    """The estimated EER crossing bin, widened: the crossings with the FMR scaled by 1 -/+ the margin;
    with the crossing bin itself."""
    N, Np = float(hist.sum()), genuine.size
    ft = np.cumsum(hist[::-1])[::-1]
    fnmr = np.searchsorted(genuine, edges[:-1], side="left") / Np
    b0 = np.flatnonzero(ft / N >= fnmr)
    b0 = int(b0[-1]) if b0.size else 0
    m = BAND_MARGIN[0] + BAND_MARGIN[1] / np.sqrt(max(float(ft[b0]) * rate, 1.0))
    lo = np.flatnonzero(ft / N * (1.0 - m) >= fnmr)
    hi = np.flatnonzero(ft / N * (1.0 + m) >= fnmr)
    return (int(lo[-1]) if lo.size else 0), (int(hi[-1]) if hi.size else 0), b0


def estimate_keep(est_dist, est: np.ndarray, cell_row: np.ndarray, T_est: np.ndarray, level: np.ndarray,
                  subsets: list, targets: list[float], budget: int, rate: float) -> KeepRanges | None:
    """The ranges the main pass keeps per cell when the estimated required tail passes the budget (None:
    it fits, everything captured is kept, as without a budget). ``level``: the kernel's capture levels
    (the cells kept whole have -inf); ``rate``: the share of pairs the pre-pass sampled."""
    edges = est_dist.edges
    B = edges.size - 1
    sizes = tail_sizes(est, cell_row, T_est, edges)
    if sizes is None or sizes[2] <= budget:
        return None
    total = sizes[3]
    k = int(np.flatnonzero(total <= budget * TAIL_KEEP_MARGIN)[0])
    rc, rlo, rhi = [], [], []
    flat_level = level.reshape(-1)
    for c in range(cell_row.size):
        lv = cutoff_bin(edges, float(flat_level[c]))
        rc.append(c)
        # from 2 bins below, and down to the next bin the estimate has scores in (sparse scores)
        rlo.append(0 if cell_row[c] < 0 else max(_nonempty_around(est[cell_row[c]], max(k - 2, 0), B)[0], lv))
        rhi.append(B)
    bc, blo, bhi, centres = [], [], [], set()
    for groups in subsets:
        cells = est_dist.cell_mask(groups, groups).reshape(-1) & (cell_row >= 0)
        if not cells.any():
            continue
        hist = est_dist.cell_histogram(cells.reshape(est_dist.n_groups, -1))
        sft = np.cumsum(hist[::-1])[::-1]
        bands = [(*_band(sft, b, rate), b) for b in _target_bins(sft, targets)]
        genuine = est_dist.genuine_scores(groups)
        if genuine.size and hist.sum() > 0:
            bands.append(_eer_band(hist, genuine, edges, rate))
        for lo, hi, b in bands:
            lo, hi = _nonempty_around(hist, max(lo - 2, 0), min(hi + 3, B))
            for c in np.flatnonzero(cells).tolist():
                bc.append(c)
                blo.append(lo)
                bhi.append(hi + 1)
                centres.add((c, b))
    # where the answers' whole bins are estimated to hold more than the budget, the assembly will partition
    # them by further passes (faceaudit/partition.py), which need none of the pass's captures below the
    # tail: the bands are not kept (the assembly's own test, window_total, on the estimate)
    in_windows = sum(float(est[cell_row[c], b]) for c, b in centres)  # est: counts of the whole run
    if in_windows <= budget:
        rc, rlo, rhi = rc + bc, rlo + blo, rhi + bhi
    return KeepRanges.of(rc, rlo, rhi, B)


def _target_bins(ft: np.ndarray, targets: list[float]) -> list[int]:
    """Estimated bins of each target's (c + 1)-th largest score (float counts)."""
    total = float(ft[0])
    out = []
    for t in targets:
        c = np.floor(t * total)
        idx = np.flatnonzero(ft >= c + 1)
        if idx.size and c + 1 <= total:
            out.append(int(idx[-1]))
    return out
