"""``faceaudit identify`` and ``faceaudit scenario``: 1:N measures and the operational projection.

Typer command functions; the app mounts them (``app.command("identify")(identify)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from faceaudit.cli_errors import fail
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


def _ci(d: dict[str, Any] | None) -> str:
    return "" if not d else f" [{d['low']:.3g}, {d['high']:.3g}]"


def _rate(r: dict[str, Any]) -> str:
    """A counted rate as faceaudit prints rates: value, count/total, Clopper-Pearson and subject
    bootstrap; a zero count as 0/total with its rule-of-three upper bound, never ``0 [0, 0]``."""
    if r.get("value") is None:
        return "n/a (no searches)"
    total = r["total"]
    if "rule_of_three_upper" in r:
        return f"0 (0/{total:,}; <= {r['rule_of_three_upper']:.3g} by rule of 3)"
    count = f"{r['count']:,}" if "count" in r else f"~{r['expected_count']:.3g}"
    cp = r.get("clopper_pearson")
    boot = r.get("subject_bootstrap")
    return (f"{r['value']:.3g} ({count}/{total:,}"
            + (f"; CP [{cp['low']:.3g}, {cp['high']:.3g}]" if cp else "")
            + (f"; boot [{boot['low']:.3g}, {boot['high']:.3g}]" if boot else "") + ")")


def format_identification(doc: dict[str, Any]) -> list[str]:
    """Plain lines: per probe group, FPIR and FNIR at each gallery size and threshold, CMC, and the
    extrapolated FPIR next to the naive N x FMR."""
    lines = [f"1:N on {doc['counts']['probes']:,} probes ({doc['counts']['mated_probes']:,} with a mate) of "
             f"{doc['counts']['subjects']:,} subjects; protocol: {doc['protocol']}"]
    for f in doc["settings"].get("fmr_targets", []):
        lines.append(f"threshold {f['threshold']:.6g} = global FMR {f['fmr_target']:g} ({f['source']})")
    blocks = [doc["overall"]] + [b for bs in doc["by_group"].values() for b in bs]
    for b in blocks:
        lines.append(f"\n== probes: {b['group']} ({b['probes']:,} probes, {b['subjects']:,} subjects)")
        for p in b["points"]:
            fn = "  ".join(f"FNIR@{f['rank']}={_rate(f['rate'])}" for f in p["fnir"])
            note = "" if p["exact"] else f"  (bounded: {p['fpir_bounds'][0]:.3g}..{p['fpir_bounds'][1]:.3g})"
            lines.append(f"  N={p['gallery_size']!s:>8} T={p['threshold']:<8.6g} FPIR={_rate(p['fpir'])}{note}  {fn}")
        for c in b["cmc"]:
            lines.append(f"  N={c['gallery_size']!s:>8} CMC: " + "  ".join(
                f"rank {x['rank']}: {_rate(x['rate'])}" for x in c["cmc"]))
        for x in b.get("extrapolated", []):
            conc = x["share_from_top_1pct_probes"]
            lines.append(
                f"  N={x['gallery_size']:>8.3g} T={x['threshold']:<8.6g} model FPIR={x['fpir']:.3g}{_ci(x['interval'])}"
                + (f" (one gallery:{_ci(x['prediction_interval'])})" if x.get("prediction_interval") else "")
                + f"  naive N*FMR={x['naive_n_fmr']:.3g}  homogeneous 1-(1-FMR)^N={x['homogeneous_fpir']:.3g}"
                + (f"  top 1% of probes carry {100 * conc:.0f}%" if conc is not None else "")
                + ("  [FMR below anything observed]" if x["beyond_observed_fmr"] else ""))
    if any(b.get("extrapolated") for b in blocks):
        lines.append("\nWhy the model and N*FMR differ: FMR is an average over probes; a few probes (lambs) match many "
                     "people and saturate (a search counts once), most match almost no one. The model keeps each probe's "
                     "own tail, so FPIR = mean over probes of 1-(1-p_probe)^N, not N times the mean.\n"
                     "The interval is on the expected FPIR of a search; 'one gallery' is what a particular gallery of "
                     "that size does to these probes: a lookalike (a relative, a mislabelled identity) in it takes many "
                     "of one person's samples at once.")
    for f in doc["flags"]:
        lines.append(f"FLAG: {f}")
    return lines


def format_scenario(doc: dict[str, Any]) -> list[str]:
    e = doc["expected"]
    lines = [doc["statement"], "",
             f"expected false matches: {e['false_matches']:,.1f}{_ci(e['interval'])}"
             + (f" (one run of these searches, each of a different person:{_ci(e['count_interval'])})"
                if e.get("count_interval") else "") + "  "
             f"(non-mated searches {e['from_nonmated_searches']:,.1f}, mated searches also returning someone else "
             f"{e['from_mated_searches']:,.1f}, of which wrong person first {e['mated_searches_wrong_person_first']:,.1f}"
             f"{_ci(e.get('mated_searches_wrong_person_first_interval'))})",
             f"FPIR {e['fpir']:.3g}; modelled FMR at the threshold {e['fmr_at_threshold']:.3g}; "
             f"naive searches x N x FMR {e['naive_searches_x_n_x_fmr']:,.1f}"]
    for g in doc["by_group"]:
        lines.append(f"  {g['group']:<16} share {g['share']:.3g}  probes {g['probes']:,}  FPIR {g['fpir']:.3g}  "
                     f"false matches {g['false_matches']:,.1f}{_ci(g.get('interval'))}")
    if doc["budget"]:
        b = doc["budget"]
        lines.append(f"budget {b['max_false_matches']:g}: threshold {b.get('threshold')!s} (point estimate), "
                     f"{b.get('threshold_upper_bound_within_budget')!s} (upper interval bound within budget)")
    for f in doc["flags"]:
        lines.append(f"FLAG: {f}")
    return lines


def identify(
    distributions: Annotated[Path, typer.Option(help="a .fadist file from `faceaudit compare` (needs its per-probe summaries)")],
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
) -> None:
    """1:N identification: FPIR, FNIR and CMC by gallery size, per probe group, with intervals."""
    from faceaudit.compare.store import load_distributions
    from faceaudit.errors import FaceAuditError, InputError
    from faceaudit.measures.identification import ProbeTails, identification, parse_gallery_sizes

    try:
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
    doc = result.to_dict()
    if json_out:
        write_json(doc, json_out)
    if not quiet:
        typer.echo("\n".join(format_identification(doc)))


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
    from faceaudit.report.jsonout import to_jsonable
    from faceaudit.report.scenarios import record_distributions_input
    from faceaudit.scenario import parse_mix
    from faceaudit.scenario import scenario as run_scenario

    try:
        parsed = parse_mix(mix)
        tails = _load(distributions)
        result = run_scenario(tails, searches=searches, gallery_size=gallery, threshold=threshold,
                              max_false_matches=max_false_matches, mated_share=mated_share, mix=parsed, m=tail_m,
                              bootstrap=bootstrap, seed=seed, level=level)
        raw = result.to_dict()
        doc = to_jsonable(raw)
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
        typer.echo("\n".join(format_scenario(raw)))
