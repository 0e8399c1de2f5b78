"""Differentials with intervals on the bundled LFW demo embeddings (issue 12).

    PYTHONPATH=src .venv/bin/python bench/differentials_lfw.py [--replicates 1000]
        [--out bench/differentials_lfw.json]

For SFace and dlib: all pairs compared as the demo does (``compare_embeddings``, numpy, normalised),
global thresholds at FMR 1e-3, 1e-4, 1e-5 (``audit``), then per grouping (sex, race, sex x race) the
differentials of :mod:`faceaudit.measures.differentials` with subject-bootstrap intervals
(``bootstrap_weights``, stratified by finest group, seed 0; the replicate rates of
:mod:`faceaudit.measures.replicates`), the minimum-data rule at its defaults (FMR: 3/n below the
target; FNMR: 3/n below the overall FNMR at the threshold; at least 10 subjects), the comparison
female:male, and the headline. Writes the JSON and prints Markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceaudit.audit import audit  # noqa: E402
from faceaudit.build import group_subsets  # noqa: E402
from faceaudit.compare import compare_embeddings  # noqa: E402
from faceaudit.demo import DEMO_DATA, TARGETS, load_demo_embeddings  # noqa: E402
from faceaudit.measures.cards import cross_group_card  # noqa: E402
from faceaudit.measures.differentials import differentials  # noqa: E402
from faceaudit.measures.replicates import group_rates  # noqa: E402
from faceaudit.report.headline import build_headline  # noqa: E402
from faceaudit.stats.intervals import bootstrap_weights  # noqa: E402

GROUPINGS = [("sex",), ("race",), ("sex", "race")]
CARDS = [(("sex",), ()), (("sex",), ("race",)), (("race",), ()), (("race",), ("sex",))]


def _check_against_audit(res, grouping: str, target: float, fmr, fnmr) -> None:
    """The point counts the differentials use must be the audit's own at the global threshold."""
    by_name = {e["group"]: e for e in res.by_group[grouping]}
    for f, n in zip(fmr, fnmr):
        at = next(a for a in by_name[f.group]["at_global_threshold"] if a["fmr_target"] == target)
        got = (f.errors, f.trials, n.errors, n.trials)
        want = (at["fmr"]["count"], at["fmr"]["total"], at["fnmr"]["count"], at["fnmr"]["total"])
        if got != want:
            raise AssertionError(f"{grouping} {f.group} at {target}: {got} != audit {want}")


def run_model(model: str, replicates: int, seed: int) -> dict:
    emb, samples, meta, _ = load_demo_embeddings(DEMO_DATA / f"lfw_{model}.parquet")
    t0 = time.perf_counter()
    dist = compare_embeddings(emb, samples, backend="numpy", fmr_targets=TARGETS, normalize=True,
                              progress=False)
    res = audit(dist, fmr_targets=TARGETS, groupings=GROUPINGS, bootstrap=0)
    t1 = time.perf_counter()
    weights = bootstrap_weights(samples.group_of_subject, replicates, seed)
    subsets = group_subsets(samples, GROUPINGS)
    out = {}
    for p in res.overall["operating_points"]:
        t, thr = p["fmr_target"], p["threshold"]
        overall_fnmr = p["fnmr"]["value"]
        for grouping in GROUPINGS:
            name = " x ".join(grouping)
            groups = {" | ".join(k[1]): v for k, v in subsets.items() if k[0] == grouping}
            fmr, fnmr = group_rates(dist, weights, groups, thr)
            _check_against_audit(res, name, t, fmr, fnmr)
            compare = [("female", "male")] if grouping == ("sex",) else []
            d = differentials(name, fmr, fnmr, threshold=thr, fmr_target=t, fmr_resolution=t,
                              fnmr_resolution=overall_fnmr, compare=compare)
            out.setdefault(name, []).append(d.as_dict())
    at_1e4 = next(p for p in res.overall["operating_points"] if p["fmr_target"] == 1e-4)
    cards = [cross_group_card(dist, at_1e4["threshold"], grouping, pairing, fmr_target=1e-4).as_dict()
             for grouping, pairing in CARDS]
    t2 = time.perf_counter()
    labels = json.loads(meta["faceaudit"]).get("labels") if "faceaudit" in meta else None
    head = build_headline(out, labels=labels)
    overall = {str(p["fmr_target"]): {"threshold": p["threshold"], "fmr": p["fmr"]["value"],
                                       "fnmr": p["fnmr"]["value"]} for p in res.overall["operating_points"]}
    return {"model": model, "differentials": out, "headline": head, "overall": overall, "cards": cards,
        "seconds": {"compare_and_audit": t1 - t0, "differentials": t2 - t1}}


def _r(r: dict | None) -> str:
    if not r:
        return "-"
    if r["value"] is None:
        return "undefined"
    pre = {"lower_bound": ">= ", "upper_bound": "<= "}.get(r["kind"], "")
    if r["low"] is None:
        return f"{pre}{r['value']:.2f}" + (" [interval open]" if r["replicates"] else "")
    hi = "open" if r["high_open"] else f"{r['high']:.2f}"
    return f"{pre}{r['value']:.2f} [{r['low']:.2f}, {hi}]"


def markdown(run: dict) -> str:
    lines = [f"### {run['model']}", "", "| grouping | FMR target | threshold | FMR groups in "
             "| FMR highest/lowest | FMR max/geomean | FNMR highest/lowest | FDR | GARBE | left out (FMR) |",
             "|---" * 10 + "|"]
    est = "{e[value]:.4f} [{e[low]:.4f}, {e[high]:.4f}]"
    for name, entries in run["differentials"].items():
        for e in entries:
            f = e["fmr"]
            hol = f["highest_over_lowest"]
            pair = f"{hol['numerator']}/{hol['denominator']} {_r(hol)}" if hol else "-"
            n = e["fnmr"]["highest_over_lowest"]
            npair = f"{n['numerator']}/{n['denominator']} {_r(n)}" if n else "-"
            fdr = est.format(e=e["fdr"]) if e["fdr"] else "-"
            gb = est.format(e=e["garbe"]) if e["garbe"] else "-"
            left = ", ".join(f"{x['group']} ({x['reason']}: {x['subjects']} subj, {x['trials']:,} cmp)"
                             for x in f["left_out"])
            lines.append(f"| {name} | {e['fmr_target']:g} | {e['threshold']:.4f} | {', '.join(f['groups'])} "
                         f"| {pair} | {_r(f['max_geomean'])} | {npair} | {fdr} | {gb} | {left} |")
    for name, entries in run["differentials"].items():
        for e in entries:
            for c in e["comparisons"]:
                lines.append(f"\n{name} {c['numerator']}/{c['denominator']} at FMR {e['fmr_target']:g}: "
                             f"FMR {_r(c['fmr'])}, FNMR {_r(c['fnmr'])}")
    lines += ["", f"Headline: {run['headline']['sentence']}", ""]
    lines += [f"- {c}" for c in run["headline"]["caveats"]]
    for card in run["cards"]:
        refs = card["reference_groups"]
        lines += ["", f"Card: FMR by {card['grouping']} (rows probe, columns reference), "
                  f"{card['pairing_name']}, FMR target {card['fmr_target']:g}:", ""]
        lines += ["| | " + " | ".join(refs) + " |", "|---" * (1 + len(refs)) + "|"]
        for g, row in zip(card["probe_groups"], card["fmr"]):
            lines.append(f"| {g} | " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _cell(c: dict) -> str:
    if not c["total"]:
        return "-"
    return f"{c['count']}/{c['total']:,} = {c['value']:.2e}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["sface", "dlib"])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "differentials_lfw.json")
    args = ap.parse_args()
    runs = [run_model(m, args.replicates, args.seed) for m in args.models]
    doc = {"machine": platform.platform(), "replicates": args.replicates, "seed": args.seed,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}
    args.out.write_text(json.dumps(doc, indent=1))
    for run in runs:
        print(markdown(run))
        print(f"\n({run['model']}: compare+audit {run['seconds']['compare_and_audit']:.1f} s, differentials "
              f"{run['seconds']['differentials']:.1f} s)\n")


if __name__ == "__main__":
    main()
