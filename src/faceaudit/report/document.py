"""The one document layer: typed results (:mod:`faceaudit.results`) -> JSON documents, and their words.

Everything faceaudit says in sentences about a result is here: flag wording, notes, definitions, the
scenario's statement, the identification protocol. Everything it writes as JSON is built here: the
audit document (schema in ``report/schema.json``), the identification document and the scenario
document. The HTML page, the terminal tables and the identify/scenario text read these documents, and
format rates with the one formatter, :func:`format_rate`.

>>> from faceaudit.stats.intervals import rate
>>> rate_json(rate(0, 1000))["rule_of_three_upper"]
0.003
>>> format_rate(rate_json(rate(2, 1000)), "terminal")
'0.002 (2/1,000) [0.00024, 0.0072]'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from rich.markup import escape

from faceaudit.results import (
    AuditResult,
    Budget,
    CandidateIdentification,
    Card,
    CardCell,
    ClosedAuditResult,
    Comparison,
    CrossGroupMatrix,
    DetCurve,
    Differentials,
    Estimate,
    Exclusion,
    Flag,
    GroupAt,
    GroupMeasures,
    IdentificationResult,
    Interval,
    OperatingPoint,
    ProbeGroupMeasures,
    Rate,
    RateDifferentials,
    RatioEstimate,
    ScenarioResult,
    ThresholdMeasures,
    group_label,
    grouping_label,
)

__all__ = [
    "SCHEMA_VERSION",
    "PLAIN_SCHEMA_VERSION",
    "EVIDENCE_SINCE",
    "evidence_entry_json",
    "evidence_consistency_words",
    "EVIDENCE_TERMS",
    "EVIDENCE_WORDS",
    "EVIDENCE_PROVENANCE_LABELS",
    "IDENTIFICATION_SCHEMA_VERSION",
    "SCENARIO_SCHEMA_VERSION",
    "audit_json",
    "audit_document",
    "identification_json",
    "scenario_json",
    "at_json",
    "cross_json",
    "rate_json",
    "interval_json",
    "to_document",
    "flag_text",
    "FLAG_WORDS",
    "scenario_statement",
    "format_rate",
    "terminal_text",
    "fmt_num",
    "fmt_count",
    "fmt_interval",
    "identification_lines",
    "scenario_lines",
    "CONVENTION_MEANINGS",
    "claims_json",
    "claim_lines",
    "closed_audit_json",
    "closed_audit_lines",
    "CLOSED_WORDS",
    "candidate_identification_json",
    "plan_lines",
    "CLAIM_RULE",
    "CANDIDATE_PROTOCOL",
]

#: the newest audit document version this faceaudit writes (1.1: optional ``scenarios``; 1.2: differentials
#: with intervals, bounds and the minimum-data rule, ``cards``, ``headline``; 1.3: optional ``evidence``, the
#: likelihood-ratio documents of ``faceaudit evidence``); it reads any 1.x. A document states the lowest
#: version whose fields it uses: an audit without evidence is a 1.2 document (``PLAIN_SCHEMA_VERSION``),
#: byte for byte what 1.2 wrote; attaching evidence raises it to ``EVIDENCE_SINCE``
SCHEMA_VERSION = "1.3"
PLAIN_SCHEMA_VERSION = "1.2"
EVIDENCE_SINCE = "1.3"
IDENTIFICATION_SCHEMA_VERSION = "1.0"
SCENARIO_SCHEMA_VERSION = "1.0"


def _version() -> str:
    from faceaudit.version import __version__

    return __version__


# ----- rates and intervals -------------------------------------------------------------------------
def interval_json(iv: Interval | None) -> dict[str, Any] | None:
    return None if iv is None else {"low": iv.low, "high": iv.high, "level": iv.level, "method": iv.method}


def rate_json(r: Rate) -> dict[str, Any]:
    """A rate as the documents write it (``count`` or ``expected_count``, ``clopper_pearson``,
    ``subject_bootstrap``, ``rule_of_three_upper``, and a ``note`` where there is nothing to measure or
    a zero count's bootstrap was withheld)."""
    if r.total == 0:
        return {"count": 0, "total": 0, "value": None, "note": f"no {r.unit}"}
    out: dict[str, Any] = {"total": r.total, "value": r.value}
    if r.count is not None:
        out["count"] = r.count
    else:
        out["expected_count"] = r.expected_count
    out["clopper_pearson"] = interval_json(r.exact)
    if r.rule_of_three is not None:
        out["rule_of_three_upper"] = r.rule_of_three
    if r.bootstrap is not None:
        out["subject_bootstrap"] = interval_json(r.bootstrap)
    if r.bootstrap_withheld:
        out["note"] = (
            f"0 of {r.total} {r.unit}: the subject bootstrap of a zero count is [0, 0] and says nothing; "
            f"the rate is below {r.rule_of_three:.3g} (rule of three, 95%)"
        )
    return out


# ----- the audit document --------------------------------------------------------------------------
CONVENTION_MEANINGS: dict[str, str] = {
    "highest": "highest threshold achieving the FMR (bob.measure far_threshold): sits on a non-mated "
    "score; FNMR is the worst of the thresholds that achieve it",
    "lowest": "lowest threshold achieving the FMR (scikit-learn roc_curve / pyeer): the smallest observed "
    "score above the next lower non-mated score; FNMR is the best of the thresholds that achieve it",
}
DEFINITIONS = {
    "fmr_definition": "share of non-mated comparisons with score >= threshold",
    "fnmr_definition": "share of mated comparisons with score < threshold",
    "eer_definition": "(FMR + FNMR) / 2 at the threshold minimising |FMR - FNMR| (bob.measure candidates)",
    "group_fmr_definition": "non-mated comparisons with probe and reference both in the group",
}
BOOTSTRAP_NOTES = {
    "computed": None,
    "disabled": "disabled",
    "no_subject_pairs": "unavailable: no subject information for the non-mated pairs",
}
DET_DECIMATION = (
    "exact operating points (none interpolated): where the curve has more than the kept "
    "number, observed scores at geometrically spread ranks of each score set, then spread "
    "evenly along the curve on probit axes"
)
#: the score direction of distributions whose manifest does not record one
SIMILARITY = "similarity (higher = more alike)"
NO_DIFFERENTIALS = ("fewer than two groups entered both the FMR and the FNMR differentials (see the groups "
                    "left out and why)")


def point_json(p: OperatingPoint) -> dict[str, Any]:
    out: dict[str, Any] = {"threshold": p.threshold, "fmr": rate_json(p.fmr), "fnmr": rate_json(p.fnmr)}
    if p.fmr_target is not None:
        out["fmr_target"] = p.fmr_target
    if p.convention is not None:
        out["convention"] = p.convention
    return out


def det_json(c: DetCurve) -> dict[str, Any]:
    return {
        "points_total": c.points_total,
        "points_kept": c.points_kept,
        "decimation": DET_DECIMATION,
        "threshold": [float(x) if np.isfinite(x) else "inf" for x in c.threshold],
        "false_matches": c.false_matches.tolist(),
        "false_non_matches": c.false_non_matches.tolist(),
        "nonmated": c.nonmated,
        "mated": c.mated,
    }


def group_notes(g: GroupMeasures) -> list[str]:
    notes = []
    if g.mated == 0:
        notes.append("no mated comparisons: FNMR and EER undefined")
    if g.nonmated == 0:
        notes.append("no non-mated comparisons within the group: FMR and EER undefined")
    return notes


def group_json(g: GroupMeasures) -> dict[str, Any]:
    out: dict[str, Any] = {
        "grouping": g.grouping_name,
        "group": g.group,
        "values": list(g.values),
        "mated": g.mated,
        "nonmated": g.nonmated,
        "subjects": g.subjects,
        "notes": group_notes(g),
        "eer": g.eer,
        "eer_threshold": g.eer_threshold,
        "operating_points": [point_json(p) for p in g.operating_points],
    }
    if g.eer_point is not None:
        out["eer_point"] = point_json(g.eer_point)
    if g.at_global_threshold is not None:
        out["at_global_threshold"] = [point_json(p) for p in g.at_global_threshold]
    if g.det is not None:
        out["det"] = det_json(g.det)
    return out


def cross_json(m: CrossGroupMatrix) -> dict[str, Any]:
    return {
        "fmr_target": m.fmr_target,
        "threshold": m.threshold,
        "probe_groups": list(m.probe_groups),
        "reference_groups": list(m.reference_groups),
        "fmr": [[rate_json(r) for r in row] for row in m.fmr],
    }


ZERO_BOUND_WORDS = ("rule of three: a group with 0 errors in n trials takes 3/n (its 95% upper bound) as "
                    "its rate where it divides; the ratio is then a bound")
INTERVAL_WORDS = ("subject bootstrap, percentile: the statistic recomputed from the group rates of each "
                  "replicate (the same replicates for every group); replicates whose denominator had no "
                  "errors rank above every finite one (an interval reaching them is open above); 0/0 "
                  "replicates are dropped")
MINIMUM_DATA_WORDS = ("a group enters a differential only if it is labelled, has at least min_subjects "
                      "subjects, and enough trials that the rule-of-three bound 3/n lies below the "
                      "resolution (default: the target FMR for FMR, the overall FNMR at the threshold for "
                      "FNMR); the others are listed with the reason")


def exclusion_json(x: Exclusion) -> dict[str, Any]:
    return {"group": x.group, "reason": x.reason, "subjects": x.subjects, "trials": x.trials,
            "min_subjects": x.min_subjects, "resolution": x.resolution,
            "rule_of_three_upper": x.rule_of_three, "trials_needed": x.trials_needed}


def ratio_json(r: RatioEstimate | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"value": r.value, "kind": r.kind, "low": r.low, "high": r.high, "high_open": r.high_open,
            "level": r.level, "numerator": r.numerator, "denominator": r.denominator,
            "replicates": r.replicates,
            "replicates_unbounded": r.replicates_unbounded, "replicates_undefined": r.replicates_undefined}


def estimate_json(e: Estimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"value": e.value, "low": e.low, "high": e.high, "level": e.level, "replicates": e.replicates,
            "replicates_undefined": e.replicates_undefined}


def rate_differentials_json(r: RateDifferentials) -> dict[str, Any]:
    counts = [{"group": g, "errors": k, "trials": n, "subjects": subj, "value": k / n if n else None}
              for g, k, n, subj in r.counts]
    return {"rate": r.rate, "resolution": r.resolution, "groups": list(r.groups), "counts": counts,
            "left_out": [exclusion_json(x) for x in r.left_out], "max_min": ratio_json(r.max_min),
            "max_geomean": ratio_json(r.max_geomean),
            "highest_over_lowest": ratio_json(r.highest_over_lowest)}


def comparison_json(c: Comparison) -> dict[str, Any]:
    return {"grouping": c.grouping, "numerator": c.numerator, "denominator": c.denominator,
            "fmr": ratio_json(c.fmr), "fnmr": ratio_json(c.fnmr),
            "fmr_left_out": [exclusion_json(x) for x in c.fmr_left_out],
            "fnmr_left_out": [exclusion_json(x) for x in c.fnmr_left_out]}


def differentials_json(d: Differentials) -> dict[str, Any]:
    """One grouping's differentials at one global threshold (schema 1.2: intervals, bounds, the
    minimum-data rule; never "inf")."""
    both = d.groups
    names = [c[0] for c in d.fmr.counts]
    out: dict[str, Any] = {
        "grouping": d.grouping, "fmr_target": d.fmr_target, "threshold": d.threshold, "groups": list(both),
        "groups_left_out": [g for g in names if g not in both], "min_subjects": d.min_subjects,
        "level": d.level,
        "unlabelled": list(d.unlabelled), "zero_bound": ZERO_BOUND_WORDS, "interval_method": INTERVAL_WORDS,
        "fmr": rate_differentials_json(d.fmr), "fnmr": rate_differentials_json(d.fnmr),
        "fdr": estimate_json(d.fdr), "garbe": estimate_json(d.garbe),
        "comparisons": [comparison_json(c) for c in d.comparisons]}
    if not d.computed:
        out["note"] = NO_DIFFERENTIALS
    return out


def card_json(c: Card) -> dict[str, Any]:
    from faceaudit.measures.cards import pairing_name

    def cell(x: CardCell) -> dict[str, Any]:
        return {"count": x.count, "total": x.total, "value": x.value, "low": x.low, "high": x.high,
                "rule_of_three_upper": x.rule_of_three}

    return {"grouping": " x ".join(c.grouping), "pairing": list(c.pairing),
            "pairing_name": pairing_name(c.pairing), "threshold": c.threshold, "fmr_target": c.fmr_target,
            "level": c.level, "design": c.design,
            "interval_method": "clopper-pearson", "probe_groups": list(c.probe_groups),
            "reference_groups": list(c.reference_groups), "fmr": [[cell(x) for x in row] for row in c.cells]}


def _number(x: float | None) -> float | str | None:
    """A float for JSON: NaN -> null, infinities -> "inf" / "-inf"."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def at_json(t: ThresholdMeasures) -> dict[str, Any]:
    """``AuditResult.at(threshold)`` as JSON."""

    def entry(g: GroupAt) -> dict[str, Any]:
        return {
            "grouping": g.grouping,
            "group": g.group,
            "exact": g.exact,
            "fmr": None if g.fmr is None else rate_json(g.fmr),
            "fmr_bounds": None if g.fmr_bounds is None else list(g.fmr_bounds),
            "fnmr": rate_json(g.fnmr),
        }

    return {"threshold": t.threshold, "groups": [entry(g) for g in t.groups], "overall": entry(t.overall)}


def audit_settings_json(result: AuditResult) -> dict[str, Any]:
    s = result.settings
    return {"fmr_targets": list(s.fmr_targets), "convention": s.convention,
            "convention_meaning": CONVENTION_MEANINGS[s.convention],
            "groupings": [list(g) for g in s.groupings], "level": s.level,
            "bootstrap_replicates": s.bootstrap_replicates, "bootstrap_seed": s.bootstrap_seed,
            "bootstrap_note": BOOTSTRAP_NOTES[s.bootstrap_status],
            "score_direction": SIMILARITY if s.score_direction is None else s.score_direction,
            **DEFINITIONS, "tail_cutoff_range": list(s.tail_cutoff_range), "histogram_bins": s.histogram_bins,
            "minimum_data": {"min_subjects": s.min_subjects, "fmr_resolution": s.fmr_resolution,
                             "fnmr_resolution": s.fnmr_resolution, "unlabelled": list(s.unlabelled),
                             "rule": MINIMUM_DATA_WORDS},
            "compare": [{"grouping": g, "numerator": a, "denominator": b} for g, a, b in s.compare]}


def audit_json(result: AuditResult) -> dict[str, Any]:
    """The audit document without the compact distributions (see :func:`audit_document`)."""
    return {
        "schema": "faceaudit.audit",
        "schema_version": PLAIN_SCHEMA_VERSION,
        "faceaudit_version": _version(),
        "settings": audit_settings_json(result),
        "counts": result.counts,
        "overall": group_json(result.overall),
        "by_group": {k: [group_json(g) for g in v] for k, v in result.by_group.items()},
        "cross_group_fmr": {k: [cross_json(m) for m in v] for k, v in result.cross_group_fmr.items()},
        "differentials": {k: [differentials_json(d) for d in v] for k, v in result.differentials.items()},
        "cards": [card_json(c) for c in result.cards],
        "manifest": result.manifest,
    }


def audit_document(result: AuditResult, **kwargs: Any) -> dict[str, Any]:
    """The audit's JSON document in JSON types, with the ``distributions`` section the report's
    threshold control needs (when the result holds its distributions). Scenarios are added by
    :func:`faceaudit.report.scenarios.attach_scenarios`."""
    from faceaudit.report.compact import compact_distributions
    from faceaudit.report.jsonout import to_jsonable

    doc = to_jsonable(audit_json(result))
    doc["headline"] = audit_headline(doc)
    if result.distributions is not None and result.subsets:
        doc["distributions"] = compact_distributions(result.distributions, result.subsets, **kwargs)
    return doc


def audit_headline(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-language headline of an audit document, from its differentials and the labels' source
    (``manifest.labels``) alone (:mod:`faceaudit.report.headline`)."""
    from faceaudit.report.headline import build_headline

    labels = (doc.get("manifest") or {}).get("labels")
    labels = labels if isinstance(labels, (dict, str)) else None
    return build_headline(doc.get("differentials") or {}, labels=labels)


# ----- flags: codes -> words -----------------------------------------------------------------------
_LOOKALIKE_CAVEAT = (
    "their searches rise or fall together with whether the gallery holds a lookalike of theirs (a "
    "relative, a mislabelled identity), so the 1:N figures can move several-fold on that alone"
)


def _budget_notes(p: Mapping[str, Any]) -> list[str]:
    notes = []
    for unreachable, what, tail in (
        (p["threshold"] is None, "the expected false matches", ""),
        (
            p["threshold_upper_bound_within_budget"] is None,
            "the upper interval bound of the expected false matches",
            " with that confidence",
        ),
    ):
        if unreachable:
            notes.append(
                f"no threshold up to {p['highest_threshold_tried']:.6g} keeps {what} within "
                f"{p['max_false_matches']:g}; the data cannot support that budget{tail}"
            )
    return notes


FLAG_WORDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "person_concentration": lambda p: (
        f"{p['name']}: one person holds {100 * p['share']:.0f}% of the probes ({p['count']} of "
        f"{p['probes']}); "
        + _LOOKALIKE_CAVEAT
    ),
    "identification.group_too_small": lambda p: (
        f"group {p['group']} has {p['probes']} probes of {p['subjects']} subjects "
        f"(< {p['min_probes']} or < {p['min_subjects']}): its rates rest on too few people"
    ),
    "identification.pooled_calibration": lambda p: (
        f"group {p['group']}: fewer than {p['min_events']} of its non-mated scores reach "
        f"T = {p['threshold']:.6g}; its extrapolated FPIR uses the pooled calibration (pair part) of "
        "all probes, so it cannot differ from the others there for that reason"
    ),
    "identification.counts_lower_bounds": lambda p: (
        f"{p['group']}: at T = {p['threshold']:.6g} some probes have more non-mated scores >= T than "
        "their kept tail holds; the counts the model is calibrated on are lower bounds "
        "(rerun compare with a larger --top-k)"
    ),
    "identification.pair_concentration": lambda p: (
        f"{p['group']}: one pair of people gives {100 * p['share']:.0f}% of the {p['scores']} "
        f"non-mated scores >= T = {p['threshold']:.6g}: the extrapolation rests on whether a set holds "
        "such a pair (a relative, a mislabelled identity); on LFW that moved it by a factor of 3 to 5 "
        "either way"
    ),
    "scenario.group_too_small": lambda p: (
        f"group {p['column']}={p['group']} has {p['probes']} probes of {p['subjects']} subjects "
        f"(< {p['min_probes']} or < {p['min_subjects']}): its figure is not supported by the data"
    ),
    "scenario.gallery_beyond_measured": lambda p: (
        f"gallery of {p['gallery']:,.0f} is beyond the {p['measured']:,} non-mated references measured per "
        "probe: "
        "FPIR is extrapolated by the tail model"
    ),
    "scenario.budget_unreachable": lambda p: "; ".join(_budget_notes(p)),
    "scenario.threshold_above_scores": lambda p: (
        f"no non-mated score of the evaluation set reaches T = {p['threshold']:.6g} (highest "
        f"{p['highest']:.6g}): "
        "the figure is the GPD's alone; the pair-level part is bounded by the rule of three"
    ),
    "scenario.fmr_below_observable": lambda p: (
        f"the modelled FMR at T, {p['fmr']:.3g}, is {'far ' if p['far'] else ''}below anything this set can "
        f"observe (1 in {p['comparisons']:,.0f} "
        f"comparisons){': not supported by the data' if p['far'] else ''}"
    ),
    "scenario.beyond_tail_endpoint": lambda p: (
        "T lies beyond the fitted tail's upper end for every probe: the model's zero is the model's, "
        f"not the data's (lowest probe endpoint {p['lowest_endpoint']:.6g})"
    ),
    "scenario.group_without_mates": lambda p: (
        f"group {p['group']}: no probe has a mate in the set, so its mated searches use its non-mated "
        "FPIR, and its "
        "'wrong person first' the rate of all mated probes"
    ),
    "scenario.pair_concentration": lambda p: (
        f"one pair of people gives {100 * p['share']:.0f}% of the {p['scores']} non-mated scores "
        f">= T = {p['threshold']:.6g}: the figure rests on whether the evaluation set holds such a pair (a "
        "relative, a mislabelled identity); on LFW that moved it by a factor of 3 to 5 either way "
        "(bench/RESULTS.md)"
    ),
    "scenario.pooled_calibration": lambda p: (
        f"group {p['column']}={p['group']}: {p['events']} of its non-mated scores reach T (< "
        f"{p['min_events']}); its level at T is calibrated on all probes pooled, not on its own"
    ),
}


def flag_text(flag: Flag) -> str:
    """The sentence a flag is shown as (its code, where faceaudit has no words for it)."""
    words = FLAG_WORDS.get(flag.code)
    return flag.code if words is None else words(flag.params)


# ----- the identification document -----------------------------------------------------------------
PROTOCOL = (
    "every sample is a probe; its gallery is every other sample of the set. Gallery size N = non-mated "
    "references in the gallery, a uniformly random N-subset of the probe's n_p (exact hypergeometric "
    "expectation, no Monte Carlo); 'full' = all of them. FPIR: a non-mated search (probe's own subject "
    "removed) returns someone with score >= T. FNIR(R): a mated search misses the first mate within rank R "
    "at score >= T. CMC(R) = 1 - FNIR(R, T=-inf). Groups are probe groups; the gallery is the whole set."
)
CALIBRATION_WORDS = {
    "pooled_overall": "pooled (overall)",
    "own_group": "own group",
    "pooled_group": "pooled (group too few scores >= T)",
}


def _size(n: int | None) -> int | str:
    return "full" if n is None else int(n)


def _ranks(rows) -> list[dict[str, Any]]:
    return [{"rank": x.rank, "rate": rate_json(x.rate)} for x in rows]


def probe_group_json(b: ProbeGroupMeasures) -> dict[str, Any]:
    points = []
    for p in b.points:
        entry = {
            "gallery_size": _size(p.gallery_size),
            "threshold": p.threshold,
            "exact": p.exact,
            "fpir": rate_json(p.fpir),
            "fnir": _ranks(p.fnir),
        }
        if not p.exact:
            entry["fpir_bounds"] = list(p.fpir_bounds)
            entry["note"] = (
                f"{p.inexact_probes} probe(s) have more non-mated scores >= T than their kept tail "
                "holds: FPIR is bounded, not exact (rerun compare with a larger --top-k)"
            )
        points.append(entry)
    out: dict[str, Any] = {
        "group": b.group,
        "probes": b.probes,
        "mated_probes": b.mated_probes,
        "subjects": b.subjects,
        "points": points,
        "cmc": [{"gallery_size": _size(c.gallery_size), "cmc": _ranks(c.cmc)} for c in b.cmc],
    }
    if b.extrapolated:
        out["extrapolated"] = [
            {
                **{
                    k: getattr(x, k)
                    for k in (
                        "gallery_size",
                        "threshold",
                        "fpir",
                        "counts_exact",
                        "rule_of_three_fpir",
                        "scores_at_or_above_threshold",
                        "fmr",
                        "naive_n_fmr",
                        "homogeneous_fpir",
                        "share_from_top_1pct_probes",
                        "extrapolated_probe_share",
                        "beyond_observed_fmr",
                    )
                },
                "largest_pair_of_people": dict(x.largest_pair_of_people),
                "interval": interval_json(x.interval),
                "prediction_interval": interval_json(x.prediction_interval),
                "calibration": CALIBRATION_WORDS[x.calibration],
            }
            for x in b.extrapolated
        ]
    return out


def identification_json(result: IdentificationResult) -> dict[str, Any]:
    s = result.settings
    settings: dict[str, Any] = {
        "thresholds": list(s.thresholds),
        "gallery_sizes": [_size(x) for x in s.gallery_sizes],
        "ranks": list(s.ranks),
        "extrapolate_to": list(s.extrapolate_to),
        "bootstrap": s.bootstrap,
        "seed": s.seed,
        "level": s.level,
    }
    if s.fmr_targets is not None:
        settings["fmr_targets"] = [
            {
                "fmr_target": float(f),
                "threshold": float(t),
                "source": "fmr_threshold on the exact non-mated tail (global, as the audit)",
            }
            for f, t in zip(s.fmr_targets, s.thresholds)
        ]
    if s.tail_model is not None:
        settings["tail_model"] = {
            "m": s.tail_model["m"],
            "gpd": s.tail_model["gpd"].as_dict(),
            "description": "per-probe cutoff = its m-th highest non-mated score; pooled GPD above",
        }
    return {
        "schema": "faceaudit.identification",
        "schema_version": IDENTIFICATION_SCHEMA_VERSION,
        "faceaudit_version": _version(),
        "protocol": PROTOCOL,
        "settings": settings,
        "counts": result.counts,
        "flags": [flag_text(f) for f in result.flags],
        "overall": probe_group_json(result.overall),
        "by_group": {k: [probe_group_json(b) for b in v] for k, v in result.by_group.items()},
    }


# ----- the scenario document -----------------------------------------------------------------------
def budget_json(b: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_false_matches": b.max_false_matches,
        "highest_threshold_tried": b.highest_threshold_tried,
        "threshold": b.threshold,
        "threshold_upper_bound_within_budget": b.threshold_upper_bound_within_budget,
    }
    notes = _budget_notes(out)
    if notes:
        out["notes"] = notes
        out["note"] = "; ".join(notes)
    return out


def _mix_words(result: ScenarioResult) -> str:
    mix = result.inputs.mix
    if mix is None:
        by = result.inputs.breakdown
        return "the evaluation set's own probe mix" + (f", broken down by {' x '.join(by)}" if by else "")
    column, shares = mix
    return ", ".join(f"{100 * x:.3g}% {column}={v}" for v, x in shares.items())


OWN_MIX_WORDS = ("the set's own mix: each group's part of the total, its non-mated searches in proportion "
                 "to its probes and its mated searches to its probes with a mate in the set")


def scenario_statement(result: ScenarioResult) -> str:
    """The scenario in one paragraph: the operation, the expected count and its interval, and why the
    naive searches x N x FMR differs."""
    i, e = result.inputs, result.expected
    total, naive, conc = (
        e.false_matches,
        e.naive_searches_x_n_x_fmr,
        result.model["share_from_top_1pct_probes"],
    )
    if conc is None:
        why = "there is nothing to compare."
    else:
        carry = f"(the top 1% of probes carry {100 * conc:.0f}% of them)"
        spread = (
            f"false positives concentrate on a few probes {carry}"
            if conc >= 0.05
            else f"here false positives are spread fairly evenly {carry}"
        )
        why = (
            "it treats every probe as average; "
            + spread
            + ", and a probe already matching someone cannot match "
            "twice, so the naive figure " + ("overstates" if naive > total else "understates") + " the count."
        )
    return (
        f"{i.searches:,.0f} searches against a gallery of {i.gallery_size:,.0f} faces at threshold "
        f"{i.threshold:.6g}; "
        f"{100 * i.mated_share:.3g}% of the searched people are enrolled; searched population: "
        f"{_mix_words(result)}. "
        f"Expected searches returning someone else at or above the threshold: {total:,.1f}"
        + (f" ({e.interval.low:,.1f} to {e.interval.high:,.1f}, {int(i.level * 100)}%)" if e.interval else "")
        + f". The naive searches x N x FMR gives {naive:,.1f}: "
        + why
        + " The gallery is assumed to be like the evaluation set's people."
    )


def scenario_json(result: ScenarioResult) -> dict[str, Any]:
    i, e = result.inputs, result.expected
    inputs = {"searches": i.searches, "gallery_size": i.gallery_size, "threshold": i.threshold,
              "mated_share": i.mated_share,
              "mix": None if i.mix is None else {"column": i.mix[0], "shares": dict(i.mix[1])},
              "max_false_matches": i.max_false_matches, "bootstrap": i.bootstrap, "seed": i.seed,
              "level": i.level,
              "breakdown": None if i.breakdown is None
              else {"columns": list(i.breakdown), "method": OWN_MIX_WORDS}}
    expected = {k: getattr(e, k) for k in (
        "false_matches", "from_nonmated_searches", "from_mated_searches",
        "mated_searches_wrong_person_first", "fpir", "fmr_at_threshold", "naive_searches_x_n_x_fmr")}
    for k in ("interval", "count_interval", "mated_searches_wrong_person_first_interval"):
        expected[k] = interval_json(getattr(e, k))
    by_group = []
    for g in result.by_group:
        entry = {
            k: getattr(g, k)
            for k in (
                "group",
                "share",
                "probes",
                "subjects",
                "fpir",
                "false_matches",
                "per_10k_searches_of_group",
            )
        }
        if g.bootstrapped:
            entry["interval"], entry["count_interval"] = (
                interval_json(g.interval),
                interval_json(g.count_interval),
            )
        by_group.append(entry)
    model = dict(result.model)
    model["gpd"] = model["gpd"].as_dict()
    return {
        "schema": "faceaudit.scenario",
        "schema_version": SCENARIO_SCHEMA_VERSION,
        "faceaudit_version": _version(),
        "inputs": inputs,
        "statement": scenario_statement(result),
        "expected": expected,
        "by_group": by_group,
        "model": model,
        "flags": [flag_text(f) for f in result.flags],
        "budget": None if result.budget is None else budget_json(result.budget),
    }


def to_document(obj: Any) -> Any:
    """Any typed result as its JSON document, in JSON types (NaN -> null, infinities -> "inf")."""
    from faceaudit.report.jsonout import to_jsonable

    for kind, encode in ((AuditResult, audit_json), (IdentificationResult, identification_json),
                         (ClosedAuditResult, closed_audit_json),
                         (CandidateIdentification, candidate_identification_json),
                         (ScenarioResult, scenario_json), (ThresholdMeasures, at_json),
                         (CrossGroupMatrix, cross_json), (Rate, rate_json)):
        if isinstance(obj, kind):
            return to_jsonable(encode(obj))
    raise TypeError(f"no document for {type(obj).__name__}")


# ----- evidence documents attached to an audit (report/evidence.py) -----------------------------------
def evidence_entry_json(evidence: Mapping[str, Any], path: str, sha256: str) -> dict[str, Any]:
    """An evidence document (``faceaudit evidence --json``) as an entry of the audit document's ``evidence``
    list: the document as written, with the file it came from (``source``)."""
    from faceaudit.report.jsonout import to_jsonable

    return to_jsonable({**evidence, "source": {"path": str(path), "sha256": sha256}})


def evidence_consistency_words(status: str, p: Mapping[str, Any]) -> str:
    """Whether an evidence document describes the audit's evaluation set, in words (``status``: verified,
    mismatch, unverified, standalone; ``p``: the hashes, paths and counts compared)."""
    if status == "verified":
        return ("Verified: the likelihood ratios were calibrated and validated on the same score "
                f"distributions file as this audit (sha256 {p['sha256']}).")
    if status == "mismatch":
        if p.get("theirs"):
            return (f"the evidence was calibrated on score distributions with sha256 {p['mine']}, this audit "
                    f"was computed from {p['theirs']}: they are not the same data")
        return (f"the evidence was calibrated on {_amount(p['mine'])} {p['what']} comparisons, this audit "
                f"counts {_amount(p['theirs_count'])}: they are not the same data")
    if status == "standalone":
        return ("This evidence was calibrated on the score distributions "
                f"{p['path']!r} (sha256 {p['sha256']})." if p.get("sha256") else
                "The evidence document does not record which score distributions it was calibrated on.")
    missing = ("this audit does not record a distributions file (it was run from a score file)"
               if p.get("audit_missing") else
               "the evidence document does not record the distributions file it was calibrated on")
    return (f"Not verified: {missing}, so faceaudit cannot check by hash that both describe the same "
            "evaluation set. Their comparison counts agree (same-person "
            f"{_amount(p['mated'])}, different-person {_amount(p['nonmated'])}).")


def _amount(x: Any) -> str:
    """A count (or a sum of weights) as written: ``242,257``; not a number: 'not recorded'."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "not recorded"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.6g}"


#: the evidence panel's own phrases (its view, report/evidence_panel.py, fills them in)
EVIDENCE_WORDS = {
    "title": "{method}, {folds}-fold cross-validation by person",
    "title_grouped": "{method}, {folds}-fold cross-validation by person, calibrated per {grouping}",
    "pooled_system": "pooled system",
    "own_system": "the group's own system",
    "group_row": "calibrated on {group}",
    "pooled_row": "calibrated on everyone (pooled)",
    "system": "{name} ({method})",
    "bounds": "{low} to {high}",
    "folds": "{folds} folds by person (no person in both the fit and the test)",
    "bootstrap": "{bootstrap}, {seed}, {level}",
    "nobody": "nobody (pooled only)",
    "file": "{path} (sha256 {sha256})",
}
#: the evidence panel's provenance rows, in order: label -> key of EVIDENCE_WORDS that words the value
EVIDENCE_PROVENANCE_LABELS = {
    "system": "LR system",
    "bounds": "bounds (ELUB), log10 LR",
    "folds": "cross-validation",
    "bootstrap": "subject-bootstrap replicates, seed, level",
    "grouping": "calibrated by",
    "version": "faceaudit version",
    "calibration": "calibration set",
    "source": "evidence file",
}
#: the panel's names for the validation measures of an evidence document (``validation.measures``)
EVIDENCE_TERMS = {
    "cllr": "Cllr (bits; 0 is perfect, 1 is a system that always says LR = 1)",
    "cllr_min": "Cllr_min (after the best monotone recalibration: discrimination alone)",
    "cllr_cal": "Cllr_cal = Cllr − Cllr_min (the cost of miscalibration)",
    "devpav": "devPAV (distance of the PAV transform from the identity, log10)",
    "nonmated_above_1": "different people given LR > 1 (misleading evidence)",
    "mated_below_1": "same person given LR < 1 (misleading evidence)",
    "nonmated_strongly": "different people given LR > {strong} (strongly misleading)",
    "mated_strongly": "same person given LR < 1 / {strong} (strongly misleading)",
}


# ----- the one rate formatter ----------------------------------------------------------------------
def terminal_text(text: Any) -> str:
    """An id or label for rich output: its square brackets print literally, never as markup."""
    return escape(str(text))


def fmt_num(x: Any, digits: int = 3) -> str:
    """A rate or score to ``digits`` significant digits, scientific below 1e-3."""
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    if abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def fmt_count(rate: Mapping[str, Any] | None) -> str:
    """``12 of 97,000``."""
    if not rate or not rate.get("total"):
        return "no comparisons"
    return f"{rate['count']:,} of {rate['total']:,}"


def fmt_interval(rate: Mapping[str, Any] | None) -> str:
    if not rate or rate.get("value") is None:
        return ""
    ci = rate["clopper_pearson"]
    text = f"{round(ci['level'] * 100):g}% CI {fmt_num(ci['low'])}–{fmt_num(ci['high'])}"
    boot = rate.get("subject_bootstrap")
    if boot and boot.get("low") is not None:
        text += f"; subject bootstrap {fmt_num(boot['low'])}–{fmt_num(boot['high'])}"
    return text


def _rate_html(rate: Mapping[str, Any] | None) -> str:
    if not rate or rate.get("value") is None:
        return "n/a (no comparisons)"
    if rate["count"] == 0:
        head = (
            f"0 of {rate['total']:,} (at most {fmt_num(rate['rule_of_three_upper'], 2)} by the rule of three"
        )
        return f"{head}; {fmt_interval(rate)})"
    return f"{fmt_num(rate['value'])} ({fmt_count(rate)}; {fmt_interval(rate)})"


def _rate_terminal(rate: Mapping[str, Any] | None) -> str:
    if not rate or rate.get("value") is None:
        return "n/a"
    ci = rate["clopper_pearson"]
    text = f"{rate['value']:.3g} ({rate['count']:,}/{rate['total']:,})"
    if rate["count"] == 0:
        text = f"0 of {rate['total']:,} (≤ {rate['rule_of_three_upper']:.2g}, rule of 3)"
    return f"{text} [{ci['low']:.2g}, {ci['high']:.2g}]"


def _rate_text(r: Mapping[str, Any]) -> str:
    if r.get("value") is None:
        return "n/a (no searches)"
    total = r["total"]
    if "rule_of_three_upper" in r:
        return f"0 (0/{total:,}; <= {r['rule_of_three_upper']:.3g} by rule of 3)"
    count = f"{r['count']:,}" if "count" in r else f"~{r['expected_count']:.3g}"
    cp = r.get("clopper_pearson")
    boot = r.get("subject_bootstrap")
    return (
        f"{r['value']:.3g} ({count}/{total:,}"
        + (f"; CP [{cp['low']:.3g}, {cp['high']:.3g}]" if cp else "")
        + (f"; boot [{boot['low']:.3g}, {boot['high']:.3g}]" if boot else "")
        + ")"
    )


_RATE_STYLES = {"html": _rate_html, "terminal": _rate_terminal, "text": _rate_text}


def format_rate(rate: Mapping[str, Any] | None, style: str = "terminal") -> str:
    """A rate of a document in words, for the page (``html``: ``0.00098 (46 of 46,846; 95% CI ...)``), the
    terminal tables (``terminal``: ``1.23e-04 (12/97,000) [6.4e-05, 2.1e-04]``) or the plain identify
    text (``text``: with the bootstrap interval); a zero count always shows its rule-of-three bound,
    never a bare [0, 0]."""
    return _RATE_STYLES[style](rate)


# ----- identify / scenario text --------------------------------------------------------------------
def _ci(d: Mapping[str, Any] | None) -> str:
    return "" if not d else f" [{d['low']:.3g}, {d['high']:.3g}]"


def _identification_block(b: Mapping[str, Any]) -> list[str]:
    lines = [f"\n== probes: {b['group']} ({b['probes']:,} probes, {b['subjects']:,} subjects)"]
    for p in b["points"]:
        fn = "  ".join(f"FNIR@{f['rank']}={format_rate(f['rate'], 'text')}" for f in p["fnir"])
        note = "" if p["exact"] else f"  (bounded: {p['fpir_bounds'][0]:.3g}..{p['fpir_bounds'][1]:.3g})"
        lines.append(
            f"  N={p['gallery_size']!s:>8} T={p['threshold']:<8.6g} FPIR={format_rate(p['fpir'], 'text')}"
            f"{note}  {fn}"
        )
    for c in b["cmc"]:
        lines.append(
            f"  N={c['gallery_size']!s:>8} CMC: "
            + "  ".join(f"rank {x['rank']}: {format_rate(x['rate'], 'text')}" for x in c["cmc"])
        )
    for x in b.get("extrapolated", []):
        conc = x["share_from_top_1pct_probes"]
        lines.append(
            f"  N={x['gallery_size']:>8.3g} T={x['threshold']:<8.6g} model "
            f"FPIR={x['fpir']:.3g}{_ci(x['interval'])}"
            + (f" (one gallery:{_ci(x['prediction_interval'])})" if x.get("prediction_interval") else "")
            + f"  naive N*FMR={x['naive_n_fmr']:.3g}  homogeneous 1-(1-FMR)^N={x['homogeneous_fpir']:.3g}"
            + (f"  top 1% of probes carry {100 * conc:.0f}%" if conc is not None else "")
            + ("  [FMR below anything observed]" if x["beyond_observed_fmr"] else "")
        )
    return lines


WHY_MODEL_DIFFERS = (
    "\nWhy the model and N*FMR differ: FMR is an average over probes; a few probes (lambs) match many "
    "people and saturate (a search counts once), most match almost no one. The model keeps each probe's "
    "own tail, so FPIR = mean over probes of 1-(1-p_probe)^N, not N times the mean.\n"
    "The interval is on the expected FPIR of a search; 'one gallery' is what a particular gallery of "
    "that size does to these probes: a lookalike (a relative, a mislabelled identity) in it takes many "
    "of one person's samples at once."
)


def identification_lines(doc: Mapping[str, Any]) -> list[str]:
    """Plain lines of an identification document: per probe group, FPIR and FNIR at each gallery size
    and threshold, CMC, and the extrapolated FPIR next to the naive N x FMR."""
    lines = [
        f"1:N on {doc['counts']['probes']:,} probes ({doc['counts']['mated_probes']:,} with a mate) of "
        f"{doc['counts']['subjects']:,} subjects; protocol: {doc['protocol']}"
    ]
    for f in doc["settings"].get("fmr_targets", []):
        lines.append(f"threshold {f['threshold']:.6g} = global FMR {f['fmr_target']:g} ({f['source']})")
    blocks = [doc["overall"]] + [b for bs in doc["by_group"].values() for b in bs]
    for b in blocks:
        lines += _identification_block(b)
    if any(b.get("extrapolated") for b in blocks):
        lines.append(WHY_MODEL_DIFFERS)
    lines += [f"FLAG: {f}" for f in doc["flags"]]
    return lines


def scenario_lines(doc: Mapping[str, Any]) -> list[str]:
    """Plain lines of a scenario document: the statement, the expected counts, per group, the budget."""
    e = doc["expected"]
    lines = [
        doc["statement"],
        "",
        f"expected false matches: {e['false_matches']:,.1f}{_ci(e['interval'])}"
        + (
            f" (one run of these searches, each of a different person:{_ci(e['count_interval'])})"
            if e.get("count_interval")
            else ""
        )
        + "  "
        f"(non-mated searches {e['from_nonmated_searches']:,.1f}, mated searches also returning someone else "
        f"{e['from_mated_searches']:,.1f}, of which wrong person first "
        f"{e['mated_searches_wrong_person_first']:,.1f}"
        f"{_ci(e.get('mated_searches_wrong_person_first_interval'))})",
        f"FPIR {e['fpir']:.3g}; modelled FMR at the threshold {e['fmr_at_threshold']:.3g}; "
        f"naive searches x N x FMR {e['naive_searches_x_n_x_fmr']:,.1f}",
    ]
    for g in doc["by_group"]:
        lines.append(
            f"  {g['group']:<16} share {g['share']:.3g}  probes {g['probes']:,}  FPIR {g['fpir']:.3g}  "
            f"false matches {g['false_matches']:,.1f}{_ci(g.get('interval'))}"
        )
    if doc["budget"]:
        b = doc["budget"]
        lines.append(
            f"budget {b['max_false_matches']:g}: threshold {b.get('threshold')!s} (point estimate), "
            f"{b.get('threshold_upper_bound_within_budget')!s} (upper interval bound within budget)"
        )
    lines += [f"FLAG: {f}" for f in doc["flags"]]
    return lines


# ----- closed systems: decisions, censored scores, candidate lists, claims, plans -------------------
CLAIM_RULE = (
    "pass when the upper bound of the exact two-sided Clopper-Pearson interval at the stated level is <= the "
    "claimed rate; fail when its lower bound is > the claimed rate; otherwise not enough data (the way "
    "Common Criteria biometric evaluations judge claimed error rates)")
CLAIM_WORDS = {"pass": "PASS", "fail": "FAIL", "not_enough_data": "NOT ENOUGH DATA"}
CLOSED_SCHEMA_VERSION = "1.0"
CENSORING_RULE = "scores below the level were not reported; nothing is measured below it"
CANDIDATE_PROTOCOL = (
    "candidate lists returned by the system: each probe searched the enrolled gallery once (itself left "
    "out). A search is mated when the probe's subject has another enrolled sample. FPIR(T): a search returns "
    "a non-mated candidate with score >= T (every search, its own subject's candidates set aside). "
    "FNIR(R, T): a mated search does not return the first mate within rank R at score >= T. "
    "CMC(R) = 1 - FNIR(R, -inf). Only the enrolled gallery size. A full list holds every candidate strictly "
    "above its lowest score, a shorter one every candidate at or above the stated candidate threshold (else "
    "its own lowest score); thresholds and ranks the lists do not reach are refused. Ranks are the system's.")


def claims_json(verdicts: Any) -> dict[str, Any]:
    """The ``claims`` section of a document: the rule in words and one entry per claim and group."""
    return {"rule": CLAIM_RULE, "verdicts": [
        {"claim": v.claim, "metric": v.metric, "bound": v.bound, "grouping": v.grouping, "group": v.group,
         "count": v.count, "total": v.total, "interval": [v.low, v.high], "level": v.level,
         "threshold": v.threshold, "verdict": v.verdict} for v in verdicts]}


def claim_lines(section: Mapping[str, Any]) -> list[str]:
    if not section or not section["verdicts"]:
        return []
    lines = [f"\nclaims ({section['rule']}):"]
    for v in section["verdicts"]:
        lo, hi = v["interval"]
        iv = "no comparisons" if lo is None else f"[{fmt_num(lo)}, {fmt_num(hi)}]"
        lines.append(f"  {v['claim']:<28} {v['grouping']:<12} {v['group']:<20} {v['count']:,}/{v['total']:,} "
                     f"{iv}  -> {CLAIM_WORDS[v['verdict']]}")
    return lines


def closed_audit_json(result: Any, verdicts: Any = ()) -> dict[str, Any]:
    """The document of a :class:`~faceaudit.results.ClosedAuditResult` (schema ``faceaudit.closed_audit``)."""
    def group(g) -> dict[str, Any]:
        return {"grouping": g.grouping_name, "group": g.group, "subjects": g.subjects,
                "fmr": rate_json(g.fmr), "fnmr": rate_json(g.fnmr)}

    points = [{"threshold": p.threshold, "source": p.source, "overall": group(p.overall),
               "by_group": [group(g) for g in p.by_group],
               "cross_group_fmr": [{"grouping": m.grouping, **cross_json(m)} for m in p.cross_group]}
              for p in result.points]
    curves = [{"grouping": grouping_label(c.grouping),
               "group": group_label(c.values), "threshold": c.threshold,
               "false_matches": c.false_matches, "false_non_matches": c.false_non_matches,
               "nonmated": c.nonmated, "mated": c.mated, "eer": c.eer,
               "eer_threshold": c.eer_threshold,
               "eer_note": None if c.eer is not None else "not above the censoring level (or not measurable)"}
              for c in result.curves]
    censoring = None if result.kind != "censored" else {
        "level": result.censored_below, "censored_mated": result.censored_mated,
        "censored_nonmated": result.censored_nonmated, "rule": CENSORING_RULE}
    return {"schema": "faceaudit.closed_audit", "schema_version": CLOSED_SCHEMA_VERSION,
            "faceaudit_version": _version(), "kind": result.kind, "censoring": censoring,
            "counts": {"mated": result.mated, "nonmated": result.nonmated,
                       "exclusions": dict(result.exclusions)},
            "settings": {"level": result.level, "bootstrap_replicates": result.bootstrap_replicates,
                         "bootstrap_seed": result.bootstrap_seed, **DEFINITIONS},
            "points": points, "det_above_censoring": curves, "claims": claims_json(verdicts),
            "manifest": dict(result.manifest)}


def closed_audit_lines(doc: Mapping[str, Any]) -> list[str]:
    """Plain lines of a closed audit document: rates per group at each point, censoring, claims."""
    lines = [f"closed system results ({doc['kind']}): {doc['counts']['mated']:,} mated and "
             f"{doc['counts']['nonmated']:,} non-mated comparisons"]
    if doc["censoring"]:
        c = doc["censoring"]
        lines.append(f"censored below {c['level']:.6g}: {c['censored_mated']:,} mated and "
                     f"{c['censored_nonmated']:,} non-mated comparisons reported no score; {c['rule']}")
    for p in doc["points"]:
        where = ("at the system's own decision" if p["threshold"] is None
                 else f"at threshold {p['threshold']:.6g}")
        lines.append(f"\n== {where}")
        for g in [p["overall"], *p["by_group"]]:
            lines.append(f"  {g['grouping']:<12} {g['group']:<20} FMR {format_rate(g['fmr'], 'text')}  "
                         f"FNMR {format_rate(g['fnmr'], 'text')}")
    for c in doc["det_above_censoring"]:
        if c["grouping"] == "overall":
            eer = c["eer_note"] if c["eer"] is None else f"{c['eer']:.4g} at {c['eer_threshold']:.6g}"
            lines.append(f"\nDET above the censoring level: {len(c['threshold'])} exact points; EER {eer}")
    return lines + claim_lines(doc["claims"])


#: the closed-system audit page's words (report/closed.py fills them in; templates/closed.html.j2 shows them)
CLOSED_WORDS = {
    "title": "Closed-system audit: {mated} same-person and {nonmated} different-person comparisons",
    "heading": "Closed face-recognition system: what its answers say",
    "meta": "faceaudit {version} · document {schema} {schema_version} · this page was rendered from that "
            "document alone and works offline",
    "plain_h": "In plain words",
    "kind_decision": "These are decision-only results: for each of {mated} same-person and {nonmated} "
                     "different-person comparisons the system answered match or no-match, and reported "
                     "no score. The only operating point is the system's own, at a threshold it does not "
                     "reveal: no other threshold, no equal error rate and no DET curve can be measured "
                     "from them.",
    "kind_censored": "These are censored scores: the system reported a score only at or above {level}. "
                     "{censored_mated} of the {mated} same-person and {censored_nonmated} of the {nonmated} "
                     "different-person comparisons reported no score, so they are known only to lie below "
                     "the level. Nothing is measured below it: the rates are given at thresholds at or above "
                     "the level, and the DET curve only above it.",
    "rates_words": "A false match (FMR) is two different people judged the same; a false non-match (FNMR) is "
                   "one person not recognised. Each rate is given with its count of errors, the number of "
                   "comparisons, and its {level}% exact (Clopper-Pearson) interval; a group with no errors "
                   "gets the rule-of-three bound 3/n, never a bare 0.",
    "claims_summary": "{n} claim checks: {passed} pass, {failed} fail, {unsure} have not enough data.",
    "point_decision": "At the system's own decision (threshold not revealed)",
    "point_threshold": "At threshold {threshold}",
    "point_default": " (the censoring level)",
    "overall_caption": "FMR and FNMR over everyone",
    "grouping_caption": "FMR and FNMR by {grouping}",
    "col_group": "group",
    "col_subjects": "people",
    "col_fmr": "false match rate (FMR)",
    "col_fnmr": "false non-match rate (FNMR)",
    "cross_h": "Who is mistaken for whom: cross-group FMR by {grouping}",
    "cross_words": "Each cell is the false match rate between people of the row's group (probe) and the "
                   "column's group (reference): comparisons of people of different groups are off the "
                   "diagonal.",
    "cross_corner": "probe ↓ / reference →",
    "det_h": "DET curves above the censoring level",
    "det_words": "For every threshold at or above the censoring level {level}, the false match rate (across) "
                 "and the false non-match rate (up), on logarithmic axes; lower and further left is better. "
                 "Below the level the system reported nothing, so the curves stop there.",
    "det_label": "DET curves by {grouping} above the censoring level; the same numbers are in the table "
                 "that follows.",
    "det_table": "DET by {grouping} as a table (text alternative): {points} of the exact points",
    "det_eer": "{eer} at threshold {threshold}",
    "col_threshold": "threshold",
    "col_points": "exact DET points",
    "col_eer": "equal error rate",
    "claims_h": "Claims checked",
    "claims_words": "Each claimed rate is judged per group on the exact interval, never on the point "
                    "estimate: {rule}.",
    "col_claim": "claim",
    "col_grouping": "grouping",
    "col_errors": "errors / comparisons",
    "col_interval": "interval",
    "col_at": "at",
    "col_verdict": "verdict",
    "no_comparisons": "no comparisons",
    "at_decision": "the system's decision",
    "excl_h": "Rows left out",
    "excl_words": "Rows of the results file that were not counted, and why.",
    "excl_none": "No row was left out.",
    "col_reason": "reason",
    "col_rows": "rows",
    "prov_h": "Provenance and settings",
    "prov_words": "The inputs with their SHA-256 hashes, the faceaudit version and every setting of the "
                  "measurement.",
    "col_input": "input",
    "col_path": "path",
    "col_sha256": "sha256",
    "col_setting": "setting",
    "col_value": "value",
    "version": "faceaudit version",
    "censoring_rule": "censoring",
    "footer": "Made with faceaudit {version}. The document this page was rendered from is embedded in it "
              "(script element “faceaudit-data”).",
    "footer_charts": "Charts: Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {vega_embed} (BSD-3-Clause), "
                     "inlined.",
}


def candidate_identification_json(ci: Any) -> dict[str, Any]:
    """`identify`'s document of a :class:`~faceaudit.results.CandidateIdentification`, with the
    candidate-list protocol and what the lists were."""
    s = ci.source
    doc = identification_json(ci.identification)
    doc["protocol"] = CANDIDATE_PROTOCOL
    doc["source"] = {"kind": "candidate_lists", "mode": s.mode, "list_length": s.list_length,
                     "candidate_threshold": s.candidate_threshold, "gallery_size": s.gallery_size,
                     "lists_full": s.lists_full, "lists_short": s.lists_short,
                     "threshold_source": "system_decision" if s.mode == "decision" else "score_threshold",
                     "lowest_answered_threshold": s.lowest_answered_threshold,
                     "cmc_not_measurable": {str(r): n for r, n in s.cmc_not_measurable.items()} or None,
                     "rank_rule": "the system's rank (position in the returned list)"}
    return doc


def plan_lines(plan: Any, rate: float | None = None) -> list[str]:
    """What a request plan asks for, per cell, in total and in time at ``rate`` requests per second."""
    lines = []
    for name, claim, n, reached in (("FMR", plan.claim_fmr, plan.fmr_comparisons, plan.fmr_power),
                                    ("FNMR", plan.claim_fnmr, plan.fnmr_comparisons, plan.fnmr_power)):
        if claim is not None:
            lines.append(f"{name} <= {claim:g}: {n:,} comparisons per cell support it with power "
                         f"{reached:.3f} when the true rate is {plan.alternative:g} x the claim (exact "
                         f"binomial; {CLAIM_RULE}, at {100 * plan.level:g}%)")
    for c in plan.cells:
        cell = group_label(c.probe_group)
        if c.probe_group != c.reference_group:
            cell += " -> " + group_label(c.reference_group)
        short = f"  SHORT by {c.shortfall:,}: this set cannot support the claim there" if c.shortfall else ""
        lines.append(f"  {c.kind:<10} {cell:<30} planned {c.planned:>12,}  needed {c.needed:>12,}  available "
                     f"{c.available:>14,}{short}")
    lines.append(f"total requests: {plan.total:,} (mated {int(np.sum(plan.mated)):,}); seed {plan.seed}")
    if rate is not None:
        hours = plan.hours_at(rate)
        lines.append(f"at {rate:g} requests/s: {hours:,.1f} hours ({hours / 24:,.1f} days)")
    return lines
