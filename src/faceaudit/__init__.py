"""faceaudit: measure face-recognition systems.

False match and false non-match rates, their differences across demographic groups, their
uncertainty, and what a deployed threshold implies at the deployed scale. faceaudit only ever
compares samples of a labelled evaluation set that the auditor brings.
"""

__version__ = "0.1.0"

from faceaudit.errors import FaceAuditError, InputError, NotExactError  # noqa: E402
from faceaudit.scores import ScoreDistributions  # noqa: E402

__all__ = ["FaceAuditError", "InputError", "NotExactError", "ScoreDistributions", "__version__"]
