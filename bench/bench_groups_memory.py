"""Peak memory of `faceaudit audit` and `faceaudit compare` against the number of groups.

Writes, under --out, for each G in --groups: a sample table of --n samples (subjects of 3 samples,
each subject in one of G groups, round-robin), every unordered pair's score (listed once) as a CSV, and
random unit embeddings (.npy); then runs both commands under /usr/bin/time -v and prints the peak RSS.

    PYTHONPATH=$PWD/src python bench/bench_groups_memory.py --out /tmp/gm --groups 100 10 1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np


def write_inputs(folder: Path, n: int, n_groups: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subject = np.arange(n) // 3
    group = subject % n_groups
    ids = [f"s{i:05d}" for i in range(n)]
    with open(folder / "samples.csv", "w") as f:
        f.write("sample_id,subject_id,region\n")
        for i in range(n):
            f.write(f"{ids[i]},p{subject[i]:05d},g{group[i]:03d}\n")
    emb = rng.standard_normal((n, 64)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(folder / "emb.npy", emb)
    i, j = np.triu_indices(n, k=1)
    scores = np.einsum("ij,ij->i", emb[i], emb[j]).astype(np.float64)
    with open(folder / "scores.csv", "w") as f:
        f.write("probe,reference,score\n")
        for a, b, s in zip(i.tolist(), j.tolist(), scores.tolist()):
            f.write(f"{ids[a]},{ids[b]},{s!r}\n")


def peak_rss_mb(cmd: list[str]) -> tuple[float, int, float]:
    """(peak RSS in MiB, exit code, wall seconds) of a command under /usr/bin/time -v."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr).group(1)
    secs = sum(float(x) * 60**k for k, x in enumerate(reversed(wall.split(":"))))
    if p.returncode:
        print(p.stdout[-2000:], p.stderr[-3000:], file=sys.stderr)
    return rss / 1024, p.returncode, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--groups", type=int, nargs="+", default=[100, 10, 1])
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    cli = [args.python, "-m", "faceaudit.cli"]
    print("| groups | samples | command | peak RSS (MiB) | wall (s) | exit |")
    print("|---:|---:|---|---:|---:|---:|")
    for g in args.groups:
        folder = args.out / f"g{g}"
        write_inputs(folder, args.n, g)
        runs = {
            "audit --scores": [*cli, "audit", "--scores", str(folder / "scores.csv"), "--samples",
                               str(folder / "samples.csv"), "--group", "region", "--bootstrap", "200",
                               "--json", str(folder / "audit.json"), "--quiet"],
            "compare": [*cli, "compare", "--embeddings", str(folder / "emb.npy"), "--samples",
                        str(folder / "samples.csv"), "--group", "region", "--backend", "numpy",
                        "--out", str(folder / "d.fadist"), "--quiet"],
            "audit --distributions": [*cli, "audit", "--distributions", str(folder / "d.fadist"),
                                      "--group", "region", "--bootstrap", "200", "--json",
                                      str(folder / "audit_d.json"), "--quiet"],
        }
        for name, cmd in runs.items():
            rss, rc, wall = peak_rss_mb(cmd)
            print(f"| {g} | {args.n} | {name} | {rss:.0f} | {wall:.1f} | {rc} |", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
