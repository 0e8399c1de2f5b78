"""Peak memory of an audit against the number of groups (issue 11: a 100-value group column, 300 samples).

    /usr/bin/time -v .venv/bin/python bench/mem_groups.py --groups 100 --samples 300 [--bins 4096] [--audit]

Writes a seeded sample table (3 samples per subject, subjects spread over ``--groups`` values of one
column) and every unordered pair's score to bench/out/, then loads it (and audits it with ``--audit``),
printing the peak RSS and the size of the (G, G, B) histogram.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_set(folder: Path, n: int, groups: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    subj = np.arange(n) // 3
    grp = subj % groups  # every value used: the worst case is G distinct groups

    samples, scores = folder / f"mem_samples_{n}_{groups}.csv", folder / f"mem_scores_{n}_{groups}.csv"
    samples.write_text("sample_id,subject_id,grp\n"
                       + "".join(f"s{i},p{subj[i]},g{grp[i]:03d}\n" for i in range(n)))
    i, j = np.triu_indices(n, k=1)
    x = np.where(subj[i] == subj[j], rng.normal(2.5, 1, i.size), rng.normal(0, 1, i.size))
    scores.write_text("probe,reference,score\n"
                      + "".join(f"s{a},s{b},{v:.6f}\n" for a, b, v in zip(i, j, x, strict=True)))
    return samples, scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--bins", type=int, default=4096)
    ap.add_argument("--audit", action="store_true")
    args = ap.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    samples, scores = write_set(out, args.samples, args.groups)
    from faceaudit.data.ingest import load_score_file

    t0 = time.time()
    dist = load_score_file(scores, samples, group_columns=["grp"], bins=args.bins)
    G = dist.n_groups
    print(f"loaded {dist.n_mated} mated + {dist.n_nonmated} non-mated, {G} groups, {args.bins} bins: "
          f"histograms {dist.histogram_nbytes() / 2**20:.1f} MiB, {time.time() - t0:.1f} s; "
          f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    if args.audit:
        from faceaudit.audit import audit

        t0 = time.time()
        audit(dist, bootstrap=0)
        print(f"audit (bootstrap 0) {time.time() - t0:.1f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
