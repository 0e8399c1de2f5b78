"""Peak memory and time of `faceaudit compare` with the per-probe summaries (default top-k 20) and
without them (`--top-k 0`), at growing set sizes (issue 17, first bullet).

Set: synthetic 128-d unit vectors, 4 images per subject, 4 groups (subject-level), float32; a subject's
images are its centre plus Gaussian noise (mated cosines ~0.4-0.8, non-mated ~0 +- 0.09). Each run is
one `python -m faceaudit.cli compare --backend numpy` process under `/usr/bin/time -v` (peak RSS of
that process, wall time); the figures are appended as JSON lines to ``--out``, with the 1-min load
average before and after, pairs per second, and from the written ``.fadist`` (read from the members'
headers, not loaded): the exact tail's size, the per-probe summary's arrays, the file's SHA-256 and its
content digest. The CLI is this checkout's: ``src/`` is put first on ``PYTHONPATH``.

    .venv/bin/python bench/bench_topk.py --sizes 20000 40000 100000 --out /tmp/topk.jsonl
    .venv/bin/python bench/bench_topk.py --sizes 13000 40000 100000 200000 --top-k 0 20 --keep
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: this checkout's code for the measured process (the venv's editable install may point elsewhere)
CLI_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def make_set(n: int, folder: Path, d: int = 128, per_subject: int = 4, groups: int = 4, seed: int = 0):
    """emb.npy and samples.csv of an n-image set (written once per size)."""
    folder.mkdir(parents=True, exist_ok=True)
    emb, table = folder / "emb.npy", folder / "samples.csv"
    if emb.exists() and table.exists():
        return emb, table
    rng = np.random.default_rng(seed)
    subj = np.arange(n) // per_subject
    centre = rng.standard_normal((subj[-1] + 1, d)).astype(np.float32)
    x = centre[subj] + 0.9 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(emb, x.astype(np.float32))
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "subject_id", "grp"])
        for i in range(n):
            w.writerow([f"s{i:07d}", f"p{subj[i]:07d}", f"g{subj[i] % groups}"])
    return emb, table


def run(emb: Path, table: Path, out: Path, top_k: int, timeout: float, max_tail: int | None = None) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "faceaudit.cli", "compare", "--embeddings", str(emb),
           "--samples", str(table), "--group", "grp", "--out", str(out), "--backend", "numpy", "--quiet",
           "--top-k", str(top_k)] + ([] if max_tail is None else ["--max-tail", str(max_tail)])
    t = time.time()
    load_before = os.getloadavg()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=CLI_ENV)
    except subprocess.TimeoutExpired:
        return {"top_k": top_k, "error": f"timed out after {timeout:.0f} s"}
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr)
    parts = [float(v) for v in wall.group(1).split(":")] if wall else []
    seconds = sum(v * 60 ** (len(parts) - 1 - i) for i, v in enumerate(parts)) if parts else time.time() - t
    cpu = [float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", p.stderr)]
    row = {"top_k": top_k, "rc": p.returncode, "seconds": round(seconds, 2), "cpu_s": round(sum(cpu), 1),
           "peak_rss_gb": round(int(peak.group(1)) / 2**20, 3) if peak else None,
           "load_avg_before": load_before, "load_avg": os.getloadavg()}
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", p.stderr) for k in ("User", "System")]
    if all(cpu):  # CPU seconds of the process and its waited-for children: less sensitive to the load
        row.update(user_s=float(cpu[0].group(1)), system_s=float(cpu[1].group(1)))
    if p.returncode != 0:
        row["error"] = p.stderr.strip().splitlines()[-1][:300] if p.stderr.strip() else "no output"
    side = out.with_name(out.name + ".run.json")
    if side.exists():
        row["timing_s"] = json.loads(side.read_text())["timing_s"]
    if p.returncode == 0 and out.exists():
        row.update(fadist_facts(out))
        if max_tail is not None:
            row.update(tail_sizes(out))
    return row


def tail_sizes(path: Path) -> dict:
    """The stored tail and windows of a .fadist file (a capped run's store meta)."""
    from faceaudit.compare.store import load_distributions

    d = load_distributions(path)
    return {"tail_scores": int(d.tail_score.size), "max_tail": d.meta["settings"].get("max_tail"),
            "tail_windows": d.meta.get("tail_windows"), "passes": d.meta.get("passes")}


def fadist_facts(path: Path) -> dict:
    """Sizes of a .fadist's arrays from the NPY headers of its ZIP members (nothing loaded), its
    SHA-256 and its stored content digest."""
    import zipfile

    shapes, digest = {}, None
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
                if name == "__digest__.npy":
                    digest = str(np.lib.format.read_array(z.open(name), allow_pickle=False))
                shapes[name.removesuffix(".npy")] = [list(shape), dtype.str]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    tail = shapes.get("tail_score", [[0]])[0]
    return {"tail_scores": int(tail[0]) if tail else 0, "file_mb": round(path.stat().st_size / 2**20, 1),
            "sha256": h.hexdigest(), "content_digest": digest, "arrays": shapes}


def _git_head() -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--", "src"], capture_output=True,
                           text=True).stdout.strip()
    src = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "src"],
                         capture_output=True,
                         text=True).stdout.strip()
    return f"{head} (src/ at {src})" + (" + uncommitted src/" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 40000, 100000])
    ap.add_argument("--top-k", type=int, nargs="+", default=[20, 0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/faceaudit_topk"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/faceaudit_topk/results.jsonl"))
    ap.add_argument("--label", default="")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--max-tail", type=int, nargs="+", default=None,
                    help="also pass --max-tail (each value a run; the file is named after it)")
    ap.add_argument("--keep", action="store_true", help="keep the .fadist files (default: delete each after)")
    a = ap.parse_args()
    for n in a.sizes:
        emb, table = make_set(n, a.data / str(n))
        for k in a.top_k:
            for mt in a.max_tail or [None]:
                fadist = a.data / str(n) / (f"k{k}" + ("" if mt is None else f"_t{mt}") + f"{a.label}.fadist")
                row = {"n": n, "pairs": n * (n - 1) // 2, "label": a.label, "git_head": _git_head(),
                       **run(emb, table, fadist, k, a.timeout, mt)}
                if "seconds" in row:
                    row["pairs_per_s"] = round(row["pairs"] / row["seconds"])
                if not a.keep:
                    fadist.unlink(missing_ok=True)
                print(json.dumps(row), flush=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
