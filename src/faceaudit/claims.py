"""Claim checks: does the evidence support a claimed error rate, refute it, or not decide it?

A claim reads ``"fmr<=1e-4 per group"``, ``"fnmr<=0.01 overall"`` or, for a score-based audit where
the operating point must be named, ``"fnmr<=0.01 per group at fmr=1e-4"`` (at the global threshold
for that target FMR) or ``"fmr<=1e-4 per group at threshold=0.52"``. Without ``per group`` /
``overall`` a claim is per group.

The rule (stated in every verdict): with the exact two-sided Clopper-Pearson interval at the
audit's level (95% by default, so each bound is a one-sided 97.5% bound), a claim ``rate <= r`` is

* ``pass``  when the interval's upper bound is ``<= r`` (the data support the claim),
* ``fail``  when the interval's lower bound is ``> r`` (the data refute it),
* ``not_enough_data`` otherwise, and when there is no comparison at all.

Judging a claim on the upper confidence bound, never on the point estimate, is how Common Criteria
biometric evaluations (the Biometric Evaluation Methodology, ISO/IEC 19795-1 sizing) judge claimed
error rates: an observed 0 errors in 10,000 comparisons does not support "FMR <= 1e-4" (the upper
bound is 3.7e-4). Verdicts are codes; the words are the report's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from faceaudit.errors import InputError
from faceaudit.results import AuditResult, ClaimVerdict, ClosedAuditResult
from faceaudit.stats.intervals import clopper_pearson

__all__ = [
    "Claim",
    "ClaimError",
    "parse_claim",
    "judge",
    "check_rates",
    "check_audit",
    "check_closed_audit",
    "PASS",
    "FAIL",
    "NOT_ENOUGH_DATA",
]

PASS, FAIL, NOT_ENOUGH_DATA = "pass", "fail", "not_enough_data"
METRICS = ("fmr", "fnmr")

_CLAIM = re.compile(
    r"^\s*(?P<metric>[a-z]+)\s*<=\s*(?P<bound>[-+0-9.eE]+)\s*(?P<scope>per\s+group|overall)?"
    r"\s*(?:at\s+(?P<at>fmr|threshold)\s*=\s*(?P<at_value>[-+0-9.eE]+))?\s*$",
    re.IGNORECASE,
)


class ClaimError(InputError):
    """A claim cannot be read, or cannot be judged on the results given."""


@dataclass(frozen=True)
class Claim:
    text: str
    metric: str  # "fmr" or "fnmr"
    bound: float
    per_group: bool
    at: str | None = None  # None (the results' own point), "fmr" (a target FMR) or "threshold"
    at_value: float | None = None


def _number(text: str, what: str, claim: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ClaimError(f"claim {claim!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ClaimError(f"claim {claim!r}: {what} must be finite")
    return v


def parse_claim(text: str) -> Claim:
    """``"fmr<=1e-4 per group"`` -> Claim; ClaimError for anything else."""
    m = _CLAIM.match(text or "")
    if not m:
        raise ClaimError(
            f"cannot read claim {text!r}; write e.g. 'fmr<=1e-4 per group', 'fnmr<=0.01 overall', "
            "'fnmr<=0.01 per group at fmr=1e-4' or 'fmr<=1e-4 per group at threshold=0.5'"
        )
    metric = m["metric"].lower()
    if metric not in METRICS:
        raise ClaimError(f"claim {text!r}: unknown rate {metric!r}; claims are about {list(METRICS)}")
    bound = _number(m["bound"], "the claimed rate", text)
    if not 0.0 <= bound <= 1.0:
        raise ClaimError(f"claim {text!r}: a rate lies in [0, 1], got {bound!r}")
    at = m["at"].lower() if m["at"] else None
    at_value = _number(m["at_value"], at, text) if at else None
    if at == "fmr" and not 0.0 <= at_value <= 1.0:
        raise ClaimError(f"claim {text!r}: a target FMR lies in [0, 1]")
    scope = (m["scope"] or "per group").lower()
    return Claim(
        text=text.strip(),
        metric=metric,
        bound=bound,
        per_group=scope.startswith("per"),
        at=at,
        at_value=at_value,
    )


def judge(
    bound: float, count: int, total: int, level: float = 0.95
) -> tuple[str, float | None, float | None]:
    """(verdict, low, high) for a claim ``rate <= bound`` on ``count`` errors in ``total`` trials."""
    if total <= 0:
        return NOT_ENOUGH_DATA, None, None
    iv = clopper_pearson(int(count), int(total), level)
    if iv.high <= bound:
        return PASS, iv.low, iv.high
    if iv.low > bound:
        return FAIL, iv.low, iv.high
    return NOT_ENOUGH_DATA, iv.low, iv.high


def check_rates(
    claim: Claim,
    rates: Iterable[tuple[str, str, int, int]],
    level: float = 0.95,
    threshold: float | None = None,
) -> list[ClaimVerdict]:
    """Verdicts for ``(grouping, group, count, total)`` rows of the claim's metric (``grouping``
    ``"overall"`` for the whole set); rows outside the claim's scope are skipped."""
    out = []
    for grouping, group, count, total in rates:
        if (grouping == "overall") == claim.per_group:
            continue
        verdict, low, high = judge(claim.bound, count, total, level)
        out.append(
            ClaimVerdict(
                claim.text,
                claim.metric,
                claim.bound,
                grouping,
                group,
                int(count),
                int(total),
                low,
                high,
                level,
                verdict,
                threshold,
            )
        )
    return out


def check_closed_audit(claims: Sequence[Claim], result: ClosedAuditResult) -> list[ClaimVerdict]:
    """Claims on a closed system's results: at the system's decision (decision-only), or at
    ``at threshold=`` / the first measured threshold (censored)."""
    out = []
    for claim in claims:
        if claim.at == "fmr":
            raise ClaimError(
                f"claim {claim.text!r}: a closed system's results have no target-FMR threshold; "
                "judge them at the system's decision or at a reported threshold"
            )
        point = result.points[0]
        if claim.at == "threshold":
            point = next((p for p in result.points if p.threshold == claim.at_value), None)
            if point is None:
                raise ClaimError(
                    f"claim {claim.text!r}: threshold {claim.at_value!r} was not measured; measured: "
                    f"{[p.threshold for p in result.points]}"
                )
        rows = [
            (g.grouping_name, g.group, getattr(g, claim.metric)) for g in (point.overall, *point.by_group)
        ]
        out += check_rates(
            claim, [(a, b, r.count, r.total) for a, b, r in rows], result.level, point.threshold
        )
    return out


def check_audit(claims: Sequence[Claim], result: AuditResult) -> list[ClaimVerdict]:
    """Claims on a score-based audit, at the global threshold of the claim's ``at fmr=`` target (or,
    for an FMR claim without ``at``, the target equal to the claimed rate), or at ``at threshold=``
    (any threshold: :meth:`~faceaudit.results.AuditResult.at`, no bootstrap there)."""
    out = []
    targets = list(result.settings.fmr_targets)
    for claim in claims:
        if claim.at == "threshold":
            at = result.at(claim.at_value)
            rows = [(g.grouping, g.group, getattr(g, claim.metric)) for g in (at.overall, *at.groups)]
            if any(r is None for _, _, r in rows):
                raise ClaimError(
                    f"claim {claim.text!r}: threshold {claim.at_value!r} lies below the exact tail of "
                    "some group; rebuild with a lower tail cutoff or name a target FMR"
                )
            out += check_rates(
                claim, [(a, b, r.count, r.total) for a, b, r in rows], result.settings.level, claim.at_value
            )
            continue
        target = claim.at_value if claim.at == "fmr" else (claim.bound if claim.metric == "fmr" else None)
        if target is None:
            raise ClaimError(
                f"claim {claim.text!r}: a score-based audit needs the operating point: add "
                "'at fmr=<target>' (one of the audit's target FMRs) or 'at threshold=<t>'"
            )
        k = next(
            (i for i, t in enumerate(targets) if math.isclose(t, target, rel_tol=1e-12, abs_tol=0)), None
        )
        if k is None:
            raise ClaimError(
                f"claim {claim.text!r}: FMR target {target!r} is not among the audit's {targets}"
            )
        overall = result.overall.operating_points[k]
        rows = [("overall", "all", getattr(overall, claim.metric))]
        for name, entries in result.by_group.items():
            rows += [(name, g.group, getattr(g.at_global_threshold[k], claim.metric)) for g in entries]
        out += check_rates(
            claim, [(a, b, r.count, r.total) for a, b, r in rows], result.settings.level, overall.threshold
        )
    return out
