"""What faceaudit measured, as typed values: no words, no JSON (docs/design.md, "Results and documents").

Every library call returns one of :class:`AuditResult`, :class:`IdentificationResult` or
:class:`ScenarioResult`, built from the shapes below. They hold numbers, counts, intervals and
:class:`Flag` codes with their parameters; :mod:`faceaudit.report.document` is the only code that turns
them into the JSON document and into sentences.

>>> r = Rate(count=3, total=1000, value=0.003)
>>> r.value, r.is_zero
(0.003, False)
>>> Flag("gallery_beyond_measured", {"gallery": 1e6, "measured": 1596}).params["measured"]
1596
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceaudit.errors import InputError

__all__ = [
    "Interval",
    "Rate",
    "Flag",
    "OperatingPoint",
    "DetCurve",
    "GroupMeasures",
    "CrossGroupMatrix",
    "Differentials",
    "Exclusion",
    "RatioEstimate",
    "Estimate",
    "RateDifferentials",
    "Comparison",
    "Card",
    "CardCell",
    "GroupAt",
    "ThresholdMeasures",
    "AuditSettings",
    "AuditResult",
    "RankRate",
    "SearchPoint",
    "CmcCurve",
    "ExtrapolatedPoint",
    "ProbeGroupMeasures",
    "IdentificationSettings",
    "IdentificationResult",
    "ScenarioInputs",
    "ExpectedFalseMatches",
    "ScenarioGroup",
    "Budget",
    "ScenarioResult",
    "ClosedGroupRates",
    "ClosedPoint",
    "CensoredCurve",
    "ClosedAuditResult",
    "ClaimVerdict",
    "CandidateSource",
    "CandidateIdentification",
]


# ----- rates ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A two-sided interval at ``level``; ``method`` names how it was computed."""

    low: float
    high: float
    level: float
    method: str


@dataclass(frozen=True)
class Rate:
    """A rate as faceaudit reports every rate: the count (or, over random galleries, an expected count),
    the total it is out of, the value, the exact (Clopper-Pearson) interval, the subject-bootstrap
    interval, and for a zero count the rule-of-three upper bound 3 / total.

    ``unit`` names what ``total`` counts ("comparisons", "searches"). ``bootstrap_withheld`` is set when
    a zero count's degenerate [0, 0] bootstrap was left out. Built by :func:`faceaudit.stats.intervals.rate`.
    """

    total: int
    count: int | None = None
    value: float | None = None
    exact: Interval | None = None
    bootstrap: Interval | None = None
    rule_of_three: float | None = None
    expected_count: float | None = None
    unit: str = "comparisons"
    bootstrap_withheld: bool = False

    @property
    def is_zero(self) -> bool:
        return self.count == 0 and self.total > 0


@dataclass(frozen=True)
class Flag:
    """A warning about a result: a code and the numbers it rests on (the words are the document's)."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)


# ----- the audit (1:1) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OperatingPoint:
    """FMR and FNMR at a threshold; ``fmr_target`` (and ``convention``) when it was chosen for a target."""

    threshold: float
    fmr: Rate
    fnmr: Rate
    fmr_target: float | None = None
    convention: str | None = None


@dataclass(frozen=True)
class DetCurve:
    """Exact DET operating points, decimated to at most the kept number (none interpolated)."""

    points_total: int
    threshold: np.ndarray
    false_matches: np.ndarray
    false_non_matches: np.ndarray
    nonmated: int
    mated: int

    @property
    def points_kept(self) -> int:
        return int(self.threshold.size)


def grouping_label(grouping: Sequence[str]) -> str:
    return " x ".join(grouping) if grouping else "overall"


def group_label(values: Sequence[str]) -> str:
    return " | ".join(values) if values else "all"


@dataclass(frozen=True)
class GroupMeasures:
    """Everything measured for one group (or the whole set: ``grouping == ()``)."""

    grouping: tuple[str, ...]
    values: tuple[str, ...]
    mated: int
    nonmated: int
    subjects: int
    eer: float | None = None
    eer_threshold: float | None = None
    eer_point: OperatingPoint | None = None
    operating_points: tuple[OperatingPoint, ...] = ()
    at_global_threshold: tuple[OperatingPoint, ...] | None = None
    det: DetCurve | None = None

    @property
    def grouping_name(self) -> str:
        return grouping_label(self.grouping)

    @property
    def group(self) -> str:
        return group_label(self.values)

    def point(self, fmr_target: float) -> OperatingPoint:
        """The group's own operating point for ``fmr_target``."""
        for p in self.operating_points:
            if p.fmr_target == fmr_target:
                return p
        raise InputError(f"no operating point for FMR target {fmr_target!r} in group {self.group!r}")


@dataclass(frozen=True)
class CrossGroupMatrix:
    """Probe group x reference group FMR at the global threshold for ``fmr_target``."""

    grouping: str
    fmr_target: float
    threshold: float
    probe_groups: tuple[str, ...]
    reference_groups: tuple[str, ...]
    fmr: tuple[tuple[Rate, ...], ...]


@dataclass(frozen=True)
class Exclusion:
    """A group left out of a differential by the minimum-data rule: a reason code and its numbers.

    Codes: ``unlabelled`` (a value of the group means "no label", e.g. ``unknown``); ``no_trials``;
    ``too_few_subjects`` (``subjects`` < ``min_subjects``); ``too_few_trials`` (the rule-of-three bound
    3 / ``trials`` is not below ``resolution``: even with no errors the group's data could not show a
    rate as low as the one the differential is about). ``trials_needed``: the fewest that would do.
    """

    group: str
    reason: str
    subjects: int
    trials: int
    min_subjects: int
    resolution: float
    trials_needed: int | None = None

    @property
    def rule_of_three(self) -> float | None:
        return min(1.0, 3.0 / self.trials) if self.trials else None


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio with its percentile interval over the subject-bootstrap replicates; ``kind`` says how to
    read ``value``: ``estimate``; ``lower_bound`` (a denominator group had no errors and took its
    rule-of-three bound: the ratio is *at least* ``value``); ``upper_bound`` (the numerator group had
    none: *at most*); ``undefined`` (no errors anywhere; ``value`` None). ``high_open``: the replicates
    in which the denominator had no errors reach the interval's high end, which is then unbounded
    (``high`` None). ``numerator`` / ``denominator`` name the groups the point value divides.
    Never infinite, never NaN."""

    value: float | None
    kind: str
    low: float | None
    high: float | None
    high_open: bool
    level: float
    numerator: str | None
    denominator: str | None
    replicates: int
    replicates_unbounded: int
    replicates_undefined: int


@dataclass(frozen=True)
class Estimate:
    """A differential that is not a ratio (FDR, GARBE), with its percentile interval."""

    value: float | None
    low: float | None
    high: float | None
    level: float
    replicates: int
    replicates_undefined: int


@dataclass(frozen=True)
class RateDifferentials:
    """The ratio summaries of one rate (``"fmr"`` or ``"fnmr"``) across the groups that entered.

    ``max_min`` (NISTIR 8280) and ``max_geomean`` (NIST FRVT Part 8) are recomputed in each replicate
    over that replicate's rates; ``highest_over_lowest`` is the ratio of the two groups of the point
    max/min, fixed, per replicate. None where fewer than two groups entered. ``counts``: every group's
    (errors, trials, subjects), entered or not."""

    rate: str
    resolution: float
    groups: tuple[str, ...]
    left_out: tuple[Exclusion, ...]
    max_min: RatioEstimate | None
    max_geomean: RatioEstimate | None
    highest_over_lowest: RatioEstimate | None
    counts: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True)
class Comparison:
    """A requested ratio of two named groups (``--compare sex=female:male``), FMR and FNMR (None where
    a group did not enter; see the left-out lists)."""

    grouping: str
    numerator: str
    denominator: str
    fmr: RatioEstimate | None
    fnmr: RatioEstimate | None
    fmr_left_out: tuple[Exclusion, ...] = ()
    fnmr_left_out: tuple[Exclusion, ...] = ()


@dataclass(frozen=True)
class Differentials:
    """How FMR and FNMR differ across a grouping's groups at one global threshold, with intervals and
    the minimum-data rule (:mod:`faceaudit.measures.differentials`). ``fdr`` / ``garbe`` are over the
    groups that entered both rates (None where fewer than two did)."""

    grouping: str
    fmr_target: float | None
    threshold: float
    min_subjects: int
    level: float
    fmr: RateDifferentials
    fnmr: RateDifferentials
    fdr: Estimate | None = None
    garbe: Estimate | None = None
    comparisons: tuple[Comparison, ...] = ()
    unlabelled: tuple[str, ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups that entered both rates."""
        return tuple(g for g in self.fmr.groups if g in self.fnmr.groups)

    @property
    def computed(self) -> bool:
        return self.fdr is not None


@dataclass(frozen=True)
class CardCell:
    count: int
    total: int
    value: float | None
    low: float | None  # Clopper-Pearson
    high: float | None
    rule_of_three: float | None  # where count is 0


@dataclass(frozen=True)
class Card:
    """A cross-group FMR card (NIST FRTE style): probe group x reference group FMR at one threshold over
    the non-mated pairs that share the ``pairing`` columns (``()``: any pair)."""

    grouping: tuple[str, ...]
    pairing: tuple[str, ...]
    threshold: float
    fmr_target: float | None
    level: float
    design: str
    probe_groups: tuple[str, ...]
    reference_groups: tuple[str, ...]
    cells: tuple[tuple[CardCell, ...], ...]


@dataclass(frozen=True)
class GroupAt:
    """FMR and FNMR of one group at an arbitrary threshold (``AuditResult.at``); where the threshold
    lies below the exact tail, ``exact`` is false, ``fmr`` is None and ``fmr_bounds`` brackets it."""

    grouping: str
    group: str
    exact: bool
    fmr: Rate | None
    fmr_bounds: tuple[float | None, float | None] | None
    fnmr: Rate


@dataclass(frozen=True)
class ThresholdMeasures:
    threshold: float
    overall: GroupAt
    groups: tuple[GroupAt, ...]


@dataclass(frozen=True)
class AuditSettings:
    fmr_targets: tuple[float, ...]
    convention: str
    groupings: tuple[tuple[str, ...], ...]
    level: float
    bootstrap_replicates: int
    bootstrap_seed: int
    bootstrap_status: str  # "computed", "disabled" or "no_subject_pairs"
    score_direction: str | None  # as the distributions' manifest records it; None: similarities
    tail_cutoff_range: tuple[float, float]
    histogram_bins: int
    #: the minimum-data rule of the differentials (None resolutions: the defaults, target FMR / overall FNMR)
    min_subjects: int = 10
    fmr_resolution: float | None = None
    fnmr_resolution: float | None = None
    unlabelled: tuple[str, ...] = ("(missing)", "unknown")
    compare: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit measured, read like fairlearn's MetricFrame: ``overall``, ``by_group``,
    ``cross_group(target)``, ``differentials`` and ``at(threshold)``.
    :func:`faceaudit.report.document.audit_document` is its JSON document."""

    overall: GroupMeasures
    by_group: dict[str, list[GroupMeasures]]
    cross_group_fmr: dict[str, list[CrossGroupMatrix]]
    differentials: dict[str, list[Differentials]]
    settings: AuditSettings
    counts: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    measurer: Any = field(default=None, repr=False, compare=False)
    #: cross-group FMR cards: every grouping x pairing x target (NIST FRTE style)
    cards: tuple[Card, ...] = ()

    def cross_group(self, fmr_target: float, grouping: str | None = None) -> CrossGroupMatrix:
        """The probe-group x reference-group FMR matrix at the global threshold for ``fmr_target``."""
        name = grouping or next(iter(self.cross_group_fmr), None)
        if name is None:
            raise InputError("no groups were named, so there is no cross-group matrix")
        for entry in self.cross_group_fmr.get(name, []):
            if math.isclose(entry.fmr_target, fmr_target, rel_tol=0, abs_tol=0):
                return entry
        raise InputError(f"no cross-group matrix for grouping {name!r} at FMR target {fmr_target!r}")

    def at(self, threshold: float) -> ThresholdMeasures:
        """FMR and FNMR, overall and per group, at any threshold (exact, or bounded where the threshold
        falls below the exact tail)."""
        if self.measurer is None:
            raise InputError("this result holds no distributions; `at` needs them")
        return self.measurer.at(threshold)

    def replicates(
        self, grouping: Sequence[str], values: Sequence[str], threshold: float
    ) -> tuple[np.ndarray | None, np.ndarray] | None:
        """The group's (R,) FMR and FNMR in each subject-bootstrap replicate at ``threshold`` (the
        replicates its intervals are percentiles of; the same weights for every group, so ratios across
        groups can be bootstrapped from them). None without a bootstrap; the FMR part None where the
        design does not allow it. The whole set is ``((), ())``."""
        if self.measurer is None:
            raise InputError("this result holds no distributions; replicates need them")
        return self.measurer.replicates((tuple(grouping), tuple(values)), threshold)

    @property
    def distributions(self) -> Any:
        """The ScoreDistributions measured (None for a result without them)."""
        return None if self.measurer is None else self.measurer.dist

    @property
    def subsets(self) -> dict[tuple, list[int]]:
        """``{(grouping, values): finest groups}`` of every group measured."""
        return {} if self.measurer is None else {k: s.groups for k, s in self.measurer.subsets.items()}


# ----- identification (1:N) ------------------------------------------------------------------------
@dataclass(frozen=True)
class RankRate:
    rank: int
    rate: Rate


@dataclass(frozen=True)
class SearchPoint:
    """FPIR and FNIR at a measured gallery size (``None``: each probe's full set) and threshold.
    Where some probes' kept tails are too short, FPIR is bounded: ``fpir_bounds``, ``inexact_probes``."""

    gallery_size: int | None
    threshold: float
    exact: bool
    fpir: Rate
    fnir: tuple[RankRate, ...]
    fpir_bounds: tuple[float, float] | None = None
    inexact_probes: int = 0


@dataclass(frozen=True)
class CmcCurve:
    gallery_size: int | None
    cmc: tuple[RankRate, ...]


@dataclass(frozen=True)
class ExtrapolatedPoint:
    """The tail model's FPIR at a gallery size beyond the set, next to the naive ``N x FMR``.
    ``calibration`` is "pooled_overall", "own_group" or "pooled_group"."""

    gallery_size: float
    threshold: float
    fpir: float
    interval: Interval | None
    prediction_interval: Interval | None
    rule_of_three_fpir: float | None
    largest_pair_of_people: Mapping[str, Any]
    counts_exact: bool
    scores_at_or_above_threshold: int
    calibration: str
    fmr: float
    naive_n_fmr: float
    homogeneous_fpir: float
    share_from_top_1pct_probes: float | None
    extrapolated_probe_share: float
    beyond_observed_fmr: bool


@dataclass(frozen=True)
class ProbeGroupMeasures:
    grouping: tuple[str, ...]
    values: tuple[str, ...]
    probes: int
    mated_probes: int
    subjects: int
    points: tuple[SearchPoint, ...]
    cmc: tuple[CmcCurve, ...]
    extrapolated: tuple[ExtrapolatedPoint, ...] = ()

    @property
    def group(self) -> str:
        return group_label(self.values)


@dataclass(frozen=True)
class IdentificationSettings:
    thresholds: tuple[float, ...]
    gallery_sizes: tuple[int | None, ...]
    ranks: tuple[int, ...]
    extrapolate_to: tuple[float, ...]
    bootstrap: int
    seed: int
    level: float
    fmr_targets: tuple[float, ...] | None = None
    tail_model: Mapping[str, Any] | None = None  # {"m": int, "gpd": GPDFit}


@dataclass(frozen=True)
class IdentificationResult:
    """1:N measures at each gallery size and threshold, overall and per probe group."""

    overall: ProbeGroupMeasures
    by_group: dict[str, list[ProbeGroupMeasures]]
    settings: IdentificationSettings
    counts: dict[str, int]
    flags: tuple[Flag, ...]


# ----- the operational scenario --------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioInputs:
    searches: float
    gallery_size: float
    threshold: float
    mated_share: float
    mix: tuple[str, Mapping[str, float]] | None
    max_false_matches: float | None
    bootstrap: int
    seed: int
    level: float
    #: no mix given: the group columns the set's own mix is broken down by (None: not broken down)
    breakdown: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ExpectedFalseMatches:
    false_matches: float
    interval: Interval | None
    count_interval: Interval | None
    from_nonmated_searches: float
    from_mated_searches: float
    mated_searches_wrong_person_first: float
    mated_searches_wrong_person_first_interval: Interval | None
    fpir: float
    fmr_at_threshold: float
    naive_searches_x_n_x_fmr: float


@dataclass(frozen=True)
class ScenarioGroup:
    group: str
    share: float
    probes: int
    subjects: int
    fpir: float
    false_matches: float
    per_10k_searches_of_group: float | None
    interval: Interval | None = None
    count_interval: Interval | None = None
    bootstrapped: bool = False


@dataclass(frozen=True)
class Budget:
    """The lowest threshold keeping expected false matches within ``max_false_matches`` (point
    estimate) and keeping the upper interval bound within it; None where no threshold tried does."""

    max_false_matches: float
    highest_threshold_tried: float
    threshold: float | None
    threshold_upper_bound_within_budget: float | None


@dataclass(frozen=True)
class ScenarioResult:
    inputs: ScenarioInputs
    expected: ExpectedFalseMatches
    by_group: tuple[ScenarioGroup, ...]
    model: Mapping[str, Any]
    flags: tuple[Flag, ...]
    budget: Budget | None


# ----- closed systems: decisions, censored scores, candidate lists, claims -------------------------
@dataclass(frozen=True)
class ClosedGroupRates:
    """FMR and FNMR of one group (``grouping == ()``: the whole set) at one operating point."""

    grouping: tuple[str, ...]
    values: tuple[str, ...]
    subjects: int
    fmr: Rate
    fnmr: Rate

    @property
    def grouping_name(self) -> str:
        return grouping_label(self.grouping)

    @property
    def group(self) -> str:
        return group_label(self.values)


@dataclass(frozen=True)
class ClosedPoint:
    """Rates at one operating point of a closed system: ``threshold`` None and ``source``
    "system_decision" for its own decision, else a score threshold at or above the censoring level."""

    threshold: float | None
    source: str
    overall: ClosedGroupRates
    by_group: tuple[ClosedGroupRates, ...]
    cross_group: tuple[CrossGroupMatrix, ...]


@dataclass(frozen=True)
class CensoredCurve:
    """Exact DET points at and above the censoring level for one group, and the EER where it lies above
    the level (None otherwise)."""

    grouping: tuple[str, ...]
    values: tuple[str, ...]
    threshold: np.ndarray
    false_matches: np.ndarray
    false_non_matches: np.ndarray
    nonmated: int
    mated: int
    eer: float | None
    eer_threshold: float | None


@dataclass(frozen=True)
class ClosedAuditResult:
    """What a closed system's 1:1 results say: ``kind`` "decision" (match / no-match only) or
    "censored" (scores reported at or above ``censored_below`` only)."""

    kind: str
    censored_below: float | None
    censored_mated: int
    censored_nonmated: int
    mated: int
    nonmated: int
    points: tuple[ClosedPoint, ...]
    curves: tuple[CensoredCurve, ...]
    level: float
    bootstrap_replicates: int
    bootstrap_seed: int
    exclusions: tuple[tuple[str, int], ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim ``metric <= bound`` judged for one group: ``verdict`` is "pass" (upper bound <= claim),
    "fail" (lower bound > claim) or "not_enough_data" (:mod:`faceaudit.claims`)."""

    claim: str
    metric: str
    bound: float
    grouping: str
    group: str
    count: int
    total: int
    low: float | None
    high: float | None
    level: float
    verdict: str
    threshold: float | None = None


@dataclass(frozen=True)
class CandidateSource:
    """What the candidate lists were and what they could answer (:mod:`faceaudit.measures.candidates`)."""

    mode: str  # "score", "decision" or "rank"
    list_length: int
    candidate_threshold: float | None
    gallery_size: int
    lists_full: int
    lists_short: int
    lowest_answered_threshold: float | None
    cmc_not_measurable: Mapping[int, int]


@dataclass(frozen=True)
class CandidateIdentification:
    """1:N measured from candidate lists: ``identification`` is `identify`'s result type."""

    identification: IdentificationResult
    source: CandidateSource
