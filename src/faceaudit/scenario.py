"""The operational scenario: searches x gallery size x threshold x population mix -> expected false matches.

"Of ``S`` searches against a gallery of ``N`` faces at threshold ``T``, how many returned someone
else, and for whom?" From the evaluation set's per-probe tails (:mod:`faceaudit.measures.identification`):

* a **non-mated search** (the searched person is not enrolled) returns someone else when any of the
  ``N`` references scores >= T: probability ``FPIR_g(N, T)`` for a probe of group ``g``;
* a **mated search** (the person is enrolled) returns someone else too when any of its ``N - 1``
  non-mates scores >= T (a wrong name on the candidate list); ``wrong_first`` counts those where the
  non-mate also outranks the mate (the app's first answer is someone else);
* expected false matches = ``S * sum_g mix_g * [(1 - mated_share) * FPIR_g + mated_share * FPIR_g(mated)]``.

``mix`` is the probe population (a share per group of one column); without it the evaluation set's
own probe mix is used. The gallery is assumed to be like the evaluation set's references: the model
knows the score distribution against *those* people only, and says so in its output.

Intervals (percentile, subject bootstrap over probes, stratified by group) refit the GPD on every
replicate and redraw the count of scores >= T the level is calibrated on over the pairs of people
giving them (:meth:`~faceaudit.measures.identification.TailModel.count_factors`), so they carry
sampling, tail-fit and count (extrapolation) uncertainty; where fewer than 10 observed scores reach T,
the high end is raised to the rule-of-three bound on unobserved pair-level matches (3 pairs of people,
each with the mean number of scores a pair gives,
:meth:`~faceaudit.measures.identification.TailModel.unobserved_bound`).
With ``mix``, each group is calibrated on its own scores >= T where it has at
least 10, else pooled and flagged. They are intervals on the *expected* number; ``count_interval`` adds
the binomial noise of one run of ``S`` searches, each of a different person (about ``sqrt(expected)``
on top). Searches repeated on the same people would spread further: a person whose lookalike is
enrolled is matched on most searches (:func:`~faceaudit.measures.identification.realised_fpir`).

Inputs the data cannot support are flagged in ``flags`` rather than silently extrapolated.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceaudit.errors import InputError
from faceaudit.measures.identification import (
    CONCENTRATION_FLAG,
    MIN_CALIBRATION_EVENTS,
    MIN_GROUP_PROBES,
    MIN_GROUP_SUBJECTS,
    ProbeTails,
    TailModel,
    fpir_extrapolated,
    person_concentration_flag,
)
from faceaudit.results import (
    Budget,
    ExpectedFalseMatches,
    Flag,
    Interval,
    ScenarioGroup,
    ScenarioInputs,
    ScenarioResult,
)
from faceaudit.scores import ScoreDistributions
from faceaudit.stats.intervals import bootstrap_weights, percentile_interval, raise_high
from faceaudit.stats.tails import gpd_sf, gpd_upper_endpoint

__all__ = ["ScenarioError", "ScenarioResult", "parse_mix", "scenario", "SHARE_TOLERANCE"]

SHARE_TOLERANCE = 1e-6


class ScenarioError(InputError):
    """A scenario input is impossible or names something the data does not have."""


def parse_mix(text: str | None) -> tuple[str, dict[str, float]] | None:
    """``"sex=female:0.3,male:0.7"`` -> ``("sex", {"female": 0.3, "male": 0.7})``."""
    if text is None or not text.strip():
        return None
    if "=" not in text:
        raise ScenarioError(
            f"--mix {text!r}: write it as COLUMN=value:share,value:share (e.g. sex=female:0.3,male:0.7)"
        )
    column, body = text.split("=", 1)
    shares: dict[str, float] = {}
    for item in body.split(","):
        if ":" not in item:
            raise ScenarioError(f"--mix item {item!r} has no ':share'")
        value, share = item.rsplit(":", 1)
        try:
            shares[value.strip()] = float(share)
        except ValueError:
            raise ScenarioError(f"--mix share {share!r} for {value.strip()!r} is not a number") from None
    return column.strip(), shares


class _Evaluator:
    """Expected false matches at any threshold: point estimate and bootstrap replicates."""

    def __init__(
        self,
        model: TailModel,
        gallery: float,
        groups: list[np.ndarray],
        mix: np.ndarray,
        mated_share: float,
        searches: float,
        pw: np.ndarray | None,
        fits: list,
        seed: int = 0,
        partition: np.ndarray | None = None,
        own_mix: bool = False,
    ) -> None:
        self.model, self.N, self.groups, self.mix = model, gallery, groups, mix
        self.mated_share, self.S, self.pw, self.fits = mated_share, searches, pw, fits
        self.seed, self.partition = seed, partition
        t = model.tails
        self.mated = t.has_mate
        self.total_pairs = float(t.n_nonmated.sum())
        #: the set's own mix broken down by group: each group's part of the pooled total (non-mated
        #: searches in proportion to its probes, mated ones to its probes with a mate), so that the parts
        #: add up to the figure without a breakdown, in every replicate too
        self.own_mix = own_mix

    def shares(self, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(share of the non-mated searches, share of the mated searches) per group: the mix, unless
        ``own_mix``, where they are the (weighted) shares of probes and of probes with a mate."""
        if not self.own_mix:
            return self.mix, self.mix
        w = np.ones(self.mated.size) if w is None else w
        probes = np.array([float(w @ m) for m in self.groups])
        mated = np.array([float(w @ (m & self.mated)) for m in self.groups])
        return probes / probes.sum(), (mated / mated.sum() if mated.sum() > 0 else probes / probes.sum())

    def _per_group(self, e: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        w = np.ones(e.size) if w is None else w
        out_all, out_mated = [], []
        for mask in self.groups:
            ww = w * mask
            out_all.append(float(ww @ e / ww.sum()) if ww.sum() > 0 else np.nan)
            wm = ww * self.mated
            out_mated.append(float(wm @ e / wm.sum()) if wm.sum() > 0 else np.nan)
        return np.array(out_all), np.array(out_mated)

    def counts(self, fpir_g: np.ndarray, fpir_mated_g: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """Per group expected false matches (non-mated + mated searches returning someone else)."""
        fm = np.where(np.isfinite(fpir_mated_g), fpir_mated_g, fpir_g)
        mix, mated_mix = self.shares(w)
        fm = np.where(mated_mix > 0, fm, 0.0)  # own mix: a group without mated probes has no mated searches
        return self.S * ((1 - self.mated_share) * mix * fpir_g + self.mated_share * mated_mix * fm)

    def at(self, threshold: float, replicates: bool = True) -> dict[str, Any]:
        m = self.model
        comp = m.components(threshold, partition=self.partition)
        g, r, events = comp["g"], comp["r"], comp["events"]
        e = fpir_extrapolated(comp["p"], self.N)
        fg, fmg = self._per_group(e, None)
        point = self.counts(fg, fmg)
        out = {
            "threshold": threshold,
            "fpir_g": fg,
            "fpir_mated_g": fmg,
            "counts_g": point,
            "total": float(point.sum()),
            "pair_rate": r,
            "pair_events": events,
            "calibration_groups": comp.get("groups", {}),
            "e": e,
            "g": g,
            "p": comp["p"],
            "scale": comp["scale"],
        }
        if events < MIN_CALIBRATION_EVENTS:
            # too few observed scores reach T to calibrate: bound unobserved pair-level matches by the
            # rule of three
            e3 = fpir_extrapolated(m.unobserved_bound(threshold, comp["p"]), self.N)
            out["rule_of_three_total"] = float(self.counts(*self._per_group(e3, None)).sum())
        # each group on its own comparisons where it has fewer than 10 scores >= T of its own
        c3g = np.full(len(self.groups), np.nan)
        for gi, mask in enumerate(self.groups):
            b = m.unobserved_bound(threshold, comp["p"], mask)
            if b is not None:
                c3g[gi] = self.counts(*self._per_group(fpir_extrapolated(b, self.N), None))[gi]
        if np.isfinite(c3g).any():
            out["rule_of_three_g"] = c3g
        if replicates and self.pw is not None:
            reps = []
            reps_g = []
            cf = m.count_factors(threshold, len(self.fits), self.seed, partition=self.partition)
            P = m.exceedance_replicates(
                threshold, self.fits, self.pw, count_factors=cf, partition=self.partition
            )
            for pb, w in zip(P, self.pw):
                eb = fpir_extrapolated(pb, self.N)
                cg = self.counts(*self._per_group(eb, w), w)
                reps.append(cg.sum())
                reps_g.append(cg)
            out["reps"] = np.array(reps)
            out["reps_g"] = np.array(reps_g)
        return out


def _validate(
    searches: float,
    gallery_size: float,
    threshold: float | None,
    mated_share: float,
    max_false_matches: float | None,
    level: float,
) -> None:
    for name, v in (("searches", searches), ("gallery size", gallery_size)):
        if not math.isfinite(v) or v < 0:
            raise ScenarioError(f"{name} must be a non-negative number, got {v!r}")
    if gallery_size < 1:
        raise ScenarioError(f"the gallery must hold at least 1 face, got {gallery_size!r}")
    if not 0.0 <= mated_share <= 1.0:
        raise ScenarioError(f"mated share must lie in [0, 1], got {mated_share!r}")
    if (threshold is None) == (max_false_matches is None):
        raise ScenarioError("give exactly one of --threshold and --max-false-matches")
    if max_false_matches is not None and (not math.isfinite(max_false_matches) or max_false_matches < 0):
        raise ScenarioError(
            f"the false-match budget must be a non-negative number, got {max_false_matches!r}"
        )
    if threshold is not None and not math.isfinite(threshold):
        raise ScenarioError(f"threshold must be finite, got {threshold!r}")
    if not 0 < level < 1:
        raise ScenarioError(f"level must lie in (0, 1), got {level!r}")


def scenario(
    data: ScoreDistributions | ProbeTails,
    *,
    searches: float,
    gallery_size: float,
    threshold: float | None = None,
    max_false_matches: float | None = None,
    mated_share: float = 0.0,
    mix: tuple[str, dict[str, float]] | str | None = None,
    m: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> ScenarioResult:
    """Project the evaluation set onto an operation: expected false matches, total and per group.

    Parameters
    ----------
    data : ScoreDistributions or ProbeTails
        An all-pairs run with per-probe summaries (``faceaudit compare``), or its tails.
    searches, gallery_size : float
        Searches ``S`` run against a gallery of ``N`` faces.
    threshold : float, optional
        The threshold the system runs at; or instead
    max_false_matches : float, optional
        a budget: the lowest threshold whose expected count (point estimate, and separately the upper
        interval bound) stays within it is found.
    mated_share : float
        Share of searches whose person is enrolled.
    mix : (column, {value: share}) or str, optional
        The searched population (``"sex=female:0.3,male:0.7"``); default the set's own probe mix.
    m, bootstrap, seed, level
        Per-probe tail size; subject-bootstrap replicates (GPD refitted on each), seed, level.

    Returns
    -------
    ScenarioResult
        Expected false matches with intervals, per group, the model's parameters, the budget and
        flags; :func:`faceaudit.report.document.scenario_json` is its document (with the statement).

    Raises
    ------
    ScenarioError
        (an :class:`~faceaudit.errors.InputError`) for impossible inputs: shares not summing to 1,
        negative counts, unknown groups.

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.scores import SampleIndex
    >>> from faceaudit.measures.identification import ProbeTails
    >>> rng = np.random.default_rng(0)
    >>> n = 200
    >>> samples = SampleIndex.from_columns(np.arange(n), np.arange(n) // 2)
    >>> scores = rng.normal(0, 1, (n, n)); scores = (scores + scores.T) / 2
    >>> tails = ProbeTails.from_score_rows(samples, [(np.arange(n), scores)])
    >>> r = scenario(tails, searches=1000, gallery_size=100, threshold=3.0, bootstrap=0)
    >>> 0 <= r.expected.false_matches <= 1000
    True
    """
    _validate(float(searches), float(gallery_size), threshold, float(mated_share), max_false_matches, level)
    tails = data if isinstance(data, ProbeTails) else ProbeTails.from_distributions(data)
    if isinstance(mix, str):
        mix = parse_mix(mix)
    pop = _population(tails, mix)
    model = TailModel.fitted(tails, m=m)
    pw, fits = None, []
    if bootstrap:
        W = bootstrap_weights(tails.samples.group_of_subject, int(bootstrap), seed)
        pw = W[:, tails.samples.subject_of_sample]
        fits = [model.refit(w) for w in pw]
    ev = _Evaluator(
        model,
        float(gallery_size),
        pop.masks,
        pop.shares,
        float(mated_share),
        float(searches),
        pw,
        fits,
        seed,
        pop.partition,
        pop.own_mix,
    )
    flags = list(pop.flags)
    n_max = int(tails.n_nonmated.max())
    if gallery_size > n_max:
        flags.append(Flag("scenario.gallery_beyond_measured", {"gallery": gallery_size, "measured": n_max}))
    budget = None
    if max_false_matches is not None:
        budget = _solve(ev, float(max_false_matches), level)
        threshold = budget.threshold
        if threshold is None:
            flags.append(Flag("scenario.budget_unreachable", dataclasses.asdict(budget)))
            threshold = budget.highest_threshold_tried
    threshold = float(threshold)
    res = ev.at(threshold)
    fmr_model = float((res["p"] * tails.n_nonmated).sum() / ev.total_pairs)
    flags += _threshold_flags(ev, pop, res, threshold, fmr_model, float(mated_share))
    expected, by_group = _expected(
        ev, pop, res, threshold, fmr_model, searches, gallery_size, mated_share, seed, level, int(bootstrap)
    )
    inputs = ScenarioInputs(
        searches=float(searches),
        gallery_size=float(gallery_size),
        threshold=threshold,
        mated_share=float(mated_share),
        mix=None if mix is None else (mix[0], dict(mix[1])),
        max_false_matches=max_false_matches,
        bootstrap=int(bootstrap),
        seed=seed,
        level=level,
        breakdown=tuple(tails.samples.group_columns) if pop.own_mix else None,
    )
    return ScenarioResult(
        inputs=inputs,
        expected=expected,
        by_group=by_group,
        flags=tuple(flags),
        budget=budget,
        model=_model_summary(ev, pop, res, threshold),
    )


@dataclass
class _Population:
    """The searched population: group names, probe masks and shares, the calibration partition (with a
    mix), and the flags on groups too small or too concentrated to support a figure."""

    names: list[str]
    masks: list[np.ndarray]
    shares: np.ndarray
    column: str | None
    partition: np.ndarray | None
    flags: list[Flag]
    own_mix: bool = False  # no mix given: the set's own, broken down by the distributions' groups

    def label(self, i: int) -> str:
        return self.names[i] if self.column is None else f"{self.column}={self.names[i]}"


def _population(tails: ProbeTails, mix: tuple[str, dict[str, float]] | None) -> _Population:
    s = tails.samples
    if mix is None:
        pop = _Population(["all"], [np.ones(tails.n_probes, bool)], np.array([1.0]), None, None, [])
        fl = person_concentration_flag(s.subject_of_sample, "all probes")
        if fl is not None:
            pop.flags.append(fl)
        if s.group_columns:  # broken down by the distributions' groups, each its part of the same total
            masks = [s.group_of_sample == g for g in range(s.n_groups)]
            shares = np.array([m.sum() for m in masks], dtype=np.float64) / tails.n_probes
            pop = _Population(
                [" | ".join(label) for label in s.group_labels],
                masks,
                shares,
                None,
                None,
                pop.flags,
                own_mix=True,
            )
        return pop
    else:
        pop = _mixed_population(s, *mix)
        pop.partition = np.full(tails.n_probes, -1)
        for i, mask in enumerate(pop.masks):
            pop.partition[mask] = i
    for i, (mask, x) in enumerate(zip(pop.masks, pop.shares)):
        fl = person_concentration_flag(
            s.subject_of_sample[mask], "all probes" if mix is None else f"group {pop.label(i)}"
        )
        if x > 0 and fl is not None:
            pop.flags.append(fl)
    return pop


def _mixed_population(s, column: str, wanted: dict[str, float]) -> _Population:
    if column not in s.group_columns:
        raise ScenarioError(
            f"--mix column {column!r} is not a group column of the distributions "
            f"({list(s.group_columns) or 'none'}); rerun `faceaudit compare --group "
            f"{column}`"
        )
    ci = s.group_columns.index(column)
    labels = np.array([lab[ci] for lab in s.group_labels], dtype=object)[s.group_of_sample]
    present = sorted(set(labels.tolist()))
    unknown = [v for v in wanted if v not in present]
    if unknown:
        raise ScenarioError(f"--mix group(s) {unknown} not in column {column!r}, which has {present}")
    bad = {v: x for v, x in wanted.items() if not math.isfinite(x) or x < 0}
    if bad:
        raise ScenarioError(f"--mix shares must be non-negative numbers, got {bad}")
    total = sum(wanted.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ScenarioError(f"--mix shares sum to {total:.6g}, not 1")
    names = list(wanted)
    masks = [labels == v for v in names]
    shares = np.array([wanted[v] for v in names])
    flags = []
    for name, mask, x in zip(names, masks, shares):
        n_subj = np.unique(s.subject_of_sample[mask]).size
        if x > 0 and (mask.sum() < MIN_GROUP_PROBES or n_subj < MIN_GROUP_SUBJECTS):
            flags.append(
                Flag(
                    "scenario.group_too_small",
                    {
                        "column": column,
                        "group": name,
                        "probes": int(mask.sum()),
                        "subjects": int(n_subj),
                        "min_probes": MIN_GROUP_PROBES,
                        "min_subjects": MIN_GROUP_SUBJECTS,
                    },
                )
            )
    return _Population(names, masks, shares, column, None, flags)


def _threshold_flags(
    ev: _Evaluator,
    pop: _Population,
    res: dict[str, Any],
    threshold: float,
    fmr_model: float,
    mated_share: float,
) -> list[Flag]:
    """What the data cannot support at the threshold: beyond every observed score, an FMR below what the
    set can observe, beyond the fitted tail's end, groups without mates, one pair of people, pooled
    calibration."""
    model, tails, flags = ev.model, ev.model.tails, []
    top_score = float(tails.top_score().max())
    if threshold > top_score:
        flags.append(Flag("scenario.threshold_above_scores", {"threshold": threshold, "highest": top_score}))
    if fmr_model < 1.0 / ev.total_pairs:
        flags.append(
            Flag(
                "scenario.fmr_below_observable",
                {"fmr": fmr_model, "comparisons": ev.total_pairs, "far": fmr_model < 0.01 / ev.total_pairs},
            )
        )
    if model.fit.shape < 0:
        finite = model.cutoff[np.isfinite(model.cutoff)]
        endpoint = gpd_upper_endpoint(model.fit.shape, model.fit.scale)
        if threshold >= float(np.max(finite) + endpoint):
            flags.append(
                Flag("scenario.beyond_tail_endpoint", {"lowest_endpoint": float(np.min(finite) + endpoint)})
            )
    if mated_share > 0 and not pop.own_mix:  # (own mix: a group without a mate has no mated searches)
        for i in range(len(pop.names)):
            if pop.shares[i] > 0 and not (pop.masks[i] & tails.has_mate).any():
                flags.append(Flag("scenario.group_without_mates", {"group": pop.label(i)}))
    conc = model.pair_concentration(threshold)
    if conc["share"] > CONCENTRATION_FLAG and conc["scores"] >= MIN_CALIBRATION_EVENTS:
        flags.append(
            Flag(
                "scenario.pair_concentration",
                {"share": conc["share"], "scores": conc["scores"], "threshold": threshold},
            )
        )
    if pop.partition is not None and isinstance(res["pair_rate"], np.ndarray):
        for i, name in enumerate(pop.names):
            info = res["calibration_groups"].get(i)
            if pop.shares[i] > 0 and info is not None and not info["own"]:
                flags.append(
                    Flag(
                        "scenario.pooled_calibration",
                        {
                            "column": pop.column,
                            "group": name,
                            "events": info["events"],
                            "min_events": MIN_CALIBRATION_EVENTS,
                        },
                    )
                )
    return flags


INTERVAL_METHOD = (
    "subject bootstrap ({replicates} replicates, GPD refitted on each, percentile), times a draw of the "
    "count of scores >= T over the pairs of people giving them (exact-Poisson in their "
    "number, "
    "Poisson-bootstrapped among them)"
)
RUN_METHOD = (
    "the number one run of these searches returns, each search of a different person: "
    "a binomial draw around each replicate of the interval above"
)
RAISED = "; high raised to the rule-of-three bound on unobserved pair-level matches"


class _Intervals:
    """The scenario's intervals: on the expected count (bootstrap replicates) and on one run's count
    (a binomial draw around each replicate), each raised to a rule-of-three bound where given."""

    def __init__(self, level: float, replicates: int) -> None:
        self.level, self.method = level, INTERVAL_METHOD.format(replicates=replicates)

    def expected(self, reps: np.ndarray | None, extra_high: float | None = None) -> Interval | None:
        iv = percentile_interval(reps, self.level, self.method, finite_only=False)
        return raise_high(iv, extra_high or None, RAISED, only_if_higher=False)

    def run(self, draws: np.ndarray | None, extra_high: float | None = None) -> Interval | None:
        iv = percentile_interval(
            draws, self.level, RUN_METHOD, finite_only=False, quantile_method="inverted_cdf"
        )
        high = None if extra_high is None else float(np.ceil(extra_high))
        return raise_high(iv, high or None, RAISED, only_if_higher=False)


def _run_draws(res: dict[str, Any], searches: float, shares: np.ndarray, seed: int):
    """One run of S searches, each of a different person: a binomial draw around each replicate's
    expectation (at least as wide as the Poisson-binomial of searches with unequal probabilities)."""
    reps = res.get("reps")
    if reps is None:
        return None, None
    rng = np.random.default_rng([int(seed), 13])
    n_s = max(1, int(round(searches)))
    runs = rng.binomial(n_s, np.clip(reps / n_s, 0.0, 1.0)).astype(np.float64)
    n_g = np.maximum(1, np.round(searches * shares)).astype(np.int64)
    runs_g = rng.binomial(
        np.broadcast_to(n_g, res["reps_g"].shape), np.clip(np.nan_to_num(res["reps_g"]) / n_g, 0.0, 1.0)
    ).astype(np.float64)
    return runs, runs_g


def _expected(
    ev: _Evaluator,
    pop: _Population,
    res: dict[str, Any],
    threshold: float,
    fmr_model: float,
    searches,
    gallery_size,
    mated_share,
    seed: int,
    level: float,
    replicates: int,
):
    """The expected false matches (total, split, intervals) and the per-group figures."""
    ivs = _Intervals(level, replicates)
    shares, reps, r3 = pop.shares, res.get("reps"), res.get("rule_of_three_total")
    wrong_first, wrong_first_reps = _wrong_first(ev, threshold, replicates=True)
    runs, runs_g = _run_draws(res, searches, shares, seed)
    from_nonmated = float(np.sum(searches * shares * (1 - mated_share) * res["fpir_g"]))
    nonmated_searches = searches * (1 - mated_share)
    expected = ExpectedFalseMatches(
        false_matches=res["total"],
        interval=ivs.expected(reps, r3),
        count_interval=ivs.run(runs, r3),
        from_nonmated_searches=from_nonmated,
        from_mated_searches=float(
            res["total"] - np.sum(searches * shares * (1 - mated_share) * res["fpir_g"])
        ),
        mated_searches_wrong_person_first=wrong_first,
        mated_searches_wrong_person_first_interval=ivs.expected(wrong_first_reps)
        if mated_share > 0
        else None,
        fpir=float(np.sum(shares * res["fpir_g"])),
        fmr_at_threshold=fmr_model,
        naive_searches_x_n_x_fmr=float(
            nonmated_searches * gallery_size * fmr_model + searches * mated_share * gallery_size * fmr_model
        ),
    )
    by_group = []
    # a group's share of the searches: with the set's own mix its mated searches follow its mated probes
    search_share = (1 - mated_share) * shares + mated_share * ev.shares()[1]
    for i, name in enumerate(pop.names):
        r3g = res.get("rule_of_three_g")
        r3g = None if r3g is None or not np.isfinite(r3g[i]) else float(r3g[i])
        boot = reps is not None
        by_group.append(
            ScenarioGroup(
                group=name,
                share=float(search_share[i]),
                probes=int(pop.masks[i].sum()),
                subjects=int(np.unique(ev.model.tails.samples.subject_of_sample[pop.masks[i]]).size),
                fpir=float(res["fpir_g"][i]),
                false_matches=float(res["counts_g"][i]),
                per_10k_searches_of_group=float(
                    1e4 * res["counts_g"][i] / max(searches * search_share[i], 1e-300)
                )
                if search_share[i] > 0
                else None,
                interval=ivs.expected(res["reps_g"][:, i], r3g) if boot else None,
                count_interval=ivs.run(runs_g[:, i], r3g) if boot else None,
                bootstrapped=boot,
            )
        )
    return expected, tuple(by_group)


def _model_summary(ev: _Evaluator, pop: _Population, res: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The tail model's parameters and calibration at the threshold, and how concentrated the expected
    false positives are."""
    model, tails = ev.model, ev.model.tails
    e = res["e"]
    top = np.sort(e)[::-1]
    conc = float(top[: max(1, int(np.ceil(0.01 * top.size)))].sum() / top.sum()) if top.sum() > 0 else None
    pr, sc = res["pair_rate"], res["scale"]
    per_group_cal = None
    if isinstance(pr, np.ndarray):
        masks = pop.masks
        per_group_cal = {
            name: {
                "pair_rate": float(pr[masks[i]][0]) if masks[i].any() else None,
                "calibration_scale": float(sc[masks[i]][0]) if masks[i].any() else None,
                **res["calibration_groups"].get(i, {"events": 0, "own": False}),
            }
            for i, name in enumerate(pop.names)
        }
        pooled = model.components(threshold)
        pr, sc = pooled["r"], pooled["scale"]
    return {
        "m": model.m,
        "gpd": model.fit,
        "pair_rate": pr,
        "pair_events": res["pair_events"],
        "calibration_scale": sc,
        "calibration_by_group": per_group_cal,
        "probes": tails.n_probes,
        "nonmated_references_per_probe": [int(tails.n_nonmated.min()), int(tails.n_nonmated.max())],
        "extrapolated_probe_share": model.extrapolated_share(threshold),
        "share_from_top_1pct_probes": conc,
        "largest_pair_of_people": model.pair_concentration(threshold),
    }


def _wrong_first(
    ev: _Evaluator, threshold: float, replicates: bool = False
) -> tuple[float, np.ndarray | None]:
    """Expected mated searches whose first answer is a non-mate at or above T (probe part at
    max(T, best mated score) per probe plus the pair part at T, an upper bound on it), and with
    ``replicates`` its bootstrap replicates (GPD refitted, people resampled, count redrawn, as the
    expected false matches)."""
    t = ev.model.tails
    if ev.mated_share == 0 or not t.has_mate.any():
        return 0.0, (np.zeros(len(ev.fits)) if replicates and ev.pw is not None else None)
    m = ev.model
    th = np.maximum(threshold, np.nan_to_num(t.best_mated_score, nan=threshold))
    above = th > m.cutoff
    hit = t.known_score >= th[t.probe_of_known]
    k = np.bincount(t.probe_of_known[hit], minlength=t.n_probes)
    counted = (k / np.maximum(t.n_nonmated, 1))[~above]
    counts_t, _ = t.count_at_least(float(threshold))

    def one(fit, w, cf) -> float:
        comp = m.components(threshold, fit, w, counts=counts_t, count_factor=cf, partition=ev.partition)
        shape, scale = (m.fit.shape, m.fit.scale) if fit is None else (fit.shape, fit.scale)
        g = np.empty(t.n_probes)
        g[above] = m.rate[above] * gpd_sf(th[above] - m.cutoff[above], shape, scale)
        g[~above] = counted
        e = fpir_extrapolated(np.clip(g * comp["scale"] + comp["r"], 0, 1), ev.N)
        ww = np.ones(t.n_probes) if w is None else w
        pooled = float((ww * e * t.has_mate).sum() / max((ww * t.has_mate).sum(), 1e-300))
        # a group without (weighted) mated probes takes the pooled rate of all mated probes, as
        # counts() takes the group's non-mated FPIR for its mated searches (flagged in scenario())
        vals = [
            float((ww * e * mask * t.has_mate).sum() / den)
            if (den := (ww * mask * t.has_mate).sum()) > 0
            else pooled
            for mask in ev.groups
        ]
        return float(ev.S * ev.mated_share * np.sum(ev.shares(w)[1] * np.array(vals)))

    point = one(None, None, 1.0)
    if not replicates or ev.pw is None:
        return point, None
    cf = m.count_factors(threshold, len(ev.fits), ev.seed, partition=ev.partition)
    return point, np.array([one(f, w, c) for f, w, c in zip(ev.fits, ev.pw, cf)])


def _solve(ev: _Evaluator, budget: float, level: float, iterations: int = 40) -> Budget:
    """Lowest threshold whose expected false matches <= budget (the count falls as T rises), for the
    point estimate and for the upper interval bound."""
    t = ev.model.tails
    lo = float(np.min(t.known_score)) if t.known_score.size else -1.0
    hi = float(np.max(t.known_score)) + 10 * ev.model.fit.scale
    a = (1 - level) / 2

    def point(T):
        return ev.at(T, replicates=False)["total"]

    def upper(T):
        r = ev.at(T)
        u = float(np.quantile(r["reps"], 1 - a)) if "reps" in r else r["total"]
        return max(u, r.get("rule_of_three_total", -np.inf))

    found: dict[str, float | None] = {}
    for name, f in (("threshold", point), ("threshold_upper_bound_within_budget", upper)):
        if f(hi) > budget:
            found[name] = None
            continue
        if f(lo) <= budget:
            found[name] = lo
            continue
        a_, b_ = lo, hi
        for _ in range(iterations):
            mid = (a_ + b_) / 2
            if f(mid) <= budget:
                b_ = mid
            else:
                a_ = mid
        found[name] = b_
    return Budget(max_false_matches=budget, highest_threshold_tried=hi, **found)
