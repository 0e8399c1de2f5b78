"""faceaudit: measure face-recognition systems.

False match and false non-match rates, their differences across demographic groups, their
uncertainty, and what a deployed threshold implies at the deployed scale. faceaudit only ever
compares samples of a labelled evaluation set that the auditor brings.

The library: :func:`audit` (1:1, per group), :func:`identification` (1:N) and :func:`scenario` (an
operation's expected false matches) take :class:`ScoreDistributions` (from :func:`load_score_file`,
``faceaudit compare`` or :func:`faceaudit.build.from_arrays`) and return typed results
(:mod:`faceaudit.results`); :mod:`faceaudit.report.document` turns those into JSON and words.
See docs/design.md.

>>> import numpy as np
>>> import faceaudit
>>> from faceaudit.build import from_arrays
>>> rng = np.random.default_rng(0)
>>> result = faceaudit.audit(from_arrays(rng.normal(3, 1, 1000), rng.normal(0, 1, 100_000)),
...                          fmr_targets=[1e-3], bootstrap=0)
>>> fmr = result.overall.operating_points[0].fmr
>>> fmr.count <= 100 and fmr.total == 100_000 and fmr.exact.low <= fmr.value <= fmr.exact.high
True
"""

from faceaudit.version import __version__  # noqa: I001 (first: modules read it)

from faceaudit.audit import audit  # noqa: E402
from faceaudit.errors import (  # noqa: E402
    EmptyError,
    FaceAuditError,
    IncompatibleError,
    InputError,
    NotExactError,
)
from faceaudit.measures.identification import identification  # noqa: E402
from faceaudit.results import (  # noqa: E402
    AuditResult,
    CrossGroupMatrix,
    Differentials,
    Flag,
    GroupMeasures,
    IdentificationResult,
    Interval,
    OperatingPoint,
    Rate,
    ScenarioResult,
)
from faceaudit.scenario import ScenarioError, scenario  # noqa: E402
from faceaudit.scores import ScoreDistributions  # noqa: E402


def __getattr__(name: str):
    """``load_score_file`` on first use: the readers import pyarrow (~30 MiB), which the measures need not."""
    if name == "load_score_file":
        from faceaudit.data.ingest import load_score_file

        return load_score_file
    raise AttributeError(f"module 'faceaudit' has no attribute {name!r}")


__all__ = [
    "audit",
    "identification",
    "scenario",
    "load_score_file",
    "ScoreDistributions",
    "AuditResult",
    "IdentificationResult",
    "ScenarioResult",
    "Rate",
    "Interval",
    "OperatingPoint",
    "GroupMeasures",
    "CrossGroupMatrix",
    "Differentials",
    "Flag",
    "FaceAuditError",
    "InputError",
    "NotExactError",
    "EmptyError",
    "IncompatibleError",
    "ScenarioError",
    "__version__",
]
