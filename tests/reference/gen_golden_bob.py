#!/usr/bin/env python
"""Generate tests/golden/bob_measure.json from bob.measure 6.1.1.

Run with the *bob* virtual environment's interpreter, never the project's:

    bash tests/reference/make_bob_venv.sh
    tests/reference/.venv-bob/bin/python tests/reference/gen_golden_bob.py

Options / environment:
    --peers DIR   (or FAUDIT_BOB_PEERS) directory holding bob.measure's test data;
                  default: <repo>/../shared/data/peers/bob.measure-6.1.1-tests
    --out FILE    output path; default: <repo>/tests/golden/bob_measure.json

The script is deterministic apart from meta.generated_utc: every synthetic case
is drawn from its own numpy.random.RandomState(seed) and the seed is recorded.
It also re-checks the assertions that bob.measure's own test suite makes on the
peer data (see that directory's README.md) and records the results under
"self_checks"; it exits non-zero if any of them fails.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
import traceback
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import bob.measure as bm
import h5py
import numpy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_PEERS = REPO.parent / "shared" / "data" / "peers" / "bob.measure-6.1.1-tests"
DEFAULT_OUT = REPO / "tests" / "golden" / "bob_measure.json"
# Paths to peer files are recorded relative to the shared/ root, which the
# project's tests find at <repo>/../shared.
PEERS_REL = "data/peers/bob.measure-6.1.1-tests"

TARGETS = [0.0, 1e-3, 0.01, 0.05, 0.1, 0.11, 0.2, 0.25, 0.5, 0.91, 0.99, 1.0]
ROC_FOR_FAR_LIST = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0]
N_POINTS = 100


# --------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------


def enc(x):
    """Convert numpy / non-finite values into JSON-safe, repr-exact values.

    Finite floats are written by json with repr() (shortest string that
    round-trips exactly). Non-finite floats become the strings "inf", "-inf",
    "nan".
    """
    if isinstance(x, dict):
        return {str(k): enc(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [enc(v) for v in x]
    if isinstance(x, numpy.ndarray):
        return enc(x.tolist())
    if isinstance(x, (bool, numpy.bool_)):
        return bool(x)
    if isinstance(x, (int, numpy.integer)):
        return int(x)
    if isinstance(x, (float, numpy.floating)):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"cannot encode {type(x)}: {x!r}")


def err(e: BaseException) -> dict:
    return {"error": {"type": type(e).__name__, "message": str(e)}}


def call(fn, *args, **kwargs):
    """Run fn; return (value, None) or (None, error-dict)."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - we record whatever bob raises
        return None, err(e)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# an exact-count replica of bob's _minimizing_threshold, to expose where bob's
# float accumulation (far -= 1/n; frr += 1/m) changes the chosen threshold
# --------------------------------------------------------------------------


def minimizing_threshold_exact(neg, pos, criterion, cost=0.5):
    neg = numpy.sort(numpy.asarray(neg, dtype=float))
    pos = numpy.sort(numpy.asarray(pos, dtype=float))
    nn, npos = len(neg), len(pos)
    cost = Fraction(cost)

    def crit(fa, fr):  # fa, fr: integer counts
        far, frr = Fraction(fa, nn), Fraction(fr, npos)
        if criterion == "absolute-difference":
            return abs(far - frr)
        return cost * far + (1 - cost) * frr

    big = Fraction(10**8)
    min_pred, min_thr = big, 1e8
    fa, fr = nn, 0
    i = j = 0  # i over pos, j over neg
    thr = min(neg[0], pos[0])
    while i < npos and j < nn:
        p = crit(fa, fr)
        if p <= min_pred:
            min_pred, min_thr = p, thr
        if pos[i] >= neg[j]:
            thr = neg[j]
            j += 1
            fa -= 1
        else:
            thr = pos[i]
            i += 1
            fr += 1
        while j < nn and thr == neg[j]:
            j += 1
            fa -= 1
        while i < npos and thr == pos[i]:
            i += 1
            fr += 1
        if j < nn or i < npos:
            if j < nn and i < npos:
                thr += min(neg[j], pos[i])
            elif j < nn:
                thr += neg[j]
            else:
                thr += pos[i]
            thr /= 2
    p = crit(fa, fr)
    if p < min_pred:
        min_pred, min_thr = p, thr
    if j < nn or i < npos:
        last = thr
        if j < nn:
            last = numpy.nextafter(neg[-1], neg[-1] + 1)
        elif i < npos:
            last = numpy.nextafter(pos[-1], pos[-1] + 1)
        p = crit(0, npos)
        if p < min_pred:
            min_pred, min_thr = p, last
    return float(min_thr)


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


def synthetic_cases():
    """Yield dicts: name, description, negatives, positives, [seed], [extra_targets]."""
    # (a) continuous, overlapping
    seed = 1001
    rs = numpy.random.RandomState(seed)
    neg = rs.normal(0.0, 1.0, 2000)
    pos = rs.normal(2.0, 1.0, 200)
    yield dict(
        name="a_continuous_normal",
        seed=seed,
        description=(
            "RandomState(1001): negatives ~ N(0,1) x2000, then positives ~ N(2,1) x200; overlapping, no ties"
        ),
        negatives=neg,
        positives=pos,
    )

    # (b) discrete integers 0..20, heavy ties
    seed = 1002
    rs = numpy.random.RandomState(seed)
    neg = rs.binomial(20, 0.35, 3000).astype(float)
    pos = rs.binomial(20, 0.65, 300).astype(float)
    yield dict(
        name="b_discrete_integers",
        seed=seed,
        description=(
            "RandomState(1002): negatives ~ Binomial(20,0.35) x3000, then positives ~ Binomial(20,0.65) "
            "x300, as floats; integer scores 0..20, heavy ties within and across classes"
        ),
        negatives=neg,
        positives=pos,
    )

    # (c) rounded to 2 decimals
    seed = 1003
    rs = numpy.random.RandomState(seed)
    neg = numpy.round(rs.normal(0.30, 0.10, 1500), 2)
    pos = numpy.round(rs.normal(0.55, 0.12, 300), 2)
    yield dict(
        name="c_rounded_2dp",
        seed=seed,
        description=(
            "RandomState(1003): negatives = round(N(0.30,0.10) x1500, 2), "
            "then positives = round(N(0.55,0.12) x300, 2); ties within and "
            "between classes, values like 0.35 are not exact binary fractions"
        ),
        negatives=neg,
        positives=pos,
    )

    # (d) tiny, with a tie between classes
    yield dict(
        name="d_tiny_3pos_5neg",
        description="hand-made: 5 negatives, 3 positives, one negative equals one positive (0.4)",
        negatives=[0.1, 0.25, 0.4, 0.55, 0.7],
        positives=[0.4, 0.6, 0.9],
    )

    # (e) 1 pos / 2 neg
    yield dict(
        name="e_1pos_2neg",
        description="hand-made: 2 negatives, 1 positive (frr_threshold / roc need >= 2 positives)",
        negatives=[0.2, 0.6],
        positives=[0.5],
    )

    # (f) all equal
    yield dict(
        name="f_all_equal",
        description="hand-made: every score (4 negatives, 3 positives) is 0.5",
        negatives=[0.5] * 4,
        positives=[0.5] * 3,
    )

    # (g) the tie examples from bob.measure's own tests
    yield dict(
        name="g1_bob_ties_odd",
        description="bob test_for_uncomputable_thresholds case 1 (9+9 scores)",
        positives=[0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        negatives=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0],
        extra_targets=[0.4, 0.49, 0.51],
    )
    yield dict(
        name="g1b_bob_ties_even",
        description="bob test_for_uncomputable_thresholds case 1, even variant (10+10 scores)",
        positives=[0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        negatives=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0],
        extra_targets=[0.49, 0.51],
    )
    yield dict(
        name="g2_bob_pos_eq_neg_0to9",
        description="bob test_for_uncomputable_thresholds case 2: positives = negatives = 0..9",
        negatives=[float(i) for i in range(10)],
        positives=[float(i) for i in range(10)],
        extra_targets=[0.09],
    )
    yield dict(
        name="g3_bob_obvious_0to9_10to19",
        description=(
            "bob test_obvious_thresholds: negatives 0..9, positives "
            "10..19; targets include round(k/20, 2), k=0..20"
        ),
        negatives=[float(i) for i in range(10)],
        positives=[float(i) for i in range(10, 20)],
        extra_targets=[round(k / 20, 2) for k in range(21)],
    )

    # (h) linearly separable, synthetic
    seed = 1008
    rs = numpy.random.RandomState(seed)
    neg = rs.uniform(-1.0, 0.4, 60)
    pos = rs.uniform(0.6, 2.0, 40)
    yield dict(
        name="h_separable",
        seed=seed,
        description=(
            "RandomState(1008): negatives ~ U(-1,0.4) x60, then "
            "positives ~ U(0.6,2) x40; linearly separable with a gap"
        ),
        negatives=neg,
        positives=pos,
    )


def file_cases(peers: Path):
    for stem, desc in (
        ("nonsep", "bob.measure test data, non-separable (50+50)"),
        ("linsep", "bob.measure test data, linearly separable (50+50)"),
    ):
        arrays, refs = {}, {}
        for kind in ("negatives", "positives"):
            fname = f"{stem}-{kind}.hdf5"
            p = peers / fname
            with h5py.File(p, "r") as fh:
                arrays[kind] = fh["array"][:]
            refs[kind] = {
                "file": f"{PEERS_REL}/{fname}",
                "dataset": "array",
                "sha256": sha256(p),
                "n": int(arrays[kind].size),
            }
        yield dict(
            name=f"i_{stem}_hdf5",
            description=desc + "; arrays NOT copied here, read them from the file",
            negatives=arrays["negatives"],
            positives=arrays["positives"],
            inputs_ref=refs,
        )


# --------------------------------------------------------------------------
# per-case computation
# --------------------------------------------------------------------------


def largest_achievable(neg, pos, which, target):
    """NOT bob output: the largest FAR (which=0) / FRR (which=1) <= target that any
    threshold achieves, by brute force over all score values and +inf (None if none)."""
    cands = numpy.concatenate([numpy.unique(numpy.concatenate([neg, pos])), [-math.inf, math.inf]])
    rates = [(float((neg >= t).mean()), float((pos < t).mean()))[which] for t in cands]
    ok = [r for r in rates if r <= target]
    return max(ok) if ok else None


def farfrr_point(neg, pos, t, label):
    v, e = call(bm.farfrr, neg, pos, t)
    d = {"label": label, "threshold": t}
    if e:
        d.update(e)
    else:
        d["far"], d["frr"] = float(v[0]), float(v[1])
    return d


def probe_thresholds(neg, pos, extra):
    """~20+ thresholds: extremes, exact score values, neighbours, midpoints."""
    allv = numpy.sort(numpy.concatenate([neg, pos]))
    uniq = numpy.unique(allv)
    lo, hi = float(allv[0]), float(allv[-1])
    out = [
        ("-inf", -math.inf),
        ("min-1", lo - 1.0),
        ("nextafter(min,-inf)", float(numpy.nextafter(lo, -math.inf))),
        ("min (a score)", lo),
        ("nextafter(min,+inf)", float(numpy.nextafter(lo, math.inf))),
        ("min negative", float(neg.min())),
        ("max negative", float(neg.max())),
        ("nextafter(max negative,+inf)", float(numpy.nextafter(neg.max(), math.inf))),
        ("min positive", float(pos.min())),
        ("nextafter(min positive,-inf)", float(numpy.nextafter(pos.min(), -math.inf))),
        ("max positive", float(pos.max())),
        ("max (a score)", hi),
        ("nextafter(max,+inf)", float(numpy.nextafter(hi, math.inf))),
        ("max+1", hi + 1.0),
        ("+inf", math.inf),
        ("0.0", 0.0),
    ]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        k = int(q * (len(allv) - 1))
        out.append((f"score at sorted index {k} (q={q})", float(allv[k])))
    if len(uniq) >= 2:
        k = len(uniq) // 2
        a, b = float(uniq[k - 1]), float(uniq[k])
        out.append(("midpoint of middle distinct scores", (a + b) / 2))
        out.append(("nextafter(middle distinct score,-inf)", float(numpy.nextafter(b, -math.inf))))
    out.extend(extra)
    seen, res = set(), []
    for label, t in out:
        key = repr(t)
        if key in seen:
            continue
        seen.add(key)
        res.append((label, t))
    return res


def run_case(c):
    neg = numpy.asarray(c["negatives"], dtype=float)
    pos = numpy.asarray(c["positives"], dtype=float)
    targets = sorted(set(TARGETS) | set(c.get("extra_targets", [])))

    case = {"name": c["name"], "description": c["description"]}
    if "seed" in c:
        case["seed"] = c["seed"]
    case["n_negatives"], case["n_positives"] = int(neg.size), int(pos.size)
    if "inputs_ref" in c:
        case["inputs_ref"] = c["inputs_ref"]
    else:
        case["negatives"], case["positives"] = neg.tolist(), pos.tolist()
    case["targets"] = targets
    r = {}

    v, e = call(bm.eer_threshold, neg, pos)
    r["eer_threshold"] = e or float(v)
    eer_t = None if e else float(v)
    v, e = call(bm.eer, neg, pos, also_farfrr=True)
    r["eer"] = e or {"eer": float(v[0]), "far": float(v[1]), "frr": float(v[2])}
    v, e = call(bm.min_hter_threshold, neg, pos)
    r["min_hter_threshold"] = e or float(v)
    hter_t = None if e else float(v)
    if hter_t is not None:
        ff = bm.farfrr(neg, pos, hter_t)
        r["min_hter"] = {"hter": (float(ff[0]) + float(ff[1])) / 2, "far": float(ff[0]), "frr": float(ff[1])}

    # exact-count replica of the minimiser: shows where float accumulation matters
    ex = {}
    for key, crit, got in (
        ("eer_threshold", "absolute-difference", eer_t),
        ("min_hter_threshold", "weighted-error", hter_t),
    ):
        if got is None:
            continue
        xv = minimizing_threshold_exact(neg, pos, crit)
        ex[key] = {"exact_counts_threshold": xv, "same_as_bob": xv == got}
        if xv != got:
            fa, fr = bm.farfrr(neg, pos, xv)
            ex[key]["exact_counts_far"], ex[key]["exact_counts_frr"] = float(fa), float(fr)
    if ex:
        r["minimizer_exact_count_replica"] = ex

    extra_thr = []
    for key, fn, idx in (("far_threshold", bm.far_threshold, 0), ("frr_threshold", bm.frr_threshold, 1)):
        rows = []
        for tgt in targets:
            v, e = call(fn, neg, pos, tgt)
            row = {"target": tgt}
            if e:
                row.update(e)
            else:
                t = float(v)
                fa, fr = bm.farfrr(neg, pos, t)
                row.update(threshold=t, far=float(fa), frr=float(fr))
                best = largest_achievable(neg, pos, idx, tgt)
                row["largest_achievable"] = best
                row["is_largest_achievable"] = (float(fa), float(fr))[idx] == best
                extra_thr.append((f"{key}({tgt})", t))
            rows.append(row)
        r[key] = rows

    probes = probe_thresholds(
        neg,
        pos,
        ([("eer_threshold", eer_t)] if eer_t is not None else [])
        + ([("min_hter_threshold", hter_t)] if hter_t is not None else []),
    )
    r["farfrr"] = [farfrr_point(neg, pos, t, lab) for lab, t in probes]

    v, e = call(bm.roc, neg, pos, N_POINTS)
    r["roc"] = e or v
    v, e = call(bm.det, neg, pos, N_POINTS)
    r["det"] = e or v
    v, e = call(bm.roc_for_far, neg, pos, ROC_FOR_FAR_LIST)
    r["roc_for_far"] = e or {"far_list": ROC_FOR_FAR_LIST, "curve": v}
    v, e = call(bm.eer_rocch, neg, pos)
    r["eer_rocch"] = e or float(v)
    case["bob"] = r
    return case


def empty_input_cases():
    """Which functions raise on empty negatives/positives, and how."""
    one = [0.5, 0.7]
    fns = [
        ("farfrr", lambda n, p: bm.farfrr(n, p, 0.6)),
        ("eer_threshold", lambda n, p: bm.eer_threshold(n, p)),
        ("eer", lambda n, p: bm.eer(n, p, also_farfrr=True)),
        ("min_hter_threshold", lambda n, p: bm.min_hter_threshold(n, p)),
        (
            "min_weighted_error_rate_threshold(cost=0.5)",
            lambda n, p: bm.min_weighted_error_rate_threshold(n, p, 0.5),
        ),
        ("far_threshold(0.1)", lambda n, p: bm.far_threshold(n, p, 0.1)),
        ("frr_threshold(0.1)", lambda n, p: bm.frr_threshold(n, p, 0.1)),
        ("roc(100)", lambda n, p: bm.roc(n, p, 100)),
        ("det(100)", lambda n, p: bm.det(n, p, 100)),
        ("roc_for_far([0.1])", lambda n, p: bm.roc_for_far(n, p, [0.1])),
        ("eer_rocch", lambda n, p: bm.eer_rocch(n, p)),
    ]
    combos = [("negatives=[]", [], one), ("positives=[]", one, []), ("both []", [], [])]
    out = []
    for fname, f in fns:
        row = {"function": fname}
        for label, n, p in combos:
            v, e = call(f, numpy.asarray(n, dtype=float), numpy.asarray(p, dtype=float))
            row[label] = e or {"returned": enc(numpy.asarray(v).tolist() if not isinstance(v, float) else v)}
        out.append(row)
    return {
        "inputs": {"non-empty side": one, "farfrr threshold": 0.6},
        "note": "empty inputs passed as numpy float64 arrays of size 0; 'returned' means bob did NOT raise",
        "results": out,
    }


def special_inputs():
    """A few odd inputs worth pinning down."""
    neg, pos = numpy.array([0.1, 0.5, 0.9]), numpy.array([0.4, 0.8])
    res = []
    v, e = call(bm.farfrr, neg, pos, float("nan"))
    res.append(
        {
            "call": "farfrr([0.1,0.5,0.9],[0.4,0.8], nan)",
            **(e or {"returned": list(map(float, v))}),
            "note": "bob prints an error to stdout and returns (1.0, 1.0) for a NaN threshold",
        }
    )
    for tgt in (-0.1, 1.1, 1 - 2**-53, 1 - 2**-52, 1 - 2**-51):
        v, e = call(bm.far_threshold, neg, pos, tgt)
        res.append({"call": f"far_threshold([0.1,0.5,0.9], _, {tgt!r})", **(e or {"returned": float(v)})})
    for tgt in (-0.1, 1.1, 1 - 2**-52):
        v, e = call(bm.frr_threshold, neg, pos, tgt)
        res.append({"call": f"frr_threshold(_, [0.4,0.8], {tgt!r})", **(e or {"returned": float(v)})})
    v, e = call(bm.far_threshold, numpy.array([0.3]), pos, 0.5)
    res.append(
        {
            "call": "far_threshold([0.3], _, 0.5)",
            **(e or {"returned": float(v)}),
            "note": "far_threshold needs >= 2 negatives",
        }
    )
    v, e = call(bm.frr_threshold, neg, numpy.array([0.3]), 0.5)
    res.append(
        {
            "call": "frr_threshold(_, [0.3], 0.5)",
            **(e or {"returned": float(v)}),
            "note": "frr_threshold needs >= 2 positives",
        }
    )
    return res


# --------------------------------------------------------------------------
# CMC / open-set identification
# --------------------------------------------------------------------------


def load_open_set(p: Path):
    """Pair data-neg-<i> with data-pos-<i>; a b'None' string means no mate.

    Ordered by the integer suffix (bob's test relies on h5py's alphabetical key
    order, which is the same for these files since i < 10).
    """
    with h5py.File(p, "r") as fh:
        idx = sorted({int(k.rsplit("-", 1)[1]) for k in fh.keys()})
        pairs = []
        for i in idx:
            neg = fh[f"data-neg-{i}"][:]
            pos = fh[f"data-pos-{i}"][:]
            if pos.dtype.char == "S" and pos[0].decode() == "None":
                pos = None
            elif len(pos) == 1:
                pos = pos[0]
            pairs.append((neg, pos))
    return pairs


def cmc_section(peers: Path):
    sec = {}
    # inline example from bob's test_cmc
    inline = [
        ((0.3, 1.1, 0.5), (0.7,)),
        ((1.4, -1.3, 0.6), (0.2,)),
        ((0.8, 0.0, 1.5), (-0.8, 1.8)),
        ((2.0, 1.3, 1.6, 0.9), (2.4,)),
    ]
    inline_np = [(numpy.array(n), numpy.array(p)) for n, p in inline]
    sec["inline_example"] = {
        "probes": [{"negatives": list(n), "positives": list(p)} for n, p in inline],
        "recognition_rate": bm.recognition_rate(inline_np),
        "cmc": bm.cmc(inline_np),
    }
    p = peers / "test-cmc.hdf5"
    with h5py.File(p, "r") as fh:
        dneg, dpos = fh["data-neg"][:], fh["data-pos"][:]
    data = list(zip(dneg, dpos))
    sec["test_cmc"] = {
        "file": f"{PEERS_REL}/test-cmc.hdf5",
        "sha256": sha256(p),
        "layout": (
            "datasets data-neg (n_probes x 19) and data-pos "
            "(n_probes x 1); probe i = (data-neg[i], data-pos[i])"
        ),
        "n_probes": len(data),
        "recognition_rate": bm.recognition_rate(data),
        "recognition_rate_by_rank": {str(k): bm.recognition_rate(data, rank=k) for k in (1, 2, 3, 5, 10)},
        "cmc": bm.cmc(data),
    }
    opens = []
    for fname in ("test0-open-set.hdf5", "test1-open-set.hdf5", "test2-open-set.hdf5"):
        p = peers / fname
        pairs = load_open_set(p)
        row = {
            "file": f"{PEERS_REL}/{fname}",
            "sha256": sha256(p),
            "layout": (
                "datasets data-neg-<i> (float array) and data-pos-<i> (1 float, "
                "or the string b'None' for a probe without a mate), i = 0..n-1"
            ),
            "n_probes": len(pairs),
            "n_probes_with_mate": sum(q is not None for _, q in pairs),
            "probes": [
                {"negatives": n.tolist(), "positive": None if q is None else float(q)} for n, q in pairs
            ],
        }
        for key, fn in (
            (
                "detection_identification_rate(threshold=0.5)",
                lambda pairs=pairs: bm.detection_identification_rate(pairs, 0.5),
            ),
            ("false_alarm_rate(threshold=0.5)", lambda pairs=pairs: bm.false_alarm_rate(pairs, 0.5)),
            ("recognition_rate()", lambda pairs=pairs: bm.recognition_rate(pairs)),
            (
                "recognition_rate(threshold=0.5)",
                lambda pairs=pairs: bm.recognition_rate(pairs, threshold=0.5),
            ),
        ):
            v, e = call(fn)
            row[key] = e or float(v)
        opens.append(row)
    sec["open_set"] = opens
    return sec


# --------------------------------------------------------------------------
# self checks: the peers README's assertions
# --------------------------------------------------------------------------


def self_checks(peers: Path, cases_by_name, cmc):
    checks = []

    def check(name, ok, detail=""):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    def load(f):
        with h5py.File(peers / f, "r") as fh:
            return fh["array"][:]

    nn, npos = load("nonsep-negatives.hdf5"), load("nonsep-positives.hdf5")
    ln, lp = load("linsep-negatives.hdf5"), load("linsep-positives.hdf5")
    lo, hi = min(ln.min(), lp.min()), max(ln.max(), lp.max())
    check("linsep farfrr(min-0.1) == (1,0)", tuple(bm.farfrr(ln, lp, lo - 0.1)) == (1.0, 0.0))
    check("linsep farfrr(max+0.1) == (0,1)", tuple(bm.farfrr(ln, lp, hi + 0.1)) == (0.0, 1.0))
    check("linsep farfrr(3.0) == (0,0)", tuple(bm.farfrr(ln, lp, 3.0)) == (0.0, 0.0))
    check("linsep eer_threshold == 3.2", bm.eer_threshold(ln, lp) == 3.2, repr(bm.eer_threshold(ln, lp)))
    check(
        "linsep min_hter_threshold == 3.2",
        bm.min_hter_threshold(ln, lp) == 3.2,
        repr(bm.min_hter_threshold(ln, lp)),
    )
    check(
        "nonsep roc(100) == nonsep-roc.hdf5 exactly",
        numpy.array_equal(bm.roc(nn, npos, 100), load("nonsep-roc.hdf5")),
    )
    check(
        "nonsep det(100) ~ nonsep-det.hdf5 (atol 1e-5)",
        numpy.allclose(bm.det(nn, npos, 100), load("nonsep-det.hdf5"), atol=1e-5, rtol=1e-6),
    )
    xy = bm.roc_for_far(nn, npos, [0.01, 0.1, 1])
    check(
        "nonsep roc_for_far([0.01,0.1,1]) == FAR [0,0.1,1], FRR [0.48,0.12,0]",
        xy[0].tolist() == [0.0, 0.1, 1.0] and xy[1].tolist() == [0.48, 0.12, 0.0],
        repr(xy.tolist()),
    )
    check(
        "nonsep precision_recall_curve(100) == nonsep-precisionrecall.hdf5 exactly",
        numpy.array_equal(bm.precision_recall_curve(nn, npos, 100), load("nonsep-precisionrecall.hdf5")),
    )
    v, e = call(bm.eer_rocch, nn, npos)
    checks.append(
        {
            "check": "nonsep eer_rocch ~ 0.116363636 (README)",
            "ok": None,
            "detail": "not checkable with bob.measure 6.1.1: " + (json.dumps(e) if e else repr(v)),
        }
    )
    pos, neg = [0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0]
    check("ties: far_threshold(neg,pos,0.5) == 1.0", bm.far_threshold(neg, pos, 0.5) == 1.0)
    check(
        "ties: frr_threshold(neg,pos,0.5) isclose 0.1",
        numpy.isclose(bm.frr_threshold(neg, pos, 0.5), 0.1),
        repr(bm.frr_threshold(neg, pos, 0.5)),
    )
    check("ties: far_threshold(neg,pos,0.4) > max(neg)", bm.far_threshold(neg, pos, 0.4) > max(neg))
    r = numpy.arange(10, dtype=float)
    check("0..9: far_threshold(0.11) == 9", bm.far_threshold(r, r, 0.11) == 9.0)
    check("0..9: far_threshold(0.91) == 1", bm.far_threshold(r, r, 0.91) == 1.0)
    check("0..9: far_threshold(1) <= 0", bm.far_threshold(r, r, 1.0) <= 0.0)
    check("0..9: far_threshold(0.09) > 9", bm.far_threshold(r, r, 0.09) > 9.0)
    check("0..9: frr_threshold(0.11) isclose 1", numpy.isclose(bm.frr_threshold(r, r, 0.11), 1.0))
    check("0..9: frr_threshold(0.91) isclose 9", numpy.isclose(bm.frr_threshold(r, r, 0.91), 9.0))
    n10, p10 = numpy.arange(10, dtype=float), numpy.arange(10, 20, dtype=float)
    ok = True
    for k in range(21):
        t = round(k / 20, 2)
        want = math.floor(k / 20 * 10) / 10
        fa = bm.farfrr(n10, p10, bm.far_threshold(n10, p10, t))[0]
        fr = bm.farfrr(n10, p10, bm.frr_threshold(n10, p10, t))[1]
        ok &= fa <= t and fa == want and fr <= t and fr == want
    check("0..9 vs 10..19: achieved FAR/FRR == floor(10r)/10 for r = 0,0.05..1", ok)
    tc = cmc["test_cmc"]
    check("test-cmc rank-1 recognition rate == 0.76", tc["recognition_rate"] == 0.76)
    check(
        "test-cmc CMC == [0.76,0.89,0.96,0.98]+[1]*16",
        numpy.asarray(tc["cmc"]).tolist() == [0.76, 0.89, 0.96, 0.98] + [1.0] * 16,
    )
    want = [(1.0, 0.0, 7 / 9, 1.0), (6 / 7, 0.0, 6 / 9, 6 / 7), (6 / 7, 0.5, 6 / 9, 6 / 8)]
    for row, (dir_, far_, rr, rrt) in zip(cmc["open_set"], want):
        got = (
            row["detection_identification_rate(threshold=0.5)"],
            row["false_alarm_rate(threshold=0.5)"],
            row["recognition_rate()"],
            row["recognition_rate(threshold=0.5)"],
        )
        check(
            f"{row['file'].rsplit('/', 1)[1]}: DIR, FAR@0.5, RR, RR@0.5 within 1e-8 of README",
            all(isinstance(g, float) and abs(g - w) < 1e-8 for g, w in zip(got, (dir_, far_, rr, rrt))),
            repr(got),
        )
    return checks


# --------------------------------------------------------------------------

FIELDS = {
    "meta": "provenance: versions, date, command, the fixed target lists",
    "conventions": "bob's definitions the numbers follow",
    "quirks": (
        "bob.measure behaviours a re-implementation must copy "
        "(or deliberately not copy) to match these numbers"
    ),
    "cases[]": "one score set each",
    "cases[].negatives / positives": (
        "the input scores (non-mated / mated), exactly as fed "
        "to bob (float64). Absent when inputs_ref is given"
    ),
    "cases[].inputs_ref": (
        "for cases read from bob's test data: {negatives|positives: {file (relative "
        "to the shared/ root, i.e. <repo>/../shared), dataset, sha256, n}}"
    ),
    "cases[].seed": (
        "numpy.random.RandomState seed used to draw that case (see description for the draw order)"
    ),
    "cases[].targets": "the FAR/FRR targets used for this case: meta.targets plus any case-specific extras",
    "cases[].bob.eer_threshold": "bob.measure.eer_threshold(neg, pos)",
    "cases[].bob.eer": (
        "bob.measure.eer(neg, pos, also_farfrr=True) -> {eer=(far+frr)/2, far, frr} at eer_threshold"
    ),
    "cases[].bob.min_hter_threshold": (
        "bob.measure.min_hter_threshold(neg, pos) (= min_weighted_error_rate_threshold cost 0.5)"
    ),
    "cases[].bob.min_hter": (
        "farfrr at min_hter_threshold and their mean (computed here from bob.measure.farfrr)"
    ),
    "cases[].bob.minimizer_exact_count_replica": (
        "NOT bob output: a Python replica of bob's _minimizing_threshold using "
        "exact integer counts (Fractions) instead of bob's accumulated floats; "
        "same_as_bob=false marks cases where float accumulation changed bob's answer"
    ),
    "cases[].bob.far_threshold[]": (
        "per target: {target, threshold=bob.measure.far_threshold(neg,pos,target), far, frr "
        "= bob.measure.farfrr at that threshold, largest_achievable, is_largest_achievable} "
        "or {target, error:{type,message}} when bob raised. largest_achievable (NOT bob "
        "output, brute force here) is the largest FAR <= target any threshold achieves "
        "(null if none); is_largest_achievable says whether bob's achieved FAR equals it"
    ),
    "cases[].bob.frr_threshold[]": (
        "same with bob.measure.frr_threshold; largest_achievable / is_largest_achievable refer to FRR"
    ),
    "cases[].bob.farfrr[]": (
        "{label, threshold, far, frr} = bob.measure.farfrr(neg,pos,threshold) at probe thresholds: "
        "extremes, +-inf, exact score values, nextafter neighbours, a midpoint, eer/min-hter thresholds"
    ),
    "cases[].bob.roc": "bob.measure.roc(neg,pos,100) (min_far=-8): 2 x n, row 0 FAR, row 1 FRR (or error)",
    "cases[].bob.det": "bob.measure.det(neg,pos,100): ppndf of roc (normal deviates), 2 x n (or error)",
    "cases[].bob.roc_for_far": (
        "{far_list, curve = bob.measure.roc_for_far(neg,pos,far_list)}: "
        "row 0 achieved FAR, row 1 FRR (or error)"
    ),
    "cases[].bob.eer_rocch": (
        "bob.measure.eer_rocch(neg,pos) -- raises NotImplementedError in 6.1.1 (recorded as error)"
    ),
    "empty_inputs": (
        "each function called with an empty negatives, empty "
        "positives, or both; {error:{type,message}} or {returned}"
    ),
    "special_inputs": "NaN threshold, out-of-range targets, near-1 targets, too few scores",
    "cmc": (
        "closed-set CMC/recognition rate (inline example from bob's test "
        "and test-cmc.hdf5) and open-set rates on test{0,1,2}-open-set.hdf5"
    ),
    "summary": (
        "NOT bob output: where bob's minimiser differs from an exact-count replica, "
        "and where far/frr_threshold miss the largest achievable rate <= target"
    ),
    "self_checks": (
        "the peers README / bob test-suite assertions, re-run "
        "against this bob install (ok=null: not checkable)"
    ),
    "encoding": (
        "floats are JSON numbers written with Python repr (round-trip exact); non-finite "
        "floats are the strings 'inf', '-inf', 'nan'; errors are {error:{type,message}}"
    ),
}

CONVENTIONS = {
    "negatives": "non-mated (impostor) scores; positives: mated (genuine) scores; higher = more alike",
    "farfrr": (
        "FAR = mean(negatives >= t), FRR = mean(positives < t): a negative ON "
        "the threshold is a false accept, a positive ON the threshold is accepted"
    ),
    "far_threshold": (
        "walks the distinct negative values from the top; returns the lowest negative score v with "
        "FAR(v) = count(neg >= v)/n <= target, or nextafter(max(neg), +inf) (FAR 0) if even the "
        "top score exceeds the target. So it returns a score value, and of the thresholds "
        "achieving the largest achievable FAR <= target it returns the HIGHEST (cf. docs/design.md)"
    ),
    "frr_threshold": (
        "walks the distinct positive values from the bottom; returns the highest positive "
        "score v whose 'future FRR' (index of the LAST copy of v in the sorted positives)/n "
        "<= target, else nextafter(min(pos), +inf). Without ties in the positives this is "
        "the largest achievable FRR <= target; with ties it is not (see quirks)"
    ),
}

QUIRKS = [
    (
        "far_threshold: special case `far_value >= 1 - eps` (eps = 2**-52) returns "
        "nextafter(min(negatives), -inf) without iterating (FAR 1). Targets in [1-eps, "
        "1) hit it too, and e.g. target 1-2**-51 does not (see special_inputs)."
    ),
    (
        "frr_threshold: same special case `frr_value >= 1 - "
        "eps` returns nextafter(max(positives), +inf) (FRR 1)."
    ),
    (
        "far_threshold / frr_threshold raise RuntimeError for fewer than 2 negatives / positives (even "
        "though 1 score is meaningful), and for targets outside [0, 1]. Both ignore the other score list."
    ),
    (
        "frr_threshold mis-counts tied positives: for a tie block at value v it uses (count(pos <= v) - "
        "1)/n instead of the true FRR(v) = count(pos < v)/n. Effects: (1) it can stop early and return a "
        "LOWER threshold than needed, so the achieved FRR is below the largest achievable (cases b, c, "
        "i_nonsep, i_linsep; see is_largest_achievable); (2) when the minimum positive is tied c times "
        "and target < (c-1)/n, it falls back to nextafter(min(pos), +inf), whose FRR is c/n > target, "
        "breaking the 'at most' promise (cases f, g1, g1b: e.g. g1 target 0.25 -> FRR 4/9 while target "
        "0.4 -> FRR 0). far_threshold has no such problem (count(neg >= v) is computed correctly)."
    ),
    (
        "far_threshold/frr_threshold compare k/n with the target in float64 ((k+1)/n > target "
        "breaks); targets equal to k/n in float (e.g. 0.1 with n=10, 50) count as achievable."
    ),
    (
        "eer_threshold / min_hter_threshold (_minimizing_threshold): candidate thresholds are "
        "the lowest score and the MIDPOINTS (a+b)/2 between consecutive distinct scores of the "
        "merged lists, not score values; plus nextafter(max score) when one list runs out first."
    ),
    (
        "_minimizing_threshold accumulates far -= 1/n_neg and frr += 1/n_pos in float64, so at equal-error "
        "ties the comparison can be decided by rounding noise; see cases[].bob.minimizer_exact_count_replica."
    ),
    (
        "_minimizing_threshold uses `<=` inside the loop (later, i.e. higher, "
        "thresholds win ties) but strict `<` for the final candidate and for the "
        "above-all-scores candidate; it stops as soon as either list is exhausted."
    ),
    "eer = (far + frr) / 2 at eer_threshold, which need not be the point where far == frr.",
    (
        "roc()/det() thresholds come from far_threshold/frr_threshold at "
        "10**(arange(1-k,1)/int(k/8)) log-spaced targets (k = n_points//2), "
        "sorted; points may repeat. roc needs >= 2 positives and >= 2 negatives."
    ),
    "farfrr with a NaN threshold prints an error and returns (1.0, 1.0) instead of raising.",
    (
        "eer_rocch/rocch raise NotImplementedError in 6.1.1 (the pavx port is disabled); bob's "
        "own rocch and calibration tests are named no_test_* and do not run, so the README's "
        "ROCCH EER 0.116363636 and Cllr numbers cannot be reproduced with this version."
    ),
    (
        "recognition_rate/detection_identification_rate with a threshold keep scores strictly > "
        "threshold; ranks count negatives >= the best positive (ties count against the probe)."
    ),
    (
        "bob's own test_open_set_rates uses numpy.float, removed in numpy 1.24, so that "
        "bob test errors under numpy 1.26; this generator loads the open-set files itself."
    ),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=os.environ.get("FAUDIT_BOB_PEERS", str(DEFAULT_PEERS)))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    peers, out = Path(args.peers), Path(args.out)
    t0 = time.perf_counter()

    def ver(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cases = []
    for c in list(synthetic_cases()) + list(file_cases(peers)):
        tc = time.perf_counter()
        cases.append(run_case(c))
        print(f"  case {c['name']:32s} {time.perf_counter() - tc:6.2f}s", file=sys.stderr)
    cmc = cmc_section(peers)
    checks = self_checks(peers, {c["name"]: c for c in cases}, cmc)

    summary = {
        "note": "computed here from the cases below, to point at the quirks",
        "eer_or_min_hter_threshold_changed_by_float_accumulation": [
            {"case": c["name"], "function": k, "bob": c["bob"][k], **v}
            for c in cases
            for k, v in c["bob"].get("minimizer_exact_count_replica", {}).items()
            if not v["same_as_bob"]
        ],
        "threshold_not_largest_achievable": [
            {
                "case": c["name"],
                "function": k,
                "target": r["target"],
                "threshold": r["threshold"],
                "achieved": r["far" if k == "far_threshold" else "frr"],
                "largest_achievable": r["largest_achievable"],
            }
            for c in cases
            for k in ("far_threshold", "frr_threshold")
            for r in c["bob"][k]
            if "error" not in r and not r["is_largest_achievable"]
        ],
    }

    doc = {
        "meta": {
            "what": "golden values from bob.measure for faceaudit's conformance tests",
            "bob.measure": ver("bob.measure"),
            "numpy": numpy.__version__,
            "numba": ver("numba"),
            "h5py": ver("h5py"),
            "python": platform.python_version(),
            "generated_utc": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
            "command": (
                "bash tests/reference/make_bob_venv.sh && "
                "tests/reference/.venv-bob/bin/python tests/reference/gen_golden_bob.py"
            ),
            "argv": [Path(sys.argv[0]).name] + sys.argv[1:],
            "peers_dir": PEERS_REL + " (relative to the shared/ root, <repo>/../shared)",
            "targets": TARGETS,
            "roc_for_far_list": ROC_FOR_FAR_LIST,
            "n_points": N_POINTS,
        },
        "fields": FIELDS,
        "conventions": CONVENTIONS,
        "quirks": QUIRKS,
        "summary": summary,
        "cases": cases,
        "empty_inputs": empty_input_cases(),
        "special_inputs": special_inputs(),
        "cmc": cmc,
        "self_checks": checks,
    }
    doc["meta"]["generation_seconds"] = round(time.perf_counter() - t0, 2)
    text = json.dumps(enc(doc), indent=1, allow_nan=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    bad = [c for c in checks if c["ok"] is False]
    print(
        f"wrote {out} ({len(text) / 1024:.0f} KiB, {len(cases)} cases) "
        f"in {doc['meta']['generation_seconds']}s",
        file=sys.stderr,
    )
    for c in checks:
        print(
            f"  [{ {True: 'ok', False: 'FAIL', None: 'n/a'}[c['ok']] }] {c['check']} {c['detail']}",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
