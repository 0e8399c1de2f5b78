"""The evidence sheet: one self-contained HTML page from the evidence document alone.

Vega-Lite is inlined as in the audit report (:mod:`faceaudit.report.html`: same vendored files, same
Content Security Policy by script hash, same escaping of the embedded JSON); the chart specs are the ones
the audit report's evidence panel draws (:func:`faceaudit.report.evidence_panel.chart_specs`), drawn by the
same script (templates/evidence.js). Plain words first, numbers after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faceaudit.report.evidence_panel import chart_specs
from faceaudit.report.html import TEMPLATES, environment, page_basics, script_json, vendor_js

__all__ = ["render_evidence_html", "write_evidence_html", "chart_specs"]


def render_evidence_html(doc: Mapping[str, Any]) -> str:
    doc = json.loads(json.dumps(doc, sort_keys=True, allow_nan=False))
    env = environment()
    vendor = vendor_js()
    app = (TEMPLATES / "evidence.js").read_text(encoding="utf-8")
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
