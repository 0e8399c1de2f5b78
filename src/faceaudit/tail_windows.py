"""Exact answers below a capped tail: the exact scores of the histogram bins where answers fall.

A :class:`~faceaudit.scores.ScoreDistributions` whose contiguous tail was capped to a memory budget
(``faceaudit compare --max-tail``, docs/design.md "Exactness") keeps, besides that tail, a
:class:`TailWindows`: for chosen (cell, bin) pairs below the cell's tail cutoff, every non-mated score of
that cell in that bin (with its sample indices), the cell's largest score below the bin and its smallest
score above it. The histogram gives the counts on either side exactly (bins are exact), so the view of a
set of cells at one bin (:func:`bin_view`, an :class:`~faceaudit.scores.ImpostorView` with ``n_above``)
answers every count at a threshold inside the bin, the threshold at a target FMR whose
``(c + 1)``-th largest score lies in the bin, and an EER whose crossing starts in the bin
(:mod:`faceaudit.eer_window`), with the same computation as on the full scores.

:func:`target_view`, :func:`threshold_view` and :func:`eer_view` return the tail's view where it
reaches the answer (the answers and their bootstrap are then those of an uncapped run) and a bin view
otherwise; a bin the windows do not hold gives the tail's view back, whose measure then raises
:class:`~faceaudit.errors.NotExactError` as before (never a bin-resolved number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from faceaudit.errors import NotExactError
from faceaudit.measures.verification import allowed_false_matches

if TYPE_CHECKING:
    from faceaudit.scores import ImpostorView, ScoreDistributions

__all__ = ["TailWindows", "bin_view", "target_view", "threshold_view", "eer_view", "cell_bin_scores",
           "WINDOW_FIELDS", "answer_bins", "cutoff_bin", "target_bin"]

#: the most empty bins held between a global threshold's two bins (see answer_bins)
EMPTY_BINS_HELD = 64
WINDOW_FIELDS = ("cell", "bin", "below_max", "above_min", "start", "score", "probe", "reference")


@dataclass
class TailWindows:
    """Per window w (sorted by (cell, bin)): flat cell code, bin, the cell's largest non-mated score
    below the bin (-inf: none), its smallest above the bin (inf: none), and the exact scores of the
    cell in the bin, ``score[start[w]:start[w + 1]]`` sorted ascending, with their sample indices."""

    cell: np.ndarray
    bin: np.ndarray
    below_max: np.ndarray
    above_min: np.ndarray
    start: np.ndarray
    score: np.ndarray
    probe: np.ndarray
    reference: np.ndarray

    def __post_init__(self) -> None:
        self.cell = np.asarray(self.cell, np.int64)
        self.bin = np.asarray(self.bin, np.int64)
        self.start = np.asarray(self.start, np.int64)
        W = self.cell.size
        key = self.cell * (1 << 32) + self.bin
        if (self.bin.size != W or self.below_max.size != W or self.above_min.size != W
                or self.start.size != W + 1 or (W and (np.any(np.diff(key) <= 0) or self.start[0] != 0))
                or self.start[-1] != self.score.size or np.any(np.diff(self.start) < 0)
                or self.probe.size != self.score.size or self.reference.size != self.score.size):
            raise ValueError("inconsistent tail windows")
        self._key = key

    @property
    def n_scores(self) -> int:
        return int(self.score.size)

    def find(self, cell: int, b: int) -> int:
        """Index of window (cell, b), -1 if not held."""
        k = int(cell) * (1 << 32) + int(b)
        i = int(np.searchsorted(self._key, k))
        return i if i < self._key.size and self._key[i] == k else -1

    def arrays(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in WINDOW_FIELDS}

    def check(self, dist: ScoreDistributions) -> None:
        """ValueError unless every window is one a capped tail can hold: a cell with a histogram row, a
        bin below its cutoff, the row's count of scores, each in the bin and sorted, the neighbours
        outside it (a file's windows are checked on load)."""
        from faceaudit.scores import bin_index

        W, B = self.cell.size, dist.n_bins
        if not W:
            return
        rows = dist.hist_row_of_cell.reshape(-1)
        if self.cell.min() < 0 or self.cell.max() >= rows.size or self.bin.min() < 0 or self.bin.max() >= B:
            raise ValueError("tail windows out of range")
        r = rows[self.cell]
        cut = np.array([cutoff_bin(dist.edges, float(c)) for c in dist.tail_cutoff.reshape(-1)])
        lens = np.diff(self.start)
        if (r < 0).any() or (self.bin >= cut[self.cell]).any() or \
                not np.array_equal(lens, dist.hist_rows[np.maximum(r, 0), self.bin]):
            raise ValueError("tail windows disagree with the histogram")
        own = np.repeat(self.bin, lens)
        lo = np.array([_bin_bounds(dist.edges, int(b))[0] for b in self.bin.tolist()])
        hi = np.array([_bin_bounds(dist.edges, int(b))[1] for b in self.bin.tolist()])
        sorted_in = np.all(np.diff(self.score) >= 0) if W == 1 else all(
            np.all(np.diff(self.score[a:z]) >= 0) for a, z in zip(self.start[:-1], self.start[1:]))
        if (not np.array_equal(bin_index(self.score, dist.edges), own) or not sorted_in
                or np.any(self.below_max >= lo) or np.any(self.above_min < hi)):
            raise ValueError("tail windows hold scores outside their bins")

    # called by ScoreDistributions, which does not import this module (no import cycle)
    def eer_view(self, dist: ScoreDistributions, groups: list[int], view: ImpostorView) -> ImpostorView:
        return eer_view(dist, groups, view)

    def target_view(self, dist: ScoreDistributions, cells: np.ndarray, target: float,
                    view: ImpostorView) -> ImpostorView:
        return target_view(dist, cells, target, view)

    def threshold_view(self, dist: ScoreDistributions, cells: np.ndarray, threshold: float,
                       view: ImpostorView) -> ImpostorView:
        return threshold_view(dist, cells, threshold, view)

    def fill_counts(self, dist: ScoreDistributions, threshold: float, counts: np.ndarray,
                    exact: np.ndarray) -> None:
        """Fill in (in place) the count >= ``threshold`` of each flat cell not yet ``exact`` whose bin of
        the threshold is held: the histogram's count above the bin plus the exact in-bin count."""
        from faceaudit.scores import bin_index

        b = int(bin_index(np.array([threshold], np.float64), dist.edges)[0])
        for c in np.flatnonzero(~exact).tolist():
            got = cell_bin_scores(dist, c, b)
            if got is None:
                continue
            above = int(dist.cell_at_least_edges(c, np.array([b + 1]))[0]) if b + 1 < dist.n_bins else 0
            counts[c] = above + got[0].size - int(np.searchsorted(got[0], threshold, side="left"))
            exact[c] = True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TailWindows):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in WINDOW_FIELDS)

    __hash__ = None  # type: ignore[assignment]


def _bin_bounds(edges: np.ndarray, b: int) -> tuple[float, float]:
    """[lo, hi) of bin b (the outer bins open-ended, as bin_index has them)."""
    B = edges.size - 1
    return (float(edges[b]) if b > 0 else -np.inf), (float(edges[b + 1]) if b < B - 1 else np.inf)


def cutoff_bin(edges: np.ndarray, cutoff: float) -> int:
    """The bin from which a tail cutoff keeps every score: cutoffs are -inf, inner edges or +inf."""
    if cutoff == -np.inf:
        return 0
    if cutoff == np.inf:
        return edges.size - 1
    return int(np.searchsorted(edges, cutoff, side="left"))


def cell_bin_scores(dist: ScoreDistributions, cell: int, b: int) -> tuple[np.ndarray, float, float] | None:
    """The exact non-mated scores of flat ``cell`` in bin ``b``, the cell's largest score below the bin
    and its smallest above it; None when neither the tail, the exact cells nor the windows hold them."""
    edges = dist.edges
    lo, hi = _bin_bounds(edges, b)
    if dist.hist_row_of_cell.reshape(-1)[cell] < 0:  # every score of the cell is kept
        scores, _, starts = dist._exact_scores()
        s = scores[starts[cell]:starts[cell + 1]]
        return _slice(s, lo, hi, -np.inf)
    cutoff = float(dist.tail_cutoff.reshape(-1)[cell])
    if b >= cutoff_bin(edges, cutoff):
        scores, starts, _ = dist.tail_index()
        s = scores[starts[cell]:starts[cell + 1]]
        return _slice(s, lo, hi, float(dist.below_max.reshape(-1)[cell]))
    w = dist.windows
    i = -1 if w is None else w.find(cell, b)
    if i < 0:
        return None
    return w.score[w.start[i]:w.start[i + 1]], float(w.below_max[i]), float(w.above_min[i])


def _slice(s: np.ndarray, lo: float, hi: float, below: float) -> tuple[np.ndarray, float, float]:
    """Scores of sorted ``s`` in [lo, hi), the largest below (``below`` if none in s) and smallest above."""
    a = int(np.searchsorted(s, lo, side="left")) if lo > -np.inf else 0
    z = int(np.searchsorted(s, hi, side="left")) if hi < np.inf else s.size
    return s[a:z], (float(s[a - 1]) if a > 0 else below), (float(s[z]) if z < s.size else np.inf)


def bin_view(dist: ScoreDistributions, cells: np.ndarray, b: int) -> ImpostorView | None:
    """The window view of the non-mated scores of a (G, G) mask's cells at bin ``b``: exact scores in
    the bin, counts below and above from the histogram, the largest below and the smallest above. None
    when some cell's scores of that bin are not held."""
    from faceaudit.scores import ImpostorView

    hist = dist.cell_histogram(cells)
    counts = dist.nonmated_counts().reshape(-1)
    parts, below, above = [], -np.inf, np.inf
    for c in np.flatnonzero(np.asarray(cells, bool).reshape(-1) & (counts > 0)).tolist():
        got = cell_bin_scores(dist, c, b)
        if got is None:
            return None
        parts.append(got[0])
        below, above = max(below, got[1]), min(above, got[2])
    tail = np.sort(np.concatenate([np.empty(0), *parts]))
    n_below, n_above = int(hist[:b].sum()), int(hist[b + 1:].sum())
    if tail.size != int(hist[b]) or (n_below > 0) != (below > -np.inf) or (n_above > 0) != (above < np.inf):
        raise AssertionError(f"the exact scores of bin {b} disagree with the histogram")
    return ImpostorView(tail=tail, n_below=n_below, below_max=below, n_above=n_above, above_min=above)


def _tail_reaches(view: ImpostorView, threshold: float) -> bool:
    return not view.n_below or threshold > view.below_max


def target_bin(hist: np.ndarray, target: float) -> int | None:
    """The bin of the (c + 1)-th largest score, c the false matches a target FMR allows (None: every
    score may be a false match)."""
    total = int(hist.sum())
    c = allowed_false_matches(target, total)
    if c >= total:
        return None
    from_top = np.cumsum(hist[::-1])[::-1]
    return int(np.flatnonzero(from_top >= c + 1)[-1])


def target_view(dist: ScoreDistributions, cells: np.ndarray, target: float,
                view: ImpostorView) -> ImpostorView:
    """The view from which the threshold at ``target`` of a (G, G) mask's cells is exact: ``view`` (the
    tail's) when it reaches the (c + 1)-th largest score, else the window of that score's bin."""
    if dist.windows is None or not view.n_below:
        return view
    if allowed_false_matches(target, view.total) < view.tail.size:
        return view
    b = target_bin(dist.cell_histogram(cells), target)
    got = None if b is None else bin_view(dist, cells, b)
    return view if got is None else got


def threshold_view(dist: ScoreDistributions, cells: np.ndarray, threshold: float,
                   view: ImpostorView) -> ImpostorView:
    """The view from which the count of the cells' non-mated scores >= ``threshold`` is exact."""
    if dist.windows is None or _tail_reaches(view, threshold) or threshold != threshold:
        return view
    from faceaudit.scores import bin_index

    b = int(bin_index(np.array([threshold], np.float64), dist.edges)[0])
    got = bin_view(dist, cells, b)
    return view if got is None else got


def eer_view(dist: ScoreDistributions, groups: list[int], view: ImpostorView) -> ImpostorView:
    """The tail's view when the EER search stays in it, else the window of the crossing's bin."""
    from faceaudit.eer_window import crossing_bin
    from faceaudit.measures.verification import eer

    genuine = dist.genuine_scores(groups)
    if dist.windows is None or not view.n_below or not genuine.size:
        return view
    try:
        eer(view, genuine)
        return view
    except NotExactError:
        pass
    cells = dist.cell_mask(groups, groups)
    got = bin_view(dist, cells, crossing_bin(dist.cell_histogram(cells), genuine, dist.edges))
    return view if got is None else got


def answer_bins(dist: ScoreDistributions, subsets: list[list[int]], targets: list[float]) -> list[tuple]:
    """Per subset, (its flat cell mask, the bins of its answers): each target's threshold bin and its
    EER crossing bin, from the histogram alone (exact; the mated scores are exact)."""
    from faceaudit.eer_window import crossing_bin

    out = []
    for groups in subsets:
        cells = dist.cell_mask(groups, groups)
        hist = dist.cell_histogram(cells)
        if not hist.sum():
            continue
        bins = set()
        whole_set = len(set(groups)) == dist.n_groups
        for b in {target_bin(hist, t) for t in targets} - {None}:
            # the threshold is the next value above the (c + 1)-th largest: in its bin or the next
            # non-empty one (for the whole set that bin holds the global threshold for every cell)
            nxt = np.flatnonzero(hist[b + 1:])
            top = b if not nxt.size else b + 1 + int(nxt[0])
            # the whole set's bins between them are empty, but the 'lowest' convention's global threshold
            # (a mated score in between) may lie there: held too (no scores, their neighbours), up to a few
            between = range(b + 1, top) if whole_set and top - b <= EMPTY_BINS_HELD else ()
            bins.update([b, top, *between])
        genuine = dist.genuine_scores(groups)
        if genuine.size:
            bins.add(crossing_bin(hist, genuine, dist.edges))
        out.append((cells.reshape(-1).copy(), sorted(bins)))
    return out
