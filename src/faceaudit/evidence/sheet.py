"""The evidence sheet: one self-contained HTML page from the evidence document alone.

Vega-Lite is inlined as in the audit report (:mod:`faceaudit.report.html`: same vendored files, same
Content Security Policy by script hash, same escaping of the embedded JSON); the chart specs are built here
from the document's plot data. Plain words first, numbers after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faceaudit.report.html import TEMPLATES, environment, page_basics, script_json, vendor_js

__all__ = ["render_evidence_html", "write_evidence_html", "chart_specs"]

_WIDTH, _HEIGHT = 420, 260


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


def chart_specs(doc: Mapping[str, Any]) -> dict[str, dict]:
    """Tippett, ECE, PAV transform and per-group LR-vs-score charts from the document's plot data."""
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
    return specs


def render_evidence_html(doc: Mapping[str, Any]) -> str:
    doc = json.loads(json.dumps(doc, sort_keys=True, allow_nan=False))
    env = environment()
    vendor = vendor_js()
    app = (TEMPLATES / "evidence.js.j2").read_text(encoding="utf-8")
    page = page_basics([*vendor, app])
    return env.get_template("evidence.html.j2").render(
        doc=doc,
        charts_json=script_json(chart_specs(doc)),
        data_json=script_json(doc),
        vendor_scripts=vendor,
        app_script=app,
        **page,
    )


def write_evidence_html(doc: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_evidence_html(doc), encoding="utf-8", newline="\n")
    return path
