"""The faceaudit command line: ``faceaudit audit | demo | ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from faceaudit.cli_errors import fail
from faceaudit.closed_commands import plan
from faceaudit.compare.command import compare
from faceaudit.errors import FaceAuditError, InputError
from faceaudit.identify_command import identify, scenario
from faceaudit.models.command import embed
from faceaudit.report.command import report

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure face-recognition systems: false match and non-match rates, for whom, with intervals.",
)
err = Console(stderr=True)


@app.command()
def audit(
    scores: Annotated[Path | None, typer.Option(help="score table (CSV or Parquet): probe, reference, score[, mated]")] = None,
    samples: Annotated[Path | None, typer.Option(help="sample table: sample_id, subject_id, attribute columns")] = None,
    distributions: Annotated[Path | None, typer.Option(help="a .fadist file from `faceaudit compare` (instead of --scores/--samples)")] = None,
    group: Annotated[list[str], typer.Option("--group", help="attribute column to break results down by (repeat)")] = [],  # noqa: B006
    fmr: Annotated[list[float], typer.Option("--fmr", help="target FMR (repeat); default 1e-3, 1e-4, 1e-5")] = [],  # noqa: B006
    convention: Annotated[str, typer.Option(help="threshold convention: highest (bob.measure) or lowest (scikit-learn)")] = "highest",
    distance: Annotated[bool, typer.Option("--distance", help="scores are distances: negate them at ingestion")] = False,
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (0 disables)")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    bins: Annotated[int, typer.Option(help="histogram bins per group pair")] = 4096,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    report_out: Annotated[Path | None, typer.Option("--report", help="write the self-contained HTML report here")] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="also print the report to this PDF (needs Chromium)")] = None,
    scenario: Annotated[list[Path], typer.Option("--scenario", help="a scenario's JSON (faceaudit scenario --json) to "
                                                 "include in the JSON and the report (repeat)")] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal tables")] = False,
    claim: Annotated[list[str], typer.Option(
        "--claim", help="a claimed rate to judge, e.g. 'fmr<=1e-4 per group' (repeat)")] = [],  # noqa: B006
    censored_below: Annotated[float | None, typer.Option(
        help="closed system: the level below which it reports no score (empty score cells)")] = None,
    threshold: Annotated[list[float], typer.Option(
        "--threshold", help="censored scores: threshold(s) >= the level (repeat)")] = [],  # noqa: B006
) -> None:
    """Audit a vendor's comparison scores against a labelled sample table (or a closed system's
    decisions / censored scores: a `decision` column, or --censored-below)."""
    from faceaudit.audit import audit as run_audit
    from faceaudit.claims import check_audit, parse_claim
    from faceaudit.closed_commands import is_closed_result_file, run_closed_audit
    from faceaudit.data.ingest import load_score_file
    from faceaudit.report.scenarios import read_scenario

    if pdf is not None and report_out is None:
        report_out = pdf.with_suffix(".html")
    targets = fmr or [1e-3, 1e-4, 1e-5]
    try:
        claims = [parse_claim(c) for c in claim]
        if scores is not None and samples is not None and is_closed_result_file(scores, censored_below):
            if distributions is not None or report_out is not None or scenario or fmr:
                raise InputError("a closed system's results are measured at its own point: --distributions, "
                                 "--fmr, --report and --scenario do not apply")
            run_closed_audit(scores, samples, group=group, censored_below=censored_below,
                             thresholds=threshold, claims=claim, bootstrap=bootstrap, seed=seed, level=level,
                             json_out=json_out, quiet=quiet)
            return
        if threshold:
            raise InputError("--threshold is for censored results (with --censored-below)")
        for path in scenario:  # a bad scenario file stops the command before the audit runs
            read_scenario(path)
        if distributions is not None:
            if scores is not None:
                raise InputError("give either --distributions or --scores/--samples, not both")
            from faceaudit.compare.store import load_distributions

            dist = load_distributions(distributions)
            missing = [g for g in group if g not in dist.samples.group_columns]
            if missing:
                raise InputError(f"--group {missing} not in the distributions' group columns "
                                 f"{list(dist.samples.group_columns)}; rerun `faceaudit compare` with them")
            groupings = [(g,) for g in group] + ([tuple(group)] if len(group) > 1 else []) if group else None
            result = run_audit(dist, fmr_targets=targets, groupings=groupings, convention=convention,
                               level=level, bootstrap=bootstrap, seed=seed)
            verdicts = check_audit(claims, result)
            _finish(result, json_out, quiet, report_out, pdf, scenario, distributions, verdicts)
            return
        if scores is None or samples is None:
            raise InputError("give --scores and --samples (or --distributions)")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} chunks"),
                      TimeElapsedColumn(), console=err, transient=True, disable=quiet) as bar:
            task = bar.add_task("reading scores", total=None)

            def tick(stage: str) -> None:
                bar.update(task, advance=1, description=f"reading scores ({stage})")

            dist = load_score_file(scores, samples, group_columns=group, fmr_targets=targets,
                                   distance=distance, bins=bins, progress=tick,
                                   track_subject_pairs=bootstrap > 0)
            bar.update(task, description="measuring")
            result = run_audit(dist, fmr_targets=targets, convention=convention, level=level,
                               bootstrap=bootstrap, seed=seed)
            verdicts = check_audit(claims, result)
    except FaceAuditError as exc:
        fail(exc)
    _finish(result, json_out, quiet, report_out, pdf, scenario, None, verdicts)


def _finish(result, json_out: Path | None, quiet: bool, report_out: Path | None = None,
            pdf: Path | None = None, scenarios: list[Path] | None = None, distributions: Path | None = None,
            verdicts: list | None = None) -> None:
    from faceaudit.report.document import audit_document, claim_lines, claims_json
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
    except FaceAuditError as exc:
        fail(exc)
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        print_audit(doc)
        if verdicts:
            typer.echo("\n".join(claim_lines(doc["claims"])))
    if json_out:
        err.print(f"wrote {json_out}")
    if report_out:
        from faceaudit.report.html import write_html, write_pdf

        try:
            write_html(doc, report_out)
            err.print(f"wrote {report_out}")
            if pdf:
                write_pdf(report_out, pdf)
                err.print(f"wrote {pdf}")
        except FaceAuditError as exc:
            fail(exc)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's outputs")] = Path("out/demo"),
    model: Annotated[str, typer.Option(help="bundled embeddings: sface (OpenCV Zoo) or dlib (ResNet)")] = "sface",
    searches: Annotated[float, typer.Option(help="the scenario's searches (0: no scenario)")] = 1e5,
    gallery: Annotated[float, typer.Option(help="the scenario's gallery size")] = 1e7,
) -> None:
    """Run a real audit on the bundled data, project it onto an operation, and print the summary."""
    from faceaudit.demo import run_demo

    try:
        run_demo(out, model=model, scenario_searches=searches, scenario_gallery=gallery)
    except FaceAuditError as exc:
        fail(exc)


app.command("compare")(compare)
app.command("embed")(embed)
app.command("report")(report)
app.command("identify")(identify)
app.command("scenario")(scenario)
app.command("plan")(plan)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
