"""Seeded synthetic evaluation sets with known structure, for tests and examples.

Not a model of any real system: subjects get a latent quality, groups get their own impostor shift,
so that group differentials exist and are known in direction.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["make_evaluation_set", "write_evaluation_set"]


def make_evaluation_set(
    n_subjects: int = 60,
    samples_per_subject: tuple[int, int] = (1, 4),
    seed: int = 0,
    nonmated_fraction: float = 1.0,
    discrete: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Return (samples, scores): sample rows with sex and region attributes, and score rows
    (probe, reference, score, mated) over every ordered pair (or a seeded fraction of non-mated)."""
    rng = np.random.default_rng(seed)
    sexes = rng.choice(["female", "male"], size=n_subjects, p=[0.4, 0.6])
    regions = rng.choice(["a", "b", "c"], size=n_subjects, p=[0.5, 0.3, 0.2])
    shift = {("female", "a"): 0.3, ("female", "b"): 0.6, ("female", "c"): 0.4,
             ("male", "a"): 0.0, ("male", "b"): 0.2, ("male", "c"): 0.1}
    samples = []
    for s in range(n_subjects):
        for k in range(rng.integers(samples_per_subject[0], samples_per_subject[1] + 1)):
            samples.append({"sample_id": f"s{s:04d}_{k}", "subject_id": f"p{s:04d}",
                            "sex": str(sexes[s]), "region": str(regions[s])})
    subj = np.array([int(r["subject_id"][1:]) for r in samples])
    scores = []
    for i, a in enumerate(samples):
        for j, b in enumerate(samples):
            if i == j:
                continue
            mated = subj[i] == subj[j]
            if not mated and rng.random() > nonmated_fraction:
                continue
            if mated:
                x = rng.normal(2.5, 1.0)
            else:
                same = (a["sex"], a["region"]) == (b["sex"], b["region"])
                x = rng.normal(shift[(a["sex"], a["region"])] + (0.3 if same else 0.0), 0.8)
            if discrete:
                x = float(np.round(x * 4) / 4)
            scores.append({"probe": a["sample_id"], "reference": b["sample_id"], "score": float(x),
                           "mated": int(mated)})
    return samples, scores


def write_evaluation_set(folder: str | Path, **kwargs) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples, scores = make_evaluation_set(**kwargs)
    sp, sc = folder / "samples.csv", folder / "scores.csv"
    for path, rows in ((sp, samples), (sc, scores)):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return sp, sc
