"""1:N candidate lists returned by a closed system (the NIST FRTE 1:N protocol), read and validated.

A candidate file has one row per returned candidate: ``search_id, probe, rank, candidate`` and
optionally ``score`` and/or ``decision``. A search that returned nothing is one row with ``rank`` and
``candidate`` empty. The gallery file (``sample_id``) lists what was enrolled; the sample table gives
subjects and groups. A search is mated when the probe's subject has another sample in the gallery
(the probe itself, if enrolled, is not part of its own search).

What a list says, and where it stops saying it (:attr:`CandidateLists.exact_from`):

* a **full** list (as long as the stated ``list_length``) holds every candidate scoring strictly
  above its lowest returned score (ties at it may have been cut);
* a **short** list holds every candidate the system would return: every one at or above the system's
  return threshold, when stated (``candidate_threshold``), else at or above its own lowest score;
  an empty list without a stated threshold says nothing about any threshold;
* with decisions only, a match is score 1 and a no-match 0, and the system's point is ``score >= 1``.

Named errors: a list longer than stated (:class:`ListTooLongError`), a rank used twice
(:class:`DuplicateRankError`), a candidate that was not enrolled (:class:`CandidateNotInGalleryError`),
ranks with gaps, scores rising with rank, matches below a no-match, a probe returned as its own
candidate, a search id used for two probes, a probe searched twice (:class:`CandidateFileError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceaudit.data.decisions import parse_decisions, sample_indices
from faceaudit.data.tables import file_sha256, read_table
from faceaudit.errors import InputError
from faceaudit.scores import SampleIndex

__all__ = [
    "CandidateLists",
    "CandidateFileError",
    "CandidateNotInGalleryError",
    "DuplicateRankError",
    "GalleryFileError",
    "ListTooLongError",
    "read_candidate_lists",
    "read_gallery",
    "candidate_lists_from_arrays",
]


class CandidateFileError(InputError):
    """A candidate-list file is malformed."""


class DuplicateRankError(CandidateFileError):
    """Two candidates of one search share a rank."""


class ListTooLongError(CandidateFileError):
    """A search returned more candidates than the stated list length."""


class CandidateNotInGalleryError(CandidateFileError):
    """A returned candidate is not in the gallery file."""


class GalleryFileError(InputError):
    """The gallery file is malformed (missing column, duplicates, samples not in the sample table)."""


@dataclass(frozen=True)
class CandidateLists:
    """Validated candidate lists, one per probe, in sample-table order.

    ``probes`` indexes the probes only (its groups and subjects are the sample table's);
    ``probe_sample`` maps each probe to its row of the full sample table ``samples``. Per probe ``p``:
    ``candidate[offsets[p]:offsets[p+1]]`` (rows of ``samples``) in rank order, with ``score`` (float;
    1 / 0 for decisions; NaN when only ranks were returned).
    """

    samples: SampleIndex
    probes: SampleIndex
    probe_sample: np.ndarray
    gallery: np.ndarray
    list_length: int
    mode: str  # "score", "decision" or "rank"
    offsets: np.ndarray
    candidate: np.ndarray
    score: np.ndarray
    candidate_threshold: float | None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def full(self) -> np.ndarray:
        """Lists cut at the stated length (more candidates may exist below them)."""
        return self.lengths >= self.list_length

    @property
    def exact_from(self) -> np.ndarray:
        """Per probe, the lowest threshold at which its list holds every candidate scoring at least it."""
        n = self.lengths.size
        out = np.full(n, np.inf)
        nz = self.lengths > 0
        lowest = np.full(n, np.inf)
        lowest[nz] = self.score[self.offsets[1:][nz] - 1]
        full = self.full
        out[full & nz] = np.nextafter(lowest[full & nz], np.inf)
        stated = 1.0 if self.mode == "decision" else self.candidate_threshold
        short = ~full
        out[short] = lowest[short] if stated is None else np.minimum(lowest[short], stated)
        # every enrolled sample (the probe itself aside) returned: complete at any threshold
        available = self.gallery.size - np.isin(self.probe_sample, self.gallery)
        out[self.lengths >= available] = -np.inf
        return out


def read_gallery(path: str | Path, samples: SampleIndex) -> np.ndarray:
    """Rows of the sample table that were enrolled, from a file with a ``sample_id`` column."""
    table = read_table(path, text=("sample_id",), what="gallery file", error=GalleryFileError)
    where = repr(str(path))
    try:
        idx = sample_indices(table.column("sample_id"), samples, "gallery sample", where)
    except InputError as exc:
        raise GalleryFileError(str(exc)) from None
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise GalleryFileError(
            f"gallery file {where} lists {int((counts > 1).sum())} sample(s) more than once, e.g. "
            f"{samples.sample_ids[uniq[counts > 1][0]]!r}"
        )
    return np.sort(idx)


def _probe_index(samples: SampleIndex, rows: np.ndarray) -> SampleIndex:
    labels = [samples.group_labels[g] for g in samples.group_of_sample[rows]]
    attrs = {c: [lab[k] for lab in labels] for k, c in enumerate(samples.group_columns)}
    subjects = samples.subject_ids[samples.subject_of_sample[rows]]
    return SampleIndex.from_columns(samples.sample_ids[rows], subjects, attrs)


def _search_probes(
    search: pa.ChunkedArray, probe: np.ndarray, samples: SampleIndex, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Search code of every row, and the probe of each search; one probe per search, one search per probe."""
    if search.null_count:
        raise CandidateFileError(f"{where}: search_id is empty in {search.null_count} row(s)")
    codes = np.asarray(pc.dictionary_encode(search.combine_chunks()).indices.to_numpy(), dtype=np.int64)
    n_search = int(codes.max()) + 1
    first = np.full(n_search, -1, np.int64)
    first[codes[::-1]] = probe[::-1]
    bad = np.flatnonzero(first[codes] != probe)
    if bad.size:
        raise CandidateFileError(
            f"{where}: search {search[int(bad[0])].as_py()!r} names two probes (data row {int(bad[0]) + 1})"
        )
    uniq, counts = np.unique(first, return_counts=True)
    if (counts > 1).any():
        raise CandidateFileError(
            f"{where}: probe {samples.sample_ids[uniq[counts > 1][0]]!r} is searched more than "
            "once; give one search per probe"
        )
    return codes, first


def _ranks(column: pa.ChunkedArray, empty: np.ndarray, where: str) -> np.ndarray:
    rank = np.asarray(pc.fill_null(column, np.nan).to_numpy(), dtype=np.float64)
    bad = ~empty & ~((rank >= 1) & (rank == np.floor(rank)) & (rank < 2**31))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CandidateFileError(f"{where}: rank {rank[i]!r} at data row {i + 1} is not a whole number >= 1")
    return np.where(empty, 0, rank).astype(np.int64)


def read_candidate_lists(
    path: str | Path,
    samples: SampleIndex,
    gallery: np.ndarray,
    *,
    list_length: int,
    candidate_threshold: float | None = None,
    use: str = "auto",
) -> CandidateLists:
    """Read and validate a candidate file against the sample table and the enrolled ``gallery`` rows.

    ``use``: ``"auto"`` (scores when the file has them, else decisions, else ranks only), or force
    ``"score"``, ``"decision"`` or ``"rank"``.
    """
    where = repr(str(path))
    table = read_table(
        path,
        text=("search_id", "probe", "candidate", "decision"),
        ids=("search_id", "probe", "candidate"),
        numbers=("rank", "score"),
        optional=("score", "decision"),
        what="candidate file",
        error=CandidateFileError,
    )
    probe = sample_indices(table.column("probe"), samples, "probe", where)
    empty = np.asarray(table.column("candidate").is_null().to_numpy(zero_copy_only=False))
    no_rank = np.asarray(table.column("rank").is_null().to_numpy(zero_copy_only=False))
    if (empty != no_rank).any():
        i = int(np.flatnonzero(empty != no_rank)[0])
        raise CandidateFileError(
            f"{where}: data row {i + 1} has a rank without a candidate or a candidate without a "
            "rank (an empty search is one row with both empty)"
        )
    cand = np.full(table.num_rows, -1, np.int64)
    if (~empty).any():
        cand[~empty] = sample_indices(
            table.column("candidate").filter(pa.array(~empty)), samples, "candidate", where
        )
    rank = _ranks(table.column("rank"), empty, where)
    codes, search_probe = _search_probes(table.column("search_id"), probe, samples, where)
    mode, score = _values(table, empty, use, where)
    return candidate_lists_from_arrays(
        samples,
        gallery,
        codes,
        search_probe,
        rank,
        cand,
        score,
        mode=mode,
        list_length=list_length,
        candidate_threshold=candidate_threshold,
        where=where,
        manifest={"path": str(path), "sha256": file_sha256(path), "rows": table.num_rows, "read_as": mode},
    )


def _values(table: pa.Table, empty: np.ndarray, use: str, where: str) -> tuple[str, np.ndarray]:
    if use not in ("auto", "score", "decision", "rank"):
        raise InputError(f"use must be 'auto', 'score', 'decision' or 'rank', got {use!r}")
    names = table.column_names
    decision = None
    if "decision" in names:
        words = table.column("decision").filter(pa.array(~empty))
        decision = parse_decisions(words, where) if len(words) else np.zeros(0, bool)
    has_score = "score" in names and table.column("score").null_count < table.num_rows
    mode = (
        use if use != "auto" else ("score" if has_score else "decision" if decision is not None else "rank")
    )
    out = np.full(table.num_rows, np.nan)
    if mode == "score":
        if not has_score:
            raise CandidateFileError(f"{where} has no scores")
        s = np.asarray(pc.fill_null(table.column("score"), np.nan).to_numpy(), dtype=np.float64)
        bad = ~empty & ~np.isfinite(s)
        if bad.any():
            raise CandidateFileError(
                f"{where}: {int(bad.sum())} candidate(s) have no finite score, first at data row "
                f"{int(np.flatnonzero(bad)[0]) + 1} (give a score for every candidate or none)"
            )
        out = np.where(empty, np.nan, s)
    elif mode == "decision":
        if decision is None:
            raise CandidateFileError(f"{where} has no decision column")
        out[~empty] = np.where(decision, 1.0, 0.0)
    return mode, out


@dataclass(frozen=True)
class _Rows:
    """The file's rows sorted by (search, rank), with where each search starts and how long it is."""

    search: np.ndarray
    rank: np.ndarray
    candidate: np.ndarray  # sample row, -1 for an empty search
    score: np.ndarray
    empty: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    rows: np.ndarray  # 1-based data rows of the file, for messages

    @classmethod
    def sorted(cls, search, rank, candidate, score) -> _Rows:
        order = np.lexsort((rank, search))
        search = search[order]
        starts = np.r_[0, np.flatnonzero(np.diff(search)) + 1]
        return cls(
            search,
            rank[order],
            candidate[order],
            score[order],
            candidate[order] < 0,
            starts,
            np.diff(np.r_[starts, search.size]),
            order + 1,
        )


def candidate_lists_from_arrays(
    samples: SampleIndex,
    gallery: np.ndarray,
    search: np.ndarray,
    search_probe: np.ndarray,
    rank: np.ndarray,
    candidate: np.ndarray,
    score: np.ndarray,
    *,
    mode: str,
    list_length: int,
    candidate_threshold: float | None = None,
    where: str = "the candidate lists",
    manifest: dict | None = None,
) -> CandidateLists:
    """Validate rows (search code, rank, candidate row or -1 for an empty search, score) into lists."""
    if int(list_length) < 1:
        raise InputError(f"the stated list length must be >= 1, got {list_length!r}")
    if candidate_threshold is not None and not np.isfinite(candidate_threshold):
        raise InputError(f"the candidate threshold must be a finite number, got {candidate_threshold!r}")
    gallery = np.unique(np.asarray(gallery, np.int64))
    r = _Rows.sorted(search, rank, candidate, score)
    _check_ranks(r, samples, search_probe, int(list_length), where)
    _check_candidates(r, samples, search_probe, gallery, mode, candidate_threshold, where)
    # one list per probe, in sample-table order; empty searches hold no rows
    probe_of_search = search_probe[r.search[r.starts]]
    lengths = np.where(r.empty[r.starts], 0, r.sizes)
    by_probe = np.argsort(probe_of_search, kind="stable")
    take = (
        np.concatenate([np.arange(r.starts[k], r.starts[k] + lengths[k]) for k in by_probe])
        if by_probe.size
        else np.empty(0, np.int64)
    )
    probe_rows = probe_of_search[by_probe]
    return CandidateLists(
        samples=samples,
        probes=_probe_index(samples, probe_rows),
        probe_sample=probe_rows,
        gallery=gallery,
        list_length=int(list_length),
        mode=mode,
        offsets=np.r_[0, np.cumsum(lengths[by_probe])].astype(np.int64),
        candidate=r.candidate[take].astype(np.int64),
        score=r.score[take].astype(np.float64),
        candidate_threshold=candidate_threshold,
        manifest=dict(manifest or {}),
    )


def _check_ranks(
    r: _Rows, samples: SampleIndex, search_probe: np.ndarray, list_length: int, where: str
) -> None:
    """An empty search is alone; ranks are 1, 2, 3, ... without repeats; no list is longer than stated."""
    of_row = np.searchsorted(r.starts, np.arange(r.search.size), side="right") - 1
    mixed = r.empty & (r.sizes[of_row] > 1)
    if mixed.any():
        raise CandidateFileError(
            f"{where}: an empty-search row (data row {r.rows[np.flatnonzero(mixed)[0]]}) "
            "sits in a search that returned candidates"
        )
    dup = (np.diff(r.search) == 0) & (np.diff(r.rank) == 0)
    if dup.any():
        i = int(np.flatnonzero(dup)[0]) + 1
        raise DuplicateRankError(
            f"{where}: rank {int(r.rank[i])} appears twice in one search (data rows "
            f"{sorted([int(r.rows[i - 1]), int(r.rows[i])])})"
        )
    position = np.arange(r.search.size) - r.starts[of_row] + 1
    gap = ~r.empty & (r.rank != position)
    if gap.any():
        i = int(np.flatnonzero(gap)[0])
        raise CandidateFileError(
            f"{where}: the ranks of a search must run 1, 2, 3, ...; data row {r.rows[i]} has "
            f"rank {int(r.rank[i])} where rank {int(position[i])} was expected"
        )
    long = np.flatnonzero(r.sizes > list_length)
    if long.size:
        probe = samples.sample_ids[search_probe[r.search[r.starts[long[0]]]]]
        raise ListTooLongError(
            f"{where}: a search of probe {probe!r} returned {int(r.sizes[long[0]])} "
            f"candidates, more than the stated list length {list_length}"
        )


def _check_candidates(
    r: _Rows,
    samples: SampleIndex,
    search_probe: np.ndarray,
    gallery: np.ndarray,
    mode: str,
    candidate_threshold: float | None,
    where: str,
) -> None:
    """Candidates are enrolled, never the probe itself, once per search; scores (or decisions) fall
    with rank and none lies below the stated candidate threshold."""
    full = ~r.empty
    outside = full & ~np.isin(r.candidate, gallery)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise CandidateNotInGalleryError(
            f"{where}: candidate {samples.sample_ids[r.candidate[i]]!r} (data row "
            f"{r.rows[i]}) is not in the gallery; {int(outside.sum())} such row(s)"
        )
    probe = search_probe[r.search]
    self_hit = full & (r.candidate == probe)
    if self_hit.any():
        i = int(np.flatnonzero(self_hit)[0])
        raise CandidateFileError(
            f"{where}: probe {samples.sample_ids[probe[i]]!r} is returned as its own "
            f"candidate (data row {r.rows[i]}); enrol it under another sample or leave it out"
        )
    key = r.search[full].astype(np.int64) * max(1, samples.n_samples) + r.candidate[full]
    if (np.unique(key, return_counts=True)[1] > 1).any():
        raise CandidateFileError(f"{where}: a search returns the same candidate twice")
    rising = (np.diff(r.search) == 0) & (np.diff(r.score) > 0)
    if mode in ("score", "decision") and rising.any():
        what = "a match ranks below a no-match" if mode == "decision" else "the score rises with rank"
        raise CandidateFileError(f"{where}: {what} (data row {r.rows[int(np.flatnonzero(rising)[0]) + 1]})")
    if mode == "score" and candidate_threshold is not None and (r.score[full] < candidate_threshold).any():
        i = int(np.flatnonzero(full & (r.score < candidate_threshold))[0])
        raise CandidateFileError(
            f"{where}: data row {r.rows[i]} returns a score {r.score[i]!r} below the stated "
            f"candidate threshold {candidate_threshold!r}"
        )
