"""Closed systems on the command line: decision-only / censored 1:1 results (``audit --scores`` with a
``decision`` column or ``--censored-below``) and 1:N from candidate lists (``identify --candidates``).

:func:`run_closed_audit` and :func:`run_candidates` are what :mod:`faceaudit.commands.audit` and
:mod:`faceaudit.commands.identify` call when given such files; ``plan`` is :mod:`faceaudit.commands.plan`.
Words are the document layer's.
"""

from __future__ import annotations

from pathlib import Path

import typer

from faceaudit.report.jsonout import write_json

__all__ = ["run_closed_audit", "run_candidates", "is_closed_result_file"]


def is_closed_result_file(path: Path, censored_below: float | None = None, encoding: str = "utf-8") -> bool:
    """Whether ``audit --scores`` should read the file as a closed system's results: it has a
    ``decision`` column, or a censoring level was given."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if censored_below is not None:
        return True
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            names = pq.ParquetFile(path).schema_arrow.names
        else:
            names = pacsv.open_csv(path, read_options=pacsv.ReadOptions(encoding=encoding)).schema.names
    except Exception:  # noqa: BLE001 - unreadable files are reported by the reader that follows
        return False
    return "decision" in names


def run_closed_audit(
    scores: Path,
    samples: Path,
    *,
    group: list[str],
    censored_below: float | None,
    thresholds: list[float],
    claims: list[str],
    bootstrap: int,
    seed: int,
    level: float,
    json_out: Path | None,
    quiet: bool,
    use: str = "auto",
    report_out: Path | None = None,
    pdf: Path | None = None,
) -> None:
    """Read, measure, judge the claims, write the document (JSON, and its page with ``report_out``, printed
    to ``pdf``) and print it (FaceAuditError on bad input)."""
    from faceaudit.claims import check_closed_audit, parse_claim
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table
    from faceaudit.groups import default_groupings
    from faceaudit.measures.decisions import closed_audit
    from faceaudit.report.document import closed_audit_json, closed_audit_lines

    parsed = [parse_claim(c) for c in claims]
    index = read_sample_table(samples, group)
    closed = read_closed_comparisons(scores, index, censored_below=censored_below, use=use)
    groupings = default_groupings(group)
    result = closed_audit(
        closed, thresholds=thresholds, groupings=groupings, level=level, bootstrap=bootstrap, seed=seed
    )
    doc = closed_audit_json(result, check_closed_audit(parsed, result))
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(closed_audit_lines(doc)))
    if report_out:
        _write_closed_report(doc, report_out, pdf)


def _write_closed_report(doc: dict, report_out: Path, pdf: Path | None) -> None:
    """The closed audit's page (byte-for-byte what `faceaudit report closed.json` renders) and its PDF."""
    from rich.console import Console

    from faceaudit.report.closed import write_closed_html
    from faceaudit.report.document import terminal_text
    from faceaudit.report.html import write_pdf

    err = Console(stderr=True)
    write_closed_html(doc, report_out)
    err.print(f"wrote {terminal_text(report_out)}")
    if pdf:
        write_pdf(report_out, pdf)
        err.print(f"wrote {terminal_text(pdf)}")


def run_candidates(
    candidates: Path,
    gallery: Path,
    samples: Path,
    *,
    list_length: int,
    candidate_threshold: float | None,
    thresholds: list[float],
    ranks: list[int],
    group: list[str],
    bootstrap: int,
    seed: int,
    level: float,
    json_out: Path | None,
    quiet: bool,
    use: str = "auto",
) -> None:
    """1:N from a closed system's candidate lists, written and printed as `identify`'s document."""
    from faceaudit.data.candidates import read_candidate_lists, read_gallery
    from faceaudit.data.tables import read_sample_table
    from faceaudit.measures.candidates import candidate_identification
    from faceaudit.report.document import candidate_identification_json, identification_lines
    from faceaudit.report.jsonout import to_jsonable

    index = read_sample_table(samples, group)
    lists = read_candidate_lists(
        candidates,
        index,
        read_gallery(gallery, index),
        list_length=list_length,
        candidate_threshold=candidate_threshold,
        use=use,
    )
    result = candidate_identification(
        lists,
        thresholds=thresholds,
        ranks=ranks,
        groupings=[(g,) for g in group] or None,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
    )
    doc = to_jsonable(candidate_identification_json(result))
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(identification_lines(doc)))
