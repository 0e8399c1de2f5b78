"""Named refusals of the evidence module: each one is a case where no LR is given, and why."""

from __future__ import annotations

from faceaudit.errors import InputError

__all__ = [
    "CalibrationError",
    "NoMatedScoresError",
    "NoNonMatedScoresError",
    "UnknownGroupError",
    "OutsideSupportError",
    "SubjectsUnknownError",
]


class CalibrationError(InputError):
    """The calibration set cannot support an LR system as asked."""


class NoMatedScoresError(CalibrationError):
    """The calibration set (or the asked group) has no same-person (mated) scores."""


class NoNonMatedScoresError(CalibrationError):
    """The calibration set (or the asked group) has no different-person (non-mated) scores."""


class UnknownGroupError(CalibrationError):
    """The asked group is not in the calibration set."""


class OutsideSupportError(CalibrationError):
    """The score lies outside every score the calibration set holds: no LR is extrapolated to it."""


class SubjectsUnknownError(CalibrationError):
    """Subject-disjoint cross-validation or a subject bootstrap needs the subjects of the pairs."""


class EvidenceOptionError(InputError):
    """An option of ``faceaudit evidence`` is malformed (a criterion, a level, a number of folds)."""
