"""Assembly: the chunks' partial results into one exact ScoreDistributions (and the probe summaries).

After the main pass ``T`` (each cell's tail cutoff) is computed from the exact histogram. Where
``T >= L`` (the cell's capture level) the cell's tail is its captured scores >= ``T`` and its
``below_max`` the largest captured score in ``[L, T)``; a cell with scores below ``T`` but none captured
there gets its ``below_max`` from an exact rescan of the blocks holding it. Cells whose estimate was too
high (``T < L``) get a second, capture-only pass at a level below ``T``, over the blocks holding them.
Either way the result is exact; the checks are not estimates.

Where the required tail holds more than ``run.max_tail`` scores, :func:`assemble_capped` takes over: capped
cutoffs and the windows of the answers below them (:mod:`faceaudit.compare.capped`), a capture-only pass
for the cells whose needed bins the main pass did not keep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from faceaudit import partition
from faceaudit.build import required_tail_cutoff
from faceaudit.compare.backends.base import Backend
from faceaudit.compare.capped import KeepRanges, build_windows, needed_ranges, score_bins
from faceaudit.compare.kernel import BlockPartial, BlockPlan
from faceaudit.compare.plan import GenuineSorted, Planner, make_chunks
from faceaudit.compare.probes import ProbeAccumulator
from faceaudit.compare.progress import Progress
from faceaudit.compare.summary import float_order
from faceaudit.partition import capped_cutoffs, edge_of, window_total
from faceaudit.scores import ScoreDistributions, bin_index
from faceaudit.tail_windows import TailWindows

__all__ = ["assemble", "lower_level", "check_pair_counts", "assemble_capped", "contiguous_level"]

#: chunk size of the second, capture-only pass
SECOND_PASS_CHUNK_PAIRS = 1 << 25


@dataclass
class Captures:
    """Captured non-mated pairs (i < j) in x units."""

    i: np.ndarray
    j: np.ndarray
    x: np.ndarray


def assemble(run: Planner, backend: Backend, parts: list[BlockPartial],
             probes: ProbeAccumulator, slots: np.ndarray | None = None) -> ScoreDistributions:
    """The distributions and probe summaries of a run from its chunks' partial results (in order), the
    running per-probe summaries, and ``slots``: the chunks' slot counts, already summed (the parts' own
    are then None)."""
    plan = run.plan
    total = BlockPartial.sum(parts, plan.n_slots, slots=slots, release=True)
    parts.clear()
    rows, whole = run.rows_of_slots(total.slots)
    check_pair_counts(run, total, int(rows.sum() + whole.sum()))
    total.slots = None
    with ThreadPoolExecutor(1) as pool:  # the per-probe summaries need none of the rest: alongside
        summary = pool.submit(probes.summary, run.samples.subject_of_sample, total.gen_i, total.gen_j,
                              total.gen_x, plan.scale)
        dist = assemble_tail(run, backend, total, rows, int(whole.sum()))
        dist.probe_summary = summary.result()
    return dist


def check_pair_counts(run: Planner, total: BlockPartial, n_hist: int) -> None:
    """Every pair once: visited pairs, histogram + mated, the excluded slot, every block once. ``n_hist``:
    the histogram's count (every row, the shared one of the cells kept whole included)."""
    n_gen = int(total.gen_x.size)
    tril = sum(min(run.block, run.n - bi * run.block) * (min(run.block, run.n - bi * run.block) + 1) // 2
               for bi, bj in run.blocks if bi == bj)
    if (total.pairs != run.total_pairs or n_hist + n_gen != run.total_pairs
            or n_gen != run.plan.mated_i.size or int(total.slots[0]) != n_gen + tril
            or len(set(total.blocks)) != len(run.blocks) or len(total.blocks) != len(run.blocks)):
        raise AssertionError(
            f"pair counts do not add up: visited {total.pairs}, histogram {n_hist} + mated {n_gen}, "
            f"expected n(n-1)/2 = {run.total_pairs}")


def assemble_tail(
    run: Planner, backend: Backend, total: BlockPartial, rows: np.ndarray, n_whole: int
) -> ScoreDistributions:
    """Genuine scores, per-cell cutoffs from the exact histogram, the tail and below_max of every cell.

    ``rows``: the histogram rows of the cells that have one; ``n_whole``: the pairs the cells kept whole
    counted in their shared row, checked against those captured."""
    samples, G, scale = run.samples, run.G, run.plan.scale
    gs, gp, gr = genuine_canonical(run, total)
    caps = Captures(total.cap_i, total.cap_j, total.cap_x)
    whole = _whole_cells(run, caps, n_whole)
    coarse = _coarse(run, rows, whole, gs, gp, gr)
    T = _cutoffs(run, coarse)
    capped = capped_cutoffs(rows, run.cell_row, T, run.edges, run.max_tail)
    if capped is not None:
        return assemble_capped(run, backend, caps, rows, coarse, capped)
    level = contiguous_level(run)
    passes = ["main"]
    fail = T < level
    if fail.any():
        caps = _second_pass(run, backend, rows, T, level, fail, caps)
        passes.append(f"capture below the required cutoff in {int(fail.sum())} cell(s), "
                      f"{len(run.blocks_holding(fail))} block(s)")
    g = samples.group_of_sample
    cell = g[caps.i] * G + g[caps.j]
    cs = caps.x.astype(np.float64)
    cs /= scale
    in_tail = cs >= T.reshape(-1)[cell]
    below = np.full(G * G, -np.inf)
    band = ~in_tail & (cs >= level.reshape(-1)[cell])
    np.maximum.at(below, cell[band], cs[band])
    del band
    n_tail_cell = np.bincount(cell[in_tail], minlength=G * G)
    counts = _cell_counts(run, rows, whole)
    missing = (counts - n_tail_cell > 0) & ~np.isfinite(below)
    if missing.any():
        # cells with scores below T but none captured in [level, T): their largest lies below level
        got = backend.cell_max_below(run.plan, run.blocks_holding(missing.reshape(G, G)),
                                     level.reshape(-1) * scale, missing)
        below[missing] = got[missing] / scale
        passes.append(f"rescan of {int(missing.sum())} cell(s) for the largest score below the tail")
    to_bulk = ~in_tail & (run.cell_row[cell] < 0)  # the cells kept whole keep their scores below T too
    bulk = _canonical_triple(cs[to_bulk], caps.i[to_bulk], caps.j[to_bulk])
    tail_score, tail_probe, tail_ref = _canonical_triple(cs[in_tail], caps.i[in_tail], caps.j[in_tail])
    del cs, cell, in_tail
    return ScoreDistributions(
        samples=samples, edges=run.edges, hist_rows=rows, hist_row_of_cell=run.cell_row.reshape(G, G),
        tail_cutoff=T, tail_score=tail_score, tail_probe=tail_probe, tail_reference=tail_ref,
        below_max=below.reshape(G, G), genuine_score=gs, genuine_probe=gp, genuine_reference=gr,
        bulk_score=bulk[0], bulk_probe=bulk[1], bulk_reference=bulk[2], cell_limit=run.cell_limit,
        exclusions=Counter(), impostor_subject_pairs=None, design="complete",
        meta=_tail_meta(run, level, passes))


def _canonical_triple(s: np.ndarray, i: np.ndarray,
                      j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores and their sample indices (int64) in the canonical order of ScoreDistributions."""
    i, j = i.astype(np.int64), j.astype(np.int64)
    o = np.lexsort((j, i, s))
    return s[o], i[o], j[o]


def _whole_cells(run: Planner, caps: Captures, n_whole: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every score (score units) and sample pair of the cells kept whole, captured in the main pass; their
    number must be the count of their shared histogram row."""
    sel = run.cell_row[_cells_of(run, caps.i, caps.j)] < 0
    if int(sel.sum()) != n_whole or int(run.cell_pairs.reshape(-1)[run.cell_row < 0].sum()) != n_whole:
        raise AssertionError(f"the cells kept whole hold {n_whole} pairs, {int(sel.sum())} were captured")
    s = caps.x[sel].astype(np.float64)
    s /= run.plan.scale
    return s, caps.i[sel].astype(np.int64), caps.j[sel].astype(np.int64)


def _cell_counts(run: Planner, rows: np.ndarray, whole: tuple) -> np.ndarray:
    """(G * G,) non-mated pairs per cell: row sums, and the captured pairs of the cells kept whole."""
    g = run.samples.group_of_sample
    counts = np.bincount(g[whole[1]] * run.G + g[whole[2]], minlength=run.G * run.G)
    has = run.cell_row >= 0
    counts[has] = rows.sum(axis=1)[run.cell_row[has]]
    return counts


def _cutoffs(run: Planner, coarse: ScoreDistributions | None) -> np.ndarray:
    """Per cell, required_tail_cutoff of the complete histogram and the exact genuine scores."""
    if coarse is None:
        return np.full((run.G, run.G), np.inf)
    return required_tail_cutoff(coarse, run.targets, run.subsets)


def _coarse(run: Planner, rows: np.ndarray, whole: tuple, gs: np.ndarray, gp: np.ndarray,
            gr: np.ndarray) -> ScoreDistributions | None:
    """The exact histogram, the scores of the cells kept whole and the mated scores (no tail): what
    every cutoff and answer bin is read from (None when there are no non-mated scores)."""
    G = run.G
    if not rows.sum() and not whole[0].size:
        return None
    empty_i = np.empty(0, np.int64)
    return GenuineSorted(
        samples=run.samples,
        edges=run.edges,
        hist_rows=rows,
        hist_row_of_cell=run.cell_row.reshape(G, G),
        tail_cutoff=np.full((G, G), np.inf),
        tail_score=np.empty(0),
        tail_probe=empty_i,
        tail_reference=empty_i,
        below_max=np.full((G, G), -np.inf),
        genuine_score=gs,
        genuine_probe=gp,
        genuine_reference=gr,
        bulk_score=whole[0],
        bulk_probe=whole[1],
        bulk_reference=whole[2],
        cell_limit=run.cell_limit,
        design="complete",
    )


def contiguous_level(run: Planner) -> np.ndarray:
    """(G, G) per cell, the level from which the main pass kept every score: the capture level, or,
    where the pass cut its captures to ranges (a capped tail estimated), the range open above."""
    level = run.cell_level.copy()
    if run.keep is not None:
        lo = run.keep.contiguous_lo(run.G * run.G)
        kept = np.array([edge_of(run.edges, int(b)) for b in lo.tolist()])
        level = np.maximum(level, kept.reshape(run.G, run.G))
    return level


def _second_pass(run: Planner, backend: Backend, rows: np.ndarray, T: np.ndarray, level: np.ndarray,
                 fail: np.ndarray, caps: Captures) -> Captures:
    """The estimate was too high for the cells of ``fail``: capture them again, below T, from the exact
    histogram (``level`` is lowered in place); the other cells keep their main-pass captures."""
    G, plan = run.G, run.plan
    for g, h in zip(*np.nonzero(fail)):
        level[g, h] = lower_level(run.edges, rows[run.cell_row[g * G + h]], T[g, h])  # failing: has a row
    _, parts = _capture_only(run, backend, np.where(fail, level, np.inf), fail)
    extra = BlockPartial.sum([part for _, part in parts], plan.n_slots)
    old = ~fail.reshape(-1)[_cells_of(run, caps.i, caps.j)]
    return Captures(np.concatenate([caps.i[old], extra.cap_i]), np.concatenate([caps.j[old], extra.cap_j]),
                    np.concatenate([caps.x[old], extra.cap_x]))


def _tail_meta(run: Planner, level: np.ndarray, passes: list[str]) -> dict:
    finite = level[np.isfinite(level)]
    return {
        "tail_cutoff_rule": "per cell: required_tail_cutoff of the complete histogram (every EER and "
        "target-FMR threshold of every group subset containing the cell exact); tail captured in the "
        "main pass",
        "capture_level": [float(level.min()), float(level.max())] if level.size else [],
        "capture_level_finite": [float(finite.min()), float(finite.max())] if finite.size else [],
        "passes": passes,
        "pairs": run.total_pairs,
        "score_definition": f"float32 GEMM of {run.metric} rows"
        + (", unit-normalised in float64" if run.metric == "cosine" else ""),
    }


def genuine_canonical(run: Planner, total: BlockPartial) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mated scores, probes and references in the canonical order (score, probe, reference).

    Each block returns its mated pairs in the plan's order (by block, then (i, j)); placed back in
    (i, j) order, one stable sort by score gives the canonical order (no three-key lexsort)."""
    plan = run.plan
    keys = np.asarray(total.blocks, np.int64)
    lo = np.searchsorted(plan.mated_key, keys, side="left")
    lens = np.searchsorted(plan.mated_key, keys, side="right") - lo
    pos = np.repeat(lo - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(int(lens.sum()))
    if not (
        np.array_equal(plan.mated_i[pos], total.gen_i) and np.array_equal(plan.mated_j[pos], total.gen_j)
    ):
        raise AssertionError("mated pairs came back out of the plan's order")
    m = pos.size
    where = np.empty(m, np.int64)
    where[pos] = np.arange(m)  # plan position -> position in the blocks' concatenation
    x = np.empty(m, np.float32)
    i = np.empty(m, np.int64)
    j = np.empty(m, np.int64)
    o = run.mated_order
    x[o] = total.gen_x[where]
    i[o] = plan.mated_i
    j[o] = plan.mated_j
    if m >= 2**32:
        c = np.argsort(x, kind="stable")
    else:  # (score, position in (i, j) order) packed in one uint64: one unstable (SIMD) sort
        packed = (float_order(x).astype(np.uint64) << np.uint64(32)) | np.arange(m, dtype=np.uint64)
        packed.sort()
        c = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
        del packed
    s = x[c].astype(np.float64)
    s /= plan.scale
    return s, i[c], j[c]


def lower_level(edges: np.ndarray, hist: np.ndarray, T: float) -> float:
    """An edge below T with at least a quarter more scores of the cell than above T (and 2 bins of margin)."""
    if not np.isfinite(T):
        return -np.inf
    per_bin = hist.reshape(-1, hist.shape[-1]).sum(axis=0)
    from_top = np.cumsum(per_bin[::-1])[::-1]
    bT = int(bin_index(np.array([T]), edges)[0])
    need = from_top[bT] + max(1, from_top[bT] // 4)
    b = bT - 2
    while b > 0 and from_top[b] < need:
        b -= 1
    return float(edges[b]) if b > 0 else -np.inf


# ----- a tail capped to the budget ---------------------------------------------------------------
def assemble_capped(run: Planner, backend: Backend, caps: Captures, rows: np.ndarray,
                    coarse: ScoreDistributions, capped: tuple) -> ScoreDistributions:
    """The distributions of a run whose required tail passes ``run.max_tail``: capped cutoffs, the tail
    above them, and the windows of every answer below them (:mod:`faceaudit.compare.capped`)."""
    edges = run.edges
    C = capped[0]
    needs, windows = needed_ranges(coarse, rows, run.cell_row, C, run.subsets, run.targets)
    if window_total(rows, run.cell_row, windows) > run.max_tail:
        return _assemble_refined(run, backend, caps, rows, coarse, capped)
    caps, passes = _cover(run, backend, needs, caps, "the needed bins")
    split = _split_captures(run, caps, C, needs)
    _check_tail(run, rows, C, split.n_tail, split.below)
    low = split.window  # the windows' own captures, and the scores next to them: whole needed bins
    s_low, cell_low = _scores(run, caps, low), _cells_of(run, caps.i[low], caps.j[low])
    win = build_windows(rows, run.cell_row, edges, windows, s_low, cell_low, bin_index(s_low, edges),
                        caps.i[low], caps.j[low], split.tail_min)
    del low, s_low, cell_low
    return _capped_result(run, caps, rows, split, coarse, capped, win, passes)


def _cover(run: Planner, backend: Backend, needs: KeepRanges, caps: Captures,
           what: str) -> tuple[Captures, list[str]]:
    """The captures holding every range of ``needs``: the main pass's, and a capture-only pass for the
    cells where it kept less; with the passes made."""
    G = run.G
    kept = run.keep if run.keep is not None else _kept_from_levels(run)
    fail = np.zeros(G * G, bool)
    for c, lo, hi in zip(needs.cell.tolist(), needs.lo.tolist(), needs.hi.tolist()):
        fail[c] |= not kept.covers(c, lo, hi)
    passes = ["main"]
    if fail.any():
        caps = _needs_pass(run, backend, needs.restricted(fail), fail, caps)
        passes.append(f"capture of {what} in {int(fail.sum())} cell(s), "
                      f"{len(run.blocks_holding(fail.reshape(G, G)))} block(s)")
    return caps, passes


def _assemble_refined(run: Planner, backend: Backend, caps: Captures, rows: np.ndarray,
                      coarse: ScoreDistributions, capped: tuple) -> ScoreDistributions:
    """A capped run whose whole-bin windows would hold more than ``run.max_tail`` scores: the tail as in
    :func:`assemble_capped`, each answer's bin partitioned by further passes until its part fits
    (:mod:`faceaudit.partition`), then one pass capturing the parts."""
    B = run.edges.size - 1
    C = capped[0]
    tail_needs, _ = needed_ranges(coarse, rows, run.cell_row, C, [], run.targets)
    caps, passes = _cover(run, backend, tail_needs, caps, "the tail's bins")
    split = _split_captures(run, caps, C, KeepRanges.of([], [], [], B))
    _check_tail(run, rows, C, split.n_tail, split.below)
    answers = partition.answers_below(coarse, rows, run.cell_row, C, run.subsets, run.targets)
    src = PassScanner(run, backend)
    n_split = partition.refine(src, answers, run.max_tail)
    passes.append(f"{n_split} pass(es) splitting the bins of {len(answers)} answer(s) into "
                  f"{partition.SUB_BINS} parts")
    win = partition.capture_windows(src, rows, C, answers)
    passes.append(f"capture of {win.cell.size} window(s)")
    dist = _capped_result(run, caps, rows, split, coarse, capped, win, passes)
    dist.meta["tail_windows"]["partition"] = {
        "sub_bins": partition.SUB_BINS, "split_passes": n_split, "answers": len(answers),
        "largest_window": int(np.diff(win.start).max()) if win.cell.size else 0,
        "rule": "where the whole-bin windows would hold more than max_tail scores, each answer's bin is "
                "split into sub_bins equal parts by further passes, keeping the part holding the answer, "
                "until it holds at most max_tail / answers scores or its scores are one value"}
    return dist


def _capped_result(run: Planner, caps: Captures, rows: np.ndarray, split: _Split,
                   coarse: ScoreDistributions, capped: tuple, win: TailWindows,
                   passes: list[str]) -> ScoreDistributions:
    """The ScoreDistributions of a capped run from its sorted-out captures and windows."""
    G, edges = run.G, run.edges
    C = capped[0]
    bulk = _canonical_triple(_scores(run, caps, split.bulk), caps.i[split.bulk], caps.j[split.bulk])
    tail = _canonical_triple(_scores(run, caps, split.tail), caps.i[split.tail], caps.j[split.tail])
    below = split.below
    meta = _tail_meta(run, contiguous_level(run), passes)
    meta["tail_cutoff_rule"] = (
        "per cell: required_tail_cutoff of the complete histogram, raised to the lowest common bin edge "
        "at which the tail of the cells with a histogram row holds at most "
        f"max_tail = {run.max_tail} scores; "
        "every answer below it (each target-FMR threshold and EER of every group subset, counts at those "
        "thresholds) read from the exact scores of its histogram bin (tail windows)")
    meta["tail_windows"] = partition.windows_meta(run.max_tail, capped, win)
    gs, gp, gr = coarse.genuine_score, coarse.genuine_probe, coarse.genuine_reference
    return ScoreDistributions(
        samples=run.samples, edges=edges, hist_rows=rows, hist_row_of_cell=run.cell_row.reshape(G, G),
        tail_cutoff=C, tail_score=tail[0], tail_probe=tail[1], tail_reference=tail[2],
        below_max=below.reshape(G, G), genuine_score=gs, genuine_probe=gp, genuine_reference=gr,
        bulk_score=bulk[0], bulk_probe=bulk[1], bulk_reference=bulk[2], cell_limit=run.cell_limit,
        exclusions=Counter(), impostor_subject_pairs=None, design="complete", meta=meta, windows=win)


#: captures scanned at a time by the capped assembly: no per-capture temporary spans all of them
SCAN_BATCH = 1 << 20


@dataclass
class _Split:
    """The captures of a capped run sorted out: indices of the tail's, the windows' (in a needed range of
    a cell with a histogram row, below its cutoff) and the bulk's (cells kept whole, below the cutoff);
    per cell the tail count, the largest score below the cutoff and the smallest tail score."""

    tail: np.ndarray
    window: np.ndarray
    bulk: np.ndarray
    n_tail: np.ndarray
    below: np.ndarray
    tail_min: np.ndarray


def _cells_of(run: Planner, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Each pair's cell (group[i] * G + group[j]), in int32 where G * G fits (a per-capture temporary)."""
    g = run.samples.group_of_sample.astype(np.int32 if run.G * run.G < 2**31 else np.int64)
    cell = g[i]
    cell *= run.G
    cell += g[j]
    return cell


def _scores(run: Planner, caps: Captures, idx: np.ndarray) -> np.ndarray:
    """The captures' scores (float64, score units) at ``idx``: each value as a whole-array cast gives."""
    s = caps.x[idx].astype(np.float64)
    s /= run.plan.scale
    return s


def _split_captures(run: Planner, caps: Captures, C: np.ndarray, needs: KeepRanges) -> _Split:
    """:class:`_Split` of a capped run's captures, in batches of :data:`SCAN_BATCH` (the reductions are
    exact in any order; the indices come out ascending, as one scan gives)."""
    G2, flat_C = run.G * run.G, C.reshape(-1)
    below, tail_min = np.full(G2, -np.inf), np.full(G2, np.inf)
    n_tail = np.zeros(G2, np.int64)
    tail, window, bulk = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for a in range(0, caps.x.size, SCAN_BATCH):
        z = min(a + SCAN_BATCH, caps.x.size)
        s = _scores(run, caps, slice(a, z))
        cell = _cells_of(run, caps.i[a:z], caps.j[a:z])
        in_tail = s >= flat_C[cell]
        np.maximum.at(below, cell[~in_tail], s[~in_tail])
        np.minimum.at(tail_min, cell[in_tail], s[in_tail])  # a window's smallest score above
        n_tail += np.bincount(cell[in_tail], minlength=G2)
        tail.append(np.flatnonzero(in_tail) + a)
        has_row = run.cell_row[cell] >= 0
        bulk.append(np.flatnonzero(~in_tail & ~has_row) + a)
        low = np.flatnonzero(~in_tail & has_row)
        window.append(low[needs.mask(cell[low], bin_index(s[low], run.edges))] + a)
    return _Split(*(np.concatenate(x) for x in (tail, window, bulk)), n_tail, below, tail_min)


def _kept_from_levels(run: Planner) -> KeepRanges:
    """What a pass without ranges kept: every score from each cell's capture level up."""
    from faceaudit.tail_windows import cutoff_bin

    B = run.edges.size - 1
    cells = np.arange(run.G * run.G)
    lo = [cutoff_bin(run.edges, v) for v in run.cell_level.reshape(-1).tolist()]
    return KeepRanges.of(cells, lo, np.full(cells.size, B), B)


def _check_tail(run: Planner, rows: np.ndarray, C: np.ndarray, n_tail: np.ndarray, below: np.ndarray) -> None:
    """Each cell with a row: its tail holds the histogram's count from its cutoff, and a largest score
    below the cutoff was found exactly where the histogram has scores below it."""
    from faceaudit.tail_windows import cutoff_bin

    for c in np.flatnonzero(run.cell_row >= 0).tolist():
        row = rows[run.cell_row[c]]
        k = cutoff_bin(run.edges, float(C.reshape(-1)[c]))
        if int(row[k:].sum()) != int(n_tail[c]) or (int(row[:k].sum()) > 0) != bool(np.isfinite(below[c])):
            raise AssertionError(f"cell {c}: the capped tail disagrees with the histogram")


def _needs_pass(run: Planner, backend: Backend, needs: KeepRanges, fail: np.ndarray,
                caps: Captures) -> Captures:
    """A capture-only pass over the blocks holding the cells of ``fail``, each chunk's captures cut to
    those cells' needed ranges as it arrives; the other cells keep their main-pass captures."""
    G = run.G
    lowest = needs.lowest(G * G)
    level = np.array([edge_of(run.edges, int(k)) if f else np.inf for k, f in zip(lowest.tolist(), fail)])
    _, parts = _capture_only(run, backend, level.reshape(G, G), fail.reshape(G, G))
    got = []
    for _, part in parts:
        _, b = score_bins(part.cap_x, run.plan.scale, run.edges)
        keep = needs.mask(_cells_of(run, part.cap_i, part.cap_j), b)
        got.append((part.cap_i[keep], part.cap_j[keep], part.cap_x[keep]))
    old = ~fail[_cells_of(run, caps.i, caps.j)]
    return Captures(*(np.concatenate([getattr(caps, f)[old], *[p[k] for p in got]])
                      for k, f in enumerate(("i", "j", "x"))))


class PassScanner:
    """The comparison engine's capture-only pass over the blocks holding the cells (a GEMM per block)."""

    def __init__(self, run: Planner, backend: Backend) -> None:
        self.run, self.backend = run, backend
        self.G, self.edges, self.cell_row = run.G, run.edges, run.cell_row
        self.passes = 0

    def scan(self, cells: np.ndarray, level: np.ndarray, reduce: partition.Reduce) -> None:
        run, G = self.run, self.G
        lv = np.where(cells, level, np.inf)
        chunks, parts = _capture_only(run, self.backend, lv.reshape(G, G), cells.reshape(G, G))
        self.passes += 1
        bar = Progress(run.progress, sum(_block_pairs(run, b) for c in chunks for b in c),
                       f"further pass {self.passes} (partition inside the bins)")
        try:
            for blocks, part in parts:
                s = part.cap_x.astype(np.float64)
                s /= run.plan.scale
                cell = _cells_of(run, part.cap_i, part.cap_j)
                keep = s >= lv[cell]
                reduce(s[keep], cell[keep], part.cap_i[keep], part.cap_j[keep])
                bar.advance(sum(_block_pairs(run, b) for b in blocks))  # tail-only parts count none
        finally:
            bar.close()


def _capture_only(run: Planner, backend: Backend, level: np.ndarray,
                  hold: np.ndarray) -> tuple[list, Iterator[tuple[list, BlockPartial]]]:
    """A capture-only pass: every non-mated score >= its cell's ``level`` ((G, G), score units; inf:
    none), over the blocks holding the cells of the (G, G) mask ``hold``. Its chunks, and an iterator of
    (a chunk's blocks, its BlockPartial)."""
    arrays = run.capture_arrays(level, np.full(run.n, np.inf, np.float32))
    plan = BlockPlan(**{**run.plan.__dict__, **arrays, "tail_only": True})
    chunks = make_chunks(run.blocks_holding(hold), run.block, run.n, SECOND_PASS_CHUNK_PAIRS)
    parts = backend.run_chunks(plan, chunks, list(range(len(chunks))))
    return chunks, ((chunks[k], part) for k, part in parts)


def _block_pairs(run: Planner, block: tuple[int, int]) -> int:
    """Pairs i < j of one block of the schedule."""
    bi, bj = block
    m_i, m_j = (min(run.block, run.n - b * run.block) for b in (bi, bj))
    return m_i * (m_i - 1) // 2 if bi == bj else m_i * m_j
