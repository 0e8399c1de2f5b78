"""ScoreDistributions: the one type every measure reads.

Whatever produced the comparisons (a vendor's score file, an embedding matrix, a GPU engine, a Dask
cluster), the measures see the same object:

* mated (genuine) comparisons kept exactly, with both sample indices;
* non-mated (impostor) comparisons, per ordered group pair (probe group, reference group), as a
  histogram over fixed bin edges **plus every score at or above the cell's tail cutoff, exactly**, with
  its sample indices. Memory is O(min(groups^2, pairs / cell_limit) x bins + tail + genuine). The
  cutoff is per cell, so that a small group whose EER lies deep in the bulk keeps its own few pairs
  exactly without forcing every other cell to keep its bulk;
* a cell with at most ``cell_limit`` non-mated comparisons (default ``B // 4``) has no histogram row:
  it keeps **every** score exactly (those below its tail cutoff in the ``bulk_*`` arrays), and its
  histogram is derived from them when asked. Only the other cells have a dense row of ``B`` bins, in
  ``hist_rows`` (K, B), found through ``hist_row_of_cell`` (G, G; -1 for an exact cell). Nobody indexes
  this layout: :meth:`ScoreDistributions.cell_histogram`, :meth:`~ScoreDistributions.nonmated_counts`
  and :meth:`~ScoreDistributions.cell_at_least_edges` answer for any set of cells;
* counts that add up, and exclusions with their reasons;
* ``a + b`` merges two partial results exactly (blocks, workers, resumed runs).

Exactness rule (docs/design.md): a threshold, an FMR, an FNMR or an EER that faceaudit reports is exact for
the scores seen. The histogram only locates an answer; the exact tail finishes it. Where an answer falls
below the tail, :class:`~faceaudit.errors.NotExactError` is raised rather than a bin-resolved number
returned as if exact.

Memory bound (histogram part; tail and mated scores are what the answers need and come on top). With
``P`` non-mated comparisons, ``G`` groups, ``B`` bins and ``L = cell_limit``:
histogram rows ``<= min(G^2, P / (L + 1)) x B x 8`` bytes, exact scores of the cells without a row
``<= min(P, L x G^2) x 24`` bytes. With ``L = B // 4`` an exact cell never costs more than a row would
(``L x 24 < B x 8``), so the total is below the dense ``G^2 x B x 8`` and below ``56 x P`` bytes
(plus the (G, G) per-cell arrays: cutoff, below_max, row index, 24 bytes a cell). The comparison engine's
slot counts follow the rows: at most ``(2K + G + 1) x (B + guards) x 8`` bytes per chunk in flight. A
build whose histogram part would exceed :func:`histogram_memory_limit` (``FACEAUDIT_HISTOGRAM_MEMORY``,
default 4 GiB) is refused with :class:`~faceaudit.errors.HistogramMemoryError` before it allocates it.

Bins: ``edges`` has ``B + 1`` increasing values and defines ``B`` bins ``[edges[b], edges[b+1])``; the
first and last bins are open-ended (scores below ``edges[0]`` count in bin 0, scores at or above
``edges[-1]`` in bin ``B - 1``), so no score is ever dropped by the histogram.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit.errors import HistogramMemoryError, IncompatibleError, InputError, SampleTableError

if TYPE_CHECKING:  # scipy.sparse costs ~18 MiB to import: imported where subject pairs are counted
    import scipy.sparse as sp

__all__ = [
    "SampleIndex",
    "ImpostorView",
    "ScoreDistributions",
    "DistributionBuilder",
    "bin_index",
    "uniform_edges",
    "default_cell_limit",
    "histogram_memory_limit",
    "histogram_bytes",
    "check_histogram_memory",
    "HISTOGRAM_MEMORY_ENV",
    "id_text",
]

DEFAULT_BINS = 4096
#: bytes of one exactly kept non-mated score: the score and its two sample indices
EXACT_SCORE_BYTES = 24
#: the environment variable that sets the histogram memory limit (bytes, or with a K/M/G/T suffix)
HISTOGRAM_MEMORY_ENV = "FACEAUDIT_HISTOGRAM_MEMORY"
DEFAULT_HISTOGRAM_MEMORY = 4 << 30


def default_cell_limit(bins: int) -> int:
    """Cells with at most this many non-mated comparisons keep them all exactly, with no row of ``bins``
    bins: ``bins // 4`` (24 bytes a score, 8 a bin: such a cell never costs more than its row would)."""
    return max(0, int(bins) // 4)


def histogram_memory_limit() -> int:
    """The limit on the histogram part of a ScoreDistributions (rows and exact scores of the cells
    without one), in bytes: ``FACEAUDIT_HISTOGRAM_MEMORY`` (e.g. ``8G``, ``512M``, ``1073741824``),
    default 4 GiB."""
    raw = os.environ.get(HISTOGRAM_MEMORY_ENV, "").strip()
    if not raw:
        return DEFAULT_HISTOGRAM_MEMORY
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = raw.upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in units and not text[-1:].isdigit() else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value * units[unit]) and value * units[unit] >= 1):  # 1e300G: finite, its bytes not
        raise InputError(f"{HISTOGRAM_MEMORY_ENV}={raw!r} is not a positive size (e.g. 8G, 512M, 1073741824)")
    return int(value * units[unit])


def histogram_bytes(cell_counts: Any, bins: int, cell_limit: int) -> int:
    """Bytes of the histogram part for these per-cell non-mated counts: a row of ``bins`` int64 per cell
    past ``cell_limit``, 24 bytes per score of the others."""
    counts = np.asarray(cell_counts, np.int64).reshape(-1)
    binned = counts > cell_limit
    return int(binned.sum()) * int(bins) * 8 + int(counts[~binned].sum()) * EXACT_SCORE_BYTES


def check_histogram_memory(cell_counts: Any, bins: int, cell_limit: int, limit: int | None = None,
                           *, always: bool = False) -> None:
    """Raise :class:`HistogramMemoryError` when these cells' histograms need more than ``limit`` bytes
    (default :func:`histogram_memory_limit`); ``always``: raise with the figure in any case (a build that
    passed the limit on the way)."""
    limit = histogram_memory_limit() if limit is None else int(limit)
    need = histogram_bytes(cell_counts, bins, cell_limit)
    if need <= limit and not always:
        return
    counts = np.asarray(cell_counts).reshape(-1)
    binned = int((counts > cell_limit).sum())
    raise HistogramMemoryError(
        f"the group-pair histograms need {need / 2**30:.2f} GiB ({binned:,} of {counts.size:,} group-pair "
        f"cells with more than {cell_limit:,} comparisons x {bins:,} bins x 8 bytes, plus 24 bytes per score "
        f"of the others), over the limit of {limit / 2**30:.2f} GiB: use fewer bins or groups, or raise "
        f"{HISTOGRAM_MEMORY_ENV} (e.g. {HISTOGRAM_MEMORY_ENV}=16G)")


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

    A *window* view (``n_above > 0``, built by :func:`faceaudit.build.two_pass` for an EER) also leaves
    out the ``n_above`` scores above the window, known by count and by their minimum ``above_min``
    (> every score of ``tail``): a threshold in ``(below_max, above_min]`` has an exact count.
    """

    tail: np.ndarray
    n_below: int
    below_max: float
    n_above: int = 0
    above_min: float = np.inf

    @property
    def total(self) -> int:
        return int(self.tail.size + self.n_below + self.n_above)

    @classmethod
    def exact(cls, scores: Any) -> ImpostorView:
        return cls(tail=np.sort(np.asarray(scores, dtype=np.float64)), n_below=0, below_max=-np.inf)


@dataclass
class ScoreDistributions:
    """Mated scores kept exactly; non-mated scores as per-cell histograms plus an exact tail, or, for a
    cell with at most ``cell_limit`` of them, every score exactly.

    Build one with :class:`DistributionBuilder` (or the readers in :mod:`faceaudit.data`), merge with
    ``+``, query with :meth:`genuine_scores`, :meth:`impostor_view`, :meth:`cell_histogram` and
    :meth:`nonmated_counts`. The tail (``tail_*``) and ``below_max`` mean the same for every cell; a cell
    without a histogram row also keeps its scores below the cutoff, in ``bulk_*``.
    """

    samples: SampleIndex
    edges: np.ndarray
    hist_rows: np.ndarray  # (K, B) int64: one row of bins per cell with more than cell_limit comparisons
    hist_row_of_cell: np.ndarray  # (G, G) int64: the cell's row in hist_rows, -1 for an exact cell
    tail_cutoff: np.ndarray  # (G, G) float64: per cell, every non-mated score >= it is in the tail
    tail_score: np.ndarray  # float64, every non-mated score >= its cell's tail_cutoff
    tail_probe: np.ndarray  # int64 sample index
    tail_reference: np.ndarray
    below_max: np.ndarray  # (G, G) float64: largest non-mated score below the cutoff, -inf if none
    genuine_score: np.ndarray
    genuine_probe: np.ndarray
    genuine_reference: np.ndarray
    #: the scores below their cell's tail cutoff of the cells without a histogram row (canonical order)
    bulk_score: np.ndarray = field(default_factory=lambda: np.empty(0))
    bulk_probe: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    bulk_reference: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    #: a cell with at most this many non-mated comparisons keeps them all exactly (no row); -1: B // 4
    cell_limit: int = -1
    exclusions: Counter = field(default_factory=Counter)
    #: non-mated comparison counts per (probe subject, reference subject): the denominators of the
    #: subject-level bootstrap. None where the design is complete (all pairs), see ``design``.
    impostor_subject_pairs: sp.csr_array | None = None
    design: str = "listed"
    meta: dict[str, Any] = field(default_factory=dict)
    #: optional per-probe 1:N summaries filled by the comparison engine (faceaudit.compare); not
    #: merged by ``+`` (a merge of partial results has none)
    probe_summary: Any = None
    #: per subset (tuple of its finest groups), an EER window view (:mod:`faceaudit.eer_window`) where
    #: the exact tail does not reach the subset's EER (streamed score files); not merged by ``+``
    eer_views: dict = field(default_factory=dict)
    #: the exact scores of the histogram bins where answers fall below a capped tail
    #: (:class:`faceaudit.tail_windows.TailWindows`, ``faceaudit compare --max-tail``); not merged by ``+``
    windows: Any = None

    def eer_view(self, groups: Any = None) -> ImpostorView:
        """The view from which the EER of ``groups`` (None = all) is exact: the tail's, or the window
        read for it (a score file's EER window, or the bin of the crossing a capped tail keeps)."""
        groups = list(range(self.n_groups)) if groups is None else list(groups)
        window = self.eer_views.get(tuple(int(g) for g in groups))
        if window is not None:
            return window
        view = self.impostor_view(self.cell_mask(groups, groups))
        return view if self.windows is None else self.windows.eer_view(self, groups, view)

    def __post_init__(self) -> None:
        B = self.edges.size - 1
        if self.cell_limit < 0:
            self.cell_limit = default_cell_limit(B)
        G = self.samples.n_groups
        self.hist_row_of_cell = np.asarray(self.hist_row_of_cell, np.int64).reshape(G, G)
        rows = self.hist_row_of_cell.reshape(-1)
        K = int((rows >= 0).sum())
        if self.hist_rows.shape != (K, B):
            raise InputError(f"histogram rows of shape {self.hist_rows.shape} for {K} cells of {B} bins")
        if rows.min(initial=-1) < -1 or not np.array_equal(rows[rows >= 0], np.arange(K)):
            raise InputError("the histogram's row index must number the cells with a row 0, 1, ... "
                             "in cell order")

    # ----- shape and counts -------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return self.samples.n_groups

    @property
    def n_bins(self) -> int:
        return int(self.edges.size - 1)

    @property
    def n_mated(self) -> int:
        return int(self.genuine_score.size)

    @property
    def n_nonmated(self) -> int:
        return int(self.nonmated_counts().sum())

    @property
    def genuine_group(self) -> np.ndarray:
        return self.samples.group_of_sample[self.genuine_probe]

    @property
    def tail_cell(self) -> tuple[np.ndarray, np.ndarray]:
        g = self.samples.group_of_sample
        return g[self.tail_probe], g[self.tail_reference]

    def histogram_nbytes(self) -> int:
        """Bytes of the histogram part: the rows and the exact scores of the cells without one."""
        exact_tail = int(np.diff(self._exact_scores()[2]).sum()) - int(self.bulk_score.size)
        per_score = self.bulk_score.itemsize + self.bulk_probe.itemsize + self.bulk_reference.itemsize
        return int(self.hist_rows.nbytes + self.hist_row_of_cell.nbytes
                   + self.bulk_score.nbytes + self.bulk_probe.nbytes + self.bulk_reference.nbytes
                   + exact_tail * per_score)

    def _cached(self, name: str, build: Any) -> Any:
        """``build()``, kept while the arrays it reads are the same objects (a replace makes new ones)."""
        key = (self.tail_score, self.bulk_score, self.hist_rows, self.hist_row_of_cell)
        cached = self.__dict__.get(name)
        if cached is not None and all(a is b for a, b in zip(cached[0], key)):
            return cached[1]
        out = build()
        self.__dict__[name] = (key, out)
        return out

    def tail_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tail scores regrouped by cell (cell code g_probe * G + g_ref), each cell sorted ascending,
        the start offset of every cell, and the permutation from the tail arrays: built once, reused
        by every query."""
        return self._cached("_tail_index_cache", self._build_tail_index)

    def _build_tail_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        G = self.n_groups
        if G == 1 and _is_sorted(self.tail_score):
            # one cell, already in score order (the canonical order): index without copying
            return self.tail_score, np.array([0, self.tail_score.size]), None
        gp, gr = self.tail_cell
        code = gp * G + gr
        order = np.lexsort((self.tail_score, code))
        starts = np.searchsorted(code[order], np.arange(G * G + 1), side="left")
        return self.tail_score[order], starts, order

    def _exact_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every score of the cells without a histogram row (tail and bulk), by cell then score: the
        scores, their bins, and each cell's start offset (G * G + 1)."""
        return self._cached("_exact_cache", self._build_exact_scores)

    def _build_exact_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        G = self.n_groups
        g = self.samples.group_of_sample
        exact = (self.hist_row_of_cell.reshape(-1) < 0)
        tail_code, tail_scores = np.empty(0, np.int64), np.empty(0)
        if exact.any():  # else no tail score is wanted (and the tail's cell codes cost 3 tail-long arrays)
            tcode = g[self.tail_probe] * G + g[self.tail_reference]
            in_exact = exact[tcode]
            tail_code, tail_scores = tcode[in_exact], self.tail_score[in_exact]
        code = np.concatenate([tail_code, g[self.bulk_probe] * G + g[self.bulk_reference]])
        scores = np.concatenate([tail_scores, self.bulk_score]).astype(np.float64)
        order = np.lexsort((scores, code))
        scores = scores[order]
        starts = np.searchsorted(code[order], np.arange(G * G + 1), side="left")
        return scores, bin_index(scores, self.edges), starts

    def tail_at_least(self, threshold: float, cells: np.ndarray) -> np.ndarray:
        """Indices into the tail arrays of the scores >= threshold in the cells of a (G, G) mask."""
        scores, starts, order = self.tail_index()
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
        scores, starts, _ = self.tail_index()
        counts = np.empty(G * G, dtype=np.int64)
        for c in range(G * G):
            lo, hi = starts[c], starts[c + 1]
            counts[c] = hi - lo - np.searchsorted(scores[lo:hi], threshold, side="left")
        kept = np.diff(starts)
        below = self.nonmated_counts().reshape(-1) - kept
        exact = (below == 0) | (threshold > self.below_max.reshape(-1))
        if self.windows is not None and not exact.all() and threshold == threshold:
            self.windows.fill_counts(self, threshold, counts, exact)  # the cells whose bin is held
        return counts.reshape(G, G), exact.reshape(G, G)

    def nonmated_counts(self) -> np.ndarray:
        """(G, G) number of non-mated comparisons per (probe group, reference group)."""
        return self._cached("_counts_cache", self._build_counts).copy()

    def _build_counts(self) -> np.ndarray:
        G = self.n_groups
        row = self.hist_row_of_cell.reshape(-1)
        binned = row >= 0
        counts = np.diff(self._exact_scores()[2]).astype(self.hist_rows.dtype)
        counts[binned] = self.hist_rows.sum(axis=1)[row[binned]]
        return counts.reshape(G, G)

    def cell_histogram(self, cells: np.ndarray | None = None) -> np.ndarray:
        """(B,) bin counts of the non-mated scores of the cells of a (G, G) mask (None = all): the rows
        of the cells that have one, the exact scores of the others binned."""
        G, B = self.n_groups, self.n_bins
        mask = np.ones(G * G, bool) if cells is None else np.asarray(cells, bool).reshape(-1)
        row = self.hist_row_of_cell.reshape(-1)
        out = _sum_rows(self.hist_rows, np.sort(row[mask & (row >= 0)]))
        _, bins, starts = self._exact_scores()
        want = np.flatnonzero(mask & (row < 0) & (starts[1:] > starts[:-1]))
        if want.size:
            take = np.concatenate([bins[starts[c]:starts[c + 1]] for c in want])
            out += np.bincount(take, minlength=B).astype(out.dtype)
        return out

    def cell_at_least_edges(self, cell: int, edge_index: np.ndarray) -> np.ndarray:
        """Count of the flat cell's non-mated scores >= ``edges[b]`` for each inner edge index ``b``
        (1 <= b < B): exact, from the row (the sum of the bins from b) or from the exact scores."""
        b = np.asarray(edge_index, np.intp)
        r = int(self.hist_row_of_cell.reshape(-1)[cell])
        if r >= 0:
            from_top = np.cumsum(self.hist_rows[r, ::-1])[::-1]
            return from_top[b].astype(np.int64)
        scores, _, starts = self._exact_scores()
        s = scores[starts[cell]:starts[cell + 1]]
        return (s.size - np.searchsorted(s, self.edges[b], side="left")).astype(np.int64)

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
        scores, starts, _ = self.tail_index()
        codes = [c for c in np.flatnonzero(cells.reshape(-1)) if starts[c + 1] > starts[c]]
        if len(codes) == 1:  # one cell's scores are already sorted: a view, no copy
            tail = scores[starts[codes[0]]:starts[codes[0] + 1]]
        else:
            tail = np.sort(np.concatenate([scores[starts[c]:starts[c + 1]] for c in codes])) if codes \
                else np.empty(0)
        total = int(self.nonmated_counts()[cells].sum())
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
        if self.windows is not None:  # a capped tail: the bin of the threshold may be held exactly
            view = self.windows.threshold_view(self, cells, threshold, view)
        if view.n_below == 0 or threshold > view.below_max:
            n = int(view.n_above + view.tail.size - np.searchsorted(view.tail, threshold, side="left"))
            return n, n
        hist = self.cell_histogram(cells)
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
            raise IncompatibleError("cannot merge: the two distributions were built over different "
                                    "sample tables")
        if self.design != other.design:
            raise IncompatibleError(f"cannot merge a {self.design!r} design with a {other.design!r} one")
        if self.cell_limit != other.cell_limit:
            raise IncompatibleError(f"cannot merge: cells kept exact up to {self.cell_limit} and "
                                    f"{other.cell_limit} comparisons")
        cutoff = np.maximum(self.tail_cutoff, other.tail_cutoff)
        parts = [self._retail(cutoff), other._retail(cutoff)]
        rows, row_of_cell, keep_bulk = _merge_cells(self, other, parts)
        below = np.maximum(parts[0][4], parts[1][4])
        tail = [np.concatenate([a[i] for a in parts]) for i in range(3)]
        bulk = [np.concatenate([a[3][i][keep] for a, keep in zip(parts, keep_bulk)]) for i in range(3)]
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
                samples=self.samples, edges=self.edges, hist_rows=rows, hist_row_of_cell=row_of_cell,
                tail_cutoff=cutoff, tail_score=tail[0], tail_probe=tail[1], tail_reference=tail[2],
                below_max=below, genuine_score=genuine[0], genuine_probe=genuine[1],
                genuine_reference=genuine[2], bulk_score=bulk[0], bulk_probe=bulk[1], bulk_reference=bulk[2],
                cell_limit=self.cell_limit, exclusions=self.exclusions + other.exclusions,
                impostor_subject_pairs=pairs, design=self.design, meta=meta,
            )
        )

    def _retail(self, cutoff: np.ndarray):
        """Tail arrays restricted to scores >= their cell's cutoff; dropped scores update below_max and,
        in a cell without a histogram row, join the bulk. Returns (score, probe, reference, bulk, below)."""
        below = self.below_max.copy()
        bulk = (self.bulk_score, self.bulk_probe, self.bulk_reference)
        if np.all(cutoff <= self.tail_cutoff):
            return self.tail_score, self.tail_probe, self.tail_reference, bulk, below
        gp, gr = self.tail_cell
        drop = self.tail_score < cutoff[gp, gr]
        if drop.any():
            np.maximum.at(below, (gp[drop], gr[drop]), self.tail_score[drop])
            to_bulk = drop & (self.hist_row_of_cell[gp, gr] < 0)
            bulk = tuple(np.concatenate([b, t[to_bulk]]) for b, t in
                         zip(bulk, (self.tail_score, self.tail_probe, self.tail_reference)))
        keep = ~drop
        return self.tail_score[keep], self.tail_probe[keep], self.tail_reference[keep], bulk, below

    def with_tail_cutoff(self, cutoff: float | np.ndarray) -> ScoreDistributions:
        """A copy whose tail keeps only scores >= cutoff (cutoff may only rise: lower needs the data)."""
        cutoff = np.broadcast_to(np.asarray(cutoff, dtype=np.float64), self.below_max.shape).copy()
        if np.any(cutoff < self.tail_cutoff):
            raise InputError(
                f"cannot lower the tail cutoff from {self.tail_cutoff} to {cutoff} without the scores"
            )
        ts, tp, tr, bulk, below = self._retail(cutoff)
        return _canonical(dataclasses.replace(
            self, tail_cutoff=cutoff, tail_score=ts, tail_probe=tp, tail_reference=tr, below_max=below,
            bulk_score=bulk[0], bulk_probe=bulk[1], bulk_reference=bulk[2]))

    def __eq__(self, other: object) -> bool:  # exact, array-wise equality
        if not isinstance(other, ScoreDistributions):
            return NotImplemented
        arrays = ("edges", "hist_rows", "hist_row_of_cell", "tail_score", "tail_probe", "tail_reference",
                  "below_max", "genuine_score", "genuine_probe", "genuine_reference", "bulk_score",
                  "bulk_probe", "bulk_reference")
        if any(not np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays):
            return False
        if not np.array_equal(self.tail_cutoff, other.tail_cutoff) or self.exclusions != other.exclusions:
            return False
        if self.cell_limit != other.cell_limit or (self.windows is None) != (other.windows is None):
            return False
        if self.windows is not None and self.windows != other.windows:
            return False
        a, b = self.impostor_subject_pairs, other.impostor_subject_pairs
        if (a is None) != (b is None):
            return False
        if a is not None and (a != b).nnz:
            return False
        return self.samples.fingerprint() == other.samples.fingerprint()

    __hash__ = None  # type: ignore[assignment]


def _sum_rows(rows: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Sum of the rows ``sel`` (sorted, distinct) of a (K, B) array, without copying them all at once."""
    if sel.size == rows.shape[0]:
        return rows.sum(axis=0)
    out = np.zeros(rows.shape[1], rows.dtype)
    for k in range(0, sel.size, 256):
        out += rows[sel[k:k + 256]].sum(axis=0)
    return out


def _merge_cells(a: ScoreDistributions, b: ScoreDistributions, parts: list) -> tuple:
    """The histogram rows and row index of ``a + b``: a cell has a row when the two together hold more than
    ``cell_limit`` comparisons (or either had one); the exact scores of a cell that gains one are binned
    into it. ``parts``: each side's ``_retail`` result. Also returns, per side, which bulk entries stay."""
    G, B = a.n_groups, a.n_bins
    had = [d.hist_row_of_cell.reshape(-1) for d in (a, b)]
    binned = (a.nonmated_counts() + b.nonmated_counts()).reshape(-1) > a.cell_limit
    binned |= (had[0] >= 0) | (had[1] >= 0)
    new_row = np.full(G * G, -1, np.int64)
    new_row[binned] = np.arange(int(binned.sum()))
    dtype = np.result_type(a.hist_rows.dtype, b.hist_rows.dtype)
    rows = np.zeros((int(binned.sum()), B), dtype)
    g = a.samples.group_of_sample
    keep_bulk = []
    for d, row, part in zip((a, b), had, parts):
        have = np.flatnonzero(row >= 0)
        for k in range(0, have.size, 256):  # a side's rows into the new ones, a few at a time
            c = have[k:k + 256]
            rows[new_row[c]] += d.hist_rows[row[c]]
        gain = binned & (row < 0)  # the side's exact cells that now have a row: bin their scores
        ts, tp, tr, (bs, bp, br), _ = part
        scores = np.concatenate([ts, bs])
        code = np.concatenate([g[tp] * G + g[tr], g[bp] * G + g[br]])
        move = gain[code]
        if move.any():
            flat = new_row[code[move]] * B + bin_index(scores[move].astype(np.float64), a.edges)
            rows += np.bincount(flat, minlength=rows.size).reshape(rows.shape).astype(dtype)
        keep_bulk.append(~binned[code[ts.size:]])
    return rows, new_row.reshape(G, G), keep_bulk


def _canonical(d: ScoreDistributions) -> ScoreDistributions:
    """Sort the exact parts so that the result of a merge does not depend on the order of merging."""
    o = np.lexsort((d.tail_reference, d.tail_probe, d.tail_score))
    d.tail_score, d.tail_probe, d.tail_reference = d.tail_score[o], d.tail_probe[o], d.tail_reference[o]
    o = np.lexsort((d.genuine_reference, d.genuine_probe, d.genuine_score))
    d.genuine_score, d.genuine_probe, d.genuine_reference = (
        d.genuine_score[o], d.genuine_probe[o], d.genuine_reference[o])
    if d.bulk_score.size:
        o = np.lexsort((d.bulk_reference, d.bulk_probe, d.bulk_score))
        d.bulk_score, d.bulk_probe, d.bulk_reference = d.bulk_score[o], d.bulk_probe[o], d.bulk_reference[o]
    return d


class DistributionBuilder:
    """Accumulates comparisons, block by block, into a :class:`ScoreDistributions`.

    Feed it ``add(probe_index, reference_index, score)`` with sample indices into ``samples``; it
    classifies each pair as mated (same subject) or not, keeps every non-mated score of a cell exactly
    while the cell has at most ``cell_limit`` of them, gives a cell that passes the limit a histogram
    row (its scores so far binned into it), keeps every non-mated score >= its cell's ``tail_cutoff`` (a
    scalar, or (G, G) per cell) exactly, and counts what it excludes and why (non-finite scores,
    self-comparisons). Memory does not grow with the number of non-mated pairs, only with the tail and
    the rows (see the module docstring for the bound). Past ``memory_limit`` bytes of rows and exact
    scores it keeps counting, allocates nothing more, and :meth:`result` raises
    :class:`~faceaudit.errors.HistogramMemoryError` with the figure the whole input needs.

    ``histogram=False`` (a second pass that only needs the tail) allocates no rows: the result's rows
    are zeros that are never written.
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
        cell_limit: int | None = None,
        memory_limit: int | None = None,
        histogram: bool = True,
    ) -> None:
        self.samples = samples
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or self.edges.size < 2 or np.any(np.diff(self.edges) <= 0):
            raise InputError("bin edges must be a strictly increasing 1-d array of at least 2 values")
        G = samples.n_groups
        B = self.edges.size - 1
        self.tail_cutoff = np.broadcast_to(np.asarray(tail_cutoff, dtype=np.float64), (G, G)).copy()
        self._cutoff_flat = self.tail_cutoff.reshape(-1)
        self.cell_limit = default_cell_limit(B) if cell_limit is None else int(cell_limit)
        self.memory_limit = histogram_memory_limit() if memory_limit is None else int(memory_limit)
        self.histogram = histogram
        self._counts = np.zeros(G * G, np.int64)
        self._row = np.full(G * G, -1, np.int64)  # row of each cell in _rows (in order of promotion)
        self._n_rows = 0
        self._rows = np.zeros((0, B), np.int64)
        self._small: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # every score of row-less cells
        self._n_small = 0
        self._over = False  # past the memory limit: counting only
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
        self._add_nonmated(p, r, s)
        if self.track_subject_pairs:
            import scipy.sparse as sp  # here: scipy.sparse costs ~18 MiB to import, only for subject pairs

            S = self.samples.n_subjects
            self._pairs.append(
                sp.coo_array((np.ones(p.size, np.int64), (sp_[nm], sr[nm])), shape=(S, S)).tocsr()
            )
            if len(self._pairs) > 16:  # keep the pending list short
                self._pairs = [_sum_sparse(self._pairs)]

    def _cells(self, p: np.ndarray, r: np.ndarray) -> np.ndarray:
        grp = self.samples.group_of_sample
        return grp[p] * self.samples.n_groups + grp[r]

    def _add_nonmated(self, p: np.ndarray, r: np.ndarray, s: np.ndarray) -> None:
        cell = self._cells(p, r)
        before = self._counts.copy()
        self._counts += np.bincount(cell, minlength=self._counts.size)
        if self._over:
            return
        cells = np.flatnonzero((self._counts > self.cell_limit) & (self._row < 0))
        self._promote(cells, int(before[cells].sum()))
        if self._over:
            return
        row = self._row[cell]
        small = row < 0
        if not small.any():  # the usual case with few groups: every cell has its row
            self._bin_and_tail(p, r, s, cell, row)
            return
        self._small.append((s[small], p[small], r[small]))
        self._n_small += int(small.sum())
        if not small.all():
            big = ~small
            self._bin_and_tail(p[big], r[big], s[big], cell[big], row[big])

    def _bin_and_tail(self, p, r, s, cell, row) -> None:
        """Scores of cells with a row: into the row's bins, the tail or the cell's below_max."""
        if self.histogram:
            B = self.edges.size - 1
            flat = row * B + bin_index(s, self.edges)
            self._rows[: self._n_rows] += np.bincount(flat, minlength=self._n_rows * B).reshape(-1, B)
        in_tail = s >= self._cutoff_flat[cell]
        if in_tail.any():
            self._tail.append((s[in_tail], p[in_tail], r[in_tail]))
        if not in_tail.all():
            out = ~in_tail
            np.maximum.at(self._below, cell[out], s[out])

    def _promote(self, cells: np.ndarray, n_moving: int) -> None:
        """Give these cells (past the limit) rows, and move their ``n_moving`` exact scores so far into
        them. Refuses (counting only from then on) when the rows and the exact scores left would pass
        the memory limit: never more than the whole input needs, since a cell only gains a row."""
        if not cells.size:
            return
        B = self.edges.size - 1
        need = (self._n_rows + cells.size) * B * 8 + (self._n_small - n_moving) * EXACT_SCORE_BYTES
        if need > self.memory_limit:
            self._over = True
            self._small, self._tail, self._rows = [], [], np.zeros((0, B), np.int64)
            return
        self._row[cells] = np.arange(self._n_rows, self._n_rows + cells.size)
        self._n_rows += cells.size
        if self.histogram and self._n_rows > self._rows.shape[0]:
            grown = np.zeros((max(self._n_rows, 2 * self._rows.shape[0]), B), np.int64)
            grown[: self._rows.shape[0]] = self._rows
            self._rows = grown
        if not self._small:
            return
        s, p, r = (np.concatenate([x[i] for x in self._small]) for i in range(3))
        cell = self._cells(p, r)
        move = self._row[cell] >= 0
        self._small = [(s[~move], p[~move], r[~move])]
        self._n_small = int((~move).sum())
        if move.any():
            self._bin_and_tail(p[move], r[move], s[move], cell[move], self._row[cell[move]])

    def result(self) -> ScoreDistributions:
        G = self.samples.n_groups
        B = self.edges.size - 1
        if self._over:
            check_histogram_memory(self._counts, B, self.cell_limit, self.memory_limit, always=True)

        def cat(parts, i, dtype):
            return np.concatenate([x[i] for x in parts]).astype(dtype) if parts else np.empty(0, dtype)

        # rows in the order of their cells (the canonical layout), whatever the order of promotion
        binned = self._row >= 0
        row_of_cell = np.full(G * G, -1, np.int64)
        row_of_cell[binned] = np.arange(int(binned.sum()))
        if self.histogram:
            rows = self._rows[self._row[binned]]
        else:
            rows = np.zeros((int(binned.sum()), B), np.int64)
        small = [tuple(cat(self._small, i, dt) for i, dt in enumerate((np.float64, np.int64, np.int64)))]
        s, p, r = small[0]
        cell = self._cells(p, r)
        in_tail = s >= self._cutoff_flat[cell]
        below = self._below.copy()
        np.maximum.at(below, cell[~in_tail], s[~in_tail])
        tail = self._tail + [(s[in_tail], p[in_tail], r[in_tail])]
        pairs = None
        if self.track_subject_pairs:
            import scipy.sparse as sp  # here: scipy.sparse costs ~18 MiB to import, only for subject pairs

            S = self.samples.n_subjects
            pairs = _sum_sparse(self._pairs) if self._pairs else sp.csr_array((S, S), dtype=np.int64)
        return _canonical(
            ScoreDistributions(
                samples=self.samples,
                edges=self.edges,
                hist_rows=rows,
                hist_row_of_cell=row_of_cell.reshape(G, G),
                tail_cutoff=self.tail_cutoff.copy(),
                tail_score=cat(tail, 0, np.float64),
                tail_probe=cat(tail, 1, np.int64),
                tail_reference=cat(tail, 2, np.int64),
                below_max=below.reshape(G, G),
                genuine_score=cat(self._gen, 0, np.float64),
                genuine_probe=cat(self._gen, 1, np.int64),
                genuine_reference=cat(self._gen, 2, np.int64),
                bulk_score=s[~in_tail],
                bulk_probe=p[~in_tail],
                bulk_reference=r[~in_tail],
                cell_limit=self.cell_limit,
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
    import scipy.sparse as sp

    return sp.csr_array(total)


def _is_sorted(a: np.ndarray) -> bool:
    return bool(a.size < 2 or np.all(a[:-1] <= a[1:]))
