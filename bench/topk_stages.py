"""CPU seconds by stage of one in-process `compare_embeddings` run (numpy backend, default threads,
a checkpoint folder as the CLI uses), for the cost of the per-probe summaries (issue 17).

The stages are timed with ``time.thread_time`` in wrappers (so the worker threads' kernel time is
summed over threads): ``numpy_chunk`` (GEMM, histogram, captures; ``process_block`` is inside it),
``reduce_chunk`` (the engine's per-chunk reduction; ``fold_captures`` -> ``reduce_captures`` and
``merge_sorted`` are inside it), ``assemble``. ``candidates``: the pairs the kernel's cheap test let
through to the exact per-cell / per-sample filter. Same set as ``bench_topk.py`` (``make_set``).

    PYTHONPATH=src .venv/bin/python bench/topk_stages.py 100000 20
    PYTHONPATH=src .venv/bin/python bench/topk_stages.py 100000 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_topk import make_set  # noqa: E402

import faceaudit.compare.backends.numpy_backend as numpy_backend  # noqa: E402
import faceaudit.compare.engine as engine  # noqa: E402
import faceaudit.compare.kernel as kernel  # noqa: E402
import faceaudit.compare.probes as probes  # noqa: E402
from faceaudit.data.tables import read_sample_table  # noqa: E402

CPU: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)
LOCK = threading.Lock()


def timed(module, name: str) -> None:
    """Replace ``module.name`` by a wrapper adding its thread CPU time to CPU[name]."""
    if not hasattr(module, name):  # an older checkout (no sort-free merge)
        return
    f = getattr(module, name)

    def wrapper(*a, **kw):
        t = time.thread_time()
        out = f(*a, **kw)
        with LOCK:
            CPU[name] += time.thread_time() - t
        return out

    setattr(module, name, wrapper)


def count_candidates() -> None:
    real = kernel.keep_captures

    def keep_captures(plan, i, j, x):
        with LOCK:
            COUNTS["candidates"] += int(i.size)
        return real(plan, i, j, x)

    kernel.keep_captures = keep_captures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("top_k", type=int)
    ap.add_argument("--data", type=Path, default=Path("/tmp/faceaudit_topk"))
    a = ap.parse_args()
    emb, table = make_set(a.n, a.data / str(a.n))
    index = read_sample_table(table, ["grp"])
    x = np.load(emb)
    for module, name in ((numpy_backend, "numpy_chunk"), (kernel, "process_block"),
                         (engine, "reduce_chunk"), (engine, "fold_captures"), (engine, "assemble"),
                         (probes, "reduce_captures"), (probes, "merge_sorted")):
        timed(module, name)
    count_candidates()
    ckpt = a.data / str(a.n) / f"stages_k{a.top_k}.ckpt"
    t0, w0 = time.process_time(), time.perf_counter()
    d = engine.compare_embeddings(x, index, backend="numpy", top_k=a.top_k, progress=False,
                                  checkpoint_dir=ckpt)
    row = {"n": a.n, "top_k": a.top_k, "cpu_s": round(time.process_time() - t0, 2),
           "wall_s": round(time.perf_counter() - w0, 2), "load_avg": os.getloadavg(),
           "stage_cpu_s": {k: round(v, 2) for k, v in CPU.items()}, **COUNTS,
           "timing_s": d.meta["run"]["timing_s"]}
    shutil.rmtree(ckpt, ignore_errors=True)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
