"""Exact answers below a capped tail: the exact scores of the histogram bins where answers fall.

A :class:`~faceaudit.scores.ScoreDistributions` whose contiguous tail was capped to a memory budget
(``faceaudit compare --max-tail``, docs/design.md "Exactness") keeps, besides that tail, a
:class:`TailWindows`: for chosen (cell, bin) pairs below the cell's tail cutoff, every non-mated score of
that cell in that bin (with its sample indices), the cell's largest score below the bin and its smallest
score above it. The histogram gives the counts on either side exactly (bins are exact), so the view of a
set of cells at one bin (:func:`part_view`, an :class:`~faceaudit.scores.ImpostorView` with ``n_above``)
answers every count at a threshold inside the bin, the threshold at a target FMR whose
``(c + 1)``-th largest score lies in the bin, and an EER whose crossing starts in the bin
(:mod:`faceaudit.eer_window`), with the same computation as on the full scores. A window may hold only a
part of its bin (the partition inside the bin, :mod:`faceaudit.partition`); its counts in the bin below
and above that part are then kept with it.

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

__all__ = ["TailWindows", "part_view", "target_view", "threshold_view", "eer_view", "cell_part",
           "WINDOW_FIELDS", "PART_FIELDS", "answer_bins", "cutoff_bin", "target_bin", "bin_bounds"]

#: the most empty bins held between a global threshold's two bins (see answer_bins)
EMPTY_BINS_HELD = 64
WINDOW_FIELDS = ("cell", "bin", "below_max", "above_min", "start", "score", "probe", "reference")
#: a window that holds part of its bin (the partition inside the bin, faceaudit/partition.py): its bounds
#: [lo, hi) (NaN: the bin's own edge) and the cell's counts in the bin below and above that part
PART_FIELDS = ("lo", "hi", "n_in_below", "n_in_above")


@dataclass
class TailWindows:
    """Per window w (sorted by (cell, bin, lo, hi)): flat cell code, bin, the cell's largest non-mated
    score below the window (-inf: none), its smallest above it (inf: none), and the exact scores of the
    cell in the window, ``score[start[w]:start[w + 1]]`` sorted ascending, with their sample indices.

    A window holds its whole bin, or only a part ``[lo, hi)`` of it (``lo``/``hi`` NaN: the bin's edge)
    where the bin held too many scores: then ``n_in_below``/``n_in_above`` count the cell's scores in
    the bin below and above the part (exact, from the further passes that chose it)."""

    cell: np.ndarray
    bin: np.ndarray
    below_max: np.ndarray
    above_min: np.ndarray
    start: np.ndarray
    score: np.ndarray
    probe: np.ndarray
    reference: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    n_in_below: np.ndarray | None = None
    n_in_above: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.cell = np.asarray(self.cell, np.int64)
        self.bin = np.asarray(self.bin, np.int64)
        self.start = np.asarray(self.start, np.int64)
        W = self.cell.size
        self.lo = np.full(W, np.nan) if self.lo is None else np.asarray(self.lo, np.float64)
        self.hi = np.full(W, np.nan) if self.hi is None else np.asarray(self.hi, np.float64)
        zeros = np.zeros(W, np.int64)
        self.n_in_below = zeros if self.n_in_below is None else np.asarray(self.n_in_below, np.int64)
        self.n_in_above = zeros.copy() if self.n_in_above is None else np.asarray(self.n_in_above, np.int64)
        key = self.cell * (1 << 32) + self.bin
        lo_key, hi_key = np.nan_to_num(self.lo, nan=-np.inf), np.nan_to_num(self.hi, nan=np.inf)
        # sorted by (cell, bin, lo, hi), no window twice
        order_ok = not W or (np.array_equal(np.lexsort((hi_key, lo_key, key)), np.arange(W)) and not np.any(
            (key[1:] == key[:-1]) & (lo_key[1:] == lo_key[:-1]) & (hi_key[1:] == hi_key[:-1])))
        if (self.bin.size != W or self.below_max.size != W or self.above_min.size != W
                or any(getattr(self, f).shape != (W,) for f in PART_FIELDS)
                or self.start.size != W + 1 or not order_ok or (W and self.start[0] != 0)
                or self.start[-1] != self.score.size or np.any(np.diff(self.start) < 0)
                or self.probe.size != self.score.size or self.reference.size != self.score.size
                or np.any(self.n_in_below < 0) or np.any(self.n_in_above < 0)):
            raise ValueError("inconsistent tail windows")
        self._key = key

    @property
    def refined(self) -> bool:
        """Whether some window holds only part of its bin."""
        return bool(np.any(~np.isnan(self.lo)) or np.any(~np.isnan(self.hi)))

    @property
    def n_scores(self) -> int:
        return int(self.score.size)

    def find_all(self, cell: int, b: int) -> range:
        """Indices of the windows of (cell, b)."""
        k = int(cell) * (1 << 32) + int(b)
        return range(int(np.searchsorted(self._key, k)), int(np.searchsorted(self._key, k, side="right")))

    def bounds(self, i: int, edges: np.ndarray) -> tuple[float, float]:
        """[lo, hi) of window i."""
        lo, hi = bin_bounds(edges, int(self.bin[i]))
        lo = lo if np.isnan(self.lo[i]) else float(self.lo[i])
        return lo, (hi if np.isnan(self.hi[i]) else float(self.hi[i]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in WINDOW_FIELDS + (PART_FIELDS if self.refined else ())}

    def check(self, dist: ScoreDistributions) -> None:
        """ValueError unless every window is one a capped tail can hold: a cell with a histogram row, a
        bin below its cutoff, the row's count of scores (with the counts below and above a part), each
        in the window and sorted, the neighbours outside it (a file's windows are checked on load)."""
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
        if (r < 0).any() or (self.bin >= cut[self.cell]).any() or not np.array_equal(
                lens + self.n_in_below + self.n_in_above, dist.hist_rows[np.maximum(r, 0), self.bin]):
            raise ValueError("tail windows disagree with the histogram")
        own = np.repeat(self.bin, lens)
        bounds = np.array([self.bounds(i, dist.edges) for i in range(W)]).reshape(W, 2)
        edge = np.array([bin_bounds(dist.edges, int(b)) for b in self.bin.tolist()]).reshape(W, 2)
        lo, hi = np.repeat(bounds[:, 0], lens), np.repeat(bounds[:, 1], lens)
        sorted_in = all(np.all(np.diff(self.score[a:z]) >= 0)
                        for a, z in zip(self.start[:-1], self.start[1:]))
        if (not np.array_equal(bin_index(self.score, dist.edges), own) or not sorted_in
                or np.any(self.score < lo) or np.any(self.score >= hi)
                or np.any(bounds[:, 0] < edge[:, 0]) or np.any(bounds[:, 1] > edge[:, 1])
                or np.any(bounds[:, 0] >= bounds[:, 1])
                or np.any((self.below_max >= bounds[:, 0]) & (self.below_max > -np.inf))
                or np.any((self.above_min < bounds[:, 1]) & (self.above_min < np.inf))):
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
        """Fill in (in place) the count >= ``threshold`` of each flat cell not yet ``exact`` that some
        window answers: one whose largest score below is under the threshold and whose smallest above
        is at least it. The count is the histogram's above the window's bin, the cell's count in the
        bin above the window, and the window's scores >= the threshold."""
        for c in np.flatnonzero(~exact).tolist():
            for i in range(int(np.searchsorted(self._key, c << 32)),
                           int(np.searchsorted(self._key, (c + 1) << 32))):
                if not (self.below_max[i] < threshold <= self.above_min[i]):
                    continue
                b = int(self.bin[i])
                sc = self.score[self.start[i]:self.start[i + 1]]
                above = int(dist.cell_at_least_edges(c, np.array([b + 1]))[0]) if b + 1 < dist.n_bins else 0
                counts[c] = above + int(self.n_in_above[i]) + sc.size - int(np.searchsorted(sc, threshold))
                exact[c] = True
                break

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TailWindows):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f), equal_nan=f in ("lo", "hi"))
                   for f in WINDOW_FIELDS + PART_FIELDS)

    __hash__ = None  # type: ignore[assignment]


def bin_bounds(edges: np.ndarray, b: int) -> tuple[float, float]:
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


def cell_part(dist: ScoreDistributions, cell: int, b: int, lo: float,
              hi: float) -> tuple[np.ndarray, float, float, int, int] | None:
    """The exact non-mated scores of flat ``cell`` in ``[lo, hi)``, a part of bin ``b``: the scores, the
    cell's largest score below ``lo`` and smallest from ``hi``, and its counts in the bin below ``lo``
    and from ``hi``; None when neither the tail, the exact cells nor a window holds that part."""
    blo, bhi = bin_bounds(dist.edges, b)
    if dist.hist_row_of_cell.reshape(-1)[cell] < 0:  # every score of the cell is kept
        scores, _, starts = dist._exact_scores()
        return _slice(scores[starts[cell]:starts[cell + 1]], lo, hi, -np.inf, blo, bhi)
    if b >= cutoff_bin(dist.edges, float(dist.tail_cutoff.reshape(-1)[cell])):
        scores, starts, _ = dist.tail_index()
        s = scores[starts[cell]:starts[cell + 1]]
        return _slice(s, lo, hi, float(dist.below_max.reshape(-1)[cell]), blo, bhi)
    w = dist.windows
    for i in (() if w is None else w.find_all(cell, b)):
        wlo, whi = w.bounds(i, dist.edges)
        if wlo <= lo and hi <= whi:
            sc = w.score[w.start[i]:w.start[i + 1]]
            part, below, above, n_lo, n_hi = _slice(sc, lo, hi, float(w.below_max[i]), wlo, whi)
            above = above if above < np.inf else float(w.above_min[i])
            return part, below, above, n_lo + int(w.n_in_below[i]), n_hi + int(w.n_in_above[i])
    return None


def _slice(s: np.ndarray, lo: float, hi: float, below: float, blo: float,
           bhi: float) -> tuple[np.ndarray, float, float, int, int]:
    """Of sorted ``s``: its values in [lo, hi), the largest below (``below`` if none in s), the smallest
    above, and the counts in [blo, lo) and [hi, bhi)."""
    def at(v: float) -> int:
        return 0 if v == -np.inf else (s.size if v == np.inf else int(np.searchsorted(s, v, side="left")))

    a, z = at(lo), at(hi)
    n_lo, n_hi = a - at(blo), at(bhi) - z
    return s[a:z], (float(s[a - 1]) if a > 0 else below), (float(s[z]) if z < s.size else np.inf), n_lo, n_hi


def part_view(dist: ScoreDistributions, cells: np.ndarray, b: int, lo: float,
              hi: float) -> ImpostorView | None:
    """The window view of the non-mated scores of a (G, G) mask's cells in ``[lo, hi)``, a part of bin
    ``b``: exact scores there, counts below and above from the histogram and the parts' in-bin counts,
    the largest below and the smallest above. None when some cell's scores there are not held."""
    from faceaudit.scores import ImpostorView

    hist = dist.cell_histogram(cells)
    counts = dist.nonmated_counts().reshape(-1)
    parts, below, above, n_lo, n_hi = [], -np.inf, np.inf, 0, 0
    for c in np.flatnonzero(np.asarray(cells, bool).reshape(-1) & (counts > 0)).tolist():
        got = cell_part(dist, c, b, lo, hi)
        if got is None:
            return None
        parts.append(got[0])
        below, above = max(below, got[1]), min(above, got[2])
        n_lo, n_hi = n_lo + got[3], n_hi + got[4]
    tail = np.sort(np.concatenate([np.empty(0), *parts]))
    n_below, n_above = int(hist[:b].sum()) + n_lo, int(hist[b + 1:].sum()) + n_hi
    if tail.size + n_lo + n_hi != int(hist[b]) or (n_below > 0) != (below > -np.inf) \
            or (n_above > 0) != (above < np.inf):
        raise AssertionError(f"the exact scores of bin {b} disagree with the histogram")
    return ImpostorView(tail=tail, n_below=n_below, below_max=below, n_above=n_above, above_min=above)


def _parts(dist: ScoreDistributions, cells: np.ndarray, b: int) -> list[tuple[float, float]]:
    """The parts of bin ``b`` a view of the cells may be read from: the whole bin, then each part a
    window of one of the cells holds (ascending)."""
    out = [bin_bounds(dist.edges, b)]
    w = dist.windows
    if w is not None and w.refined:
        held = {w.bounds(i, dist.edges) for c in np.flatnonzero(np.asarray(cells, bool).reshape(-1)).tolist()
                for i in w.find_all(c, b)}
        out += sorted(held - set(out))
    return out


def _tail_reaches(view: ImpostorView, threshold: float) -> bool:
    return not view.n_below or threshold > view.below_max


def _answers_count(view: ImpostorView, threshold: float) -> bool:
    """Whether the view's count of scores >= threshold is exact."""
    return _tail_reaches(view, threshold) and (not view.n_above or threshold <= view.above_min)


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
    tail's) when it reaches the (c + 1)-th largest score, else the window (or held part) of the bin
    holding that score."""
    if dist.windows is None or not view.n_below:
        return view
    c = allowed_false_matches(target, view.total)
    if c < view.tail.size:
        return view
    b = target_bin(dist.cell_histogram(cells), target)
    for lo, hi in ([] if b is None else _parts(dist, cells, b)):
        got = part_view(dist, cells, b, lo, hi)
        if got is not None and got.n_above <= c < got.n_above + got.tail.size:
            return got
    return view


def threshold_view(dist: ScoreDistributions, cells: np.ndarray, threshold: float,
                   view: ImpostorView) -> ImpostorView:
    """The view from which the count of the cells' non-mated scores >= ``threshold`` is exact: the
    tail's, the window of the threshold's bin, or a held part whose neighbours enclose the threshold."""
    if dist.windows is None or _tail_reaches(view, threshold) or threshold != threshold:
        return view
    from faceaudit.scores import bin_index

    b = int(bin_index(np.array([threshold], np.float64), dist.edges)[0])
    tried = [(b, lo, hi) for lo, hi in _parts(dist, cells, b)]
    w = dist.windows  # or a window of another bin whose neighbours enclose the threshold
    flat = np.asarray(cells, bool).reshape(-1)
    tried += sorted({(int(w.bin[i]), *w.bounds(i, dist.edges)) for i in range(w.cell.size)
                     if flat[w.cell[i]] and w.bin[i] != b and w.below_max[i] < threshold <= w.above_min[i]})
    for k, lo, hi in tried:
        got = part_view(dist, cells, k, lo, hi)
        if got is not None and _answers_count(got, threshold):
            return got
    return view


def eer_view(dist: ScoreDistributions, groups: list[int], view: ImpostorView) -> ImpostorView:
    """The tail's view when the EER search stays in it, else the window (or held part) of the crossing's
    bin from which the search is exact."""
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
    b = crossing_bin(dist.cell_histogram(cells), genuine, dist.edges)
    first = None
    for lo, hi in _parts(dist, cells, b):
        got = part_view(dist, cells, b, lo, hi)
        if got is None:
            continue
        first = got if first is None else first
        try:
            eer(got, genuine)
            return got
        except NotExactError:
            continue
    return view if first is None else first


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
