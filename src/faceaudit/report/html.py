"""The audit as one self-contained HTML page (and a PDF of it), rendered from the JSON document alone.

The page opens from disk with no network: Vega, Vega-Lite and Vega-Embed are inlined from
``report/vendor/`` (see its README), the audit document is embedded as JSON, and a Content Security
Policy forbids every fetch and every script but the page's own (by hash). Labels from input files are
untrusted: Jinja escapes every one, the embedded JSON escapes ``<``, ``>`` and ``&``, and the page's
script writes text with ``textContent`` only.

Determinism: the same document gives the same bytes (no clock, sorted keys), so
``faceaudit report result.json`` reproduces the page that ``faceaudit audit --report`` wrote.

A scenario document (``faceaudit scenario --json``) renders as a page of its own, with the same panel
that an audit document's ``scenarios`` get in the full report (``templates/scenario_panel.html.j2``).
An audit document's ``evidence`` (``faceaudit evidence --json`` documents, since 1.3) get the evidence
panel (``templates/evidence_panel.html.j2``), whose charts are the evidence sheet's specs drawn by the
sheet's script (``templates/evidence.js``); a page without evidence carries neither that script nor its
hash, so its bytes are those of a 1.2 page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from faceaudit.report.document import fmt_count, fmt_interval, fmt_num, format_rate
from faceaudit.report.evidence_panel import evidence_view, panel_chart_specs
from faceaudit.report.headline import estimate_text, left_out_text, pair_text, ratio_text
from faceaudit.report.jsonout import to_jsonable
from faceaudit.report.scenarios import (
    SCENARIO_SCHEMA,
    fmt_big,
    fmt_expected,
    fmt_pct,
    fmt_prob,
    scenario_view,
)

__all__ = ["render_html", "write_html", "write_pdf", "find_chromium", "CHROMIUM_FLAGS"]

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
VENDOR = HERE / "vendor"
VENDOR_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")

#: flags for headless Chromium as root in a container, with no network and no profile
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


# ----------------------------------------------------------------------------------------------
# formatting (Jinja filters); the page's script formats live numbers the same way
# ----------------------------------------------------------------------------------------------


def fmt_int(n: Any) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def fmt_threshold(x: Any) -> str:
    return "n/a" if x is None else (x if isinstance(x, str) else f"{float(x):.6g}")


def fmt_rate(rate: Mapping[str, Any] | None) -> str:
    """``0.00098 (46 of 46,846; 95% CI 0.00072–0.0013)``; zero gets its rule-of-3 bound."""
    return format_rate(rate, "html")


def one_in(x: Any) -> str:
    """``1 in 1,000`` for a rate, for plain-language sentences."""
    if x is None or isinstance(x, str) or float(x) <= 0:
        return "none"
    n = 1.0 / float(x)
    return f"1 in {round(n):,}" if n >= 1.5 else f"{float(x) * 100:.0f} in 100"


# ----------------------------------------------------------------------------------------------
# the view model: what the template shows, from the document alone
# ----------------------------------------------------------------------------------------------


def flatten_rows(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, Mapping):
        out: list[tuple[str, str]] = []
        for k in sorted(obj, key=str):
            out += flatten_rows(obj[k], f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and any(isinstance(v, (Mapping, list)) for v in obj):
        out = []
        for i, v in enumerate(obj):
            out += flatten_rows(v, f"{prefix}[{i}]")
        return out
    if isinstance(obj, list):
        return [(prefix, ", ".join(map(str, obj)))]
    return [(prefix, "" if obj is None else str(obj))]


def input_rows(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, entry in sorted((manifest.get("inputs") or {}).items()):
        if isinstance(entry, Mapping):
            out.append(
                {
                    "name": str(name),
                    "path": str(entry.get("path", "")),
                    "sha256": str(entry.get("sha256", "") or ""),
                }
            )
    return out


def _models(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every manifest entry that names or fingerprints a model."""
    return [(k, v) for k, v in flatten_rows(manifest) if "model" in k.lower() and v]


def _fta(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """A failure-to-acquire summary (faceaudit.models.fta_summary) wherever the manifest holds one."""
    for key in ("fta", "failure_to_acquire"):
        if isinstance(manifest.get(key), Mapping):
            return manifest[key]
    for entry in (manifest.get("inputs") or {}).values():
        if isinstance(entry, Mapping):
            for key in ("fta", "failure_to_acquire"):
                if isinstance(entry.get(key), Mapping):
                    return entry[key]
    return None


def _group_extremes(entries: list[Mapping[str, Any]], index: int, rate: str) -> dict[str, Any] | None:
    usable = [
        (e["group"], e["at_global_threshold"][index][rate])
        for e in entries
        if e.get("at_global_threshold") and e["at_global_threshold"][index][rate].get("value") is not None
    ]
    if len(usable) < 2:
        return None
    lo = min(usable, key=lambda gv: gv[1]["value"])
    hi = max(usable, key=lambda gv: gv[1]["value"])
    return {"low_group": lo[0], "low": lo[1], "high_group": hi[0], "high": hi[1]}


def view_model(doc: Mapping[str, Any]) -> dict[str, Any]:
    settings, counts, overall = doc["settings"], doc["counts"], doc["overall"]
    manifest = doc.get("manifest") or {}
    targets = settings.get("fmr_targets", [])
    primary = overall["operating_points"][0] if overall.get("operating_points") else None
    extremes = []
    if primary is not None:
        for grouping, entries in doc.get("by_group", {}).items():
            extremes.append(
                {
                    "grouping": grouping,
                    "fmr": _group_extremes(entries, 0, "fmr"),
                    "fnmr": _group_extremes(entries, 0, "fnmr"),
                }
            )
    return {
        "targets": targets,
        "primary": primary,
        "extremes": extremes,
        "inputs": input_rows(manifest),
        "models": _models(manifest),
        "provenance": flatten_rows(manifest),
        "settings_rows": flatten_rows(settings),
        "exclusions": sorted((counts.get("exclusions") or {}).items()),
        "fta": _fta(manifest),
        "groupings": list(doc.get("by_group", {})),
        "has_distributions": isinstance(doc.get("distributions"), Mapping),
        "scenarios": [scenario_view(x, doc) for x in doc.get("scenarios") or [] if isinstance(x, Mapping)],
        "evidence": [evidence_view(x, k, doc) for k, x in enumerate(doc.get("evidence") or [])],
        "claims": claims_view(doc.get("claims")),
        **_cards_view(doc),
    }


def _cards_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The headline, and the cards at the headline's target FMR (else the first target), each with its
    index in ``doc.cards`` (the page's script draws the heat map from it)."""
    headline = doc.get("headline") if isinstance(doc.get("headline"), Mapping) else None
    cards = [c for c in doc.get("cards") or [] if isinstance(c, Mapping)]
    targets = [c.get("fmr_target") for c in cards]
    target = (
        headline.get("fmr_target")
        if headline and headline.get("fmr_target") in targets
        else (targets[0] if targets else None)
    )
    shown = [{**c, "index": i} for i, c in enumerate(cards) if c.get("fmr_target") == target]
    return {"headline": headline, "cards": shown, "cards_target": target}


def card_cell(cell: Mapping[str, Any] | None) -> str:
    """``2.7e-04 (1,183 of 4,375,438; 95% CI 2.6e-04–2.9e-04)``; none under the pairing: ``n/a``."""
    if not cell or not cell.get("total"):
        return "n/a (no comparisons)"
    if cell["count"] == 0:
        return f"0 of {cell['total']:,} (≤ {cell['rule_of_three_upper']:.2g}, rule of 3)"
    return (
        f"{cell['value']:.2g} ({cell['count']:,} of {cell['total']:,}; CI {cell['low']:.2g}–"
        f"{cell['high']:.2g})"
    )


def claims_view(section: Any) -> dict[str, Any] | None:
    """The claim checks (``audit --claim``) as the page shows them, or None without any."""
    if not isinstance(section, Mapping) or not section.get("verdicts"):
        return None
    from faceaudit.report.document import CLAIM_WORDS

    rows = [{**v, "word": CLAIM_WORDS.get(v["verdict"], v["verdict"])} for v in section["verdicts"]]
    return {"rule": section.get("rule", ""), "rows": rows}


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_num,
        int=fmt_int,
        thr=fmt_threshold,
        count=fmt_count,
        interval=fmt_interval,
        rate=fmt_rate,
        one_in=one_in,
        expected=fmt_expected,
        big=fmt_big,
        prob=fmt_prob,
        pct=fmt_pct,
        ratio=ratio_text,
        pair=pair_text,
        estimate=estimate_text,
        left_out=left_out_text,
        card_cell=card_cell,
    )
    return env


def script_json(doc: Any) -> str:
    """JSON safe inside <script type="application/json">: no '<', '>', '&' or line separators."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for a, b in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(a, b)
    return text


def vendor_js() -> list[str]:
    out = []
    for name in VENDOR_FILES:
        text = (VENDOR / name).read_text(encoding="utf-8")
        lines = [ln for ln in text.splitlines() if not ln.startswith("//# sourceMappingURL=")]
        js = "\n".join(lines)
        if "</script" in js.lower():  # pragma: no cover - guarded for future vendor updates
            raise RuntimeError(f"{name} contains '</script' and cannot be inlined")
        out.append(js)
    return out


def csp_hash(script: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
    )


def page_basics(scripts: list[str]) -> dict[str, Any]:
    """What every self-contained page carries: the stylesheet, a Content-Security-Policy that lets only
    ``scripts`` (by hash) run and nothing be fetched, and the inlined libraries' versions."""
    csp = "; ".join(
        [
            "default-src 'none'",
            # vega compiles expressions: 'unsafe-eval'
            "script-src " + " ".join(csp_hash(s) for s in scripts) + " 'unsafe-eval'",
            "style-src 'unsafe-inline'",
            "img-src data:",
            "font-src 'none'",
            "connect-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
        ]
    )
    return {
        "css": (TEMPLATES / "report.css").read_text(encoding="utf-8"),
        "csp": csp,
        "vendor_versions": json.loads((VENDOR / "versions.json").read_text(encoding="utf-8")),
    }


def render_html(doc: Mapping[str, Any]) -> str:
    """The report page for an audit document (:func:`faceaudit.report.document.audit_document` or a
    JSON file's contents),
    or the scenario page for a scenario document."""
    # one canonical form (sorted keys, JSON types) whether the document comes from an AuditResult or a
    # file: the page's tables (Jinja) and its script (JSON.parse) then see groups in the same order
    doc = json.loads(json.dumps(to_jsonable(dict(doc)), sort_keys=True, allow_nan=False))
    env = environment()
    vendor = vendor_js()
    scenario_js = (TEMPLATES / "scenario.js").read_text(encoding="utf-8")
    standalone = doc.get("schema") == SCENARIO_SCHEMA
    app = "" if standalone else (TEMPLATES / "report.js").read_text(encoding="utf-8")
    with_evidence = not standalone and bool(doc.get("evidence"))
    evidence_js = (TEMPLATES / "evidence.js").read_text(encoding="utf-8") if with_evidence else ""
    scripts = [*vendor, scenario_js] + ([] if standalone else [app]) + ([evidence_js] if evidence_js else [])
    page = page_basics(scripts)
    if standalone:
        return env.get_template("scenario.html.j2").render(
            doc=doc,
            sv=scenario_view(doc),
            data_json=script_json(doc),
            vendor_scripts=vendor,
            scenario_script=scenario_js,
            **page,
        )
    return env.get_template("report.html.j2").render(
        doc=doc,
        vm=view_model(doc),
        data_json=script_json(doc),
        vendor_scripts=vendor,
        app_script=app,
        scenario_script=scenario_js,
        evidence_script=evidence_js,
        evidence_charts_json=script_json(panel_chart_specs(doc)) if evidence_js else "",
        **page,
    )


def write_html(doc: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(doc), encoding="utf-8", newline="\n")
    return path


def find_chromium() -> str | None:
    """Path of a Chromium binary: $FACEAUDIT_CHROMIUM, then chromium / chromium-browser on PATH."""
    env = os.environ.get("FACEAUDIT_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_pdf(
    html_path: str | Path, pdf_path: str | Path, *, chromium: str | None = None, timeout: float = 120.0
) -> Path:
    """Print the page to PDF with headless Chromium (``--print-to-pdf``), charts drawn first."""
    from faceaudit.errors import InputError

    chromium = chromium or find_chromium()
    if chromium is None:
        raise InputError(
            "--pdf needs Chromium: install it (Debian: apt-get install chromium) or set "
            "FACEAUDIT_CHROMIUM to its path"
        )
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="faceaudit-chromium-") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=15000",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not pdf_path.exists():
        raise InputError(
            f"Chromium could not print the report (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return pdf_path
