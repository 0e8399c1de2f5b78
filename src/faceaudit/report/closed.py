"""The closed-system audit as one self-contained HTML page (``faceaudit audit --scores decisions.csv ...
--report`` / ``faceaudit report closed.json``), rendered from the ``faceaudit.closed_audit`` document alone.

The audit report's machinery (:mod:`faceaudit.report.html`): the same Jinja environment and filters, the
same inlined Vega-Lite and Content Security Policy by script hash, the same stylesheet and escaping of the
embedded JSON. The words are :data:`faceaudit.report.document.CLOSED_WORDS`; this module selects numbers
from the document and computes none but the rates of the DET rows it draws (count / total, as written).
The DET chart (censored results only) is a Vega-Lite spec built here and drawn by templates/closed.js.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faceaudit.report.document import CLOSED_WORDS, fmt_num
from faceaudit.report.html import (
    TEMPLATES,
    claims_view,
    environment,
    flatten_rows,
    fmt_int,
    fmt_threshold,
    input_rows,
    page_basics,
    script_json,
    vendor_js,
)
from faceaudit.report.jsonout import to_jsonable

__all__ = ["CLOSED_SCHEMA", "closed_view", "det_chart_specs", "render_closed_html", "write_closed_html"]

CLOSED_SCHEMA = "faceaudit.closed_audit"
#: DET points per curve in the chart, and per group in its table alternative (evenly spread along the curve)
CHART_POINTS, TABLE_POINTS = 400, 25
_OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def _spread(n: int, k: int) -> list[int]:
    """Up to ``k`` indices of ``range(n)``, evenly spread, the first and the last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _by_grouping(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Entries grouped by their ``grouping`` label, in the document's order."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for e in entries:
        out.setdefault(str(e["grouping"]), []).append(e)
    return list(out.items())


def _point_view(p: Mapping[str, Any], default_threshold: Any) -> dict[str, Any]:
    if p["threshold"] is None:
        title = CLOSED_WORDS["point_decision"]
    else:
        title = CLOSED_WORDS["point_threshold"].format(threshold=fmt_threshold(p["threshold"]))
        title += CLOSED_WORDS["point_default"] if p["threshold"] == default_threshold else ""
    tables = [(CLOSED_WORDS["overall_caption"], [p["overall"]])]
    tables += [(CLOSED_WORDS["grouping_caption"].format(grouping=g), rows)
               for g, rows in _by_grouping(p["by_group"])]
    cross = [{**m, "title": CLOSED_WORDS["cross_h"].format(grouping=m["grouping"])}
             for m in p["cross_group_fmr"]]
    return {"title": title, "tables": tables, "cross": cross}


def _det_rows(c: Mapping[str, Any], indices: Sequence[int]) -> list[dict[str, Any]]:
    return [{"i": i, "threshold": c["threshold"][i], "fm": c["false_matches"][i], "nm": c["nonmated"],
             "fnm": c["false_non_matches"][i], "m": c["mated"]} for i in indices]


def _det_view(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per grouping: the element id of its chart, its curves with their EER, and the table alternative's
    rows (exact counts at up to TABLE_POINTS thresholds of each curve)."""
    out = []
    for k, (grouping, curves) in enumerate(_by_grouping(doc.get("det_above_censoring") or [])):
        shown = [{**c, "points": len(c["threshold"]),
                  "eer_text": c["eer_note"] if c["eer"] is None else CLOSED_WORDS["det_eer"].format(
                      eer=fmt_num(c["eer"]), threshold=fmt_threshold(c["eer_threshold"])),
                  "rows": _det_rows(c, _spread(len(c["threshold"]), TABLE_POINTS))} for c in curves]
        out.append({"id": f"det-chart-{k}", "grouping": grouping, "curves": shown,
                    "label": CLOSED_WORDS["det_label"].format(grouping=grouping),
                    "summary": CLOSED_WORDS["det_table"].format(grouping=grouping, points=TABLE_POINTS)})
    return out


def _det_spec(grouping: str, curves: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A DET chart (log FMR across, log FNMR up) of the curves of one grouping; points with a zero rate
    cannot sit on a log axis and are left out of the chart (the table alternative has them)."""
    rows = [{"group": c["group"], "i": r["i"], "fmr": r["fm"] / r["nm"], "fnmr": r["fnm"] / r["m"],
             "threshold": r["threshold"]}
            for c in curves for r in _det_rows(c, _spread(len(c["threshold"]), CHART_POINTS))
            if r["fm"] > 0 and r["fnm"] > 0]
    groups = [c["group"] for c in curves]
    colors = [_OKABE_ITO[i % len(_OKABE_ITO)] for i in range(len(groups))]
    color = {"field": "group", "type": "nominal", "title": grouping,
             "scale": {"domain": groups, "range": colors}}
    log = {"labelExpr": "abs(round(log(datum.value) / LN10) - log(datum.value) / LN10) < 1e-6 ? "
                        "format(datum.value, '.0e') : ''"}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 560, "height": 380, "data": {"values": rows},
        "mark": {"type": "line", "strokeWidth": 1.6, "point": False},
        "encoding": {
            "x": {"field": "fmr", "type": "quantitative", "scale": {"type": "log"},
                  "axis": {**log, "title": CLOSED_WORDS["col_fmr"]}},
            "y": {"field": "fnmr", "type": "quantitative", "scale": {"type": "log"},
                  "axis": {**log, "title": CLOSED_WORDS["col_fnmr"]}},
            "color": color, "order": {"field": "i", "type": "quantitative"},
            "tooltip": [{"field": "group"}, {"field": "threshold", "format": ".6g"},
                        {"field": "fmr", "format": ".3g", "title": "FMR"},
                        {"field": "fnmr", "format": ".3g", "title": "FNMR"}],
        },
        "config": {"font": "system-ui, sans-serif"},
    }


def det_chart_specs(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The DET charts of a censored document, keyed by the id of the element each is drawn in."""
    return {d["id"]: _det_spec(d["grouping"], d["curves"]) for d in _det_view(doc)}


def _plain(doc: Mapping[str, Any]) -> list[str]:
    c, level = doc["counts"], round(doc["settings"]["level"] * 100)
    amounts = {"mated": fmt_int(c["mated"]), "nonmated": fmt_int(c["nonmated"])}
    if doc["kind"] == "decision":
        out = [CLOSED_WORDS["kind_decision"].format(**amounts)]
    else:
        cen = doc["censoring"]
        out = [CLOSED_WORDS["kind_censored"].format(
            level=fmt_threshold(cen["level"]), censored_mated=fmt_int(cen["censored_mated"]),
            censored_nonmated=fmt_int(cen["censored_nonmated"]), **amounts)]
    out.append(CLOSED_WORDS["rates_words"].format(level=level))
    verdicts = (doc.get("claims") or {}).get("verdicts") or []
    if verdicts:
        n = {w: sum(v["verdict"] == w for v in verdicts) for w in ("pass", "fail", "not_enough_data")}
        out.append(CLOSED_WORDS["claims_summary"].format(
            n=len(verdicts), passed=n["pass"], failed=n["fail"], unsure=n["not_enough_data"]))
    return out


def closed_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the page shows, from the document alone."""
    censoring = doc.get("censoring") or {}
    settings = [(CLOSED_WORDS["version"], str(doc["faceaudit_version"]))] + flatten_rows(doc["settings"])
    if censoring:
        settings += flatten_rows({"level": censoring["level"], "rule": censoring["rule"]},
                             CLOSED_WORDS["censoring_rule"])
    counts = {k: v for k, v in doc["counts"].items() if k != "exclusions"}
    return {
        "w": CLOSED_WORDS,
        "plain": _plain(doc),
        "level": round(doc["settings"]["level"] * 100),
        "points": [_point_view(p, censoring.get("level")) for p in doc["points"]],
        "det": _det_view(doc),
        "det_words": CLOSED_WORDS["det_words"].format(level=fmt_threshold(censoring.get("level"))),
        "claims": claims_view(doc.get("claims")),
        "exclusions": sorted((doc["counts"].get("exclusions") or {}).items()),
        "counts": sorted(counts.items()),
        "inputs": input_rows(doc.get("manifest") or {}),
        "settings": settings,
        "provenance": flatten_rows(doc.get("manifest") or {}),
    }


def render_closed_html(doc: Mapping[str, Any]) -> str:
    """The page of a closed-system audit document (:func:`~faceaudit.report.document.closed_audit_json` or
    a JSON file's contents): the same bytes from either."""
    doc = json.loads(json.dumps(to_jsonable(dict(doc)), sort_keys=True, allow_nan=False))
    specs = det_chart_specs(doc)
    vendor = vendor_js() if specs else []  # decision-only results have no chart: no library to inline
    app = (TEMPLATES / "closed.js").read_text(encoding="utf-8")
    return environment().get_template("closed.html.j2").render(
        doc=doc,
        cv=closed_view(doc),
        data_json=script_json(doc),
        charts_json=script_json(specs),
        vendor_scripts=vendor,
        app_script=app,
        **page_basics([*vendor, app]),
    )


def write_closed_html(doc: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_closed_html(doc), encoding="utf-8", newline="\n")
    return path
