"""Commands for closed systems: decision-only / censored 1:1 results (``audit --scores`` with a
``decision`` column or ``--censored-below``), 1:N from candidate lists (``identify --candidates``),
request plans (``plan``) and claim checks (``--claim``).

``plan`` is a typer command the app mounts; :func:`run_closed_audit` and :func:`run_candidates` are
what ``audit`` and ``identify`` call when given such files. Words are the document layer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.cli_errors import fail
from faceaudit.report.jsonout import write_json

__all__ = ["plan", "run_closed_audit", "run_candidates", "is_closed_result_file"]


def is_closed_result_file(path: Path, censored_below: float | None = None) -> bool:
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
            names = pacsv.open_csv(path).schema.names
    except Exception:  # noqa: BLE001 - unreadable files are reported by the reader that follows
        return False
    return "decision" in names


def run_closed_audit(scores: Path, samples: Path, *, group: list[str], censored_below: float | None,
                     thresholds: list[float], claims: list[str], bootstrap: int, seed: int, level: float,
                     json_out: Path | None, quiet: bool, use: str = "auto") -> None:
    """Read, measure, judge the claims, write the document and print it (FaceAuditError on bad input)."""
    from faceaudit.claims import check_closed_audit, parse_claim
    from faceaudit.data.decisions import read_closed_comparisons, read_samples
    from faceaudit.measures.decisions import closed_audit
    from faceaudit.report.document import closed_audit_json, closed_audit_lines

    parsed = [parse_claim(c) for c in claims]
    index = read_samples(samples, group)
    closed = read_closed_comparisons(scores, index, censored_below=censored_below, use=use)
    groupings = [(g,) for g in group] + ([tuple(group)] if len(group) > 1 else [])
    result = closed_audit(closed, thresholds=thresholds, groupings=groupings, level=level,
                          bootstrap=bootstrap, seed=seed)
    doc = closed_audit_json(result, check_closed_audit(parsed, result))
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(closed_audit_lines(doc)))


def run_candidates(candidates: Path, gallery: Path, samples: Path, *, list_length: int,
                   candidate_threshold: float | None, thresholds: list[float], ranks: list[int],
                   group: list[str],
                   bootstrap: int, seed: int, level: float, json_out: Path | None, quiet: bool,
                   use: str = "auto") -> None:
    """1:N from a closed system's candidate lists, written and printed as `identify`'s document."""
    from faceaudit.data.candidates import read_candidate_lists, read_gallery
    from faceaudit.data.decisions import read_samples
    from faceaudit.measures.candidates import candidate_identification
    from faceaudit.report.document import candidate_identification_json, identification_lines
    from faceaudit.report.jsonout import to_jsonable

    index = read_samples(samples, group)
    lists = read_candidate_lists(candidates, index, read_gallery(gallery, index), list_length=list_length,
                                 candidate_threshold=candidate_threshold, use=use)
    result = candidate_identification(lists, thresholds=thresholds, ranks=ranks,
                                      groupings=[(g,) for g in group] or None, bootstrap=bootstrap, seed=seed,
                                      level=level)
    doc = to_jsonable(candidate_identification_json(result))
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(identification_lines(doc)))


def plan(
    samples: Annotated[Path, typer.Option(help="sample table: sample_id, subject_id, attribute columns")],
    out: Annotated[Path, typer.Option(help="write the requests here (.parquet, or .csv)")],
    group: Annotated[
        list[str], typer.Option("--group", help="attribute column defining the cells (repeat)")
    ] = [],  # noqa: B006
    claim_fmr: Annotated[float | None, typer.Option(help="the claimed FMR per group, e.g. 1e-4")] = None,
    claim_fnmr: Annotated[float | None, typer.Option(help="the claimed FNMR per group, e.g. 0.01")] = None,
    power: Annotated[
        float, typer.Option(help="chance of supporting the claim when the true rate is the alternative")
    ] = 0.8,
    alternative: Annotated[float, typer.Option(help="the true rate assumed, as a share of the claim")] = 0.5,
    level: Annotated[float, typer.Option(help="interval level of the verdict")] = 0.95,
    mated_per_subject: Annotated[int, typer.Option(help="most mated pairs per subject")] = 3,
    cells: Annotated[str, typer.Option(help="non-mated cells: all (cross-group too) or within")] = "all",
    rate: Annotated[float | None, typer.Option(help="the API's requests per second, for the time")] = None,
    seed: Annotated[int, typer.Option(help="random seed (the plan is reproducible)")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Plan the comparisons to request from a closed system, sized (exact binomial) for a claim."""
    from faceaudit.data.decisions import read_samples
    from faceaudit.errors import FaceAuditError
    from faceaudit.plan import plan_requests, write_plan
    from faceaudit.report.document import plan_lines

    try:
        index = read_samples(samples, group)
        result = plan_requests(index, claim_fmr=claim_fmr, claim_fnmr=claim_fnmr, power=power,
                               alternative=alternative, level=level, mated_per_subject=mated_per_subject,
                               cells=cells, seed=seed)
        lines = plan_lines(result, rate)
        write_plan(result, str(out))
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        typer.echo("\n".join(lines))
