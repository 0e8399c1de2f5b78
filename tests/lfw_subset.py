"""A few hundred LFW subjects' real SFace scores from the bundled embeddings, for the closed-matcher tests."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest

from faceaudit.demo import DEMO_DATA, load_demo_embeddings

PATH = DEMO_DATA / "lfw_sface.parquet"


@functools.lru_cache(maxsize=2)
def subset(n_multi: int = 120, n_single: int = 120, cap: int = 4, seed: int = 3):
    """(sample_ids, subject_ids, sex, race, unit embeddings) of ``n_multi`` subjects with >= 2 images
    (at most ``cap`` each) and ``n_single`` with one, drawn with a fixed seed."""
    if not PATH.exists():
        pytest.skip("bundled LFW embeddings absent")
    emb, samples, _, _ = load_demo_embeddings(PATH)
    rng = np.random.default_rng(seed)
    counts = np.bincount(samples.subject_of_sample, minlength=samples.n_subjects)
    multi = rng.choice(np.flatnonzero(counts >= 2), n_multi, replace=False)
    single = rng.choice(np.flatnonzero(counts == 1), n_single, replace=False)
    rows = []
    for s in np.concatenate([multi, single]):
        rows.extend(np.flatnonzero(samples.subject_of_sample == s)[:cap].tolist())
    rows = np.array(sorted(rows))
    x = emb[rows].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = samples.group_labels
    sex = [labels[samples.group_of_sample[i]][0] for i in rows]
    race = [labels[samples.group_of_sample[i]][1] for i in rows]
    ids = [str(samples.sample_ids[i]) for i in rows]
    subj = [str(samples.subject_ids[samples.subject_of_sample[i]]) for i in rows]
    return ids, subj, sex, race, x


def write_samples(path: Path, ids, subj, sex, race) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "subject_id", "sex", "race"])
        w.writerows(zip(ids, subj, sex, race))
    return path


def all_pairs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair i < j once, with its cosine score."""
    scores = x @ x.T
    i, j = np.triu_indices(x.shape[0], k=1)
    return i, j, scores[i, j]
