"""Operational scenarios in the report: read a ``faceaudit scenario --json`` document, attach it to an
audit document (its ``scenarios`` list), check it describes the same evaluation set, and restate it
in words for the page.

Every number the page shows comes from the scenario document (computed in Python by
:mod:`faceaudit.scenario`); this module only words and formats them. Keys it reads (all others are
carried along untouched): ``inputs.{searches, gallery_size, threshold, mated_share, mix.{column,
shares}, max_false_matches, bootstrap, seed, level}``, ``statement``, ``expected.{false_matches,
interval.{low, high, level, method}, from_nonmated_searches, from_mated_searches,
mated_searches_wrong_person_first, fpir, fmr_at_threshold, naive_searches_x_n_x_fmr}``,
``by_group[].{group, share, probes, subjects, fpir, false_matches, interval, per_10k_searches_of_group}``,
``model.{probes, share_from_top_1pct_probes, nonmated_references_per_probe, extrapolated_probe_share,
gpd.{shape, scale}, calibration_by_group}``, ``flags``, ``budget.{max_false_matches, threshold,
threshold_upper_bound_within_budget, note}`` and ``manifest.inputs.distributions.{path, sha256}``.
Any of them but ``inputs.{searches, gallery_size, threshold}``, ``expected.false_matches`` and
``by_group[].{group, false_matches}`` may be missing: the page then says "not recorded".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faceaudit.errors import InputError

__all__ = [
    "ScenarioFileError",
    "ScenarioMismatchError",
    "SCENARIO_SCHEMA",
    "read_scenario",
    "attach_scenarios",
    "consistency",
    "check_consistency",
    "scenario_view",
    "record_distributions_input",
]

SCENARIO_SCHEMA = "faceaudit.scenario"
#: share of expected false positives carried by the top 1% of probes from which the page calls them uneven
UNEVEN_TOP_1PCT_SHARE = 0.05


class ScenarioFileError(InputError):
    """A file given as a scenario is not a faceaudit scenario document (or not JSON, or breaks its schema)."""


class ScenarioMismatchError(InputError):
    """A scenario was computed from other score distributions than the audit it is attached to."""


# ----------------------------------------------------------------------------------------------
# reading, checking, attaching
# ----------------------------------------------------------------------------------------------


def read_scenario(path: str | Path) -> dict[str, Any]:
    """A scenario document from a file, validated; :class:`ScenarioFileError` naming what is wrong."""
    from faceaudit.report.schema import validate_scenario_document

    path = Path(path)
    if not path.is_file():
        raise ScenarioFileError(f"scenario file {str(path)!r} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"scenario file {str(path)!r} is not JSON: {exc}") from None
    try:
        validate_scenario_document(doc)
    except InputError as exc:
        raise ScenarioFileError(f"{str(path)!r}: {exc}") from None
    return doc


def _distributions_hash(doc: Mapping[str, Any]) -> str | None:
    entry = ((doc.get("manifest") or {}).get("inputs") or {}).get("distributions")
    if isinstance(entry, Mapping) and entry.get("sha256"):
        return str(entry["sha256"])
    return None


def consistency(audit_doc: Mapping[str, Any] | None, scen: Mapping[str, Any]) -> dict[str, Any]:
    """Whether a scenario describes the audit's evaluation set: ``status`` is ``verified`` (same
    distributions file, by sha256), ``mismatch`` (different file) or ``unverified`` (a side does not
    record one), with ``detail`` in words."""
    mine = _distributions_hash(scen)
    if audit_doc is None:
        where = ((scen.get("manifest") or {}).get("inputs") or {}).get("distributions") or {}
        detail = (
            f"computed from the score distributions {where.get('path')!r} (sha256 {mine})."
            if mine
            else "the scenario document does not record which score distributions it was computed from."
        )
        return {"status": "standalone", "detail": "This scenario was " + detail}
    theirs = _distributions_hash(audit_doc)
    if mine and theirs:
        if mine == theirs:
            return {
                "status": "verified",
                "detail": "Verified: the scenario was computed from the same score "
                f"distributions file as this audit (sha256 {mine}).",
            }
        return {
            "status": "mismatch",
            "detail": f"the scenario was computed from score distributions with sha256 "
            f"{mine}, this audit from {theirs}: they are not the same data",
        }
    probes = (scen.get("model") or {}).get("probes")
    samples = (audit_doc.get("counts") or {}).get("samples")
    missing = (
        "this audit does not record a distributions file (it was run from a score file)"
        if not theirs
        else "the scenario does not record the distributions file it was computed from"
    )
    detail = f"Not verified: {missing}, so faceaudit cannot check that both describe the same evaluation set."
    if isinstance(probes, int) and isinstance(samples, int) and probes != samples:
        detail += (
            f" They differ in size: the scenario's evaluation set has {probes:,} probes, this audit "
            f"{samples:,} samples."
        )
    return {"status": "unverified", "detail": detail}


def check_consistency(audit_doc: Mapping[str, Any], scen: Mapping[str, Any], name: str) -> None:
    c = consistency(audit_doc, scen)
    if c["status"] == "mismatch":
        raise ScenarioMismatchError(
            f"{name}: {c['detail']}; recompute the scenario with `faceaudit scenario "
            "--distributions` on the file the audit used"
        )


def record_distributions_input(doc: dict[str, Any], path: str | Path) -> None:
    """Record the .fadist file (path and sha256) an audit or a scenario was computed from, in its
    manifest, so that the two can be matched."""
    from faceaudit.data.tables import file_sha256

    manifest = doc.setdefault("manifest", {})
    inputs = manifest.get("inputs")
    if not isinstance(inputs, dict):
        inputs = manifest["inputs"] = {} if inputs is None else {"recorded": inputs}
    inputs["distributions"] = {"path": str(path), "sha256": file_sha256(path)}


#: the audit schema version that added ``scenarios``
SCENARIOS_SINCE = "1.1"


def attach_scenarios(doc: dict[str, Any], paths: Iterable[str | Path]) -> dict[str, Any]:
    """Add each scenario file to the audit document's ``scenarios`` (with its path and sha256 as
    ``source``); a scenario already there (same content) is not added twice. Raises
    :class:`ScenarioFileError` or :class:`ScenarioMismatchError`."""
    from faceaudit.report.attach import attach_files
    from faceaudit.report.jsonout import to_jsonable

    def entry(scen: dict[str, Any], path: str, sha256: str) -> dict[str, Any]:
        return to_jsonable({**scen, "source": {"path": path, "sha256": sha256}})

    if not attach_files(doc, "scenarios", paths, read_scenario, check_consistency, entry):
        return doc
    if _version(doc.get("schema_version")) < _version(SCENARIOS_SINCE):
        # it now uses a field of 1.1; not the current version, whose differentials it may not have
        doc["schema_version"] = SCENARIOS_SINCE
    return doc


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split("."))
    except ValueError:
        return (0,)


# ----------------------------------------------------------------------------------------------
# words and numbers for the page (formatting only: every number is the scenario document's)
# ----------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt_expected(x: Any) -> str:
    """An expected count: ``99,999.7``, ``12.3``, ``0.042``; 'not recorded' when absent."""
    v = _num(x)
    if v is None:
        return "not recorded"
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.1f}"
    if abs(v) >= 1e-3:
        return f"{v:.2g}"
    return f"{v:.1e}"


def fmt_big(x: Any) -> str:
    """A count from the inputs: ``100,000``, ``10,000,000``, ``2.5``."""
    v = _num(x)
    if v is None:
        return "not recorded"
    if math.isfinite(v) and v == round(v):
        return f"{v:,.0f}"
    return f"{v:,.6g}"


def fmt_prob(x: Any) -> str:
    """A probability to 3 significant digits, with more where 3 would round it to 1 (0.999997)."""
    v = _num(x)
    if v is None:
        return "not recorded"
    if v == 0:
        return "0"
    if 0.999 < v < 1:
        if 1 - v < 1e-6:
            return f"1 − {1 - v:.1e}"
        d = 3
        while f"{v:.{d}g}" == "1":
            d += 1
        return f"{v:.{d}g}"
    if abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}"


def fmt_pct(x: Any) -> str:
    v = _num(x)
    return "not recorded" if v is None else f"{100 * v:.3g}%"


def _interval_text(iv: Mapping[str, Any] | None, short: bool = False) -> str:
    if not isinstance(iv, Mapping) or _num(iv.get("low")) is None or _num(iv.get("high")) is None:
        return "no interval"
    if short:
        return f"{fmt_expected(iv['low'])} to {fmt_expected(iv['high'])}"
    level = _num(iv.get("level"))
    head = f"{round(level * 100):g}% interval " if level is not None else "interval "
    return f"{head}{fmt_expected(iv['low'])} to {fmt_expected(iv['high'])}"


def _mix_words(inputs: Mapping[str, Any]) -> str:
    mix = inputs.get("mix")
    if not isinstance(mix, Mapping) or not isinstance(mix.get("shares"), Mapping):
        return "the evaluation set's own mix of people (no population mix was given)"
    parts = [f"{fmt_pct(v)} {k}" for k, v in mix["shares"].items()]
    return f"by {mix.get('column', 'group')}: " + ", ".join(parts)


def scenario_view(scen: Mapping[str, Any], audit_doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the scenario panel shows, as text (escaped by the template) and the document's numbers."""
    inputs = scen.get("inputs") or {}
    expected = scen.get("expected") or {}
    model = scen.get("model") or {}
    budget = scen.get("budget") if isinstance(scen.get("budget"), Mapping) else None
    S, N, T = _num(inputs.get("searches")), _num(inputs.get("gallery_size")), _num(inputs.get("threshold"))
    level = _num(inputs.get("level"))
    iv = expected.get("interval") if isinstance(expected.get("interval"), Mapping) else None
    if level is None and iv is not None:
        level = _num(iv.get("level"))
    level_pct = f"{round(level * 100):g}%" if level is not None else "the stated"
    naive = _num(expected.get("naive_searches_x_n_x_fmr"))
    source = scen.get("source") if isinstance(scen.get("source"), Mapping) else None
    dist = ((scen.get("manifest") or {}).get("inputs") or {}).get("distributions")
    return {
        "title": f"{fmt_big(S)} searches, gallery of {fmt_big(N)}, threshold {fmt_big(T)}",
        "threshold": T,
        "words": _operation_words(inputs, budget),
        "statement": str(scen.get("statement") or ""),
        "flags": [str(f) for f in scen.get("flags") or []],
        "searches_text": fmt_big(S),
        "fpir_text": fmt_prob(expected.get("fpir")),
        "probes_text": fmt_big(model.get("probes")),
        "total": expected.get("false_matches"),
        "total_text": fmt_expected(expected.get("false_matches")),
        "total_low": iv.get("low") if iv else None,
        "total_high": iv.get("high") if iv else None,
        "total_interval_text": _interval_text(iv),
        "total_interval_short": _interval_text(iv, short=True),
        "naive": expected.get("naive_searches_x_n_x_fmr"),
        "naive_text": fmt_expected(naive),
        "naive_words": _naive_words(expected, model, S),
        "carries": _carries(scen, iv, level_pct),
        "level_pct": level_pct,
        "groups": _group_rows(scen, S),
        "column": str((inputs.get("mix") or {}).get("column", "group"))
        if isinstance(inputs.get("mix"), Mapping)
        else None,
        "budget_words": _budget_words(budget),
        "details": _details(scen, inputs, expected, model),
        "calibration": sorted(
            (str(k), v)
            for k, v in (model.get("calibration_by_group") or {}).items()
            if isinstance(v, Mapping)
        ),
        "consistency": consistency(audit_doc, scen),
        "source": source,
        "distributions": dist if isinstance(dist, Mapping) else None,
    }


def _operation_words(inputs: Mapping[str, Any], budget: Mapping[str, Any] | None) -> list[str]:
    S, N, T = _num(inputs.get("searches")), _num(inputs.get("gallery_size")), _num(inputs.get("threshold"))
    share = _num(inputs.get("mated_share"))
    words = [
        f"{fmt_big(S)} searches against a gallery of {fmt_big(N)} faces at threshold {fmt_big(T)}"
        + (
            f" (the lowest threshold that keeps the expected false matches within the budget of "
            f"{fmt_big(budget.get('max_false_matches'))})"
            if budget and budget.get("threshold") is not None
            else ""
        )
        + "."
    ]
    if share is not None:
        mated = S * share if S is not None else None
        words.append(
            f"{fmt_pct(share)} of the searched people are enrolled in the gallery ({fmt_big(mated)} mated "
            "searches, whose own face is in it); the other "
            f"{fmt_big(None if S is None else S - mated)} "
            "searches are of people who are not."
        )
    words.append(f"Searched population: {_mix_words(inputs)}.")
    words.append(
        "A search returns someone else when a face of another person in the gallery scores at or above "
        "the threshold; such a search is one false-positive identification, however many faces "
        "match."
    )

    return words


def _group_rows(scen: Mapping[str, Any], S: float | None) -> list[dict[str, Any]]:
    groups = []
    for g in scen.get("by_group") or []:
        giv = g.get("interval") if isinstance(g.get("interval"), Mapping) else None
        groups.append(
            {
                "group": str(g.get("group")),
                "share": g.get("share"),
                "share_text": fmt_pct(g.get("share")),
                "searches": fmt_big(S * _num(g["share"]))
                if S is not None and _num(g.get("share")) is not None
                else "not recorded",
                "probes": fmt_big(g.get("probes")),
                "subjects": fmt_big(g.get("subjects")),
                "fpir": g.get("fpir"),
                "fpir_text": fmt_prob(g.get("fpir")),
                "false_matches": g.get("false_matches"),
                "false_matches_text": fmt_expected(g.get("false_matches")),
                "low": giv.get("low") if giv else None,
                "high": giv.get("high") if giv else None,
                "interval_text": _interval_text(giv, short=True),
                "per_10k": fmt_expected(g.get("per_10k_searches_of_group")),
            }
        )

    return groups


def _naive_words(expected: Mapping[str, Any], model: Mapping[str, Any], S: float | None) -> list[str]:
    total = _num(expected.get("false_matches"))
    naive = _num(expected.get("naive_searches_x_n_x_fmr"))
    naive_words = []
    if naive is not None and total is not None:
        if naive > 0 and total > 0:
            direction = "overstates" if naive > total else "understates"
            ratio = naive / total if naive >= total else total / naive
            naive_words.append(
                f"The naive figure, searches × gallery size × FMR = {fmt_expected(naive)}, {direction} "
                f"the model's {fmt_expected(total)} ({ratio:.3g} times "
                f"{'more' if naive > total else 'less'})."
            )
        else:
            naive_words.append(
                f"The naive figure, searches × gallery size × FMR, is {fmt_expected(naive)}; the "
                f"model's is {fmt_expected(total)}."
            )
        if S is not None and naive > S:
            naive_words.append(
                f"It exceeds the number of searches ({fmt_big(S)}), which cannot be: a search that returns "
                "someone else counts once, however many faces in the gallery score above "
                "the threshold. "
                "When most searches already return someone, the count saturates; the model "
                "counts "
                "searches, the naive figure counts pairs."
            )
        conc = _num(model.get("share_from_top_1pct_probes"))
        het = (
            "The naive figure treats every searched person as average. The model keeps each person's own "
            "score "
            "tail from the evaluation set, so the chance that a search returns someone else is the mean "
            "over "
            "people of 1 − (1 − p)^N, not N times the mean p."
        )
        if conc is not None and conc >= UNEVEN_TOP_1PCT_SHARE:
            het += (
                " False matches are not spread evenly over people: some faces (“lambs”) match many others, "
                "most "
                "match almost no one; in this evaluation set the 1% of people most prone to false "
                "matches carry "
                f"{fmt_pct(conc)} of the expected false-positive identifications."
            )
        elif conc is not None:
            het += (
                f" Here false matches are spread fairly evenly over people (the 1% most prone to them carry "
                f"{fmt_pct(conc)}), so the difference comes mostly from a search counting once, "
                "however many "
                "faces it matches."
            )
        naive_words.append(het)
        fmr = _num(expected.get("fmr_at_threshold"))
        if fmr is not None:
            naive_words.append(
                f"Both use the modelled false match rate at the threshold, {fmt_prob(fmr)} per comparison."
            )

    return naive_words


def _carries(scen: Mapping[str, Any], iv: Mapping[str, Any] | None, level_pct: str) -> list[str]:
    expected = scen.get("expected") or {}
    if iv is not None:
        method = str(iv.get("method", ""))
        carries = [
            f"The {level_pct} interval carries the uncertainty of sampling (which people happened to be in "
            "the "
            "evaluation set: people are resampled, not pairs), of the fitted tail model (refitted "
            "on every "
            "resample) and of the extrapolation to this gallery size (the count of distinct pairs "
            "of people "
            "reaching the threshold, drawn again on every resample)."
        ]
        if "rule-of-three" in method:
            carries.append(
                "The upper end of the total's interval is raised to the rule-of-three bound, because too "
                "few scores of the evaluation set reach the threshold to calibrate on."
            )
            unraised = [
                str(g.get("group"))
                for g in scen.get("by_group") or []
                if isinstance(g.get("interval"), Mapping)
                and "rule-of-three" not in str(g["interval"].get("method", ""))
            ]
            if unraised:
                carries.append(
                    "The per-group intervals are not raised so: they understate the uncertainty, and the "
                    "total's interval is the one to read."
                )
        civ = expected.get("count_interval") if isinstance(expected.get("count_interval"), Mapping) else None
        if civ is not None:
            carries.append(
                f"It is an interval on the expected number. The number one run of these searches returns, "
                "each search of a different person, adds chance variation: "
                f"{_interval_text(civ)} (a "
                "binomial draw around each resample). Searches repeated on the same people "
                "spread further: "
                "a person whose lookalike is enrolled is matched on most of their searches."
            )
        else:
            carries.append(
                "It does not carry the chance variation of one particular run of these searches (about "
                "the square root of the expected count on top)."
            )
        carries.append(
            "Neither carries any difference between the evaluation set's people and the people in the "
            "real gallery."
        )
        carries.append(f"Method, as recorded: {method}.")
    else:
        method = ""
        carries = [
            "No interval was computed (the scenario was run without a bootstrap): the figure carries no "
            "stated "
            "uncertainty, and should not be read without one."
        ]

    return carries


def _budget_words(budget: Mapping[str, Any] | None) -> str | None:
    budget_words = None
    if budget:
        b = fmt_big(budget.get("max_false_matches"))
        tp, tu = budget.get("threshold"), budget.get("threshold_upper_bound_within_budget")
        if tp is None:
            budget_words = (
                f"Budget of at most {b} expected false matches: no threshold meets it. "
                + str(budget.get("note") or "")
                + " The figures shown are at the highest threshold tried."
            )
        else:
            budget_words = (
                f"Budget of at most {b} expected false matches: the lowest threshold whose expected count "
                f"stays within it is {fmt_big(tp)}; "
                + (
                    f"the lowest whose upper interval bound also stays within it is {fmt_big(tu)}."
                    if tu is not None
                    else "no threshold keeps the upper interval bound within it."
                )
                + " The figures shown are at the first."
            )
    return budget_words


def _details(
    scen: Mapping[str, Any], inputs: Mapping[str, Any], expected: Mapping[str, Any], model: Mapping[str, Any]
) -> list[tuple[str, str]]:
    details = []
    for label, value in (
        ("probes (people's images searched) in the evaluation set", fmt_big(model.get("probes"))),
        (
            "non-mated references measured per probe",
            " to ".join(fmt_big(v) for v in model["nonmated_references_per_probe"])
            if isinstance(model.get("nonmated_references_per_probe"), list)
            else "not recorded",
        ),
        (
            "share of probes whose figure is extrapolated by the tail model",
            fmt_pct(model.get("extrapolated_probe_share")),
        ),
        (
            "generalized Pareto tail: shape, scale",
            ", ".join(fmt_prob((model.get("gpd") or {}).get(k)) for k in ("shape", "scale")),
        ),
        ("modelled FPIR (share of searches returning someone else)", fmt_prob(expected.get("fpir"))),
        ("from non-mated searches", fmt_expected(expected.get("from_nonmated_searches"))),
        (
            "from mated searches also returning someone else",
            fmt_expected(expected.get("from_mated_searches")),
        ),
        (
            "… of which someone else comes first",
            fmt_expected(expected.get("mated_searches_wrong_person_first"))
            + (
                f" ({_interval_text(expected['mated_searches_wrong_person_first_interval'])})"
                if isinstance(expected.get("mated_searches_wrong_person_first_interval"), Mapping)
                else ""
            ),
        ),
        ("bootstrap replicates, seed", f"{fmt_big(inputs.get('bootstrap'))}, {fmt_big(inputs.get('seed'))}"),
        ("faceaudit version", str(scen.get("faceaudit_version", "not recorded"))),
    ):
        details.append((label, value))
    return details
