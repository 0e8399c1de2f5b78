"""``faceaudit identify``: 1:N measures (FPIR, FNIR, CMC) by gallery size and probe group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceaudit.commands.common import floats, load_distributions, stored_tail_size
from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError, InputError
from faceaudit.options import (
    callback,
    check_finite,
    check_level,
    check_nonnegative_int,
    check_positive_int,
    check_probability,
    check_seed,
    check_size,
    check_tail_m,
    comma_list,
)
from faceaudit.report.document import identification_lines, to_document
from faceaudit.report.jsonout import write_json

__all__ = ["identify"]


def identify(
    distributions: Annotated[
        Path | None,
        typer.Option(help="a .fadist file from `faceaudit compare` (needs its per-probe summaries)"),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(help="threshold(s), comma-separated, e.g. 0.45,0.52", callback=comma_list(check_finite)),
    ] = None,
    fmr: Annotated[
        str | None,
        typer.Option(
            help="instead of --threshold: target FMR(s), e.g. 1e-3,1e-4 (global "
            "thresholds read from the exact non-mated tail, as the audit does)",
            callback=comma_list(check_probability),
        ),
    ] = None,
    gallery_sizes: Annotated[
        str, typer.Option(help="non-mated gallery sizes, comma-separated; 'full' = every other sample")
    ] = "full",
    rank: Annotated[
        str,
        typer.Option(help="ranks for FNIR and CMC, comma-separated", callback=comma_list(check_positive_int)),
    ] = "1",
    extrapolate: Annotated[
        str,
        typer.Option(
            help="gallery sizes beyond the set for the tail model, e.g. 1e5,1e7",
            callback=comma_list(check_size),
        ),
    ] = "",
    group: Annotated[
        list[str],
        typer.Option("--group", help="group column (repeat): each, then their intersection; default: all"),
    ] = [],  # noqa: B006
    tail_m: Annotated[
        int,
        typer.Option(help="per-probe tail size m for the GPD model", callback=callback(check_positive_int)),
    ] = 20,
    bootstrap: Annotated[
        int,
        typer.Option(
            help="subject-bootstrap replicates (0 disables)", callback=callback(check_nonnegative_int)
        ),
    ] = 200,
    seed: Annotated[int, typer.Option(help="bootstrap seed", callback=callback(check_seed))] = 0,
    level: Annotated[float, typer.Option(help="interval level", callback=callback(check_level))] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
    candidates: Annotated[
        Path | None,
        typer.Option(
            help="instead of --distributions: a closed system's candidate lists "
            "(search_id, probe, rank, candidate[, score][, decision])"
        ),
    ] = None,
    gallery: Annotated[
        Path | None, typer.Option(help="with --candidates: the enrolled samples (sample_id)")
    ] = None,
    samples: Annotated[Path | None, typer.Option(help="with --candidates: the sample table")] = None,
    list_length: Annotated[
        int | None,
        typer.Option(
            help="with --candidates: the list length asked for", callback=callback(check_positive_int)
        ),
    ] = None,
    candidate_threshold: Annotated[
        float | None,
        typer.Option(
            help="with --candidates: the score at or above which the system returns every candidate",
            callback=callback(check_finite),
        ),
    ] = None,
) -> None:
    """1:N identification: FPIR, FNIR and CMC by gallery size, per probe group, with intervals (from
    all-pairs distributions, or from a closed system's candidate lists at the enrolled gallery size)."""
    from faceaudit.groups import default_groupings
    from faceaudit.measures.identification import ProbeTails, identification, parse_gallery_sizes
    from faceaudit.measures.verification import global_fmr_thresholds

    if candidates is not None:
        _identify_candidates(
            candidates,
            gallery,
            samples,
            list_length,
            candidate_threshold,
            threshold,
            rank,
            group,
            bootstrap,
            seed,
            level,
            json_out,
            quiet,
            wrong_options=distributions is not None
            or fmr is not None
            or bool(extrapolate)
            or gallery_sizes != "full",
        )
        return
    try:
        if distributions is None:
            raise InputError("give --distributions (or --candidates, --gallery, --samples, --list-length)")
        if (threshold is None) == (fmr is None):
            raise InputError("give exactly one of --threshold and --fmr")
        dist = load_distributions(distributions)
        tails = ProbeTails.from_distributions(dist)
        check_tail_m("--tail-m", tail_m, stored_tail_size(dist))  # more than stored cannot take effect
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


def _identify_candidates(
    candidates: Path,
    gallery: Path | None,
    samples: Path | None,
    list_length: int | None,
    candidate_threshold: float | None,
    threshold: str | None,
    rank: str,
    group: list[str],
    bootstrap: int,
    seed: int,
    level: float,
    json_out: Path | None,
    quiet: bool,
    wrong_options: bool,
) -> None:
    """``identify --candidates``: 1:N at the enrolled gallery from a closed system's candidate lists."""
    from faceaudit.commands.closed import run_candidates

    try:
        if gallery is None or samples is None or list_length is None:
            raise InputError("--candidates needs --gallery, --samples and --list-length")
        if wrong_options:
            raise InputError(
                "candidate lists answer at the enrolled gallery size and at score thresholds "
                "only: --distributions, --fmr, --extrapolate and --gallery-sizes do not apply"
            )
        run_candidates(
            candidates,
            gallery,
            samples,
            list_length=list_length,
            candidate_threshold=candidate_threshold,
            thresholds=floats(threshold or ""),
            ranks=[int(r) for r in floats(rank)],
            group=group,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            json_out=json_out,
            quiet=quiet,
        )
    except FaceAuditError as exc:
        fail(exc)
