"""GPU check for a session with a CUDA machine: torch backend vs numpy, and engine vs GEMM timing.

1. Correctness: a lattice set (every score exact in any summation order) through numpy and torch-CUDA
   must give equal ScoreDistributions and probe summaries (bit-identical); a Gaussian set must agree in
   pair counts, and its scores within the float32 bound.
2. Timing, LFW-sized (13,233 x 512) and 4x that (52,932 x 512): the float32 GEMM alone (X @ X.T on the
   device, synchronised) against compare_embeddings(backend="torch"), fp32 and bf16. Target: engine
   <= 2x the GEMM (the fused Triton kernel is the way there; this backend is its reference).

    python bench/gpu_check.py            # prints a JSON summary; exits 1 on a correctness failure
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    import torch
    from bench_compare import lfw_like
    from test_compare import lattice_set

    from faceaudit.compare import compare_embeddings
    from faceaudit.scores import SampleIndex

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    ok = True
    x, samples = lattice_set(n=3000, subjects=700, seed=1)
    kw = {"progress": False, "block": 512}
    a = compare_embeddings(x, samples, backend="numpy", **kw)
    b = compare_embeddings(x, samples, backend="torch", **kw)
    out["lattice_equal"] = bool(a == b and a.probe_summary == b.probe_summary)
    ok &= out["lattice_equal"]
    for n_mult in (1, 4):
        emb, subj, group = lfw_like()
        if n_mult > 1:
            emb = np.concatenate([emb] * n_mult)
            emb = emb + 0.05 * np.random.default_rng(1).standard_normal(emb.shape).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            subj = np.concatenate([subj + k * (subj.max() + 1) for k in range(n_mult)])
            group = np.concatenate([group] * n_mult)
        s = SampleIndex.from_columns(np.arange(emb.shape[0]), subj, {"group": group})
        t = torch.from_numpy(emb).cuda()
        (t @ t.T).sum().item()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            g = t @ t.T
        torch.cuda.synchronize()
        gemm = (time.perf_counter() - t0) / 3
        del g
        res = {"n": int(emb.shape[0]), "gemm_s": gemm}
        for prec in ("fp32", "bf16"):
            compare_embeddings(emb[:2048], SampleIndex.from_columns(np.arange(2048), subj[:2048], {"group": group[:2048]}),
                               backend="torch", precision=prec, progress=False)  # warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            d = compare_embeddings(emb, s, backend="torch", precision=prec, progress=False, block=4096)
            torch.cuda.synchronize()
            res[f"engine_{prec}_s"] = time.perf_counter() - t0
            res[f"engine_{prec}_main_s"] = d.meta["timing_s"]["main_pass"]
            res[f"ratio_{prec}"] = res[f"engine_{prec}_s"] / gemm
            if n_mult == 1 and prec == "fp32":
                ref = compare_embeddings(emb, s, backend="numpy", progress=False)
                same = (ref.n_mated == d.n_mated and ref.n_nonmated == d.n_nonmated
                        and np.array_equal(ref.nonmated_counts(), d.nonmated_counts()))
                diff = float(np.abs(np.sort(ref.genuine_score) - np.sort(d.genuine_score)).max())
                res["counts_equal_numpy"] = bool(same)
                res["max_genuine_score_diff_vs_numpy"] = diff
                res["tail_cutoffs_equal_numpy"] = bool(np.array_equal(ref.tail_cutoff, d.tail_cutoff))
                res["tail_cutoff_range_numpy_vs_torch"] = [[float(t.min()), float(t.max())]
                                                           for t in (ref.tail_cutoff, d.tail_cutoff)]
                ok &= same and diff <= 1e-4
        out[f"n{emb.shape[0]}"] = res
    out["ok"] = bool(ok)
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
