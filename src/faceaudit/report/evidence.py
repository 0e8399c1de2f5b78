"""Evidence (likelihood ratios) in the audit report: read a ``faceaudit evidence --json`` document
(``faceaudit.evidence/1``), check it against its schema (report/evidence.schema.json), against what the schema
cannot say (plot arrays that go together, a trial render of its panel) and against the audit it is attached to
(the same ``.fadist`` file, by sha256), and attach it to the audit document's ``evidence`` list. What the
page shows (the chart specs, shared with the evidence sheet, and the panel's view) is built by
:mod:`faceaudit.report.evidence_panel`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faceaudit.errors import InputError
from faceaudit.report.evidence_panel import chart_specs, evidence_consistency, evidence_view

__all__ = [
    "EvidenceFileError",
    "EvidenceMismatchError",
    "EVIDENCE_SCHEMA",
    "read_evidence",
    "check_evidence",
    "attach_evidence",
    "check_attached_evidence",
    "evidence_consistency",
    "chart_specs",
    "evidence_view",
]

EVIDENCE_SCHEMA = "faceaudit.evidence/1"


class EvidenceFileError(InputError):
    """A file given as evidence is not a faceaudit evidence document (not JSON, breaks its schema, or its
    plot data do not fit together)."""


class EvidenceMismatchError(InputError):
    """An evidence document was calibrated on other score distributions than the audit it is attached to."""


# ----------------------------------------------------------------------------------------------
# reading and checking
# ----------------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"{text} does not fit a double")
    return x


def read_evidence(path: str | Path) -> dict[str, Any]:
    """An evidence document from a file, checked (:func:`check_evidence`); :class:`EvidenceFileError`
    naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise EvidenceFileError(f"evidence file {str(path)!r} does not exist")
    try:
        doc = json.loads(
            path.read_text(encoding="utf-8"), parse_constant=_no_constant, parse_float=_finite_float
        )
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise EvidenceFileError(f"evidence file {str(path)!r} is not JSON: {str(exc)[:300]}") from None
    check_evidence(doc, repr(str(path)))
    return doc


def check_evidence(doc: Any, name: str = "the evidence document") -> None:
    """The schema (with ``jsonschema``), then what it cannot say: the arrays of each plot have equal
    lengths, and the panel and its charts can be built (also without ``jsonschema``)."""
    from faceaudit.report.schema import validate_evidence_document

    try:
        validate_evidence_document(doc)
    except InputError as exc:
        raise EvidenceFileError(f"{name}: {exc}") from None
    problem = _shape_problem(doc)
    if problem is None:
        problem = _render_problem(doc)
    if problem is not None:
        raise EvidenceFileError(f"{name} is not a usable evidence document: {problem}")


def _render_problem(doc: Any) -> str | None:
    """Build the charts and render the panel once: what the schema cannot catch (or, without
    ``jsonschema``, anything) ends here as a stated problem, never as a traceback on the page's way out."""
    import jinja2

    from faceaudit.report.html import environment, script_json

    try:
        script_json(chart_specs(doc))
        template = environment().from_string(
            '{% from "evidence_panel.html.j2" import evidence_panel %}{{ evidence_panel(ev) }}'
        )
        template.render(ev=evidence_view(doc, 0, None))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
            jinja2.TemplateError) as exc:
        return f"it cannot be shown ({type(exc).__name__}: {str(exc)[:200]})"
    return None


_PLOT_ARRAYS = {
    "tippett": ("log10_lr", "mated", "nonmated"),
    "ece": ("prior_log10_odds", "system", "pav", "neutral"),
    "pav_transform": ("log10_lr", "pav_log10_lr"),
}


def _same_lengths(obj: Mapping[str, Any], keys: Iterable[str], where: str) -> str | None:
    sizes = {k: len(obj[k]) for k in keys}
    if len(set(sizes.values())) > 1:
        return f"{where}: arrays of different lengths {sizes}"
    return None


def _shape_problem(doc: Mapping[str, Any]) -> str | None:
    """The first place where arrays that go together differ in length (None: none); only called on
    documents that passed the schema, or whose shape errors are caught by the caller."""
    try:
        validations = [("validation", doc["validation"])]
        for k, g in enumerate(doc["groups"]):
            validations += [(f"groups/{k}/{s}", g[s]) for s in ("pooled", "own") if g[s] is not None]
            keys = ("scores", "pooled_log10_lr", "own_log10_lr", "difference")
            problem = _same_lengths(g, keys, f"groups/{k}")
            if problem:
                return problem
        for where, v in validations:
            for plot, keys in _PLOT_ARRAYS.items():
                problem = _same_lengths(v["plots"][plot], keys, f"{where}/plots/{plot}")
                if problem:
                    return problem
    except (KeyError, TypeError, AttributeError) as exc:
        return f"its structure is not an evidence document's ({type(exc).__name__}: {str(exc)[:200]})"
    return None


# ----------------------------------------------------------------------------------------------
# the audit and the evidence: the same data? (evidence_panel.evidence_consistency says it in words)
# ----------------------------------------------------------------------------------------------


def check_evidence_consistency(audit_doc: Mapping[str, Any], ev: Mapping[str, Any], name: str) -> None:
    c = evidence_consistency(audit_doc, ev)
    if c["status"] == "mismatch":
        raise EvidenceMismatchError(
            f"{name}: {c['detail']}; recompute the evidence with `faceaudit evidence --calibration` on the "
            "file the audit used (faceaudit audit --distributions)"
        )


def attach_evidence(doc: dict[str, Any], paths: Iterable[str | Path]) -> dict[str, Any]:
    """Add each evidence file to the audit document's ``evidence`` (with its path and sha256 as ``source``);
    a document already there (same content) is not added twice. Raises :class:`EvidenceFileError` or
    :class:`EvidenceMismatchError`; the document's version becomes at least 1.3."""
    from faceaudit.report.attach import attach_files
    from faceaudit.report.document import EVIDENCE_SINCE, evidence_entry_json

    if not attach_files(doc, "evidence", paths, read_evidence, check_evidence_consistency,
                        evidence_entry_json):
        return doc
    if _version(doc.get("schema_version")) < _version(EVIDENCE_SINCE):
        doc["schema_version"] = EVIDENCE_SINCE  # it now uses a field of 1.3
    return doc


def check_attached_evidence(doc: Mapping[str, Any]) -> None:
    """An audit document read from a file: each evidence entry checked as a file would be, and against the
    audit (an edited document cannot show evidence of other data)."""
    entries = doc.get("evidence")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise EvidenceFileError("the audit document's 'evidence' is not a list of evidence documents")
    for k, ev in enumerate(entries):
        check_evidence(ev, f"evidence document {k} of the audit document")
        check_evidence_consistency(doc, ev, f"evidence document {k} of the audit document")


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split("."))
    except ValueError:
        return (0,)


