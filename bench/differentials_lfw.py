"""Differentials with intervals on the bundled LFW demo embeddings (issue 12).

    PYTHONPATH=src .venv/bin/python bench/differentials_lfw.py [--replicates 1000]
        [--out bench/differentials_lfw.json]

For SFace and dlib: all pairs compared as the demo does (``compare_embeddings``, numpy, normalised),
then ``audit`` at FMR 1e-3, 1e-4, 1e-5 by sex, race and sex x race: its differentials with
subject-bootstrap intervals (the audit's own replicates, stratified by finest group, seed 0), the
minimum-data rule at its defaults (FMR: 3/n below the target; FNMR: 3/n below the overall FNMR at the
threshold; at least 10 subjects), the comparison female:male, the cards and the headline. Writes the
JSON and prints Markdown tables for bench/RESULTS.md.
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
from faceaudit.compare import compare_embeddings  # noqa: E402
from faceaudit.demo import DEMO_DATA, TARGETS, load_demo_embeddings  # noqa: E402
from faceaudit.report.document import audit_headline, audit_json  # noqa: E402

GROUPINGS = [("sex",), ("race",), ("sex", "race")]
CARDS = [(("sex",), ()), (("sex",), ("race",)), (("race",), ()), (("race",), ("sex",))]


def run_model(model: str, replicates: int, seed: int) -> dict:
    emb, samples, meta, _ = load_demo_embeddings(DEMO_DATA / f"lfw_{model}.parquet")
    t0 = time.perf_counter()
    dist = compare_embeddings(emb, samples, backend="numpy", fmr_targets=TARGETS, normalize=True,
                              progress=False)
    provenance = json.loads(meta.get("faceaudit", "{}"))
    dist.meta["labels"] = provenance.get("labels")
    t1 = time.perf_counter()
    # the audit's differentials: its own subject bootstrap, the minimum-data rule at its defaults
    res = audit(dist, fmr_targets=TARGETS, groupings=GROUPINGS, bootstrap=replicates, seed=seed,
                compare=["sex=female:male"])
    doc = audit_json(res)
    doc = json.loads(json.dumps(doc, default=float))
    head = audit_headline(doc)
    t2 = time.perf_counter()
    at_1e4 = [c for c in doc["cards"] if c["fmr_target"] == 1e-4
              and (c["grouping"], tuple(c["pairing"])) in {(" x ".join(g), p) for g, p in CARDS}]
    overall = {str(p["fmr_target"]): {"threshold": p["threshold"], "fmr": p["fmr"]["value"],
                                       "fnmr": p["fnmr"]["value"]}
               for p in doc["overall"]["operating_points"]}
    return {"model": model, "differentials": doc["differentials"], "headline": head, "overall": overall,
            "cards": at_1e4, "seconds": {"compare": t1 - t0, "audit": t2 - t1}}


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
        print(f"\n({run['model']}: compare {run['seconds']['compare']:.1f} s, audit with "
              f"{args.replicates} replicates {run['seconds']['audit']:.1f} s)\n")


if __name__ == "__main__":
    main()
