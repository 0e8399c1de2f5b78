"""CPU benchmark of the exhaustive comparison engine against the float32 GEMM alone (same run).

LFW-sized synthetic set: 13,233 x 512 float32 unit vectors, 5,749 subjects with LFW's skewed image
counts (a Zipf-like tail: one subject with 1,214 images, most with one), 8 demographic groups, subject
clusters so that mated scores sit above non-mated ones as with a real model.

Each measurement runs in its own process (peak RSS is per process), and the three run one after the
other, ``--repeat`` times (default 3); the summary is the median of the repetitions' figures, with
the load average seen (other jobs on a shared machine slow every phase alike, ratios less so):
  gemm      X @ X.T in float32 (the ceiling the issue names)
  tri       the engine's own block schedule, GEMMs only (upper triangle)
  engine    compare_embeddings(backend="numpy"), with peak RSS (whole process) and its phases

    .venv/bin/python bench/bench_compare.py [--block 1024] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def lfw_like(seed: int = 0, n: int = 13233, d: int = 512, subjects: int = 5749, groups: int = 8):
    rng = np.random.default_rng(seed)
    counts = np.ones(subjects, np.int64)
    extra = n - subjects
    w = 1.0 / np.arange(1, subjects + 1) ** 1.1
    counts += rng.multinomial(extra, w / w.sum())
    subj = np.repeat(np.arange(subjects), counts)
    rng.shuffle(subj)
    centre = rng.standard_normal((subjects, d)).astype(np.float32)
    x = centre[subj] + 1.2 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    group = (subj * 7919) % groups
    return x.astype(np.float32), subj, group


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase(name: str, block: int, threads: int) -> dict:
    x, subj, group = lfw_like()
    c0 = cpu_s()
    out = _phase(name, x, subj, group, block, threads)
    out["cpu_s"] = cpu_s() - c0  # less sensitive than wall time to other jobs on a shared machine
    return out


def _phase(name: str, x, subj, group, block: int, threads: int) -> dict:
    if name == "gemm":
        return {"seconds": _timed(lambda: x @ x.T)}
    if name == "tri":
        n = x.shape[0]

        def tri():
            for i in range(0, n, block):
                for j in range(i, n, block):
                    x[i : i + block] @ x[j : j + block].T

        return {"seconds": _timed(tri)}
    from faceaudit.compare import compare_embeddings
    from faceaudit.scores import SampleIndex

    samples = SampleIndex.from_columns(np.arange(x.shape[0]), subj, {"group": group})
    base = rss_mb()
    c0 = cpu_s()
    t = time.perf_counter()
    dist = compare_embeddings(x, samples, backend="numpy", block=block, threads=threads, progress=False)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "engine_cpu_s": cpu_s() - c0, "peak_rss_mb": rss_mb(), "inputs_rss_mb": base,
            "passes": dist.meta["passes"], "tail": int(dist.tail_score.size),
            "tail_cutoff_range": [float(dist.tail_cutoff.min()), float(dist.tail_cutoff.max())],
            "capture_level_range": dist.meta["capture_level"], "timing_s": dist.meta["run"]["timing_s"],
            "pairs": dist.meta["pairs"], "mated": dist.n_mated}


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phase")
    a = ap.parse_args()
    if a.phase:
        print(json.dumps(phase(a.phase, a.block, a.threads)))
        return
    runs = []
    for _ in range(a.repeat):
        run = {"load_before": os.getloadavg()[0]}
        for name in ("gemm", "tri", "engine"):
            r = subprocess.run([sys.executable, __file__, "--phase", name, "--block", str(a.block),
                                "--threads", str(a.threads)], capture_output=True, text=True, check=True)
            run[name] = json.loads(r.stdout.strip().splitlines()[-1])
        run["load_after"] = os.getloadavg()[0]
        run["ratio"] = run["engine"]["seconds"] / run["gemm"]["seconds"]
        run["cpu_ratio"] = run["engine"]["engine_cpu_s"] / run["gemm"]["cpu_s"]
        runs.append(run)
        print(json.dumps(run), flush=True)

    def med(f):
        return float(np.median([f(r) for r in runs]))

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy "
        f"{np.__version__}; "
        f"load average {min(r['load_before'] for r in runs):.1f}-{max(r['load_after'] for r in runs):.1f}"
    )
    print(f"medians of {len(runs)} runs:")
    print(f"GEMM alone (X @ X.T)        {med(lambda r: r['gemm']['seconds']):.3f} s")
    print(f"block GEMMs, upper triangle {med(lambda r: r['tri']['seconds']):.3f} s")
    print(
        f"engine (numpy, block {a.block}, {a.threads} threads) {med(lambda r: r['engine']['seconds']):.3f} s "
        f"= {med(lambda r: r['ratio']):.2f} x GEMM (runs: "
        f"{', '.join(format(r['ratio'], '.2f') for r in runs)})"
    )
    print(f"  CPU time (user + sys): GEMM {med(lambda r: r['gemm']['cpu_s']):.3f} s, engine "
          f"{med(lambda r: r['engine']['engine_cpu_s']):.3f} s = {med(lambda r: r['cpu_ratio']):.2f} x GEMM "
          f"(runs: {', '.join(format(r['cpu_ratio'], '.2f') for r in runs)})")
    for k in ("pre_pass", "main_pass", "assembly"):
        print(f"  {k:10s} {med(lambda r, k=k: r['engine']['timing_s'][k]):.3f} s "
              f"= {med(lambda r, k=k: r['engine']['timing_s'][k] / r['gemm']['seconds']):.2f} x GEMM")
    print(
        f"peak RSS {med(lambda r: r['engine']['peak_rss_mb']):.0f} MB "
        f"({med(lambda r: r['engine']['peak_rss_mb'] - r['engine']['inputs_rss_mb']):.0f} MB over the "
        f"loaded inputs)"
    )


if __name__ == "__main__":
    main()
