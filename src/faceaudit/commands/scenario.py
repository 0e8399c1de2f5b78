"""``faceaudit scenario``: expected false matches of S searches against a gallery of N at a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.common import load_distributions, stored_tail_size
from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError
from faceaudit.options import (
    callback,
    check_finite,
    check_level,
    check_nonnegative,
    check_nonnegative_int,
    check_positive_int,
    check_seed,
    check_share,
    check_size,
    check_tail_m,
)
from faceaudit.report.document import scenario_lines, to_document
from faceaudit.report.jsonout import write_json

__all__ = ["scenario"]


def scenario(
    distributions: Annotated[Path, typer.Option(help="a .fadist file from `faceaudit compare`")],
    searches: Annotated[float, typer.Option(help="number of searches", callback=callback(check_nonnegative))],
    gallery: Annotated[
        float, typer.Option(help="faces in the gallery searched", callback=callback(check_size))
    ],
    threshold: Annotated[
        float | None, typer.Option(help="the threshold the system runs at", callback=callback(check_finite))
    ] = None,
    max_false_matches: Annotated[
        float | None,
        typer.Option(
            help="instead of --threshold: find the threshold keeping expected false matches within this",
            callback=callback(check_nonnegative),
        ),
    ] = None,
    mated_share: Annotated[
        float, typer.Option(help="share of searches whose person is enrolled", callback=callback(check_share))
    ] = 0.0,
    mix: Annotated[
        str | None,
        typer.Option(help="searched population, e.g. sex=female:0.3,male:0.7 (default: the set's own mix)"),
    ] = None,
    tail_m: Annotated[
        int,
        typer.Option(help="per-probe tail size m for the GPD model", callback=callback(check_positive_int)),
    ] = 20,
    bootstrap: Annotated[
        int,
        typer.Option(
            help="subject-bootstrap replicates (GPD refitted on each)",
            callback=callback(check_nonnegative_int),
        ),
    ] = 100,
    seed: Annotated[int, typer.Option(help="bootstrap seed", callback=callback(check_seed))] = 0,
    level: Annotated[float, typer.Option(help="interval level", callback=callback(check_level))] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    report_out: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="write a self-contained HTML page of this scenario "
            "(to put it in an audit's report: faceaudit report result.json "
            "--scenario SCENARIO.json)",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Operational projection: expected false matches of S searches against a gallery of N at a threshold."""
    from faceaudit.measures.identification import ProbeTails
    from faceaudit.report.scenarios import record_distributions_input
    from faceaudit.scenario import parse_mix
    from faceaudit.scenario import scenario as run_scenario

    try:
        parsed = parse_mix(mix)
        dist = load_distributions(distributions)
        tails = ProbeTails.from_distributions(dist)
        check_tail_m("--tail-m", tail_m, stored_tail_size(dist))  # more than stored cannot take effect
        result = run_scenario(
            tails,
            searches=searches,
            gallery_size=gallery,
            threshold=threshold,
            max_false_matches=max_false_matches,
            mated_share=mated_share,
            mix=parsed,
            m=tail_m,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
        )
        doc = to_document(result)
        # the .fadist file it was computed from, so that `faceaudit report --scenario` can match it
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
