"""Commands for closed systems: audit decision-only / censored results, 1:N from candidate lists,
request plans, claim checks.

Typer command functions; the app mounts them (``app.command("plan")(plan)``, ...). Until ``audit``
detects a decision column itself (:func:`is_closed_result_file`), ``audit-results`` is the 1:1 entry
point and ``identify-candidates`` the 1:N one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from faceaudit.cli_errors import fail
from faceaudit.report.jsonout import write_json

__all__ = [
    "audit_results",
    "identify_candidates",
    "plan",
    "is_closed_result_file",
    "closed_audit_document",
    "format_closed_audit",
    "CANDIDATE_PROTOCOL",
]

CANDIDATE_PROTOCOL = (
    "candidate lists returned by the system: each probe searched the enrolled gallery once (itself left "
    "out). A search is mated when the probe's subject has another enrolled sample. FPIR(T): a search returns "
    "a non-mated candidate with score >= T (every search, its own subject's candidates set aside). "
    "FNIR(R, T): a mated search does not return the first mate within rank R at score >= T. "
    "CMC(R) = 1 - FNIR(R, -inf). Only the enrolled gallery size. A full list holds every candidate strictly "
    "above its lowest score, a shorter one every candidate at or above the stated candidate threshold (else "
    "its own lowest score); thresholds and ranks the lists do not reach are refused. Ranks are the system's."
)


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


def _rate(r: Any) -> dict[str, Any]:
    return r.as_dict()


def closed_audit_document(result: Any, verdicts: list, manifest: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a :class:`~faceaudit.measures.decisions.ClosedAudit` (and its claims)."""
    from faceaudit import __version__
    from faceaudit.claims import RULE

    def group(g) -> dict[str, Any]:
        return {
            "grouping": " x ".join(g.grouping) or "overall",
            "group": " | ".join(g.values) or "all",
            "subjects": g.subjects,
            "fmr": _rate(g.fmr),
            "fnmr": _rate(g.fnmr),
        }

    points = []
    for p in result.points:
        points.append(
            {
                "threshold": p.threshold,
                "source": p.source,
                "overall": group(p.overall),
                "by_group": [group(g) for g in p.by_group],
                "cross_group_fmr": [
                    {
                        "grouping": " x ".join(c.grouping),
                        "groups": [" | ".join(x) for x in c.labels],
                        "fmr": [[_rate(r) for r in row] for row in c.fmr],
                    }
                    for c in p.cross_group
                ],
            }
        )
    curves = [
        {
            "grouping": " x ".join(c.grouping) or "overall",
            "group": " | ".join(c.values) or "all",
            "threshold": c.threshold,
            "false_matches": c.false_matches,
            "false_non_matches": c.false_non_matches,
            "nonmated": c.nonmated,
            "mated": c.mated,
            "eer": c.eer,
            "eer_threshold": c.eer_threshold,
            "eer_note": None if c.eer is not None else "below_censoring_level_or_not_measurable",
        }
        for c in result.curves
    ]
    return {
        "schema": "faceaudit.closed_audit",
        "schema_version": "1.0",
        "faceaudit_version": __version__,
        "kind": result.kind,
        "censoring": None
        if result.kind != "censored"
        else {
            "level": result.censored_below,
            "censored_mated": result.censored_mated,
            "censored_nonmated": result.censored_nonmated,
            "rule": "scores below the level were not reported; nothing is measured below it",
        },
        "counts": {"mated": result.mated, "nonmated": result.nonmated, "exclusions": dict(result.exclusions)},
        "settings": {
            "level": result.level,
            "bootstrap_replicates": result.bootstrap_replicates,
            "bootstrap_seed": result.bootstrap_seed,
        },
        "points": points,
        "det_above_censoring": curves,
        "claims": {"rule": RULE, "verdicts": [v.as_dict() for v in verdicts]},
        "manifest": manifest,
    }


def _fmt(r: dict[str, Any]) -> str:
    if r.get("value") is None:
        return "n/a (no comparisons)"
    cp = r["clopper_pearson"]
    out = f"{r['value']:.3g} ({r['count']:,}/{r['total']:,}; CP [{cp['low']:.3g}, {cp['high']:.3g}]"
    if "rule_of_three_upper" in r:
        out += f"; <= {r['rule_of_three_upper']:.3g} by rule of 3"
    if "subject_bootstrap" in r:
        b = r["subject_bootstrap"]
        out += f"; boot [{b['low']:.3g}, {b['high']:.3g}]"
    return out + ")"


def format_closed_audit(doc: dict[str, Any]) -> list[str]:
    lines = [
        f"closed system results ({doc['kind']}): {doc['counts']['mated']:,} mated and "
        f"{doc['counts']['nonmated']:,} non-mated comparisons"
    ]
    if doc["censoring"]:
        c = doc["censoring"]
        lines.append(
            f"censored below {c['level']:.6g}: {c['censored_mated']:,} mated and {c['censored_nonmated']:,} "
            "non-mated comparisons reported no score; nothing is measured below that level"
        )
    for p in doc["points"]:
        where = (
            "at the system's own decision" if p["threshold"] is None else f"at threshold {p['threshold']:.6g}"
        )
        lines.append(f"\n== {where}")
        for g in [p["overall"], *p["by_group"]]:
            lines.append(
                f"  {g['grouping']:<12} {g['group']:<20} FMR {_fmt(g['fmr'])}  FNMR {_fmt(g['fnmr'])}"
            )
    for c in doc["det_above_censoring"]:
        if c["grouping"] == "overall":
            eer = (
                "not measurable (below the censoring level)"
                if c["eer"] is None
                else f"{c['eer']:.4g} at {c['eer_threshold']:.6g}"
            )
            lines.append(f"\nDET above the censoring level: {len(c['threshold'])} exact points; EER {eer}")
    if doc["claims"]["verdicts"]:
        lines.append(f"\nclaims ({doc['claims']['rule']}):")
        for v in doc["claims"]["verdicts"]:
            lo, hi = v["interval"]
            iv = "no comparisons" if lo is None else f"[{lo:.3g}, {hi:.3g}]"
            lines.append(
                f"  {v['claim']:<28} {v['grouping']:<12} {v['group']:<20} {v['count']:,}/{v['total']:,} "
                f"{iv}  -> {v['verdict'].upper().replace('_', ' ')}"
            )
    return lines


def audit_results(
    scores: Annotated[
        Path, typer.Option(help="the system's results: probe, reference, decision and/or score")
    ],
    samples: Annotated[Path, typer.Option(help="sample table: sample_id, subject_id, attribute columns")],
    group: Annotated[
        list[str], typer.Option("--group", help="attribute column to break results down by (repeat)")
    ] = [],  # noqa: B006,E501
    censored_below: Annotated[
        float | None, typer.Option(help="the level below which the system reports no score")
    ] = None,
    threshold: Annotated[
        list[float], typer.Option("--threshold", help="censored scores: threshold(s) >= the level")
    ] = [],  # noqa: B006,E501
    claim: Annotated[list[str], typer.Option("--claim", help="e.g. 'fmr<=1e-4 per group' (repeat)")] = [],  # noqa: B006
    use: Annotated[str, typer.Option(help="auto, decision or score")] = "auto",
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (0 disables)")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """Audit a closed system's 1:1 results: decisions only, or scores censored below a level."""
    from faceaudit.claims import check_closed_audit, parse_claim
    from faceaudit.data.decisions import read_closed_comparisons, read_samples
    from faceaudit.errors import FaceAuditError
    from faceaudit.measures.decisions import closed_audit

    try:
        claims = [parse_claim(c) for c in claim]
        index = read_samples(samples, group)
        closed = read_closed_comparisons(scores, index, censored_below=censored_below, use=use)
        result = closed_audit(closed, thresholds=threshold, level=level, bootstrap=bootstrap, seed=seed)
        verdicts = check_closed_audit(claims, result)
    except FaceAuditError as exc:
        fail(exc)
    doc = closed_audit_document(result, verdicts, closed.manifest)
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(format_closed_audit(doc)))


def identify_candidates(
    candidates: Annotated[Path, typer.Option(help="search_id, probe, rank, candidate[, score][, decision]")],
    gallery: Annotated[Path, typer.Option(help="the enrolled samples: a sample_id column")],
    samples: Annotated[Path, typer.Option(help="sample table: sample_id, subject_id, attribute columns")],
    list_length: Annotated[int, typer.Option(help="the candidate list length the system was asked for")],
    group: Annotated[
        list[str], typer.Option("--group", help="probe group column (repeat; default: each)")
    ] = [],  # noqa: B006
    candidate_threshold: Annotated[
        float | None,
        typer.Option(
            help="the score at or above which the system returns every candidate (when it cuts lists)"
        ),
    ] = None,
    threshold: Annotated[str, typer.Option(help="threshold(s), comma-separated (scored lists)")] = "",
    rank: Annotated[str, typer.Option(help="ranks for FNIR and CMC, comma-separated")] = "1",
    use: Annotated[str, typer.Option(help="auto, score, decision or rank")] = "auto",
    bootstrap: Annotated[int, typer.Option(help="subject-bootstrap replicates (0 disables)")] = 200,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="interval level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no terminal output")] = False,
) -> None:
    """1:N from a closed system's candidate lists: FPIR, FNIR and CMC at the enrolled gallery size."""
    from faceaudit.data.candidates import read_candidate_lists, read_gallery
    from faceaudit.data.decisions import read_samples
    from faceaudit.errors import FaceAuditError, InputError
    from faceaudit.identify_command import format_identification
    from faceaudit.measures.candidates import candidate_identification

    try:
        try:
            thresholds = [float(x) for x in threshold.split(",") if x.strip()]
            ranks = [int(x) for x in rank.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"cannot read --threshold {threshold!r} / --rank {rank!r} as numbers") from None
        index = read_samples(samples, group)
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
    except FaceAuditError as exc:
        fail(exc)
    doc = result.to_dict()
    doc["protocol"] = CANDIDATE_PROTOCOL
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(format_identification(doc)))


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

    try:
        index = read_samples(samples, group)
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
        hours = result.hours_at(rate) if rate is not None else None
        write_plan(result, str(out))
    except FaceAuditError as exc:
        fail(exc)
    if not quiet:
        typer.echo("\n".join(format_plan(result, hours, rate)))


def format_plan(result: Any, hours: float | None, rate: float | None) -> list[str]:
    lines = []
    for name, claim, n, reached in (
        ("FMR", result.claim_fmr, result.fmr_comparisons, result.fmr_power),
        ("FNMR", result.claim_fnmr, result.fnmr_comparisons, result.fnmr_power),
    ):
        if claim is not None:
            lines.append(
                f"{name} <= {claim:g}: {n:,} comparisons per cell support it with power {reached:.3f} when "
                f"the true rate is {result.alternative:g} x the claim (exact binomial; pass = upper bound of "
                f"the {100 * result.level:g}% Clopper-Pearson interval <= the claim)"
            )
    for c in result.cells:
        cell = " | ".join(c.probe_group) or "all"
        if c.probe_group != c.reference_group:
            cell += " -> " + (" | ".join(c.reference_group) or "all")
        short = f"  SHORT by {c.shortfall:,}: this set cannot support the claim there" if c.shortfall else ""
        lines.append(
            f"  {c.kind:<10} {cell:<30} planned {c.planned:>12,}  needed {c.needed:>12,}  available "
            f"{c.available:>14,}{short}"
        )
    lines.append(
        f"total requests: {result.total:,} (mated {int(np.sum(result.mated)):,}); seed {result.seed}"
    )
    if hours is not None:
        lines.append(f"at {rate:g} requests/s: {hours:,.1f} hours ({hours / 24:,.1f} days)")
    return lines
