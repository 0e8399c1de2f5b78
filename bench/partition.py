"""Memory and time of `faceaudit compare --max-tail N` with the partition inside the bin (issue 17).

For each set size (``bench_topk.make_set``: 128-d unit vectors, 4 images per subject, 4 groups) and each
requested run, one ``bench/memphase.py compare ... --backend numpy --quiet`` process under
``/usr/bin/time -v``: wall and CPU seconds of the process, the peak RSS of every phase (memphase resets
VmHWM at each boundary, so the process peak is the largest phase peak), the captures the main pass kept,
and from the written ``.fadist``'s JSON member (nothing else loaded): the passes, the kept tail, the
windows and the partition record. Runs:

* ``part``: this checkout's src/ with ``--max-tail BUDGET`` (a budget small enough that the whole-bin
  windows pass it: the partition must be in the file's meta, else the row says so);
* ``base``: the same budget on the code before the partition (``--base-src``, e.g. ``git archive 9920c5a
  src`` unpacked): whole-bin windows and the pre-pass's estimated bands;
* ``default``: this checkout with defaults (``--max-tail`` 8,388,608).

Rows are appended as JSON lines to ``--out``; the ``.fadist`` files stay under ``--data`` for
``bench/tailcap_answers.py`` (``--drop`` deletes them after each row). ``--table`` prints the markdown
table of an ``--out`` file instead, with the stored arrays' sizes from the files that are still there.

    mkdir -p /tmp/partbench/base && git archive 9920c5a src | tar -x -C /tmp/partbench/base
    .venv/bin/python bench/partition.py --sizes 40000 100000 --runs part base default \\
        --base-src /tmp/partbench/base/src --out bench/out/partition.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_topk import _git_head, make_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEMPHASE = re.compile(r"memphase (\S+)\s+peak\s+([\d.]+) MB\s+rss\s+([\d.]+) MB\s+([\d.]+) s")
CAPTURES = re.compile(r"memphase captures: (\d+) chunks, ([\d.]+) MiB captured in all .*?([\d.]+) MiB kept")


def fadist_meta(path: Path) -> dict:
    """The meta of a .fadist from its JSON member (no array loaded)."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.startswith("__json__"))
        with z.open(name) as f:
            doc = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
    return doc["meta"]


def time_v(stderr: str) -> dict:
    """Wall, user and system seconds and max RSS from ``/usr/bin/time -v``."""
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", stderr)
    parts = [float(v) for v in wall.group(1).split(":")] if wall else []
    out = {"wall_s": round(sum(v * 60 ** (len(parts) - 1 - i) for i, v in enumerate(parts)), 1)}
    for key in ("User", "System"):
        m = re.search(rf"{key} time \(seconds\): ([\d.]+)", stderr)
        out[f"{key.lower()}_s"] = float(m.group(1)) if m else None
    out["cpu_s"] = round((out["user_s"] or 0) + (out["system_s"] or 0), 1)
    return out


def phases(stderr: str) -> dict:
    """memphase's per-phase peaks (MB) and seconds, the process peak, and the main pass's captures."""
    rows = [(m.group(1), float(m.group(2)), float(m.group(4))) for m in MEMPHASE.finditer(stderr)]
    out = {"phase_peak_mb": {p: mb for p, mb, _ in rows}, "phase_s": {p: s for p, _, s in rows},
           "peak_mb": max((mb for _, mb, _ in rows), default=None)}
    cap = CAPTURES.search(stderr)
    if cap:
        out.update(main_pass_captured_mib=float(cap.group(2)), main_pass_kept_mib=float(cap.group(3)))
    return out


def run_one(emb: Path, table: Path, out: Path, src: Path, max_tail: int | None, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = ["/usr/bin/time", "-v", sys.executable, str(ROOT / "bench" / "memphase.py"), "compare",
           "--embeddings", str(emb), "--samples", str(table), "--group", "grp", "--out", str(out),
           "--backend", "numpy", "--quiet"] + ([] if max_tail is None else ["--max-tail", str(max_tail)])
    load_before = os.getloadavg()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    row = {"rc": p.returncode, "load_before": load_before, "load_after": os.getloadavg(),
           **time_v(p.stderr), **phases(p.stderr)}
    if p.returncode != 0:
        row["error"] = p.stderr.strip().splitlines()[-1][:300] if p.stderr.strip() else "no output"
        return row
    meta = fadist_meta(out)
    tw = meta.get("tail_windows") or {}
    row.update(passes=meta.get("passes"), tail_windows=tw, partition=tw.get("partition"),
               kept_tail=tw.get("kept_tail"), window_scores=tw.get("window_scores"),
               file_mb=round(out.stat().st_size / 2**20, 1))
    side = out.with_name(out.name + ".run.json")
    if side.exists():
        row["timing_s"] = json.loads(side.read_text()).get("timing_s")
    return row


def array_mb(path: Path) -> dict:
    """MB (2^20 bytes) of a .fadist's stored arrays by role, from its members' NPY headers."""
    from bench_topk import fadist_facts

    mb = {}
    for name, (shape, dtype) in fadist_facts(path)["arrays"].items():
        role = name.split("_")[0] if name.split("_")[0] in ("tail", "window", "genuine", "summary", "hist",
                                                            "bulk") else "other"
        mb[role] = mb.get(role, 0) + int(np.prod(shape)) * np.dtype(dtype).itemsize / 2**20
    return {k: round(v, 2) for k, v in sorted(mb.items())}


def print_table(out: Path) -> None:
    """The markdown table of the rows in ``out``."""
    print("| images | run | `--max-tail` | passes | kept tail | window scores (largest) | main pass kept MiB "
          "| peak MB: main pass / split / capture / process | wall s | CPU s | load | stored MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for line in out.read_text().splitlines():
        r = json.loads(line)
        pk, part = r.get("phase_peak_mb", {}), r.get("partition") or {}
        path = Path(r["fadist"])
        stored = array_mb(path) if path.exists() else "gone"
        split, capture = pk.get("refine.split_passes", "-"), pk.get("refine.capture_windows", "-")
        print(f"| {r['n']:,} | {r['run']} | {r['max_tail'] or 'default'} | {len(r.get('passes') or [])} "
              f"| {r.get('kept_tail') or '-'} | {r.get('window_scores') or '-'} "
              f"({part.get('largest_window', '-')}) | {r.get('main_pass_kept_mib')} "
              f"| {pk.get('main_pass')} / {split} / {capture} / **{r.get('peak_mb')}** | {r.get('wall_s')} "
              f"| {r.get('cpu_s')} | {r['load_before'][0]:.1f}-{r['load_after'][0]:.1f} | {stored} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[40000, 100000, 200000])
    ap.add_argument("--runs", nargs="+", default=["part", "base", "default"],
                    choices=["part", "base", "default"])
    ap.add_argument("--budget", type=int, default=262144, help="--max-tail of the part and base runs")
    ap.add_argument("--base-src", type=Path, default=Path("/tmp/partbench/base/src"))
    ap.add_argument("--data", type=Path, default=Path("/tmp/partbench"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/partbench/partition.jsonl"))
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--drop", action="store_true", help="delete each .fadist after its row")
    ap.add_argument("--label", default="", help="suffix of the runs' folders (another budget, say)")
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    a = ap.parse_args()
    if a.table:
        return print_table(a.out)
    for n in a.sizes:
        emb, table = make_set(n, a.data / "sets" / str(n))
        for kind in a.runs:
            src = a.base_src if kind == "base" else ROOT / "src"
            mt = None if kind == "default" else a.budget
            fadist = a.data / f"{n}_{kind}{a.label}" / "out.fadist"
            fadist.parent.mkdir(parents=True, exist_ok=True)
            t = time.strftime("%H:%M:%S", time.gmtime())
            row = {"n": n, "pairs": n * (n - 1) // 2, "run": kind + a.label, "max_tail": mt, "src": str(src),
                   "git_head": _git_head() if kind != "base" else "base", "start_utc": t,
                   "fadist": str(fadist), **run_one(emb, table, fadist, src, mt, a.timeout)}
            if kind == "part" and row.get("rc") == 0 and not row.get("partition"):
                row["warning"] = "no partition in the meta: the budget did not force it"
            if a.drop:
                fadist.unlink(missing_ok=True)
            print(json.dumps(row), flush=True)
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
