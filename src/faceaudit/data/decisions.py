"""What a closed matcher returns, read and validated: decision-only and censored 1:1 results.

A field app or a vendor API answers "match / no match" at a threshold nobody outside knows, or
returns a similarity only for pairs at or above its own reporting level (AWS Rekognition
CompareFaces: ``SimilarityThreshold``, 80 by default; unmatched faces carry no score). Such a file is
read into a :class:`ClosedComparisons`: the exact comparisons as :class:`~faceaudit.scores.ScoreDistributions`
(listed design, every pair kept exactly, subject pairs tracked for the bootstrap) plus what the file
could not say.

* **decision-only**: ``probe, reference, decision``. A match is stored as score 1, a no-match as 0;
  the only threshold with a meaning is the system's own operating point (score >= 1). No EER, no
  target-FMR threshold, no DET: there is no score to move a threshold along.
* **censored**: ``probe, reference, score`` where an empty score means "not reported" (below the
  stated censoring level ``c``). Reported scores are kept exactly; a censored one is known only to be
  below ``c``. It is stored at the largest float below ``c`` so that counts at every threshold
  ``>= c`` are exact; nothing is ever measured below ``c`` (:mod:`faceaudit.measures.decisions`
  refuses).

Identifiers are strings exactly as written (CSV id columns are read as text; only an empty cell is
missing). Every malformed file ends in a named error: unknown decision words
(:class:`DecisionWordError`), a reported score below the stated level (:class:`CensoringError`), the
same pair twice in either order (:class:`~faceaudit.errors.DuplicatePairError`), ids not in the sample
table (:class:`~faceaudit.errors.UnknownSampleError`), a ``mated`` column that disagrees with the
subject ids (:class:`~faceaudit.errors.MatedLabelError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceaudit.data.tables import file_sha256, read_table
from faceaudit.errors import (
    DuplicatePairError,
    InputError,
    MatedLabelError,
    ScoreFileError,
    UnknownSampleError,
)
from faceaudit.scores import DistributionBuilder, SampleIndex, ScoreDistributions

__all__ = [
    "ClosedComparisons",
    "CensoringError",
    "DecisionFileError",
    "DecisionWordError",
    "MATCH_WORDS",
    "NO_MATCH_WORDS",
    "read_closed_comparisons",
    "closed_from_arrays",
    "sample_indices",
    "parse_decisions",
]


class DecisionFileError(ScoreFileError):
    """A decision-only or censored result file is malformed (columns, missing values, no rows)."""


class DecisionWordError(DecisionFileError):
    """A ``decision`` cell is not one of the accepted match / no-match words."""


class CensoringError(DecisionFileError):
    """Censoring is inconsistent: a reported score below the stated level, or unreported scores and
    no stated level."""


MATCH_WORDS = frozenset({"match", "1", "true", "yes", "accept", "accepted"})
NO_MATCH_WORDS = frozenset(
    {
        "no-match",
        "no_match",
        "nomatch",
        "no match",
        "non-match",
        "nonmatch",
        "0",
        "false",
        "no",
        "reject",
        "rejected",
    }
)
_MATED_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "mated": True,
    "0": False,
    "false": False,
    "no": False,
    "non-mated": False,
    "nonmated": False,
    "-1": False,
}


def sample_indices(column: pa.ChunkedArray, samples: SampleIndex, name: str, where: str) -> np.ndarray:
    """Sample index of each id in ``column``; UnknownSampleError (with the first row) otherwise."""
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null()))[0]) + 1
        raise UnknownSampleError(
            f"{name} is empty in {column.null_count} row(s) of {where}, first at data row {row}"
        )
    ids = pa.array([str(s) for s in samples.sample_ids.tolist()], type=pa.string())
    idx = pc.index_in(column, value_set=ids)
    if idx.null_count:
        bad = np.flatnonzero(np.asarray(idx.is_null()))
        names = sorted({column[int(i)].as_py() for i in bad[:5]})
        raise UnknownSampleError(
            f"{bad.size} {name} id(s) of {where} are not in the sample table, first at data row "
            f"{int(bad[0]) + 1}: {names}"
        )
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)


def parse_decisions(column: pa.ChunkedArray, where: str) -> np.ndarray:
    """Decision words -> bool (True = match). Unknown or missing words: DecisionWordError."""
    words = pc.utf8_lower(pc.utf8_trim_whitespace(column))
    match = np.asarray(
        pc.is_in(words, value_set=pa.array(sorted(MATCH_WORDS))).to_numpy(zero_copy_only=False)
    )
    no = np.asarray(
        pc.is_in(words, value_set=pa.array(sorted(NO_MATCH_WORDS))).to_numpy(zero_copy_only=False)
    )
    bad = ~(match | no)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        examples = sorted({repr(column[int(j)].as_py()) for j in np.flatnonzero(bad)[:5]})
        raise DecisionWordError(
            f"{int(bad.sum())} decision(s) of {where} are not a known word, first at data row {i + 1}: "
            f"{', '.join(examples)}. Match: {sorted(MATCH_WORDS)}; no match: {sorted(NO_MATCH_WORDS)}"
        )
    return match


@dataclass(frozen=True)
class ClosedComparisons:
    """A closed matcher's 1:1 results over a labelled set.

    ``kind`` is ``"decision"`` (match / no-match only; stored as score 1 / 0) or ``"censored"``
    (exact scores at or above ``censored_below``, a count below it). ``dist`` must only be read at
    thresholds the kind allows (:mod:`faceaudit.measures.decisions`); ``dist.meta["closed"]`` marks it
    so that a score-file measure can refuse it.
    """

    dist: ScoreDistributions
    kind: str
    censored_below: float | None
    censored_mated: int = 0
    censored_nonmated: int = 0
    rows: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def reported_scores(self) -> np.ndarray:
        """Every reported score (>= the censoring level), sorted; empty for decision-only results."""
        if self.kind != "censored":
            return np.empty(0)
        d = self.dist
        s = np.concatenate([d.genuine_score, d.tail_score])
        return np.sort(s[s >= self.censored_below])


#: decision-only results: a match is score 1, a no-match score 0; two bins split at 0.5
_DECISION_EDGES = np.array([-1.0, 0.5, 2.0])


def closed_from_arrays(
    samples: SampleIndex,
    probe: np.ndarray,
    reference: np.ndarray,
    *,
    decision: np.ndarray | None = None,
    score: np.ndarray | None = None,
    censored_below: float | None = None,
    meta: dict[str, Any] | None = None,
    where: str = "the results",
) -> ClosedComparisons:
    """Build a :class:`ClosedComparisons` from sample indices and either ``decision`` (bool) or
    ``score`` (float, NaN = not reported). Checks duplicates (unordered) and censoring."""
    probe = np.asarray(probe, dtype=np.int64)
    reference = np.asarray(reference, dtype=np.int64)
    _check_unordered_duplicates(probe, reference, samples, where)
    if (decision is None) == (score is None):
        raise DecisionFileError("give either decisions or scores")
    if decision is not None:
        kind, values = "decision", np.where(np.asarray(decision, bool), 1.0, 0.0)
        edges, cutoff, c = _DECISION_EDGES, 0.5, None
    else:
        kind, c = "censored", censored_below
        values = _censored_values(np.asarray(score, dtype=np.float64), c, where)
        c = float(c) if c is not None else -np.inf
        width = max(1.0, abs(c)) if np.isfinite(c) else 1.0
        edges = np.array([c - width, c, c + width]) if np.isfinite(c) else np.array([-1.0, 0.0, 1.0])
        cutoff = c
    builder = DistributionBuilder(
        samples,
        edges,
        tail_cutoff=cutoff,
        design="listed",
        meta={**(meta or {}), "closed": kind, "censored_below": c if kind == "censored" else None},
    )
    builder.add(probe, reference, values)
    dist = builder.result()
    mated = samples.subject_of_sample[probe] == samples.subject_of_sample[reference]
    off = probe != reference
    hidden = (
        ~np.isfinite(np.asarray(score, dtype=np.float64)) if score is not None else np.zeros(probe.size, bool)
    )
    return ClosedComparisons(
        dist=dist,
        kind=kind,
        censored_below=c if kind == "censored" else None,
        censored_mated=int((hidden & mated & off).sum()),
        censored_nonmated=int((hidden & ~mated & off).sum()),
        rows=int(probe.size),
        manifest=dict(meta or {}),
    )


def _censored_values(score: np.ndarray, c: float | None, where: str) -> np.ndarray:
    if np.isinf(score).any():
        raise DecisionFileError(
            f"{where}: a score is infinite (data row {int(np.flatnonzero(np.isinf(score))[0]) + 1})"
        )
    hidden = np.isnan(score)
    if c is None:
        if hidden.any():
            raise CensoringError(
                f"{where}: {int(hidden.sum())} score(s) are not reported (first at data row "
                f"{int(np.flatnonzero(hidden)[0]) + 1}) and no censoring level was stated; "
                "state the level below which the system reports no score"
            )
        return score
    if not np.isfinite(c):
        raise CensoringError(f"the censoring level must be a finite number, got {c!r}")
    low = ~hidden & (score < c)
    if low.any():
        i = int(np.flatnonzero(low)[0])
        raise CensoringError(
            f"{where}: {int(low.sum())} reported score(s) lie below the stated censoring level {c!r}, "
            f"first at data row {i + 1} (score {score[i]!r}); the level or the file is wrong"
        )
    # a censored score is only known to be < c: stored at the largest float below c, so that every
    # count at a threshold >= c is exact and no threshold below c is ever asked (measures refuse)
    return np.where(hidden, np.nextafter(c, -np.inf), score)


def _check_unordered_duplicates(
    probe: np.ndarray, reference: np.ndarray, samples: SampleIndex, where: str
) -> None:
    n = samples.n_samples
    key = np.minimum(probe, reference) * n + np.maximum(probe, reference)
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = uniq[counts > 1][0]
        rows = (np.flatnonzero(key == k)[:2] + 1).tolist()
        a, b = samples.sample_ids[k // n], samples.sample_ids[k % n]
        raise DuplicatePairError(
            f"{where}: the pair ({a!r}, {b!r}) is compared more than once (in either order), "
            f"data rows {rows}; {int((counts > 1).sum())} pair(s) repeat"
        )


def _check_mated(
    column: pa.ChunkedArray, probe: np.ndarray, reference: np.ndarray, samples: SampleIndex, where: str
) -> None:
    words = pc.utf8_lower(pc.utf8_trim_whitespace(column)).to_pylist()
    labels = []
    for i, w in enumerate(words):
        if w not in _MATED_WORDS:
            raise DecisionFileError(
                f"{where}: `mated` value {w!r} at data row {i + 1} is not one of {sorted(_MATED_WORDS)}"
            )
        labels.append(_MATED_WORDS[w])
    subj = samples.subject_of_sample
    bad = np.flatnonzero(np.array(labels, bool) != (subj[probe] == subj[reference]))
    if bad.size:
        raise MatedLabelError(
            f"{bad.size} row(s) of {where} have a `mated` value that disagrees with the subject ids "
            f"of the sample table (data rows {', '.join(str(int(i) + 1) for i in bad[:10])})"
        )


def read_closed_comparisons(
    path: str | Path, samples: SampleIndex, *, censored_below: float | None = None, use: str = "auto"
) -> ClosedComparisons:
    """Read ``probe, reference`` and ``decision`` and/or ``score`` (optional ``mated``).

    ``use="auto"`` reads scores when the file has a ``score`` column with at least one value, else
    decisions; ``"decision"`` / ``"score"`` force one (a file may carry both: then the other is
    ignored, but decision words are still checked).
    """
    if use not in ("auto", "decision", "score"):
        raise InputError(f"use must be 'auto', 'decision' or 'score', got {use!r}")
    path = Path(path)
    where = repr(str(path))
    table = read_table(
        path,
        text=("probe", "reference", "decision", "mated"),
        ids=("probe", "reference"),
        numbers=("score",),
        optional=("decision", "score", "mated"),
        what="result file",
        error=DecisionFileError,
    )
    has_decision, has_score = "decision" in table.column_names, "score" in table.column_names
    if not (has_decision or has_score):
        raise DecisionFileError(f"result file {where} has neither a `decision` nor a `score` column")
    probe = sample_indices(table.column("probe"), samples, "probe", where)
    reference = sample_indices(table.column("reference"), samples, "reference", where)
    if "mated" in table.column_names:
        if table.column("mated").null_count:
            raise DecisionFileError(
                f"result file {where}: `mated` is empty in {table.column('mated').null_count} row(s)"
            )
        _check_mated(table.column("mated"), probe, reference, samples, where)
    decision = parse_decisions(table.column("decision"), where) if has_decision else None
    scored = has_score and table.column("score").null_count < table.num_rows
    mode = use if use != "auto" else ("score" if scored else "decision")
    if mode == "decision" and decision is None:
        raise DecisionFileError(f"result file {where} has no `decision` column")
    if mode == "score" and not has_score:
        raise DecisionFileError(f"result file {where} has no `score` column")
    meta = {
        "inputs": {
            "results": {"path": str(path), "sha256": file_sha256(path), "rows": table.num_rows,
                        "read_as": mode}
        }
    }
    if mode == "decision":
        return closed_from_arrays(samples, probe, reference, decision=decision, meta=meta, where=where)
    col = table.column("score")
    if pc.any(pc.is_nan(col)).as_py():
        row = int(np.flatnonzero(np.asarray(pc.fill_null(pc.is_nan(col), False)))[0]) + 1
        raise DecisionFileError(
            f"result file {where}: a score is NaN (data row {row}); leave the cell empty where "
            "the system reported no score"
        )
    score = np.asarray(pc.fill_null(col, np.nan).to_numpy(), dtype=np.float64)
    return closed_from_arrays(
        samples, probe, reference, score=score, censored_below=censored_below, meta=meta, where=where
    )

