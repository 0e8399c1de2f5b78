"""``faceaudit audit``: the 1:1 audit of a score file (or a .fadist file): JSON, terminal tables, HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError, InputError
from faceaudit.measures.differentials import DEFAULT_MIN_SUBJECTS
from faceaudit.options import (
    callback,
    check_bins,
    check_encoding,
    check_finite,
    check_level,
    check_nonnegative_int,
    check_positive_int,
    check_probability,
    check_seed,
    check_writable_file,
)
from faceaudit.partition import DEFAULT_MAX_TAIL
from faceaudit.report.document import terminal_text
from faceaudit.scores import DEFAULT_BINS

__all__ = ["audit"]

err = Console(stderr=True)


def audit(
    scores: Annotated[
        Path | None, typer.Option(help="score table (CSV or Parquet): probe, reference, score[, mated]")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="sample table: sample_id, subject_id, attribute columns")
    ] = None,
    distributions: Annotated[
        Path | None,
        typer.Option(help="a .fadist file from `faceaudit compare` (instead of --scores/--samples)"),
    ] = None,
    group: Annotated[
        list[str], typer.Option("--group", help="attribute column to break results down by (repeat)")
    ] = [],  # noqa: B006
    fmr: Annotated[
        list[float],
        typer.Option(
            "--fmr",
            help="target FMR (repeat); default 1e-3, 1e-4, 1e-5",
            callback=callback(check_probability),
        ),
    ] = [],  # noqa: B006
    convention: Annotated[
        str, typer.Option(help="threshold convention: highest (bob.measure) or lowest (scikit-learn)")
    ] = "highest",
    distance: Annotated[
        bool, typer.Option("--distance", help="scores are distances: negate them at ingestion")
    ] = False,
    bootstrap: Annotated[
        int,
        typer.Option(
            help="subject-bootstrap replicates (0 disables)", callback=callback(check_nonnegative_int)
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed", callback=callback(check_seed))] = 0,
    level: Annotated[float, typer.Option(help="interval level", callback=callback(check_level))] = 0.95,
    bins: Annotated[
        int, typer.Option(help="histogram bins per group pair", callback=callback(check_bins))
    ] = DEFAULT_BINS,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    report_out: Annotated[
        Path | None, typer.Option("--report", help="write the self-contained HTML report here")
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="also print the report to this PDF (needs Chromium)")
    ] = None,
    scenario: Annotated[
        list[Path],
        typer.Option(
            "--scenario",
            help="a scenario's JSON (faceaudit scenario --json) to "
            "include in the JSON and the report (repeat)",
        ),
    ] = [],  # noqa: B006
    det_out: Annotated[
        Path | None,
        typer.Option(
            "--det-out",
            help="write every exact DET point of the whole set and of each group to this Parquet file",
            callback=callback(check_writable_file),
        ),
    ] = None,
    evidence: Annotated[
        list[Path],
        typer.Option(
            "--evidence",
            help="an evidence document (faceaudit evidence --json, calibrated on the same --distributions "
            "file) to include in the JSON and the report (repeat)",
        ),
    ] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal tables")] = False,
    compare: Annotated[
        list[str],
        typer.Option(
            "--compare", help="a named ratio of two groups, GROUPING=a:b, e.g. sex=female:male (repeat)"
        ),
    ] = [],  # noqa: B006
    min_subjects: Annotated[
        int,
        typer.Option(
            help="differentials: a group needs at least this many people",
            callback=callback(check_positive_int),
        ),
    ] = DEFAULT_MIN_SUBJECTS,
    fmr_resolution: Annotated[
        float | None,
        typer.Option(
            help="differentials: a group enters FMR ratios only if 3/n < this (default: the target FMR)",
            callback=callback(check_probability),
        ),
    ] = None,
    fnmr_resolution: Annotated[
        float | None,
        typer.Option(
            help="differentials: likewise for FNMR (default: the overall FNMR at the threshold)",
            callback=callback(check_probability),
        ),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option(
            help="text encoding of CSV inputs (utf-8, latin-1, cp1252, utf-16...)",
            callback=callback(check_encoding),
        ),
    ] = "utf-8",
    ordered_pairs: Annotated[
        bool,
        typer.Option(
            "--ordered-pairs",
            help="the matcher's score depends on the order: (a, b) and (b, a) are two comparisons "
            "(default: one comparison, listed once)",
        ),
    ] = False,
    max_tail: Annotated[
        int,
        typer.Option(
            help="score files: the most scores the exact tail keeps (~24 bytes each); past it, each answer "
            "below the tail is read from the exact scores of its histogram bin, or of the part of it that "
            "holds the answer (further reads of the file; no FMR bootstrap there)",
            callback=callback(check_nonnegative_int),
        ),
    ] = DEFAULT_MAX_TAIL,
    claim: Annotated[
        list[str],
        typer.Option("--claim", help="a claimed rate to judge, e.g. 'fmr<=1e-4 per group' (repeat)"),
    ] = [],  # noqa: B006
    censored_below: Annotated[
        float | None,
        typer.Option(
            help="closed system: the level below which it reports no score (empty score cells)",
            callback=callback(check_finite),
        ),
    ] = None,
    threshold: Annotated[
        list[float],
        typer.Option(
            "--threshold",
            help="censored scores: threshold(s) >= the level (repeat)",
            callback=callback(check_finite),
        ),
    ] = [],  # noqa: B006
) -> None:
    """Audit a vendor's comparison scores against a labelled sample table (or a closed system's
    decisions / censored scores: a `decision` column, or --censored-below)."""
    from faceaudit.audit import audit as run_audit
    from faceaudit.claims import check_audit, parse_claim
    from faceaudit.commands.closed import is_closed_result_file, run_closed_audit
    from faceaudit.report.evidence import read_evidence
    from faceaudit.report.scenarios import read_scenario

    if pdf is not None and report_out is None:
        report_out = pdf.with_suffix(".html")
    targets = fmr or [1e-3, 1e-4, 1e-5]
    try:
        claims = [parse_claim(c) for c in claim]
        if (
            scores is not None
            and samples is not None
            and is_closed_result_file(scores, censored_below, encoding)
        ):
            refused = [name for name, given in (("--distributions", distributions is not None),
                                                ("--fmr", fmr), ("--scenario", scenario),
                                                ("--evidence", evidence), ("--det-out", det_out))
                       if given]
            if refused:
                raise InputError(
                    f"{', '.join(refused)} {'does' if len(refused) == 1 else 'do'} not apply to a closed "
                    "system's results (decision-only or censored): they are measured at the system's own "
                    "point or at thresholds at or above the censoring level, with no full score "
                    "distribution (its outputs: --json, --report, --pdf)"
                )
            _distinct_outputs(report_out, json_out, pdf, name="--report")
            run_closed_audit(
                scores,
                samples,
                group=group,
                censored_below=censored_below,
                thresholds=threshold,
                claims=claim,
                bootstrap=bootstrap,
                seed=seed,
                level=level,
                json_out=json_out,
                quiet=quiet,
                report_out=report_out,
                pdf=pdf,
            )
            return
        if threshold:
            raise InputError("--threshold is for censored results (with --censored-below)")
        _distinct_outputs(det_out, json_out, report_out, pdf)
        for path in scenario:  # a bad scenario file stops the command before the audit runs
            read_scenario(path)
        for path in evidence:  # so does a bad evidence file (whether it fits the audit is checked after it)
            read_evidence(path)
        if distributions is not None and scores is not None:
            raise InputError("give either --distributions or --scores/--samples, not both")
        if distributions is not None:
            dist, groupings = _from_distributions(distributions, group)
        else:
            dist, groupings = (
                _from_scores(
                    scores, samples, group, targets, distance, bins, bootstrap, quiet, encoding,
                    ordered_pairs, max_tail,
                ),
                None,
            )
        result = run_audit(
            dist,
            fmr_targets=targets,
            groupings=groupings,
            convention=convention,
            level=level,
            bootstrap=bootstrap,
            seed=seed,
            compare=compare,
            min_subjects=min_subjects,
            fmr_resolution=fmr_resolution,
            fnmr_resolution=fnmr_resolution,
        )
        verdicts = check_audit(claims, result)
    except FaceAuditError as exc:
        fail(exc)
    _finish(result, json_out, quiet, report_out, pdf, scenario, distributions, verdicts, evidence, det_out)


def _distinct_outputs(det_out: Path | None, *others: Path | None, name: str = "--det-out") -> None:
    """--det-out (``name``) must not name the same file as another output (the last one written would
    win)."""
    if det_out is not None and any(o is not None and o.resolve() == det_out.resolve() for o in others):
        raise InputError(f"{name} {str(det_out)!r} names the same file as another output")


def _from_distributions(path: Path, group: list[str]):
    """A .fadist file and the groupings of the named columns (default rule: each, then their intersection)."""
    from faceaudit.commands.common import load_distributions
    from faceaudit.groups import default_groupings

    dist = load_distributions(path)
    missing = [g for g in group if g not in dist.samples.group_columns]
    if missing:
        raise InputError(
            f"--group {missing} not in the distributions' group columns "
            f"{list(dist.samples.group_columns)}; rerun `faceaudit compare` with them"
        )
    return dist, default_groupings(group) if group else None


def _from_scores(
    scores: Path | None,
    samples: Path | None,
    group: list[str],
    targets: list[float],
    distance: bool,
    bins: int,
    bootstrap: int,
    quiet: bool,
    encoding: str = "utf-8",
    ordered_pairs: bool = False,
    max_tail: int | None = None,
):
    """Score and sample tables read in two passes, with a progress bar."""
    from faceaudit.data.ingest import load_score_file

    if scores is None or samples is None:
        raise InputError("give --scores and --samples (or --distributions)")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} chunks"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("reading scores", total=None)

        def tick(stage: str) -> None:
            bar.update(task, advance=1, description=f"reading scores ({stage})")

        dist = load_score_file(
            scores,
            samples,
            group_columns=group,
            fmr_targets=targets,
            distance=distance,
            bins=bins,
            progress=tick,
            track_subject_pairs=bootstrap > 0,
            encoding=encoding,
            pair_order="ordered" if ordered_pairs else "unordered",
            max_tail=max_tail,
        )
        bar.update(task, description="measuring")
    check = ((dist.meta.get("inputs") or {}).get("scores") or {}).get("duplicate_check", "")
    if str(check).startswith("skipped"):  # never silent: the counts assume each pair is listed once
        err.print(f"[bold yellow]warning[/bold yellow]: duplicate-pair check {terminal_text(check)}; a pair "
                  "listed twice would be counted twice (the manifest records this)")
    return dist


def _finish(
    result,
    json_out: Path | None,
    quiet: bool,
    report_out: Path | None = None,
    pdf: Path | None = None,
    scenarios: list[Path] | None = None,
    distributions: Path | None = None,
    verdicts: list | None = None,
    evidence: list[Path] | None = None,
    det_out: Path | None = None,
) -> None:
    from faceaudit.report.document import audit_document, claim_lines, claims_json
    from faceaudit.report.evidence import attach_evidence
    from faceaudit.report.jsonout import to_jsonable, write_json
    from faceaudit.report.scenarios import attach_scenarios, record_distributions_input
    from faceaudit.report.terminal import print_audit

    doc = audit_document(result)  # the JSON document, with the compact distributions the page needs
    if verdicts:
        doc["claims"] = to_jsonable(claims_json(verdicts))
    try:
        if distributions is not None:  # so that a scenario computed from the same file can be matched to it
            record_distributions_input(doc, distributions)
        attach_scenarios(doc, scenarios or [])
        attach_evidence(doc, evidence or [])
    except FaceAuditError as exc:
        fail(exc)
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        print_audit(doc)
        if verdicts:
            typer.echo("\n".join(claim_lines(doc["claims"])))
    if json_out:
        err.print(f"wrote {terminal_text(json_out)}")
    if det_out:
        _write_det(result, doc, det_out)
    if report_out:
        _write_report(doc, report_out, pdf)


def _write_det(result, doc: dict, det_out: Path) -> None:
    """Every exact DET point of the audit's groups, streamed to Parquet with the JSON's settings."""
    from faceaudit.report.detfile import write_det

    try:
        summary = write_det(result.distributions, det_out, result.settings.groupings,
                            settings=doc["settings"])
    except FaceAuditError as exc:
        fail(exc)
    err.print(f"wrote {terminal_text(det_out)} ({summary['rows']:,} DET points)")


def _write_report(doc: dict, report_out: Path, pdf: Path | None) -> None:
    from faceaudit.report.html import write_html, write_pdf

    try:
        write_html(doc, report_out)
        err.print(f"wrote {terminal_text(report_out)}")
        if pdf:
            write_pdf(report_out, pdf)
            err.print(f"wrote {terminal_text(pdf)}")
    except FaceAuditError as exc:
        fail(exc)
