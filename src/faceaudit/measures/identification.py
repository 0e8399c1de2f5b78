"""1:N identification measured on a labelled evaluation set, and its extrapolation to larger galleries.

Protocol (every number below is defined by it)
---------------------------------------------
Every sample of the evaluation set is a probe; its **gallery is every other sample of the set** (what
the all-pairs engine's per-probe summary covers). For probe ``p``:

* its **non-mated references** are the ``n_p`` samples of other subjects; a **non-mated search**
  is the search of ``p`` against them alone (every sample of ``p``'s own subject removed);
* a **mated search** exists when ``p``'s subject has another sample: the gallery is the non-mated
  references plus those mates; the search returns the first mate at rank
  ``1 + #(non-mated scores >= best mated score)`` (ties count against the mate, as in
  :class:`~faceaudit.compare.summary.ProbeSummary`).

Gallery size ``N`` is the number of **non-mated** references in the gallery; a gallery of size
``N < n_p`` is a uniformly random ``N``-subset of them (the mates, if any, stay in). Measures at size
``N``, per probe, then averaged over probes:

* ``FPIR(N, T)``: probability that a non-mated search returns at least one candidate with score >= T.
  With ``k_p(T)`` of the ``n_p`` non-mated scores >= T, exactly (hypergeometric, no Monte Carlo)
  ``1 - C(n_p - k_p, N) / C(n_p, N)`` (ISO/IEC 19795-1, NIST FRVT 1:N FPIR);
* ``FNIR(N, R, T)``: probability that a mated search does not return the first mate within the top
  ``R`` candidates with score >= T: a miss if the best mated score is < T, or if ``R`` or more of
  the ``a_p = rank - 1`` non-mates that outscore it are drawn into the gallery
  (``P(X >= R), X ~ Hypergeometric(n_p, a_p, N)``);
* ``CMC(N, R) = 1 - FNIR(N, R, -inf)``.

Beyond the measured size (``N > n_p``) no subsample can answer; :class:`TailModel` does. Per probe,
the per-reference exceedance ``p_p(T) = P(non-mated score >= T)`` has two parts:

* the **probe part** ``g_p(T)``: the exact count ``k_p(T) / n_p`` at or below the probe's own tail
  cutoff ``u_p`` (its ``m``-th highest non-mated score), and ``m / (n_p + 1) * GPD_sf(T - u_p)`` above
  it, one GPD (shape, scale) pooled over every probe's excesses over its own ``u_p``: probes differ by
  where their tail starts ("lambs" start high), the shape of the tail above is shared;
* a **calibration** on the observed pooled FMR(T): where at least 10 non-mated scores >= T were
  observed, a probe part that over-explains them is scaled down to the observed count (the GPD fitted
  just above each probe's cutoff runs heavy when extrapolated far, as a light, Gaussian-like tail
  does), and a shortfall becomes the **pair part** ``r(T)``, a rate the same for every probe: single
  extreme pairs (a doppelganger, a mislabelled identity) that strike one reference, not a probe's
  whole tail, and so grow linearly with the gallery. On LFW they dominate the highest thresholds
  (bench/RESULTS.md). Beyond the last calibrated threshold the last scale is carried on.

So the per-probe model decides *who* the false positives fall on; the observed FMR decides *how many*
per comparison, wherever it was observed. Then (references independent given the probe)::

    FPIR(N, T) = mean_p [1 - (1 - p_p(T)) ** N],   p_p(T) = c(T) g_p(T) + r(T)

which is what a heterogeneous population does; the naive ``N x FMR(T)`` (or the homogeneous
``1 - (1 - FMR)^N``) treats every probe as average and, by Jensen's inequality, overstates FPIR once
``N x FMR`` is not small, while hiding that the false positives concentrate on a few probes.

Groups are **probe** groups: the gallery is always the whole evaluation set (its demographic mix).
The calibration (scale and pair part) is done **per probe group** where the group has at least
:data:`MIN_CALIBRATION_EVENTS` non-mated scores >= T of its own, else on all probes pooled, and the
result says which (``calibration``) and flags the pooled ones: a pooled pair part cannot tell groups
apart where it dominates.

Counted rates (measured gallery sizes) are reported as faceaudit reports every rate: count (or
expected count over galleries) and total, Clopper-Pearson next to the subject bootstrap, and for a
zero count the rule-of-three bound 3 / total instead of a degenerate [0, 0]. Intervals on the model
come from the subject bootstrap over probes (stratified by group, as in the audit) with the GPD refitted
on each replicate, **times** a draw of the count of scores >= T that the calibration rests on: with
``K`` distinct pairs of people among them, an exact-Poisson (Garwood) draw in ``K`` times a Poisson
bootstrap of the pairs, so that one pair giving most of the scores is absent from a draw with
probability 1/e (:meth:`TailModel.count_factors`). Deep in the tail only a handful of pairs of people reach T,
and
whether a random evaluation set holds 4 or 12 of them is what the prediction depends on most; a subject
bootstrap of those few misses most of it (bench/RESULTS.md). That is a confidence interval on the
*expected* FPIR of a search. What one particular gallery does to one particular set of probes spreads
further, because a lookalike (a relative, a mislabelled identity) takes many of one person's samples at
once: the extrapolated rows add a ``prediction_interval`` (:func:`realised_fpir`, with the shares a
lookalike takes measured on the set by :func:`partner_shares`). Where one pair of people gives more than
:data:`CONCENTRATION_FLAG` of the scores >= T the result is flagged (:meth:`TailModel.pair_concentration`):
the uniform pair part spreads that pair's scores over every probe, and whether the set holds such a pair
decides the figure (on LFW a factor of about 3 either way at FMR 1e-5).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceaudit.errors import InputError
from faceaudit.groups import OVERALL, group_name, grouping_name
from faceaudit.groups import probe_groupings as probe_groupings  # re-export
from faceaudit.results import (
    CmcCurve,
    ExtrapolatedPoint,
    Flag,
    IdentificationResult,
    IdentificationSettings,
    Interval,
    ProbeGroupMeasures,
    RankRate,
    Rate,
    SearchPoint,
)
from faceaudit.scores import SampleIndex, ScoreDistributions
from faceaudit.stats.intervals import bootstrap_weights, percentile_interval, raise_high, rate
from faceaudit.stats.tails import GPDFit, fit_gpd, gpd_sf

__all__ = [
    "ProbeTails",
    "TailModel",
    "IdentificationResult",
    "identification",
    "fpir_at",
    "fnir_at",
    "hypergeometric_any",
    "parse_gallery_sizes",
    "probe_groupings",
    "partner_shares",
    "realised_fpir",
    "person_concentration_flag",
]

#: the most known non-mated scores kept per probe (the exact tail can hold many more for a lamb)
DEFAULT_MAX_KNOWN = 1000
#: a group with fewer probes than this is flagged (its FPIR rests on too few people)
MIN_GROUP_PROBES = 100
MIN_GROUP_SUBJECTS = 30
#: observed non-mated scores >= T needed to calibrate the tail model's level on the observed FMR
MIN_CALIBRATION_EVENTS = 10
#: above this share of the scores >= T from one pair of people, the extrapolation is flagged
CONCENTRATION_FLAG = 0.5


class IdentificationInputError(InputError):
    """A 1:N measure was asked of data that cannot answer it (no per-probe data, bad sizes or ranks)."""


# ----- per-probe data -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeTails:
    """What 1:N needs of each probe: its upper non-mated tail, its number of non-mated references,
    its best mated score and the rank of its first mate.

    ``known_score[offsets[p]:offsets[p+1]]`` are probe ``p``'s highest non-mated scores, descending,
    with their reference sample indices. The list is **complete from** ``exact_from[p]``: every
    non-mated score of ``p`` that is ``>= exact_from[p]`` is in it, so ``k_p(T)`` is exact for every
    ``T >= exact_from[p]``; below it only a lower bound is known. ``exact_from = -inf`` means the
    list holds all of ``p``'s non-mated scores.
    """

    samples: SampleIndex
    n_nonmated: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (n + 1,) int64
    known_score: np.ndarray  # float64, descending within each probe
    known_reference: np.ndarray  # int64
    exact_from: np.ndarray  # (n,) float64
    best_mated_score: np.ndarray  # (n,) float64, NaN without a mate
    mate_rank: np.ndarray  # (n,) int64, 0 without a mate

    @property
    def n_probes(self) -> int:
        return int(self.n_nonmated.size)

    @property
    def known_count(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def probe_of_known(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_probes), self.known_count)

    @property
    def has_mate(self) -> np.ndarray:
        return self.mate_rank > 0

    def top_score(self) -> np.ndarray:
        """Each probe's highest non-mated score (-inf if it has none)."""
        out = np.full(self.n_probes, -np.inf)
        nz = self.known_count > 0
        out[nz] = self.known_score[self.offsets[:-1][nz]]
        return out

    def count_at_least(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per probe, the number of non-mated scores >= threshold, and whether that count is exact
        (``threshold >= exact_from``); where it is not, the count is a lower bound."""
        hit = self.known_score >= threshold
        counts = np.bincount(self.probe_of_known[hit], minlength=self.n_probes).astype(np.int64)
        return counts, threshold >= self.exact_from

    # ----- constructors -------------------------------------------------------------------------
    @classmethod
    def from_distributions(
        cls, dist: ScoreDistributions, *, max_known: int = DEFAULT_MAX_KNOWN
    ) -> ProbeTails:
        """Per-probe tails of an all-pairs (complete-design) ScoreDistributions with a probe summary.

        Union of the summary's top-k (complete above each probe's k-th score) and the exact non-mated
        tail (complete at and above the cutoffs of every cell the probe takes part in). The engine
        files pair (i, j), i < j, with probe i; a symmetric all-pairs run compares every sample with
        every other once, so a probe's tail entries are those with it in either column.
        """
        summary = dist.probe_summary
        if summary is None or dist.design != "complete":
            raise IdentificationInputError(
                "1:N needs the per-probe summaries of an all-pairs comparison (faceaudit compare); "
                f"these distributions have design {dist.design!r} and "
                f"{'no' if summary is None else 'a'} probe summary"
            )
        s = dist.samples
        n = s.n_samples
        if summary.topk_score.shape[0] != n:
            raise IdentificationInputError("the probe summary does not align with the sample table")
        if any(dist.exclusions.values()):
            # excluded pairs (non-finite scores) would make n_p wrong: refuse rather than guess
            raise IdentificationInputError(
                f"comparisons were excluded ({dict(dist.exclusions)}); the per-probe "
                "counts of non-mated references would be wrong"
            )
        n_nonmated = (
            n - np.bincount(s.subject_of_sample, minlength=s.n_subjects)[s.subject_of_sample]
        ).astype(np.int64)
        k = summary.k
        g = s.group_of_sample
        # every non-mated score of p at or above the cutoffs of its cells is in the tail
        cut = np.maximum(dist.tail_cutoff.max(axis=1)[g], dist.tail_cutoff.max(axis=0)[g])
        # a full top-k is complete strictly above its k-th score; a short one holds all the scores
        if k > 0:
            kth = summary.topk_score[:, k - 1]
            full = np.isfinite(kth)
            topk_from = np.where(full, np.nextafter(kth, np.inf), -np.inf)
        else:
            topk_from = np.full(n, np.inf)
        exact_from = np.minimum(topk_from, cut)
        tr = summary.topk_reference
        valid = tr >= 0
        probe = np.concatenate(
            [np.repeat(np.arange(n), valid.sum(axis=1)), dist.tail_probe, dist.tail_reference]
        )
        ref = np.concatenate([tr[valid], dist.tail_reference, dist.tail_probe])
        score = np.concatenate([summary.topk_score[valid], dist.tail_score, dist.tail_score])
        return cls._assemble(
            s,
            n_nonmated,
            probe,
            ref,
            score,
            exact_from,
            summary.best_mated_score.astype(np.float64),
            summary.mate_rank.astype(np.int64),
            max_known,
        )

    @classmethod
    def from_score_rows(
        cls,
        samples: SampleIndex,
        rows: Iterable[tuple[np.ndarray, np.ndarray]],
        *,
        max_known: int = 200,
        keep_above: float = np.inf,
    ) -> ProbeTails:
        """Reference implementation from explicit score rows: ``rows`` yields ``(probe_indices,
        scores)`` with ``scores[i, j]`` the score of probe ``probe_indices[i]`` against sample ``j``
        (all samples as references; the diagonal is ignored). Every row must come exactly once.
        Each probe keeps its ``max_known`` highest non-mated scores, or all of them >= ``keep_above``
        where those are more (so counts at thresholds >= ``keep_above`` are exact for every probe).
        For small sets and for the validation; the engine path is :meth:`from_distributions`."""
        n = samples.n_samples
        subj = samples.subject_of_sample
        n_nonmated = (n - np.bincount(subj, minlength=samples.n_subjects)[subj]).astype(np.int64)
        best = np.full(n, np.nan)
        rank = np.zeros(n, np.int64)
        exact_from = np.full(n, -np.inf)
        probes, refs, scores = [], [], []
        seen = np.zeros(n, bool)
        for idx, block in rows:
            idx = np.asarray(idx, dtype=np.int64)
            block = np.asarray(block, dtype=np.float64)
            if block.shape != (idx.size, n):
                raise IdentificationInputError(f"score rows must be (len(probe_indices), {n})")
            seen[idx] = True
            mated = subj[idx][:, None] == subj[None, :]
            nm = np.where(mated, -np.inf, block)
            mt = np.where(mated, block, -np.inf)
            mt[np.arange(idx.size), idx] = -np.inf
            b = mt.max(axis=1)
            has = np.isfinite(b) & (mated.sum(axis=1) > 1)
            best[idx[has]] = b[has]
            rank[idx[has]] = 1 + (nm[has] >= b[has, None]).sum(axis=1)
            m = min(max_known, n)
            top = (
                np.argpartition(-nm, m - 1, axis=1)[:, :m] if m < n else np.tile(np.arange(n), (idx.size, 1))
            )
            ts = np.take_along_axis(nm, top, axis=1)
            if m < n:
                # complete strictly above the m-th score (ties at it may be cut)
                exact_from[idx] = np.nextafter(ts.min(axis=1), np.inf)
                exact_from[idx[n_nonmated[idx] <= m]] = -np.inf
            keep = np.isfinite(ts)
            many = (nm >= keep_above).sum(axis=1) > m if np.isfinite(keep_above) else np.zeros(idx.size, bool)
            probes.append(np.repeat(idx[~many], keep[~many].sum(axis=1)))
            refs.append(top[~many][keep[~many]])
            scores.append(ts[~many][keep[~many]])
            if np.isfinite(keep_above) and m < n:  # at most m scores >= keep_above: all of them are kept
                exact_from[idx[~many]] = np.minimum(exact_from[idx[~many]], keep_above)
            if many.any():  # these probes keep every score >= keep_above, complete from there
                r, c = np.nonzero(nm[many] >= keep_above)
                probes.append(idx[many][r])
                refs.append(c.astype(np.int64))
                scores.append(nm[many][r, c])
                exact_from[idx[many]] = keep_above
        if not seen.all():
            raise IdentificationInputError(f"{int((~seen).sum())} probe row(s) missing")
        return cls._assemble(
            samples,
            n_nonmated,
            np.concatenate(probes),
            np.concatenate(refs),
            np.concatenate(scores),
            exact_from,
            best,
            rank,
            max_known if not np.isfinite(keep_above) else 0,
        )

    @classmethod
    def _assemble(
        cls, samples, n_nonmated, probe, ref, score, exact_from, best, rank, max_known
    ) -> ProbeTails:
        n = samples.n_samples
        subj = samples.subject_of_sample
        ok = (subj[probe] != subj[ref]) & (score >= exact_from[probe])
        probe, ref, score = probe[ok], ref[ok], score[ok]
        # one entry per (probe, reference) pair: top-k and tail overlap
        key = probe.astype(np.int64) * n + ref
        key, first = np.unique(key, return_index=True)
        probe, ref, score = probe[first], ref[first], score[first]
        order = np.lexsort((ref, -score, probe))
        probe, ref, score = probe[order], ref[order], score[order]
        counts = np.bincount(probe, minlength=n)
        starts = np.r_[0, np.cumsum(counts)]
        exact_from = exact_from.astype(np.float64).copy()
        if max_known and (counts > max_known).any():
            pos = np.arange(probe.size) - starts[probe]
            over = np.flatnonzero(counts > max_known)
            cut_score = score[starts[over] + max_known - 1]
            exact_from[over] = np.nextafter(cut_score, np.inf)
            keep = pos < max_known
            # ties with the last kept score would make the count at it inexact: keep it strictly above
            keep &= score >= exact_from[probe]
            probe, ref, score = probe[keep], ref[keep], score[keep]
            counts = np.bincount(probe, minlength=n)
            starts = np.r_[0, np.cumsum(counts)]
        return cls(
            samples=samples,
            n_nonmated=np.asarray(n_nonmated, np.int64),
            offsets=starts.astype(np.int64),
            known_score=score.astype(np.float64),
            known_reference=ref.astype(np.int64),
            exact_from=exact_from,
            best_mated_score=np.asarray(best, np.float64),
            mate_rank=np.asarray(rank, np.int64),
        )


# ----- exact measures at a measured gallery size --------------------------------------------------
def hypergeometric_any(n: np.ndarray, k: np.ndarray, draws: np.ndarray | int) -> np.ndarray:
    """``1 - C(n - k, N) / C(n, N)``: probability that ``N`` draws without replacement from ``n``
    items, ``k`` of them marked, include at least one marked item (exact, in log space)."""
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    N = np.broadcast_to(np.asarray(draws, dtype=np.float64), n.shape)
    out = np.ones(n.shape)
    none = k <= 0
    out[none] = 0.0
    free = ~none & (n - k >= N)
    nn, kk, NN = n[free], k[free], N[free]
    from scipy.special import gammaln  # here: scipy.special costs ~6 MiB to import, needed only for 1:N

    log_ratio = gammaln(nn - kk + 1) - gammaln(nn - kk - NN + 1) - gammaln(nn + 1) + gammaln(nn - NN + 1)
    out[free] = -np.expm1(log_ratio)
    return out


def fpir_at(
    tails: ProbeTails, gallery_size: int | None, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probe, the exact expected false-positive identification at a measured size: (low, high,
    exact). ``gallery_size=None`` is each probe's full set (``N = n_p``). Where ``threshold`` falls
    below a probe's complete tail its count is only bounded (low from the known scores, high 1)."""
    n = tails.n_nonmated
    N = n if gallery_size is None else np.minimum(int(gallery_size), n)
    if gallery_size is not None and np.any(n < int(gallery_size)):
        raise IdentificationInputError(
            f"gallery size {int(gallery_size):,} exceeds the {int(n.min()):,} non-mated references some "
            "probes "
            "have: use the tail model (TailModel / `faceaudit scenario`) beyond the measured size"
        )
    k, exact = tails.count_at_least(threshold)
    low = hypergeometric_any(n, k, N)
    high = np.where(exact, low, np.where(N > 0, 1.0, 0.0))
    return low, high, exact


def fnir_at(tails: ProbeTails, gallery_size: int | None, rank: int, threshold: float) -> np.ndarray:
    """Per mated probe (``tails.has_mate``), the exact expected miss at a measured size: the first
    mate is outside the top ``rank`` or scores below ``threshold``. NaN for probes without a mate."""
    if rank < 1:
        raise IdentificationInputError(f"rank must be >= 1, got {rank}")
    n = tails.n_nonmated
    N = n if gallery_size is None else np.minimum(int(gallery_size), n)
    has = tails.has_mate
    a = np.maximum(tails.mate_rank - 1, 0)
    # P(fewer than `rank` of the a outscoring non-mates are drawn)
    from scipy.stats import hypergeom  # here: scipy.stats is a heavy import

    within = hypergeom.cdf(rank - 1, n, np.minimum(a, n), N)
    above = tails.best_mated_score >= threshold
    miss = 1.0 - np.where(above, within, 0.0)
    return np.where(has, miss, np.nan)


# ----- the tail model -----------------------------------------------------------------------------
@dataclass
class TailModel:
    """Per-probe non-mated tails with a pooled GPD above each probe's own cutoff (see module doc).

    ``cutoff[p]`` is probe ``p``'s ``m``-th highest non-mated score (``m_p = min(m, known)``),
    ``rate[p] = m_p / (n_p + 1)`` the expected exceedance probability of that order statistic, and
    ``fit`` the GPD of every probe's excesses over its own cutoff. Probes whose complete list holds
    fewer than 3 scores take no part in the fit (their exceedance above the cutoff still uses it).
    """

    tails: ProbeTails
    m: int
    cutoff: np.ndarray
    rate: np.ndarray
    fit: GPDFit
    excess: np.ndarray = field(repr=False)
    excess_probe: np.ndarray = field(repr=False)

    @classmethod
    def fitted(cls, tails: ProbeTails, *, m: int = 20, probes: np.ndarray | None = None) -> TailModel:
        """Fit the model; ``probes`` (a boolean mask) restricts the fit, not the per-probe cutoffs."""
        if m < 3:
            raise IdentificationInputError("the tail model needs m >= 3 scores per probe")
        counts = tails.known_count
        mp = np.minimum(counts, m)
        starts = tails.offsets[:-1]
        cutoff = (
            np.where(mp > 0, tails.known_score[starts + np.maximum(mp - 1, 0)], np.inf)
            if tails.known_score.size
            else np.full(tails.n_probes, np.inf)
        )
        rate = mp / (tails.n_nonmated + 1.0)
        pos = np.arange(tails.known_score.size) - np.repeat(starts, counts)
        probe = tails.probe_of_known
        sel = (pos < mp[probe] - 1) & (mp[probe] >= 3)
        if probes is not None:
            sel &= np.asarray(probes, bool)[probe]
        excess = tails.known_score[sel] - cutoff[probe[sel]]
        if excess.size < 10:
            raise IdentificationInputError(
                f"only {excess.size} tail scores to fit: too few probes with 3 or more non-mated scores "
                "(a set of very few subjects), or per-probe summaries too short (rerun `faceaudit compare` "
                "with a larger --top-k)"
            )
        fit = fit_gpd(excess)
        return cls(
            tails=tails, m=int(m), cutoff=cutoff, rate=rate, fit=fit, excess=excess, excess_probe=probe[sel]
        )

    def refit(self, probe_weights: np.ndarray) -> GPDFit:
        """The GPD refitted with per-probe weights (a subject-bootstrap replicate)."""
        return fit_gpd(self.excess, probe_weights[self.excess_probe], start=(self.fit.shape, self.fit.scale))

    def probe_part(
        self,
        threshold: float,
        fit: GPDFit | tuple[float, float] | None = None,
        *,
        counts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Per probe, ``g_p(T)``: the exact ``k_p(T) / n_p`` at or below the probe's cutoff, the pooled
        GPD above it."""
        shape, scale = (
            (self.fit.shape, self.fit.scale)
            if fit is None
            else ((fit.shape, fit.scale) if isinstance(fit, GPDFit) else fit)
        )
        above = threshold > self.cutoff
        out = np.empty(self.tails.n_probes)
        out[above] = self.rate[above] * gpd_sf(threshold - self.cutoff[above], shape, scale)
        below = ~above
        if below.any():
            k = self.tails.count_at_least(float(threshold))[0] if counts is None else counts
            out[below] = k[below] / np.maximum(self.tails.n_nonmated[below], 1)
        return out

    def components(
        self,
        threshold: float,
        fit: GPDFit | tuple[float, float] | None = None,
        weights: np.ndarray | None = None,
        *,
        counts: np.ndarray | None = None,
        count_factor: float | np.ndarray = 1.0,
        partition: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """``p_p(T)`` and its parts: the probe part ``g`` scaled by ``scale``, the pair part ``r``, and
        the number of observed non-mated scores >= T (``events``) they are calibrated on.

        Where at least :data:`MIN_CALIBRATION_EVENTS` scores >= T were observed, the mean of
        ``p_p`` over comparisons equals the observed FMR(T) exactly: a probe part that over-explains
        it is scaled down (the GPD fitted just above each probe's cutoff runs heavy when extrapolated
        far, as a light, Gaussian-like tail does), a shortfall becomes the pair part. Beyond that the
        scale of the last calibrated threshold is carried on and the pair part covers only the few
        scores observed (the scenario adds the rule-of-three bound on unobserved ones and flags it).

        ``count_factor`` (a scalar or one per probe) multiplies the observed count of scores >= T (a
        draw of its count uncertainty, see :meth:`count_factors`). ``partition`` (an int label per probe,
        ``-1`` for
        none) calibrates each labelled group on its own observed count where that group has at least
        :data:`MIN_CALIBRATION_EVENTS` scores >= T, else on the pooled count; ``groups`` in the result
        says which (``{label: {"events": int, "own": bool}}``), ``scale`` and ``r`` are per probe then.
        """
        k = self.tails.count_at_least(float(threshold))[0] if counts is None else counts
        g = self.probe_part(threshold, fit, counts=k)
        n = self.tails.n_nonmated
        w = np.ones(self.tails.n_probes) if weights is None else weights
        events = int(k.sum())
        calibrated = events >= MIN_CALIBRATION_EVENTS or not np.isfinite(self.calibration_threshold)
        ks = gs = None
        if not calibrated:
            ks = self.tails.count_at_least(self.calibration_threshold)[0]
            gs = self.probe_part(self.calibration_threshold, fit, counts=ks)

        def calibrate(sel: np.ndarray) -> tuple[float, float]:
            ws = w * sel
            den = float(np.sum(ws * n))
            if den <= 0:
                return 1.0, 0.0
            F = float(np.sum(ws * k * count_factor)) / den
            gbar = float(np.sum(ws * n * g)) / den
            if calibrated:
                return (min(1.0, F / gbar) if gbar > 0 else 1.0), max(0.0, F - gbar)
            fs = float(np.sum(ws * ks)) / den
            gbs = float(np.sum(ws * n * gs)) / den
            scale = min(1.0, fs / gbs) if gbs > 0 else 1.0
            # the few scores observed >= T stay counted: what the scaled probe part misses of them is
            # pair part
            return scale, max(0.0, F - scale * gbar)

        scale, r = calibrate(np.ones(self.tails.n_probes, bool))
        out: dict[str, Any] = {"g": g, "scale": scale, "r": r, "events": events}
        if partition is not None and calibrated:
            part = np.asarray(partition)
            sc = np.full(self.tails.n_probes, scale)
            rr = np.full(self.tails.n_probes, r)
            groups = {}
            for lab in np.unique(part[part >= 0]):
                sel = part == lab
                ev = int(k[sel].sum())
                own = ev >= MIN_CALIBRATION_EVENTS
                if own:
                    sc[sel], rr[sel] = calibrate(sel)
                groups[int(lab)] = {"events": ev, "own": own}
            out.update(scale=sc, r=rr, groups=groups)
        elif partition is not None:
            part = np.asarray(partition)
            out["groups"] = {
                int(lab): {"events": int(k[part == lab].sum()), "own": False}
                for lab in np.unique(part[part >= 0])
            }
        out["p"] = np.clip(g * out["scale"] + out["r"], 0.0, 1.0)
        return out

    def pair_counts(self, threshold: float, probes: np.ndarray | None = None) -> np.ndarray:
        """Per distinct pair of *people* (subjects), how many of the non-mated scores >= T (of the
        probes in the mask ``probes``) it gives, unordered pairs of subjects, in no particular order."""
        t = self.tails
        hit = t.known_score >= threshold
        if probes is not None:
            hit &= np.asarray(probes, bool)[t.probe_of_known]
        subj = t.samples.subject_of_sample
        a, b = subj[t.probe_of_known[hit]], subj[t.known_reference[hit]]
        key = np.minimum(a, b).astype(np.int64) * t.samples.n_subjects + np.maximum(a, b)
        return np.unique(key, return_counts=True)[1]

    def effective_events(self, threshold: float, probes: np.ndarray | None = None) -> int:
        """Independent events behind the count of non-mated scores >= T (of the probes in the mask
        ``probes``): distinct pairs of *subjects*; a mislabelled identity or a near-duplicate set
        gives many scores from one pair of people, and they come or go together."""
        return int(self.pair_counts(threshold, probes).size)

    def pair_concentration(self, threshold: float, probes: np.ndarray | None = None) -> dict[str, Any]:
        """How much of the count of non-mated scores >= T the single largest pair of people gives
        (``share``, of ``scores``; ``pairs_of_people`` distinct pairs). Above
        :data:`CONCENTRATION_FLAG` the level at T rests on one pair of people (on LFW two brothers
        give 43% of the scores at FMR 1e-5): whether an evaluation set holds such a pair decides
        the extrapolation, which then errs by a factor of 3 either way (bench/RESULTS.md)."""
        c = self.pair_counts(threshold, probes)
        if c.size == 0:
            return {"share": 0.0, "scores": 0, "pairs_of_people": 0}
        return {"share": float(c.max() / c.sum()), "scores": int(c.sum()), "pairs_of_people": int(c.size)}

    def count_factors(
        self, threshold: float, replicates: int, seed: int = 0, partition: np.ndarray | None = None
    ) -> np.ndarray:
        """(replicates, n) per-probe multipliers of the observed count at ``threshold`` carrying its
        uncertainty: which pairs of people a set of this size holds. With ``K`` pairs of people giving
        ``c_1 .. c_K`` of the scores (:meth:`pair_counts`), a draw is ``G / K`` times the mean count per
        pair in a Poisson bootstrap of the pairs (``X_j ~ Poisson(1)`` copies of pair ``j``:
        ``sum_j X_j c_j / sum_j X_j``) over the observed mean; ``G`` is the ``u``-quantile of Gamma(K)
        for ``u < 1/2`` and of Gamma(K + 1) above (``u`` uniform). Where every pair gives the same
        number of scores this is ``G / K``, whose ``a/2`` and ``1 - a/2`` quantiles are exactly the
        Garwood (exact Poisson) bounds on ``K`` at every level; where one pair of people gives most of
        the scores (relatives, a mislabelled identity), it is absent from a draw with probability
        ``1/e`` and the count falls by its share. Drawn per distinct count value (memory
        ``replicates x distinct counts``, not ``x K``). With ``partition``, a group calibrated on its own
        count (at least :data:`MIN_CALIBRATION_EVENTS` scores >= T, as in :meth:`components`) draws from its
        own events. ``K = 0`` gives factors of 1 (nothing to scale; the rule of three covers it)."""
        from scipy.stats import gamma

        rng = np.random.default_rng([int(seed), 5])
        n = self.tails.n_probes

        def draw(mask):
            c = self.pair_counts(float(threshold), mask)
            K = c.size
            if K == 0:
                return np.ones(replicates)
            u = rng.random(replicates)
            G = np.where(u < 0.5, gamma.ppf(u, K), gamma.ppf(u, K + 1)) / K
            values, n_v = np.unique(c, return_counts=True)
            if values.size == 1:
                return G
            # Poisson(1) copies of every pair of people, grouped by its count of scores (exact: the
            # copies of the n_v pairs giving v scores each sum to Poisson(n_v)): the mean count per
            # pair in the drawn set over the observed mean
            Y = rng.poisson(n_v.astype(np.float64), size=(replicates, values.size))
            drawn = Y.sum(axis=1)
            mean_drawn = np.where(drawn > 0, (Y @ values.astype(np.float64)) / np.maximum(drawn, 1), c.mean())
            return G * mean_drawn / c.mean()

        out = np.repeat(draw(None)[:, None], n, axis=1)
        if partition is not None:
            part = np.asarray(partition)
            k, _ = self.tails.count_at_least(float(threshold))
            if int(k.sum()) >= MIN_CALIBRATION_EVENTS:
                for lab in np.unique(part[part >= 0]):
                    sel = part == lab
                    if int(k[sel].sum()) >= MIN_CALIBRATION_EVENTS:
                        out[:, sel] = draw(sel)[:, None]
        return out

    @functools.cached_property
    def calibration_threshold(self) -> float:
        """The highest threshold with :data:`MIN_CALIBRATION_EVENTS` observed non-mated scores at or
        above it."""
        s = self.tails.known_score
        if s.size < MIN_CALIBRATION_EVENTS:
            return -np.inf
        return float(np.partition(s, s.size - MIN_CALIBRATION_EVENTS)[s.size - MIN_CALIBRATION_EVENTS])

    def exceedance_replicates(
        self,
        threshold: float,
        fits: Sequence[GPDFit],
        probe_weights: np.ndarray,
        count_factors: np.ndarray | None = None,
        partition: np.ndarray | None = None,
    ) -> np.ndarray:
        """(R, n) ``p_p(T)`` under each replicate's refitted GPD and probe weights, and, with
        ``count_factors`` (:meth:`count_factors`), each replicate's draw of the count uncertainty."""
        k, _ = self.tails.count_at_least(float(threshold))
        out = np.empty((len(fits), self.tails.n_probes))
        for i, (f, w) in enumerate(zip(fits, probe_weights)):
            cf = 1.0 if count_factors is None else count_factors[i]
            out[i] = self.components(threshold, f, w, counts=k, count_factor=cf, partition=partition)["p"]
        return out

    def unobserved_bound(
        self, threshold: float, p: np.ndarray, probes: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Where fewer than :data:`MIN_CALIBRATION_EVENTS` non-mated scores >= T were observed, the
        per-probe exceedance raised by the rule-of-three bound on unobserved pair-level matches: what an
        interval's high end must reach, since the model's own figure there may be the GPD's near-zero
        alone. ``None`` where the level is calibrated.

        The unit that comes or goes is a pair of *people*, not a score (:meth:`pair_counts`): the bound
        is 3 pairs of people, each bringing the mean number of scores a pair of people gives at the
        highest threshold with enough of them (:attr:`calibration_threshold`), over the comparisons of
        the probes in ``probes`` (a group's bound rests on the group's own comparisons, as its measured
        zero counts do). On LFW a quarter of the subjects holds no score at the full set's FMR 1e-6 in
        2 of 20 draws; a bound of 3 scores sits 2.5-3x below the truth on both, 3 pairs of people
        1.5x below it on one and above it on the other (bench/RESULTS.md)."""
        mask = np.ones(self.tails.n_probes, bool) if probes is None else np.asarray(probes, bool)
        k, _ = self.tails.count_at_least(float(threshold))
        if int(k[mask].sum()) >= MIN_CALIBRATION_EVENTS:
            return None
        c = (
            self.pair_counts(self.calibration_threshold)
            if np.isfinite(self.calibration_threshold)
            else np.empty(0)
        )
        per_pair = max(1.0, float(c.sum() / c.size)) if c.size else 1.0
        comparisons = float(self.tails.n_nonmated[mask].sum())
        return np.clip(p + 3.0 * per_pair / max(comparisons, 1.0), 0.0, 1.0)

    def exceedance(
        self,
        threshold: float,
        fit: GPDFit | tuple[float, float] | None = None,
        weights: np.ndarray | None = None,
        partition: np.ndarray | None = None,
    ) -> np.ndarray:
        """Per probe ``p_p(T)`` (see :meth:`components`)."""
        return self.components(threshold, fit, weights, partition=partition)["p"]

    def extrapolated_share(self, threshold: float) -> float:
        """Share of probes whose exceedance at ``threshold`` comes from the GPD (threshold above the
        probe's highest observed non-mated score), not from counted scores."""
        return float(np.mean(threshold > self.tails.top_score()))


#: above this share of a group's probes from one person, the group's 1:N figures are flagged
MAX_PERSON_SHARE = 0.05
#: gallery realisations drawn per model replicate for a prediction interval
PREDICTION_REALISATIONS = 4
#: subject-size bins (number of the person's samples) within which lookalike shares are drawn
SHARE_SIZE_BINS = (2, 3, 6, 21)
#: fewest shares a size bin needs to be used on its own (else the pooled shares are drawn)
MIN_BIN_SHARES = 10


def person_concentration_flag(subject_of_probe: np.ndarray, name: str) -> Flag | None:
    """A flag when one person holds more than :data:`MAX_PERSON_SHARE` of a group's probes: their
    searches rise or fall together with whether a lookalike of theirs is in the gallery, which no
    model fitted on this set can foresee (on LFW one person is 4% of all images and 14% of a random
    quarter's; whether his brother is in the gallery moved the FPIR at FMR 1e-5 by 3-5x,
    bench/RESULTS.md)."""
    subj = np.asarray(subject_of_probe)
    if subj.size == 0:
        return None
    c = np.bincount(np.unique(subj, return_inverse=True)[1])
    share = float(c.max() / subj.size)
    if share <= MAX_PERSON_SHARE:
        return None
    return Flag(
        "person_concentration",
        {"name": name, "share": share, "count": int(c.max()), "probes": int(subj.size)},
    )


def _size_bin(sizes: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(SHARE_SIZE_BINS), sizes, side="right") - 1


def partner_shares(
    tails: ProbeTails, threshold: float, min_events: int = 30, probes: np.ndarray | None = None
) -> dict[str, Any]:
    """How much of a person a lookalike takes: for every (probe subject ``s``, reference subject
    ``r``) pair of people with at least one non-mated score >= the threshold, the share of ``s``'s
    samples (those with another subject to match, ``n_s >= 2`` only: a single sample is all or
    nothing anyway) that score >= it against some sample of ``r``, with ``n_s`` (``sizes``): the share
    depends strongly on how many samples the person has (on LFW about 0.55 for 2 images, 0.06 for
    21 or more).

    Read at ``threshold`` where at least ``min_events`` such pairs of people are observed, else at the
    highest threshold where they are (never above ``threshold``; ``threshold_used``); within each
    subject-size bin (:data:`SHARE_SIZE_BINS`) lower still where the bin has fewer than
    :data:`MIN_BIN_SHARES` pairs (``by_size_bin``: a person's samples match a lookalike more often at
    a lower threshold, so this errs towards wider predictions). On LFW one pair
    of people (two brothers, by the images' labels) takes 60% of the 530 images of one of them at FMR
    1e-5: whether a gallery holds such a partner decides hundreds of searches at once
    (bench/RESULTS.md)."""
    t = tails
    subj = t.samples.subject_of_sample
    ns = t.samples.n_subjects
    probe = t.probe_of_known
    pmask = np.ones(t.n_probes, bool) if probes is None else np.asarray(probes, bool)
    sizes = np.bincount(subj[pmask], minlength=ns)
    keep = pmask[probe] & (sizes[subj[probe]] >= 2)
    empty = {
        "shares": np.empty(0),
        "sizes": np.empty(0, np.int64),
        "threshold_used": float(threshold),
        "pairs_of_people": 0,
    }
    if not keep.any():
        return empty
    sc = t.known_score[keep]
    ref_subj = subj[t.known_reference[keep]].astype(np.int64)
    pk = probe[keep].astype(np.int64) * ns + ref_subj  # (probe sample, reference subject)
    key = subj[probe[keep]].astype(np.int64) * ns + ref_subj  # (probe subject, reference subject)
    # each probe sample's best score against each reference subject
    order = np.lexsort((-sc, pk))
    first = np.r_[True, pk[order][1:] != pk[order][:-1]]
    best, bkey = sc[order][first], key[order][first]
    # each pair of people's best score, to find the threshold with min_events pairs at or above it
    o2 = np.argsort(bkey, kind="stable")
    starts = np.flatnonzero(np.r_[True, bkey[o2][1:] != bkey[o2][:-1]])
    pair_key, pair_best = bkey[o2][starts], np.maximum.reduceat(best[o2], starts)

    def level(sel: np.ndarray, need: int) -> float:
        pb = np.sort(pair_best[sel])[::-1]
        if pb.size == 0 or np.sum(pb >= threshold) >= need:
            return float(threshold)
        return min(float(threshold), float(pb[min(need, pb.size) - 1]))

    used = level(np.ones(pair_best.size, bool), min_events)
    shares, out_sizes = [], []
    # per subject-size bin, at the highest threshold <= used where the bin has MIN_BIN_SHARES pairs
    pair_size = sizes[pair_key // ns]
    pair_bin = _size_bin(pair_size)
    by_bin = {}
    for b in np.unique(pair_bin):
        sel = pair_bin == b
        t_b = min(used, level(sel, MIN_BIN_SHARES))
        hit = (best >= t_b) & np.isin(bkey, pair_key[sel])
        u, c = np.unique(bkey[hit], return_counts=True)
        n_s = sizes[u // ns]
        shares.append(c / n_s)
        out_sizes.append(n_s)
        by_bin[int(SHARE_SIZE_BINS[b])] = {"threshold_used": t_b, "pairs_of_people": int(u.size)}
    if not shares:
        return {**empty, "threshold_used": used}
    sh, sz = np.concatenate(shares), np.concatenate(out_sizes)
    return {
        "shares": sh.astype(np.float64),
        "sizes": sz.astype(np.int64),
        "threshold_used": used,
        "pairs_of_people": int(sh.size),
        "by_size_bin": by_bin,
    }


def realised_fpir(
    per_probe: np.ndarray,
    subject_of_probe: np.ndarray,
    shares: np.ndarray,
    probe_weights: np.ndarray | None = None,
    seed: int = 0,
    *,
    share_sizes: np.ndarray | None = None,
    realisations: int = 1,
) -> np.ndarray:
    """Draws of the FPIR that *one* gallery realises for this set of probes, around the per-probe
    expectations ``per_probe`` (R, n) (a row per replicate of the model).

    A subject ``s`` with ``n_s >= 2`` probes and mean expectation ``h_s`` meets ``D ~ Poisson(l_s)``
    lookalikes in the gallery, each taking a share ``f`` of its samples drawn from ``shares``
    (:func:`partner_shares`) — from those of people with a similar number of samples
    (:data:`SHARE_SIZE_BINS`) where ``share_sizes`` is given and the bin holds
    :data:`MIN_BIN_SHARES`, else from all; its probes match with probability ``1 - prod(1 - f)``, and
    ``l_s = -log(1 - h_s) / mean(f)`` (mean over the shares it draws from) makes that ``h_s`` on
    average. A single-sample subject matches with probability ``h_s``. Returns
    (R * realisations,) probe-weighted means (weights ``probe_weights`` (R, n), constant within a
    subject as the subject bootstrap makes them); row ``i`` of the model gives draws
    ``i, i + R, ...``.

    A confidence interval on the expected FPIR of a random search is the replicates' spread alone; a
    prediction of what a particular gallery does to a particular probe set, where a few people with
    many images carry much of the weight, adds this draw."""
    P = np.atleast_2d(np.asarray(per_probe, dtype=np.float64))
    R, n = P.shape
    _, inv, sizes = np.unique(np.asarray(subject_of_probe), return_inverse=True, return_counts=True)
    k = sizes.size
    W = (
        np.ones((R, n))
        if probe_weights is None
        else np.atleast_2d(np.asarray(probe_weights, dtype=np.float64))
    )
    h = np.clip(
        np.stack([np.bincount(inv, weights=np.nan_to_num(P[i]), minlength=k) for i in range(R)]) / sizes,
        0.0,
        1.0 - 1e-12,
    )
    ws = np.stack([np.bincount(inv, weights=W[i], minlength=k) for i in range(R)]) / sizes
    rng = np.random.default_rng([int(seed), 11])
    f = np.asarray(shares, dtype=np.float64)
    ok = (f > 0) & (f <= 1)
    f = np.minimum(f[ok], 1.0 - 1e-15)
    fbin = None if share_sizes is None else _size_bin(np.asarray(share_sizes)[ok])
    # the pool each subject draws from: its size bin where that bin has enough shares, else all
    sbin = _size_bin(sizes)
    pools = {-1: f}
    if fbin is not None:
        for b in np.unique(sbin[sizes >= 2]):
            if np.sum(fbin == b) >= MIN_BIN_SHARES:
                pools[int(b)] = f[fbin == b]
    pool_of = np.array([int(b) if int(b) in pools else -1 for b in sbin])
    multi = sizes >= 2
    out = np.empty(R * realisations)
    for rep in range(realisations):
        prob = h.copy()  # single-sample subjects (and no shares known): independent searches
        if f.size:
            for b, fb in pools.items():
                cols = np.flatnonzero(multi & (pool_of == b))
                if cols.size == 0:
                    continue
                mf, ml = fb.mean(), -np.log1p(-fb).mean()  # E[f], E[-log(1 - f)]
                lam = -np.log1p(-h[:, cols]) / mf
                D = rng.poisson(lam)
                q = np.zeros_like(lam)
                # many lookalikes: the product is 1 - exp(-(sum of D draws of -log(1 - f))), whose sum is
                # close to its mean for large D; drawn exactly for small D
                big = D > 64
                q[big] = -np.expm1(
                    -(
                        D[big] * ml
                        + np.sqrt(D[big]) * (-np.log1p(-fb)).std() * rng.standard_normal(int(big.sum()))
                    ).clip(min=0)
                )
                ri, si = np.nonzero((D > 0) & ~big)
                reps = D[ri, si]
                if reps.size:
                    draws = fb[rng.integers(0, fb.size, int(reps.sum()))]
                    logs = np.add.reduceat(np.log1p(-draws), np.r_[0, np.cumsum(reps)[:-1]])
                    q[ri, si] = -np.expm1(logs)
                prob[:, cols] = q
        hits = rng.binomial(np.broadcast_to(sizes, h.shape), prob)
        num = np.sum(ws * hits, axis=1)
        den = np.sum(ws * sizes, axis=1)
        out[rep * R : (rep + 1) * R] = num / np.where(den > 0, den, np.nan)
    return out


def fpir_extrapolated(p: np.ndarray, gallery_size: float | np.ndarray) -> np.ndarray:
    """Per probe ``1 - (1 - p_p)^N`` (independent references given the probe; ``N`` a scalar or
    one per probe)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.expm1(np.asarray(gallery_size, dtype=np.float64) * np.log1p(-np.clip(p, 0.0, 1.0)))


# ----- groups and sizes ---------------------------------------------------------------------------
def parse_gallery_sizes(text: str | Sequence[Any]) -> list[int | None]:
    """``"1e2,1e3,full"`` -> ``[100, 1000, None]`` (None: each probe's full set)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[int | None] = []
    for raw in items:
        item = str(raw).strip().lower()
        if item in ("full", "all"):
            out.append(None)
            continue
        try:
            v = float(item)
        except ValueError:
            raise IdentificationInputError(f"gallery size {raw!r} is not a number or 'full'") from None
        if not math.isfinite(v) or v < 1 or v != int(v):
            raise IdentificationInputError(f"gallery size {raw!r} must be a whole number >= 1")
        out.append(int(v))
    if not out:
        raise IdentificationInputError("no gallery sizes given")
    return out


# ----- the result ---------------------------------------------------------------------------------
def _weighted(values: np.ndarray, mask: np.ndarray, pw: np.ndarray | None) -> np.ndarray | None:
    """Replicate means of ``values`` over the probes in ``mask`` under probe weights (R, n)."""
    if pw is None:
        return None
    v = np.where(mask, np.nan_to_num(values), 0.0)
    m = mask.astype(np.float64)
    den = pw @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pw @ v) / np.where(den > 0, den, 1), np.nan)


#: appended to an interval's method where its high end is raised to the rule-of-three bound
RAISED_TO_RULE_OF_THREE = (
    "; high raised to the rule-of-three bound on unobserved pair-level matches (fewer than "
    "10 non-mated scores reach T)"
)
MODEL_METHOD = (
    " with GPD refit, times a draw of the count of scores >= T over the pairs of people giving them "
    "(exact-Poisson in their number, Poisson-bootstrapped among them)"
)
PREDICTION_METHOD = (
    "prediction for these probes against one gallery of this size: each replicate above, plus a "
    "draw of which people's lookalikes it holds (realised_fpir; a lookalike takes many of "
    "one "
    "person's samples at once)"
)


def search_rate(
    per_probe: np.ndarray, mask: np.ndarray, pw, level: float, *, integral: bool, method: str
) -> Rate:
    """An identification rate (:func:`faceaudit.stats.intervals.rate`) over the searches in ``mask``: the
    count, Clopper-Pearson next to the subject bootstrap, and for a zero count the rule-of-three upper
    bound 3 / total (the degenerate bootstrap of a zero count is withheld).

    At a subsampled gallery the count is an expectation over galleries (``expected_count``, not a
    whole number); its Clopper-Pearson interval is the beta-quantile interval at that count. An
    expected count of exactly 0 (no gallery produces an error) is a count of 0 and gets the rule of
    three like any other."""
    vals = per_probe[mask]
    vals = vals[np.isfinite(vals)]
    total = int(vals.size)
    if total == 0:
        return rate(0, 0, unit="searches")
    expected = float(vals.sum())
    boot = percentile_interval(_weighted(per_probe, mask & np.isfinite(per_probe), pw), level, method)
    if integral or expected == 0.0:
        return rate(
            int(round(expected)),
            total,
            level=level,
            bootstrap=boot,
            unit="searches",
            withhold_zero_bootstrap=True,
        )
    return rate(None, total, level=level, bootstrap=boot, unit="searches", expected_count=expected)


def identification(
    data: ScoreDistributions | ProbeTails,
    *,
    thresholds: Sequence[float],
    gallery_sizes: Sequence[int | None] = (None,),
    ranks: Sequence[int] = (1,),
    groupings: Sequence[Sequence[str]] | None = None,
    extrapolate_to: Sequence[float] = (),
    m: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    fmr_targets: Sequence[float] | None = None,
) -> IdentificationResult:
    """1:N identification measures on the evaluation set, overall and per probe group.

    Parameters
    ----------
    data : ScoreDistributions or ProbeTails
        An all-pairs run with per-probe summaries (``faceaudit compare``), or its tails.
    thresholds : sequence of float
        Thresholds T.
    gallery_sizes : sequence of int or None
        Measured non-mated gallery sizes N (None: each probe's full set).
    ranks : sequence of int
        Ranks R for FNIR and CMC.
    groupings : sequence of tuples of str, optional
        Probe groupings (default: :func:`faceaudit.groups.default_groupings`).
    extrapolate_to : sequence of float
        Gallery sizes beyond the set, for the tail model's FPIR next to the naive ``N x FMR``.
    m, bootstrap, seed, level
        Per-probe tail size of the model; subject-bootstrap replicates (0 disables), seed, level.
    fmr_targets : sequence of float, optional
        The target FMR each threshold was read at (recorded in the settings).

    Returns
    -------
    IdentificationResult
        FPIR(N, T), FNIR(N, R, T) and CMC(N, R) per probe group with intervals, the extrapolated
        rows, and flags.

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.scores import SampleIndex
    >>> rng = np.random.default_rng(0)
    >>> n = 60
    >>> samples = SampleIndex.from_columns(np.arange(n), np.arange(n) // 2)
    >>> scores = rng.normal(0, 1, (n, n)); scores = (scores + scores.T) / 2
    >>> scores[np.arange(0, n, 2), np.arange(1, n, 2)] = scores[np.arange(1, n, 2), np.arange(0, n, 2)] = 3.0
    >>> tails = ProbeTails.from_score_rows(samples, [(np.arange(n), scores)])
    >>> r = identification(tails, thresholds=[2.5], ranks=[1], bootstrap=0)
    >>> r.overall.points[0].fnir[0].rate.value
    0.0
    """
    tails = data if isinstance(data, ProbeTails) else ProbeTails.from_distributions(data)
    ranks, sizes = _check_identification(tails, thresholds, fmr_targets, ranks, gallery_sizes)
    s = tails.samples
    groups = probe_groupings(s, groupings, IdentificationInputError)
    pw = _probe_weights(s, bootstrap, seed)
    method = f"subject bootstrap ({bootstrap} replicates, percentile)"
    flags = [f for key, mask in groups.items() if (f := _group_flag(key, mask, s)) is not None]
    measured = _measured(tails, sizes, [float(t) for t in thresholds], ranks)
    model = _Extrapolation(tails, groups, thresholds, m, pw, seed, level, method) if extrapolate_to else None
    overall, by_group = None, {}
    for key, mask in groups.items():
        extra: tuple = ()
        if model is not None:
            extra, more = model.rows(key, mask, extrapolate_to)
            flags += more
        block = ProbeGroupMeasures(
            grouping=key[0],
            values=key[1],
            probes=int(mask.sum()),
            mated_probes=int((mask & tails.has_mate).sum()),
            subjects=int(np.unique(s.subject_of_sample[mask]).size),
            extrapolated=extra,
            **_measured_block(measured, mask, tails.has_mate, pw, level, method),
        )
        if key == OVERALL:
            overall = block
        else:
            by_group.setdefault(grouping_name(key[0]), []).append(block)
    settings = IdentificationSettings(
        thresholds=tuple(float(t) for t in thresholds),
        gallery_sizes=tuple(sizes),
        ranks=tuple(ranks),
        extrapolate_to=tuple(float(x) for x in extrapolate_to),
        bootstrap=int(bootstrap),
        seed=seed,
        level=level,
        fmr_targets=None if fmr_targets is None else tuple(float(f) for f in fmr_targets),
        tail_model=None if model is None else {"m": model.model.m, "gpd": model.model.fit},
    )
    counts = {
        "probes": tails.n_probes,
        "mated_probes": int(tails.has_mate.sum()),
        "subjects": s.n_subjects,
        "nonmated_references_min": int(tails.n_nonmated.min()),
        "nonmated_references_max": int(tails.n_nonmated.max()),
    }
    return IdentificationResult(
        overall=overall, by_group=by_group, settings=settings, counts=counts, flags=tuple(flags)
    )


def _check_identification(tails: ProbeTails, thresholds, fmr_targets, ranks, gallery_sizes):
    if not thresholds:
        raise IdentificationInputError("give at least one threshold")
    if fmr_targets is not None and len(fmr_targets) != len(thresholds):
        raise IdentificationInputError("fmr_targets must name one target FMR per threshold")
    ranks = sorted({int(r) for r in ranks})
    if ranks[0] < 1:
        raise IdentificationInputError(f"ranks must be >= 1, got {ranks[0]}")
    sizes = list(gallery_sizes)
    nmin = int(tails.n_nonmated.min())
    too_big = [s for s in sizes if s is not None and s > nmin]
    if too_big:
        raise IdentificationInputError(
            f"gallery size(s) {too_big} exceed the {nmin:,} non-mated references the smallest probe set "
            f"measures; give them as extrapolation sizes (--extrapolate) instead"
        )
    return ranks, sizes


def _probe_weights(samples: SampleIndex, bootstrap: int, seed: int) -> np.ndarray | None:
    """(R, probes) subject-bootstrap weights (each probe weighted as its subject), None without."""
    if not bootstrap:
        return None
    return bootstrap_weights(samples.group_of_subject, int(bootstrap), seed)[:, samples.subject_of_sample]


def _group_flag(key: tuple, mask: np.ndarray, s: SampleIndex) -> Flag | None:
    """A group too small to support its rates, or one person holding too many of its probes."""
    n_subj = np.unique(s.subject_of_sample[mask]).size
    if key != OVERALL and (mask.sum() < MIN_GROUP_PROBES or n_subj < MIN_GROUP_SUBJECTS):
        return Flag(
            "identification.group_too_small",
            {
                "group": group_name(key[1]),
                "probes": int(mask.sum()),
                "subjects": int(n_subj),
                "min_probes": MIN_GROUP_PROBES,
                "min_subjects": MIN_GROUP_SUBJECTS,
            },
        )
    return person_concentration_flag(s.subject_of_sample[mask], group_name(key[1]))


def _measured(tails: ProbeTails, sizes, thresholds: list[float], ranks: list[int]) -> list[tuple]:
    """Per probe, at each measured size: FPIR bounds and FNIR per rank at each threshold, then CMC."""
    out = []
    for N in sizes:
        for T in thresholds:
            lo, hi, exact = fpir_at(tails, N, T)
            out.append((N, T, lo, hi, exact, {R: fnir_at(tails, N, R, T) for R in ranks}))
        out.append((N, None, None, None, None, {R: 1.0 - fnir_at(tails, N, R, -np.inf) for R in ranks}))
    return out


def _measured_block(
    measured: list[tuple], mask: np.ndarray, has_mate: np.ndarray, pw, level: float, method: str
) -> dict[str, tuple]:
    """One probe group's search points and CMC curves."""
    points, cmcs = [], []
    for N, T, lo, hi, exact, fn in measured:

        def by_rank(values, integral):
            return tuple(
                RankRate(R, search_rate(v, mask & has_mate, pw, level, integral=integral, method=method))
                for R, v in values.items()
            )

        if T is None:
            cmcs.append(CmcCurve(gallery_size=N, cmc=by_rank(fn, N is None)))
            continue
        ex = bool(exact[mask].all())
        points.append(
            SearchPoint(
                gallery_size=N,
                threshold=T,
                exact=ex,
                fpir=search_rate(lo, mask, pw, level, integral=N is None and ex, method=method),
                fnir=by_rank(fn, N is None),
                fpir_bounds=None if ex else (float(lo[mask].mean()), float(hi[mask].mean())),
                inexact_probes=int((~exact[mask]).sum()),
            )
        )
    return {"points": tuple(points), "cmc": tuple(cmcs)}


class _Extrapolation:
    """The tail model fitted once, calibrated per grouping (each group on its own scores >= T where it
    has :data:`MIN_CALIBRATION_EVENTS` of them, else pooled; the whole set pooled), with its bootstrap
    replicates; ``rows`` gives a probe group's extrapolated rows and flags."""

    def __init__(
        self,
        tails: ProbeTails,
        groups: dict[tuple, np.ndarray],
        thresholds,
        m: int,
        pw,
        seed: int,
        level: float,
        method: str,
    ) -> None:
        self.tails, self.pw, self.seed, self.level, self.method = tails, pw, seed, level, method
        self.thresholds = [float(t) for t in thresholds]
        self.model = TailModel.fitted(tails, m=m)
        reps = [self.model.refit(w) for w in pw] if pw is not None else []
        partitions: dict[tuple, np.ndarray | None] = {(): None}
        self.group_label: dict[tuple, int] = {}
        for gkey, gmask in groups.items():
            if gkey[0]:
                partitions.setdefault(gkey[0], np.full(tails.n_probes, -1))
                self.group_label[gkey] = len(self.group_label)
                partitions[gkey[0]][gmask] = self.group_label[gkey]
        self.p, self.reps, self.calibration = {}, {}, {}
        for G, part in partitions.items():
            for T in self.thresholds:
                comp = self.model.components(T, partition=part)
                self.p[G, T] = comp["p"]
                self.calibration[G, T] = comp.get("groups", {})
                if reps:
                    cf = self.model.count_factors(T, len(reps), seed, partition=part)
                    self.reps[G, T] = self.model.exceedance_replicates(
                        T, reps, pw, count_factors=cf, partition=part
                    )
        self._shares: dict[float, dict[str, Any]] = {}
        self.total_pairs = float(tails.n_nonmated.sum())

    def shares(self, T: float) -> dict[str, Any]:
        if T not in self._shares:
            self._shares[T] = partner_shares(self.tails, T)
        return self._shares[T]

    def rows(
        self, key: tuple, mask: np.ndarray, sizes: Sequence[float]
    ) -> tuple[tuple[ExtrapolatedPoint, ...], list[Flag]]:
        rows, flags = [], []
        for T in self.thresholds:
            info = self.calibration[key[0], T].get(self.group_label.get(key, -1))
            shared = self._at_threshold(key, mask, T, info)
            flags += self._flags(key, T, info, shared)
            rows += [self._row(key, mask, T, N, shared) for N in sizes]
        return tuple(rows), flags

    def _at_threshold(self, key: tuple, mask: np.ndarray, T: float, info) -> dict[str, Any]:
        """What does not depend on the gallery size: once per threshold."""
        t, p = self.tails, self.p[key[0], T]
        k_t, exact_t = t.count_at_least(T)
        return {
            "p": p,
            # FMR within the set: pooled non-mated share >= T (model where beyond the observed)
            "fmr": float((p * t.n_nonmated)[mask].sum() / t.n_nonmated[mask].sum()),
            "k": int(k_t[mask].sum()),
            "counts_exact": bool(exact_t[mask].all()),
            "conc": self.model.pair_concentration(T, mask),
            "r3": self.model.unobserved_bound(T, p, mask),
            "calibration": (
                "pooled_overall"
                if info is None and not key[0]
                else "own_group"
                if info and info["own"]
                else "pooled_group"
            ),
            "own": bool(info and info["own"]),
        }

    def _flags(self, key: tuple, T: float, info, shared: dict[str, Any]) -> list[Flag]:
        name, conc, out = group_name(key[1]), shared["conc"], []
        if key[0] and not shared["own"]:
            out.append(
                Flag(
                    "identification.pooled_calibration",
                    {"group": name, "min_events": MIN_CALIBRATION_EVENTS, "threshold": T},
                )
            )
        if not shared["counts_exact"]:
            out.append(Flag("identification.counts_lower_bounds", {"group": name, "threshold": T}))
        if conc["share"] > CONCENTRATION_FLAG and conc["scores"] >= MIN_CALIBRATION_EVENTS:
            out.append(
                Flag(
                    "identification.pair_concentration",
                    {"group": name, "share": conc["share"], "scores": conc["scores"], "threshold": T},
                )
            )
        return out

    def _intervals(
        self, key: tuple, mask: np.ndarray, T: float, N: float
    ) -> tuple[Interval | None, Interval | None]:
        """The confidence interval on the expected FPIR and the prediction for one gallery."""
        if not self.reps:
            return None, None
        pw, cols = self.pw, np.flatnonzero(mask)
        eb = fpir_extrapolated(self.reps[key[0], T], N)
        den = (pw * mask).sum(axis=1)
        rep_vals = (pw * eb * mask).sum(axis=1) / np.where(den > 0, den, np.nan)
        ps = self.shares(T)
        real = realised_fpir(
            eb[:, cols],
            self.tails.samples.subject_of_sample[cols],
            ps["shares"],
            pw[:, cols],
            self.seed,
            share_sizes=ps["sizes"],
            realisations=PREDICTION_REALISATIONS,
        )
        return (
            percentile_interval(rep_vals, self.level, self.method + MODEL_METHOD),
            percentile_interval(real, self.level, PREDICTION_METHOD),
        )

    def _row(
        self, key: tuple, mask: np.ndarray, T: float, N: float, shared: dict[str, Any]
    ) -> ExtrapolatedPoint:
        e = fpir_extrapolated(shared["p"], N)
        iv, pred = self._intervals(key, mask, T, N)
        r3 = shared["r3"]
        r3_fpir = None if r3 is None else float(fpir_extrapolated(r3, N)[mask].mean())
        top = np.sort(e[mask])[::-1]
        share1 = (
            float(top[: max(1, int(np.ceil(0.01 * top.size)))].sum() / top.sum()) if top.sum() > 0 else None
        )
        fmr = shared["fmr"]
        return ExtrapolatedPoint(
            gallery_size=float(N),
            threshold=T,
            fpir=float(e[mask].mean()),
            interval=raise_high(iv, r3_fpir, RAISED_TO_RULE_OF_THREE),
            prediction_interval=raise_high(pred, r3_fpir, RAISED_TO_RULE_OF_THREE),
            rule_of_three_fpir=r3_fpir,
            largest_pair_of_people=shared["conc"],
            counts_exact=shared["counts_exact"],
            scores_at_or_above_threshold=shared["k"],
            calibration=shared["calibration"],
            fmr=fmr,
            naive_n_fmr=float(N) * fmr,
            homogeneous_fpir=float(-np.expm1(float(N) * np.log1p(-min(fmr, 1.0)))),
            share_from_top_1pct_probes=share1,
            extrapolated_probe_share=self.model.extrapolated_share(T),
            beyond_observed_fmr=bool(fmr < 1.0 / self.total_pairs),
        )


def iter_rows(scores: np.ndarray, block: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row blocks of an explicit (n, n) score matrix, for :meth:`ProbeTails.from_score_rows`."""
    n = scores.shape[0]
    for a in range(0, n, block):
        idx = np.arange(a, min(n, a + block))
        yield idx, scores[idx]
