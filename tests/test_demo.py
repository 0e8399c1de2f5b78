"""The demo end to end on the bundled data: audit + scenario, matched by the distributions' hash."""

from __future__ import annotations

import json

import pytest

from faceaudit.demo import DEMO_DATA, run_demo
from faceaudit.report.scenarios import consistency
from faceaudit.report.schema import validate_document


@pytest.mark.slow
def test_demo_writes_an_audit_with_its_scenario(tmp_path):
    if not (DEMO_DATA / "lfw_sface.parquet").exists():
        pytest.skip("bundled LFW embeddings not present")
    doc = run_demo(tmp_path, bootstrap=50, scenario_bootstrap=20)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    validate_document(on_disk)
    (scen,) = on_disk["scenarios"]
    assert consistency(on_disk, scen)["status"] == "verified"
    # the scenario runs at the audit's own FMR 1e-5 threshold
    point = next(p for p in doc["overall"]["operating_points"] if p["fmr_target"] == 1e-5)
    assert scen["inputs"]["threshold"] == point["threshold"]
    e = scen["expected"]
    assert (0 <= e["interval"]["low"] <= e["false_matches"] <= e["interval"]["high"]
            <= scen["inputs"]["searches"])
    assert any("one pair of people" in f for f in scen["flags"])
    html = (tmp_path / "audit.html").read_text()
    assert "Operational scenario" in html and "Verified" in html
