"""One-call GPU check: correctness of the torch and fused-Triton paths against numpy, and their speed
against the GEMM alone on the same card.

    python3 bench/gpu_check.py                  # on the device machine: < 5 min, writes $OUT (or bench/out)
    python3 bench/gpu_check.py --small          # quick: correctness + the smaller size only
    .venv/bin/python bench/gpu_check.py --small   # no GPU: CPU mode, toy sizes, Triton's interpreter (proves it runs)

Needs numpy, scipy, pyarrow, threadpoolctl, torch and (for the fused path) triton; faceaudit is taken
from src/ when it is not installed, so the device image's python3 needs no venv. What is missing is
printed, and every stage that can still run does (each stage's error is recorded, not fatal).

1. Correctness (every path through ``compare_embeddings`` or the backend itself):
   * lattice set (entries +-1/8: every score exact in any summation order, all on bin edges):
     numpy vs torch kernels vs the fused Triton kernel, fp32 and bf16 — must be bit-identical
     (ScoreDistributions and probe summaries);
   * LFW-like Gaussian set (13,233 x 512, 8 groups): counts must match numpy's; how many pairs sit in
     another bin than numpy's (a different summation order moves scores within the float32 bound), the
     largest mated-score difference, tail cutoffs equal or not — reported;
   * the fused kernel's raw output with every non-mated pair captured (4,096 x 512): the histogram must
     be exactly the binning of the kernel's own scores, every pair once; its scores against float64
     dot products of the same (fp32 or bf16-rounded) inputs, in units of the engine's float32 bound.
2. Timing, on the same card, at a smaller size first (131,072 x 512) then 1,048,576 x 512, 8 groups
   (64 group-pair cells), 4,096 bins, blocks of 16,384 / 32,768, a capture level near FMR 1e-5:
   the GEMM alone over the engine's upper-triangle block schedule (fp32 with TF32 off; bf16 with bf16
   and, where torch has it, fp32 output), the torch path's main pass and the fused kernel's main pass
   (``TorchBackend.run_chunks``: what ``compare_embeddings`` spends in its main pass). A stage that would
   not finish inside the time left is measured on its first chunks and projected (marked so). The
   fused kernel is tried in a few tile configurations at the smaller size; the fastest runs the large one.

Output: ``gpu_check.json`` and ``gpu_check.md`` in $OUT if set, else bench/out/; exit 0 when every
correctness check that ran passed, 1 when one failed, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


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
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests"))
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
    return env, missing


class Budget:
    """Wall-clock budget: stages ask for a time box and are told when to stop."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def box(self, cap: float, reserve: float = 20.0) -> float:
        return max(0.0, min(cap, self.left() - reserve))


def stage(results: dict, name: str, fn, *args, **kwargs):
    """Run one stage; its result or its error goes into results[name]."""
    log(f"{name} ...")
    t = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
        log(f"{name} FAILED: {out['error']}")
    else:
        log(f"{name} done")
    if isinstance(out, dict):
        out.setdefault("stage_s", round(time.perf_counter() - t, 2))
    results[name] = out
    return out


def sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free(torch) -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----- correctness --------------------------------------------------------------------------------------
def lattice_check(device: str, fused_ok: bool, n: int) -> dict:
    import numpy as np
    from test_compare import lattice_set

    from faceaudit.compare import compare_embeddings

    x, samples = lattice_set(n=n, subjects=max(20, n // 4), seed=1)
    kw = {"progress": False, "block": 512, "reference_sample": 256}
    ref = compare_embeddings(x, samples, backend="numpy", **kw)
    out: dict = {"n": n, "pairs": n * (n - 1) // 2, "tail": int(ref.tail_score.size)}
    ok = True
    for kernel in ("torch", "triton"):
        if kernel == "triton" and not fused_ok:
            out["triton"] = "skipped: the fused kernel cannot run here"
            continue
        os.environ["FACEAUDIT_TORCH_KERNEL"] = kernel
        for prec in ("fp32", "bf16"):
            d = compare_embeddings(x, samples, backend="torch", device=device, precision=prec, **kw)
            same = bool(d == ref and d.probe_summary == ref.probe_summary)
            out[f"{kernel}_{prec}_bit_identical_to_numpy"] = same
            out[f"{kernel}_{prec}_device"] = d.meta["device"]
            ok &= same and np.array_equal(d.nonmated_counts(), ref.nonmated_counts())
    os.environ.pop("FACEAUDIT_TORCH_KERNEL", None)
    out["ok"] = bool(ok)
    return out


def gaussian_check(device: str, fused_ok: bool, n: int | None) -> dict:
    import numpy as np
    from bench_compare import lfw_like

    from faceaudit.compare import compare_embeddings
    from faceaudit.compare.engine import gemm_error_bound
    from faceaudit.scores import SampleIndex

    emb, subj, group = lfw_like()
    if n is not None:
        emb, subj, group = emb[:n], subj[:n], group[:n]
    samples = SampleIndex.from_columns(np.arange(emb.shape[0]), subj, {"group": group})
    kw = {"progress": False, "block": 4096}
    ref = compare_embeddings(emb, samples, backend="numpy", **kw)
    bound = gemm_error_bound(emb.shape[1])
    out: dict = {"n": int(emb.shape[0]), "float32_bound": bound, "numpy_s": ref.meta["timing_s"]["total"]}
    ok = True
    for kernel in ("torch", "triton"):
        if kernel == "triton" and not fused_ok:
            continue
        os.environ["FACEAUDIT_TORCH_KERNEL"] = kernel
        for prec in ("fp32", "bf16"):
            d = compare_embeddings(emb, samples, backend="torch", device=device, precision=prec, **kw)
            key = f"{kernel}_{prec}"
            counts = bool(d.n_mated == ref.n_mated and d.n_nonmated == ref.n_nonmated)
            moved = int(np.abs(d.impostor_hist - ref.impostor_hist).sum() // 2)
            # mated scores pair by pair (the canonical order sorts by score, which may differ)
            oa = np.lexsort((d.genuine_reference, d.genuine_probe))
            ob = np.lexsort((ref.genuine_reference, ref.genuine_probe))
            same_pairs = bool(np.array_equal(d.genuine_probe[oa], ref.genuine_probe[ob])
                              and np.array_equal(d.genuine_reference[oa], ref.genuine_reference[ob]))
            gdiff = float(np.abs(d.genuine_score[oa] - ref.genuine_score[ob]).max()) if same_pairs and oa.size else 0.0
            counts &= same_pairs
            out[key] = {"counts_equal_numpy": counts, "pairs_in_another_bin_than_numpy": moved,
                        "max_mated_score_diff": gdiff, "max_mated_diff_over_bound": gdiff / bound,
                        "tail_cutoffs_equal_numpy": bool(np.array_equal(d.tail_cutoff, ref.tail_cutoff)),
                        "equal_numpy": bool(d == ref), "seconds": d.meta["timing_s"]["total"],
                        "device": d.meta["device"]}
            ok &= counts and (prec == "bf16" or gdiff <= bound)
    os.environ.pop("FACEAUDIT_TORCH_KERNEL", None)
    out["ok"] = bool(ok)
    return out


def raw_kernel_check(torch, device: str, n: int, d: int | None) -> dict:
    """The fused kernel with every non-mated pair captured: its histogram against the binning of its
    own scores (exact), its scores against float64 dot products of the same inputs."""
    import numpy as np
    from bench_compare import lfw_like

    from faceaudit.compare import engine as E
    from faceaudit.compare import triton_kernel as tk
    from faceaudit.compare.kernel import BlockPartial
    from faceaudit.scores import SampleIndex, bin_index

    emb, subj, group = lfw_like()
    emb, subj, group = emb[:n], subj[:n], group[:n]
    if d is not None:
        emb = emb[:, :d] / np.linalg.norm(emb[:, :d], axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(n), subj, {"group": group})
    emb = E.prepare_embeddings(emb)
    out: dict = {"n": n, "d": int(emb.shape[1])}
    ok = True
    for prec in ("fp32", "bf16"):
        block = max(256, n // 2)
        run = E._Run(emb, samples, metric="cosine", bins=4096, block=block, top_k=0, fmr_targets=[1e-3],
                     reference_sample=64, seed=0, max_capture=10**12)
        G = run.G
        run.set_capture(np.full((G, G), -np.inf), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32))
        chunks = E._chunks(run.blocks, block, n, 1 << 40)
        t = torch.from_numpy(emb).to(device)
        if prec == "bf16":
            t = t.to(torch.bfloat16).to(torch.float32)
        fused = tk.FusedPairs(torch, t, precision=prec)
        total = BlockPartial.sum([p for _, p in fused.run_chunks(run.plan, chunks, range(len(chunks)))],
                                 run.plan.n_slots)
        plan = run.plan
        i, j, x = total.cap_i, total.cap_j, total.cap_x
        s = subj
        iu, ju = np.triu_indices(n, 1)
        nm = s[iu] != s[ju]
        once = bool(i.size == nm.sum() and np.unique(i * n + j).size == i.size and (s[i] != s[j]).all())
        bins_k = bin_index(x.astype(np.float64) / plan.scale, run.edges)
        expect = np.zeros((G, G, plan.n_bins), np.int64)
        gg = samples.group_of_sample
        np.add.at(expect, (gg[i], gg[j], bins_k), 1)
        hist_ok = bool(np.array_equal(plan.slots_to_hist(total.slots), expect))
        exact = ((t.double() @ t.double().T).cpu().numpy() * plan.scale)[i, j]  # float64: error ~1e-13
        diff = np.abs(x.astype(np.float64) - exact)
        bound = E.gemm_error_bound(run.d) * plan.scale
        bins_exact = bin_index(exact / plan.scale, run.edges)
        res = {"pairs_once": once, "hist_equals_own_scores": hist_ok, "mated": int(total.gen_x.size),
               "max_abs_diff_x": float(diff.max()), "max_diff_over_float32_bound": float(diff.max() / bound),
               "pairs_in_another_bin_than_exact": int((bins_exact != bins_k).sum()), "pairs": int(i.size),
               "reruns": fused.reruns}
        if prec == "fp32":
            xn = np.empty(i.size, np.float32)
            sc = E.scaled_references(emb, plan)
            for bi, bj in run.blocks:  # numpy's own block GEMMs
                m = (i // block == bi) & (j // block == bj)
                xb = emb[bi * block : (bi + 1) * block] @ sc[bj * block : (bj + 1) * block].T
                xn[m] = xb[i[m] - bi * block, j[m] - bj * block]
            res["pairs_in_another_bin_than_numpy"] = int((bin_index(xn.astype(np.float64) / plan.scale, run.edges)
                                                          != bins_k).sum())
            res["scores_differing_from_numpy"] = int((xn != x).sum())
            ok &= diff.max() <= bound
        out[prec] = res
        ok &= once and hist_ok
        del fused, t
        free(torch)
    out["ok"] = bool(ok)
    return out


# ----- timing ---------------------------------------------------------------------------------------------
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

    from faceaudit.compare import engine as E
    from faceaudit.scores import SampleIndex, bin_index

    n = x.shape[0]
    emb = x.cpu().numpy()
    samples = SampleIndex.from_columns(np.arange(n), subj, {"group": group})
    run = E._Run(emb, samples, metric="cosine", bins=4096, block=block, top_k=0, fmr_targets=[1e-3, 1e-4, 1e-5],
                 reference_sample=512, seed=0, max_capture=10**12)
    g = torch.Generator(device=x.device).manual_seed(1)
    rows = torch.randint(0, n, (min(n, 4096),), device=x.device, generator=g)
    cols = torch.randint(0, n, (min(n, 65536),), device=x.device, generator=g)
    s = (x[rows] @ x[cols].T).flatten().float()
    k = max(1, int(fmr * s.numel()))
    level = float(torch.topk(s, k).values[-1])
    edge = float(run.edges[bin_index(np.array([level]), run.edges)[0]])
    run.set_capture(np.full((run.G, run.G), edge), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32))
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
    for k, part in gen_fn():  # a chunk is complete (on the host) when it is yielded
        last = time.perf_counter()
        done += 1
        pairs += pairs_of(k)
        caps += int(part.cap_x.size)
        if last - t > box and done < n_chunks:
            break  # chunks still in flight are not counted, nor waited for in the time
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
    return {"seconds": time.perf_counter() - start, "chunks": n_done, "of_chunks": len(blocks), "pairs": pairs}


def finish(row: dict, total_pairs: int, d: int) -> dict:
    share = row["pairs"] / total_pairs if total_pairs else 0.0
    row["share_measured"] = round(share, 4)
    row["projected_s"] = row["seconds"] / share if share else None
    row["projected"] = share < 0.999
    row["gpairs_per_s"] = row["pairs"] / row["seconds"] / 1e9 if row["seconds"] else None
    row["tflops"] = row["pairs"] * 2 * d / row["seconds"] / 1e12 if row["seconds"] else None
    return row


def timing(torch, device: str, n: int, d: int, block: int, chunk_pairs: int, budget: Budget, configs,
           label: str) -> dict:

    from faceaudit.compare import engine as E
    from faceaudit.compare.torch_backend import TorchBackend

    out: dict = {"n": n, "d": d, "groups": 8, "cells": 64, "bins": 4096, "block": block, "chunk_pairs": chunk_pairs}
    x, subj, group = make_set(torch, device, n, d)
    run, emb, samples, level = plan_for(torch, x, subj, group, block)
    total_pairs = n * (n - 1) // 2
    chunks = E._chunks(run.blocks, block, n, chunk_pairs)
    out.update({"pairs": total_pairs, "chunks": len(chunks), "capture_level": level,
                "mated_pairs": int(run.plan.mated_i.size)})
    bsize = {}
    for bi, bj in run.blocks:
        nr, nc = min(block, n - bi * block), min(block, n - bj * block)
        bsize[(bi, bj)] = nr * (nr - 1) // 2 if bi == bj else nr * nc
    chunk_pairs_of = [sum(bsize[b] for b in c) for c in chunks]
    rows = out["rows"] = []
    per_stage = max(15.0, budget.left() / 8)
    for prec, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        for out_fp32 in ((False, True) if prec == "bf16" else (False,)):
            name = f"gemm {prec}" + (" (fp32 out)" if out_fp32 else "")
            try:
                r = best_of(partial(gemm_time, torch, x, run.blocks, block, dtype, out_fp32, budget.box(per_stage)))
                rows.append(finish({"path": name, "precision": prec, **r}, total_pairs, d))
                log(f"{label} {name}: {rows[-1]['seconds']:.2f}s for {rows[-1]['share_measured']:.0%}")
            except Exception as exc:
                rows.append({"path": name, "precision": prec, "error": f"{type(exc).__name__}: {exc}"})
            free(torch)
    plan = run.plan
    for prec in ("bf16", "fp32"):
        # the torch kernels (the reference path)
        try:
            be = TorchBackend(emb, precision=prec, device=device, kernel="torch")
            list(be.run_chunks(plan, chunks[:1], [0]))  # warm-up
            r = best_of(partial(timed_chunks, torch, partial(be.run_chunks, plan, chunks, range(len(chunks))),
                                len(chunks), chunk_pairs_of.__getitem__, budget.box(per_stage)))
            rows.append(finish({"path": "torch kernels", "precision": prec, **r}, total_pairs, d))
            log(f"{label} torch {prec}: {r['seconds']:.2f}s for {rows[-1]['share_measured']:.0%}")
            del be
        except Exception as exc:
            rows.append({"path": "torch kernels", "precision": prec, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=6)})
        free(torch)
        # the fused kernel, in each tile configuration asked for
        for cfg, smem in configs.get(prec, [(None, None)]):
            if budget.left() < 30:
                rows.append({"path": "fused triton", "precision": prec, "error": "skipped: out of time"})
                break
            try:
                be = TorchBackend(emb, precision=prec, device=device, kernel="triton",
                                  triton_options={"config": cfg, "smem_histogram": smem})
                f = be.fused
                tc = time.perf_counter()
                list(f.run_chunks(plan, chunks[:1], [0]))  # warm-up (compiles)
                compile_s = time.perf_counter() - tc
                r = best_of(partial(timed_chunks, torch, partial(f.run_chunks, plan, chunks, range(len(chunks))),
                                    len(chunks), chunk_pairs_of.__getitem__, budget.box(per_stage)))
                row = finish({"path": "fused triton", "precision": prec, "config": vars(f.config),
                              "histogram": "tl.histogram" if f.smem_histogram else "global atomics",
                              "first_chunk_s_with_compile": compile_s, "reruns": f.reruns, **r}, total_pairs, d)
                rows.append(row)
                log(f"{label} triton {prec} {f.config}: {r['seconds']:.2f}s for {row['share_measured']:.0%}")
                del be, f
            except Exception as exc:
                rows.append({"path": "fused triton", "precision": prec, "config": str(cfg),
                             "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)})
            free(torch)
    # ratios to the GEMM alone of the same precision (bf16: bf16 output), on projected full times
    gemm = {r["precision"]: r.get("projected_s") for r in rows if r["path"] in ("gemm bf16", "gemm fp32")}
    for r in rows:
        if r.get("projected_s") and gemm.get(r["precision"]):
            r["ratio_to_gemm"] = r["projected_s"] / gemm[r["precision"]]
    del x, run, emb, samples
    free(torch)
    return out


def best_configs(rows: list[dict]) -> dict:
    """Per precision, the fused kernel's fastest (tile configuration, histogram path) at the smaller size."""
    from faceaudit.compare.triton_kernel import TileConfig

    best: dict = {}
    for r in rows:
        if r.get("path") == "fused triton" and r.get("gpairs_per_s"):
            if r["precision"] not in best or r["gpairs_per_s"] > best[r["precision"]][0]:
                best[r["precision"]] = (r["gpairs_per_s"], (TileConfig(**r["config"]), r["histogram"] == "tl.histogram"))
    return {k: [v[1]] for k, v in best.items()}


# ----- report ---------------------------------------------------------------------------------------------
def markdown(summary: dict) -> str:
    env = summary["environment"]
    lines = [f"# gpu_check — {env.get('device', 'no GPU')}", "",
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, "
             f"numpy {env.get('numpy')}, python {env.get('python')}; {summary['date']}", ""]
    if summary.get("note"):
        lines += [f"**{summary['note']}**", ""]
    if summary.get("fused_kernel"):
        lines += [f"Fused Triton kernel: {summary['fused_kernel']}.", ""]
    lines += ["## Correctness", ""]
    for name in ("lattice", "gaussian", "raw_kernel"):
        c = summary["checks"].get(name)
        if c is None:
            continue
        status = "error" if "error" in c else ("ok" if c.get("ok") else "FAILED")
        lines.append(f"* **{name}**: {status}")
        for k, v in c.items():
            if k in ("traceback", "ok", "stage_s"):
                continue
            lines.append(f"  * {k}: `{json.dumps(v)}`")
    for size in summary.get("timing", {}).values():
        if "rows" not in size:
            lines += ["", f"## Timing: error `{size.get('error')}`"]
            continue
        lines += ["", f"## Timing: {size['n']:,} x {size['d']}, {size['cells']} cells, {size['bins']} bins, "
                  f"block {size['block']:,}, {size['chunks']} chunks, {size['pairs']:,} pairs", "",
                  "| path | precision | config | histogram | seconds (measured) | share measured | full run s | "
                  "Gpairs/s | x GEMM alone |", "|---|---|---|---|---|---|---|---|---|"]
        for r in size["rows"]:
            if "error" in r:
                lines.append(f"| {r['path']} | {r['precision']} | {r.get('config', '')} | | error: {r['error'][:120]} "
                             "| | | | |")
                continue
            cfg = r.get("config")
            cfg = (f"{cfg['bm']}x{cfg['bn']}/k{cfg['bk']}/{cfg['num_warps']}w/{cfg['num_stages']}s"
                   if isinstance(cfg, dict) else "")
            proj = f"{r['projected_s']:.2f}" + (" (projected)" if r["projected"] else "")
            ratio = f"{r['ratio_to_gemm']:.2f}" if r.get("ratio_to_gemm") else ""
            lines.append(f"| {r['path']} | {r['precision']} | {cfg} | {r.get('histogram', '')} | {r['seconds']:.2f} | "
                         f"{r['share_measured']:.0%} | "
                         f"{proj} | {r['gpairs_per_s']:.4g} | {ratio} |")
    lines += ["", "Target (issue 3): the fused kernel's main pass <= 2x the GEMM alone of the same precision, "
              "on the same card. bf16 GEMM alone: bf16 output (torch.mm); the torch kernels' bf16 runs an fp32 "
              "GEMM on bf16-rounded values (as the torch backend does)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="correctness and the smaller size only (CPU: tiny sizes)")
    ap.add_argument("--n", type=int, default=1 << 20, help="the large size (default 1,048,576)")
    ap.add_argument("--small-n", type=int, default=1 << 17, help="the smaller size (default 131,072)")
    ap.add_argument("--budget", type=float, default=280.0, help="seconds for the whole script (default 280)")
    ap.add_argument("--no-sweep", action="store_true", help="only the default tile configuration")
    ap.add_argument("--out", default=None, help="output folder (default $OUT, else bench/out)")
    args = ap.parse_args()
    budget = Budget(args.budget)
    env, missing = environment()
    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "environment": env, "missing": missing,
                     "checks": {}, "timing": {}, "args": vars(args)}
    out_dir = Path(args.out or os.environ.get("OUT") or ROOT / "bench" / "out")
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in missing:
        log(f"MISSING: {m}")
    core = {"numpy", "scipy", "pyarrow", "threadpoolctl", "torch", "faceaudit"}
    if any(m.split()[0] in core for m in missing):
        summary["note"] = ("cannot run: missing " + ", ".join(missing) + ". Install them (pip install numpy scipy "
                           "pyarrow threadpoolctl torch triton), or run from the project's venv.")
        log(summary["note"])
        return write(summary, out_dir, 2)
    import torch

    cuda = torch.cuda.is_available()
    fused_ok, why = False, None
    if env.get("triton") is None:
        why = "triton is not installed"
    else:
        from faceaudit.compare.triton_kernel import interpreting

        if cuda:
            fused_ok = True
        elif interpreting():
            import torch as _torch

            from faceaudit.compare.triton_kernel import interpreter_problem

            why = interpreter_problem(_torch)
            fused_ok = why is None
        else:
            why = "no CUDA device, and TRITON_INTERPRET=1 was not set (the interpreter runs the kernel on the CPU)"
    summary["fused_kernel"] = ("runs" + ("" if cuda else " in Triton's interpreter")) if fused_ok else f"not run: {why}"
    if fused_ok:
        from faceaudit.compare.triton_kernel import SMEM_HISTOGRAM

        summary["fused_kernel"] += (f"; default histogram: {'tl.histogram (shared memory)' if SMEM_HISTOGRAM else 'global atomics'}"
                                    f" (triton {env.get('triton')})")
    log(f"fused Triton kernel: {summary['fused_kernel']}")
    if not cuda:
        summary["note"] = ("NO CUDA DEVICE: CPU mode — correctness on small sets only (torch on the CPU"
                           + (", the fused kernel in Triton's interpreter" if fused_ok else "")
                           + "); no GPU timing. Run this on the device machine for the real check.")
        log(summary["note"])
        device = "cpu"
        stage(summary["checks"], "lattice", lattice_check, device, fused_ok, 120)
        if fused_ok:
            stage(summary["checks"], "raw_kernel", raw_kernel_check, torch, device, 96, 64)
        # the timing code path at toy sizes (d = 64; the interpreter costs ~20 ms a tile): proves the
        # script, measures nothing of interest
        from faceaudit.compare.triton_kernel import TileConfig

        configs = {"bf16": [(TileConfig(16, 16, 32, 4, 1), None), (TileConfig(16, 32, 32, 4, 1), None)],
                   "fp32": [(TileConfig(16, 16, 32, 4, 1), False)]}
        small = stage(summary["timing"], "n384", timing, torch, device, 384, 64, 128, 1 << 15, budget,
                      configs if fused_ok else {}, "toy")
        stage(summary["timing"], "n512", timing, torch, device, 512, 64, 256, 1 << 16, budget,
              best_configs(small.get("rows", [])) if fused_ok else {}, "toy")
        return write(summary, out_dir, 0 if all(c.get("ok") for c in summary["checks"].values()) else 1)
    torch.backends.cuda.matmul.allow_tf32 = False
    log(f"device: {env.get('device')}; fused kernel: {summary['fused_kernel']}")
    stage(summary["checks"], "lattice", lattice_check, "cuda", fused_ok, 3000)
    if fused_ok:
        stage(summary["checks"], "raw_kernel", raw_kernel_check, torch, "cuda", 4096, None)
    stage(summary["checks"], "gaussian", gaussian_check, "cuda", fused_ok, None)
    configs: dict = {}
    if fused_ok:
        configs = fused_configs(args.no_sweep)
    small = stage(summary["timing"], f"n{args.small_n}", timing, torch, "cuda", args.small_n, 512, 16384, 1 << 30, budget,
                  configs, "small")
    if not args.small and budget.left() > 60:
        best = best_configs(small.get("rows", [])) if isinstance(small, dict) else {}
        for prec in ("bf16", "fp32"):
            best.setdefault(prec, configs.get(prec, [(None, None)])[:1])
        stage(summary["timing"], f"n{args.n}", timing, torch, "cuda", args.n, 512, 32768, 1 << 33, budget,
              best if fused_ok else {}, "large")
    elif not args.small:
        summary["note"] = "the large size was skipped: out of time budget"
    ok = all(c.get("ok") for c in summary["checks"].values())
    return write(summary, out_dir, 0 if ok else 1)


def fused_configs(no_sweep: bool) -> dict:
    """Per precision, the (tile configuration, histogram path) pairs the smaller size tries."""
    from faceaudit.compare.triton_kernel import SMEM_HISTOGRAM, TileConfig, default_config

    # (tile rows, columns, K step, warps, stages), histogram path. Offline sm_90 compiles (ptxas): all use
    # 255 registers; spills per thread, global-atomic histogram (Triton 3.6): bf16 128x64 16 B, 64x128 80 B,
    # 64x64/4w 0, 128x128 ~860 B; fp32 128x64 0. tl.histogram (Triton 3.9): bf16 64x128 ~50 B, 128x64
    # ~370 B, 128x128 ~1 KB; fp32 128x64 0. Triton < 3.8's tl.histogram (a warp-ballot loop, ~9 KB of
    # spills) is never tried.
    hist = SMEM_HISTOGRAM
    configs = {"bf16": [(default_config("bf16", False, hist), hist)], "fp32": [(default_config("fp32", False, hist), hist)]}
    if not no_sweep:
        configs["bf16"] += [(TileConfig(*c), hist) for c in ((128, 64, 64, 8, 3), (64, 128, 64, 8, 3), (64, 64, 64, 4, 3),
                                                             (128, 128, 64, 8, 3)) if TileConfig(*c) != configs["bf16"][0][0]]
        configs["fp32"] += [(TileConfig(64, 64, 32, 4, 2), hist)]
        if hist:  # Triton >= 3.8: the global-atomic path for comparison
            configs["bf16"].append((default_config("bf16", False, False), False))
    return configs


def write(summary: dict, out_dir: Path, code: int) -> int:
    summary["exit_code"] = code
    summary["total_s"] = round(time.perf_counter() - T0, 1)
    (out_dir / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    md = markdown(summary)
    (out_dir / "gpu_check.md").write_text(md)
    print(md, flush=True)
    log(f"wrote {out_dir / 'gpu_check.json'} and gpu_check.md; exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
