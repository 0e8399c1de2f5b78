"""1:N measures from a closed system's candidate lists, at the enrolled gallery size.

The lists become :class:`~faceaudit.measures.identification.ProbeTails` (per probe: the non-mated
candidates' scores, how many non-mated samples were enrolled, the first mate's rank and score) and
:func:`~faceaudit.measures.identification.identification` measures them, so FPIR(T), FNIR(R, T) and
CMC(R) per probe group, their intervals and flags are exactly `identify`'s on the same gallery and
probes (tests/test_candidates.py). Only the full gallery is measured: a subsampled gallery would need
the candidates below the list's end.

What a list cannot answer is refused (:class:`NotMeasurableError`), never bounded silently:

* FPIR(T) of a probe is known when ``T >= exact_from`` (the list holds every candidate at or above
  T) or when a non-mated candidate at or above T was returned (then the search has a false
  positive, whatever lies below);
* FNIR(R, T) is known when the first mate was returned, or when the list is full and ``R`` is within
  it, or when ``T >= exact_from`` (an unreturned mate scores below T);
* ranks beyond the stated list length, and thresholds with rank-only lists, are refused.

The rank of the first mate is the system's (its position in the list); `identify` counts ties with
a non-mate against the mate, which a system may not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from faceaudit.data.candidates import CandidateLists
from faceaudit.errors import InputError, NotExactError
from faceaudit.measures.identification import ProbeTails, identification
from faceaudit.results import CandidateIdentification, CandidateSource, IdentificationResult

__all__ = ["NotMeasurableError", "probe_tails", "candidate_identification", "DECISION_THRESHOLD"]

#: decision-only lists: a match is score 1; the system's point is score >= 1
DECISION_THRESHOLD = 1.0


class NotMeasurableError(NotExactError):
    """A 1:N measure was asked at a threshold or rank that the candidate lists do not reach."""


def probe_tails(lists: CandidateLists) -> ProbeTails:
    """The per-probe 1:N data the lists hold (non-mated candidates, complete from ``exact_from``)."""
    subj = lists.samples.subject_of_sample
    n = lists.probe_sample.size
    probe_of = np.repeat(np.arange(n), lists.lengths)
    own_subject = subj[lists.probe_sample]
    mated = subj[lists.candidate] == own_subject[probe_of]
    enrolled = np.bincount(subj[lists.gallery], minlength=lists.samples.n_subjects)
    self_enrolled = np.isin(lists.probe_sample, lists.gallery)
    n_nonmated = lists.gallery.size - enrolled[own_subject]
    has_mate = enrolled[own_subject] - self_enrolled > 0
    position = np.arange(probe_of.size) - lists.offsets[probe_of] + 1
    first_mate = np.full(n, -1, np.int64)
    hits = np.flatnonzero(mated)[::-1]
    first_mate[probe_of[hits]] = hits  # the last write per probe is its first mated candidate
    found = first_mate >= 0
    rank = np.where(has_mate, lists.lengths + 1, 0)  # an unreturned mate ranks below the list
    rank[found] = position[first_mate[found]]
    best = np.full(n, np.nan)
    best[found] = lists.score[first_mate[found]] if lists.mode != "rank" else np.inf
    nm = ~mated
    counts = np.bincount(probe_of[nm], minlength=n)
    score = lists.score[nm] if lists.mode != "rank" else np.zeros(int(nm.sum()))
    return ProbeTails(
        samples=lists.probes,
        n_nonmated=n_nonmated.astype(np.int64),
        offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        known_score=score.astype(np.float64),
        known_reference=lists.candidate[nm].astype(np.int64),
        exact_from=lists.exact_from,
        best_mated_score=best,
        mate_rank=rank.astype(np.int64),
    )


def _cmc_unknown(lists: CandidateLists, tails: ProbeTails, ranks: list[int]) -> dict[int, int]:
    """Ranks beyond the stated length: NotMeasurableError. Per rank, the mated searches whose CMC the
    lists cannot answer (a short list without the mate: it may rank anywhere below the list)."""
    too_deep = [r for r in ranks if r > lists.list_length]
    if too_deep:
        raise NotMeasurableError(f"rank(s) {too_deep} lie beyond the stated list length {lists.list_length}")
    unknown = tails.has_mate & (tails.mate_rank == lists.lengths + 1) & ~lists.full
    return {
        r: int((unknown & (lists.lengths < r)).sum()) for r in ranks if (unknown & (lists.lengths < r)).any()
    }


def _tails_at(lists: CandidateLists, tails: ProbeTails, threshold: float) -> ProbeTails:
    """``tails`` with each probe marked exact at ``threshold`` where the lists answer FPIR and FNIR
    there, or NotMeasurableError naming the probes they cannot answer."""
    k, exact = tails.count_at_least(threshold)
    fpir_known = exact | (k >= 1)
    # ranks are within the stated length (_cmc_unknown): a full list without the mate is a miss
    fnir_known = ~tails.has_mate | (tails.mate_rank <= lists.lengths) | exact | lists.full
    bad = ~(fpir_known & fnir_known)
    if bad.any():
        need = float(np.max(tails.exact_from[bad]))
        raise NotMeasurableError(
            f"threshold {threshold!r}: the lists of {int(bad.sum())} probe(s) end above it and hold no "
            f"non-mated candidate reaching it (the lowest threshold they answer is {need!r}); a list holds "
            "every candidate only above its lowest returned score (or from the stated candidate threshold)"
        )
    # FPIR at the full gallery only asks whether a search has a false positive: one returned is enough
    return dataclasses.replace(tails, exact_from=np.where(exact, tails.exact_from, threshold))


def candidate_identification(
    lists: CandidateLists,
    *,
    thresholds: Sequence[float] = (),
    ranks: Sequence[int] = (1,),
    groupings: Sequence[Sequence[str]] | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> CandidateIdentification:
    """FPIR(T), FNIR(R, T) per threshold and CMC(R), overall and per probe group, at the enrolled
    gallery size. Decision-only lists: the system's own point (``thresholds`` must be empty). Rank-only
    lists: CMC only."""
    ranks = sorted({int(r) for r in ranks})
    if not ranks or ranks[0] < 1:
        raise InputError(f"ranks must be >= 1, got {ranks}")
    tails = probe_tails(lists)
    cmc_unknown = _cmc_unknown(lists, tails, ranks)
    thresholds = [float(t) for t in thresholds]
    if lists.mode == "decision":
        if thresholds:
            raise InputError(
                "decision-only lists have no score: the only threshold is the system's own decision"
            )
        thresholds = [DECISION_THRESHOLD]
    elif lists.mode == "rank" and thresholds:
        raise NotMeasurableError("rank-only lists carry no score: only the CMC can be measured, no threshold")
    if any(t != t for t in thresholds):
        raise InputError("a threshold is NaN")
    kw: dict[str, Any] = dict(
        gallery_sizes=(None,), ranks=ranks, groupings=groupings, bootstrap=bootstrap, seed=seed, level=level
    )
    if not thresholds:  # rank-only: CMC alone (FPIR at +inf is 0 for every probe and is dropped)
        if cmc_unknown:
            raise NotMeasurableError(
                "CMC: per rank, mated searches whose short list misses the mate, so where it ranks is "
                f"unknown: {cmc_unknown}"
            )
        everywhere = dataclasses.replace(tails, exact_from=np.full(tails.n_probes, -np.inf))
        result = _map_blocks(identification(everywhere, thresholds=[np.inf], **kw), points=())
        result = dataclasses.replace(result, settings=dataclasses.replace(result.settings, thresholds=()))
        return CandidateIdentification(result, _source(lists, cmc_unknown))
    result = _merge([identification(_tails_at(lists, tails, t), thresholds=[t], **kw) for t in thresholds])
    if cmc_unknown:  # lists cut by the system's threshold answer FPIR and FNIR at T, not the CMC
        result = _map_blocks(result, cmc=())
    return CandidateIdentification(result, _source(lists, cmc_unknown))


def _map_blocks(result: IdentificationResult, **changes: Any) -> IdentificationResult:
    """``result`` with the same fields replaced in the overall block and every group's block."""
    return dataclasses.replace(
        result,
        overall=dataclasses.replace(result.overall, **changes),
        by_group={k: [dataclasses.replace(b, **changes) for b in v] for k, v in result.by_group.items()},
    )


def _merge(parts: list[IdentificationResult]) -> IdentificationResult:
    """One result from per-threshold results (same probes, groups and seed: the CMC is the same in each)."""
    first = parts[0]

    def points(pick) -> tuple:
        return tuple(p for part in parts for p in pick(part).points)

    overall = dataclasses.replace(first.overall, points=points(lambda r: r.overall))
    by_group = {
        k: [
            dataclasses.replace(b, points=points(lambda r, k=k, i=i: r.by_group[k][i]))
            for i, b in enumerate(v)
        ]
        for k, v in first.by_group.items()
    }
    flags: list = []
    for part in parts:
        flags += [f for f in part.flags if f not in flags]
    settings = dataclasses.replace(
        first.settings, thresholds=tuple(t for p in parts for t in p.settings.thresholds)
    )
    return dataclasses.replace(
        first, overall=overall, by_group=by_group, flags=tuple(flags), settings=settings
    )


def _source(lists: CandidateLists, cmc_unknown: dict[int, int]) -> CandidateSource:
    lowest = float(np.max(lists.exact_from)) if lists.mode == "score" and lists.lengths.size else None
    return CandidateSource(
        mode=lists.mode,
        list_length=lists.list_length,
        candidate_threshold=lists.candidate_threshold,
        gallery_size=int(lists.gallery.size),
        lists_full=int(lists.full.sum()),
        lists_short=int((~lists.full).sum()),
        lowest_answered_threshold=lowest,
        cmc_not_measurable=dict(cmc_unknown),
    )
