"""One-call GPU check: correctness of the torch and fused-Triton paths against numpy, and their speed
against the GEMM alone on the same card.

    python3 bench/gpu_check.py                  # on the device machine (see "The device call" below)
    python3 bench/gpu_check.py --small          # correctness + the smaller size only (budget 200 s)
    .venv/bin/python bench/gpu_check.py --small   # where torch sees no CUDA device: CPU mode (below)

The device call. One ``run`` of the device tool: ``PYTHONUNBUFFERED=1 python3 bench/gpu_check.py`` with
**timeout_s=420**. The script keeps itself inside ``--budget`` (345 s, under 6 minutes, by default;
200 s with ``--small``): every stage gets a time box from what is left, less what the later stages
are guaranteed, and is skipped when too little is left; the 75 s between budget and timeout cover
python's start, a child killed at its limit and the last writes. A rerun with ``--small``
(timeout_s=270) fits in what a 15-minute lease leaves after one full call and a machine start.

Results survive anything short of the machine going away: ``gpu_check.json`` and ``gpu_check.md`` are
written to $OUT (else bench/out/) after EVERY stage, so a timeout still leaves everything finished
before it, plus ``gpu_pytest.log``.

Needs numpy, scipy, pyarrow, threadpoolctl, torch and (for the fused path) triton; faceaudit is taken
from src/ when it is not installed, so the device image's python3 needs no venv. What is missing is
printed, and every stage that can still run does (each stage's error is recorded, not fatal; errors
are caught per kernel and precision, so one failure does not replace the other results).

Order. This process never launches the fused kernel: the baselines run here first, then every fused
stage runs in a child process with its own time limit (killed at it), which writes its results to a
file after each step. A sticky CUDA error, a hang or a crash of the fused kernel therefore costs only
the step it happened in.

1. Environment: card, capability, SMs, memory, driver (nvidia-smi), CUDA runtime, torch, triton,
   numpy; the fused kernel's histogram path (tl.histogram with mask=, sentinel, or global atomics).
2. Baselines (this process; torch kernels only):
   * correctness: lattice set (entries +-1/8: every score exact in any summation order, all on bin
     edges), numpy vs the torch kernels, fp32 and bf16, must be bit-identical; LFW-like Gaussian set
     (13,233 x 512, 8 groups): counts must equal numpy's, the largest mated-score difference must be
     within the float32 GEMM bound (fp32) or the bf16 bound ``2**-7 + 2**-16`` plus twice the float32
     bound (bf16: both operands rounded to 8 significant bits);
   * timing, per size: the GEMM alone over the engine's upper-triangle block schedule (fp32 with TF32
     off; bf16 with bf16 and, where torch has it, fp32 output) and the torch kernels' main pass.
     Sizes: 131,072 x 512 (blocks of 16,384), the command's defaults at that size (fp32, block 1,024,
     chunk_pairs 2**25: what ``kernel=auto`` decides there, with data), 1,048,576 x 512 (blocks of
     32,768); 8 groups (64 cells), 4,096 bins, a capture level near FMR 1e-5. A stage that would not
     finish in its time box is measured on its first chunks and projected (marked so).
3. Fused kernel (child processes):
   * checks: the lattice set through ``compare_embeddings`` (fp32, bf16: bit-identical to numpy); the
     probe (:meth:`FusedPairs.probe`: main, capture-only and rescan modes, checked) on lattice and
     Gaussian samples; the raw kernel with every non-mated pair captured (4,096 x 512): its histogram
     must be exactly the binning of its own scores, every pair once, its scores within the float32
     bound of float64 dot products of the same (fp32 or bf16-rounded) inputs; the Gaussian set through
     ``compare_embeddings``; what ``kernel=auto`` chooses on it (probe included);
   * ``pytest tests/test_triton_kernel.py`` compiled on the GPU (every mode, both histogram paths),
     with a time cap; its log is ``gpu_pytest.log``;
   * timing: the smaller size in a few tile configurations, the command's defaults (block 1,024,
     forced), then the large size with the fastest configuration per precision.

CPU mode (torch sees no CUDA device; sets TRITON_INTERPRET=1 before triton is imported): the same
stages at toy sizes, the fused kernel in Triton's interpreter, no pytest stage (run it directly) and no
large size. It proves the script runs; its timings mean nothing.

Exit code: 0 when every correctness check that ran passed, 1 when one failed, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = time.perf_counter()
#: "child NAME: " in a child's log lines (its clock starts at its own start)
PREFIX = ""
#: a bf16-rounded score's distance from the float32 one, unit vectors: (2u + u^2) sum|a_k b_k|, u = 2**-8
BF16_SCORE_BOUND = 2.0**-7 + 2.0**-16


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {PREFIX}{msg}", flush=True)


def error_of(exc: BaseException, limit: int = 8) -> dict:
    """The error's first line (at most 300 characters) and the traceback."""
    lines = str(exc).strip().splitlines()
    first = lines[0][:300] if lines else ""
    return {"error": f"{type(exc).__name__}: {first}", "traceback": traceback.format_exc(limit=limit)}


# ----- environment ----------------------------------------------------------------------------------
def environment() -> tuple[dict, list[str]]:
    """Versions of what is there; names of what is missing (faceaudit from src/ when not installed)."""
    env: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "cwd": os.getcwd(),
                 "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET")}
    missing = []
    try:  # before triton is imported: without a GPU, the fused kernel can only run in Triton's interpreter
        import torch

        if not torch.cuda.is_available() and "triton" not in sys.modules:
            os.environ.setdefault("TRITON_INTERPRET", "1")
            env["TRITON_INTERPRET"] = os.environ["TRITON_INTERPRET"] + " (set by gpu_check: no CUDA device)"
    except Exception:
        pass
    for name in ("numpy", "scipy", "pyarrow", "threadpoolctl", "torch", "triton"):
        try:
            mod = importlib.import_module(name)
            env[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # a broken install is as missing as an absent one
            env[name] = None
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    try:
        import faceaudit  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "src"))
    try:
        import faceaudit

        env["faceaudit"] = f"{faceaudit.__version__} from {Path(faceaudit.__file__).parent}"
    except Exception as exc:
        missing.append(f"faceaudit ({type(exc).__name__}: {exc})")
    for sub in ("bench", "tests"):
        if str(ROOT / sub) not in sys.path:
            sys.path.insert(0, str(ROOT / sub))
    if env.get("torch"):
        import torch

        env["cuda"] = bool(torch.cuda.is_available())
        env["torch_cuda"] = torch.version.cuda
        if env["cuda"]:
            p = torch.cuda.get_device_properties(0)
            env["device"] = torch.cuda.get_device_name(0)
            env["sm_count"] = p.multi_processor_count
            env["memory_gib"] = round(p.total_memory / 2**30, 1)
            env["capability"] = list(torch.cuda.get_device_capability(0))
    if env.get("triton"):
        try:
            import triton

            from faceaudit.compare.backends import triton_kernel as tk

            env["triton_path"] = str(Path(triton.__file__).parent)
            env["triton_histogram"] = (
                "tl.histogram (shared memory), " + ("mask=" if tk.HIST_MASK else "sentinel bin")
                if tk.SMEM_HISTOGRAM
                else "global atomics into replicated histograms"
            )
        except Exception as exc:
            env["triton_histogram"] = f"unknown ({type(exc).__name__}: {exc})"
    return env, missing


def driver_info() -> dict:
    """nvidia-smi's view of the card (driver version, clocks); {} where it is absent."""
    try:
        q = "name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit,temperature.gpu"
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20)
        vals = [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")] if r.stdout.strip() else []
        return (
            dict(zip(q.split(","), vals)) if vals else {"nvidia_smi": (r.stderr or "no output").strip()[:200]}
        )
    except Exception as exc:
        return {"nvidia_smi": f"{type(exc).__name__}: {exc}"}


class Budget:
    """Wall-clock budget: stages ask for a time box and are told when to stop."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def box(self, cap: float, reserve: float = 0.0) -> float:
        """At most ``cap`` seconds, leaving ``reserve`` for what comes later."""
        return max(0.0, min(cap, self.left() - reserve))


class Partial:
    """A dict written to a JSON file after every change (a child's results survive its kill)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.data: dict = {}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.data, default=str))
            os.replace(tmp, self.path)


def sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free(torch) -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed(name: str, fn, *args, **kwargs) -> dict:
    """fn's result (a dict) with its seconds, or its error."""
    log(f"{name} ...")
    t = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:
        out = error_of(exc)
        log(f"{name} FAILED: {out['error']}")
    else:
        log(f"{name} done")
    if isinstance(out, dict):
        out.setdefault("stage_s", round(time.perf_counter() - t, 2))
    return out


# ----- correctness ----------------------------------------------------------------------------------
def per_kernel(kernels: tuple[str, ...], one, out: dict) -> bool:
    """Run ``one(precision) -> (entry, ok)`` for every kernel (selected through FACEAUDIT_TORCH_KERNEL)
    and precision, into ``out["<kernel>_<precision>"]``; an error is recorded in its entry and counts
    as not ok, without stopping the others. Returns whether all were ok."""
    ok = True
    try:
        for kernel in kernels:
            os.environ["FACEAUDIT_TORCH_KERNEL"] = kernel
            for prec in ("fp32", "bf16"):
                try:
                    out[f"{kernel}_{prec}"], good = one(prec)
                    ok &= good
                except Exception as exc:
                    out[f"{kernel}_{prec}"] = error_of(exc)
                    ok = False
    finally:
        os.environ.pop("FACEAUDIT_TORCH_KERNEL", None)
    return bool(ok)


def lattice_check(device: str, kernels: tuple[str, ...], n: int) -> dict:
    """numpy vs the asked kernels through compare_embeddings on the lattice set: bit-identical."""
    import numpy as np
    from test_compare import lattice_set

    from faceaudit.compare import compare_embeddings

    x, samples = lattice_set(n=n, subjects=max(20, n // 4), seed=1)
    kw = {"progress": False, "block": 512, "reference_sample": 256}
    ref = compare_embeddings(x, samples, backend="numpy", **kw)
    out: dict = {"n": n, "pairs": n * (n - 1) // 2, "tail": int(ref.tail_score.size)}
    def one(prec: str) -> tuple[dict, bool]:
        d = compare_embeddings(x, samples, backend="torch", device=device, precision=prec, **kw)
        same = bool(d == ref and d.probe_summary == ref.probe_summary
                    and np.array_equal(d.nonmated_counts(), ref.nonmated_counts()))
        return {"bit_identical_to_numpy": same, "device": d.meta["run"]["device"]}, same

    out["ok"] = per_kernel(kernels, one, out)
    return out


def gaussian_check(device: str, kernels: tuple[str, ...], n: int | None) -> dict:
    """The LFW-like set: counts equal numpy's; mated scores within the fp32 / bf16 bound of numpy's."""
    import numpy as np
    from bench_compare import lfw_like

    from faceaudit.compare import compare_embeddings
    from faceaudit.compare.kernel import gemm_error_bound
    from faceaudit.scores import SampleIndex

    emb, subj, group = lfw_like()
    if n is not None:
        emb, subj, group = emb[:n], subj[:n], group[:n]
    samples = SampleIndex.from_columns(np.arange(emb.shape[0]), subj, {"group": group})
    kw = {"progress": False, "block": 4096}
    ref = compare_embeddings(emb, samples, backend="numpy", **kw)
    f32 = gemm_error_bound(emb.shape[1])
    bounds = {"fp32": f32, "bf16": BF16_SCORE_BOUND + 2 * f32}
    out: dict = {"n": int(emb.shape[0]), "bounds": bounds, "numpy_s": ref.meta["run"]["timing_s"]["total"]}

    def one(prec: str) -> tuple[dict, bool]:
        d = compare_embeddings(emb, samples, backend="torch", device=device, precision=prec, **kw)
        counts = bool(d.n_mated == ref.n_mated and d.n_nonmated == ref.n_nonmated)
        moved = int(np.abs(d.cell_histogram() - ref.cell_histogram()).sum() // 2)
        # mated scores pair by pair (the canonical order sorts by score, which may differ)
        oa = np.lexsort((d.genuine_reference, d.genuine_probe))
        ob = np.lexsort((ref.genuine_reference, ref.genuine_probe))
        same_pairs = bool(np.array_equal(d.genuine_probe[oa], ref.genuine_probe[ob])
                          and np.array_equal(d.genuine_reference[oa], ref.genuine_reference[ob]))
        gdiff = (
            float(np.abs(d.genuine_score[oa] - ref.genuine_score[ob]).max())
            if same_pairs and oa.size
            else 0.0
        )
        within = gdiff <= bounds[prec]
        entry = {"counts_equal_numpy": counts and same_pairs, "pairs_in_another_bin_than_numpy": moved,
                 "max_mated_score_diff": gdiff, "bound": bounds[prec], "within_bound": bool(within),
                 "max_mated_diff_over_bound": gdiff / bounds[prec],
                 "tail_cutoffs_equal_numpy": bool(np.array_equal(d.tail_cutoff, ref.tail_cutoff)),
                 "equal_numpy": bool(d == ref), "seconds": d.meta["run"]["timing_s"]["total"],
                 "device": d.meta["run"]["device"]}
        return entry, bool(counts and same_pairs and within)

    out["ok"] = per_kernel(kernels, one, out)
    return out


def raw_kernel_check(torch, device: str, n: int, d: int | None) -> dict:
    """The fused kernel with every non-mated pair captured: its histogram against the binning of its
    own scores (exact), its scores against float64 dot products of the same inputs (float32 bound)."""
    import numpy as np
    from bench_compare import lfw_like

    from faceaudit.compare import plan as E
    from faceaudit.compare.backends import triton_kernel as tk
    from faceaudit.compare.inputs import prepare_embeddings
    from faceaudit.compare.kernel import BlockPartial, gemm_error_bound, scaled_references
    from faceaudit.scores import SampleIndex, bin_index

    emb, subj, group = lfw_like()
    emb, subj, group = emb[:n], subj[:n], group[:n]
    if d is not None:
        emb = emb[:, :d] / np.linalg.norm(emb[:, :d], axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(n), subj, {"group": group})
    emb = prepare_embeddings(emb)
    out: dict = {"n": n, "d": int(emb.shape[1])}
    ok = True
    for prec in ("fp32", "bf16"):
        try:
            block = max(256, n // 2)
            run = E.Planner(
                emb,
                samples,
                metric="cosine",
                bins=4096,
                block=block,
                top_k=0,
                fmr_targets=[1e-3],
                reference_sample=64,
                seed=0,
                max_capture=10**12,
            )
            G = run.G
            run.set_capture(
                np.full((G, G), -np.inf), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32)
            )
            chunks = E.make_chunks(run.blocks, block, n, 1 << 40)
            t = torch.from_numpy(emb).to(device)
            if prec == "bf16":
                t = t.to(torch.bfloat16).to(torch.float32)
            fused = tk.FusedPairs(torch, t, precision=prec)
            total = BlockPartial.sum([p for _, p in fused.run_chunks(run.plan, chunks, range(len(chunks)))],
                                     run.plan.n_slots)
            plan = run.plan
            i, j, x = total.cap_i, total.cap_j, total.cap_x
            iu, ju = np.triu_indices(n, 1)
            nm = subj[iu] != subj[ju]
            once = bool(
                i.size == nm.sum() and np.unique(i * n + j).size == i.size and (subj[i] != subj[j]).all()
            )
            bins_k = bin_index(x.astype(np.float64) / plan.scale, run.edges)
            expect = np.zeros((G, G, plan.n_bins), np.int64)
            gg = samples.group_of_sample
            np.add.at(expect, (gg[i], gg[j], bins_k), 1)
            hist_ok = bool(np.array_equal(plan.slots_to_hist(total.slots), expect))
            e64 = t.double().cpu().numpy()
            exact = np.einsum("ij,ij->i", e64[i], e64[j]) * plan.scale  # float64 of the kernel's own inputs
            diff = np.abs(x.astype(np.float64) - exact)
            bound = gemm_error_bound(run.d) * plan.scale
            res = {
                "pairs_once": once,
                "hist_equals_own_scores": hist_ok,
                "mated": int(total.gen_x.size),
                "max_abs_diff_x": float(diff.max()),
                "bound_x": bound,
                "max_diff_over_float32_bound": float(diff.max() / bound),
                "within_bound": bool(diff.max() <= bound),
                "pairs_in_another_bin_than_exact": int(
                    (bin_index(exact / plan.scale, run.edges) != bins_k).sum()
                ),
                "pairs": int(i.size),
                "reruns": fused.reruns,
                "kernel": fused.identity,
            }
            if prec == "fp32":
                xn = np.empty(i.size, np.float32)
                sc = scaled_references(emb, plan)
                for bi, bj in run.blocks:  # numpy's own block GEMMs
                    m = (i // block == bi) & (j // block == bj)
                    xb = emb[bi * block : (bi + 1) * block] @ sc[bj * block : (bj + 1) * block].T
                    xn[m] = xb[i[m] - bi * block, j[m] - bj * block]
                res["pairs_in_another_bin_than_numpy"] = int(
                    (bin_index(xn.astype(np.float64) / plan.scale, run.edges) != bins_k).sum())
                res["scores_differing_from_numpy"] = int((xn != x).sum())
            out[prec] = res
            ok &= once and hist_ok and diff.max() <= bound
            del fused, t
        except Exception as exc:
            out[prec] = error_of(exc)
            ok = False
        free(torch)
    out["ok"] = bool(ok)
    return out


def probe_check(torch, device: str, m: int) -> dict:
    """FusedPairs.probe (main, capture-only and rescan modes, checked) on lattice and Gaussian samples."""
    import numpy as np
    from bench_compare import lfw_like
    from test_compare import lattice_set

    from faceaudit.compare import plan as E
    from faceaudit.compare.backends import triton_kernel as tk
    from faceaudit.compare.inputs import prepare_embeddings
    from faceaudit.scores import SampleIndex

    out: dict = {"m": m}
    ok = True
    emb, subj, group = lfw_like()
    gauss = (emb[:m], SampleIndex.from_columns(np.arange(m), subj[:m], {"group": group[:m]}))
    for name, (x, samples) in (
        ("lattice", lattice_set(n=m, subjects=max(20, m // 4), seed=3)),
        ("gaussian", gauss),
    ):
        e = prepare_embeddings(x)
        run = E.Planner(e, samples, metric="cosine", bins=4096, block=m, top_k=0, fmr_targets=[1e-3],
                     reference_sample=64, seed=0, max_capture=10**12)
        for prec in ("fp32", "bf16"):
            try:
                t = torch.from_numpy(e).to(device)
                if prec == "bf16":
                    t = t.to(torch.bfloat16).to(torch.float32)
                f = tk.FusedPairs(torch, t, precision=prec)
                out[f"{name}_{prec}"] = f.probe(run.plan, m=m)
            except Exception as exc:
                out[f"{name}_{prec}"] = error_of(exc)
                ok = False
    out["ok"] = bool(ok)
    return out


def auto_check(device: str, n: int | None) -> dict:
    """What kernel=auto chooses on the LFW-like set in one block (little padding): the probe runs."""
    import numpy as np
    from bench_compare import lfw_like

    from faceaudit.compare import plan as E
    from faceaudit.compare.backends.torch_backend import TorchBackend
    from faceaudit.compare.inputs import prepare_embeddings
    from faceaudit.scores import SampleIndex

    emb, subj, group = lfw_like()
    if n is not None:
        emb, subj, group = emb[:n], subj[:n], group[:n]
    samples = SampleIndex.from_columns(np.arange(emb.shape[0]), subj, {"group": group})
    out: dict = {}
    for block in (1024, 32768):
        run = E.Planner(prepare_embeddings(emb), samples, metric="cosine", bins=4096, block=block, top_k=0,
                     fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**12)
        be = TorchBackend(emb, device=device, kernel="auto")
        t = time.perf_counter()
        fused = be.prepare(run.plan)
        out[f"block{block}"] = {
            "fused": fused,
            "seconds": round(time.perf_counter() - t, 3),
            **be.kernel_meta,
        }
    out["ok"] = True  # informative: what auto chooses, and why
    return out


# ----- timing ---------------------------------------------------------------------------------------
def make_set(torch, device: str, n: int, d: int = 512, groups: int = 8, per_subject: int = 10, seed: int = 0):
    """Clustered unit vectors generated on the device, ~per_subject samples per subject, groups by subject."""
    import numpy as np

    g = torch.Generator(device=device).manual_seed(seed)
    subjects = max(1, n // per_subject)
    subj = torch.randint(0, subjects, (n,), device=device, generator=g)
    centre = torch.randn((subjects, d), device=device, generator=g)
    x = centre[subj] + 1.2 * torch.randn((n, d), device=device, generator=g)
    x /= x.norm(dim=1, keepdim=True)
    subj_np = subj.cpu().numpy().astype(np.int64)
    return x.contiguous(), subj_np, (subj_np * 7919) % groups


def plan_for(torch, x, subj, group, block: int, fmr: float = 1e-5):
    """The engine's plan, with a capture level per cell near FMR ``fmr`` (from sampled scores) and no
    per-probe summaries (top_k=0): the main pass of a real run, without its pre-pass."""
    import numpy as np

    from faceaudit.compare import plan as E
    from faceaudit.scores import SampleIndex, bin_index

    n = x.shape[0]
    emb = x.cpu().numpy()
    samples = SampleIndex.from_columns(np.arange(n), subj, {"group": group})
    run = E.Planner(
        emb,
        samples,
        metric="cosine",
        bins=4096,
        block=block,
        top_k=0,
        fmr_targets=[1e-3, 1e-4, 1e-5],
        reference_sample=512,
        seed=0,
        max_capture=10**12,
    )
    g = torch.Generator(device=x.device).manual_seed(1)
    rows = torch.randint(0, n, (min(n, 4096),), device=x.device, generator=g)
    cols = torch.randint(0, n, (min(n, 65536),), device=x.device, generator=g)
    s = (x[rows] @ x[cols].T).flatten().float()
    k = max(1, int(fmr * s.numel()))
    level = float(torch.topk(s, k).values[-1])
    edge = float(run.edges[bin_index(np.array([level]), run.edges)[0]])
    run.set_capture(
        np.full((run.G, run.G), edge), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32)
    )
    return run, emb, samples, edge


def best_of(fn, repeat_below: float = 2.0, times: int = 3) -> dict:
    """fn() -> a timing row; a complete run shorter than ``repeat_below`` s is repeated, the fastest kept."""
    row = fn()
    if row["chunks"] == row["of_chunks"] and row["seconds"] < repeat_below:
        for _ in range(times - 1):
            again = fn()
            if again["seconds"] < row["seconds"]:
                row = again
        row["best_of"] = times
    return row


def timed_chunks(torch, gen_fn, n_chunks: int, pairs_of, box: float) -> dict:
    """Run chunks 0.. until done or the time box is spent; time and share of pairs done."""
    sync(torch)
    t = last = time.perf_counter()
    done, pairs, caps = 0, 0, 0
    gen = gen_fn()
    try:
        for k, part in gen:  # a chunk is complete (on the host) when it is yielded
            last = time.perf_counter()
            done += 1
            pairs += pairs_of(k)
            caps += int(part.cap_x.size)
            if last - t > box and done < n_chunks:
                break  # chunks still in flight are not counted, nor waited for in the time
    finally:
        gen.close()
    s = last - t
    sync(torch)
    return {"seconds": s, "chunks": done, "of_chunks": n_chunks, "pairs": pairs, "captured": caps}


def gemm_time(torch, x, blocks, block: int, dtype, out_fp32: bool, box: float) -> dict:
    t = x.to(dtype)
    kw = {}
    if out_fp32:
        kw = {"out_dtype": torch.float32}
        torch.mm(t[:64], t[:64].T, **kw)  # raises where torch lacks it
    for bi, bj in blocks[:2]:
        torch.mm(t[bi * block : (bi + 1) * block], t[bj * block : (bj + 1) * block].T, **kw)
    sync(torch)
    start = time.perf_counter()
    n_done, pairs = 0, 0
    n = x.shape[0]
    for bi, bj in blocks:
        torch.mm(t[bi * block : (bi + 1) * block], t[bj * block : (bj + 1) * block].T, **kw)
        nr, nc = min(block, n - bi * block), min(block, n - bj * block)
        pairs += nr * (nr - 1) // 2 if bi == bj else nr * nc
        n_done += 1
        if n_done % 8 == 0:
            sync(torch)
            if time.perf_counter() - start > box:
                break
    sync(torch)
    return {
        "seconds": time.perf_counter() - start,
        "chunks": n_done,
        "of_chunks": len(blocks),
        "pairs": pairs,
    }


def finish(row: dict, total_pairs: int, d: int) -> dict:
    share = row["pairs"] / total_pairs if total_pairs else 0.0
    row["share_measured"] = round(share, 4)
    row["projected_s"] = row["seconds"] / share if share else None
    row["projected"] = share < 0.999
    row["gpairs_per_s"] = row["pairs"] / row["seconds"] / 1e9 if row["seconds"] else None
    row["tflops"] = row["pairs"] * 2 * d / row["seconds"] / 1e12 if row["seconds"] else None
    return row


class Workload:
    """One timing size: the set (generated on the device from a seed: a child rebuilds the same one),
    the engine's plan and its chunks."""

    def __init__(self, torch, device: str, spec: dict) -> None:
        from faceaudit.compare import plan as E

        self.spec = spec
        n, d, block = spec["n"], spec["d"], spec["block"]
        self.x, subj, group = make_set(torch, device, n, d)
        self.run, self.emb, self.samples, self.level = plan_for(torch, self.x, subj, group, block)
        self.total_pairs = n * (n - 1) // 2
        self.chunks = E.make_chunks(self.run.blocks, block, n, spec["chunk_pairs"])
        size = {}
        for bi, bj in self.run.blocks:
            nr, nc = min(block, n - bi * block), min(block, n - bj * block)
            size[(bi, bj)] = nr * (nr - 1) // 2 if bi == bj else nr * nc
        self.chunk_pairs_of = [sum(size[b] for b in c) for c in self.chunks]

    def describe(self) -> dict:
        plan = self.run.plan
        out = {"pairs": self.total_pairs, "chunks": len(self.chunks), "capture_level": self.level,
               "mated_pairs": int(plan.mated_i.size)}
        try:
            out.update(self._auto())
        except Exception as exc:  # triton missing or broken: the baselines still run
            out["auto_chooses"] = f"unknown ({type(exc).__name__}: {exc})"
        return out

    def _auto(self) -> dict:
        """Padding and kernel=auto's choice (pure functions: nothing is launched)."""
        from faceaudit.compare.backends import triton_kernel as tk
        from faceaudit.compare.backends.torch_backend import choose_kernel

        plan = self.run.plan
        out: dict = {}
        out["padding"] = {str(t): round(tk.padded_pair_ratio(plan.group, plan.n_groups, plan.block, t), 4)
                          for t in (64, 128)}
        auto = {}
        for prec in ("fp32", "bf16"):
            tile = tk.default_config(prec, False, tk.SMEM_HISTOGRAM).pad
            use, note = choose_kernel(
                "auto",
                plan_problem=tk.supported_plan(plan),
                padding=tk.padded_pair_ratio(plan.group, plan.n_groups, plan.block, tile),
                block=plan.block,
                n_groups=plan.n_groups,
                tile=tile,
            )
            auto[prec] = "fused Triton kernel (after its probe)" if use else f"torch kernels: {note}"
        out["auto_chooses"] = auto
        return out


def baseline_rows(
    torch, device: str, w: Workload, budget: Budget, box: float, reserve: float, on_row
) -> None:
    """The GEMM alone and the torch kernels' main pass, per precision of the workload."""
    from faceaudit.compare.backends.torch_backend import TorchBackend

    spec, d = w.spec, w.spec["d"]
    for prec in spec["precisions"]:
        dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        for out_fp32 in ((False, True) if prec == "bf16" else (False,)):
            name = f"gemm {prec}" + (" (fp32 out)" if out_fp32 else "")
            try:
                r = best_of(partial(gemm_time, torch, w.x, w.run.blocks, spec["block"], dtype, out_fp32,
                                    budget.box(box, reserve)))
                on_row(finish({"path": name, "precision": prec, **r}, w.total_pairs, d))
            except Exception as exc:
                on_row({"path": name, "precision": prec, **error_of(exc, 4)})
            free(torch)
    for prec in spec["precisions"]:
        try:
            be = TorchBackend(w.emb, precision=prec, device=device, kernel="torch")
            plan = w.run.plan
            list(be.run_chunks(plan, w.chunks[:1], [0]))  # warm-up
            r = best_of(
                partial(
                    timed_chunks,
                    torch,
                    partial(be.run_chunks, plan, w.chunks, range(len(w.chunks))),
                    len(w.chunks),
                    w.chunk_pairs_of.__getitem__,
                    budget.box(box, reserve),
                )
            )
            on_row(finish({"path": "torch kernels", "precision": prec, **r}, w.total_pairs, d))
            del be
        except Exception as exc:
            on_row({"path": "torch kernels", "precision": prec, **error_of(exc, 6)})
        free(torch)


def fused_rows(torch, device: str, w: Workload, configs: list, budget: Budget, box: float, on_row) -> None:
    """The fused kernel's main pass in each (precision, tile configuration, histogram path)."""
    from faceaudit.compare.backends.torch_backend import TorchBackend
    from faceaudit.compare.backends.triton_kernel import TileConfig

    for k, (prec, cfg, smem) in enumerate(configs):
        if budget.left() < 8:
            on_row(
                {"path": "fused triton", "precision": prec, "config": cfg, "error": "skipped: out of time"}
            )
            continue
        # an equal share of what is left per configuration still to run, less ~3 s of compile and warm-up
        box_k = max(2.0, min(box, (budget.left() - 5) / (len(configs) - k) - 3))
        try:
            be = TorchBackend(
                w.emb,
                precision=prec,
                device=device,
                kernel="triton",
                triton_options={"config": TileConfig(**cfg) if cfg else None, "smem_histogram": smem},
            )
            f, plan = be.fused, w.run.plan
            tc = time.perf_counter()
            list(f.run_chunks(plan, w.chunks[:1], [0]))  # warm-up (compiles)
            compile_s = time.perf_counter() - tc
            r = best_of(
                partial(
                    timed_chunks,
                    torch,
                    partial(f.run_chunks, plan, w.chunks, range(len(w.chunks))),
                    len(w.chunks),
                    w.chunk_pairs_of.__getitem__,
                    budget.box(box_k, 3),
                )
            )
            on_row(
                finish(
                    {
                        "path": "fused triton",
                        "precision": prec,
                        "config": vars(f.config),
                        "histogram": "tl.histogram" if f.smem_histogram else "global atomics",
                        "kernel": f.identity,
                        "first_chunk_s_with_compile": compile_s,
                        "reruns": f.reruns,
                        **r,
                    },
                    w.total_pairs,
                    w.spec["d"],
                )
            )
            del be, f
        except Exception as exc:
            on_row({"path": "fused triton", "precision": prec, "config": cfg, **error_of(exc, 8)})
        free(torch)


def ratios(entry: dict) -> None:
    """Each row's projected full time over the GEMM alone of its precision (bf16: bf16 output)."""
    rows = entry.get("rows", [])
    gemm = {r["precision"]: r.get("projected_s") for r in rows if r.get("path") in ("gemm bf16", "gemm fp32")}
    for r in rows:
        if r.get("projected_s") and gemm.get(r.get("precision")):
            r["ratio_to_gemm"] = r["projected_s"] / gemm[r["precision"]]


def fused_configs(no_sweep: bool, interpret: bool) -> list:
    """(precision, tile configuration as a dict or None, histogram path) for the smaller size."""
    from faceaudit.compare.backends.triton_kernel import SMEM_HISTOGRAM, TileConfig, default_config

    if interpret:
        return [
            ("bf16", vars(TileConfig(16, 16, 32, 4, 1)), None),
            ("bf16", vars(TileConfig(16, 32, 32, 4, 1)), None),
            ("fp32", vars(TileConfig(16, 16, 32, 4, 1)), False),
        ]
    # (tile rows, columns, K step, warps, stages), histogram path. Offline sm_90 compiles (ptxas): all use
    # 255 registers; spills per thread, global-atomic histogram (Triton 3.6): bf16 128x64 16 B, 64x128 80 B,
    # 64x64/4w 0, 128x128 ~860 B; fp32 128x64 0. tl.histogram (Triton 3.9): bf16 64x128 ~50 B, 128x64
    # ~370 B, 128x128 ~1 KB; fp32 128x64 0. Triton < 3.8's tl.histogram (a warp-ballot loop, ~9 KB of
    # spills) is never tried.
    hist = SMEM_HISTOGRAM
    out = [
        ("bf16", vars(default_config("bf16", False, hist)), hist),
        ("fp32", vars(default_config("fp32", False, hist)), hist),
    ]
    if not no_sweep:
        first = default_config("bf16", False, hist)
        out += [
            ("bf16", vars(TileConfig(*c)), hist)
            for c in ((128, 64, 64, 8, 3), (64, 128, 64, 8, 3), (64, 64, 64, 4, 3))
            if TileConfig(*c) != first
        ]
        out.append(("fp32", vars(TileConfig(64, 64, 32, 4, 2)), hist))
        if hist:  # Triton >= 3.8: the global-atomic path for comparison
            out.append(("bf16", vars(default_config("bf16", False, False)), False))
    return out


def best_configs(rows: list[dict], fallback: list) -> list:
    """Per precision, the fused kernel's fastest (configuration, histogram path) at the smaller size."""
    best: dict = {}
    for r in rows:
        if r.get("path") == "fused triton" and r.get("gpairs_per_s"):
            if r["precision"] not in best or r["gpairs_per_s"] > best[r["precision"]][0]:
                best[r["precision"]] = (
                    r["gpairs_per_s"],
                    (r["precision"], r["config"], r["histogram"] == "tl.histogram"),
                )
    out = [v[1] for _, v in sorted(best.items())]
    for c in fallback:  # a precision without a timed configuration: its default
        if c[0] not in {o[0] for o in out}:
            out.append(c)
    return out


# ----- children: every fused launch happens in one ---------------------------------------------------
def child_fused_checks(part: Partial, spec: dict, budget: Budget) -> None:
    import torch

    device = spec["device"]
    steps = [("lattice_triton", partial(lattice_check, device, ("triton",), spec["lattice_n"])),
             ("probe", partial(probe_check, torch, device, spec["probe_m"])),
             ("raw_kernel", partial(raw_kernel_check, torch, device, spec["raw_n"], spec["raw_d"]))]
    if spec.get("gaussian", True):
        steps += [("gaussian_triton", partial(gaussian_check, device, ("triton",), None)),
                  ("auto", partial(auto_check, device, None))]
    for name, fn in steps:
        if budget.left() < 5:
            part.put(name, {"error": "skipped: the stage's time limit", "ok": None})
            continue
        part.put(name, timed(name, fn))
        free(torch)


def child_fused_timing(part: Partial, spec: dict, budget: Budget) -> None:
    import torch

    device = spec["device"]
    for entry in spec["entries"]:
        label, rows = entry["label"], []
        if budget.left() < 10:
            part.put(
                label, [{"path": "fused triton", "precision": "", "error": "skipped: the stage's time limit"}]
            )
            continue
        log(f"{label}: building the set")
        w = Workload(torch, device, entry)

        def on_row(row, rows=rows, label=label):
            rows.append(row)
            part.put(label, rows)
            log(
                f"{label} {row.get('path')} {row.get('precision')} {row.get('config', '')}: "
                + (
                    f"{row['seconds']:.2f}s for {row['share_measured']:.0%}"
                    if "seconds" in row
                    else row.get("error", "")
                )
            )

        fused_rows(torch, device, w, entry["configs"], budget, entry["box"], on_row)
        del w
        free(torch)


CHILDREN = {"fused_checks": child_fused_checks, "fused_timing": child_fused_timing}


def child_main(args) -> int:
    global PREFIX
    PREFIX = f"child {args.child}: "
    environment()
    part = Partial(args.child_out)
    budget = Budget(args.budget)
    try:
        CHILDREN[args.child](part, json.loads(args.child_args), budget)
    except Exception as exc:
        part.put("child_error", error_of(exc))
        log(f"child {args.child} FAILED: {type(exc).__name__}: {exc}")
        return 1
    return 0


def run_child(name: str, spec: dict, limit: float) -> tuple[dict, dict]:
    """Run a child stage with a time limit (killed at it, with its process group); what it wrote, and how
    it ended. A child that dies or hangs leaves the steps it finished."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--child-args",
            json.dumps(spec),
            "--child-out",
            str(path),
            "--budget",
            str(max(5.0, limit - 10)),
        ]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, start_new_session=True)
        timed_out = False
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            log(f"child {name} passed its limit of {limit:.0f}s: killing it")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.wait()
        status = {"rc": rc, "timed_out": timed_out, "limit_s": round(limit, 1),
                  "seconds": round(time.perf_counter() - t, 1)}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
    return data, status


def pytest_stage(out_dir: Path, limit: float) -> dict:
    """tests/test_triton_kernel.py compiled on the GPU (TRITON_INTERPRET unset), killed at ``limit``."""
    env = os.environ.copy()
    env.pop("TRITON_INTERPRET", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_triton_kernel.py",
        "-v",
        "-rA",
        "-p",
        "no:cacheprovider",
        "--durations=15",
    ]
    log_path = out_dir / "gpu_pytest.log"
    t = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.wait()
    text = log_path.read_text(errors="replace")
    passed = re.findall(r"^(tests/\S+::.*?) PASSED", text, re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (tests/\S+)", text, re.M)
    summary = [ln for ln in text.splitlines() if re.match(r"^=+ .*(passed|failed|error|skipped).* =+$", ln)]
    return {
        "rc": rc,
        "timed_out": timed_out,
        "limit_s": round(limit, 1),
        "seconds": round(time.perf_counter() - t, 1),
        "passed": len(passed),
        "failed": failed,
        "summary": summary[-1] if summary else None,
        "tail": text[-2500:],
        "log": str(log_path),
        "ok": rc == 0 and not timed_out,
    }


# ----- report -----------------------------------------------------------------------------------------
def markdown(summary: dict) -> str:
    env = summary["environment"]
    drv = summary.get("driver", {})
    lines = [
        f"# gpu_check — {env.get('device', 'no GPU')}",
        "",
        f"driver {drv.get('driver_version', '?')}, capability {env.get('capability')}, "
        f"{env.get('sm_count')} SMs, "
        f"{env.get('memory_gib')} GiB; torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton "
        f"{env.get('triton')} ({env.get('triton_histogram')}), numpy {env.get('numpy')}, python "
        f"{env.get('python')}; {summary['date']}; {summary.get('total_s', '?')} s"
        + (" (not finished)" if summary.get("running") else ""),
        "",
    ]
    if summary.get("note"):
        lines += [f"**{summary['note']}**", ""]
    if summary.get("fused_kernel"):
        lines += [f"Fused Triton kernel: {summary['fused_kernel']}.", ""]
    if summary.get("children"):
        lines += [
            "Child stages: "
            + "; ".join(
                f"{k}: rc {v.get('rc')}, {v.get('seconds')} s of {v.get('limit_s')}"
                + (" TIMED OUT" if v.get("timed_out") else "")
                for k, v in summary["children"].items()
            ),
            "",
        ]
    lines += ["## Correctness", ""]
    for name, c in summary["checks"].items():
        if not isinstance(c, dict):
            continue
        status = (
            "error" if "error" in c else ("ok" if c.get("ok") else ("-" if c.get("ok") is None else "FAILED"))
        )
        lines.append(f"* **{name}**: {status}")
        for k, v in c.items():
            if k in ("traceback", "ok", "stage_s"):
                continue
            lines.append(f"  * {k}: `{json.dumps(v, default=str)[:600]}`")
    t = summary.get("tests")
    if t:
        lines += [
            "",
            f"## pytest tests/test_triton_kernel.py on the GPU: {'ok' if t.get('ok') else 'NOT OK'}",
            "",
            f"{t.get('summary')}; {t.get('passed')} passed; failed: {t.get('failed')}; rc {t.get('rc')}"
            + (", TIMED OUT" if t.get("timed_out") else "")
            + f"; {t.get('seconds')} s of {t.get('limit_s')}",
        ]
    for size in summary.get("timing", {}).values():
        if "rows" not in size:
            lines += ["", f"## Timing: error `{size.get('error')}`"]
            continue
        lines += [
            "",
            f"## Timing: {size['n']:,} x {size['d']}, {size.get('cells', 64)} cells, 4096 bins, "
            f"block {size['block']:,}, chunk_pairs {size['chunk_pairs']:,}, {size.get('chunks')} chunks, "
            f"{size.get('pairs', 0):,} pairs",
            "",
            f"Padding (fused visits / real pairs) by tile side: {size.get('padding')}; kernel=auto chooses: "
            f"{size.get('auto_chooses')}",
            "",
            "| path | precision | config | histogram | seconds (measured) | share measured | full run s | "
            "Gpairs/s | x GEMM alone |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in size["rows"]:
            cfg = r.get("config")
            cfg = (f"{cfg['bm']}x{cfg['bn']}/k{cfg['bk']}/{cfg['num_warps']}w/{cfg['num_stages']}s"
                   if isinstance(cfg, dict) else (cfg or ""))
            if "error" in r:
                lines.append(
                    f"| {r.get('path')} | {r.get('precision')} | {cfg} | | error: {r['error'][:120]} | | | "
                    f"| |"
                )
                continue
            proj = (
                f"{r['projected_s']:.2f}" + (" (projected)" if r["projected"] else "")
                if r.get("projected_s")
                else ""
            )
            ratio = f"{r['ratio_to_gemm']:.2f}" if r.get("ratio_to_gemm") else ""
            gp = f"{r['gpairs_per_s']:.4g}" if r.get("gpairs_per_s") else ""
            lines.append(
                f"| {r['path']} | {r['precision']} | {cfg} | {r.get('histogram', '')} | {r['seconds']:.2f} | "
                f"{r['share_measured']:.0%} | {proj} | {gp} | {ratio} |"
            )
    lines += [
        "",
        "Target (issue 3): the fused kernel's main pass <= 2x the GEMM alone of the same precision, "
        "on the same card. bf16 GEMM alone: bf16 output (torch.mm); the torch kernels' bf16 runs an fp32 "
        "GEMM on bf16-rounded values (as the torch backend does).",
    ]
    return "\n".join(lines) + "\n"


def write(summary: dict, out_dir: Path, code: int | None) -> int | None:
    """JSON and markdown; called after every stage (code None: not finished yet)."""
    summary["running"] = code is None
    summary["exit_code"] = code
    summary["total_s"] = round(time.perf_counter() - T0, 1)
    for size in summary.get("timing", {}).values():
        if isinstance(size, dict):
            ratios(size)
    for name, text in (
        ("gpu_check.json", json.dumps(summary, indent=1, default=str)),
        ("gpu_check.md", markdown(summary)),
    ):
        tmp = out_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)
    if code is not None:
        print(markdown(summary), flush=True)
        log(f"wrote {out_dir / 'gpu_check.json'} and gpu_check.md; exit {code}")
    return code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--small", action="store_true", help="correctness and the smaller size only (CPU: tiny sizes)"
    )
    ap.add_argument("--n", type=int, default=1 << 20, help="the large size (default 1,048,576)")
    ap.add_argument("--small-n", type=int, default=1 << 17, help="the smaller size (default 131,072)")
    ap.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole script (default 345; --small 200)"
    )
    ap.add_argument("--no-sweep", action="store_true", help="only the default tile configuration")
    ap.add_argument("--no-pytest", action="store_true", help="skip the pytest stage")
    ap.add_argument("--out", default=None, help="output folder (default $OUT, else bench/out)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)
    budget = Budget(args.budget or (200.0 if args.small else 345.0))
    env, missing = environment()
    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "environment": env, "missing": missing,
                     "driver": driver_info(), "checks": {}, "timing": {}, "children": {}, "args": vars(args)}
    out_dir = Path(args.out or os.environ.get("OUT") or ROOT / "bench" / "out")
    out_dir.mkdir(parents=True, exist_ok=True)
    save = partial(write, summary, out_dir, None)
    for m in missing:
        log(f"MISSING: {m}")
    core = {"numpy", "scipy", "pyarrow", "threadpoolctl", "torch", "faceaudit"}
    if any(m.split()[0] in core for m in missing):
        summary["note"] = (
            "cannot run: missing " + ", ".join(missing) + ". Install them (pip install numpy scipy "
            "pyarrow threadpoolctl torch triton), or run from the project's venv."
        )
        log(summary["note"])
        return write(summary, out_dir, 2)
    import torch

    cuda = torch.cuda.is_available()
    fused_ok, why = False, None
    if env.get("triton") is None:
        why = "triton is not installed"
    else:
        from faceaudit.compare.backends.triton_kernel import interpreter_problem, interpreting

        if cuda:
            fused_ok = not interpreting()
            why = (
                None
                if fused_ok
                else "TRITON_INTERPRET is set on a GPU machine: unset it to run the compiled kernel"
            )
        elif interpreting():
            why = interpreter_problem(torch)
            fused_ok = why is None
        else:
            why = ("no CUDA device, and TRITON_INTERPRET=1 was not set (the interpreter runs the kernel on "
                   "the CPU)")
    summary["fused_kernel"] = (
        ("runs" + ("" if cuda else " in Triton's interpreter")) if fused_ok else f"not run: {why}"
    )
    log(f"device: {env.get('device', 'none')}; driver {summary['driver'].get('driver_version')}; "
        f"fused Triton kernel: {summary['fused_kernel']}")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        device = "cuda"
        sizes = {"lattice_n": 3000, "probe_m": 1024, "raw_n": 4096, "raw_d": None, "gaussian": True}
        small = {
            "label": f"n{args.small_n}",
            "n": args.small_n,
            "d": 512,
            "block": 16384,
            "chunk_pairs": 1 << 30,
            "precisions": ["bf16", "fp32"],
            "box": 8.0,
        }
        default = {"label": f"n{args.small_n}_block1024", "n": args.small_n, "d": 512, "block": 1024,
                   "chunk_pairs": 1 << 25, "precisions": ["fp32"], "box": 8.0}
        large = {"label": f"n{args.n}", "n": args.n, "d": 512, "block": 32768, "chunk_pairs": 1 << 33,
                 "precisions": ["bf16", "fp32"], "box": 10.0}
    else:
        summary["note"] = (
            "NO CUDA DEVICE: CPU mode — correctness on small sets only (torch on the CPU"
            + (", the fused kernel in Triton's interpreter" if fused_ok else "")
            + "); no GPU timing, no pytest stage. Run this on the device machine for the real check."
        )
        log(summary["note"])
        device = "cpu"
        sizes = {"lattice_n": 120, "probe_m": 40, "raw_n": 96, "raw_d": 64, "gaussian": False}
        small = {
            "label": "n384",
            "n": 384,
            "d": 64,
            "block": 128,
            "chunk_pairs": 1 << 15,
            "precisions": ["bf16", "fp32"],
            "box": 3.0,
        }
        default = {"label": "n256_block64", "n": 256, "d": 64, "block": 64, "chunk_pairs": 1 << 13,
                   "precisions": ["fp32"], "box": 3.0}
        large = None
    if args.small:
        large = None
    save()

    # ---- 1. baselines, in this process (no fused launch here) ----
    summary["checks"]["lattice_torch"] = timed(
        "lattice (torch kernels)", lattice_check, device, ("torch",), sizes["lattice_n"]
    )
    save()
    if sizes["gaussian"]:
        summary["checks"]["gaussian_torch"] = timed(
            "gaussian (torch kernels)", gaussian_check, device, ("torch",), None
        )
        save()
    # the least time each later stage is guaranteed (s): a stage's box is what is left less the needs
    # of the stages after it (correctness first: the baselines and checks shrink the timings' boxes)
    need = {"fused_checks": (45 if cuda else 25) if fused_ok else 0,
            "pytest": 45 if fused_ok and cuda and not args.no_pytest else 0,
            "timing_small": (35 if cuda else 20) if fused_ok else 0,
            "timing_large": 40 if fused_ok and large is not None else 0}

    def after(stage: str) -> float:
        keys = list(need)
        return float(sum(need[k] for k in keys[keys.index(stage) + 1 :]))

    for spec in [s for s in (small, default, large) if s is not None]:
        label = spec["label"]
        entry = summary["timing"][label] = {k: v for k, v in spec.items() if k not in ("label", "box")}
        entry["cells"] = 64
        try:
            log(f"{label}: building the set")
            w = Workload(torch, device, spec)
            entry.update(w.describe())
            entry["rows"] = []
            save()

            def on_row(row, entry=entry, label=label):
                entry["rows"].append(row)
                save()
                log(
                    f"{label} {row['path']} {row['precision']}: "
                    + (
                        f"{row['seconds']:.2f}s for {row['share_measured']:.0%}"
                        if "seconds" in row
                        else row.get("error", "")
                    )
                )

            baseline_rows(torch, device, w, budget, spec["box"], sum(need.values()), on_row)
            del w
        except Exception as exc:
            entry.update(error_of(exc))
            log(f"{label} FAILED: {entry['error']}")
        free(torch)
        save()

    # ---- 2. the fused kernel, in child processes ----
    if fused_ok:
        limit = budget.box(110 if cuda else 60, after("fused_checks"))
        if limit >= 20:
            data, status = run_child("fused_checks", {"device": device, **sizes}, limit)
            summary["children"]["fused_checks"] = status
            for k, v in data.items():
                summary["checks"][k] = v if k != "child_error" else {**v, "ok": False}
            if status["rc"] != 0:  # killed at its limit, or died (a crash, a sticky CUDA error)
                summary["checks"]["fused_checks_child"] = {
                    "error": f"the child ended with rc {status['rc']}"
                    + (" at its time limit" if status["timed_out"] else "")
                    + "; its unfinished step has no result",
                    "ok": False,
                }
        else:
            summary["checks"]["fused"] = {"error": "skipped: out of time budget", "ok": None}
        save()
        if cuda and not args.no_pytest:
            limit = budget.box(100, after("pytest"))
            if limit >= 30:
                log(f"pytest tests/test_triton_kernel.py (compiled, limit {limit:.0f}s) ...")
                summary["tests"] = pytest_stage(out_dir, limit)
                log(f"pytest: {summary['tests'].get('summary')}")
            else:
                summary["tests"] = {"error": "skipped: out of time budget", "ok": None}
            save()
        configs = fused_configs(args.no_sweep, not cuda)
        # the command's defaults first (one row: the data behind kernel=auto), then the sweep
        entries = [
            {**default, "configs": [c for c in configs if c[0] == "fp32"][:1]},
            {**small, "configs": configs},
        ]
        limit = budget.box(120 if large is None else 80, after("timing_small"))
        if limit >= 20:
            data, status = run_child("fused_timing", {"device": device, "entries": entries}, limit)
            summary["children"]["fused_timing_small"] = status
            for label, rows in data.items():
                if label in summary["timing"] and isinstance(rows, list):
                    summary["timing"][label].setdefault("rows", []).extend(rows)
            save()
        if large is not None:
            best = best_configs(
                summary["timing"].get(small["label"], {}).get("rows", []), fused_configs(True, False)
            )
            limit = budget.box(120, after("timing_large"))
            if limit >= 25:
                data, status = run_child(
                    "fused_timing", {"device": device, "entries": [{**large, "configs": best}]}, limit
                )
                summary["children"]["fused_timing_large"] = status
                for label, rows in data.items():
                    if label in summary["timing"] and isinstance(rows, list):
                        summary["timing"][label].setdefault("rows", []).extend(rows)
            else:
                summary["timing"][large["label"]].setdefault("rows", []).append(
                    {"path": "fused triton", "precision": "", "error": "skipped: out of time budget"})
            save()
    checks = [c for c in summary["checks"].values() if isinstance(c, dict) and c.get("ok") is not None]
    ok = all(c.get("ok") for c in checks) and summary.get("tests", {}).get("ok") is not False
    return write(summary, out_dir, 0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
