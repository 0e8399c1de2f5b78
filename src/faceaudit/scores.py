"""ScoreDistributions: the one type every measure reads.

Whatever produced the comparisons (a vendor's score file, an embedding matrix, a GPU engine, a Dask
cluster), the measures see the same object:

* mated (genuine) comparisons kept exactly, with both sample indices;
* non-mated (impostor) comparisons, per ordered group pair (probe group, reference group), as a
  histogram over fixed bin edges **plus every score at or above the cell's tail cutoff, exactly**, with
  its sample indices. Memory is O(groups^2 x bins + tail + genuine), never O(pairs). The cutoff is per
  cell, so that a small group whose EER lies deep in the bulk keeps its own few pairs exactly without
  forcing every other cell to keep its bulk;
* counts that add up, and exclusions with their reasons;
* ``a + b`` merges two partial results exactly (blocks, workers, resumed runs).

Exactness rule (DESIGN.md): a threshold, an FMR, an FNMR or an EER that faceaudit reports is exact for
the scores seen. The histogram only locates an answer; the exact tail finishes it. Where an answer falls
below the tail, :class:`~faceaudit.errors.NotExactError` is raised rather than a bin-resolved number
returned as if exact.

Bins: ``edges`` has ``B + 1`` increasing values and defines ``B`` bins ``[edges[b], edges[b+1])``; the
first and last bins are open-ended (scores below ``edges[0]`` count in bin 0, scores at or above
``edges[-1]`` in bin ``B - 1``), so no score is ever dropped by the histogram.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit.errors import IncompatibleError, InputError, SampleTableError

__all__ = [
    "SampleIndex",
    "ImpostorView",
    "ScoreDistributions",
    "DistributionBuilder",
    "bin_index",
    "uniform_edges",
    "id_text",
]

DEFAULT_BINS = 4096


def uniform_edges(low: float, high: float, bins: int = DEFAULT_BINS) -> np.ndarray:
    """``bins + 1`` equally spaced edges from ``low`` to ``high`` (float64)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"histogram range must be finite, got [{low}, {high}]")
    if high <= low:
        high = low + 1.0
    return np.linspace(float(low), float(high), int(bins) + 1)


def bin_index(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each score, exactly as ``searchsorted(edges, s, 'right') - 1`` clipped to ``[0, B-1]``.

    A multiply gives the bin of almost every score; the two correction steps fix the few scores that
    floating-point rounding put one bin off, so that ``count(score >= edges[b])`` is exact for every
    inner edge. That is what makes the histogram a valid index for exact answers.
    """
    nbins = edges.size - 1
    lo, hi = edges[0], edges[-1]
    idx = np.floor((scores - lo) * (nbins / (hi - lo)))
    np.clip(idx, 0, nbins - 1, out=idx)
    idx = idx.astype(np.intp)
    # the multiply can be one bin off at a bin boundary: move down where the score is below the
    # bin's lower edge, up where it reaches the next edge (never beyond the open-ended outer bins)
    idx -= (scores < edges[idx]) & (idx > 0)
    idx += (scores >= edges[idx + 1]) & (idx < nbins - 1)
    return idx


@dataclass(frozen=True)
class SampleIndex:
    """The evaluation set's samples: ids, subjects and demographic group of each.

    ``group_of_sample[i]`` indexes ``group_labels``, the intersections of ``group_columns``
    (e.g. ``("female", "african")``). With no group columns there is one group, ``()``.
    """

    sample_ids: np.ndarray  # object or int array, shape (n,)
    subject_of_sample: np.ndarray  # intp, index into subject_ids
    subject_ids: np.ndarray
    group_of_sample: np.ndarray  # intp, index into group_labels
    group_columns: tuple[str, ...]
    group_labels: tuple[tuple[str, ...], ...]

    @property
    def n_samples(self) -> int:
        return int(self.sample_ids.size)

    @property
    def n_subjects(self) -> int:
        return int(self.subject_ids.size)

    @property
    def n_groups(self) -> int:
        return len(self.group_labels)

    @property
    def group_of_subject(self) -> np.ndarray:
        g = np.zeros(self.n_subjects, dtype=np.intp)
        g[self.subject_of_sample] = self.group_of_sample
        return g

    def fingerprint(self) -> str:
        """A hash of the whole table: two distributions merge only over the same samples."""
        h = hashlib.sha256()
        for arr in (self.sample_ids, self.subject_ids):
            h.update("\x1f".join(map(str, arr.tolist())).encode())
            h.update(b"\x1e")
        h.update(self.subject_of_sample.astype(np.int64).tobytes())
        h.update(self.group_of_sample.astype(np.int64).tobytes())
        h.update(repr((self.group_columns, self.group_labels)).encode())
        return h.hexdigest()

    @classmethod
    def from_columns(
        cls,
        sample_ids: Any,
        subject_ids: Any,
        attributes: dict[str, Any] | None = None,
    ) -> SampleIndex:
        """Build the index from columns; validates what every measure relies on.

        Ids are text exactly as written (``"007"`` and ``"7"`` are two ids) or integers (which stand for
        their decimal text: the integer 7 and the text ``"7"`` are one id, so both in one column are a
        duplicate). Raises :class:`SampleTableError` for duplicate sample ids, missing (empty) ids, ids
        that are neither text nor integers, and a subject whose samples fall in two groups (a mated pair
        must have one group). Row numbers in messages are 1-based data rows.
        """
        sample_ids = _object_column(sample_ids)
        subject_col = _object_column(subject_ids)
        n = sample_ids.size
        if subject_col.size != n:
            raise SampleTableError("sample_id and subject_id columns differ in length")
        if n == 0:
            raise SampleTableError("the sample table has no rows")
        sample_text = _id_column_text(sample_ids, "sample_id")
        subject_text = _id_column_text(subject_col, "subject_id")
        _check_unique(sample_text)
        subj_uniques, subject_of_sample = np.unique(np.array(subject_text, dtype=object), return_inverse=True)
        columns, group_of_sample, labels = _groups(attributes or {}, n)
        _check_one_group_per_subject(subject_of_sample, subj_uniques, group_of_sample, labels, columns)
        return cls(
            sample_ids=sample_ids,
            subject_of_sample=subject_of_sample.astype(np.intp),
            subject_ids=subj_uniques.astype(object),
            group_of_sample=group_of_sample,
            group_columns=columns,
            group_labels=labels,
        )


def id_text(value: Any) -> str | None:
    """The text an identifier stands for: text as written, an integer's decimal text; None if missing.

    Raises :class:`TypeError` for anything else (floats, booleans, bytes): such an id has no one text.
    """
    if isinstance(value, str):
        return value if value != "" else None
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a boolean")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and value != value:
        return None
    raise TypeError(f"a {type(value).__name__} ({value!r})")


def _object_column(values: Any) -> np.ndarray:
    """A 1-d object array of Python values (never via a '<U' array, which drops trailing NULs)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):  # element-wise: a list value must not become a second dimension
        out[i] = v
    return out


def _id_column_text(col: np.ndarray, name: str) -> list[str]:
    texts, missing = [], []
    for i, v in enumerate(col.tolist()):
        try:
            t = id_text(v)
        except TypeError as exc:
            raise SampleTableError(
                f"{name} at data row {i + 1} is {exc}; ids must be text or integers") from None
        if t is None:
            missing.append(i + 1)
        texts.append(t)
    if missing:
        raise SampleTableError(f"{name} is missing (empty) in {len(missing)} row(s), first at data row "
                               f"{missing[0]}")
    return texts


def _check_unique(texts: list[str]) -> None:
    counts = Counter(texts)
    dups = [k for k, c in counts.items() if c > 1]
    if dups:
        rows = [i + 1 for i, t in enumerate(texts) if t == dups[0]][:2]
        raise SampleTableError(
            f"duplicate sample_id: {len(dups)} id(s) appear more than once, e.g. {dups[:5]!r} "
            f"({dups[0]!r} at data rows {rows[0]} and {rows[1]})"
        )


MISSING_LABEL = "(missing)"


def _label(v: Any) -> str:
    return MISSING_LABEL if (v is None or (isinstance(v, float) and v != v) or v == "") else str(v)


def _groups(attributes: dict[str, Any], n: int) -> tuple[tuple[str, ...], np.ndarray, tuple]:
    columns = tuple(attributes)
    if columns:
        cols = []
        for c in columns:
            col = _object_column(attributes[c])
            if col.size != n:
                raise SampleTableError(f"attribute column {c!r} has the wrong length")
            values = col.tolist()
            labels_c = [_label(v) for v in values]
            if MISSING_LABEL in values and any(v is None or v == "" or v != v for v in values):
                raise SampleTableError(f"attribute column {c!r} has both empty cells and the label "
                                       f"{MISSING_LABEL!r}, which stands for an empty cell: rename the label")
            cols.append(labels_c)
        keys = list(zip(*cols))
    else:
        keys = [()] * n
    labels = tuple(sorted(set(keys)))
    lookup = {k: i for i, k in enumerate(labels)}
    return columns, np.fromiter((lookup[k] for k in keys), dtype=np.intp, count=n), labels


def _check_one_group_per_subject(subject_of_sample, subj_uniques, group_of_sample, labels, columns) -> None:
    """A subject must sit in exactly one group: otherwise its mated pairs have no group."""
    per_subject = np.full(subj_uniques.size, -1, dtype=np.intp)
    per_subject[subject_of_sample] = group_of_sample
    conflict = per_subject[subject_of_sample] != group_of_sample
    if conflict.any():
        bad_subjects = np.unique(subject_of_sample[conflict])
        examples = []
        for s in bad_subjects[:3]:
            gs = sorted({labels[g] for g in group_of_sample[subject_of_sample == s]})
            examples.append(f"{subj_uniques[s]!r} in {gs}")
        raise SampleTableError(
            f"{bad_subjects.size} subject(s) appear in more than one group of {list(columns)}: "
            + "; ".join(examples)
        )


@dataclass(frozen=True)
class ImpostorView:
    """The non-mated scores of a set of cells, as the exact measures need them.

    ``tail`` holds, sorted ascending, every score at or above the tail cutoff. The ``n_below`` other
    scores are known only by count and by their maximum ``below_max``: any threshold above
    ``below_max`` has an exact false-match count. With ``n_below == 0`` the view is the full,
    exact set of scores.
    """

    tail: np.ndarray
    n_below: int
    below_max: float

    @property
    def total(self) -> int:
        return int(self.tail.size + self.n_below)

    @classmethod
    def exact(cls, scores: Any) -> ImpostorView:
        return cls(tail=np.sort(np.asarray(scores, dtype=np.float64)), n_below=0, below_max=-np.inf)


@dataclass
class ScoreDistributions:
    """Mated scores kept exactly; non-mated scores as per-cell histograms plus an exact tail.

    Build one with :class:`DistributionBuilder` (or the readers in :mod:`faceaudit.data`), merge with
    ``+``, query with :meth:`genuine_scores` and :meth:`impostor_view`.
    """

    samples: SampleIndex
    edges: np.ndarray
    impostor_hist: np.ndarray  # (G, G, B) int64: probe group x reference group x bin
    tail_cutoff: np.ndarray  # (G, G) float64: per cell, every non-mated score >= it is in the tail
    tail_score: np.ndarray  # float64, every non-mated score >= its cell's tail_cutoff
    tail_probe: np.ndarray  # int64 sample index
    tail_reference: np.ndarray
    below_max: np.ndarray  # (G, G) float64: largest non-mated score below the cutoff, -inf if none
    genuine_score: np.ndarray
    genuine_probe: np.ndarray
    genuine_reference: np.ndarray
    exclusions: Counter = field(default_factory=Counter)
    #: non-mated comparison counts per (probe subject, reference subject): the denominators of the
    #: subject-level bootstrap. None where the design is complete (all pairs), see ``design``.
    impostor_subject_pairs: sp.csr_array | None = None
    design: str = "listed"
    meta: dict[str, Any] = field(default_factory=dict)
    #: optional per-probe 1:N summaries filled by the comparison engine (faceaudit.compare); not
    #: merged by ``+`` (a merge of partial results has none)
    probe_summary: Any = None

    # ----- shape and counts -------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return self.samples.n_groups

    @property
    def n_mated(self) -> int:
        return int(self.genuine_score.size)

    @property
    def n_nonmated(self) -> int:
        return int(self.impostor_hist.sum())

    @property
    def genuine_group(self) -> np.ndarray:
        return self.samples.group_of_sample[self.genuine_probe]

    @property
    def tail_cell(self) -> tuple[np.ndarray, np.ndarray]:
        g = self.samples.group_of_sample
        return g[self.tail_probe], g[self.tail_reference]

    def _tail_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tail scores regrouped by cell (cell code g_probe * G + g_ref), each cell sorted ascending,
        the start offset of every cell, and the permutation from the tail arrays: built once, reused
        by every query."""
        key = (id(self.tail_score), self.tail_score.size)
        cached = getattr(self, "_tail_index_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        G = self.n_groups
        if G == 1 and _is_sorted(self.tail_score):
            # one cell, already in score order (the canonical order): index without copying
            n = self.tail_score.size
            out = (self.tail_score, np.array([0, n]), None)
            self._tail_index_cache = (key, out)
            return out
        gp, gr = self.tail_cell
        code = gp * G + gr
        order = np.lexsort((self.tail_score, code))
        scores = self.tail_score[order]
        starts = np.searchsorted(code[order], np.arange(G * G + 1), side="left")
        self._tail_index_cache = (key, (scores, starts, order))
        return scores, starts, order

    def tail_at_least(self, threshold: float, cells: np.ndarray) -> np.ndarray:
        """Indices into the tail arrays of the scores >= threshold in the cells of a (G, G) mask."""
        scores, starts, order = self._tail_index()
        parts = []
        for c in np.flatnonzero(cells.reshape(-1)):
            lo, hi = starts[c], starts[c + 1]
            first = lo + np.searchsorted(scores[lo:hi], threshold, side="left")
            parts.append(np.arange(first, hi) if order is None else order[first:hi])
        return np.concatenate(parts) if parts else np.empty(0, np.intp)

    def nonmated_at_least_by_cell(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(G, G) exact counts of non-mated scores >= threshold, and a (G, G) mask of the cells where
        the count is exact (threshold above every score of the cell that the tail did not keep)."""
        G = self.n_groups
        scores, starts, _ = self._tail_index()
        counts = np.empty(G * G, dtype=np.int64)
        for c in range(G * G):
            lo, hi = starts[c], starts[c + 1]
            counts[c] = hi - lo - np.searchsorted(scores[lo:hi], threshold, side="left")
        kept = np.diff(starts)
        below = self.impostor_hist.reshape(G * G, -1).sum(axis=1) - kept
        exact = (below == 0) | (threshold > self.below_max.reshape(-1))
        return counts.reshape(G, G), exact.reshape(G, G)

    def nonmated_counts(self) -> np.ndarray:
        """(G, G) number of non-mated comparisons per (probe group, reference group)."""
        return self.impostor_hist.sum(axis=2)

    # ----- queries ----------------------------------------------------------------------
    def cell_mask(self, probe_groups: Any = None, reference_groups: Any = None) -> np.ndarray:
        """(G, G) boolean mask of the cells with probe group in ``probe_groups`` and reference group
        in ``reference_groups`` (None = all groups)."""
        G = self.n_groups
        p = np.zeros(G, bool)
        r = np.zeros(G, bool)
        p[list(range(G)) if probe_groups is None else list(probe_groups)] = True
        r[list(range(G)) if reference_groups is None else list(reference_groups)] = True
        return p[:, None] & r[None, :]

    def genuine_scores(self, groups: Any = None) -> np.ndarray:
        """Sorted mated scores of subjects in ``groups`` (None = all)."""
        s = self.genuine_score
        if groups is not None:
            s = s[np.isin(self.genuine_group, list(groups))]
        return np.sort(s)

    def impostor_view(self, cells: np.ndarray | None = None) -> ImpostorView:
        """The exact view of the non-mated scores in the cells of a (G, G) mask (None = all)."""
        if cells is None:
            cells = np.ones((self.n_groups, self.n_groups), bool)
        scores, starts, _ = self._tail_index()
        codes = [c for c in np.flatnonzero(cells.reshape(-1)) if starts[c + 1] > starts[c]]
        if len(codes) == 1:  # one cell's scores are already sorted: a view, no copy
            tail = scores[starts[codes[0]]:starts[codes[0] + 1]]
        else:
            tail = np.sort(np.concatenate([scores[starts[c]:starts[c + 1]] for c in codes])) if codes \
                else np.empty(0)
        total = int(self.impostor_hist[cells].sum())
        n_below = total - int(tail.size)
        below = self.below_max[cells]
        below_max = float(below.max()) if (n_below > 0 and below.size) else -np.inf
        if n_below and tail.size and tail[0] <= below_max:
            # cells keep their tails from different cutoffs: a score another cell would not have kept
            # joins the bulk, so that the view's tail is exactly "every score above below_max"
            k = int(np.searchsorted(tail, below_max, side="right"))
            tail, n_below = tail[k:], n_below + k
        return ImpostorView(tail=tail, n_below=n_below, below_max=below_max)

    def nonmated_count_at_least(self, threshold: float, cells: np.ndarray | None = None) -> tuple[int, int]:
        """Bounds ``(low, high)`` on the number of non-mated scores >= threshold in the cells.

        Exact (``low == high``) when the threshold is above every score below the tail cutoff, or
        falls on an inner bin edge; otherwise the bin containing it bounds the answer.
        """
        if cells is None:
            cells = np.ones((self.n_groups, self.n_groups), bool)
        view = self.impostor_view(cells)
        if view.n_below == 0 or threshold > view.below_max:
            n = int(view.tail.size - np.searchsorted(view.tail, threshold, side="left"))
            return n, n
        hist = self.impostor_hist[cells].sum(axis=0)
        b = int(bin_index(np.array([threshold], dtype=np.float64), self.edges)[0])
        above = int(hist[b + 1 :].sum())
        if b > 0 and threshold == self.edges[b]:
            return above + int(hist[b]), above + int(hist[b])
        return above, above + int(hist[b])

    # ----- merging ----------------------------------------------------------------------
    def __add__(self, other: ScoreDistributions) -> ScoreDistributions:
        if not isinstance(other, ScoreDistributions):
            return NotImplemented
        if not np.array_equal(self.edges, other.edges):
            raise IncompatibleError("cannot merge: the two distributions have different bin edges")
        if self.samples is not other.samples and self.samples.fingerprint() != other.samples.fingerprint():
            raise IncompatibleError("cannot merge: the two distributions were built over different sample tables")
        if self.design != other.design:
            raise IncompatibleError(f"cannot merge a {self.design!r} design with a {other.design!r} one")
        cutoff = np.maximum(self.tail_cutoff, other.tail_cutoff)
        parts = [self._retail(cutoff), other._retail(cutoff)]
        below = np.maximum(parts[0][4], parts[1][4])
        tail = [np.concatenate([a[i] for a in parts]) for i in range(3)]
        genuine = [
            np.concatenate([self.genuine_score, other.genuine_score]),
            np.concatenate([self.genuine_probe, other.genuine_probe]),
            np.concatenate([self.genuine_reference, other.genuine_reference]),
        ]
        if self.impostor_subject_pairs is None or other.impostor_subject_pairs is None:
            pairs = None
        else:
            pairs = (self.impostor_subject_pairs + other.impostor_subject_pairs).tocsr()
        meta = dict(self.meta)
        meta.setdefault("merged_from", 1)
        meta["merged_from"] = int(meta["merged_from"]) + int(other.meta.get("merged_from", 1))
        return _canonical(
            ScoreDistributions(
                samples=self.samples,
                edges=self.edges,
                impostor_hist=self.impostor_hist + other.impostor_hist,
                tail_cutoff=cutoff,
                tail_score=tail[0],
                tail_probe=tail[1],
                tail_reference=tail[2],
                below_max=below,
                genuine_score=genuine[0],
                genuine_probe=genuine[1],
                genuine_reference=genuine[2],
                exclusions=self.exclusions + other.exclusions,
                impostor_subject_pairs=pairs,
                design=self.design,
                meta=meta,
            )
        )

    def _retail(self, cutoff: np.ndarray):
        """Tail arrays restricted to scores >= their cell's cutoff; dropped scores update below_max."""
        below = self.below_max.copy()
        if np.all(cutoff <= self.tail_cutoff):
            return self.tail_score, self.tail_probe, self.tail_reference, None, below
        gp, gr = self.tail_cell
        drop = self.tail_score < cutoff[gp, gr]
        if drop.any():
            np.maximum.at(below, (gp[drop], gr[drop]), self.tail_score[drop])
        keep = ~drop
        return self.tail_score[keep], self.tail_probe[keep], self.tail_reference[keep], None, below

    def with_tail_cutoff(self, cutoff: float | np.ndarray) -> ScoreDistributions:
        """A copy whose tail keeps only scores >= cutoff (cutoff may only rise: lower needs the data)."""
        cutoff = np.broadcast_to(np.asarray(cutoff, dtype=np.float64), self.below_max.shape).copy()
        if np.any(cutoff < self.tail_cutoff):
            raise InputError(
                f"cannot lower the tail cutoff from {self.tail_cutoff} to {cutoff} without the scores"
            )
        ts, tp, tr, _, below = self._retail(cutoff)
        return dataclasses.replace(self, tail_cutoff=cutoff, tail_score=ts, tail_probe=tp, tail_reference=tr,
                                   below_max=below)

    def __eq__(self, other: object) -> bool:  # exact, array-wise equality
        if not isinstance(other, ScoreDistributions):
            return NotImplemented
        arrays = ("edges", "impostor_hist", "tail_score", "tail_probe", "tail_reference", "below_max",
                  "genuine_score", "genuine_probe", "genuine_reference")
        if any(not np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays):
            return False
        if not np.array_equal(self.tail_cutoff, other.tail_cutoff) or self.exclusions != other.exclusions:
            return False
        a, b = self.impostor_subject_pairs, other.impostor_subject_pairs
        if (a is None) != (b is None):
            return False
        if a is not None and (a != b).nnz:
            return False
        return self.samples.fingerprint() == other.samples.fingerprint()

    __hash__ = None  # type: ignore[assignment]


def _canonical(d: ScoreDistributions) -> ScoreDistributions:
    """Sort the exact parts so that the result of a merge does not depend on the order of merging."""
    o = np.lexsort((d.tail_reference, d.tail_probe, d.tail_score))
    d.tail_score, d.tail_probe, d.tail_reference = d.tail_score[o], d.tail_probe[o], d.tail_reference[o]
    o = np.lexsort((d.genuine_reference, d.genuine_probe, d.genuine_score))
    d.genuine_score, d.genuine_probe, d.genuine_reference = (
        d.genuine_score[o], d.genuine_probe[o], d.genuine_reference[o])
    return d


class DistributionBuilder:
    """Accumulates comparisons, block by block, into a :class:`ScoreDistributions`.

    Feed it ``add(probe_index, reference_index, score)`` with sample indices into ``samples``; it
    classifies each pair as mated (same subject) or not, histograms the non-mated ones per group pair,
    keeps every non-mated score >= its cell's ``tail_cutoff`` (a scalar, or (G, G) per cell) exactly,
    and counts what it excludes and why
    (non-finite scores, self-comparisons). Memory does not grow with the number of non-mated pairs,
    only with the tail.
    """

    def __init__(
        self,
        samples: SampleIndex,
        edges: np.ndarray,
        tail_cutoff: float | np.ndarray = np.inf,
        *,
        keep_genuine: bool = True,
        track_subject_pairs: bool = True,
        design: str = "listed",
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.samples = samples
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or self.edges.size < 2 or np.any(np.diff(self.edges) <= 0):
            raise InputError("bin edges must be a strictly increasing 1-d array of at least 2 values")
        G = samples.n_groups
        self.tail_cutoff = np.broadcast_to(np.asarray(tail_cutoff, dtype=np.float64), (G, G)).copy()
        self._cutoff_flat = self.tail_cutoff.reshape(-1)
        B = self.edges.size - 1
        self._hist = np.zeros(G * G * B, dtype=np.int64)
        self._below = np.full(G * G, -np.inf)
        self._tail: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._gen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.keep_genuine = keep_genuine
        self.track_subject_pairs = track_subject_pairs
        self._pairs: list[sp.coo_array] = []
        self.exclusions: Counter = Counter()
        self.design = design
        self.meta = dict(meta or {})

    def add(self, probe: np.ndarray, reference: np.ndarray, score: np.ndarray) -> None:
        probe = np.asarray(probe, dtype=np.int64)
        reference = np.asarray(reference, dtype=np.int64)
        score = np.asarray(score, dtype=np.float64)
        finite = np.isfinite(score)
        if not finite.all():
            self.exclusions["non-finite score (NaN or infinite)"] += int((~finite).sum())
        same = probe == reference
        if same.any():
            self.exclusions["self-comparison (probe and reference are the same sample)"] += int(
                (same & finite).sum())
        ok = finite & ~same
        if not ok.all():
            probe, reference, score = probe[ok], reference[ok], score[ok]
        subj = self.samples.subject_of_sample
        sp_, sr = subj[probe], subj[reference]
        mated = sp_ == sr
        if self.keep_genuine and mated.any():
            self._gen.append((score[mated], probe[mated], reference[mated]))
        nm = ~mated
        if not nm.any():
            return
        p, r, s = probe[nm], reference[nm], score[nm]
        grp = self.samples.group_of_sample
        G = self.samples.n_groups
        B = self.edges.size - 1
        cell = grp[p] * G + grp[r]
        flat = cell * B + bin_index(s, self.edges)
        self._hist += np.bincount(flat, minlength=self._hist.size)
        in_tail = s >= self._cutoff_flat[cell]
        if in_tail.any():
            self._tail.append((s[in_tail], p[in_tail], r[in_tail]))
        if not in_tail.all():
            out = ~in_tail
            np.maximum.at(self._below, cell[out], s[out])
        if self.track_subject_pairs:
            S = self.samples.n_subjects
            self._pairs.append(
                sp.coo_array((np.ones(p.size, np.int64), (sp_[nm], sr[nm])), shape=(S, S)).tocsr()
            )
            if len(self._pairs) > 16:  # keep the pending list short
                self._pairs = [_sum_sparse(self._pairs)]

    def result(self) -> ScoreDistributions:
        G = self.samples.n_groups
        B = self.edges.size - 1

        def cat(parts, i, dtype):
            return np.concatenate([x[i] for x in parts]).astype(dtype) if parts else np.empty(0, dtype)

        pairs = None
        if self.track_subject_pairs:
            S = self.samples.n_subjects
            pairs = _sum_sparse(self._pairs) if self._pairs else sp.csr_array((S, S), dtype=np.int64)
        return _canonical(
            ScoreDistributions(
                samples=self.samples,
                edges=self.edges,
                impostor_hist=self._hist.reshape(G, G, B).copy(),
                tail_cutoff=self.tail_cutoff.copy(),
                tail_score=cat(self._tail, 0, np.float64),
                tail_probe=cat(self._tail, 1, np.int64),
                tail_reference=cat(self._tail, 2, np.int64),
                below_max=self._below.reshape(G, G).copy(),
                genuine_score=cat(self._gen, 0, np.float64),
                genuine_probe=cat(self._gen, 1, np.int64),
                genuine_reference=cat(self._gen, 2, np.int64),
                exclusions=Counter(self.exclusions),
                impostor_subject_pairs=pairs,
                design=self.design,
                meta=dict(self.meta),
            )
        )


def _sum_sparse(parts: list) -> sp.csr_array:
    total = parts[0]
    for p in itertools.islice(parts, 1, None):
        total = total + p
    return sp.csr_array(total)


def _is_sorted(a: np.ndarray) -> bool:
    return bool(a.size < 2 or np.all(a[:-1] <= a[1:]))
