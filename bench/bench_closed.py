"""Closed-system inputs at a realistic size: reading and measuring a decision file and candidate lists.

Synthetic ids and scores (a seeded normal model), written as CSV, then read and measured the way
`faceaudit audit --scores` (decision column) and `faceaudit identify --candidates` do. Prints wall
seconds per stage and rows per second; the machine and date go into bench/RESULTS.md by hand.

    PYTHONPATH=src python bench/bench_closed.py [--pairs 1000000] [--searches 20000] [--length 50]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from faceaudit.data.candidates import read_candidate_lists, read_gallery
from faceaudit.data.decisions import read_closed_comparisons, read_samples
from faceaudit.measures.candidates import candidate_identification
from faceaudit.measures.decisions import closed_audit


def _write(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _samples(d: Path, n_subjects: int, rng) -> tuple[Path, np.ndarray, np.ndarray]:
    per = rng.integers(1, 5, n_subjects)
    subj = np.repeat(np.arange(n_subjects), per)
    ids = np.array([f"s{i:07d}" for i in range(subj.size)], dtype=object)
    sex = np.where(subj % 2, "female", "male")
    _write(d / "samples.csv", ["sample_id", "subject_id", "sex"], zip(ids, subj, sex))
    return d / "samples.csv", ids, subj


def bench_decisions(d: Path, pairs: int, rng) -> None:
    path, ids, subj = _samples(d, 20_000, rng)
    a, b = rng.integers(0, ids.size, pairs), rng.integers(0, ids.size, pairs)
    key = np.unique(np.minimum(a, b) * ids.size + np.maximum(a, b))
    key = key[key // ids.size != key % ids.size]
    a, b = key // ids.size, key % ids.size
    mated = subj[a] == subj[b]
    score = np.where(mated, rng.normal(3, 1, a.size), rng.normal(0, 1, a.size))
    words = np.where(score >= 2.5, "match", "no-match")
    _write(d / "decisions.csv", ["probe", "reference", "decision"], zip(ids[a], ids[b], words))
    t0 = time.perf_counter()
    index = read_samples(path, ["sex"])
    closed = read_closed_comparisons(d / "decisions.csv", index)
    t1 = time.perf_counter()
    closed_audit(closed, bootstrap=200)
    t2 = time.perf_counter()
    print(f"decision file: {a.size:,} rows read in {t1 - t0:.2f} s ({a.size / (t1 - t0):,.0f} rows/s); "
          f"rates per group + cross-group + 200 bootstrap replicates in {t2 - t1:.2f} s")


def bench_candidates(d: Path, searches: int, length: int, rng) -> None:
    path, ids, subj = _samples(d, 40_000, rng)
    gallery = np.unique(rng.choice(ids.size, ids.size // 2, replace=False))
    probes = rng.choice(np.setdiff1d(np.arange(ids.size), gallery), searches, replace=False)
    rows = []
    for p in probes:
        cands = rng.choice(gallery, length, replace=False)
        scores = np.sort(rng.normal(0, 1, length))[::-1]
        rows += [[f"q{p}", ids[p], r + 1, ids[c], f"{s:.6f}"] for r, (c, s) in enumerate(zip(cands, scores))]
    _write(d / "cands.csv", ["search_id", "probe", "rank", "candidate", "score"], rows)
    _write(d / "gallery.csv", ["sample_id"], [[ids[g]] for g in gallery])
    t0 = time.perf_counter()
    index = read_samples(path, ["sex"])
    enrolled = read_gallery(d / "gallery.csv", index)
    lists = read_candidate_lists(d / "cands.csv", index, enrolled, list_length=length)
    t1 = time.perf_counter()
    candidate_identification(lists, thresholds=[2.0, 2.5], ranks=[1, 10], bootstrap=200)
    t2 = time.perf_counter()
    print(f"candidate lists: {len(rows):,} rows ({searches:,} searches x {length}) read and validated in "
          f"{t1 - t0:.2f} s ({len(rows) / (t1 - t0):,.0f} rows/s); FPIR/FNIR/CMC with 200 bootstrap "
          f"replicates in {t2 - t1:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=20_000)
    ap.add_argument("--length", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        bench_decisions(Path(tmp), args.pairs, rng)
        bench_candidates(Path(tmp), args.searches, args.length, rng)


if __name__ == "__main__":
    main()
