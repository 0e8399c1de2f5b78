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
from faceaudit.scores import ImpostorView, SampleIndex, ScoreDistributions

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
    genuine = dist.genuine_scores(groups)
    Nn, Np = int(hist.sum()), int(genuine.size)
    B = hist.size
    from_top = np.cumsum(hist[::-1])[::-1]  # count >= edges[b], b < B
    f = from_top * Np - np.searchsorted(genuine, dist.edges[:-1], side="left") * Nn
    ok = np.flatnonzero(f >= 0)
    b = int(ok[-1]) if ok.size else 0
    return Window(cells=cells.reshape(-1).copy(), lo_bin=b, hi_bin=min(b + WINDOW_BINS, B))


class WindowCollector:
    """One read of the comparisons: per window, the exact non-mated scores inside it, the count and
    the maximum below, the count and the minimum above (the rules of DistributionBuilder.add for which
    rows are non-mated comparisons)."""

    def __init__(self, samples: SampleIndex, edges: np.ndarray, windows: dict[tuple, Window]) -> None:
        self.samples, self.windows = samples, windows
        self.bounds = {k: w.bounds(edges) for k, w in windows.items()}
        self.inside: dict[tuple, list[np.ndarray]] = {k: [] for k in windows}
        self.below = {k: [0, -np.inf] for k in windows}
        self.above = {k: [0, np.inf] for k in windows}

    def add(self, probe: np.ndarray, reference: np.ndarray, score: np.ndarray) -> None:
        probe = np.asarray(probe, dtype=np.int64)
        reference = np.asarray(reference, dtype=np.int64)
        score = np.asarray(score, dtype=np.float64)
        subj, grp = self.samples.subject_of_sample, self.samples.group_of_sample
        ok = np.isfinite(score) & (probe != reference) & (subj[probe] != subj[reference])
        cell = grp[probe[ok]] * self.samples.n_groups + grp[reference[ok]]
        s = score[ok]
        for key, w in self.windows.items():
            x = s[w.cells[cell]]
            lo, hi = self.bounds[key]
            low, high = x < lo, x >= hi
            if low.any():
                self.below[key][0] += int(low.sum())
                self.below[key][1] = max(self.below[key][1], float(x[low].max()))
            if high.any():
                self.above[key][0] += int(high.sum())
                self.above[key][1] = min(self.above[key][1], float(x[high].min()))
            self.inside[key].append(x[~(low | high)])

    def views(self) -> dict[tuple, ImpostorView]:
        return {
            k: ImpostorView(tail=np.sort(np.concatenate([np.empty(0), *parts])), n_below=self.below[k][0],
                            below_max=self.below[k][1], n_above=self.above[k][0],
                            above_min=self.above[k][1])
            for k, parts in self.inside.items()
        }


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
            collector = WindowCollector(dist.samples, dist.edges, {k: crossing_window(dist, g)
                                                                   for k, g in pending.items()})
            for chunk in read():
                collector.add(*chunk)
        views = collector.views()
        windows, retry = collector.windows, {}
        for key in list(pending):
            view = views[key]
            if view.total != int(dist.nonmated_counts()[dist.cell_mask(pending[key], pending[key])].sum()):
                raise InputError("the comparisons changed between the reads of the score source")
            try:
                eer(view, dist.genuine_scores(pending[key]))
                out[key] = view
                del pending[key]
            except WindowTooNarrow as e:
                windows[key].widen(e.direction, B)
                retry[key] = windows[key]
        collector = WindowCollector(dist.samples, dist.edges, retry) if retry else None
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
