"""Likelihood ratios on LFW: validation figures per sex and race, and fit/evaluate time next to lir's.

    .venv/bin/python bench/bench_evidence.py                       # sface and dlib, sex and race
    .venv/bin/python bench/bench_evidence.py --models sface --bootstrap 20 --race-bootstrap 0   # quick

What it does, per bundled embedding set (demo_data/lfw_{model}.parquet, all 13,233 LFW images):

1. compares every pair once (87.5 million non-mated, 242,257 mated) into ScoreDistributions, exactly as
   ``faceaudit demo`` does (cosine on normalised embeddings; non-mated as per-cell histograms + exact tail);
2. reads them as weighted calibration points (faceaudit.evidence.points) grouped by sex, and by race;
3. **timing, one run, same data for both tools**: the steps "fit logistic regression, LRs of every
   calibration pair, ELUB bounds, Cllr, Cllr_min (PAV)" by faceaudit on the full 87.5M-pair weighted
   representation, by faceaudit on an expanded sample (every mated pair + ``--lir-sample`` non-mated pairs
   drawn in proportion to the weights, one row per pair), and by lir 1.3.1 (tests/reference/.venv-lir, its
   LogitCalibrator with sklearn's default L2 C=1, elub, cllr, cllr_min) on that same sample. lir takes one
   row per pair and no weights, so it cannot take the 87.5M pairs here; the sample is the documented
   stand-in, and the ratio is measured on it;
4. validation (faceaudit.evidence.evaluate): logistic regression, subject-disjoint 5-fold cross-validation,
   subject-bootstrap intervals: Cllr, Cllr_min, Cllr_cal, devPAV, misleading-evidence rates overall and
   per group, each group's own system against the pooled one, misleading evidence per pair of groups;
5. writes bench/out/evidence_bench.json and bench/out/evidence_bench.md (pasted into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.compare import compare_embeddings  # noqa: E402
from faceaudit.demo import DEMO_DATA, TARGETS, load_demo_embeddings  # noqa: E402
from faceaudit.evidence import metrics as m  # noqa: E402
from faceaudit.evidence.document import evidence_document  # noqa: E402
from faceaudit.evidence.evaluate import evaluate  # noqa: E402
from faceaudit.evidence.fit import fit_system  # noqa: E402
from faceaudit.evidence.points import calibration_points  # noqa: E402

LIR_SCRIPT = r"""
import json, sys, time
import numpy as np
from lir.algorithms.bayeserror import elub
from lir.algorithms.logistic_regression import LogitCalibrator
from lir.data.models import LLRData
from lir.metrics import cllr, cllr_min
d = np.load(sys.argv[1])
x, y = d["score"], d["mated"].astype(float)
t0 = time.perf_counter()
cal = LogitCalibrator()
cal.fit(x, y)
llr = cal.transform(x)
lo, hi = elub(llr.copy(), y)
c = cllr(LLRData(features=llr, labels=y))
cmin = cllr_min(LLRData(features=llr, labels=y))
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "cllr": c, "cllr_min": cmin, "elub": [lo, hi]}))
"""


def fa_steps(points, weight=None) -> dict:
    """faceaudit's version of the timed steps (weighted when the points are)."""
    t0 = time.perf_counter()
    system = fit_system(points, "logistic", weight)  # fit + training LRs + ELUB
    llr = system.raw_log10_lr(points.score)
    w = points.weight if weight is None else weight
    c, cmin = m.cllr(llr, points.mated, w), m.cllr_min(llr, points.mated, w)
    return {"seconds": time.perf_counter() - t0, "cllr": c, "cllr_min": cmin,
            "elub": [system.lower, system.upper]}


def expanded_sample(points, n_nonmated: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    nm = np.flatnonzero(~points.mated)
    counts = rng.multinomial(n_nonmated, points.weight[nm] / points.weight[nm].sum())
    mt = np.flatnonzero(points.mated)
    score = np.concatenate([np.repeat(points.score[mt], points.weight[mt].astype(int)),
                            np.repeat(points.score[nm], counts)])
    mated = np.r_[np.ones(int(points.weight[mt].sum()), bool), np.zeros(n_nonmated, bool)]
    return {"score": score, "mated": mated}


def timing(points, n_sample: int, lir_python: Path, seed: int) -> dict:
    from dataclasses import replace

    out = {"faceaudit_full": fa_steps(points)}
    sample = expanded_sample(points, n_sample, seed)
    n = sample["score"].size
    flat = replace(points.subset(np.zeros(points.score.size, bool)), score=sample["score"],
                   weight=np.ones(n), mated=sample["mated"], bulk_cell=np.full(n, -1, np.intp),
                   subject_a=np.zeros(n, np.intp), subject_b=np.zeros(n, np.intp),
                   group_a=np.zeros(n, np.intp), group_b=np.zeros(n, np.intp))
    out["faceaudit_sample"] = fa_steps(flat)
    out["sample_rows"] = int(n)
    if lir_python.exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sample.npz"
            np.savez(path, **sample)
            proc = subprocess.run([str(lir_python), "-c", LIR_SCRIPT, str(path)], capture_output=True,
                                  text=True, check=False)
        if proc.returncode == 0:
            out["lir_sample"] = json.loads(proc.stdout.strip().splitlines()[-1])
            lir_s = out["lir_sample"]["seconds"]
            out["ratio_lir_over_faceaudit_sample"] = lir_s / out["faceaudit_sample"]["seconds"]
            out["ratio_lir_sample_over_faceaudit_full"] = (out["lir_sample"]["seconds"]
                                                          / out["faceaudit_full"]["seconds"])
        else:
            out["lir_error"] = f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    else:
        out["lir_error"] = f"{lir_python} not found: run bash tests/reference/make_lir_venv.sh"
    return out


def run_model(model: str, args) -> dict:
    t0 = time.perf_counter()
    emb, samples, meta, failed = load_demo_embeddings(DEMO_DATA / f"lfw_{model}.parquet")
    dist = compare_embeddings(emb, samples, backend="numpy", fmr_targets=TARGETS, normalize=True)
    res = {"model": model, "compare_seconds": time.perf_counter() - t0, "n_mated": dist.n_mated,
           "n_nonmated": dist.n_nonmated, "n_exact_nonmated": int(dist.tail_score.size)}
    for grouping, boot in ((("sex",), args.bootstrap), (("race",), args.race_bootstrap)):
        if grouping == ("race",) and boot <= 0:
            continue
        t = time.perf_counter()
        points = calibration_points(dist, grouping)
        entry = {"points_seconds": time.perf_counter() - t, "n_points": int(points.score.size)}
        if grouping == ("sex",):
            entry["timing"] = timing(points, args.lir_sample, Path(args.lir_python), args.seed)
            if args.timing_only:
                print(json.dumps(entry["timing"]), flush=True)
                return res
        t = time.perf_counter()
        r = evaluate(points, "logistic", folds=args.folds, bootstrap=boot, seed=args.seed)
        entry["evaluate_seconds"] = time.perf_counter() - t
        entry["document"] = evidence_document(r)
        res[grouping[0]] = entry
        print(f"{model} {grouping}: evaluate {entry['evaluate_seconds']:.0f} s", flush=True)
    return res


def _e(e: dict | None, fmt: str = ".3g") -> str:
    if not e or e.get("value") is None:
        return "n/a"
    if e.get("low") is None:
        return f"{e['value']:{fmt}}"
    return f"{e['value']:{fmt}} [{e['low']:{fmt}}, {e['high']:{fmt}}]"


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"## Likelihood ratios on LFW (bench/bench_evidence.py, {meta['date']})", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`. Logistic regression, "
             f"{meta['folds']}-fold subject-disjoint cross-validation, subject bootstrap "
             f"({meta['bootstrap']} replicates by sex, {meta['race_bootstrap']} by race), 95% percentile "
             "intervals in brackets. Rates are shares of pairs.", ""]
    for r in results:
        lines.append(f"### {r['model']}: {r['n_mated']:,} mated, {r['n_nonmated']:,} non-mated pairs "
                     f"({r['n_exact_nonmated']:,} exact, the rest by histogram bin)")
        sex = r.get("sex")
        if sex and "timing" in sex:
            t = sex["timing"]
            lines += ["", "Fit + LRs + ELUB + Cllr + Cllr_min, one run:", "",
                      "| run | rows | seconds | Cllr | Cllr_min | ELUB log10 |", "|---|---|---|---|---|---|"]
            full = t["faceaudit_full"]
            lines.append(f"| faceaudit, full 87.5M pairs (weighted points) | {sex['n_points']:,} points | "
                         f"{full['seconds']:.2f} | {full['cllr']:.5f} | {full['cllr_min']:.5f} | "
                         f"{full['elub'][0]:.2f}, {full['elub'][1]:.2f} |")
            for key, name in (("faceaudit_sample", "faceaudit, sample"), ("lir_sample", "lir 1.3.1, sample")):
                if key in t:
                    s = t[key]
                    lines.append(f"| {name} | {t['sample_rows']:,} | {s['seconds']:.2f} | {s['cllr']:.5f} | "
                                 f"{s['cllr_min']:.5f} | {s['elub'][0]:.2f}, {s['elub'][1]:.2f} |")
            if "ratio_lir_over_faceaudit_sample" in t:
                ratio = t["ratio_lir_over_faceaudit_sample"]
                lines += ["", f"lir / faceaudit on the same sample: **{ratio:.1f}x**; "
                          f"lir on the sample / faceaudit on all 87.5M pairs: "
                          f"**{t['ratio_lir_sample_over_faceaudit_full']:.1f}x**."]
            elif "lir_error" in t:
                lines += ["", f"lir not run: {t['lir_error'][:300]}"]
        for grouping in ("sex", "race"):
            entry = r.get(grouping)
            if not entry:
                continue
            doc = entry["document"]
            v = doc["validation"]["measures"]
            lines += ["", f"By {grouping} (evaluate: {entry['evaluate_seconds']:.0f} s):", "",
                      "| pairs | system | Cllr | Cllr_min | Cllr_cal | devPAV | same person, LR<1 | "
                      "different people, LR>1 |", "|---|---|---|---|---|---|---|---|"]
            lines.append(f"| all | pooled | {_e(v['cllr'])} | {_e(v['cllr_min'])} | {_e(v['cllr_cal'])} | "
                         f"{_e(v['devpav'])} | {_e(v['mated_below_1'])} | {_e(v['nonmated_above_1'])} |")
            for g in doc["groups"]:
                for sysname in ("pooled", "own"):
                    gv = g[sysname]["measures"]
                    lines.append(f"| within {g['group']} | {sysname} | {_e(gv['cllr'])} | "
                                 f"{_e(gv['cllr_min'])} | "
                                 f"{_e(gv['cllr_cal'])} | {_e(gv['devpav'])} | {_e(gv['mated_below_1'])} | "
                                 f"{_e(gv['nonmated_above_1'])} |")
            lines += ["", "Same score, different LR? (group's own system minus pooled, log10, over the "
                      "scores where the pooled LR lies within its ELUB bounds: lowest, middle, highest):", ""]
            for g in doc["groups"]:
                d = g["difference"]
                picks = [0, len(d) // 2, len(d) - 1]
                at = "; ".join(f"score {g['scores'][i]:.3f}: {_e(d[i])}" for i in picks)
                lines.append(f"- {g['group']}: largest |difference| {_e(g['max_abs_difference'])}; {at}")
            big = [p for p in doc["pairs"] if p["n_nonmated"] >= 100_000]  # the rest: bench/out JSON
            lines += ["", "Different people, LR > 1, per pair of groups with >= 100,000 pairs (pooled): "
                      + "; ".join(f"{p['group_a']} x {p['group_b']} {_e(p['nonmated_above_1'])}" for p in big)
                      + "."]
            flags = [f["message"] for f in doc["flags"] if f["code"] != "bulk_binned"]
            if flags:
                lines += ["", "Flags: " + " ".join(flags)]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["sface", "dlib"])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--race-bootstrap", type=int, default=50)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lir-sample", type=int, default=1_000_000)
    ap.add_argument("--lir-python", default=str(ROOT / "tests/reference/.venv-lir/bin/python"))
    ap.add_argument("--out", default=str(ROOT / "bench/out"))
    ap.add_argument("--timing-only", action="store_true", help="only the fit/evaluate timing against lir")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
            "command": "python bench/bench_evidence.py " + " ".join(sys.argv[1:]), "folds": args.folds,
            "bootstrap": args.bootstrap, "race_bootstrap": args.race_bootstrap}
    results = [run_model(model, args) for model in args.models]
    if args.timing_only:
        return
    (out / "evidence_bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = markdown(results, meta)
    (out / "evidence_bench.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
