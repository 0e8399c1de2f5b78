"""``faceaudit plan``: the comparisons to request from a closed system, sized (exact binomial) for a
claim, before any request is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.errors import fail
from faceaudit.options import (
    callback,
    check_level,
    check_positive,
    check_positive_int,
    check_probability,
    check_seed,
)

__all__ = ["plan"]


def plan(
    samples: Annotated[Path, typer.Option(help="sample table: sample_id, subject_id, attribute columns")],
    out: Annotated[Path, typer.Option(help="write the requests here (.parquet, or .csv)")],
    group: Annotated[
        list[str], typer.Option("--group", help="attribute column defining the cells (repeat)")
    ] = [],  # noqa: B006
    claim_fmr: Annotated[
        float | None,
        typer.Option(help="the claimed FMR per group, e.g. 1e-4", callback=callback(check_probability)),
    ] = None,
    claim_fnmr: Annotated[
        float | None,
        typer.Option(help="the claimed FNMR per group, e.g. 0.01", callback=callback(check_probability)),
    ] = None,
    power: Annotated[
        float,
        typer.Option(
            help="chance of supporting the claim when the true rate is the alternative",
            callback=callback(check_probability),
        ),
    ] = 0.8,
    alternative: Annotated[
        float,
        typer.Option(
            help="the true rate assumed, as a share of the claim", callback=callback(check_probability)
        ),
    ] = 0.5,
    level: Annotated[
        float, typer.Option(help="interval level of the verdict", callback=callback(check_level))
    ] = 0.95,
    mated_per_subject: Annotated[
        int, typer.Option(help="most mated pairs per subject", callback=callback(check_positive_int))
    ] = 3,
    cells: Annotated[str, typer.Option(help="non-mated cells: all (cross-group too) or within")] = "all",
    rate: Annotated[
        float | None,
        typer.Option(help="the API's requests per second, for the time", callback=callback(check_positive)),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="random seed (the plan is reproducible)", callback=callback(check_seed))
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Plan the comparisons to request from a closed system, sized (exact binomial) for a claim."""
    from faceaudit.data.tables import read_sample_table
    from faceaudit.errors import FaceAuditError
    from faceaudit.plan import plan_requests, write_plan
    from faceaudit.report.document import plan_lines

    try:
        index = read_sample_table(samples, group)
        result = plan_requests(
            index,
            claim_fmr=claim_fmr,
            claim_fnmr=claim_fnmr,
            power=power,
            alternative=alternative,
            level=level,
            mated_per_subject=mated_per_subject,
            cells=cells,
            seed=seed,
        )
        lines = plan_lines(result, rate)
        write_plan(result, str(out))
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        typer.echo("\n".join(lines))
