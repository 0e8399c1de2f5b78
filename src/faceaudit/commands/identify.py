"""``faceaudit identify``: 1:N measures (FPIR, FNIR, CMC) by gallery size and probe group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.common import floats, load_distributions
from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError, InputError
from faceaudit.report.document import identification_lines, to_document
from faceaudit.report.jsonout import write_json

__all__ = ["identify"]


def identify(
    distributions: Annotated[
        Path, typer.Option(help="a .fadist file from `faceaudit compare` (needs its per-probe summaries)")
    ],
    threshold: Annotated[
        str | None, typer.Option(help="threshold(s), comma-separated, e.g. 0.45,0.52")
    ] = None,
    fmr: Annotated[
        str | None,
        typer.Option(
            help="instead of --threshold: target FMR(s), e.g. 1e-3,1e-4 (global "
            "thresholds read from the exact non-mated tail, as the audit does)"
        ),
    ] = None,
    gallery_sizes: Annotated[
        str, typer.Option(help="non-mated gallery sizes, comma-separated; 'full' = every other sample")
    ] = "full",
    rank: Annotated[str, typer.Option(help="ranks for FNIR and CMC, comma-separated")] = "1",
    extrapolate: Annotated[
        str, typer.Option(help="gallery sizes beyond the set for the tail model, e.g. 1e5,1e7")
    ] = "",
    group: Annotated[
        list[str],
        typer.Option("--group", help="group column (repeat): each, then their intersection; default: all"),
    ] = [],  # noqa: B006
    tail_m: Annotated[int, typer.Option(help="per-probe tail size m for the GPD model")] = 20,
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (0 disables)")] = 200,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """1:N identification: FPIR, FNIR and CMC by gallery size, per probe group, with intervals."""
    from faceaudit.groups import default_groupings
    from faceaudit.measures.identification import ProbeTails, identification, parse_gallery_sizes
    from faceaudit.measures.verification import global_fmr_thresholds

    try:
        if (threshold is None) == (fmr is None):
            raise InputError("give exactly one of --threshold and --fmr")
        dist = load_distributions(distributions)
        tails = ProbeTails.from_distributions(dist)
        fmr_targets = floats(fmr) if fmr is not None else None
        thresholds = global_fmr_thresholds(dist, fmr_targets) if fmr_targets else floats(threshold or "")
        result = identification(
            tails,
            thresholds=thresholds,
            fmr_targets=fmr_targets,
            gallery_sizes=parse_gallery_sizes(gallery_sizes),
            ranks=[int(r) for r in floats(rank)],
            extrapolate_to=floats(extrapolate),
            groupings=default_groupings(group) if group else None,
            m=tail_m,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
        )
    except FaceAuditError as exc:
        fail(exc)
    doc = to_document(result)
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(identification_lines(doc)))
