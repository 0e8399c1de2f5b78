"""Golden values for faceaudit.evidence from lir 1.3.1 (and llreval 0.0.3 when installed).

Run in the reference venv (never in the project's .venv):

    bash tests/reference/make_lir_venv.sh
    tests/reference/.venv-lir/bin/python tests/reference/gen_golden_lir.py   # writes tests/golden/lir.json

Each case is a seeded set of log10 likelihood ratios with labels (1 = same person, 0 = different people).
For each, lir computes Cllr, Cllr_min (its IsotonicCalibrator, i.e. PAV), Cllr_cal, devPAV, the
PAV-transformed log10 LRs and the ELUB bounds (Vergeer et al. 2016; add_misleading=1, step 0.01);
llreval, from natural-log LRs, computes Cllr and minCllr by its own PAV.
Infinite values are written as the strings "inf" / "-inf".
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from lir.algorithms.bayeserror import elub
from lir.algorithms.isotonic_regression import IsotonicCalibrator
from lir.data.models import LLRData
from lir.metrics import cllr, cllr_cal, cllr_min
from lir.metrics.devpav import devpav

try:
    from llreval.cllr import cllr as llreval_cllr
    from llreval.cllr import min_cllr as llreval_min_cllr
    from llreval.pav_rocch import PAV as LlrevalPAV
except ImportError:  # optional
    LlrevalPAV = None


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    rng = np.random.default_rng(1)
    out["gaussian_calibrated"] = (np.r_[rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 700)], None)
    rng = np.random.default_rng(2)
    out["gaussian_overconfident"] = (np.r_[rng.normal(2.5, 2.0, 200), rng.normal(-2.5, 2.0, 800)], None)
    rng = np.random.default_rng(3)
    out["ties_rounded"] = (np.round(np.r_[rng.normal(0.8, 1.0, 150), rng.normal(-0.6, 1.0, 350)], 1), None)
    rng = np.random.default_rng(4)
    out["unbalanced_heavy_tail"] = (np.r_[rng.standard_t(3, 40) + 1.5, rng.standard_t(3, 3000) - 1.0], None)
    rng = np.random.default_rng(5)
    out["separated"] = (np.r_[rng.uniform(1, 3, 60), rng.uniform(-3, 0.5, 90)], None)
    rng = np.random.default_rng(6)
    out["shifted_underconfident"] = (np.r_[rng.normal(0.7, 0.4, 500), rng.normal(0.1, 0.4, 500)], None)
    sizes = {
        "gaussian_calibrated": 300,
        "gaussian_overconfident": 200,
        "ties_rounded": 150,
        "unbalanced_heavy_tail": 40,
        "separated": 60,
        "shifted_underconfident": 500,
    }
    for name, (llrs, _) in out.items():
        y = np.zeros(llrs.size)
        y[: sizes[name]] = 1
        out[name] = (llrs, y)
    return out


def enc(x):
    x = np.asarray(x, dtype=float)
    return [v if np.isfinite(v) else ("inf" if v > 0 else ("-inf" if v < 0 else "nan")) for v in x.tolist()]


def one(llrs: np.ndarray, y: np.ndarray) -> dict:
    data = LLRData(features=llrs.copy(), labels=y.copy())
    pav = IsotonicCalibrator().fit_transform(llrs.copy(), y.copy())
    low, high = elub(llrs.copy(), y.copy(), add_misleading=1)  # elub() clips its input in place: a copy
    res = {
        "cllr": cllr(data),
        "cllr_min": cllr_min(data),
        "cllr_cal": cllr_cal(data),
        "devpav": enc([devpav(llrs.copy(), y.copy())])[0],
        "elub_lower_log10": float(low),
        "elub_upper_log10": float(high),
        "pav_log10_lr": enc(pav),
    }
    if LlrevalPAV is not None:
        ln = llrs * np.log(10)
        res["llreval_cllr"] = float(llreval_cllr(ln[y == 1], ln[y == 0]))
        res["llreval_min_cllr"] = float(llreval_min_cllr(LlrevalPAV(ln, y.astype(int))))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "golden" / "lir.json"))
    args = ap.parse_args()
    versions = {}
    for name in ("lir", "llreval", "numpy", "scipy", "scikit-learn"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    doc = {
        "meta": {
            "generated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "versions": versions,
            "command": "tests/reference/.venv-lir/bin/python tests/reference/gen_golden_lir.py",
        },
        "fields": {
            "inputs.log10_lr / inputs.label": "the case's log10 LRs and labels (1 = same person)",
            "cllr, cllr_min, cllr_cal": "lir.metrics, equal class weights",
            "devpav": "lir.metrics.devpav.devpav",
            "elub_lower_log10, elub_upper_log10": "lir.algorithms.bayeserror.elub(add_misleading=1)",
            "pav_log10_lr": (
                "lir IsotonicCalibrator().fit_transform(log10 LRs, labels), per input, in input order"
            ),
            "llreval_cllr, llreval_min_cllr": "llreval 0.0.3 cllr / min_cllr(PAV) on natural-log LRs",
        },
        "cases": {},
    }
    for name, (llrs, y) in cases().items():
        doc["cases"][name] = {
            "inputs": {"log10_lr": llrs.tolist(), "label": y.astype(int).tolist()},
            "lir": one(llrs, y),
        }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}: {len(doc['cases'])} cases; versions {versions}")


if __name__ == "__main__":
    main()
