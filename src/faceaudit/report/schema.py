"""The audit document's JSON Schema (report/schema.json) and its validation; scenario documents
(``faceaudit scenario --json``) are validated against the schema's ``$defs/scenario``, evidence documents
(``faceaudit evidence --json``, ``faceaudit.evidence/1``) against report/evidence.schema.json, also where an
audit document carries them (its ``evidence`` list, since 1.3); closed-system audit documents
(``faceaudit audit`` on decision-only or censored results, ``faceaudit.closed_audit``) against
report/closed_audit.schema.json."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from faceaudit.report.document import SCHEMA_VERSION  # the one version (defined with the document)

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "EVIDENCE_SCHEMA_PATH",
    "load_schema",
    "load_evidence_schema",
    "validate_document",
    "validate_scenario_document",
    "validate_evidence_document",
    "CLOSED_AUDIT_SCHEMA_PATH",
    "load_closed_audit_schema",
    "validate_closed_audit_document",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.json"
EVIDENCE_SCHEMA_PATH = Path(__file__).resolve().parent / "evidence.schema.json"
CLOSED_AUDIT_SCHEMA_PATH = Path(__file__).resolve().parent / "closed_audit.schema.json"


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def load_evidence_schema() -> dict[str, Any]:
    return json.loads(EVIDENCE_SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def load_closed_audit_schema() -> dict[str, Any]:
    return json.loads(CLOSED_AUDIT_SCHEMA_PATH.read_text(encoding="utf-8"))


def _check(schema: dict[str, Any], doc: Any, what: str) -> None:
    from faceaudit.errors import InputError

    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a test dependency
        return
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InputError(f"the {what} breaks its schema at {where}: {error.message[:300]}")


def validate_document(doc: Any) -> None:
    """Raise :class:`~faceaudit.errors.InputError` naming the first place the document breaks the schema.

    Uses ``jsonschema`` when installed; otherwise checks the document's name and major version only.
    """
    from faceaudit.errors import InputError

    if not isinstance(doc, dict) or doc.get("schema") != "faceaudit.audit":
        raise InputError("not a faceaudit audit document (its 'schema' field is not 'faceaudit.audit')")
    _require_major(doc, "audit document")
    _check(load_schema(), doc, "audit document")
    entries = doc.get("evidence")
    for k, entry in enumerate(entries if isinstance(entries, list) else []):  # schema.json: the envelope
        _check(load_evidence_schema(), entry, f"evidence document {k} of the audit document (evidence/{k})")


def _require_kind(doc: Any, kind: str, noun: str, how: str) -> None:
    """InputError unless the document's ``schema`` field names ``kind``."""
    from faceaudit.errors import InputError

    found = doc.get("schema") if isinstance(doc, dict) else None
    if found != kind:
        what = f"a {found} document" if isinstance(found, str) else "JSON of another kind"
        raise InputError(f"not a faceaudit {noun} (its 'schema' field is {found!r}: {what}; {how})")


def _require_major(doc: dict[str, Any], noun: str) -> None:
    """InputError unless the document's schema version is 1.x."""
    from faceaudit.errors import InputError

    version = str(doc.get("schema_version", ""))
    if not version.startswith("1."):
        raise InputError(f"{noun} schema version {version!r} is not supported (this faceaudit reads 1.x)")


def validate_scenario_document(doc: Any) -> None:
    """The same for a scenario document (``faceaudit scenario --json``)."""
    _require_kind(doc, "faceaudit.scenario", "scenario document",
                  "write one with `faceaudit scenario ... --json`")
    _require_major(doc, "scenario document")
    schema = load_schema()
    _check(
        {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/scenario"},
        doc,
        "scenario document",
    )


def validate_evidence_document(doc: Any) -> None:
    """The same for an evidence document (``faceaudit evidence --json``): its name, then
    report/evidence.schema.json."""
    from faceaudit.evidence.document import SCHEMA as EVIDENCE_SCHEMA

    _require_kind(doc, EVIDENCE_SCHEMA, "evidence document",
                  f"this faceaudit reads {EVIDENCE_SCHEMA!r}, written by `faceaudit evidence ... --json`")
    _check(load_evidence_schema(), doc, "evidence document")


def validate_closed_audit_document(doc: Any) -> None:
    """The same for a closed-system audit document (``faceaudit audit`` on decision-only or censored
    results): its name and major version, then report/closed_audit.schema.json."""
    from faceaudit.errors import InputError

    _require_kind(doc, "faceaudit.closed_audit", "closed-system audit document",
                  "write one with `faceaudit audit --scores decisions.csv ... --json`")
    _require_major(doc, "closed-system audit document")
    _check(load_closed_audit_schema(), doc, "closed-system audit document")
    try:
        _check_closed_shapes(doc)
    except (KeyError, IndexError, TypeError) as exc:  # only without jsonschema: the schema states these
        raise InputError(
            f"the closed-system audit document is not well formed ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _check_closed_shapes(doc: dict[str, Any]) -> None:
    """What a JSON Schema cannot say: each DET curve's arrays are as long as each other, and each cross-group
    matrix has a row per probe group and a cell per reference group."""
    from faceaudit.errors import InputError

    for k, c in enumerate(doc["det_above_censoring"]):
        if not len(c["threshold"]) == len(c["false_matches"]) == len(c["false_non_matches"]):
            raise InputError("the closed-system audit document breaks its schema at "
                             f"det_above_censoring/{k}: threshold, false_matches and false_non_matches "
                             "differ in length")
    for i, p in enumerate(doc["points"]):
        for j, m in enumerate(p["cross_group_fmr"]):
            if len(m["fmr"]) != len(m["probe_groups"]) or any(
                len(row) != len(m["reference_groups"]) for row in m["fmr"]
            ):
                raise InputError(f"the closed-system audit document breaks its schema at points/{i}/"
                                 f"cross_group_fmr/{j}: the matrix is not probe groups x reference groups")
