"""``faceaudit evidence``: the LR of one comparison score, calibrated and validated on a ``.fadist`` set.

Registered in the CLI by ``app.command("evidence")(evidence)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from faceaudit.commands.errors import fail
from faceaudit.errors import FaceAuditError
from faceaudit.options import (
    callback,
    check_level,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_seed,
)

__all__ = ["evidence", "run_evidence", "parse_criteria"]


def parse_criteria(items: list[str]) -> dict[str, tuple[str, float]]:
    """``metric=value`` items -> {metric: (characteristic, value)} over the known metrics."""
    from faceaudit.evidence.errors import EvidenceOptionError
    from faceaudit.evidence.evaluate import DEFAULT_CRITERIA

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_CRITERIA:
            raise EvidenceOptionError(
                f"--criterion {item!r}: expected metric=value with metric one of {sorted(DEFAULT_CRITERIA)}"
            )
        try:
            bound = float(value)
        except ValueError:
            raise EvidenceOptionError(f"--criterion {item!r}: {value!r} is not a number") from None
        if not math.isfinite(bound) or bound < 0:
            raise EvidenceOptionError(f"--criterion {item!r}: the bound must be a finite number >= 0")
        out[name] = (DEFAULT_CRITERIA[name][0], bound)
    return out


def _check_options(folds: int, bootstrap: int, level: float, strong: float) -> None:
    from faceaudit.evidence.errors import EvidenceOptionError

    if folds < 3:
        raise EvidenceOptionError(
            f"--folds {folds}: subject-disjoint cross-validation needs at least 3 folds "
            "(a pair of people in folds i and j is evaluated by a system fitted on the others)"
        )
    if bootstrap < 0:
        raise EvidenceOptionError(f"--bootstrap {bootstrap}: must be >= 0")
    if not (math.isfinite(level) and 0 < level < 1):
        raise EvidenceOptionError(f"--level {level}: must lie strictly between 0 and 1")
    if not (math.isfinite(strong) and strong > 0):
        raise EvidenceOptionError(f"--strong {strong}: must be a finite number > 0")


def run_evidence(
    calibration: Path,
    *,
    score: float | None = None,
    group: str | None = None,
    by: list[str] | None = None,
    method: str = "logistic",
    folds: int = 5,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    strong: float = 2.0,
    scale: Path | None = None,
    criteria: list[str] | None = None,
) -> dict[str, Any]:
    """The evidence document for ``calibration`` (a .fadist file); every refusal is a named error."""
    from faceaudit.compare.store import load_distributions
    from faceaudit.data.tables import file_sha256
    from faceaudit.evidence.document import evidence_document
    from faceaudit.evidence.errors import EvidenceOptionError
    from faceaudit.evidence.evaluate import evaluate
    from faceaudit.evidence.points import calibration_points, parse_group
    from faceaudit.evidence.scale import ENFSI_2015, load_scale
    from faceaudit.report.schema import validate_evidence_document

    _check_options(folds, bootstrap, level, strong)
    crit = parse_criteria(criteria or [])
    verbal = load_scale(scale) if scale is not None else ENFSI_2015
    wanted = parse_group(group) if group else None
    grouping = tuple(wanted) if wanted else tuple(by or ())
    if wanted and by and set(by) != set(wanted):
        raise EvidenceOptionError(
            f"--group {group!r} sets the grouping to {sorted(wanted)}; --by {by} differs"
        )
    dist = load_distributions(calibration)
    points = calibration_points(dist, grouping)
    provenance = {
        "calibration": {"path": str(calibration), "sha256": file_sha256(calibration)},
        "model": dist.meta.get("model"),
        "source": dist.meta.get("source"),
    }
    result = evaluate(
        points,
        method,
        folds=folds,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        score=score,
        group=wanted,
        strong=strong,
        criteria=crit,
        provenance=provenance,
    )
    doc = evidence_document(result, verbal)
    # never write a document that `audit/report --evidence` would refuse (report/evidence.schema.json)
    validate_evidence_document(doc)
    return doc


def _print(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for sentence in doc["summary"]:
        console.print(sentence)
    table = Table(title="validation matrix")
    for col in ("characteristic", "metric", "criterion", "value", "result"):
        table.add_column(col)
    for c in doc["matrix"]:
        v = c["value"]["value"]
        table.add_row(
            c["characteristic"],
            c["metric"],
            f"<= {c['bound']:g}",
            "n/a" if v is None else f"{v:.4g}",
            c["status"],
        )
    console.print(table)


def evidence(
    calibration: Annotated[Path, typer.Option(help="calibration set: a .fadist file (faceaudit compare)")],
    score: Annotated[float | None, typer.Option(help="the comparison score to evaluate")] = None,
    group: Annotated[
        str | None, typer.Option(help="the group of the pair, e.g. sex=female (column=value[,...])")
    ] = None,
    by: Annotated[
        list[str],
        typer.Option("--by", help="column to calibrate per group by (repeat); default: the --group columns"),
    ] = [],  # noqa: B006
    method: Annotated[str, typer.Option(help="logistic | pav | gaussian")] = "logistic",
    folds: Annotated[
        int,
        typer.Option(help="subject-disjoint cross-validation folds", callback=callback(check_positive_int)),
    ] = 5,
    bootstrap: Annotated[
        int,
        typer.Option(
            help="subject-bootstrap replicates (0: no intervals)", callback=callback(check_nonnegative_int)
        ),
    ] = 200,
    seed: Annotated[
        int, typer.Option(help="seed of the folds and the bootstrap", callback=callback(check_seed))
    ] = 0,
    level: Annotated[float, typer.Option(help="interval level", callback=callback(check_level))] = 0.95,
    strong: Annotated[
        float,
        typer.Option(
            help="|log10 LR| above which misleading evidence counts as strong",
            callback=callback(check_positive),
        ),
    ] = 2.0,
    scale: Annotated[Path | None, typer.Option(help="verbal scale JSON (default: ENFSI 2015)")] = None,
    criterion: Annotated[
        list[str],
        typer.Option("--criterion", help="validation criterion metric=value (repeat), e.g. cllr=0.3"),
    ] = [],  # noqa: B006
    json_out: Annotated[Path | None, typer.Option("--json", help="write the evidence document here")] = None,
    report_out: Annotated[
        Path | None, typer.Option("--report", help="write the evidence sheet (HTML) here")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """The likelihood ratio of one comparison score, with its interval, its words and its validation."""
    try:
        doc = run_evidence(
            calibration,
            score=score,
            group=group,
            by=by,
            method=method,
            folds=folds,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            strong=strong,
            scale=scale,
            criteria=criterion,
        )
        if json_out:
            from faceaudit.report.jsonout import write_json

            write_json(doc, json_out)
        if report_out:
            from faceaudit.evidence.sheet import write_evidence_html

            write_evidence_html(doc, report_out)
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        _print(doc)
