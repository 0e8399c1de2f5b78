"""From files on disk to ScoreDistributions, with the provenance every output carries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from faceaudit.build import default_groupings, group_subsets, two_pass
from faceaudit.data.tables import ScoreFile, file_sha256, histogram_range, read_sample_table, score_range
from faceaudit.partition import DEFAULT_MAX_TAIL
from faceaudit.scores import DEFAULT_BINS, ScoreDistributions, uniform_edges
from faceaudit.version import __version__

__all__ = ["load_score_file"]

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
    max_tail: int | None = DEFAULT_MAX_TAIL,
) -> ScoreDistributions:
    """Read a score table against a sample table into ScoreDistributions.

    The file is streamed three times (score range, histogram, exact tail and EER windows), and again
    only if an EER window needs widening (never for a window chosen from the histogram: see
    :mod:`faceaudit.eer_window`); memory is the sample table, the histograms, the mated scores, the
    exact tail (the non-mated scores at or above the lowest target-FMR threshold of each cell: rows x
    max target FMR) and, per group, the non-mated scores of the one bin where its EER falls.
    ``track_subject_pairs`` keeps the non-mated comparison counts per pair of subjects that the subject
    bootstrap needs (up to subjects^2 entries).

    ``encoding`` applies to CSV files (default UTF-8, with or without BOM). ``pair_order``: "unordered"
    (default: (a, b) and (b, a) are one comparison; listing it twice is a DuplicatePairError) or
    "ordered" (an order-dependent matcher: both orders are comparisons, each listed at most once).
    ``max_tail``: the most scores the exact tail keeps (None: no budget); past it the answers below the
    tail are read from their bins, or parts of them, by further reads (:mod:`faceaudit.partition`).
    Histogram memory is bounded (:mod:`faceaudit.scores`, "Memory"): past the limit the load is
    refused with the figure (:class:`~faceaudit.errors.HistogramMemoryError`).

    Parameters
    ----------
    scores, samples : path
        The score table (CSV or Parquet: ``probe``, ``reference``, ``score``, optional ``mated``) and the
        sample table (``sample_id``, ``subject_id``, attribute columns). Identifiers are text as written.
    group_columns : sequence of str
        Attribute columns to break results down by; ``groupings`` overrides the default (each column, then
        their intersection).
    fmr_targets : iterable of float
        The target FMRs whose thresholds must be exact (the exact tail reaches them).
    distance : bool
        Scores are distances: they are negated at ingestion, and the manifest says so.
    bins : int
        Histogram bins per group pair (an index for exact answers, never an answer).

    Returns
    -------
    ScoreDistributions
        With ``meta["inputs"]`` holding both files' SHA-256.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "samples.csv").write_text("sample_id,subject_id,sex\\na1,007,F\\na2,007,F\\nb1,7,M\\n")
    >>> _ = (folder / "scores.csv").write_text("probe,reference,score\\na1,a2,0.9\\na1,b1,0.2\\nb1,a2,0.4\\n")
    >>> dist = load_score_file(folder / "scores.csv", folder / "samples.csv", group_columns=["sex"])
    >>> dist.n_mated, dist.n_nonmated, list(dist.samples.subject_ids)   # "007" and "7" are two people
    (1, 2, ['007', '7'])
    """
    index = read_sample_table(samples, group_columns, encoding=encoding)
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
                    track_subject_pairs=track_subject_pairs, max_tail=max_tail)
    dist.meta["inputs"]["scores"] = sf.manifest()
    return dist
