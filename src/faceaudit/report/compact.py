"""Compact distributions: what the HTML report needs to recompute every per-group number at any
threshold, in the page, exactly.

The report's threshold control moves over a list of thresholds at which every count it shows is exact
for the scores seen (docs/design.md's exactness rule, carried into the browser):

* **at and above** ``exact_from``: every non-mated score >= ``exact_from`` of every (probe group,
  reference group) cell and every mated score >= ``exact_from`` of every group is embedded exactly, so
  the count at *any* threshold there is exact; the control stops at every distinct score;
* **below** ``exact_from``: counts are exact at the thresholds of ``grid`` (a subset of the histogram's
  inner bin edges, evenly spaced), where the histogram is an exact index (count of scores >= an edge =
  sum of the bins from it); the control stops at those only.

``exact_from`` is the lowest score that keeps the embedded non-mated scores within ``max_exact`` and
lies above every score the distributions hold only as a histogram (so above it nothing is missing).

Everything is per *finest* group (the intersection of all group columns) and per finest cell; a
reported group is a list of finest groups (``subsets``), a reported cross-group cell the product of
two such lists (both orientations where the design compared each unordered pair once). The page sums.

Scores are encoded as little-endian IEEE floats, base64: ``float32`` when every score of the array is
exactly a float32 (embeddings compared in float32), ``float64`` otherwise, so that decoding gives back
the very numbers Python compares against.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from faceaudit.results import group_label as group_name
from faceaudit.results import grouping_label as grouping_name
from faceaudit.scores import ScoreDistributions, bin_index

__all__ = [
    "compact_distributions",
    "encode_scores",
    "decode_scores",
    "COMPACT_FORMAT",
    "COMPACT_VERSION",
]

COMPACT_FORMAT = "faceaudit.compact-distributions"
COMPACT_VERSION = 1
DEFAULT_MAX_EXACT = 150_000
DEFAULT_GRID_POINTS = 512


def encode_scores(scores: np.ndarray) -> dict[str, Any]:
    """Sorted scores as ``{"dtype", "count", "base64"}`` (float32 where that is lossless)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not equal, so float64 below
        as32 = s.astype("<f4")
    if np.array_equal(as32.astype(np.float64), s):
        dtype, raw = "float32", as32.tobytes()
    else:
        dtype, raw = "float64", s.astype("<f8").tobytes()
    return {"dtype": dtype, "count": int(s.size), "base64": base64.b64encode(raw).decode("ascii")}


def decode_scores(block: Mapping[str, Any]) -> np.ndarray:
    dtype = {"float32": "<f4", "float64": "<f8"}[block["dtype"]]
    return np.frombuffer(base64.b64decode(block["base64"]), dtype=dtype).astype(np.float64)


def _subset_groups(value: Any) -> list[int]:
    groups = getattr(value, "groups", value)
    return [int(g) for g in groups]


def compact_distributions(
    dist: ScoreDistributions,
    subsets: Mapping[tuple, Any],
    *,
    max_exact: int = DEFAULT_MAX_EXACT,
    grid_points: int = DEFAULT_GRID_POINTS,
) -> dict[str, Any]:
    """The ``distributions`` section of the audit document (see the module docstring).

    ``subsets`` maps ``(grouping columns, group values)`` to the finest groups making up that group
    (a list of ints, or an object with ``.groups``): ``AuditResult.subsets`` or
    :func:`faceaudit.groups.group_subsets`.
    """
    G = dist.n_groups
    edges = dist.edges
    B = edges.size - 1
    scores, starts, _ = dist.tail_index()
    totals = dist.nonmated_counts().reshape(-1)
    kept = np.diff(starts)
    below = totals - kept
    below_max = dist.below_max.reshape(-1)
    # nothing is missing above the largest score held only as a histogram
    floor = float(np.max(below_max[below > 0])) if np.any(below > 0) else -np.inf
    exact_from = _exact_from(scores, floor, max_exact)

    inner = edges[1:-1]
    step = max(1, int(np.ceil(inner.size / max(1, grid_points))))
    grid_idx = np.arange(step - 1, inner.size, step)  # indices into inner (edge b = inner[b - 1])
    grid_idx = grid_idx[inner[grid_idx] < exact_from]
    grid = inner[grid_idx]

    cells = _cells(dist, scores, starts, totals, exact_from, grid_idx)
    mated = _mated(dist, exact_from, grid)

    listed = [
        {
            "grouping": grouping_name(key[0]),
            "group": group_name(key[1]),
            "finest_groups": sorted(_subset_groups(value)),
        }
        for key, value in sorted(subsets.items(), key=lambda kv: (len(kv[0][0]), kv[0]))
    ]
    _check_bins(dist, grid)
    return {
        "format": COMPACT_FORMAT,
        "version": COMPACT_VERSION,
        "resolution": (
            "At and above exact_from every count is exact at every threshold (every score there is "
            "embedded). Below it counts are exact at the thresholds listed in grid (histogram bin edges, "
            f"every {step} of {B} bins), and the report's threshold control stops only at those."
        ),
        "design": dist.design,
        "n_groups": G,
        "group_columns": list(dist.samples.group_columns),
        "group_labels": [list(label) for label in dist.samples.group_labels],
        "exact_from": float(exact_from) if np.isfinite(exact_from) else ("inf" if exact_from > 0 else "-inf"),
        "grid": [float(x) for x in grid],
        "grid_step_bins": int(step),
        "histogram_bins": int(B),
        "max_exact": int(max_exact),
        "cells": cells,
        "mated": mated,
        "subsets": listed,
    }


def _cells(
    dist: ScoreDistributions,
    scores: np.ndarray,
    starts: np.ndarray,
    totals: np.ndarray,
    exact_from: float,
    grid_idx: np.ndarray,
) -> list[dict[str, Any]]:
    """Per finest cell: its total, its counts >= each grid threshold (exact, from the cell's histogram
    row or its exact scores) and its scores >= ``exact_from``."""
    cells = []
    for c in range(totals.size):
        cell_scores = scores[starts[c] : starts[c + 1]]
        exact = cell_scores[cell_scores >= exact_from] if np.isfinite(exact_from) else cell_scores
        # count of the cell's scores >= each grid edge (edge inner[k] = edges[k + 1])
        at_least = dist.cell_at_least_edges(c, grid_idx + 1) if grid_idx.size else np.empty(0, np.int64)
        cells.append(
            {"total": int(totals[c]), "at_least_grid": _trimmed(at_least), "scores": encode_scores(exact)}
        )
    return cells


def _mated(dist: ScoreDistributions, exact_from: float, grid: np.ndarray) -> list[dict[str, Any]]:
    """Per finest group: its mated total, counts below each grid threshold and its scores >=
    ``exact_from``."""
    mated = []
    genuine_group = dist.genuine_group
    for g in range(dist.n_groups):
        gs = np.sort(dist.genuine_score[genuine_group == g])
        exact = gs[gs >= exact_from] if np.isfinite(exact_from) else gs
        below_grid = np.searchsorted(gs, grid, side="left") if grid.size else np.empty(0, np.int64)
        mated.append(
            {
                "total": int(gs.size),
                "below_exact_from": int(gs.size - exact.size),
                "below_grid": _trimmed(below_grid),
                "scores": encode_scores(exact),
            }
        )
    return mated


def _exact_from(tail: np.ndarray, floor: float, max_exact: int) -> float:
    """Lowest tail score s > floor such that the tail scores >= s number at most max_exact (ties kept
    whole); -inf when the whole set is exact and fits."""
    s = np.sort(tail)
    if s.size == 0:
        return np.inf if np.isfinite(floor) else -np.inf
    if not np.isfinite(floor) and s.size <= max_exact:
        return -np.inf
    candidate = s[max(0, s.size - max_exact)]
    # ties: move up to the next distinct score if keeping candidate would exceed the budget
    n = s.size - np.searchsorted(s, candidate, side="left")
    if n > max_exact:
        nxt = np.searchsorted(s, candidate, side="right")
        candidate = s[nxt] if nxt < s.size else np.inf
    lowest_above_floor = s[np.searchsorted(s, floor, side="right")] if np.any(s > floor) else np.inf
    return float(max(candidate, lowest_above_floor))


def _trimmed(values: np.ndarray) -> dict[str, Any]:
    """A grid-length count array without its leading run of equal values (``head``, the grid points
    below every score) and its trailing run of equal values (``tail``): ``{"length", "start", "head",
    "tail", "values"}``; see :func:`expand_trimmed`."""
    v = np.asarray(values, dtype=np.int64)
    n = int(v.size)
    if n == 0:
        return {"length": 0, "start": 0, "head": 0, "tail": 0, "values": []}
    differ = np.flatnonzero(v != v[0])
    start = int(differ[0]) if differ.size else n
    differ = np.flatnonzero(v != v[-1])
    end = max(start, int(differ[-1]) + 1 if differ.size else 0)
    return {
        "length": n,
        "start": start,
        "head": int(v[0]),
        "tail": int(v[-1]),
        "values": v[start:end].tolist(),
    }


def _check_bins(dist: ScoreDistributions, grid: np.ndarray) -> None:
    # the grid must be inner edges: the histogram's count at an edge is exact only there
    if grid.size:
        b = bin_index(grid, dist.edges)
        assert np.array_equal(dist.edges[b], grid), "grid thresholds must be histogram bin edges"


def expand_trimmed(block: Mapping[str, Any]) -> np.ndarray:
    """Inverse of the trimmed encoding (for tests and readers)."""
    n, start, vals = block["length"], block["start"], block["values"]
    out = np.empty(n, dtype=np.int64)
    out[:start] = block["head"]
    out[start : start + len(vals)] = vals
    out[start + len(vals) :] = block["tail"]
    return out


def group_cells(n_groups: int, probe: Iterable[int], reference: Iterable[int], design: str) -> list[int]:
    """Flat cell indices (p * G + r) for probe groups x reference groups, both orientations for a
    complete design (each unordered pair is filed under one of them)."""
    p, r = list(probe), list(reference)
    out = {a * n_groups + b for a in p for b in r}
    if design == "complete":
        out |= {b * n_groups + a for a in p for b in r}
    return sorted(out)


def counts_at(
    section: Mapping[str, Any], threshold: float, probe: Iterable[int], reference: Iterable[int] | None = None
) -> dict[str, int | None]:
    """What the page computes, in Python: false matches among the cells probe x reference (within
    ``probe`` when ``reference`` is None) and false non-matches of the mated pairs of ``probe``, at a
    threshold that is ``exact_from`` or above, or one of ``grid``. Returns None counts elsewhere."""
    G, design = section["n_groups"], section["design"]
    probe = list(probe)
    within = reference is None
    reference = probe if within else list(reference)
    exact_from = _number(section["exact_from"])
    grid = section["grid"]
    if threshold >= exact_from:
        k = None
    elif threshold in grid:
        k = grid.index(threshold)
    else:
        return {"false_matches": None, "nonmated": None, "false_non_matches": None, "mated": None}
    fm = total = 0
    for c in group_cells(G, probe, reference, design):
        cell = section["cells"][c]
        total += cell["total"]
        if k is None:
            s = decode_scores(cell["scores"])
            fm += int(s.size - np.searchsorted(s, threshold, side="left"))
        else:
            fm += int(expand_trimmed(cell["at_least_grid"])[k])
    fnm = mated = 0
    if within:
        for g in probe:
            m = section["mated"][g]
            mated += m["total"]
            if k is None:
                s = decode_scores(m["scores"])
                fnm += m["below_exact_from"] + int(np.searchsorted(s, threshold, side="left"))
            else:
                fnm += int(expand_trimmed(m["below_grid"])[k])
    return {
        "false_matches": fm,
        "nonmated": total,
        "false_non_matches": fnm if within else None,
        "mated": mated if within else None,
    }


def _number(x: Any) -> float:
    return float(x)  # "inf" and "-inf" parse too
