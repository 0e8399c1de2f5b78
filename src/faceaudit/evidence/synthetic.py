"""Seeded Gaussian calibration sets whose true likelihood ratio is known, for tests and benchmarks.

Scores are drawn per pair of samples (every unordered pair once): mated ~ N(mated_mean[group], 1),
non-mated ~ N(nonmated_mean[group pair], 1). With unit variances the true log LR of a score s for a
pair of group g is (m1 - m0) s - (m1^2 - m0^2) / 2 with m1 = mated_mean[g], m0 = nonmated_mean[(g, g)].
"""

from __future__ import annotations

import numpy as np

from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges

__all__ = ["gaussian_calibration_set", "true_log10_lr"]

MATED = {"female": 2.0, "male": 2.0}
NONMATED = {
    ("female", "female"): 0.3,
    ("male", "male"): 0.0,
    ("female", "male"): -0.2,
    ("male", "female"): -0.2,
}


def true_log10_lr(score, group: str = "male", mated_mean=None, nonmated_mean=None):
    m1 = (mated_mean or MATED)[group]
    m0 = (nonmated_mean or NONMATED)[(group, group)]
    s = np.asarray(score, np.float64)
    return ((m1 - m0) * s - (m1**2 - m0**2) / 2.0) / np.log(10.0)


def gaussian_calibration_set(
    n_subjects: int = 200,
    seed: int = 0,
    tail_quantile: float = 0.9,
    bins: int = 512,
    samples_per_subject: tuple[int, int] = (2, 4),
    round_to: float | None = None,
    listed: bool = True,
    rename: dict[str, str] | None = None,
):
    """ScoreDistributions of a Gaussian set (sex groups): every non-mated score above the non-mated
    ``tail_quantile`` is exact, the rest histogram (``tail_quantile`` 0 keeps all exact)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n_subjects)
    per = rng.integers(samples_per_subject[0], samples_per_subject[1] + 1, size=n_subjects)
    subject_of_sample = np.repeat(np.arange(n_subjects), per)
    n = subject_of_sample.size
    samples = SampleIndex.from_columns(
        [f"x{i}" for i in range(n)],
        [f"p{s:04d}" for s in subject_of_sample],
        {"sex": [(rename or {}).get(x, x) for x in sex[subject_of_sample]]},
    )
    i, j = np.triu_indices(n, k=1)
    mated = subject_of_sample[i] == subject_of_sample[j]
    si, sj = sex[subject_of_sample[i]], sex[subject_of_sample[j]]
    mean = np.where(mated, [MATED[a] for a in si], [NONMATED[(a, b)] for a, b in zip(si, sj)])
    score = rng.normal(mean, 1.0)
    if round_to:
        score = np.round(score / round_to) * round_to
    edges = uniform_edges(float(score.min()), float(score.max()), bins)
    cutoff = -np.inf if tail_quantile <= 0 else float(np.quantile(score[~mated], tail_quantile))
    b = DistributionBuilder(
        samples,
        edges,
        tail_cutoff=cutoff,
        design="listed" if listed else "complete",
        track_subject_pairs=listed,
    )
    b.add(i, j, score)
    return b.result(), (i, j, score, mated)
