"""The evidence panel of the audit report and the evidence sheet's charts, from ``faceaudit.evidence/1``
documents: whether a document describes the audit's evaluation set (``evidence_consistency``), the
Vega-Lite chart specs (``chart_specs``: one builder for the sheet and the panel) and what the panel shows
(``evidence_view``). Every number is the evidence document's (computed in Python by
:mod:`faceaudit.evidence`); this module selects them, it computes none. Its sentences come from the documents
themselves and from :mod:`faceaudit.report.document`. Reading, checking and attaching documents:
:mod:`faceaudit.report.evidence`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CHARTS",
    "evidence_consistency",
    "chart_specs",
    "panel_chart_specs",
    "panel_prefix",
    "evidence_view",
]

_WIDTH, _HEIGHT = 420, 260
#: the charts of one evidence document: element id suffix -> caption
CHARTS = {
    "chart-tippett": "Tippett plot: share of comparisons whose log10 LR exceeds each value",
    "chart-ece": "Empirical cross-entropy: lower is better; at prior log10 odds 0 it equals Cllr",
    "chart-pav": "PAV transform: how far the system's LRs are from calibrated ones",
    "chart-groups": "LR against score: each group's own system and the pooled one",
}


# ----------------------------------------------------------------------------------------------
# the audit and the evidence: the same data?
# ----------------------------------------------------------------------------------------------


def _calibration_hash(ev: Mapping[str, Any]) -> str | None:
    entry = (ev.get("provenance") or {}).get("calibration")
    if isinstance(entry, Mapping) and entry.get("sha256"):
        return str(entry["sha256"])
    return None


def _audit_hash(doc: Mapping[str, Any]) -> str | None:
    entry = ((doc.get("manifest") or {}).get("inputs") or {}).get("distributions")
    if isinstance(entry, Mapping) and entry.get("sha256"):
        return str(entry["sha256"])
    return None


def _status(audit_doc: Mapping[str, Any] | None, ev: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    mine = _calibration_hash(ev)
    if audit_doc is None:
        cal = (ev.get("provenance") or {}).get("calibration") or {}
        return "standalone", {"sha256": mine, "path": cal.get("path") if isinstance(cal, Mapping) else None}
    theirs = _audit_hash(audit_doc)
    if mine and theirs:
        if mine == theirs:
            return "verified", {"sha256": mine}
        return "mismatch", {"mine": mine, "theirs": theirs}
    system, counts = ev.get("system") or {}, audit_doc.get("counts") or {}
    for key, what in (("mated", "same-person"), ("nonmated", "different-person")):
        n, m = system.get(f"n_{key}"), counts.get(key)
        if isinstance(n, (int, float)) and isinstance(m, (int, float)) and n != m:
            return "mismatch", {"mine": n, "theirs_count": m, "what": what}
    return "unverified", {
        "audit_missing": not theirs,
        "mated": system.get("n_mated"),
        "nonmated": system.get("n_nonmated"),
    }


def evidence_consistency(audit_doc: Mapping[str, Any] | None, ev: Mapping[str, Any]) -> dict[str, Any]:
    """Whether an evidence document describes the audit's evaluation set: ``status`` is ``verified`` (the
    same .fadist file, by sha256), ``mismatch`` (another file, or other comparison counts), ``unverified``
    (a side records no file and the counts agree) or ``standalone`` (no audit), with ``detail`` in words."""
    from faceaudit.report.document import evidence_consistency_words

    status, params = _status(audit_doc, ev)
    return {"status": status, "detail": evidence_consistency_words(status, params)}


# ----------------------------------------------------------------------------------------------
# charts (the evidence sheet and the audit report's panel draw the same specs)
# ----------------------------------------------------------------------------------------------


def _line(rows: list[dict], x: str, y: str, color: str, xt: str, yt: str, extra: list | None = None) -> dict:
    layer = [
        {
            "mark": {"type": "line", "interpolate": "linear"},
            "encoding": {
                "x": {"field": x, "type": "quantitative", "title": xt},
                "y": {"field": y, "type": "quantitative", "title": yt},
                "color": {"field": color, "type": "nominal", "title": None},
                "tooltip": [{"field": color}, {"field": x, "format": ".3g"}, {"field": y, "format": ".3g"}],
            },
        }
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": _WIDTH,
        "height": _HEIGHT,
        "data": {"values": rows},
        "layer": layer + (extra or []),
    }


def chart_specs(doc: Mapping[str, Any], prefix: str = "") -> dict[str, dict]:
    """Tippett, ECE, PAV transform and per-group LR-vs-score charts from an evidence document's plot data,
    keyed by the id of the element each is drawn in (``prefix`` + ``chart-tippett``, ...)."""
    plots = doc["validation"]["plots"]
    tip = plots["tippett"]
    rows = [
        {"log10 LR": x, "share": v, "comparisons": name}
        for key, name in (("mated", "same person"), ("nonmated", "different people"))
        for x, v in zip(tip["log10_lr"], tip[key])
    ]
    specs = {
        "chart-tippett": _line(
            rows, "log10 LR", "share", "comparisons", "log10 LR", "share of comparisons with a larger LR"
        )
    }
    ece = plots["ece"]
    rows = [
        {"prior log10 odds": x, "ECE (bits)": v, "LRs": name}
        for key, name in (
            ("system", "this system"),
            ("pav", "after PAV recalibration"),
            ("neutral", "LR = 1"),
        )
        for x, v in zip(ece["prior_log10_odds"], ece[key])
    ]
    specs["chart-ece"] = _line(
        rows, "prior log10 odds", "ECE (bits)", "LRs", "prior log10 odds", "empirical cross-entropy (bits)"
    )
    tr = plots["pav_transform"]
    rows = [
        {"system log10 LR": x, "log10 LR": y, "curve": "PAV transform"}
        for x, y in zip(tr["log10_lr"], tr["pav_log10_lr"])
        if y is not None
    ]
    rows += [
        {"system log10 LR": x, "log10 LR": x, "curve": "identity (perfect calibration)"}
        for x in (min(tr["log10_lr"]), max(tr["log10_lr"]))
    ]
    specs["chart-pav"] = _line(
        rows, "system log10 LR", "log10 LR", "curve", "log10 LR given by the system", "log10 LR after PAV"
    )
    if doc["groups"]:
        rows = [
            {"score": s, "log10 LR": v, "system": "pooled (everyone)"}
            for s, v in zip(doc["groups"][0]["scores"], doc["groups"][0]["pooled_log10_lr"])
        ]
        for g in doc["groups"]:
            rows += [
                {"score": s, "log10 LR": v, "system": g["group"]}
                for s, v in zip(g["scores"], g["own_log10_lr"])
            ]
        specs["chart-groups"] = _line(rows, "score", "log10 LR", "system", "comparison score", "log10 LR")
    return {prefix + k: v for k, v in specs.items()}


def panel_prefix(k: int) -> str:
    return f"evidence-{k}-"


def panel_chart_specs(audit_doc: Mapping[str, Any]) -> dict[str, dict]:
    """Every chart of every evidence document the audit document carries, keyed by element id."""
    out: dict[str, dict] = {}
    for k, ev in enumerate(audit_doc.get("evidence") or []):
        out.update(chart_specs(ev, panel_prefix(k)))
    return out


# ----------------------------------------------------------------------------------------------
# the panel: what it shows, selected from the document (every number is the document's)
# ----------------------------------------------------------------------------------------------

MEASURE_KEYS = (
    "cllr",
    "cllr_min",
    "cllr_cal",
    "devpav",
    "nonmated_above_1",
    "mated_below_1",
    "nonmated_strongly",
    "mated_strongly",
)
#: the per-group table's columns (the overall table has every measure)
GROUP_KEYS = ("cllr", "cllr_min", "cllr_cal", "nonmated_above_1", "mated_below_1")


def _terms(strong_log10: Any) -> dict[str, str]:
    from faceaudit.report.document import EVIDENCE_TERMS, fmt_num

    strong = fmt_num(10.0 ** float(strong_log10)) if isinstance(strong_log10, (int, float)) else "?"
    return {k: v.format(strong=strong) for k, v in EVIDENCE_TERMS.items()}


def _measure_rows(measures: Mapping[str, Any], keys: Iterable[str]) -> list[dict[str, Any]]:
    terms = _terms(measures.get("strong_log10"))
    return [{"key": k, "name": terms[k], "estimate": measures[k]} for k in keys]


def _group_rows(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    from faceaudit.report.document import EVIDENCE_WORDS

    """Per group: the pooled system's and the group's own system's measures on the group's pairs, and the
    largest difference between their LR-vs-score curves."""
    out = []
    for g in ev["groups"]:
        systems = []
        for system in ("pooled", "own"):
            name = EVIDENCE_WORDS[f"{system}_system"]
            v = g[system]
            estimates = [v["measures"][k] for k in GROUP_KEYS] if v is not None else None
            systems.append({"system": system, "system_name": name, "estimates": estimates})
        out.append({"group": str(g["group"]), "systems": systems,
                    "max_abs_difference": g["max_abs_difference"]})
    return out


def _flags(ev: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every flag of the document once, with its message: the document's, the validation's, the groups'."""
    found = list(ev["flags"]) + list(ev["validation"]["measures"]["flags"])
    for g in ev["groups"]:
        found += list(g["flags"])
    seen, out = set(), []
    for f in found:
        if f["message"] not in seen:
            seen.add(f["message"])
            out.append({"code": str(f["code"]), "message": str(f["message"])})
    return out


def _statement(ev: Mapping[str, Any]) -> dict[str, Any] | None:
    from faceaudit.report.document import EVIDENCE_WORDS

    st = ev.get("statement")
    if st is None:
        return None
    rows = []
    if st["group_log10_lr"] is not None:
        label = ", ".join(f"{c} = {v}" for c, v in st["group"]) or "the group"
        name = EVIDENCE_WORDS["group_row"].format(group=label)
        rows.append({"system": "group", "name": name, "estimate": st["group_log10_lr"]})
    pooled = st["pooled_log10_lr"]
    rows.append({"system": "pooled", "name": EVIDENCE_WORDS["pooled_row"], "estimate": pooled})
    return {
        "score": st["score"],
        "lr": st["lr"],
        "sentences": [str(s) for s in st["sentences"]],
        "verbal": str(st["verbal"]["sentence"]),
        "scale": str(st["verbal"]["scale"]),
        "flags": [{"code": str(f["code"]), "message": str(f["message"])} for f in st["flags"]],
        "rows": rows,
    }


def _provenance(ev: Mapping[str, Any]) -> list[tuple[str, str]]:
    from faceaudit.report.document import EVIDENCE_PROVENANCE_LABELS as LABEL
    from faceaudit.report.document import EVIDENCE_WORDS as W
    from faceaudit.report.document import fmt_num

    s, st = ev["system"], ev["settings"]
    cal = (ev.get("provenance") or {}).get("calibration")
    source = ev.get("source")
    values = {
        "system": W["system"].format(name=s["method_name"], method=s["method"]),
        "bounds": W["bounds"].format(low=fmt_num(s["lower_log10"]), high=fmt_num(s["upper_log10"])),
        "folds": W["folds"].format(folds=st["folds"]),
        "bootstrap": W["bootstrap"].format(bootstrap=st["bootstrap"], seed=st["seed"], level=st["level"]),
        "grouping": ", ".join(map(str, st["grouping"])) or W["nobody"],
        "version": str(ev["faceaudit_version"]),
    }
    for key, entry in (("calibration", cal), ("source", source)):
        if isinstance(entry, Mapping):
            values[key] = W["file"].format(path=entry.get("path"), sha256=entry.get("sha256"))
    return [(LABEL[k], v) for k, v in values.items()]


def evidence_view(ev: Mapping[str, Any], k: int, audit_doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the evidence panel ``k`` shows: the document's words and numbers, selected; text is escaped by
    the template, numbers formatted by its filters."""
    from faceaudit.report.document import EVIDENCE_WORDS

    s, v = ev["system"], ev["validation"]["measures"]
    grouping = ", ".join(map(str, ev["population"]["grouping"]))
    prefix = panel_prefix(k)
    title = EVIDENCE_WORDS["title_grouped" if grouping else "title"]
    charts = [(prefix + c, caption) for c, caption in CHARTS.items() if c != "chart-groups"]
    return {
        "k": k,
        "title": title.format(method=s["method_name"], folds=s["folds"], grouping=grouping),
        "consistency": evidence_consistency(audit_doc, ev),
        "summary": [str(x) for x in ev["summary"]],
        "statement": _statement(ev),
        "propositions": {"h1": str(ev["propositions"]["h1"]), "h2": str(ev["propositions"]["h2"])},
        "overall": _measure_rows(v, MEASURE_KEYS),
        "groups": _group_rows(ev),
        "explanations": [(str(g["group"]), str(g["explanation"])) for g in ev["groups"]],
        "matrix": ev["matrix"],
        "pairs": ev["pairs"],
        "population": ev["population"]["groups"],
        "flags": _flags(ev),
        "approximations": [str(a) for a in ev["approximations"]],
        "provenance": _provenance(ev),
        "charts": charts,
        "group_chart": (prefix + "chart-groups", CHARTS["chart-groups"]) if ev["groups"] else None,
    }
