"""The evidence document: every sentence of the evidence module and its JSON encoding, in one place.

Measures return numbers and flag codes (:mod:`faceaudit.evidence.results`); this module turns them into the
JSON document (``schema: faceaudit.evidence/1``) that the terminal, the JSON file and the HTML sheet show.
Plain words come first (``summary``), numbers after.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from faceaudit.evidence.results import Estimate, EvidenceResult, Flag, GroupCalibration, Statement
from faceaudit.evidence.scale import ENFSI_2015, VerbalScale

__all__ = ["evidence_document", "SCHEMA", "flag_message", "lr_text"]

SCHEMA = "faceaudit.evidence/1"
METHOD_NAMES = {
    "logistic": "logistic regression",
    "pav": "isotonic regression (PAV)",
    "gaussian": "two-Gaussian score model",
}
METRIC_NAMES = {
    "cllr": "Cllr (log-likelihood-ratio cost, bits)",
    "cllr_min": "Cllr_min (cost after optimal recalibration)",
    "cllr_cal": "Cllr_cal = Cllr - Cllr_min (calibration loss)",
    "devpav": "devPAV (mean distance of the PAV transform from the identity, log10)",
    "nonmated_above_1": "share of different-person pairs with LR > 1",
    "mated_below_1": "share of same-person pairs with LR < 1",
    "max_group_difference": "largest |group LR - pooled LR| (log10) where the pooled LR is within its bounds",
}


def _num(x: Any) -> Any:
    """JSON numbers only: NaN and infinities become None (the document says where a value is absent)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, Flag):
            return {
                "code": obj.code,
                "params": {k: _json(v) for k, v in obj.params},
                "message": flag_message(obj),
            }
        return {f.name: _json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return _num(obj.item())
    return _num(obj)


def lr_text(log10_lr: float) -> str:
    """``1,300`` / ``1 / 45`` (an LR below 1 as its inverse), to 2 significant digits."""
    lr = 10.0 ** abs(log10_lr)
    body = f"{lr:,.0f}" if lr >= 100 else f"{lr:.2g}"
    return body if log10_lr >= 0 else f"1 / {body}"


def _group_words(label: Any, grouping: Any) -> str:
    return ", ".join(f"{c} = {v}" for c, v in zip(grouping, label)) or "everyone"


def flag_message(flag: Flag) -> str:
    p = dict(flag.params)
    code = flag.code
    if code == "outside_joint_support":
        who = f" of group {_group_words(p['group'], ['group'])}" if "group" in p else ""
        return (
            f"The score {p['score']:.6g} lies outside the range where the calibration data{who} hold both "
            f"same-person and different-person scores ({p['low']:.6g} to {p['high']:.6g}): its LR rests on "
            "one kind of comparison only and is held at the system's bound."
        )
    if code == "at_bound":
        return (
            f"The {p['which']} LR is at the system's empirical bound (log10 LR {p['bound']:.3g}): the "
            "calibration data cannot support a more extreme value, so none is given."
        )
    if code == "group_lr_differs":
        return (
            "The group-specific LR differs from the pooled one by a factor of "
            f"{10 ** abs(p['difference']):.3g} "
            f"(log10 difference {p['difference']:.3g}, interval {p['low']:.3g} to {p['high']:.3g}, which "
            "excludes 0): the same score carries different evidence for this group."
        )
    if code == "bulk_binned":
        return (
            f"{p['bulk_share']:.1%} of the different-person comparisons are known only by histogram bin "
            f"(width {p['bin_width']:.3g}); each counts at its bin's middle. Scores above each cell's tail "
            "cutoff are exact. Under resampling, the binned part of each group pair is assumed to keep its "
            "shape."
        )
    if code == "group_not_calibrated":
        return (
            f"Group {p['group']} could not be calibrated ({p['reason']}: {p.get('detail', '')}); it has no "
            "group-specific system."
        )
    if code == "estimate_outside_interval":
        return (
            f"The resampled values of {p['metric']} lie on one side of its value ({p['value']:.3g}; interval "
            f"{p['low']:.3g} to {p['high']:.3g}): the measure is biased on resampled data "
            "(PAV-based Cllr_min "
            "is optimistic on fewer distinct people); read the interval as its spread, not as bounds on it."
        )
    if code == "no_subject_bootstrap":
        return "No intervals: the calibration data do not say which people the comparisons come from."
    return code


def _est(e: Estimate | None, fmt: str = ".3g") -> str:
    if e is None or e.value is None or not math.isfinite(e.value):
        return "not measured"
    if e.low is None or e.high is None:
        return f"{e.value:{fmt}}"
    return f"{e.value:{fmt}} ({round(e.level * 100):g}% interval {e.low:{fmt}} to {e.high:{fmt}})"


def _verbal(scale: VerbalScale, log10_lr: float) -> dict:
    phrase, first = scale.phrase(log10_lr)
    if log10_lr == 0:
        sentence = "The comparison result provides no support for either proposition."
    else:
        prop, alt = ("the first proposition (same person)", "the alternative (different people)")
        if not first:
            prop, alt = alt, prop
        sentence = f"The comparison result provides {phrase} for {prop} relative to {alt}."
    return {
        "scale": scale.name,
        "phrase": phrase,
        "supports": "same person" if first else "different people",
        "sentence": sentence,
    }


def _statement_words(st: Statement, scale: VerbalScale, grouping: Any) -> list[str]:
    out = []
    main = st.group_log10_lr if st.group_log10_lr is not None else st.pooled_log10_lr
    v = main.value
    who = _group_words([g[1] for g in st.group], [g[0] for g in st.group]) if st.group else "everyone"
    out.append(
        f"A score of {st.score:.6g} is {lr_text(v)} times as probable if the two images show the same "
        f"person as if they show two different people (likelihood ratio, calibrated on {who})."
    )
    out.append(_verbal(scale, v)["sentence"])
    if main.low is not None:
        out.append(
            f"Given the size of the calibration data, the LR could plausibly lie between {lr_text(main.low)} "
            f"and {lr_text(main.high)} ({round(main.level * 100):g}% subject-bootstrap interval)."
        )
    if st.group_log10_lr is not None:
        d = st.group_log10_lr.value - st.pooled_log10_lr.value
        out.append(
            f"Calibrated on everyone instead, the same score gives LR {lr_text(st.pooled_log10_lr.value)}; "
            f"the group-specific LR is {10 ** abs(d):.3g} times {'larger' if d > 0 else 'smaller'}."
        )
    return out


def _difference_words(g: GroupCalibration, pooled_mated: float, pooled_nonmated: float, grouping: Any) -> str:
    """Why a group's LR differs from the pooled one, from where its scores lie."""
    who = _group_words(g.label, grouping)
    parts = []
    if math.isfinite(g.median_nonmated) and math.isfinite(pooled_nonmated):
        rel = "higher" if g.median_nonmated > pooled_nonmated else "lower"
        parts.append(
            f"different-person pairs within {who} score {rel} (median {g.median_nonmated:.3g}) than "
            f"pairs overall ({pooled_nonmated:.3g})"
        )
    if math.isfinite(g.median_mated) and math.isfinite(pooled_mated):
        rel = "higher" if g.median_mated > pooled_mated else "lower"
        parts.append(f"same-person pairs score {rel} (median {g.median_mated:.3g} vs {pooled_mated:.3g})")
    m = g.max_abs_difference
    size = f"up to a factor of {10**m.value:.3g}" if m is not None else "by an unmeasured amount"
    return (
        (
            f"For {who}, the same score carries an LR that differs from the pooled one {size} "
            "where the pooled LR is within its bounds; "
            "compared with all pairs, " + " and ".join(parts) + "."
        )
        if parts
        else f"For {who}: no comparison possible."
    )


def _summary(r: EvidenceResult, scale: VerbalScale) -> list[str]:
    s, v = r.system, r.validation
    out = []
    if r.statement is not None:
        out += _statement_words(r.statement, scale, r.population.grouping)
        out += [flag_message(f) for f in r.statement.flags]
    out.append(
        f"The likelihood ratios come from {METHOD_NAMES[s.method]} fitted on {s.n_mated:,.0f} "
        "same-person and "
        f"{s.n_nonmated:,.0f} different-person comparisons of {s.n_subjects:,} people; no LR beyond "
        f"{lr_text(s.lower_log10)} to {lr_text(s.upper_log10)} is given (empirical bounds, ELUB)."
    )
    out.append(
        f"Tested on people held out of the fit ({s.folds}-fold cross-validation by person), different-person "
        f"comparisons got LR > 1 in {v.nonmated_above_1.value:.2%} of cases and same-person "
        "comparisons LR < 1 "
        f"in {v.mated_below_1.value:.2%}; Cllr {_est(v.cllr)} bits, of which {_est(v.cllr_cal)} is "
        "calibration loss."
    )
    failed = [c.metric for c in r.matrix if c.status == "fail"]
    if failed:
        out.append("The system does not meet the validation criteria for: " + ", ".join(failed) + ".")
    return out


def _validation_json(v) -> dict:
    d = _json(v)
    plots = {k: d.pop(k) for k in ("tippett", "ece", "pav_transform")}
    return {"measures": d, "plots": plots}


def evidence_document(r: EvidenceResult, scale: VerbalScale = ENFSI_2015) -> dict:
    """The JSON document of an evidence result (English included, numbers JSON-safe)."""
    from faceaudit import __version__

    grouping = r.population.grouping
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "faceaudit_version": __version__,
        "summary": _summary(r, scale),
        "propositions": {
            "h1": "The two images show the same person.",
            "h2": "The two images show two different people of the relevant population: the people of the "
            "calibration set" + (f" (by {', '.join(grouping)}: see population)" if grouping else "") + ".",
        },
        "system": {**_json(r.system), "method_name": METHOD_NAMES[r.system.method]},
        "validation": _validation_json(r.validation),
        "population": _population_json(r),
        "groups": [_group_json(g, r, grouping) for g in r.groups],
        "pairs": [
            {
                **_json(p),
                "group_a": _group_words(p.label_a, grouping),
                "group_b": _group_words(p.label_b, grouping),
            }
            for p in r.pairs
        ],
        "matrix": [{**_json(c), "metric_name": METRIC_NAMES.get(c.metric, c.metric)} for c in r.matrix],
        "flags": [_json(f) for f in r.flags],
        "settings": _json(r.settings),
        "provenance": _json(r.provenance),
        "verbal_scale": {"name": scale.name, "levels": [[_num(b), p] for b, p in scale.levels]},
        "approximations": [
            "Different-person scores below each group pair's tail cutoff are known by histogram bin only and "
            "count at the bin's middle (moved by at most one bin width, stated in system.bin_width).",
            "Intervals resample people (stratified by group); validation intervals keep the "
            "cross-validated LRs fixed and re-weight the pairs, LR intervals refit the system (ELUB "
            "included) on every replicate.",
        ],
    }
    if r.statement is not None:
        st = r.statement
        main = st.group_log10_lr if st.group_log10_lr is not None else st.pooled_log10_lr
        doc["statement"] = {
            **_json(st),
            "verbal": _verbal(scale, main.value),
            "lr": _num(10.0**main.value),
            "sentences": _statement_words(st, scale, grouping),
        }
    return doc


def _population_json(r: EvidenceResult) -> dict:
    grouping = r.population.grouping
    return {
        "grouping": list(grouping),
        "groups": [
            {
                "group": _group_words(label, grouping),
                "label": list(label),
                "subjects": n,
                "mated_pairs": m,
                "nonmated_pairs_involving": nm,
            }
            for label, n, m, nm in r.population.groups
        ],
    }


def _group_json(g: GroupCalibration, r: EvidenceResult, grouping: Any) -> dict:
    d = _json(g)
    for k in ("pooled", "own"):
        if d[k] is not None:
            d[k] = _validation_json(getattr(g, k))
    d["group"] = _group_words(g.label, grouping)
    d["explanation"] = _difference_words(g, r.system.median_mated, r.system.median_nonmated, grouping)
    return d
