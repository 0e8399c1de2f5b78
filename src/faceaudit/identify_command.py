"""``faceaudit identify`` and ``faceaudit scenario``: 1:N measures and the operational projection.

Typer command functions; the app mounts them (``app.command("identify")(identify)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.cli_errors import fail
from faceaudit.report.document import identification_lines, scenario_lines, to_document
from faceaudit.report.jsonout import write_json

__all__ = ["identify", "scenario", "format_identification", "format_scenario"]


def _floats(text: str) -> list[float]:
    from faceaudit.errors import InputError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{text!r} is not a comma-separated list of numbers") from None


def _load(path: Path):
    from faceaudit.compare.store import load_distributions
    from faceaudit.measures.identification import ProbeTails

    return ProbeTails.from_distributions(load_distributions(path))


def thresholds_at_fmr(dist, targets: list[float]) -> list[float]:
    """The global threshold at each target FMR, read as the audit reads it: the exact non-mated tail
    (``fmr_threshold`` on ``dist.impostor_view()``, with the mated scores, default convention)."""
    from faceaudit.measures.verification import fmr_threshold

    view, genuine = dist.impostor_view(), dist.genuine_scores()
    return [float(fmr_threshold(view, float(t), genuine)) for t in targets]


format_identification = identification_lines
format_scenario = scenario_lines


def identify(
    distributions: Annotated[Path | None, typer.Option(
        help="a .fadist file from `faceaudit compare` (needs its per-probe summaries)")] = None,
    threshold: Annotated[str | None, typer.Option(help="threshold(s), comma-separated, e.g. 0.45,0.52")] = None,
    fmr: Annotated[str | None, typer.Option(help="instead of --threshold: target FMR(s), e.g. 1e-3,1e-4 (global "
                                            "thresholds read from the exact non-mated tail, as the audit does)")] = None,
    gallery_sizes: Annotated[str, typer.Option(help="non-mated gallery sizes, comma-separated; 'full' = every other sample")] = "full",
    rank: Annotated[str, typer.Option(help="ranks for FNIR and CMC, comma-separated")] = "1",
    extrapolate: Annotated[str, typer.Option(help="gallery sizes beyond the set for the tail model, e.g. 1e5,1e7")] = "",
    group: Annotated[list[str], typer.Option("--group", help="group column to break results down by (repeat; default: each)")] = [],  # noqa: B006
    tail_m: Annotated[int, typer.Option(help="per-probe tail size m for the GPD model")] = 20,
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (0 disables)")] = 200,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
    candidates: Annotated[Path | None, typer.Option(
        help="instead of --distributions: a closed system's candidate lists "
             "(search_id, probe, rank, candidate[, score][, decision])")] = None,
    gallery: Annotated[Path | None, typer.Option(
        help="with --candidates: the enrolled samples (sample_id)")] = None,
    samples: Annotated[Path | None, typer.Option(help="with --candidates: the sample table")] = None,
    list_length: Annotated[int | None, typer.Option(
        help="with --candidates: the list length asked for")] = None,
    candidate_threshold: Annotated[float | None, typer.Option(
        help="with --candidates: the score at or above which the system returns every candidate")] = None,
) -> None:
    """1:N identification: FPIR, FNIR and CMC by gallery size, per probe group, with intervals (from
    all-pairs distributions, or from a closed system's candidate lists at the enrolled gallery size)."""
    from faceaudit.compare.store import load_distributions
    from faceaudit.errors import FaceAuditError, InputError
    from faceaudit.measures.identification import ProbeTails, identification, parse_gallery_sizes

    if candidates is not None:
        _identify_candidates(candidates, gallery, samples, list_length, candidate_threshold, threshold, fmr,
                             gallery_sizes, rank, extrapolate, group, bootstrap, seed, level, json_out, quiet,
                             distributions)
        return
    try:
        if distributions is None:
            raise InputError("give --distributions (or --candidates, --gallery, --samples, --list-length)")
        if (threshold is None) == (fmr is None):
            raise InputError("give exactly one of --threshold and --fmr")
        dist = load_distributions(distributions)
        tails = ProbeTails.from_distributions(dist)
        fmr_targets = _floats(fmr) if fmr is not None else None
        thresholds = thresholds_at_fmr(dist, fmr_targets) if fmr_targets else _floats(threshold or "")
        result = identification(tails, thresholds=thresholds, fmr_targets=fmr_targets,
                                gallery_sizes=parse_gallery_sizes(gallery_sizes),
                                ranks=[int(r) for r in _floats(rank)], extrapolate_to=_floats(extrapolate),
                                groupings=[(g,) for g in group] or None, m=tail_m, bootstrap=bootstrap, seed=seed,
                                level=level)
    except FaceAuditError as exc:
        fail(exc)
    doc = to_document(result)
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(identification_lines(doc)))


def _identify_candidates(candidates, gallery, samples, list_length, candidate_threshold, threshold, fmr,
                         gallery_sizes, rank, extrapolate, group, bootstrap, seed, level, json_out, quiet,
                         distributions) -> None:
    from faceaudit.closed_commands import run_candidates
    from faceaudit.errors import FaceAuditError, InputError

    try:
        if gallery is None or samples is None or list_length is None:
            raise InputError("--candidates needs --gallery, --samples and --list-length")
        if distributions is not None or fmr is not None or extrapolate or gallery_sizes != "full":
            raise InputError("candidate lists answer at the enrolled gallery size and at score thresholds "
                             "only: --distributions, --fmr, --extrapolate and --gallery-sizes do not apply")
        run_candidates(candidates, gallery, samples, list_length=list_length,
                       candidate_threshold=candidate_threshold, thresholds=_floats(threshold or ""),
                       ranks=[int(r) for r in _floats(rank)], group=group, bootstrap=bootstrap, seed=seed,
                       level=level, json_out=json_out, quiet=quiet)
    except FaceAuditError as exc:
        fail(exc)


def scenario(
    distributions: Annotated[Path, typer.Option(help="a .fadist file from `faceaudit compare`")],
    searches: Annotated[float, typer.Option(help="number of searches")],
    gallery: Annotated[float, typer.Option(help="faces in the gallery searched")],
    threshold: Annotated[float | None, typer.Option(help="the threshold the system runs at")] = None,
    max_false_matches: Annotated[float | None, typer.Option(help="instead of --threshold: find the threshold keeping expected false matches within this")] = None,
    mated_share: Annotated[float, typer.Option(help="share of searches whose person is enrolled")] = 0.0,
    mix: Annotated[str | None, typer.Option(help="searched population, e.g. sex=female:0.3,male:0.7 (default: the set's own mix)")] = None,
    tail_m: Annotated[int, typer.Option(help="per-probe tail size m for the GPD model")] = 20,
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (GPD refitted on each)")] = 100,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    report_out: Annotated[Path | None, typer.Option("--report", help="write a self-contained HTML page of this scenario "
                                                    "(to put it in an audit's report: faceaudit report result.json "
                                                    "--scenario SCENARIO.json)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Operational projection: expected false matches of S searches against a gallery of N at a threshold."""
    from faceaudit.errors import FaceAuditError
    from faceaudit.report.scenarios import record_distributions_input
    from faceaudit.scenario import parse_mix
    from faceaudit.scenario import scenario as run_scenario

    try:
        parsed = parse_mix(mix)
        tails = _load(distributions)
        result = run_scenario(tails, searches=searches, gallery_size=gallery, threshold=threshold,
                              max_false_matches=max_false_matches, mated_share=mated_share, mix=parsed, m=tail_m,
                              bootstrap=bootstrap, seed=seed, level=level)
        doc = to_document(result)
        # the .fadist file it was computed from, so that `faceaudit report --scenario` can match it to an audit
        record_distributions_input(doc, distributions)
        if json_out:
            write_json(doc, json_out)
        if report_out:
            from faceaudit.report.html import write_html

            write_html(doc, report_out)
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        typer.echo("\n".join(scenario_lines(doc)))
