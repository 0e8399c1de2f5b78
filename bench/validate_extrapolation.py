"""Validate the 1:N tail model: fit on a subset, predict FPIR at the full measured N, compare with exhaustive.

Data: the bundled SFace embeddings of all LFW images (demo_data/lfw_sface.parquet), cosine scores.

Protocol. A random ``fraction`` of the subjects (seeded) forms the subset A. Every sample of A is a
probe; the model is fitted on A alone (each probe against the other samples of A, about
``fraction * 13,233`` references), then predicts each A-probe's FPIR at its full-set size
``n_p`` (every other sample of LFW) and at the size of the disjoint gallery B (all non-A samples).
The exhaustive answers are measured on the full comparison: whether the probe's best non-mated
score over all of LFW (resp. over B) reaches T. Thresholds are those at the full set's FMR levels.

Printed, per threshold: exhaustive FPIR, the model's prediction (probe part + pair part, with a
subject-bootstrap interval that refits the GPD), the GPD-only probe part, the naive N x FMR of the
subset, the homogeneous 1 - (1 - FMR)^N, and the subset's own measured FPIR.

    .venv/bin/python bench/validate_extrapolation.py [--fraction 0.25] [--seed 0] [--engine] [--bootstrap 100]

``--engine`` builds the per-probe data with the real all-pairs engine (compare_embeddings, top_k=50; \
counts at FMR 1e-4 may then be lower bounds)
instead of the brute-force reference rows; both give the same per-probe tails.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from faceaudit.demo import DEMO_DATA, load_demo_embeddings
from faceaudit.measures.identification import (
    PREDICTION_REALISATIONS,
    ProbeTails,
    TailModel,
    fpir_extrapolated,
    partner_shares,
    person_concentration_flag,
    realised_fpir,
)
from faceaudit.scores import SampleIndex
from faceaudit.stats.intervals import bootstrap_weights


def _rows(e: np.ndarray, block: int = 1024):
    for a in range(0, e.shape[0], block):
        idx = np.arange(a, min(e.shape[0], a + block))
        yield idx, e[idx] @ e.T


def _tails(
    e: np.ndarray, samples: SampleIndex, engine: bool, top_k: int = 50, keep_above: float = 0.40
) -> ProbeTails:
    """Per-probe tails: the 50 highest non-mated scores of each probe, or every one >= 0.40 where
    those are more, so every count at the thresholds used (0.43 and up) is exact (the 50 alone left
    18 probes' counts at FMR 1e-4 and 4 at 1e-5 as lower bounds, and those levels ~1.2x too high)."""
    if engine:
        from faceaudit.compare import compare_embeddings

        dist = compare_embeddings(e, samples, backend="numpy", top_k=top_k, progress=False)
        return ProbeTails.from_distributions(dist, max_known=top_k)
    return ProbeTails.from_score_rows(samples, _rows(e), max_known=top_k, keep_above=keep_above)


def _threshold_at_fmr(tails: ProbeTails, fmr: float) -> tuple[float, bool]:
    """Lowest known score whose pooled exceedance (every ordered probe-reference pair) is <= fmr."""
    allowed = int(np.floor(fmr * tails.n_nonmated.sum()))
    s = np.sort(tails.known_score)[::-1]
    t = float(s[allowed]) if allowed < s.size else float(s[-1])
    t = float(np.nextafter(t, np.inf))  # strictly above the (allowed+1)-th score
    _, exact = tails.count_at_least(t)
    return t, bool(exact.all())


_FULL: dict = {}


def _full(engine: bool):
    """The embeddings and the full set's per-probe tails, computed once per process."""
    if engine not in _FULL:
        emb, samples, _, _ = load_demo_embeddings(DEMO_DATA / "lfw_sface.parquet")
        e = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
        t0 = time.perf_counter()
        full = _tails(e, samples, engine)
        _FULL[engine] = (e, samples, full, time.perf_counter() - t0)
    return _FULL[engine]


def validate(
    *,
    fraction: float = 0.25,
    seed: int = 0,
    fmr_levels=(1e-4, 1e-5, 1e-6),
    m: int = 20,
    engine: bool = False,
    bootstrap: int = 0,
) -> list[dict]:
    e, samples, full, full_s = _full(engine)
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    in_a = rng.random(samples.n_subjects) < fraction
    a = np.flatnonzero(in_a[samples.subject_of_sample])
    b = np.flatnonzero(~in_a[samples.subject_of_sample])
    sub_samples = SampleIndex.from_columns(
        samples.sample_ids[a], samples.subject_ids[samples.subject_of_sample[a]]
    )
    sub = _tails(e[a], sub_samples, engine)
    model = TailModel.fitted(sub, m=m)
    top_b = np.concatenate([(e[a[i : i + 2048]] @ e[b].T).max(axis=1) for i in range(0, a.size, 2048)])
    fits, pw = [], None
    if bootstrap:
        W = bootstrap_weights(sub_samples.group_of_subject, bootstrap, seed)
        pw = W[:, sub_samples.subject_of_sample]
        fits = [model.refit(w) for w in pw]
    t2 = time.perf_counter()
    n_full = full.n_nonmated[a].astype(float)
    top_full = full.top_score()[a]
    out = []
    for level in fmr_levels:
        T, exact = _threshold_at_fmr(full, level)
        comp = model.components(T)
        p, g = comp["p"], comp["g"]
        k, _ = sub.count_at_least(T)
        fmr_sub = float(k.sum() / sub.n_nonmated.sum())
        row = {
            "fmr_level_full_set": level,
            "threshold": T,
            "threshold_exact": exact,
            "probes": int(a.size),
            "n_subset_mean": float(sub.n_nonmated.mean()),
            "n_full_mean": float(n_full.mean()),
            "n_disjoint": int(b.size),
            "exhaustive_full": float(np.mean(top_full >= T)),
            "predicted_full": float(fpir_extrapolated(p, n_full).mean()),
            "gpd_only_full": float(fpir_extrapolated(g, n_full).mean()),
            "self_consistency_subset": float(fpir_extrapolated(p, sub.n_nonmated).mean()),
            "naive_full": float(n_full.mean() * fmr_sub),
            "homogeneous_full": float(np.mean(-np.expm1(n_full * np.log1p(-fmr_sub)))),
            "exhaustive_disjoint": float(np.mean(top_b >= T)),
            "predicted_disjoint": float(fpir_extrapolated(p, b.size).mean()),
            "naive_disjoint": float(b.size * fmr_sub),
            "subset_measured": float(np.mean(k > 0)),
            "pair_rate": comp["r"],
            "calibration_scale": comp["scale"],
            "events_in_subset": comp["events"],
            "gpd": model.fit.as_dict(),
        }
        row["effective_events_in_subset"] = model.effective_events(T)
        row["largest_pair_of_people"] = model.pair_concentration(T)
        row["person_flag"] = person_concentration_flag(sub_samples.subject_of_sample, "fitting set")
        if fits:
            # subject bootstrap alone (GPD refitted on each replicate) ...
            P = model.exceedance_replicates(T, fits, pw)
            reps = (pw * fpir_extrapolated(P, n_full[None, :])).sum(axis=1) / pw.sum(axis=1)
            row["predicted_full_interval_bootstrap_only"] = [
                float(x) for x in np.quantile(reps, [0.025, 0.975])
            ]
            # ... and with the exact-Poisson draw of the count of scores >= T (what faceaudit reports)
            cf = model.count_factors(T, len(fits), seed)
            P = model.exceedance_replicates(T, fits, pw, count_factors=cf)
            reps = (pw * fpir_extrapolated(P, n_full[None, :])).sum(axis=1) / pw.sum(axis=1)
            row["predicted_full_interval"] = [float(x) for x in np.quantile(reps, [0.025, 0.975])]
            repb = (pw * fpir_extrapolated(P, float(b.size))).sum(axis=1) / pw.sum(axis=1)
            row["predicted_disjoint_interval"] = [float(x) for x in np.quantile(repb, [0.025, 0.975])]
            # ... and the prediction of what this one gallery does to these probes: per subject, a
            # draw of which people's lookalikes the gallery holds (shares measured on the subset,
            # by subject size)
            subj_a = sub_samples.subject_of_sample
            ps = partner_shares(sub, T)
            kw = {"share_sizes": ps["sizes"], "realisations": PREDICTION_REALISATIONS}
            real = realised_fpir(fpir_extrapolated(P, n_full[None, :]), subj_a, ps["shares"], pw, seed, **kw)
            row["partners"] = {
                "threshold_used": ps["threshold_used"],
                "pairs_of_people": ps["pairs_of_people"],
                "mean_share": float(ps["shares"].mean()) if ps["shares"].size else None,
                "max_share": float(ps["shares"].max()) if ps["shares"].size else None,
            }
            row["predicted_full_prediction_interval"] = [float(x) for x in np.quantile(real, [0.025, 0.975])]
            realb = realised_fpir(fpir_extrapolated(P, float(b.size)), subj_a, ps["shares"], pw, seed, **kw)
            row["predicted_disjoint_prediction_interval"] = [
                float(x) for x in np.quantile(realb, [0.025, 0.975])
            ]
            # as faceaudit reports them: where fewer than 10 scores reach T, the high end is raised to
            # the rule-of-three bound on unobserved pair-level matches
            r3 = model.unobserved_bound(T, p)
            if r3 is not None:
                row["rule_of_three"] = {
                    "full": float(fpir_extrapolated(r3, n_full).mean()),
                    "disjoint": float(fpir_extrapolated(r3, float(b.size)).mean()),
                }
                for key, where in (
                    ("predicted_full_interval", "full"),
                    ("predicted_full_prediction_interval", "full"),
                    ("predicted_disjoint_interval", "disjoint"),
                    ("predicted_disjoint_prediction_interval", "disjoint"),
                ):
                    row[key][1] = max(row[key][1], row["rule_of_three"][where])
        out.append(row)
    timing = {"full_tails_s": full_s, "subset_and_fit_s": t2 - t1}
    for r in out:
        r["timing"] = timing
    return out


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument(
        "--seed", default="0", help="a seed, a list 0,1,2 or a range 0-9 (a coverage summary follows)"
    )
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--engine", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    def ci(x):
        return f"{x[0]:.4f}-{x[1]:.4f}" if x else "-"

    def cov(x, truth):
        return ("yes" if x[0] <= truth <= x[1] else "**no**") if x else "-"

    all_rows = []
    print(
        "| seed | FMR (full set) | T | scores >= T in subset (pairs of people; largest pair's share) | "
        "exhaustive FPIR @ full N | "
        "predicted | 95% CI bootstrap + Poisson count | covers | "
        "95% prediction (+ gallery realisation; mean/max lookalike share) | covers | "
        "naive N*FMR | exhaustive @ B | predicted @ B | CI @ B covers | prediction @ B | covers |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in _seeds(args.seed):
        rows = validate(
            fraction=args.fraction, seed=seed, m=args.m, engine=args.engine, bootstrap=args.bootstrap
        )
        for r in rows:
            r["seed"] = seed
            c, pi = r.get("predicted_full_interval"), r.get("predicted_full_prediction_interval")
            cb, pib = r.get("predicted_disjoint_interval"), r.get("predicted_disjoint_prediction_interval")
            icc = (
                f", f {r['partners']['mean_share']:.2f}/{r['partners']['max_share']:.2f}"
                if r.get("partners", {}).get("mean_share") is not None
                else ""
            )
            print(
                f"| {seed} | {r['fmr_level_full_set']:.0e} | {r['threshold']:.4f} | {r['events_in_subset']} "
                f"({r['effective_events_in_subset']}; "
                f"top pair {100 * r['largest_pair_of_people']['share']:.0f}%"
                f"{'; PERSON FLAG' if r.get('person_flag') else ''}) | "
                f"{r['exhaustive_full']:.4f} | {r['predicted_full']:.4f} | "
                f"{ci(c)} | {cov(c, r['exhaustive_full'])} | {ci(pi)}{icc} | "
                f"{cov(pi, r['exhaustive_full'])} | "
                f"{r['naive_full']:.4f} | {r['exhaustive_disjoint']:.4f} | {r['predicted_disjoint']:.4f} | "
                f"{cov(cb, r['exhaustive_disjoint'])} | {ci(pib)} | {cov(pib, r['exhaustive_disjoint'])} |",
                flush=True,
            )
        all_rows.extend(rows)
    print(
        f"\nfraction {args.fraction}, m {args.m}, engine {args.engine}, bootstrap {args.bootstrap}; "
        f"timing of the last seed {all_rows[-1]['timing']}"
    )
    if args.bootstrap:
        print(
            "| FMR (full set) | seeds | CI covers @ full N | prediction covers @ full N | CI covers @ B | "
            "prediction covers @ B | median |predicted/exhaustive - 1| @ full N | same, naive |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for level in sorted({r["fmr_level_full_set"] for r in all_rows}, reverse=True):
            rs = [r for r in all_rows if r["fmr_level_full_set"] == level]

            def n_cov(key, truth, rs=rs):
                return sum(r[key][0] <= r[truth] <= r[key][1] for r in rs)

            err = np.median(
                [abs(r["predicted_full"] / r["exhaustive_full"] - 1) for r in rs if r["exhaustive_full"] > 0]
            )
            nerr = np.median(
                [abs(r["naive_full"] / r["exhaustive_full"] - 1) for r in rs if r["exhaustive_full"] > 0]
            )
            print(
                f"| {level:.0e} | {len(rs)} | {n_cov('predicted_full_interval', 'exhaustive_full')} | "
                f"{n_cov('predicted_full_prediction_interval', 'exhaustive_full')} | "
                f"{n_cov('predicted_disjoint_interval', 'exhaustive_disjoint')} | "
                f"{n_cov('predicted_disjoint_prediction_interval', 'exhaustive_disjoint')} | "
                f"{err:.0%} | {nerr:.0%} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_rows, f, indent=1)


if __name__ == "__main__":
    main()
