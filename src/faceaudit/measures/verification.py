"""1:1 verification measures, exact for the scores seen.

Conventions (docs/design.md), the biometric vocabulary of ISO/IEC 19795-1 and bob.measure:

* scores are similarities; a comparison is a match when ``score >= threshold``;
* ``FMR(t)`` = share of non-mated comparisons with score >= t (bob.measure's FAR);
* ``FNMR(t)`` = share of mated comparisons with score < t (bob.measure's FRR).

Every function takes the non-mated scores as an :class:`~faceaudit.scores.ImpostorView` (an exact
sorted tail, plus the count and maximum of the scores below it) and the mated scores sorted ascending.
Counts are integers; rates are derived from them only at the edge, so nothing is lost to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from faceaudit.errors import EmptyError, InputError, NotExactError
from faceaudit.scores import ImpostorView

__all__ = [
    "Convention",
    "OperatingPoint",
    "EERResult",
    "count_nonmated_at_least",
    "count_mated_below",
    "fmr_threshold",
    "eer",
    "det_curve",
    "det_stream",
    "DET_CHUNK",
    "decimate_curve",
    "global_fmr_thresholds",
]

Convention = Literal["highest", "lowest"]

#: the threshold conventions (their meaning in words: report.document.CONVENTION_MEANINGS)
CONVENTIONS: tuple[str, ...] = ("highest", "lowest")


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold with its exact error counts."""

    threshold: float
    false_matches: int
    nonmated: int
    false_non_matches: int
    mated: int

    @property
    def fmr(self) -> float:
        return self.false_matches / self.nonmated if self.nonmated else float("nan")

    @property
    def fnmr(self) -> float:
        return self.false_non_matches / self.mated if self.mated else float("nan")


@dataclass(frozen=True)
class EERResult:
    """The equal error rate point: ``eer = (FMR + FNMR) / 2`` at ``point.threshold``."""

    point: OperatingPoint

    @property
    def threshold(self) -> float:
        return self.point.threshold

    @property
    def eer(self) -> float:
        return (self.point.fmr + self.point.fnmr) / 2.0


def _require(view: ImpostorView | None, genuine: np.ndarray | None) -> None:
    if view is not None and view.total == 0:
        raise EmptyError("no non-mated comparisons: FMR is undefined")
    if genuine is not None and genuine.size == 0:
        raise EmptyError("no mated comparisons: FNMR is undefined")


class WindowTooNarrow(NotExactError):
    """The EER search of a window view needs a score outside the window: widen it ``direction``
    ("up" or "down") and search again."""

    def __init__(self, message: str, direction: str) -> None:
        super().__init__(message)
        self.direction = direction


def count_nonmated_at_least(view: ImpostorView, threshold: float) -> int:
    """Exact number of non-mated scores >= threshold; NotExactError if below the exact tail (or, for a
    window view, above the window's exact scores)."""
    if view.n_below and not threshold > view.below_max:
        raise NotExactError(
            f"threshold {threshold!r} lies below the exact tail (largest score not kept: "
            f"{view.below_max!r}); rebuild with a lower tail cutoff"
        )
    if view.n_above and threshold > view.above_min:
        raise WindowTooNarrow(f"threshold {threshold!r} lies above the exact window", "up")
    return int(view.n_above + view.tail.size - np.searchsorted(view.tail, threshold, side="left"))


def count_mated_below(genuine: np.ndarray, threshold: float) -> int:
    return int(np.searchsorted(genuine, threshold, side="left"))


def operating_point(view: ImpostorView, genuine: np.ndarray, threshold: float) -> OperatingPoint:
    """Exact (FMR, FNMR) counts at a threshold (bob.measure's ``farfrr``)."""
    if threshold != threshold:
        raise InputError("threshold is NaN")
    return OperatingPoint(
        threshold=float(threshold),
        false_matches=count_nonmated_at_least(view, threshold),
        nonmated=view.total,
        false_non_matches=count_mated_below(genuine, threshold),
        mated=int(genuine.size),
    )


def allowed_false_matches(target: float, total: int) -> int:
    """Largest count c with c / total <= target, compared as bob.measure compares (float division)."""
    c = int(np.floor(target * total))
    c = min(max(c, 0), total)
    while c < total and (c + 1) / total <= target:
        c += 1
    while c > 0 and c / total > target:
        c -= 1
    return c


def fmr_threshold(
    view: ImpostorView,
    target: float,
    genuine: np.ndarray | None = None,
    convention: Convention = "highest",
) -> float:
    """Threshold whose FMR is the largest achievable FMR <= ``target``.

    Several thresholds achieve that FMR: every t in ``(v_prev, s*]`` where ``s*`` is the lowest
    non-mated score value whose count of scores >= it stays within the target, and ``v_prev`` the next
    lower non-mated value. ``"highest"`` returns ``s*`` (bob.measure ``far_threshold``);
    ``"lowest"`` the smallest observed score (mated or not) in that interval (scikit-learn's
    ``roc_curve`` thresholds, pyeer), which needs ``genuine``.

    When no threshold admits a single false match within the target, the ``"highest"`` convention
    returns the next float above the largest non-mated score (as bob.measure does); for a target
    >= 1 - eps it returns the next float below the smallest score, as bob.measure does.
    """
    if not (0.0 <= target <= 1.0) or target != target:
        raise InputError(f"target FMR must lie in [0, 1], got {target!r}")
    if convention not in CONVENTIONS:
        raise InputError(f"unknown threshold convention {convention!r}; use 'highest' or 'lowest'")
    _require(view, None)
    if convention == "lowest" and genuine is None:
        raise InputError("the 'lowest' convention needs the mated scores")
    total = view.total
    tail = view.tail
    if target >= 1.0 - np.finfo(np.float64).eps:
        if view.n_below or view.n_above:
            raise NotExactError("a target FMR of 1 needs the smallest non-mated score, which is not kept")
        lowest = tail[0]
        if convention == "highest":
            return float(np.nextafter(lowest, -np.inf))
        candidates = [lowest] if genuine is None or genuine.size == 0 else [lowest, genuine[0]]
        return float(min(candidates))
    # in a window view (n_above > 0) the n_above largest scores are known by count and minimum only
    c = allowed_false_matches(target, total) - view.n_above
    if c < 0:
        raise WindowTooNarrow(f"the threshold for FMR {target!r} lies above the exact window", "up")
    # s* is the (c+1)-th largest score's successor among distinct values: the smallest value v with
    # count(>= v) <= c. The (c+1)-th largest score x has count(>= x) > c, so s* is the next value above x.
    if c >= tail.size:
        if view.n_below:
            raise NotExactError(
                f"the threshold for FMR {target!r} lies below the exact tail ({tail.size} of {total} "
                "non-mated scores kept); rebuild with a lower tail cutoff"
            )
        x = -np.inf  # every score may be a false match (only reachable with c == total)
    else:
        x = tail[tail.size - 1 - c]
    pos = int(np.searchsorted(tail, x, side="right"))
    if pos >= tail.size and view.n_above:
        s_star, on_score = float(view.above_min), True  # the next value is the window's smallest above
    elif pos >= tail.size:
        s_star = float(np.nextafter(tail[-1], np.inf))  # not one false match fits in the target
        on_score = False
    else:
        s_star = float(tail[pos])
        on_score = True
    if convention == "highest":
        return s_star
    # lowest: the smallest observed score in (x, s*]; x is the next lower non-mated value
    best = s_star if on_score else np.inf
    g_pos = int(np.searchsorted(genuine, x, side="right"))
    if g_pos < genuine.size and (genuine[g_pos] <= s_star or not on_score):
        best = min(best, float(genuine[g_pos]))
    if best == np.inf:  # no observed score above the largest non-mated one
        best = s_star
    return float(best)


def eer(view: ImpostorView, genuine: np.ndarray) -> EERResult:
    """Equal error rate: the threshold where FMR and FNMR are closest, and ``(FMR + FNMR) / 2`` there.

    Candidate thresholds are those of bob.measure's ``eer_threshold`` (the smallest score, then the
    midpoint between each pair of consecutive distinct scores, mated and non-mated pooled, until
    one of the two sets is exhausted). The criterion ``|FMR - FNMR|`` is compared in exact integer
    arithmetic; of two equally close candidates the higher threshold wins (bob.measure's ``<=``).
    bob.measure accumulates FMR by repeated float subtraction and can therefore break an exact tie
    the other way; faceaudit does not.

    With an inexact bulk (``view.n_below > 0``) the answer is exact only when FMR >= FNMR at the
    lowest candidate above the bulk; otherwise NotExactError is raised.
    """
    _require(view, genuine)
    search = _EerSearch(view, genuine)
    best_t, best_d, u_a = search.first_candidate()
    u_b = search.after(u_a) if u_a is not None else float(min(search.nm_min, genuine[0]))
    if u_b is not None and (not search.pseudo or u_b >= view.below_max):
        t_b = search.midpoint(u_b)
        if t_b is not None:
            d_b = abs(search.D(u_b))
            final = u_b == search.stop
            if d_b < best_d or (d_b == best_d and not final):
                best_t, best_d = t_b, d_b
    return EERResult(point=operating_point(view, genuine, best_t))


class _EerSearch:
    """The state of :func:`eer`'s search over bob.measure's candidates, in exact integers.

    The bulk below an inexact tail stands as one score at ``below_max`` (``pseudo``); in a window view the
    ``n_above`` scores left out above the window stand as one, at ``above_min``.
    """

    def __init__(self, view: ImpostorView, genuine: np.ndarray) -> None:
        self.view, self.tail, self.pos = view, view.tail, genuine
        self.Nn, self.Np = view.total, int(genuine.size)
        self.pseudo = 1 if view.n_below else 0
        self.above, self.amin = view.n_above, view.above_min
        self.n_neg = self.tail.size + self.pseudo + (1 if self.above else 0)
        # bob's loop stops after the value where one set runs out: midpoints exist up to that value,
        # excluding the largest value overall; the one at that value is compared strictly. With scores
        # left out above a window, their maximum is unknown but >= above_min, which stands for it (only
        # values below above_min are ever compared with it).
        tail = self.tail
        nm_top = self.amin if self.above else (float(tail[-1]) if tail.size else view.below_max)
        self.stop = min(nm_top, float(genuine[-1]))
        self.nm_min = float(tail[0]) if tail.size else self.amin  # used only without a bulk below

    def neg_at(self, i: int) -> float:
        if self.pseudo and i == 0:
            return self.view.below_max
        return self.amin if (self.above and i == self.n_neg - 1) else float(self.tail[i - self.pseudo])

    def D(self, u: float) -> int:
        """(FMR - FNMR) * Nn * Np just above u: non-mated > u against mated <= u, exact integers."""
        mated_le = int(np.searchsorted(self.pos, u, side="right"))
        if self.above and u >= self.amin:
            # at most n_above - 1 scores above u (above_min is not): only a certain negative sign is usable
            bound = (self.above - 1) * self.Np - mated_le * self.Nn
            if bound < 0:
                return bound
            raise WindowTooNarrow("the EER crossing may lie above the exact window", "up")
        n_over = (
            self.above + self.tail.size
            - int(np.searchsorted(self.tail, u, side="right"))
            + (1 if self.pseudo and self.view.below_max > u else 0)
        )
        return n_over * self.Np - mated_le * self.Nn

    def last_nonnegative(self, n: int, at) -> int:
        lo, hi = -1, n - 1  # D(at(i)) >= 0 holds on a prefix of i (D never increases with u)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.D(at(mid)) >= 0:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def after(self, u: float) -> float | None:
        """The next observed value above u, mated or not."""
        if self.above and u >= self.amin:
            raise WindowTooNarrow("the EER search needs a score above the exact window", "up")
        k = int(np.searchsorted(self.tail, u, side="right"))
        m = int(np.searchsorted(self.pos, u, side="right"))
        nxt = [float(a[x]) for a, x in ((self.tail, k), (self.pos, m)) if x < a.size]
        if self.pseudo and self.view.below_max > u:
            nxt.append(self.view.below_max)
        if self.above:
            nxt.append(self.amin)
        return min(nxt) if nxt else None

    def midpoint(self, u: float) -> float | None:
        nxt = self.after(u)
        return None if (nxt is None or u > self.stop) else (u + nxt) / 2.0

    def first_candidate(self) -> tuple[float, int, float | None]:
        """The last candidate where FMR >= FNMR: its threshold, |D| there, and the value u_a it follows."""
        i = self.last_nonnegative(self.n_neg, self.neg_at)
        j = self.last_nonnegative(self.Np, lambda k: float(self.pos[k]))
        # only candidates that exist: neg_at(-1) would index past a tail of fewer than two scores
        found = ([self.neg_at(i)] if i >= 0 else []) + ([float(self.pos[j])] if j >= 0 else [])
        u_a = max(found, default=None)
        if u_a is None or (self.pseudo and u_a < self.view.below_max):
            if self.pseudo:
                raise WindowTooNarrow("the EER lies below the exact tail; rebuild with a lower tail cutoff",
                                      "down")
            # bob's first candidate: the smallest score (FMR 1, FNMR 0)
            return float(min(self.nm_min, self.pos[0])), self.Nn * self.Np, None
        return self.midpoint(u_a), abs(self.D(u_a)), u_a


def det_curve(
    view: ImpostorView, genuine: np.ndarray, max_points: int | None = None
) -> dict[str, np.ndarray]:
    """Every distinct operating point of the exact region, lowest threshold first.

    Thresholds are each distinct observed score above the bulk (plus +inf, where nothing matches).
    With ``max_points``, only about that many of them: observed scores at ranks spread
    geometrically from both ends of each score set (so both rates are resolved on log axes), each an
    exact operating point, chosen without materialising the full curve. Returns integer counts:
    ``false_matches``, ``false_non_matches`` and the totals.
    """
    _require(view, genuine)
    _no_window(view)
    if max_points is None:
        values = np.unique(np.concatenate([view.tail, genuine]))
    else:
        per_side = max(2, max_points // 4)
        picks = []
        for arr in (view.tail, genuine):
            if arr.size:
                ranks = np.unique(np.geomspace(1, arr.size, per_side).astype(np.int64) - 1)
                picks += [arr[ranks], arr[arr.size - 1 - ranks]]
        values = np.unique(np.concatenate(picks))
    if view.n_below:
        values = values[values > view.below_max]
    thresholds = np.concatenate([values, [np.inf]])
    fm = view.tail.size - np.searchsorted(view.tail, thresholds, side="left")
    fnm = np.searchsorted(genuine, thresholds, side="left")
    return {
        "threshold": thresholds,
        "false_matches": fm.astype(np.int64),
        "false_non_matches": fnm.astype(np.int64),
        "nonmated": np.int64(view.total),
        "mated": np.int64(genuine.size),
    }


#: operating points per chunk of :func:`det_stream` (a Parquet row group of ``--det-out``)
DET_CHUNK = 1 << 16


def _no_window(view: ImpostorView) -> None:
    """A window view leaves out scores above it: no count is exact there, nor the curve's top end."""
    if view.n_above:
        raise NotExactError("a DET curve needs the exact tail up to the top score, not an EER window")


def det_stream(
    view: ImpostorView,
    genuine: np.ndarray,
    chunk: int = DET_CHUNK,
    bulk: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """The full DET curve in chunks of at most ``chunk`` points, lowest threshold first, holding one chunk.

    First the ``bulk`` points, if given: ``(thresholds, false_matches)`` at or below the exact tail (the
    histogram's inner bin edges, whose counts only the histogram knows), with ``exact`` False; then
    exactly the points of ``det_curve(view, genuine)`` (every distinct observed score above the bulk,
    then +inf), ``exact`` True. Each chunk has ``threshold``, ``false_matches``,
    ``false_non_matches``, ``exact`` and the totals ``nonmated``/``mated``; concatenated, the chunks
    equal :func:`det_curve`'s arrays. Memory: one chunk of each array, whatever the number of points.
    """
    _require(view, genuine)
    _no_window(view)
    if int(chunk) < 2:
        raise InputError(f"a DET chunk holds at least 2 points, got {chunk!r}")
    chunk = int(chunk)
    if bulk is not None:
        edges, fm = (np.asarray(a) for a in bulk)
        if edges.shape != fm.shape or (edges.size and not (view.n_below and edges[-1] <= view.below_max)):
            raise InputError("bulk points are (thresholds, counts) of one length, at or below the exact tail")
        for s in range(0, edges.size, chunk):
            yield _det_chunk(view, genuine, edges[s:s + chunk], fm[s:s + chunk], exact=False)
    for values in _distinct_blocks(view, genuine, chunk):
        yield _det_chunk(view, genuine, values, None, exact=True)


def _distinct_blocks(view: ImpostorView, genuine: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """The distinct observed scores above the bulk in ascending blocks of at most ``chunk``, then +inf (as
    :func:`det_curve` lists them), merging the two sorted arrays a chunk from each at a time. Without ties
    every block but the last is full (a file written block by block has as few row groups as it can)."""
    tail = view.tail
    start = view.below_max if view.n_below else -np.inf
    i = int(np.searchsorted(tail, start, side="right"))
    k = int(np.searchsorted(genuine, start, side="right"))
    last = np.empty(0)
    while i < tail.size or k < genuine.size:
        tb, gb = tail[i:i + chunk], genuine[k:k + chunk]
        # every value up to the smaller of the two blocks' last values is in one of the blocks (copies of
        # that value past a block's end add no new value), so the block's distinct values are complete; a
        # block that reaches its array's end bounds nothing
        hi = min(tb[-1] if i + chunk < tail.size else np.inf, gb[-1] if k + chunk < genuine.size else np.inf)
        values = np.union1d(tb[: np.searchsorted(tb, hi, side="right")],
                            gb[: np.searchsorted(gb, hi, side="right")])[:chunk]
        i = int(np.searchsorted(tail, values[-1], side="right"))
        k = int(np.searchsorted(genuine, values[-1], side="right"))
        if last.size:
            yield last
        last = values
    if last.size < chunk:
        yield np.concatenate([last, [np.inf]])
    else:
        yield last
        yield np.array([np.inf])


def _det_chunk(
    view: ImpostorView, genuine: np.ndarray, thresholds: np.ndarray, fm: np.ndarray | None, exact: bool
) -> dict[str, np.ndarray]:
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if fm is None:  # a threshold above the bulk: the count is exact from the tail
        fm = view.tail.size - np.searchsorted(view.tail, thresholds, side="left")
    return {
        "threshold": thresholds,
        "false_matches": np.asarray(fm).astype(np.int64, copy=False),  # no copy of an int64 array
        "false_non_matches": np.searchsorted(genuine, thresholds, side="left").astype(np.int64, copy=False),
        "exact": np.full(thresholds.size, exact),
        "nonmated": np.int64(view.total),
        "mated": np.int64(genuine.size),
    }


def decimate_curve(fmr: np.ndarray, fnmr: np.ndarray, max_points: int = 1000) -> np.ndarray:
    """Indices of a subset of curve points for plotting, spread evenly along the DET curve.

    Exact decimation: the kept points are real operating points (nothing is interpolated); the
    first and last are always kept. Distance is measured on the DET axes (probit of each rate,
    clipped at 1e-12), the scale on which the curve is read.
    """
    from scipy.special import ndtri

    n = fmr.size
    if n <= max_points:
        return np.arange(n)
    x = ndtri(np.clip(fmr, 1e-12, 1 - 1e-12))
    y = ndtri(np.clip(fnmr, 1e-12, 1 - 1e-12))
    step = np.maximum(np.abs(np.diff(x)), np.abs(np.diff(y)))
    arc = np.concatenate([[0.0], np.cumsum(step)])
    marks = np.linspace(0.0, arc[-1], max_points)
    keep = np.unique(np.concatenate([[0, n - 1], np.searchsorted(arc, marks, side="left").clip(0, n - 1)]))
    return keep


def global_fmr_thresholds(dist, targets, convention: str = "highest") -> list[float]:
    """The global threshold at each target FMR, read as the audit reads it: ``fmr_threshold`` on the
    exact non-mated tail of the whole set (``dist.impostor_view()``), with its mated scores; below a
    capped tail, on the exact scores of the answer's bin (:func:`faceaudit.tail_windows.target_view`)."""
    view, genuine = dist.impostor_view(), dist.genuine_scores()
    windows, cells = getattr(dist, "windows", None), dist.cell_mask()
    return [float(fmr_threshold(view if windows is None else windows.target_view(dist, cells, float(t), view),
                                float(t), genuine, convention))
            for t in targets]
