"""Verbal equivalents of likelihood ratios on a named scale (ENFSI 2015 by default, configurable).

A scale is an ascending list of ``(upper bound of LR, phrase)``; the last bound may be None (no upper
bound). An LR below 1 is described by 1 / LR with the propositions swapped, as the ENFSI guideline does.
A scale file is JSON: ``{"name": "...", "levels": [[10, "weak support"], ..., [null, "extremely strong
support"]]}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from faceaudit.errors import InputError

__all__ = ["VerbalScale", "ENFSI_2015", "load_scale", "ScaleError"]


class ScaleError(InputError):
    """A verbal scale file is malformed."""


@dataclass(frozen=True)
class VerbalScale:
    name: str
    levels: tuple[tuple[float, str], ...]  # (upper LR bound, phrase), ascending; last bound may be inf

    def phrase(self, log10_lr: float) -> tuple[str, bool]:
        """The phrase for an LR and whether it supports the first proposition (same person)."""
        if log10_lr == 0:
            return "no support for either proposition", True
        strength = abs(log10_lr)
        for upper, phrase in self.levels:
            if strength <= math.log10(upper):
                return phrase, log10_lr > 0
        return self.levels[-1][1], log10_lr > 0


#: ENFSI Guideline for Evaluative Reporting in Forensic Science (2015), verbal equivalents of the LR
ENFSI_2015 = VerbalScale(
    "ENFSI 2015",
    (
        (10.0, "weak support"),
        (100.0, "moderate support"),
        (1000.0, "moderately strong support"),
        (10000.0, "strong support"),
        (1000000.0, "very strong support"),
        (math.inf, "extremely strong support"),
    ),
)


def load_scale(path: str | Path) -> VerbalScale:
    """Read a scale file; any malformation is a :class:`ScaleError` naming it."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScaleError(f"cannot read the verbal scale {str(path)!r}: {exc}") from None
    return scale_from_dict(raw)


def scale_from_dict(raw: object) -> VerbalScale:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("name"), str)
        or not isinstance(raw.get("levels"), list)
    ):
        raise ScaleError('a verbal scale is {"name": str, "levels": [[upper LR, phrase], ...]}')
    levels, last = [], 1.0
    for i, item in enumerate(raw["levels"]):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str) and item[1].strip()):
            raise ScaleError(f"level {i}: expected [upper LR bound or null, non-empty phrase]")
        bound = item[0]
        if bound is None:
            bound = math.inf
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > last:
            raise ScaleError(f"level {i}: the upper bounds must be numbers above 1, strictly increasing")
        levels.append((float(bound), item[1]))
        last = bound
    if not levels or not math.isinf(levels[-1][0]):
        raise ScaleError("the last level of a verbal scale must have no upper bound (null)")
    return VerbalScale(raw["name"], tuple(levels))
