"""CPU benchmark of the exhaustive comparison engine against the float32 GEMM alone (same run).

LFW-sized synthetic set: 13,233 x 512 float32 unit vectors, 5,749 subjects with LFW's skewed image
counts (a Zipf-like tail: one subject with 530 images, most with one), 8 demographic groups, subject
clusters so that mated scores sit above non-mated ones as with a real model.

Each measurement runs in its own process (peak RSS is per process):
  gemm      X @ X.T in float32 (the ceiling the issue names), best of 2
  tri       the engine's own block schedule, GEMMs only (upper triangle), best of 2
  engine    compare_embeddings(backend="numpy"), best of 2, with peak RSS over the loaded inputs

    .venv/bin/python bench/bench_compare.py [--block 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
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
    base = rss_mb()
    if name == "gemm":
        best = min(_timed(lambda: x @ x.T) for _ in range(2))
        return {"seconds": best}
    if name == "tri":
        n = x.shape[0]

        def tri():
            for i in range(0, n, block):
                for j in range(i, n, block):
                    x[i : i + block] @ x[j : j + block].T

        return {"seconds": min(_timed(tri) for _ in range(2))}
    from faceaudit.compare import compare_embeddings
    from faceaudit.scores import SampleIndex

    samples = SampleIndex.from_columns(np.arange(x.shape[0]), subj, {"group": group})
    base = rss_mb()
    times, dist = [], None
    for _ in range(2):
        t = time.perf_counter()
        dist = compare_embeddings(x, samples, backend="numpy", block=block, threads=threads, progress=False)
        times.append(time.perf_counter() - t)
    return {"seconds": min(times), "peak_rss_mb": rss_mb(), "inputs_rss_mb": base,
            "passes": dist.meta["passes"], "tail": int(dist.tail_score.size), "tail_cutoff": dist.tail_cutoff,
            "capture_level": dist.meta["capture_level"], "main_pass_s": dist.meta["timing_s"]["main_pass"],
            "pairs": dist.meta["pairs"], "mated": dist.n_mated}


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phase")
    a = ap.parse_args()
    if a.phase:
        print(json.dumps(phase(a.phase, a.block, a.threads)))
        return
    out = {}
    for name in ("gemm", "tri", "engine"):
        r = subprocess.run([sys.executable, __file__, "--phase", name, "--block", str(a.block),
                            "--threads", str(a.threads)], capture_output=True, text=True, check=True)
        out[name] = json.loads(r.stdout.strip().splitlines()[-1])
    e = out["engine"]
    print(json.dumps(out, indent=1))
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"numpy {np.__version__}")
    print(f"GEMM alone (X @ X.T)        {out['gemm']['seconds']:.3f} s")
    print(f"block GEMMs, upper triangle {out['tri']['seconds']:.3f} s")
    print(f"engine (numpy, block {a.block}, {a.threads} threads) {e['seconds']:.3f} s "
          f"= {e['seconds'] / out['gemm']['seconds']:.2f} x GEMM, {e['seconds'] / out['tri']['seconds']:.2f} x triangle")
    print(f"peak RSS {e['peak_rss_mb']:.0f} MB ({e['peak_rss_mb'] - e['inputs_rss_mb']:.0f} MB over the loaded inputs)")


if __name__ == "__main__":
    main()
