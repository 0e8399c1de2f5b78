"""Typed results of the evidence module. Numbers and codes only: every sentence is written by
:mod:`faceaudit.evidence.document`.

Until the shared ``faceaudit.results`` exists these are the module's own; ``Flag`` is a code with
parameters (never a sentence), ``Estimate`` a value with an optional interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Flag",
    "Estimate",
    "SystemSummary",
    "Validation",
    "GroupCalibration",
    "PairMisleading",
    "Statement",
    "Criterion",
    "Population",
    "EvidenceResult",
]


@dataclass(frozen=True)
class Flag:
    code: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, code: str, **params: Any) -> Flag:
        return cls(code, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None = None
    high: float | None = None
    level: float | None = None
    method: str | None = None


@dataclass(frozen=True)
class SystemSummary:
    method: str
    lower_log10: float  # ELUB bounds
    upper_log10: float
    support: tuple[float, float]  # lowest and highest calibration score
    joint_support: tuple[float, float]  # where both mated and non-mated scores exist
    n_mated: float
    n_nonmated: float
    n_subjects: int
    n_exact_nonmated: int
    bin_width: float
    folds: int
    design: str
    median_mated: float = float("nan")
    median_nonmated: float = float("nan")


@dataclass(frozen=True)
class Validation:
    cllr: Estimate
    cllr_min: Estimate
    cllr_cal: Estimate
    devpav: Estimate
    mated_below_1: Estimate
    nonmated_above_1: Estimate
    mated_strongly: Estimate
    nonmated_strongly: Estimate
    strong_log10: float
    tippett: dict = field(default_factory=dict)  # plot data: log10 LR grid and shares
    ece: dict = field(default_factory=dict)
    pav_transform: dict = field(default_factory=dict)
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True)
class GroupCalibration:
    label: tuple[str, ...]
    n_mated: float
    n_nonmated: float
    pooled: Validation | None  # the pooled system's LRs on this group's pairs
    own: Validation | None  # a system fitted on this group alone (cross-validated)
    scores: tuple[float, ...]  # grid for the LR-vs-score curves
    pooled_log10_lr: tuple[float, ...]
    own_log10_lr: tuple[float, ...]
    difference: tuple[Estimate, ...]  # own - pooled log10 LR at each grid score, with intervals
    max_abs_difference: Estimate | None
    median_mated: float = float("nan")  # median scores of the group's same-person / different-person pairs
    median_nonmated: float = float("nan")
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True)
class PairMisleading:
    label_a: tuple[str, ...]
    label_b: tuple[str, ...]
    n_nonmated: float
    nonmated_above_1: Estimate


@dataclass(frozen=True)
class Statement:
    score: float
    group: tuple[tuple[str, str], ...]  # (column, value) pairs; () = pooled only
    pooled_log10_lr: Estimate
    group_log10_lr: Estimate | None
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True)
class Criterion:
    characteristic: str
    metric: str
    bound: float  # the metric must be at most this
    value: Estimate
    status: str  # pass | fail | inconclusive | not-measured


@dataclass(frozen=True)
class Population:
    grouping: tuple[str, ...]
    groups: tuple[tuple[tuple[str, ...], int, float, float], ...]  # label, subjects, mated, non-mated


@dataclass(frozen=True)
class EvidenceResult:
    system: SystemSummary
    validation: Validation
    population: Population
    groups: tuple[GroupCalibration, ...]
    pairs: tuple[PairMisleading, ...]
    statement: Statement | None
    matrix: tuple[Criterion, ...]
    flags: tuple[Flag, ...]
    settings: dict
    provenance: dict
