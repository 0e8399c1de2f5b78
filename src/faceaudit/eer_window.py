"""Exact EERs of a streamed score source without a contiguous tail down to them ("partition inside
the bin", docs/design.md, "Exactness").

From the histogram, ``F(e) = count(non-mated >= e) * Np - count(mated < e) * Nn`` is exact at every bin
edge ``e`` and never increases with ``e``. bob.measure's EER candidates around the crossing are the last
observed value ``u_a`` with FMR >= FNMR just above it and the next value ``u_b``; with ``e_b`` the last
edge with ``F(e_b) >= 0``, both lie in bin ``b`` or ``u_a`` is the largest value below it (see
``WINDOW_BINS``). The same read as the tail's keeps, per subset, the exact
non-mated scores of that window, their counts below and above it, the largest score below and the
smallest above (:class:`~faceaudit.scores.ImpostorView` with ``n_above``); :func:`eer` on that view
is the same computation as on the full arrays, and raises :class:`WindowTooNarrow` when it needs a
value outside, whereupon the window is widened (doubled) on that side and read again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from faceaudit.errors import InputError
from faceaudit.measures.verification import WindowTooNarrow, eer
from faceaudit.scores import ImpostorView, ScoreDistributions

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Window:
    """Bins ``[lo_bin, hi_bin)`` of one subset's cells (flat (G*G,) mask); lo_bin 0 / hi_bin B: open."""

    cells: np.ndarray
    lo_bin: int
    hi_bin: int

    def bounds(self, edges: np.ndarray) -> tuple[float, float]:
        B = edges.size - 1
        lo = -np.inf if self.lo_bin <= 0 else float(edges[self.lo_bin])
        hi = np.inf if self.hi_bin >= B else float(edges[self.hi_bin])
        return lo, hi

    def widen(self, direction: str, n_bins: int) -> None:
        width = max(self.hi_bin - self.lo_bin, 1)
        if direction == "up":
            self.hi_bin = min(self.hi_bin + width, n_bins)
        else:
            self.lo_bin = max(self.lo_bin - width, 0)


#: bins per first window. One always suffices (docs/design.md, "Exactness"): with b the last bin whose
#: lower edge has F >= 0, every observed value v >= e_{b+1} has D(v) <= F(e_{b+1}) < 0, so u_a < e_{b+1};
#: and some observed value lies in (u_a, e_{b+1}) (else F(e_{b+1}) = D(u_a) >= 0), so u_b < e_{b+1} too:
#: every count and every next value the search takes is exact, or above the window and certainly
#: negative. The widening reads are a safety net (the tests exercise them with misplaced windows).
WINDOW_BINS = 1


def crossing_window(dist: ScoreDistributions, groups: list[int]) -> Window:
    """``WINDOW_BINS`` bins from the last edge with F(e) >= 0 (exact from the histogram)."""
    cells = dist.cell_mask(groups, groups)
    hist = dist.cell_histogram(cells)
    b = crossing_bin(hist, dist.genuine_scores(groups), dist.edges)
    return Window(cells=cells.reshape(-1).copy(), lo_bin=b, hi_bin=min(b + WINDOW_BINS, hist.size))


def crossing_bin(hist: np.ndarray, genuine: np.ndarray, edges: np.ndarray) -> int:
    """The last bin b whose lower edge has FMR >= FNMR, compared exactly (counts cross-multiplied, no
    division): the bin where the EER crossing starts (0 when none does). ``genuine`` sorted."""
    Nn, Np = int(hist.sum()), int(genuine.size)
    from_top = np.cumsum(hist[::-1])[::-1]  # count >= edges[b], b < B
    f = from_top * Np - np.searchsorted(genuine, edges[:-1], side="left") * Nn
    ok = np.flatnonzero(f >= 0)
    return int(ok[-1]) if ok.size else 0


def nonmated_rows(samples, probe: np.ndarray, reference: np.ndarray, score: np.ndarray, low: float = -np.inf,
                  high: float = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of one chunk of a score source, the non-mated comparisons with a finite score in [low, high) (the
    rule of DistributionBuilder.add: two different samples of different subjects): scores, flat cells
    (probe group * G + reference group), probe and reference sample indices."""
    score = np.asarray(score, dtype=np.float64)
    near = (score >= low) & (score < high) & np.isfinite(score)
    probe = np.asarray(probe, dtype=np.int64)[near]
    reference = np.asarray(reference, dtype=np.int64)[near]
    subj, grp = samples.subject_of_sample, samples.group_of_sample
    ok = (probe != reference) & (subj[probe] != subj[reference])
    probe, reference = probe[ok], reference[ok]
    return score[near][ok], grp[probe] * samples.n_groups + grp[reference], probe, reference


class WindowCollector:
    """One read of the comparisons: per window, the exact non-mated scores inside it, the largest below
    and the smallest above (the rules of DistributionBuilder.add for which rows are non-mated
    comparisons). The counts below and above are the histogram's (exact: the bounds are bin edges), and
    only scores in the bins from the last non-empty one below the window to the first non-empty one
    above are looked at: a chunk is cut to that score range before any per-row lookup."""

    def __init__(self, dist: ScoreDistributions, windows: dict[tuple, Window]) -> None:
        self.samples, self.windows = dist.samples, windows
        edges, B = dist.edges, dist.n_bins
        self.bounds, self.reach, self.counts = {}, {}, {}
        for key, w in windows.items():
            hist = dist.cell_histogram(w.cells.reshape(dist.n_groups, -1))
            nonempty = np.flatnonzero(hist)
            below, above = nonempty[nonempty < w.lo_bin], nonempty[nonempty >= w.hi_bin]
            lo_reach = -np.inf if below.size == 0 or below[-1] == 0 else float(edges[below[-1]])
            hi_reach = np.inf if above.size == 0 or above[0] + 1 >= B else float(edges[above[0] + 1])
            self.bounds[key] = w.bounds(edges)
            self.reach[key] = (lo_reach, hi_reach)
            self.counts[key] = (int(hist[: w.lo_bin].sum()), int(hist[w.lo_bin:w.hi_bin].sum()),
                                int(hist[w.hi_bin:].sum()))
        self.low = min((r[0] for r in self.reach.values()), default=np.inf)
        self.high = max((r[1] for r in self.reach.values()), default=-np.inf)
        self.inside: dict[tuple, list[np.ndarray]] = {k: [] for k in windows}
        self.below_max = dict.fromkeys(windows, -np.inf)
        self.above_min = dict.fromkeys(windows, np.inf)

    def add(self, probe: np.ndarray, reference: np.ndarray, score: np.ndarray) -> None:
        s, cell, _, _ = nonmated_rows(self.samples, probe, reference, score, self.low, self.high)
        if not s.size:
            return
        for key, w in self.windows.items():
            x = s[w.cells[cell]]
            lo, hi = self.bounds[key]
            low, high = x < lo, x >= hi
            if low.any():
                self.below_max[key] = max(self.below_max[key], float(x[low].max()))
            if high.any():
                self.above_min[key] = min(self.above_min[key], float(x[high].min()))
            self.inside[key].append(x[~(low | high)])

    def views(self) -> dict[tuple, ImpostorView]:
        out = {}
        for key, parts in self.inside.items():
            n_below, n_inside, n_above = self.counts[key]
            tail = np.sort(np.concatenate([np.empty(0), *parts]))
            found_below, found_above = self.below_max[key] > -np.inf, self.above_min[key] < np.inf
            if tail.size != n_inside or found_below != (n_below > 0) or found_above != (n_above > 0):
                raise InputError("the comparisons changed between the reads of the score source")
            out[key] = ImpostorView(tail=tail, n_below=n_below, below_max=self.below_max[key],
                                    n_above=n_above, above_min=self.above_min[key])
        return out


def exact_eer_views(
    dist: ScoreDistributions,
    read: Callable[[], Iterator[Chunk]],
    subsets: dict[tuple, list[int]],
    first: WindowCollector | None = None,
) -> dict[tuple, ImpostorView]:
    """Per subset whose tail view cannot give the EER exactly, a window view that can (read again,
    widened, as often as needed: at worst the window is every score and the view is exact)."""
    B = dist.n_bins
    pending = {k: g for k, g in subsets.items() if _needs_window(dist, g)}
    out: dict[tuple, ImpostorView] = {}
    collector = first
    while pending:
        if collector is None:
            collector = WindowCollector(dist, {k: crossing_window(dist, g) for k, g in pending.items()})
            for chunk in read():
                collector.add(*chunk)
        views = collector.views()
        windows, retry = collector.windows, {}
        for key in list(pending):
            view = views[key]
            try:
                eer(view, dist.genuine_scores(pending[key]))
                out[key] = view
                del pending[key]
            except WindowTooNarrow as e:
                windows[key].widen(e.direction, B)
                retry[key] = windows[key]
        collector = WindowCollector(dist, retry) if retry else None
        if collector is not None:
            for chunk in read():
                collector.add(*chunk)
    return out


def _needs_window(dist: ScoreDistributions, groups: list[int]) -> bool:
    genuine = dist.genuine_scores(groups)
    view = dist.impostor_view(dist.cell_mask(groups, groups))
    if not (genuine.size and view.total):
        return False
    try:
        eer(view, genuine)
    except WindowTooNarrow:
        return True
    return False
