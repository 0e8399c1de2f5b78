"""From files on disk to ScoreDistributions, with the provenance every output carries."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from faceaudit import __version__
from faceaudit.build import default_groupings, group_subsets, two_pass
from faceaudit.data.tables import ScoreFile, file_sha256, histogram_range, read_sample_table, score_range
from faceaudit.errors import TooLargeError
from faceaudit.scores import DEFAULT_BINS, ScoreDistributions, uniform_edges

__all__ = ["load_score_file", "check_histogram_memory"]

#: the load holds the (G, G, B) int64 histogram about this many times at its peak (two builders, the
#: bincount temporary, the result's copy: measured 3.9x, bench/RESULTS.md "Memory against groups")
HISTOGRAM_COPIES = 4


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_histogram_memory(groups: int, bins: int, limit: int | None = None) -> int:
    """Bytes the dense per-cell histograms need at the peak of a load; :class:`TooLargeError` (before any
    work) where that exceeds ``limit`` (default: the machine's physical memory)."""
    need = HISTOGRAM_COPIES * groups * groups * bins * 8
    limit = _physical_memory() if limit is None else limit
    if limit and need > limit:
        fit = int(limit // (HISTOGRAM_COPIES * groups * groups * 8))
        advice = f"use fewer bins (--bins {1 << (fit.bit_length() - 1)} fits) or fewer or coarser --group " \
            "columns" if fit >= 2 else "use fewer or coarser --group columns (not even 2 bins fit)"
        raise TooLargeError(
            f"{groups} groups need {groups} x {groups} cells x {bins} bins of histograms: "
            f"{need / 2**30:.1f} GiB at the peak of the load ({HISTOGRAM_COPIES} copies of "
            f"groups^2 x bins x 8 bytes), more than the {limit / 2**30:.1f} GiB available; {advice}")
    return need


def load_score_file(
    scores: str | Path,
    samples: str | Path,
    *,
    group_columns: Sequence[str] = (),
    groupings: Iterable[Sequence[str]] | None = None,
    fmr_targets: Iterable[float] = (1e-3, 1e-4, 1e-5),
    distance: bool = False,
    bins: int = DEFAULT_BINS,
    batch_rows: int = 1 << 20,
    track_subject_pairs: bool = True,
    progress: Any = None,
    encoding: str = "utf-8",
    pair_order: str = "unordered",
    memory_limit: int | None = None,
) -> ScoreDistributions:
    """Read a score table against a sample table into ScoreDistributions.

    The file is streamed three times (score range, histogram, exact tail); memory is the sample
    table, the histograms, the mated scores and the exact tail; the tail holds the non-mated scores at
    or above the lowest reported threshold (EER, target FMRs) of each cell, so it grows with the file
    (rows x FMR at the EER), the rest does not. ``track_subject_pairs`` keeps the non-mated comparison
    counts per pair of subjects that the subject bootstrap needs (up to subjects^2 entries).

    ``encoding`` applies to CSV files (default UTF-8, with or without BOM). ``pair_order``: "unordered"
    (default: (a, b) and (b, a) are one comparison; listing it twice is a DuplicatePairError) or
    "ordered" (an order-dependent matcher: both orders are comparisons, each listed at most once).
    A grouping whose histograms cannot fit in ``memory_limit`` bytes (default: physical memory) is
    refused before the file is read (:class:`TooLargeError`, with the figure).
    """
    index = read_sample_table(samples, group_columns, encoding=encoding)
    check_histogram_memory(index.n_groups, bins, memory_limit)
    sf = ScoreFile(scores, index, distance=distance, batch_rows=batch_rows, encoding=encoding,
                   pair_order=pair_order)
    lo, hi = histogram_range(*score_range(sf), bins, sf.path)
    edges = uniform_edges(lo, hi, bins)
    groupings = default_groupings(list(group_columns)) if groupings is None else list(groupings)
    subsets = list(group_subsets(index, groupings).values())
    targets = list(fmr_targets)
    meta = {
        "faceaudit_version": __version__,
        "inputs": {"scores": None, "samples": {"path": str(samples), "sha256": file_sha256(samples)}},
        "group_columns": list(group_columns),
        "score_direction": "distance, negated at ingestion (higher = more alike)" if distance
        else "similarity (higher = more alike)",
    }
    dist = two_pass(sf.chunks, index, edges, targets, subsets, meta=meta, progress=progress,
                    track_subject_pairs=track_subject_pairs)
    dist.meta["inputs"]["scores"] = sf.manifest()
    return dist
