"""faceaudit vs bob.measure vs scikit-learn on one large pair of score arrays, in one run.

    .venv/bin/python bench/bench_measures.py                      # full run: 1e4 mated + 1e8 non-mated
    .venv/bin/python bench/bench_measures.py --n-impostor 1e6     # quick check
    .venv/bin/python bench/bench_measures.py --only faceaudit     # rerun one, reuse the others' results
    .venv/bin/python bench/bench_measures.py --only faceaudit --profile   # + cProfile of faceaudit's part

What it does:

1. generates seeded float64 scores (mated N(3, 1), non-mated N(0, 1)) once, as .npy under bench/out/
   (git-ignored), written in chunks so that the generator itself never holds the whole array;
2. runs each implementation in its own subprocess, one at a time, so that a process's peak RSS
   (``ru_maxrss`` from ``wait4``) is that implementation's alone. Every worker loads both arrays with
   ``np.load(mmap_mode=None)``: **the input array is counted in every peak RSS**, the same way for all.
   Each step's own peak is measured too (VmHWM, reset before the step through /proc/self/clear_refs);
   * faceaudit (this repo's .venv): ``from_arrays(gen, imp, fmr_targets=[1e-3, 1e-4, 1e-5])``, then
     ``impostor_view()`` / ``genuine_scores()``, ``eer``, ``fmr_threshold`` x3 with operating points
     (convention "highest", as bob.measure), the full ``det_curve``; then, not counted in the total,
     the "lowest" convention thresholds (for the scikit-learn comparison);
   * bob.measure 6.1.1 (tests/reference/.venv-bob, numpy 1.26; numba JIT compiled first on a small
     input, not timed): ``eer_threshold`` + ``farfrr`` there, ``far_threshold`` + ``farfrr`` x3,
     ``roc(neg, pos, 2000)``, all called as documented with ``is_sorted=False`` (each call sorts its
     own copy, as the issue's figures did); one ``np.sort`` of the non-mated array is timed on its own
     to show what sorting once (``is_sorted=True``) would save;
   * scikit-learn (this repo's .venv): ``roc_curve`` on the concatenated scores and labels (the
     concatenation is timed as a step), then the thresholds at the three FMRs picked from the curve
     (largest FPR <= target); then, not counted, ``roc_curve(drop_intermediate=False)`` and the same
     pick: the default curve keeps only corners and can lack the exact point;
3. checks that the answers agree: faceaudit's EER threshold and "highest" FMR thresholds against
   bob's ``eer_threshold`` / ``far_threshold``, the FMR/FNMR at each of them against bob's ``farfrr``
   (to 1e-12; exact equality is reported too); faceaudit's "lowest" thresholds and FMR/FNMR against
   the points picked from scikit-learn's full ``roc_curve(drop_intermediate=False)``; and every point of \
bob's ROC and of
   scikit-learn's ROC that lies above faceaudit's exact tail is a point of faceaudit's DET curve;
4. prints a table and writes bench/out/bench_measures_<tag>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BOB_PY = ROOT / "tests" / "reference" / ".venv-bob" / "bin" / "python"
TARGETS = [1e-3, 1e-4, 1e-5]
IMPLS = ("faceaudit", "bob", "sklearn")
DET_MEMORY_STEP = "det_curve (full)"
DET_STREAM_STEP = "full DET streamed to Parquet (write_det)"


# ------------------------------------------------------------------------------------------------
# memory helpers (Linux)
# ------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------
# worker side: runs in the implementation's own interpreter; imports numpy and stdlib only at top
# ------------------------------------------------------------------------------------------------


class Steps:
    """Times each step and records its own peak RSS (VmHWM reset before it)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.can_reset = _reset_hwm()

    def __call__(self, name: str, fn, *, counted: bool = True):
        print(f"STEP {name}", flush=True)
        self.can_reset = _reset_hwm() and self.can_reset
        rss0 = _status_kb("VmRSS")
        load0 = os.getloadavg()[0]
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        self.rows.append(
            {
                "step": name,
                "seconds": dt,
                "cpu_seconds": cpu,
                "loadavg_1min_before_after": [load0, os.getloadavg()[0]],
                "counted": counted,
                "rss_before_mb": rss0 / 1024,
                "peak_rss_mb": _status_kb("VmHWM") / 1024 if self.can_reset else None,
                "rss_after_mb": _status_kb("VmRSS") / 1024,
            }
        )
        return out


def _worker_faceaudit(gen, imp, steps: Steps, args) -> dict:
    from faceaudit.build import from_arrays
    from faceaudit.measures.verification import det_curve, eer, fmr_threshold, operating_point

    dist = steps("from_arrays", lambda: from_arrays(gen, imp, fmr_targets=TARGETS))
    view, g = steps("impostor_view+genuine_scores", lambda: (dist.impostor_view(), dist.genuine_scores()))
    e = steps("eer", lambda: eer(view, g))

    def thresholds(convention):
        out = []
        for t in TARGETS:
            thr = fmr_threshold(view, t, g, convention)
            p = operating_point(view, g, thr)
            out.append(
                {
                    "target": t,
                    "threshold": thr,
                    "fm": p.false_matches,
                    "fnm": p.false_non_matches,
                    "fmr": p.fmr,
                    "fnmr": p.fnmr,
                }
            )
        return out

    highest = steps("fmr_threshold x3 (highest) + operating points", lambda: thresholds("highest"))
    # --stream-first: the streamed DET right after the counted steps, in a process that has not built the
    # in-memory curve (whose freed pages would otherwise be counted in the stream's RSS)
    streamed = _det_streamed(dist, steps, args) if args.det_stream and args.stream_first else None
    curve = steps(DET_MEMORY_STEP, lambda: det_curve(view, g))
    lowest = steps(
        "fmr_threshold x3 (lowest) + operating points", lambda: thresholds("lowest"), counted=False
    )
    det_path = OUT / f"faceaudit_det_{args.tag}.npz"
    np.savez(det_path, threshold=curve["threshold"], false_matches=curve["false_matches"],
             false_non_matches=curve["false_non_matches"])
    n_full = int(curve["threshold"].size)
    del curve
    if args.det_stream and not args.stream_first:
        streamed = _det_streamed(dist, steps, args)
    try:  # context: the sampled DET (exact points, ~2000 of them), where det_curve supports it
        sampled = steps(
            "det_curve(max_points=2000) (context)", lambda: det_curve(view, g, max_points=2000), counted=False
        )
        n_sampled = int(sampled["threshold"].size)
    except TypeError:
        n_sampled = None
    if streamed is not None:
        streamed = _check_streamed(*streamed, det_path, args.keep_det_file)
    return {
        "eer": {
            "threshold": e.threshold,
            "eer": e.eer,
            "fm": e.point.false_matches,
            "fnm": e.point.false_non_matches,
            "fmr": e.point.fmr,
            "fnmr": e.point.fnmr,
        },
        "fmr_highest": highest,
        "fmr_lowest": lowest,
        "det_points": n_full,
        "det_points_sampled": n_sampled,
        "det_streamed": streamed,
        "det_path": str(det_path),
        "tail": {
            "size": int(view.tail.size),
            "n_below": int(view.n_below),
            "below_max": view.below_max,
            "cutoff": float(np.max(dist.tail_cutoff)),
            "fraction": view.tail.size / view.total,
        },
        "nonmated": int(view.total),
        "mated": int(g.size),
    }


def _det_streamed(dist, steps: Steps, args) -> tuple[dict, Path]:
    """The full DET streamed to Parquet (write_det, what ``audit --det-out`` calls), timed and measured as
    a step of its own, not in the total (which keeps the in-memory variant)."""
    from faceaudit.report.detfile import write_det

    path = OUT / f"faceaudit_det_{args.tag}.parquet"
    summary = steps(DET_STREAM_STEP, lambda: write_det(dist, path), counted=False)
    return summary, path


def _check_streamed(summary: dict, path: Path, det_path: Path, keep: bool) -> dict:
    """After every measured step: the file's exact rows against the in-memory curve saved above, one row
    group at a time (the bin-edge rows, below the tail, are not in det_curve's output)."""
    import pyarrow.parquet as pq

    with np.load(det_path) as npz:
        full = {k: npz[k] for k in ("threshold", "false_matches", "false_non_matches")}
    at, same, edges = 0, True, 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 16):
        exact = batch.column("exact").to_numpy(zero_copy_only=False)
        edges += int((~exact).sum())
        n = int(exact.sum())
        for col, key in (("threshold", "threshold"), ("n_false_match", "false_matches"),
                         ("n_false_nonmatch", "false_non_matches")):
            same = same and np.array_equal(batch.column(col).to_numpy()[exact], full[key][at:at + n])
        at += n
    out = {"rows": summary["rows"], "bin_edge_rows": edges, "exact_rows": at,
           "exact_rows_equal_det_curve": bool(same and at == full["threshold"].size),
           "file_mib": path.stat().st_size / 2**20}
    if not keep:
        path.unlink()
    return out


def _worker_bob(gen, imp, steps: Steps, args) -> dict:
    import bob.measure as bm

    def warm():  # numba compiles on first call; not part of the measured work
        rng = np.random.default_rng(1)
        n, p = rng.normal(0, 1, 1000), rng.normal(3, 1, 100)
        bm.eer_threshold(n, p)
        bm.far_threshold(n, p, 1e-2)
        bm.farfrr(n, p, 0.5)
        bm.roc(n, p, 20)

    steps("numba JIT warm-up (small input)", warm, counted=False)
    thr = steps("eer_threshold", lambda: float(bm.eer_threshold(imp, gen)))
    far, frr = steps("farfrr at EER threshold", lambda: bm.farfrr(imp, gen, thr))
    eer_out = {"threshold": thr, "fmr": float(far), "fnmr": float(frr), "eer": (far + frr) / 2}
    rows = []
    for t in TARGETS:
        ft = steps(f"far_threshold({t:g})", lambda t=t: float(bm.far_threshold(imp, gen, t)))
        a, r = steps(f"farfrr at far_threshold({t:g})", lambda ft=ft: bm.farfrr(imp, gen, ft))
        rows.append({"target": t, "threshold": ft, "fmr": float(a), "fnmr": float(r)})
    curve = steps(f"roc(neg, pos, {args.roc_points})", lambda: bm.roc(imp, gen, args.roc_points))
    steps(
        "np.sort(non-mated) once (context: is_sorted=True would skip it)", lambda: np.sort(imp), counted=False
    )
    roc_path = OUT / f"bob_roc_{args.tag}.npy"
    np.save(roc_path, curve)
    return {
        "eer": eer_out,
        "far_threshold": rows,
        "roc_points": int(curve.shape[1]),
        "roc_path": str(roc_path),
    }


def _worker_sklearn(gen, imp, steps: Steps, args) -> dict:
    from sklearn.metrics import roc_curve

    def concat():
        y_score = np.concatenate([gen, imp])
        y_true = np.zeros(y_score.size, dtype=bool)
        y_true[: gen.size] = True
        return y_true, y_score

    y_true, y_score = steps("concatenate scores + labels", concat)
    fpr, tpr, thr = steps("roc_curve", lambda: roc_curve(y_true, y_score))

    def pick():
        out = []
        for t in TARGETS:
            i = int(np.flatnonzero(fpr <= t)[-1])
            out.append(
                {"target": t, "threshold": float(thr[i]), "fmr": float(fpr[i]), "fnmr": float(1 - tpr[i])}
            )
        return out

    rows = steps("pick thresholds at 3 FMRs", pick)
    roc_path = OUT / f"sklearn_roc_{args.tag}.npz"
    np.savez(roc_path, fpr=fpr, tpr=tpr)
    n_default = int(fpr.size)
    # The default curve (drop_intermediate=True) keeps only its corners: where no mated score lies
    # near the target, the exact point (largest FMR <= target) is dropped and the pick above is a
    # coarser one. The full curve has every point; the "lowest"-convention check uses that one.
    del fpr, tpr, thr
    fpr, tpr, thr = steps(
        "roc_curve(drop_intermediate=False)",
        lambda: roc_curve(y_true, y_score, drop_intermediate=False),
        counted=False,
    )
    full = steps("pick thresholds at 3 FMRs (full curve)", pick, counted=False)
    return {
        "fmr_lowest": full,
        "fmr_lowest_default_curve": rows,
        "roc_points": n_default,
        "roc_points_full": int(fpr.size),
        "roc_path": str(roc_path),
    }


def worker(args) -> None:
    import resource

    t_start = time.perf_counter()
    if args.worker == "bob":
        import bob.measure  # noqa: F401
    elif args.worker == "sklearn":
        import sklearn.metrics  # noqa: F401
    else:
        import faceaudit.build  # noqa: F401
    steps = Steps()
    baseline = _status_kb("VmRSS") / 1024
    gen, imp = steps(
        "np.load inputs",
        lambda: (np.load(args.gen, mmap_mode=None), np.load(args.imp, mmap_mode=None)),
        counted=False,
    )
    fn = {"faceaudit": _worker_faceaudit, "bob": _worker_bob, "sklearn": _worker_sklearn}[args.worker]
    if args.profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        answers = fn(gen, imp, steps, args)
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(35)
        s.write("\n---- by own time ----\n")
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        (OUT / f"profile_{args.worker}_{args.tag}.txt").write_text(s.getvalue())
    else:
        answers = fn(gen, imp, steps, args)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    import numpy

    result = {
        "impl": args.worker,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "versions": _versions(args.worker),
        "rss_after_imports_mb": baseline,
        "input_bytes": int(gen.nbytes + imp.nbytes),
        "steps": steps.rows,
        "total_seconds": sum(r["seconds"] for r in steps.rows if r["counted"]),
        "total_cpu_seconds": sum(r["cpu_seconds"] for r in steps.rows if r["counted"]),
        "ru_maxrss_mb_self": ru.ru_maxrss / 1024,
        "wall_seconds_in_process": time.perf_counter() - t_start,
        "answers": answers,
    }
    Path(args.result).write_text(json.dumps(result, indent=1))


def _versions(impl: str) -> dict:
    from importlib import metadata

    names = {"faceaudit": ["faceaudit"], "bob": ["bob.measure", "numba"], "sklearn": ["scikit-learn"]}[impl]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


# ------------------------------------------------------------------------------------------------
# parent side
# ------------------------------------------------------------------------------------------------


def _fmt_n(x: int) -> str:
    e = int(np.floor(np.log10(x))) if x > 0 else 0
    return f"{x // 10**e}e{e}" if x == (x // 10**e) * 10**e else str(x)


def generate(n_gen: int, n_imp: int, seed: int, progress, chunk: int = 1 << 22) -> tuple[Path, Path]:
    """Seeded N(3,1) mated and N(0,1) non-mated scores, written chunk by chunk with open_memmap."""
    OUT.mkdir(parents=True, exist_ok=True)
    gpath = OUT / f"genuine_{_fmt_n(n_gen)}_seed{seed}.npy"
    ipath = OUT / f"impostor_{_fmt_n(n_imp)}_seed{seed}.npy"
    if gpath.exists() and ipath.exists():
        return gpath, ipath
    rng_g = np.random.default_rng([seed, 1])
    rng_i = np.random.default_rng([seed, 2])
    np.save(gpath, rng_g.normal(3.0, 1.0, n_gen))
    tmp = ipath.with_suffix(".tmp.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n_imp,))
    task = progress.add_task(f"generating {n_imp:,} non-mated scores", total=n_imp)
    for start in range(0, n_imp, chunk):
        stop = min(start + chunk, n_imp)
        rng_i.standard_normal(stop - start, out=mm[start:stop])
        progress.update(task, completed=stop)
    mm.flush()
    del mm
    os.replace(tmp, ipath)
    progress.remove_task(task)
    return gpath, ipath


def run_worker(impl: str, gpath: Path, ipath: Path, tag: str, args, progress) -> dict:
    import subprocess

    py = str(BOB_PY) if impl == "bob" else sys.executable
    if impl == "bob" and not BOB_PY.exists():
        raise SystemExit(f"{BOB_PY} missing: run `bash tests/reference/make_bob_venv.sh` first")
    result_path = OUT / f"result_{impl}_{tag}.json"
    cmd = [
        py,
        str(Path(__file__).resolve()),
        "--worker",
        impl,
        "--gen",
        str(gpath),
        "--imp",
        str(ipath),
        "--result",
        str(result_path),
        "--tag",
        tag,
        "--roc-points",
        str(args.roc_points),
    ]
    if args.det_stream:
        cmd.append("--det-stream")
    if args.stream_first:
        cmd.append("--stream-first")
    if args.keep_det_file:
        cmd.append("--keep-det-file")
    if args.profile and impl == "faceaudit":
        cmd.append("--profile")
    env = dict(os.environ)
    if impl == "faceaudit":
        env["PYTHONPATH"] = str(args.src or ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    task = progress.add_task(f"{impl}: starting", total=None)
    t0 = time.perf_counter()
    err_path = OUT / f"stderr_{impl}_{tag}.txt"
    err_file = open(err_path, "w")  # noqa: SIM115 -- a file, not a pipe: a chatty stderr cannot block
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("STEP "):
            progress.update(task, description=f"{impl}: {line[5:].strip()}")
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err_file.close()
    stderr = err_path.read_text()
    proc.returncode = os.waitstatus_to_exitcode(status)
    progress.remove_task(task)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} worker failed (exit {proc.returncode}):\n{stderr[-4000:]}")
    res = json.loads(result_path.read_text())
    # /proc/self/clear_refs resets the kernel's high-water mark, which ru_maxrss also reads, so the
    # process peak is the largest of the step peaks (ru_maxrss from wait4 is kept for reference only)
    res["ru_maxrss_mb_wait4"] = ru.ru_maxrss / 1024
    res["process_wall_seconds"] = wall
    res["ran_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    res["git"] = git_state()
    result_path.write_text(json.dumps(res, indent=1))
    return res


def _close(a: float, b: float, tol: float = 1e-12) -> bool:
    return a == b or abs(a - b) <= tol


def peak_mb(r: dict) -> float:
    """Process peak RSS: the largest step peak (VmHWM), or ru_maxrss where VmHWM could not be reset."""
    peaks = [s["peak_rss_mb"] for s in r["steps"] if s["peak_rss_mb"] is not None]
    return max(peaks) if len(peaks) == len(r["steps"]) else r["ru_maxrss_mb_wait4"]


def det_variants(r: dict, input_mb: float) -> dict:
    """The full DET's two variants in one run: each one's step peak, and the process peak of the counted
    pipeline with that variant as its DET (the counted steps but the in-memory DET, and the variant's own
    step), over the input array. Uncounted steps are left out: those after the in-memory DET run with
    its curve still held."""
    out = {}
    base = max(x["peak_rss_mb"] for x in r["steps"] if x["counted"] and x["step"] != DET_MEMORY_STEP)
    for name, step in (("in_memory", DET_MEMORY_STEP), ("streamed_parquet", DET_STREAM_STEP)):
        own = next(x for x in r["steps"] if x["step"] == step)
        process = max(base, own["peak_rss_mb"])
        out[name] = {
            "step_seconds": own["seconds"],
            "step_cpu_seconds": own["cpu_seconds"],
            "rss_before_mib": own["rss_before_mb"],
            "step_peak_mib": own["peak_rss_mb"],
            "step_peak_over_input": own["peak_rss_mb"] / input_mb,
            "step_growth_mib": own["peak_rss_mb"] - own["rss_before_mb"],
            "process_peak_mib": process,
            "process_peak_over_input": process / input_mb,
        }
    out["rss_after_imports_mib"] = r["rss_after_imports_mb"]
    out["streamed"] = r["answers"].get("det_streamed")
    return out


def agreement(res: dict) -> list[dict]:
    """Rows of (what, faceaudit, other, |diff|, ok)."""
    rows: list[dict] = []

    def add(what, a, b):
        rows.append(
            {
                "check": what,
                "faceaudit": a,
                "other": b,
                "abs_diff": abs(a - b),
                "exact": a == b,
                "ok": _close(a, b),
            }
        )

    fa = res.get("faceaudit", {}).get("answers")
    bob = res.get("bob", {}).get("answers")
    sk = res.get("sklearn", {}).get("answers")
    if fa and bob:
        add("EER threshold vs bob eer_threshold", fa["eer"]["threshold"], bob["eer"]["threshold"])
        add("FMR at EER threshold vs bob farfrr", fa["eer"]["fmr"], bob["eer"]["fmr"])
        add("FNMR at EER threshold vs bob farfrr", fa["eer"]["fnmr"], bob["eer"]["fnmr"])
        add("EER vs bob (far+frr)/2", fa["eer"]["eer"], bob["eer"]["eer"])
        for f, b in zip(fa["fmr_highest"], bob["far_threshold"], strict=True):
            t = f["target"]
            add(f"threshold @FMR {t:g} (highest) vs bob far_threshold", f["threshold"], b["threshold"])
            add(f"FMR @FMR {t:g} vs bob farfrr", f["fmr"], b["fmr"])
            add(f"FNMR @FMR {t:g} vs bob farfrr", f["fnmr"], b["fnmr"])
    if fa and sk:
        for f, s in zip(fa["fmr_lowest"], sk["fmr_lowest"], strict=True):
            t = f["target"]
            add(f"threshold @FMR {t:g} (lowest) vs sklearn roc_curve", f["threshold"], s["threshold"])
            add(f"FMR @FMR {t:g} (lowest) vs sklearn fpr", f["fmr"], s["fmr"])
            add(f"FNMR @FMR {t:g} (lowest) vs sklearn 1-tpr", f["fnmr"], s["fnmr"])
    if fa and sk and "fmr_lowest_default_curve" in sk:
        for f, s in zip(fa["fmr_lowest"], sk["fmr_lowest_default_curve"], strict=True):
            rows.append(
                {
                    "check": f"(info) FMR @{f['target']:g}: faceaudit vs pick from sklearn's default "
                    "roc_curve (drop_intermediate=True drops the exact point)",
                    "faceaudit": f["fmr"],
                    "other": s["fmr"],
                    "abs_diff": abs(f["fmr"] - s["fmr"]),
                    "exact": f["fmr"] == s["fmr"],
                    "ok": True,
                    "info": True,
                }
            )
    if fa and (bob or sk):
        det = np.load(fa["det_path"])
        n, m, tail = fa["nonmated"], fa["mated"], fa["tail"]["size"]
        keys = det["false_matches"].astype(np.int64) * (m + 1) + det["false_non_matches"].astype(np.int64)
        curves = []
        if bob:
            c = np.load(bob["roc_path"])
            curves.append(("bob roc points above the exact tail are faceaudit DET points", c[0], c[1]))
        if sk:
            c = np.load(sk["roc_path"])
            curves.append(
                (
                    "sklearn roc_curve points above the exact tail are faceaudit DET points",
                    c["fpr"],
                    1.0 - c["tpr"],
                )
            )
        for what, fmr, fnmr in curves:
            fm = np.rint(fmr * n).astype(np.int64)
            fnm = np.rint(fnmr * m).astype(np.int64)
            inside = fm <= tail
            found = np.isin(fm[inside] * (m + 1) + fnm[inside], keys)
            rows.append(
                {
                    "check": what,
                    "faceaudit": int(found.sum()),
                    "other": int(inside.sum()),
                    "abs_diff": int(inside.sum() - found.sum()),
                    "exact": bool(found.all()),
                    "ok": bool(found.all()),
                    "note": f"{int((~inside).sum())} points below the tail not checked",
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-impostor", type=float, default=1e8)
    ap.add_argument("--n-genuine", type=float, default=1e4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--roc-points", type=int, default=2000)
    ap.add_argument(
        "--only",
        default=",".join(IMPLS),
        help="comma-separated subset of faceaudit,bob,sklearn; "
        "the others' results are reused from bench/out/ when present",
    )
    ap.add_argument(
        "--profile", action="store_true", help="cProfile faceaudit's part -> bench/out/profile_*.txt"
    )
    ap.add_argument(
        "--det-stream",
        action="store_true",
        help="also stream the full DET to Parquet (write_det) after the in-memory det_curve, as a step "
        "of its own, and check its rows against it",
    )
    ap.add_argument("--keep-det-file", action="store_true", help="keep bench/out/faceaudit_det_*.parquet")
    ap.add_argument(
        "--stream-first",
        action="store_true",
        help="with --det-stream: stream the DET right after the counted steps, before the in-memory "
        "det_curve (the pipeline as `audit --det-out` runs it: the in-memory curve is never built)",
    )
    ap.add_argument("--src", help="faceaudit's source folder for the worker (default: this tree's src/), "
                    "e.g. an exported older commit for a before/after in one session")
    ap.add_argument("--label", default="", help="appended to the output files' tag (e.g. before, after)")
    # worker mode (internal)
    ap.add_argument("--worker", choices=IMPLS)
    ap.add_argument("--gen")
    ap.add_argument("--imp")
    ap.add_argument("--result")
    ap.add_argument("--tag")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    n_imp, n_gen = int(args.n_impostor), int(args.n_genuine)
    tag = f"g{_fmt_n(n_gen)}_i{_fmt_n(n_imp)}_s{args.seed}" + (f"_{args.label}" if args.label else "")
    args.tag = tag
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = [x for x in only if x not in IMPLS]
    if bad:
        raise SystemExit(f"unknown implementation(s) {bad}; choose from {IMPLS}")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        gpath, ipath = generate(n_gen, n_imp, args.seed, progress)
        res: dict[str, dict] = {}
        for impl in IMPLS:
            path = OUT / f"result_{impl}_{tag}.json"
            if impl in only:
                res[impl] = run_worker(impl, gpath, ipath, tag, args, progress)
            elif path.exists():
                res[impl] = json.loads(path.read_text())
                res[impl]["reused"] = True
                console.print(f"[dim]reusing {path.name} (ran at {res[impl].get('ran_at')})[/dim]")
    input_mb = (n_imp + n_gen) * 8 / 2**20

    table = Table(
        title=f"{n_gen:,} mated + {n_imp:,} non-mated float64 scores "
        f"(input array {input_mb:,.0f} MiB, counted in every RSS)"
    )
    for c in ("implementation", "step", "wall s", "CPU s", "load 1min", "step peak RSS MiB"):
        table.add_column(c, justify="right" if c != "step" and c != "implementation" else "left")
    for impl, r in res.items():
        for s in r["steps"]:
            mark = "" if s["counted"] else " [dim](not counted)[/dim]"
            peak = f"{s['peak_rss_mb']:,.0f}" if s["peak_rss_mb"] is not None else "?"
            cpu = f"{s['cpu_seconds']:.3f}" if "cpu_seconds" in s else "?"
            load = (
                "/".join(f"{x:.1f}" for x in s["loadavg_1min_before_after"])
                if "loadavg_1min_before_after" in s
                else "?"
            )
            table.add_row(impl, s["step"] + mark, f"{s['seconds']:.3f}", cpu, load, peak)
        tc = r.get("total_cpu_seconds")
        table.add_row(
            f"[bold]{impl}[/bold]",
            "[bold]total (counted steps)[/bold]",
            f"[bold]{r['total_seconds']:.2f}[/bold]",
            "?" if tc is None else f"[bold]{tc:.2f}[/bold]",
            "",
            f"[bold]{peak_mb(r):,.0f} ({peak_mb(r) / input_mb:.2f}x input)[/bold]",
            end_section=True,
        )
    console.print(table)

    summary = {}
    for impl, r in res.items():
        summary[impl] = {
            "total_seconds": r["total_seconds"],
            "total_cpu_seconds": r.get("total_cpu_seconds"),
            "peak_rss_mb": peak_mb(r),
            "peak_over_input": peak_mb(r) / input_mb,
            "rss_after_imports_mb": r["rss_after_imports_mb"],
        }
    if "faceaudit" in res and any(x["step"] == DET_STREAM_STEP for x in res["faceaudit"]["steps"]):
        summary["faceaudit_full_det"] = det_variants(res["faceaudit"], input_mb)
    if "faceaudit" in res:
        fa_t = res["faceaudit"]["total_seconds"]
        for other in ("bob", "sklearn"):
            if other in res:
                summary[f"{other}_total_over_faceaudit_total"] = res[other]["total_seconds"] / fa_t
                if "total_cpu_seconds" in res[other] and "total_cpu_seconds" in res["faceaudit"]:
                    summary[f"{other}_cpu_over_faceaudit_cpu"] = (
                        res[other]["total_cpu_seconds"] / res["faceaudit"]["total_cpu_seconds"]
                    )
    checks = agreement(res)
    ct = Table(title="agreement (tolerance 1e-12)")
    for c in ("check", "faceaudit", "other", "|diff|", "exact", "ok"):
        ct.add_column(c)
    for c in checks:
        ct.add_row(
            c["check"],
            f"{c['faceaudit']!r:.20}",
            f"{c['other']!r:.20}",
            f"{c['abs_diff']:.3g}",
            str(c["exact"]),
            "info" if c.get("info") else "[green]ok[/green]" if c["ok"] else "[red]MISMATCH[/red]",
        )
    console.print(ct)
    for k, v in summary.items():
        console.print(f"{k}: {v}")
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "git": git_state(),
        "faceaudit_src": str(args.src or ROOT / "src"),
        "n_genuine": n_gen,
        "n_impostor": n_imp,
        "seed": args.seed,
        "fmr_targets": TARGETS,
        "input_mib": input_mb,
        "input_counted_in_rss": True,
        "results": res,
        "summary": summary,
        "agreement": checks,
        "all_agree": all(c["ok"] for c in checks if not c.get("info")),
    }
    out = OUT / f"bench_measures_{tag}.json"
    out.write_text(json.dumps(doc, indent=1, default=float))
    console.print(f"wrote {out.relative_to(ROOT)}")


def git_state() -> dict:
    """The commit measured, and which files under src/ differ from it (others edit concurrently)."""
    import subprocess

    def git(*a):
        r = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
        return r.stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "src_dirty": git("status", "--short", "--", "src").splitlines()}


def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemTotal"))
    except OSError:
        mem = -1
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total_gib": mem / 2**20,
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    main()
