"""Partition inside the bin: the answers below a capped tail, when their whole bins do not fit.

A capped run (:mod:`faceaudit.compare.capped`) reads each answer below its tail from the exact scores
of the histogram bin where it falls. That bin holds a fixed share of the pairs (a few thousand scores at
5e9 pairs, hundreds of millions at 5e11), so where the windows of every answer hold more than the run's
budget (``max_tail`` scores) the bins are partitioned instead (docs/design.md, "Partition inside the
bin"):

1. Each answer is one order statistic of one group subset's scores, located by the exact histogram in a
   bin ``[lo, hi)``: a target FMR's ``(c + 1)``-th largest score, or the EER crossing.
2. A further capture-only pass counts each answer's scores in ``SUB_BINS`` equal parts of ``[lo, hi)``
   (``bin_index`` on the part's edges: the same exact binning as the histogram). The counts above a
   part are exact, so the part holding the answer is known exactly: for a rank, the part where the
   count from the top reaches it; for the EER, the last part whose lower edge has FMR >= FNMR (the
   crossing argument of :mod:`faceaudit.eer_window` holds for any exact edges). That part becomes the
   answer's interval; repeat while it holds more than the answer's share of the budget and can be
   split (its scores are not all one value, and float64 can still divide it).
3. A last pass captures, per cell of the subset whose cutoff lies above the bin, the scores in the final
   interval with their sample indices, the cell's largest score below it and smallest above it (the
   pass captures from the nearest non-empty bin below), and its counts in the bin below and above the
   interval. Every count is checked against the histogram.

The windows (:class:`faceaudit.tail_windows.TailWindows` with parts) answer exactly what whole-bin
windows answer: a threshold in ``(below_max, above_min]`` of a cell's part has an exact count, so the
global thresholds' per-cell counts and the ``lowest`` convention need no neighbouring bins. Memory: the
pass's chunk, one ``SUB_BINS`` row per refined answer, and the final windows; none of it grows with
the pairs except where scores tie (a value repeated k times is held k times).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceaudit.eer_window import crossing_bin, nonmated_rows
from faceaudit.measures.verification import allowed_false_matches
from faceaudit.scores import bin_index, uniform_edges
from faceaudit.tail_windows import TailWindows, bin_bounds, cutoff_bin, target_bin

__all__ = ["Answer", "Scanner", "FileScanner", "answers_below", "refine", "capture_windows",
           "window_total", "windows_meta", "capped_cutoffs", "tail_sizes", "from_top", "edge_of", "SUB_BINS",
           "MAX_ROUNDS", "DEFAULT_MAX_TAIL"]

#: default budget of the contiguous tail, in scores (each 24 bytes with its sample indices: ~200 MB)
DEFAULT_MAX_TAIL = 1 << 23
#: equal parts an answer's interval is split into per further pass
SUB_BINS = 1 << 14
#: the most splitting passes (each divides the interval by SUB_BINS; ties stop earlier)
MAX_ROUNDS = 6


# ----- the tail's budget (compare --max-tail, audit --max-tail) ---------------------------------------
def from_top(rows: np.ndarray) -> np.ndarray:
    """(K, B + 1): count of each row's scores >= edges[k] (k = 0: all of them, k = B: none)."""
    K, B = rows.shape
    out = np.zeros((K, B + 1), rows.dtype if rows.dtype.kind == "f" else np.int64)
    out[:, :B] = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]
    return out


def edge_of(edges: np.ndarray, k: int) -> float:
    """The cutoff that keeps bins >= k: -inf for 0, +inf for B, else the inner edge."""
    B = edges.size - 1
    return -np.inf if k <= 0 else (np.inf if k >= B else float(edges[k]))


def capped_cutoffs(rows: np.ndarray, cell_row: np.ndarray, T: np.ndarray, edges: np.ndarray,
                   budget: float) -> tuple[np.ndarray, int, int] | None:
    """(G, G) cutoffs whose tail holds at most ``budget`` scores of the cells with a histogram row:
    ``max(T, e)`` with ``e`` the lowest edge at which that holds; the cells without a row keep T. With
    the required tail's size and the capped one's; None when the required tail fits."""
    sizes = tail_sizes(rows, cell_row, T, edges)
    if sizes is None or sizes[2] <= budget:
        return None
    has, bT, required, total = sizes
    required = int(required)
    k = int(np.flatnonzero(total <= budget)[0])
    C = T.astype(np.float64).copy().reshape(-1)
    C[has] = [edge_of(edges, max(k, b)) for b in bT.tolist()]
    return C.reshape(T.shape), required, int(total[k])


def tail_sizes(rows: np.ndarray, cell_row: np.ndarray, T: np.ndarray, edges: np.ndarray):
    """Of the cells with a histogram row (``has``): each one's cutoff bin of ``T``, the required tail's
    size (every cell cut at its T) and, per edge k, the tail's size were every cell cut at max(T, edge k).
    None when no cell has a row."""
    has = np.flatnonzero(cell_row >= 0)
    if not has.size:
        return None
    ft = from_top(rows[cell_row[has]])
    bT = np.array([cutoff_bin(edges, float(t)) for t in T.reshape(-1)[has]], np.int64)
    req = ft[np.arange(has.size), bT]
    return has, bT, req.sum(), np.minimum(ft, req[:, None]).sum(axis=0)



# ----- the answers below it ---------------------------------------------------------------------------
@dataclass
class Answer:
    """One answer of one group subset below the capped tail: ``kind`` "rank" (the ``rank``-th largest
    score, counted from the top) or "eer" (the crossing with the sorted mated scores ``genuine``), in
    ``[lo, hi)`` of bin ``b``, with ``n_above`` of the subset's scores above the interval and ``count``
    in it; ``tied``: its scores in the interval are one value (no split can separate them)."""

    cells: np.ndarray  # flat bool mask of the subset's cells
    kind: str
    rank: int
    genuine: np.ndarray | None
    b: int
    lo: float
    hi: float
    n_above: int
    count: int
    n_total: int
    tied: bool = False

    def splittable(self) -> bool:
        if self.tied or not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return False
        return bool(np.all(np.diff(uniform_edges(self.lo, self.hi, SUB_BINS)) > 0))


def answers_below(coarse, rows: np.ndarray, cell_row: np.ndarray, C: np.ndarray, subsets: list,
                  targets: list[float]) -> list[Answer]:
    """Every target-FMR order statistic and EER crossing of every subset whose bin lies below the capped
    cutoff of some cell of the subset with a histogram row (the others the tail answers)."""
    edges = coarse.edges
    cut = np.array([cutoff_bin(edges, float(c)) for c in C.reshape(-1)])
    out = []
    for groups in subsets:
        cells = coarse.cell_mask(groups, groups).reshape(-1)
        hist = coarse.cell_histogram(cells.reshape(C.shape))
        total = int(hist.sum())
        if not total:
            continue
        found = []
        for t in targets:
            b = target_bin(hist, t)
            if b is not None:
                found.append(("rank", allowed_false_matches(t, total) + 1, None, b))
        genuine = coarse.genuine_scores(groups)
        if genuine.size:
            found.append(("eer", 0, genuine, crossing_bin(hist, genuine, edges)))
        seen = set()
        for kind, rank, gen, b in found:
            if (kind, rank, b) in seen or not (cells & (cell_row >= 0) & (cut > b)).any():
                continue
            seen.add((kind, rank, b))
            lo, hi = bin_bounds(edges, b)
            out.append(Answer(cells.copy(), kind, rank, gen, b, lo, hi, int(hist[b + 1:].sum()),
                              int(hist[b]), total))
    return out


def windows_meta(max_tail: int, capped: tuple, windows: TailWindows, **extra) -> dict:
    """``meta["tail_windows"]`` of a result whose tail was capped (``capped``: capped_cutoffs' answer)."""
    _, required, kept = capped
    return {"max_tail": int(max_tail), "required_tail": int(required), "kept_tail": int(kept),
            "windows": int(windows.cell.size), "window_scores": int(windows.n_scores), **extra,
            "note": "below the capped tail the FMR has no subject-bootstrap interval (Clopper-Pearson only), "
                    "and the DET curve holds the tail's points only"}


def window_total(rows: np.ndarray, cell_row: np.ndarray, windows: list[tuple[int, int]]) -> int:
    """Scores the whole-bin windows would hold."""
    return int(sum(int(rows[cell_row[c], b]) for c, b in windows))


Reduce = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


class Scanner(Protocol):
    """A source of the non-mated scores that can be read again: ``scan(cells, level, reduce)`` hands
    every non-mated score >= its cell's ``level`` of the flat ``cells`` to ``reduce(s, cell, i, j)``,
    chunk by chunk (scores in score units, flat cell codes, sample indices)."""

    G: int
    edges: np.ndarray
    cell_row: np.ndarray

    def scan(self, cells: np.ndarray, level: np.ndarray, reduce: Reduce) -> None: ...


class FileScanner:
    """A score source read again (``read()``: a fresh iterator of (probe, reference, score) chunks),
    with the readers' rule for which rows are non-mated comparisons
    (:func:`~faceaudit.eer_window.nonmated_rows`)."""

    def __init__(self, read: Callable[[], Iterator], samples, edges: np.ndarray,
                 cell_row: np.ndarray) -> None:
        self.read, self.samples = read, samples
        self.G, self.edges, self.cell_row = samples.n_groups, edges, cell_row

    def scan(self, cells: np.ndarray, level: np.ndarray, reduce: Reduce) -> None:
        lv = np.where(cells, level, np.inf)
        low = float(lv.min()) if lv.size else np.inf
        for chunk in self.read():
            s, cell, i, j = nonmated_rows(self.samples, *chunk, low=low)
            keep = s >= lv[cell]
            reduce(s[keep], cell[keep], i[keep], j[keep])


def refine(src: Scanner, answers: list[Answer], budget: int) -> int:
    """Split the answers' intervals (in place) until each holds at most its share of ``budget`` scores
    or cannot be split; the number of passes made."""
    share = max(1, budget // max(1, len(answers)))
    passes = 0
    for _ in range(MAX_ROUNDS):
        todo = [a for a in answers if a.count > share and a.splittable()]
        if not todo:
            break
        _split_pass(src, todo)
        passes += 1
    return passes


def _split_pass(src: Scanner, todo: list[Answer]) -> None:
    """One pass counting each answer's scores in SUB_BINS parts of its interval; each interval becomes
    the part holding its answer."""
    sub = [uniform_edges(a.lo, a.hi, SUB_BINS) for a in todo]
    counts = [np.zeros(SUB_BINS, np.int64) for _ in todo]
    lo_s, hi_s = np.full(len(todo), np.inf), np.full(len(todo), -np.inf)
    cells = np.zeros(src.G * src.G, bool)
    level = np.full(src.G * src.G, np.inf)
    for a in todo:
        cells |= a.cells
        level[a.cells] = np.minimum(level[a.cells], a.lo)
    bins_wanted = np.unique([a.b for a in todo])

    def reduce(s: np.ndarray, cell: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
        near = np.isin(bin_index(s, src.edges), bins_wanted)
        s, cell = s[near], cell[near]
        for k, a in enumerate(todo):
            x = s[a.cells[cell] & (s >= a.lo) & (s < a.hi)]
            if x.size:
                counts[k] += np.bincount(bin_index(x, sub[k]), minlength=SUB_BINS)
                lo_s[k], hi_s[k] = min(lo_s[k], float(x.min())), max(hi_s[k], float(x.max()))

    src.scan(cells, level, reduce)
    for k, a in enumerate(todo):
        c = counts[k]
        if int(c.sum()) != a.count:
            raise AssertionError(f"bin {a.b}: {int(c.sum())} scores counted in its parts, {a.count} expected")
        ft = a.n_above + np.cumsum(c[::-1])[::-1]  # count >= each part's lower edge
        if a.kind == "rank":
            p = int(np.flatnonzero(ft >= a.rank)[-1])
        else:
            Np = int(a.genuine.size)
            f = ft * Np - np.searchsorted(a.genuine, sub[k][:-1], side="left") * a.n_total
            ok = np.flatnonzero(f >= 0)
            p = int(ok[-1]) if ok.size else 0
        a.tied = lo_s[k] == hi_s[k]
        a.lo = a.lo if p == 0 else float(sub[k][p])  # the interval's own ends stay exact
        a.hi = a.hi if p == SUB_BINS - 1 else float(sub[k][p + 1])
        a.n_above, a.count = a.n_above + int(c[p + 1:].sum()), int(c[p])


@dataclass
class _Held:
    """What the last pass gathers for one window (cell, bin, [lo, hi))."""

    cell: int
    b: int
    lo: float
    hi: float
    below: float = -np.inf
    above: float = np.inf
    n_in_below: int = 0
    n_in_above: int = 0

    def __post_init__(self) -> None:
        self.s: list[np.ndarray] = []
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []


def capture_windows(src: Scanner, rows: np.ndarray, C: np.ndarray, answers: list[Answer]) -> TailWindows:
    """One pass capturing, for each answer and each cell of its subset with a histogram row whose cutoff
    lies above the answer's bin, the window of the answer's interval (checked against the histogram)."""
    edges, cell_row, G = src.edges, src.cell_row, src.G
    cut = np.array([cutoff_bin(edges, float(c)) for c in C.reshape(-1)])
    held: dict[tuple, _Held] = {}
    for a in answers:
        for c in np.flatnonzero(a.cells & (cell_row >= 0) & (cut > a.b)).tolist():
            held.setdefault((c, a.b, a.lo, a.hi), _Held(c, a.b, a.lo, a.hi))
    cells = np.zeros(G * G, bool)
    level = np.full(G * G, np.inf)
    for h in held.values():  # from the nearest non-empty bin below: the largest score below is captured
        below = np.flatnonzero(rows[cell_row[h.cell], :h.b])
        edge = bin_bounds(edges, int(below[-1] if below.size else h.b))[0]
        cells[h.cell] = True
        level[h.cell] = min(level[h.cell], edge)
    by_cell: dict[int, list[_Held]] = {}
    for h in held.values():
        by_cell.setdefault(h.cell, []).append(h)

    def reduce(s: np.ndarray, cell: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
        o = np.argsort(cell, kind="stable")
        s, cell, i, j = s[o], cell[o], i[o], j[o]
        starts = np.searchsorted(cell, np.arange(G * G + 1))
        for c, hs in by_cell.items():
            x, xi, xj = s[starts[c]:starts[c + 1]], i[starts[c]:starts[c + 1]], j[starts[c]:starts[c + 1]]
            for h in hs:
                _gather(h, x, xi, xj, *bin_bounds(edges, h.b))

    src.scan(cells, level, reduce)
    return _windows(rows, cell_row, edges, list(held.items()))


def _gather(h: _Held, x: np.ndarray, i: np.ndarray, j: np.ndarray, blo: float, bhi: float) -> None:
    """One chunk's scores of the window's cell into the window."""
    lower, upper = x < h.lo, x >= h.hi
    if lower.any():
        h.below = max(h.below, float(x[lower].max()))
    if upper.any():
        h.above = min(h.above, float(x[upper].min()))
    h.n_in_below += int((lower & (x >= blo)).sum())
    h.n_in_above += int((upper & (x < bhi)).sum())
    inside = ~lower & ~upper
    h.s.append(x[inside])
    h.i.append(i[inside])
    h.j.append(j[inside])


def _windows(rows: np.ndarray, cell_row: np.ndarray, edges: np.ndarray,
             held: list[tuple[tuple, _Held]]) -> TailWindows:
    """The TailWindows of the gathered windows, sorted by (cell, bin, lo, hi), each checked against the
    histogram: its scores and in-bin counts add up to the bin's count, and a neighbour exists exactly
    where the histogram has scores on that side."""
    held = sorted(held, key=lambda item: item[0])
    parts, lens, lo, hi = [], [], [], []
    for (c, b, _, _), h in held:
        s, i, j = (np.concatenate([np.empty(0, d), *v]) for d, v in
                   ((np.float64, h.s), (np.int64, h.i), (np.int64, h.j)))
        o = np.lexsort((j, i, s))
        row = rows[cell_row[c]]
        has_below = int(row[:b].sum()) + h.n_in_below > 0
        has_above = int(row[b + 1:].sum()) + h.n_in_above > 0
        if s.size + h.n_in_below + h.n_in_above != int(row[b]) or has_below != (h.below > -np.inf) \
                or has_above != (h.above < np.inf):
            raise AssertionError(f"window ({c}, {b}, [{h.lo!r}, {h.hi!r})) disagrees with the histogram")
        parts.append((s[o], i[o], j[o]))
        lens.append(s.size)
        blo, bhi = bin_bounds(edges, b)
        lo.append(np.nan if h.lo == blo else h.lo)  # a part's bounds; NaN: the bin's own edge
        hi.append(np.nan if h.hi == bhi else h.hi)
    keys = [k for k, _ in held]
    return TailWindows(
        cell=np.array([k[0] for k in keys], np.int64), bin=np.array([k[1] for k in keys], np.int64),
        below_max=np.array([h.below for _, h in held], np.float64),
        above_min=np.array([h.above for _, h in held], np.float64),
        start=np.r_[0, np.cumsum(lens)].astype(np.int64),
        score=np.concatenate([np.empty(0), *[p[0] for p in parts]]),
        probe=np.concatenate([np.empty(0, np.int64), *[p[1] for p in parts]]),
        reference=np.concatenate([np.empty(0, np.int64), *[p[2] for p in parts]]),
        lo=np.array(lo, np.float64), hi=np.array(hi, np.float64),
        n_in_below=np.array([h.n_in_below for _, h in held], np.int64),
        n_in_above=np.array([h.n_in_above for _, h in held], np.int64))
