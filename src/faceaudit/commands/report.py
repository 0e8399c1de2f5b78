"""`faceaudit report`: the HTML page (and optionally its PDF) from an audit's JSON document, with any
scenarios (``--scenario``) and evidence documents (``--evidence``) added, or the page of one scenario from
its JSON document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from faceaudit.commands.errors import fail
from faceaudit.report.document import terminal_text

__all__ = ["report"]

err = Console(stderr=True)


def report(
    result: Annotated[
        Path,
        typer.Argument(
            help="the audit's JSON document (faceaudit audit --json, also of a closed system's "
            "decisions or censored scores), or a scenario's (faceaudit scenario --json) or an evidence "
            "document (faceaudit evidence --json) for a page of that document alone"
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: RESULT with .html)")
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="also print the page to this PDF (needs Chromium)")
    ] = None,
    scenario: Annotated[
        list[Path],
        typer.Option(
            "--scenario",
            help="a scenario's JSON document (faceaudit scenario "
            "--json) to add to the audit's report (repeat)",
        ),
    ] = [],  # noqa: B006
    evidence: Annotated[
        list[Path],
        typer.Option(
            "--evidence",
            help="an evidence document (faceaudit evidence --json, calibrated on the audit's .fadist file) "
            "to add to the audit's report (repeat)",
        ),
    ] = [],  # noqa: B006
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="also write the document the page is rendered from (the audit with the added scenarios "
            "and evidence)",
        ),
    ] = None,
    validate: Annotated[
        bool,
        typer.Option("--validate/--no-validate", help="check the document against the JSON Schema first"),
    ] = True,
) -> None:
    """Render the self-contained HTML report of an audit, byte-for-byte the one `audit --report` writes (also
    of a closed system's decisions or censored scores), or the page of a scenario or an evidence document, as
    `scenario --report` / `evidence --report` write it."""
    from faceaudit.errors import FaceAuditError
    from faceaudit.report.closed import CLOSED_SCHEMA
    from faceaudit.report.evidence import EVIDENCE_SCHEMA
    from faceaudit.report.html import write_html, write_pdf
    from faceaudit.report.jsonout import write_json

    try:
        doc = _read_document(result, scenario, validate, evidence)
        if json_out is not None:
            write_json(doc, json_out)
            err.print(f"wrote {terminal_text(json_out)}")
        html_path = out or result.with_suffix(".html")
        if doc.get("schema") == EVIDENCE_SCHEMA:  # an evidence document: its sheet, as `evidence --report`
            from faceaudit.evidence.sheet import write_evidence_html

            write_evidence_html(doc, html_path)
        elif doc.get("schema") == CLOSED_SCHEMA:  # a closed system's results: their page, as `audit --report`
            _write_closed_page(doc, html_path, result)
        else:
            write_html(doc, html_path)
        err.print(f"wrote {terminal_text(html_path)}")
        if pdf is not None:
            write_pdf(html_path, pdf)
            err.print(f"wrote {terminal_text(pdf)}")
    except FaceAuditError as exc:
        fail(exc)


def _write_closed_page(doc: dict, html_path: Path, result: Path) -> None:
    """The closed audit's page; a document the page cannot be drawn from (it passed --no-validate, or
    jsonschema is not installed) is a named error, never a traceback."""
    from jinja2 import UndefinedError

    from faceaudit.errors import InputError
    from faceaudit.report.closed import write_closed_html

    try:
        write_closed_html(doc, html_path)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError,
            UndefinedError) as exc:
        raise InputError(
            f"{str(result)!r} is not a well-formed closed-system audit document ({type(exc).__name__}: "
            f"{str(exc)[:200]}); check it with `faceaudit report {str(result)!r} --validate` "
            "(needs jsonschema)"
        ) from exc


def _read_document(
    result: Path, scenarios: list[Path], validate: bool, evidence: list[Path] | None = None
) -> dict:
    """The audit document with the scenarios and evidence added, or a scenario document on its own;
    validated (evidence it already carries is checked as an evidence file is, whatever ``validate``)."""
    from faceaudit.errors import InputError
    from faceaudit.report.closed import CLOSED_SCHEMA
    from faceaudit.report.evidence import (
        EVIDENCE_SCHEMA,
        attach_evidence,
        check_attached_evidence,
        read_evidence,
    )
    from faceaudit.report.jsonout import read_json
    from faceaudit.report.scenarios import SCENARIO_SCHEMA, attach_scenarios
    from faceaudit.report.schema import (
        validate_closed_audit_document,
        validate_document,
        validate_scenario_document,
    )

    if not result.exists():
        raise InputError(f"no such file: {str(result)!r}")
    try:
        doc = read_json(result)
    except ValueError as exc:
        raise InputError(f"{str(result)!r} is not JSON: {exc}") from exc
    if isinstance(doc, dict) and doc.get("schema") == EVIDENCE_SCHEMA:
        if scenarios or evidence:
            raise InputError(
                f"{str(result)!r} is an evidence document: --scenario and --evidence add to an audit's "
                f"report (faceaudit report result.json --evidence {str(result)!r})"
            )
        return read_evidence(result)  # checked whatever --validate says: the sheet needs its shape
    if isinstance(doc, dict) and doc.get("schema") == CLOSED_SCHEMA:
        if scenarios or evidence:
            raise InputError(
                f"{str(result)!r} is a closed system's audit document (decisions or censored scores): "
                "--scenario and --evidence do not apply to it (they need the full score distributions)"
            )
        if validate:
            validate_closed_audit_document(doc)
        return doc
    if isinstance(doc, dict) and doc.get("schema") == SCENARIO_SCHEMA:
        if scenarios or evidence:
            raise InputError(
                f"{str(result)!r} is a scenario document: --scenario and --evidence add to an audit's "
                "report (faceaudit report result.json --scenario ...); render each scenario on its own"
            )
        if validate:
            validate_scenario_document(doc)
        return doc
    if validate:
        validate_document(doc)
    check_attached_evidence(doc)
    attach_scenarios(doc, scenarios)
    attach_evidence(doc, evidence or [])
    return doc
