"""Does auditing a streamed Parquet score file take memory independent of the file's length?

    .venv/bin/python bench/bench_stream.py                    # 1e7 and 1e8 rows
    .venv/bin/python bench/bench_stream.py --rows 1e6,1e7     # quicker
    .venv/bin/python bench/bench_stream.py --rows 1e5 --explain   # + where the memory goes

Writes (once, reused afterwards) under bench/out/ (git-ignored):

* ``stream_samples_<n>.parquet``: ``sample_id`` (strings ``s00000``..., or ints with ``--id-type int``),
  ``subject_id`` (4 samples per subject: 20,000 samples / 5,000 subjects by default), ``sex`` (F/M
  per subject, seeded);
* ``stream_scores_<rows>.parquet``: ``probe, reference, score, mated``, row groups of 2**20 rows.
  Every unordered mated pair is in the file once (5,000 x 6 = 30,000 rows, scores N(3, 1)); the rest are
  distinct non-mated pairs (``key = k * step mod n(n-1)`` over the off-diagonal ordered pairs, with
  ``step`` coprime to ``n(n-1)``, keeping probe < reference, so no unordered pair repeats and the
  duplicate check passes), scores N(0, 1).

Then runs, in a subprocess under ``/usr/bin/time -v``, for each file:

    .venv/bin/faceaudit audit --scores FILE --samples SAMPLES --group sex --bootstrap 0 --json OUT --quiet

and records wall time, peak RSS (``Maximum resident set size``) and the exact-tail size the audit
kept. With ``--explain`` it also runs the same load in-process in a subprocess and reports the sizes of
what is held (exact tail, subject-pair counts, duplicate bitset, mated scores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BATCH = 1 << 20
# the CLI of this checkout: the running interpreter with this tree's src/ first on the path (a worktree
# has no .venv of its own; /work/main/.venv/bin/python with PYTHONPATH=src is the documented way)
CLI = [sys.executable, "-m", "faceaudit.cli"]
CLI_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _fmt_n(x: int) -> str:
    e = int(math.floor(math.log10(x))) if x > 0 else 0
    return f"{x // 10**e}e{e}" if x == (x // 10**e) * 10**e else str(x)


def write_samples(n: int, per_subject: int, seed: int, id_type: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = OUT / f"stream_samples_{n}_{id_type}.parquet"
    if path.exists():
        return path
    n_subj = n // per_subject
    rng = np.random.default_rng([seed, 0])
    sex = np.where(rng.random(n_subj) < 0.5, "F", "M")
    subj = np.arange(n) // per_subject
    if id_type == "str":
        sid = pa.array([f"s{i:05d}" for i in range(n)])
        pid = pa.array([f"p{j:05d}" for j in subj])
    else:
        sid, pid = pa.array(np.arange(n, dtype=np.int64)), pa.array(subj.astype(np.int64))
    pq.write_table(pa.table({"sample_id": sid, "subject_id": pid, "sex": pa.array(sex[subj])}), path)
    return path


def scores_path(rows: int, n: int, id_type: str, genuine_mean: float) -> Path:
    return OUT / f"stream_scores_{_fmt_n(rows)}_{n}_{id_type}_g{genuine_mean:g}_u.parquet"


class TextProgress:
    """A progress line every ``every`` of the total, for a log file (rich draws bars only on a terminal)."""

    def __init__(self, console, rows: int, every: float = 0.05) -> None:
        self.console, self.rows, self.step = console, rows, max(1, int(rows * every))
        self.next, self.t0 = self.step, time.perf_counter()

    def __call__(self, written: int) -> None:
        if written < self.next and written < self.rows:
            return
        el = time.perf_counter() - self.t0
        eta = el * (self.rows - written) / max(written, 1)
        self.console.print(f"  wrote {written:,} / {self.rows:,} rows ({written / self.rows:.0%}), "
                           f"{written / el:,.0f} rows/s, {el:.0f} s, ETA {eta:.0f} s, "
                           f"load {os.getloadavg()[0]:.2f}", highlight=False)
        self.next = (written // self.step + 1) * self.step


def write_scores(rows: int, n: int, per_subject: int, seed: int, id_type: str, genuine_mean: float,
                 progress, text_progress=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = scores_path(rows, n, id_type, genuine_mean)
    if path.exists():
        return path
    n_pairs = n * (n - 1) // 2
    if rows > n_pairs:  # before writing anything: the walk below would fail only near the end
        raise SystemExit(f"{rows:,} rows exceed the {n_pairs:,} distinct unordered pairs of {n:,} samples; "
                         f"use --n-samples {math.ceil((1 + math.sqrt(1 + 8 * rows)) / 2):,} or more")
    subj = np.arange(n) // per_subject
    ids = pa.array([f"s{i:05d}" for i in range(n)]) if id_type == "str" else None
    # every unordered mated pair (the audit reads pairs as unordered: each listed once)
    base = np.arange(0, n, per_subject)
    a, b = np.meshgrid(np.arange(per_subject), np.arange(per_subject), indexing="ij")
    off = (a < b)
    mp = (base[:, None] + a[off][None, :]).ravel()
    mr = (base[:, None] + b[off][None, :]).ravel()
    n_mated = min(mp.size, rows)
    mp, mr = mp[:n_mated], mr[:n_mated]
    # distinct non-mated ordered pairs: an affine walk over the n(n-1) off-diagonal pairs
    M = n * (n - 1)
    step = 1_000_003
    while math.gcd(step, M) != 1:
        step += 2
    schema = pa.schema([("probe", pa.string() if id_type == "str" else pa.int64()),
                        ("reference", pa.string() if id_type == "str" else pa.int64()),
                        ("score", pa.float64()), ("mated", pa.bool_())])
    tmp = path.with_suffix(".tmp")
    task = progress.add_task(f"writing {rows:,} rows", total=rows)
    written, k, batch_no = 0, 0, 0
    with pq.ParquetWriter(tmp, schema) as w:
        while written < rows:
            rng = np.random.default_rng([seed, 1, batch_no])
            if batch_no == 0 and n_mated:
                p, r = mp, mr
                s = rng.normal(genuine_mean, 1.0, p.size)
                mated = np.ones(p.size, bool)
            else:
                want = min(BATCH, rows - written)
                keys = (np.arange(k, k + want + want // 1000 + 64, dtype=np.int64) * step) % M
                p = keys // (n - 1)
                r = keys % (n - 1)
                r = r + (r >= p)
                ok = (subj[p] != subj[r]) & (p < r)  # one orientation: distinct unordered pairs
                used = np.flatnonzero(ok)[want - 1] + 1 if ok.sum() >= want else ok.size
                p, r = p[:used][ok[:used]], r[:used][ok[:used]]
                k += int(used)
                if k > M:
                    raise SystemExit(f"{rows:,} rows exceed the {M // 2:,} distinct pairs of {n} samples")
                s = rng.standard_normal(p.size)
                mated = np.zeros(p.size, bool)
            if id_type == "str":
                pc, rc = ids.take(pa.array(p)), ids.take(pa.array(r))
            else:
                pc, rc = pa.array(p.astype(np.int64)), pa.array(r.astype(np.int64))
            w.write_table(pa.table([pc, rc, pa.array(s), pa.array(mated)], schema=schema),
                          row_group_size=BATCH)
            written += p.size
            batch_no += 1
            progress.update(task, completed=written)
            if text_progress is not None:
                text_progress(written)
    os.replace(tmp, path)
    progress.remove_task(task)
    return path


def run_cli(scores: Path, samples: Path, bootstrap: int) -> dict:
    out_json = OUT / f"audit_{scores.stem}.json"
    cmd = ["/usr/bin/time", "-v", *CLI, "audit", "--scores", str(scores), "--samples", str(samples),
           "--group", "sex", "--bootstrap", str(bootstrap), "--json", str(out_json), "--quiet"]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=CLI_ENV)
    wall = time.perf_counter() - t0
    err = proc.stderr
    peak_kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    res = {
        "command": " ".join(cmd[2:]),
        "exit": proc.returncode,
        "wall_seconds": wall,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "peak_rss_mb": int(peak_kb.group(1)) / 1024 if peak_kb else None,
        "file_mb": scores.stat().st_size / 2**20,
    }
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", err) for k in ("User", "System")]
    if all(cpu):  # CPU seconds of the process and its waited-for children: less sensitive to the load
        res.update(user_s=float(cpu[0].group(1)), system_s=float(cpu[1].group(1)))
    if proc.returncode != 0:
        res["error"] = err[-3000:]
        return res
    doc = json.loads(out_json.read_text())
    res["exact_tail_scores"] = _find(doc, "exact_tail_scores")
    overall = doc.get("overall") or {}
    res["eer"] = overall.get("eer")
    res["eer_threshold"] = overall.get("eer_threshold")
    res["fmr_thresholds"] = {f"{op['fmr_target']:g}": op["threshold"]
                             for op in overall.get("operating_points") or []}
    res["duplicate_check"] = _find(doc, "duplicate_check")
    return res


def _find(doc, key):
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            f = _find(v, key)
            if f is not None:
                return f
    elif isinstance(doc, list):
        for v in doc:
            f = _find(v, key)
            if f is not None:
                return f
    return None


EXPLAIN = (r"""
import json, sys, time, resource
import numpy as np
from faceaudit.data.ingest import load_score_file
from faceaudit.data.tables import ScoreFile, read_sample_table
def hwm():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
t0 = time.perf_counter()
dist = load_score_file(sys.argv[1], sys.argv[2], group_columns=['sex'])
t1 = time.perf_counter()
pairs = dist.impostor_subject_pairs
n = dist.samples.n_samples
print(json.dumps({
  "load_seconds": t1 - t0,
  "peak_rss_mb_after_load": hwm(),
  "tail_scores": int(dist.tail_score.size),
  "tail_mb": (dist.tail_score.nbytes + dist.tail_probe.nbytes + dist.tail_reference.nbytes) / 2**20,
  "subject_pairs_nnz": None if pairs is None else int(pairs.nnz),
  "subject_pairs_mb": None if pairs is None else (pairs.data.nbytes + pairs.indices.nbytes"""
r""" + pairs.indptr.nbytes) / 2**20,
  "duplicate_bitset_mb": (n * n // 8 + 1) / 2**20,
  "histogram_mb": dist.histogram_nbytes() / 2**20,
  "mated": int(dist.genuine_score.size),
}))
""")


def explain(scores: Path, samples: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", EXPLAIN, str(scores), str(samples)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode != 0:
        return {"error": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1e7,1e8", help="comma-separated row counts")
    ap.add_argument("--n-samples", type=int, default=20_000)
    ap.add_argument("--per-subject", type=int, default=4)
    ap.add_argument("--id-type", choices=("str", "int"), default="str")
    ap.add_argument("--genuine-mean", type=float, default=3.0)
    ap.add_argument("--bootstrap", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--explain", action="store_true", help="also report what the loaded result holds")
    ap.add_argument("--delete-after", action="store_true", help="delete each score file after its audit")
    args = ap.parse_args()

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    OUT.mkdir(parents=True, exist_ok=True)
    rows_list = [int(float(x)) for x in args.rows.split(",")]
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        samples = write_samples(args.n_samples, args.per_subject, args.seed, args.id_type)
        for rows in rows_list:
            t0 = time.perf_counter()
            existed = scores_path(rows, args.n_samples, args.id_type, args.genuine_mean).exists()
            scores = write_scores(rows, args.n_samples, args.per_subject, args.seed, args.id_type,
                                  args.genuine_mean, progress,
                                  None if console.is_terminal else TextProgress(console, rows))
            write_s = None if existed else time.perf_counter() - t0
            task = progress.add_task(f"faceaudit audit on {rows:,} rows", total=None)
            r = run_cli(scores, samples, args.bootstrap)
            progress.remove_task(task)
            r.update(rows=rows, write_seconds=write_s, rows_per_second=rows / r["wall_seconds"],
                     duplicate_bitset_mib=(args.n_samples ** 2 // 8 + 1) / 2**20)
            if args.explain:
                task = progress.add_task(f"explain {rows:,} rows", total=None)
                r["explain"] = explain(scores, samples)
                progress.remove_task(task)
            results.append(r)
            console.print(r)
            if args.delete_after:
                scores.unlink()

    t = Table(title=f"faceaudit audit on streamed Parquet ({args.n_samples:,} samples, "
                    f"{args.n_samples // args.per_subject:,} subjects, "
                    f"--group sex --bootstrap {args.bootstrap})")
    for c in ("rows", "file MiB", "write s", "audit wall s", "peak RSS MiB", "exact tail scores", "exit"):
        t.add_column(c, justify="right")
    for r in results:
        t.add_row(f"{r['rows']:,}", f"{r['file_mb']:,.0f}",
                  "-" if r["write_seconds"] is None else f"{r['write_seconds']:.0f}",
                  f"{r['wall_seconds']:.1f}", f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else "?",
                  f"{r.get('exact_tail_scores') or 0:,}", str(r["exit"]))
    console.print(t)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--", "src"], capture_output=True,
                           text=True).stdout.splitlines()
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_head": git, "src_dirty": dirty,
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args), "results": results}
    out = OUT / f"bench_stream_{args.id_type}_{args.n_samples}_{'_'.join(map(_fmt_n, rows_list))}.json"
    out.write_text(json.dumps(doc, indent=1))
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
