"""Building ScoreDistributions whose exact tail reaches every answer the audit will report.

A streamed source is read twice: the first pass histograms every non-mated score (and keeps the mated
ones); :func:`required_tail_cutoff` then finds, from the histogram alone, the lowest bin any target-FMR
threshold can fall in; the second pass keeps every non-mated score at or above that bin's lower edge,
and, per group, the exact scores of the bin where its EER falls (:mod:`faceaudit.eer_window`). Memory
is the histogram, that tail (rows x max target FMR) and one bin per group. ``from_arrays`` keeps its
contiguous tail down to the EER.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from faceaudit import partition
from faceaudit.eer_window import WindowCollector, crossing_bin, crossing_window, exact_eer_views
from faceaudit.errors import InputError
from faceaudit.groups import default_groupings, group_subsets  # re-exported: one groups module
from faceaudit.measures.verification import allowed_false_matches
from faceaudit.options import check_nonnegative_int
from faceaudit.partition import FileScanner, answers_below, capped_cutoffs, capture_windows, refine
from faceaudit.scores import (
    DistributionBuilder,
    SampleIndex,
    ScoreDistributions,
    bin_index,
    default_cell_limit,
    uniform_edges,
)

__all__ = ["required_tail_cutoff", "two_pass", "from_arrays", "group_subsets", "default_groupings"]

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]  # probe index, reference index, score


def required_tail_cutoff(
    dist: ScoreDistributions,
    fmr_targets: Iterable[float],
    subsets: Iterable[list[int]],
    *,
    with_eer: bool = True,
) -> np.ndarray:
    """Per cell (G, G), the highest tail cutoff under which every EER (``with_eer``) and every
    target-FMR threshold of every subset (a list of finest groups; its non-mated cells are those
    within the subset) is exact. A cell takes the lowest cutoff that any subset containing it needs."""
    edges = dist.edges
    targets = list(fmr_targets)
    G = dist.n_groups
    out = np.full((G, G), np.inf)
    for groups in subsets:
        cells = dist.cell_mask(groups, groups)
        cut = _subset_cutoff(dist, groups, cells, targets, edges, with_eer)
        out[cells] = np.minimum(out[cells], cut)
    return out


def _subset_cutoff(dist: ScoreDistributions, groups: list[int], cells: np.ndarray, targets: list[float],
                   edges: np.ndarray, with_eer: bool = True) -> float:
    hist = dist.cell_histogram(cells)
    total = int(hist.sum())
    if total == 0:
        return np.inf
    cutoff = np.inf
    from_top = np.cumsum(hist[::-1])[::-1]  # from_top[b] = count of scores in bins >= b
    for t in targets:
        c = allowed_false_matches(t, total)
        if c >= total:
            return -np.inf
        # the (c+1)-th largest score lies in the last bin b with from_top[b] >= c + 1
        b = int(np.flatnonzero(from_top >= c + 1)[-1])
        cutoff = min(cutoff, edges[b] if b > 0 else -np.inf)
    genuine = dist.genuine_scores(groups)
    if genuine.size and with_eer:
        b = crossing_bin(hist, genuine, edges)  # the EER's bin, the same rule as a score file's EER window
        cutoff = min(cutoff, edges[b] if b > 0 else -np.inf)
    return float(cutoff)


def two_pass(
    read: Callable[[], Iterator[Chunk]],
    samples: SampleIndex,
    edges: np.ndarray,
    fmr_targets: Iterable[float],
    subsets: Iterable[list[int]],
    *,
    design: str = "listed",
    track_subject_pairs: bool = True,
    meta: dict[str, Any] | None = None,
    progress: Callable[[str], Any] | None = None,
    cell_limit: int | None = None,
    max_tail: int | None = None,
) -> ScoreDistributions:
    """Read the comparisons twice, and again for an EER window that needs widening (``read()`` returns
    a fresh iterator of chunks each time). ``cell_limit``: as DistributionBuilder's. ``max_tail``: the
    most scores the exact tail may hold (None: no budget); past it, as compare's ``--max-tail``, the
    cutoffs are raised and every answer below them is read from its bin or a part of it, found by
    further reads (:mod:`faceaudit.partition`)."""
    fmr_targets, subsets = list(fmr_targets), list(subsets)
    if max_tail is not None:  # before any read: a bad budget is the caller's error, named
        max_tail = check_nonnegative_int("max_tail", max_tail)
    first = DistributionBuilder(samples, edges, tail_cutoff=np.inf, design=design, meta=meta,
                                track_subject_pairs=track_subject_pairs, cell_limit=cell_limit)
    for chunk in read():
        first.add(*chunk)
        if progress:
            progress("histogram")
    coarse = first.result()
    # the tail reaches the target-FMR thresholds only; each EER is read exactly inside its bins
    cutoff = required_tail_cutoff(coarse, fmr_targets, subsets, with_eer=False)
    cell_row = coarse.hist_row_of_cell.reshape(-1)
    capped = None if max_tail is None else capped_cutoffs(coarse.hist_rows, cell_row, cutoff, edges, max_tail)
    if capped is not None:
        cutoff = capped[0]
    keyed = {tuple(int(g) for g in groups): list(groups) for groups in subsets}
    windows = None if capped is not None else \
        WindowCollector(coarse, {k: crossing_window(coarse, g) for k, g in keyed.items()})
    # the second pass keeps the tail (and the exact cells' scores below it), no histogram rows
    second = DistributionBuilder(samples, edges, tail_cutoff=cutoff, keep_genuine=False,
                                 track_subject_pairs=False, histogram=False, cell_limit=coarse.cell_limit)
    for chunk in read():
        second.add(*chunk)
        if windows is not None:
            windows.add(*chunk)
        if progress:
            progress("tail")
    tail = second.result()
    if not np.array_equal(tail.hist_row_of_cell, coarse.hist_row_of_cell):
        raise InputError("the comparisons changed between the two reads of the score source")
    coarse.meta["tail_cutoff_rule"] = ("per cell: the lowest bin edge reached by any target-FMR threshold "
                                      "of a group containing the cell; each group's EER from the exact "
                                      "scores of the bins around its crossing (eer_window)")
    dist = dataclasses.replace(
        coarse,
        tail_cutoff=tail.tail_cutoff,
        tail_score=tail.tail_score,
        tail_probe=tail.tail_probe,
        tail_reference=tail.tail_reference,
        below_max=tail.below_max,
        bulk_score=tail.bulk_score,
        bulk_probe=tail.bulk_probe,
        bulk_reference=tail.bulk_reference,
    )
    if capped is not None:
        return _capped_answers(dist, coarse, read, capped, fmr_targets, subsets, max_tail, progress)
    dist.eer_views = exact_eer_views(dist, read, keyed, first=windows)
    if dist.eer_views:
        dist.meta["eer_windows"] = (
            f"{len(dist.eer_views)} group EER(s) lie below the exact tail and were read exactly from the "
            "histogram bin of their crossing; at those EER points the FMR has no subject-bootstrap interval "
            "(Clopper-Pearson only)")
    return dist


def _capped_answers(dist: ScoreDistributions, coarse: ScoreDistributions, read: Callable[[], Iterator[Chunk]],
                    capped: tuple, fmr_targets: list[float], subsets: list, max_tail: int,
                    progress: Callable[[str], Any] | None) -> ScoreDistributions:
    """The windows of every answer below a capped tail (each EER and target-FMR threshold of every
    subset), split inside their bins by further reads until they fit ``max_tail``, then read once more."""
    C = capped[0]
    cell_row = coarse.hist_row_of_cell.reshape(-1)
    answers = answers_below(coarse, coarse.hist_rows, cell_row, C, subsets, fmr_targets)
    src = FileScanner(_reporting(read, progress, "parts"), dist.samples, dist.edges, cell_row)
    n_split = refine(src, answers, max_tail)
    dist.windows = capture_windows(src, coarse.hist_rows, C, answers)
    dist.meta["tail_cutoff_rule"] = (
        "per cell: the lowest bin edge reached by any target-FMR threshold of a group containing the cell, "
        f"raised to the lowest common bin edge at which the tail holds at most max_tail = {max_tail} "
        "scores; every answer below it (each target-FMR threshold and EER of every group subset) read "
        "from the exact scores of its histogram bin, or of the part of it holding the answer")
    dist.meta["tail_windows"] = partition.windows_meta(max_tail, capped, dist.windows, partition={
        "sub_bins": partition.SUB_BINS, "split_reads": n_split, "answers": len(answers)})
    return dist


def _reporting(read: Callable[[], Iterator[Chunk]], progress: Callable[[str], Any] | None,
               step: str) -> Callable[[], Iterator[Chunk]]:
    """``read`` whose chunks report ``step`` to ``progress``."""
    def again() -> Iterator[Chunk]:
        for chunk in read():
            yield chunk
            if progress:
                progress(step)
    return again


def from_arrays(
    genuine: Any,
    impostor: Any,
    *,
    fmr_targets: Iterable[float] = (1e-3, 1e-4, 1e-5),
    bins: int = 1 << 16,
    chunk: int = 1 << 18,
) -> ScoreDistributions:
    """ScoreDistributions from two plain score arrays, with no sample or subject information.

    For measuring score arrays as bob.measure or scikit-learn do. The non-mated array is read three
    times in chunks (range, histogram, exact tail) and never copied whole: memory is the histogram
    plus the exact tail, which is allocated once at the size the histogram predicts. Every mated pair
    is attributed to one anonymous pair of samples and every non-mated pair to another, so
    subject-level statistics are unavailable. Non-finite scores are excluded and counted. At most
    ``bins // 4`` non-mated scores are kept whole, with no histogram row.
    """
    impostor = np.asarray(impostor, dtype=np.float64).ravel()
    genuine = np.asarray(genuine, dtype=np.float64).ravel()
    exclusions: Counter = Counter()
    finite_gen = np.isfinite(genuine)
    n_bad = int((~finite_gen).sum())
    genuine = np.sort(genuine[finite_gen])

    def parts() -> Iterator[np.ndarray]:
        for start in range(0, impostor.size, chunk):
            part = impostor[start : start + chunk]
            ok = np.isfinite(part)
            yield part if ok.all() else part[ok]

    lo, hi = np.inf, -np.inf
    for part in parts():
        if part.size:
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    edges = uniform_edges(lo, hi, bins) if np.isfinite(lo) else uniform_edges(0.0, 1.0, bins)
    hist = np.zeros(edges.size - 1, dtype=np.int64)
    for part in parts():
        hist += np.bincount(bin_index(part, edges), minlength=hist.size)
    n_finite_imp = int(hist.sum())
    n_bad += impostor.size - n_finite_imp
    if n_bad:
        exclusions["non-finite score (NaN or infinite)"] = n_bad
    G = 1
    exact = n_finite_imp <= default_cell_limit(edges.size - 1)  # few scores: keep them all, no row
    everything = np.sort(np.concatenate([np.empty(0), *parts()])) if exact else np.empty(0)
    coarse = ScoreDistributions(
        samples=ANONYMOUS_SAMPLES, edges=edges,
        hist_rows=np.empty((0, hist.size), np.int64) if exact else hist.reshape(1, -1),
        hist_row_of_cell=np.full((G, G), -1 if exact else 0),
        tail_cutoff=np.full((G, G), np.inf), tail_score=np.empty(0), tail_probe=np.empty(0, np.int64),
        tail_reference=np.empty(0, np.int64), below_max=np.full((G, G), -np.inf),
        genuine_score=genuine, genuine_probe=_constant(genuine.size, 0),
        genuine_reference=_constant(genuine.size, 1),
        bulk_score=everything, bulk_probe=_constant(everything.size, 0),
        bulk_reference=_constant(everything.size, 2),
        exclusions=exclusions, impostor_subject_pairs=None, design="listed",
        meta={"source": "score arrays"},
    )
    cutoff = float(required_tail_cutoff(coarse, fmr_targets, [[0]])[0, 0])
    coarse.meta["tail_cutoff_rule"] = "lowest bin edge reached by the EER or a target-FMR threshold"
    if exact:
        k = int(np.searchsorted(everything, cutoff, side="left"))
        tail, bulk = everything[k:], everything[:k]
        below_max = float(bulk[-1]) if bulk.size else -np.inf
    else:
        tail, below_max = _tail_of(parts, hist, edges, cutoff, n_finite_imp)
        bulk = np.empty(0)
    return dataclasses.replace(
        coarse,
        tail_cutoff=np.full((G, G), cutoff),
        tail_score=tail,
        # every non-mated pair is anonymous sample 0 against sample 2: zero-stride views, no memory
        tail_probe=_constant(tail.size, 0),
        tail_reference=_constant(tail.size, 2),
        below_max=np.full((G, G), below_max),
        bulk_score=bulk, bulk_probe=_constant(bulk.size, 0), bulk_reference=_constant(bulk.size, 2),
    )


def _tail_of(parts: Callable[[], Iterator[np.ndarray]], hist: np.ndarray, edges: np.ndarray, cutoff: float,
             n_finite: int) -> tuple[np.ndarray, float]:
    """The sorted scores >= cutoff (allocated once, at the size the histogram predicts) and the largest
    score below it."""
    # the cutoff is a bin edge (or -inf), so the histogram says exactly how many scores the tail holds
    first = 0 if not np.isfinite(cutoff) else int(np.searchsorted(edges, cutoff, side="left"))
    tail = np.empty(int(hist[first:].sum()) if cutoff > -np.inf else n_finite, dtype=np.float64)
    filled, below_max = 0, -np.inf
    for part in parts():
        keep = part >= cutoff
        k = int(keep.sum())
        tail[filled : filled + k] = part[keep]
        filled += k
        if k < part.size:
            below_max = max(below_max, float(part[~keep].max()))
    assert filled == tail.size, "histogram and tail disagree"  # bin_index's exact edge semantics
    tail.sort()
    return tail, below_max


def _constant(n: int, value: int) -> np.ndarray:
    """A read-only length-n int64 array of one value, in O(1) memory."""
    return np.broadcast_to(np.int64(value), (n,))


#: Three samples: 0 and 1 of one subject (mated), 2 of another (non-mated). For score arrays.
ANONYMOUS_SAMPLES = SampleIndex(
    sample_ids=np.array(["(anonymous)", "(anonymous mate)", "(anonymous other)"], dtype=object),
    subject_of_sample=np.array([0, 0, 1], dtype=np.intp),
    subject_ids=np.array(["(anonymous)", "(anonymous other)"], dtype=object),
    group_of_sample=np.array([0, 0, 0], dtype=np.intp),
    group_columns=(),
    group_labels=((),),
)
