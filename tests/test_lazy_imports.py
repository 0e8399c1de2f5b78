"""What `import faceaudit` and the array pipeline load: heavy modules only where they are used.

Measured in bench/RESULTS.md ("The streamed full DET at 1.19x the input"): scipy.sparse (with the
numpy.testing it pulls) costs ~18 MiB and scipy.special ~4 MiB more, counted in every step of a run that
never needs them. Each check runs in a fresh interpreter (this test process has imported everything).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PIPELINE = """
import sys, tempfile, pathlib
import numpy as np
import faceaudit
HEAVY = ("scipy.sparse", "scipy.special", "scipy.stats")
loaded_by_import = sorted(m for m in (*HEAVY, "pyarrow") if m in sys.modules)
from faceaudit.build import from_arrays
from faceaudit.measures.verification import det_curve, eer, fmr_threshold, operating_point
from faceaudit.report.detfile import write_det
rng = np.random.default_rng(0)
dist = from_arrays(rng.normal(3, 1, 200), rng.normal(0, 1, 20000), fmr_targets=[1e-2, 1e-3])
view, g = dist.impostor_view(), dist.genuine_scores()
eer(view, g)
operating_point(view, g, fmr_threshold(view, 1e-3, g, "highest"))
det_curve(view, g, max_points=200)
write_det(dist, pathlib.Path(tempfile.mkdtemp()) / "det.parquet")
print(loaded_by_import, sorted(m for m in HEAVY if m in sys.modules))
"""


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_and_the_array_pipeline_load_no_scipy_sparse_special_or_stats():
    # import faceaudit: none of them, nor pyarrow; from_arrays, EER, thresholds, DET, the DET file: no scipy
    assert _run(PIPELINE) == "[] []"


def test_the_lazily_imported_functions_still_work_in_a_fresh_interpreter():
    code = """
import numpy as np
from faceaudit.measures.identification import hypergeometric_any
from faceaudit.stats.intervals import replicate_rates
import scipy.sparse as sp
p = hypergeometric_any(np.array([10.0]), np.array([2.0]), 3)
# P(at least one of 2 marked among 3 drawn from 10) = 1 - C(8,3)/C(10,3) = 1 - 56/120
assert abs(p[0] - (1 - 56 / 120)) < 1e-12, p
w = np.array([[1.0, 1.0], [2.0, 0.0]])
num, den = sp.csr_array(np.array([[1.0, 0.0], [0.0, 1.0]])), sp.csr_array(np.array([[2.0, 0.0], [0.0, 2.0]]))
print(replicate_rates(w, num, den).tolist())
"""
    # replicate r: sum_ij w_ri w_rj num_ij / sum_ij w_ri w_rj den_ij; both diagonal: (1 + 1) / (2 + 2), 4 / 8
    assert _run(code) == "[0.5, 0.5]"
