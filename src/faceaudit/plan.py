"""Request plans: which comparisons to send to a closed system, and how many, to judge a claimed rate.

Sizing (exact binomial). A claim ``rate <= r`` passes when the upper bound of the two-sided
Clopper-Pearson interval at ``level`` is ``<= r`` (:mod:`faceaudit.claims`), i.e. when the observed
count ``k`` satisfies ``P(X <= k; n, r) <= (1 - level) / 2``. For ``n`` comparisons, the largest such
``k`` is ``k_max(n)``; if the system's true rate is the **alternative** ``p1`` (by default half the
claim), the chance that the claim is supported is ``power(n) = P(X <= k_max(n); n, p1)``. The plan
takes the smallest ``n`` with ``power(n) >= power`` (power is a saw-tooth in ``n``: a slightly larger
``n`` can have less; the plan states the power reached). Comparisons are treated as independent
trials; those sharing a person are not, so the plan is the least that can do, not a guarantee.

What is planned, from a sample table:

* **mated pairs**: every pair of samples of one subject, at most ``mated_per_subject`` per subject
  (so a few subjects with many images cannot dominate), drawn at random where a subject has more;
* **non-mated pairs**, per (probe group, reference group) cell: ``n`` distinct pairs of samples of
  different subjects (unordered pairs are never repeated, in either orientation), or every pair the
  cell has where that is fewer (a shortfall, reported per cell).

Seeded: the same table, settings and seed give the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from faceaudit.errors import InputError
from faceaudit.scores import SampleIndex

__all__ = ["supported_count", "claim_power", "comparisons_needed", "CellPlan", "RequestPlan", "plan_requests"]


def supported_count(n: np.ndarray | int, claim: float, level: float = 0.95) -> np.ndarray:
    """Largest error count k (per n) whose exact upper bound is <= claim; -1 where none is."""
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    a = (1.0 - level) / 2.0
    k = np.asarray(binom.ppf(a, n, claim), dtype=np.int64)  # smallest k with cdf(k) >= a
    k = np.where(binom.cdf(k, n, claim) <= a, k, k - 1)
    return np.maximum(k, -1)


def claim_power(n: np.ndarray | int, claim: float, true_rate: float, level: float = 0.95) -> np.ndarray:
    """Probability that n comparisons support the claim when the true rate is ``true_rate``."""
    k = supported_count(n, claim, level)
    return np.where(k >= 0, binom.cdf(k, np.atleast_1d(n), true_rate), 0.0)


def comparisons_needed(
    claim: float, power: float = 0.8, *, alternative: float = 0.5, level: float = 0.95, limit: int = 10**10
) -> tuple[int, float]:
    """Smallest n whose power to support ``rate <= claim`` is >= ``power`` when the true rate is
    ``alternative * claim``; returns (n, power reached)."""
    if not 0.0 < claim < 1.0:
        raise InputError(f"the claimed rate must lie in (0, 1), got {claim!r}")
    if not 0.0 < power < 1.0:
        raise InputError(f"power must lie in (0, 1), got {power!r}")
    if not 0.0 <= alternative < 1.0:
        raise InputError(f"the alternative (true rate / claim) must lie in [0, 1), got {alternative!r}")
    if not 0.5 <= level < 1.0:
        raise InputError(f"level must lie in [0.5, 1), got {level!r}")
    p1 = alternative * claim
    hi = 1
    while claim_power(hi, claim, p1, level)[0] < power:
        hi *= 2
        if hi > limit:
            raise InputError(
                f"more than {limit:,} comparisons would be needed for {claim!r} at power {power!r}"
            )
    lo = hi // 2 + 1 if hi > 1 else 1
    for start in range(lo, hi + 1, 1 << 18):  # the first n of (hi / 2, hi] that reaches the power
        ns = np.arange(start, min(hi, start + (1 << 18) - 1) + 1)
        ok = np.flatnonzero(claim_power(ns, claim, p1, level) >= power)
        if ok.size:
            n = int(ns[ok[0]])
            break
    # power is a saw-tooth: an n at or below hi / 2 may reach it too
    below = np.arange(max(1, n // 2), n)
    early = np.flatnonzero(claim_power(below, claim, p1, level) >= power) if below.size else np.empty(0, int)
    if early.size:
        n = int(below[early[0]])
    return n, float(claim_power(n, claim, p1, level)[0])


@dataclass(frozen=True)
class CellPlan:
    kind: str  # "mated" or "non-mated"
    probe_group: tuple[str, ...]
    reference_group: tuple[str, ...]
    needed: int  # 0 when no claim asks for it
    available: int
    planned: int

    @property
    def shortfall(self) -> int:
        return max(0, self.needed - self.planned)


@dataclass(frozen=True)
class RequestPlan:
    samples: SampleIndex
    probe: np.ndarray  # sample indices
    reference: np.ndarray
    mated: np.ndarray
    cells: tuple[CellPlan, ...]
    claim_fmr: float | None
    claim_fnmr: float | None
    fmr_comparisons: int
    fnmr_comparisons: int
    fmr_power: float | None
    fnmr_power: float | None
    power: float
    alternative: float
    level: float
    mated_per_subject: int
    seed: int

    @property
    def total(self) -> int:
        return int(self.probe.size)

    def hours_at(self, rate: float) -> float:
        """Hours the requests take at ``rate`` requests per second."""
        if not rate > 0:
            raise InputError(f"the request rate must be > 0, got {rate!r}")
        return self.total / rate / 3600.0


def _mated_pairs(samples: SampleIndex, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(samples.subject_of_sample, kind="stable")
    subj = samples.subject_of_sample[order]
    starts = np.r_[0, np.flatnonzero(np.diff(subj)) + 1, subj.size]
    probes, refs = [], []
    for a, b in zip(starts[:-1], starts[1:]):
        if b - a < 2:
            continue
        i, j = np.triu_indices(b - a, 1)
        if i.size > cap:
            keep = np.sort(rng.choice(i.size, cap, replace=False))
            i, j = i[keep], j[keep]
        probes.append(order[a + i])
        refs.append(order[a + j])
    if not probes:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(probes).astype(np.int64), np.concatenate(refs).astype(np.int64)


def _pool_size(samples: SampleIndex, gp: int, gr: int) -> int:
    """Distinct unordered non-mated pairs with one sample in each group (both in it when gp == gr)."""
    in_p = samples.group_of_sample == gp
    if gp == gr:
        per_subject = np.bincount(samples.subject_of_sample[in_p], minlength=samples.n_subjects)
        total = int(in_p.sum())
        return (total * (total - 1) - int((per_subject * (per_subject - 1)).sum())) // 2
    # a subject sits in one group, so no pair across two groups is mated
    return int(in_p.sum()) * int((samples.group_of_sample == gr).sum())


def _enumerate_pool(samples: SampleIndex, gp: int, gr: int) -> tuple[np.ndarray, np.ndarray]:
    P = np.flatnonzero(samples.group_of_sample == gp)
    R = np.flatnonzero(samples.group_of_sample == gr)
    i, j = np.repeat(P, R.size), np.tile(R, P.size)
    keep = (samples.subject_of_sample[i] != samples.subject_of_sample[j]) & ((gp != gr) | (i < j))
    return i[keep], j[keep]


def _draw_pool(samples: SampleIndex, gp: int, gr: int, n: int, rng: np.random.Generator):
    """``n`` distinct unordered non-mated pairs (first sample in gp, second in gr), uniformly; the
    whole pool, shuffled, where it holds no more than 2n (then drawing by rejection would crawl)."""
    pool = _pool_size(samples, gp, gr)
    if pool <= 2 * n:
        i, j = _enumerate_pool(samples, gp, gr)
        order = rng.permutation(i.size)[:n]
        return i[order], j[order]
    P = np.flatnonzero(samples.group_of_sample == gp)
    R = np.flatnonzero(samples.group_of_sample == gr)
    subj, N = samples.subject_of_sample, samples.n_samples
    keys = np.empty(0, np.int64)
    pi, pj = np.empty(0, np.int64), np.empty(0, np.int64)
    while pi.size < n:
        i = P[rng.integers(0, P.size, 2 * (n - pi.size) + 16)]
        j = R[rng.integers(0, R.size, 2 * (n - pi.size) + 16)]
        ok = subj[i] != subj[j]
        i, j = i[ok], j[ok]
        if gp == gr:
            i, j = np.minimum(i, j), np.maximum(i, j)
        key = np.minimum(i, j) * N + np.maximum(i, j)
        all_keys = np.concatenate([keys, key])
        _, first = np.unique(all_keys, return_index=True)
        fresh = np.sort(first[first >= keys.size]) - keys.size  # first draw of each new pair, in draw order
        keys = np.concatenate([keys, key[fresh]])
        pi, pj = np.concatenate([pi, i[fresh]]), np.concatenate([pj, j[fresh]])
    return pi[:n], pj[:n]


def _nonmated(samples: SampleIndex, n: int, cells: str, rng: np.random.Generator):
    """Per ordered cell (gp, gr): n pairs, probe in gp and reference in gr. The cells (g, h) and (h, g)
    share one pool of unordered pairs, split between them, so that no pair is sent twice."""
    labels = samples.group_labels
    probes, refs, plans = [], [], []
    G = samples.n_groups
    for gp in range(G):
        for gr in range(gp, G):
            if gp != gr and cells == "within":
                continue
            share = n if gp == gr else 2 * n
            i, j = _draw_pool(samples, gp, gr, share, rng)
            pool = _pool_size(samples, gp, gr)
            if gp == gr:
                parts = [(gp, gr, i, j)]
            else:
                half = (i.size + 1) // 2
                parts = [(gp, gr, i[:half], j[:half]), (gr, gp, j[half:], i[half:])]
            for a, b, x, y in parts:
                probes.append(x)
                refs.append(y)
                plans.append(
                    CellPlan("non-mated", labels[a], labels[b], n, pool if a == b else pool // 2, int(x.size))
                )
    return probes, refs, plans


def plan_requests(
    samples: SampleIndex,
    *,
    claim_fmr: float | None = None,
    claim_fnmr: float | None = None,
    power: float = 0.8,
    alternative: float = 0.5,
    level: float = 0.95,
    mated_per_subject: int = 3,
    cells: str = "all",
    seed: int = 0,
) -> RequestPlan:
    """The comparisons to request: capped mated pairs, and non-mated pairs per group cell sized so
    that ``fmr <= claim_fmr`` per group can be supported with ``power`` when the true FMR is
    ``alternative * claim_fmr`` (``cells="within"``: only cells of one group; ``"all"``: the
    cross-group cells too). With ``claim_fnmr`` the mated pairs needed per group are reported."""
    if claim_fmr is None and claim_fnmr is None:
        raise InputError("give a claimed FMR and/or FNMR to size the plan for")
    if cells not in ("all", "within"):
        raise InputError(f"cells must be 'all' or 'within', got {cells!r}")
    if int(mated_per_subject) < 1:
        raise InputError(f"mated pairs per subject must be >= 1, got {mated_per_subject!r}")
    rng = np.random.default_rng(seed)
    n_fmr, p_fmr = (
        comparisons_needed(claim_fmr, power, alternative=alternative, level=level) if claim_fmr else (0, None)
    )
    n_fnmr, p_fnmr = (
        comparisons_needed(claim_fnmr, power, alternative=alternative, level=level)
        if claim_fnmr
        else (0, None)
    )
    mp, mr = _mated_pairs(samples, int(mated_per_subject), rng)
    labels = samples.group_labels
    plans = []
    g_of = samples.group_of_sample
    for g in range(samples.n_groups):
        planned = int((g_of[mp] == g).sum())
        plans.append(CellPlan("mated", labels[g], labels[g], n_fnmr, planned, planned))
    probes, refs = [mp], [mr]
    if n_fmr:  # mated and non-mated pairs never coincide: no pair is sent twice
        more_p, more_r, more_plans = _nonmated(samples, n_fmr, cells, rng)
        probes += more_p
        refs += more_r
        plans += more_plans
    probe, reference = np.concatenate(probes), np.concatenate(refs)
    subj = samples.subject_of_sample
    return RequestPlan(
        samples=samples,
        probe=probe,
        reference=reference,
        mated=subj[probe] == subj[reference],
        cells=tuple(plans),
        claim_fmr=claim_fmr,
        claim_fnmr=claim_fnmr,
        fmr_comparisons=n_fmr,
        fnmr_comparisons=n_fnmr,
        fmr_power=p_fmr,
        fnmr_power=p_fnmr,
        power=power,
        alternative=alternative,
        level=level,
        mated_per_subject=int(mated_per_subject),
        seed=seed,
    )


def write_plan(plan: RequestPlan, path: str) -> None:
    """The requests as Parquet (or CSV by suffix): ``request_id, probe, reference, mated, probe_group,
    reference_group``, ids as strings exactly as in the sample table."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    s = plan.samples
    ids = np.array([str(x) for x in s.sample_ids.tolist()], dtype=object)
    name = [" | ".join(lab) if lab else "all" for lab in s.group_labels]
    table = pa.table(
        {
            "request_id": pa.array([f"r{i:09d}" for i in range(plan.total)], pa.string()),
            "probe": pa.array(ids[plan.probe].tolist(), pa.string()),
            "reference": pa.array(ids[plan.reference].tolist(), pa.string()),
            "mated": pa.array(plan.mated.tolist(), pa.bool_()),
            "probe_group": pa.array([name[g] for g in s.group_of_sample[plan.probe]], pa.string()),
            "reference_group": pa.array([name[g] for g in s.group_of_sample[plan.reference]], pa.string()),
        }
    )
    if str(path).lower().endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
