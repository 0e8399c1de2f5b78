"""``faceaudit evidence``: the command end to end, its refusals, and hostile option values (hypothesis)."""

from __future__ import annotations

import json
import math
import os

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from faceaudit.compare.store import save_distributions
from faceaudit.evidence.command import _check_options, evidence, parse_criteria, run_evidence
from faceaudit.evidence.errors import CalibrationError, EvidenceOptionError, OutsideSupportError
from faceaudit.evidence.evaluate import DEFAULT_CRITERIA, evaluate
from faceaudit.evidence.points import calibration_points, parse_group
from faceaudit.evidence.scale import ENFSI_2015, ScaleError, scale_from_dict
from faceaudit.evidence.synthetic import gaussian_calibration_set

app = typer.Typer()
app.command("evidence")(evidence)
app.command("noop", hidden=True)(lambda: None)  # two commands: typer keeps "evidence" as a subcommand


@pytest.fixture(scope="module")
def fadist(tmp_path_factory):
    dist, _ = gaussian_calibration_set(80, seed=11, tail_quantile=0.8, bins=128)
    return save_distributions(dist, tmp_path_factory.mktemp("ev") / "cal.fadist"), dist


@pytest.fixture(scope="module")
def small_points():
    dist, _ = gaussian_calibration_set(40, seed=12, tail_quantile=0.5, bins=64)
    return calibration_points(dist, ("sex",))


def test_command_end_to_end(fadist, tmp_path):
    path, dist = fadist
    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    res = CliRunner().invoke(
        app,
        [
            "evidence",
            "--calibration",
            str(path),
            "--score",
            "1.2",
            "--group",
            "sex=female",
            "--bootstrap",
            "20",
            "--folds",
            "3",
            "--criterion",
            "cllr=0.9",
            "--json",
            str(out_json),
            "--report",
            str(out_html),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out_json.read_text())
    assert doc["schema"] == "faceaudit.evidence/1"
    st_ = doc["statement"]
    # the same numbers as the API on the same data
    direct = evaluate(
        calibration_points(dist, ("sex",)),
        "logistic",
        folds=3,
        bootstrap=20,
        score=1.2,
        group={"sex": "female"},
    )
    assert st_["group_log10_lr"]["value"] == pytest.approx(direct.statement.group_log10_lr.value, abs=1e-12)
    assert st_["pooled_log10_lr"]["low"] == pytest.approx(direct.statement.pooled_log10_lr.low, abs=1e-12)
    assert st_["lr"] == pytest.approx(10 ** st_["group_log10_lr"]["value"])
    assert st_["verbal"]["scale"] == "ENFSI 2015"
    crit = {c["metric"]: c for c in doc["matrix"]}
    assert crit["cllr"]["bound"] == 0.9
    assert (crit["cllr"]["status"] == "pass") == (crit["cllr"]["value"]["high"] <= 0.9)
    assert doc["summary"][0].startswith("A score of 1.2 is")
    html = out_html.read_text()
    assert "Evidence sheet" in html and "http://" not in html.split("<script")[0]
    assert doc["provenance"]["calibration"]["sha256"]


@pytest.mark.parametrize(
    "args, error",
    [
        (["--score", "99"], "OutsideSupportError"),
        (["--score", "nan"], "OutsideSupportError"),
        (["--score", "1", "--group", "sex=other"], "UnknownGroupError"),
        (["--score", "1", "--group", "race=x"], "UnknownGroupError"),
        (["--score", "1", "--group", "nonsense"], "UnknownGroupError"),
        (["--criterion", "cllr=-1"], "EvidenceOptionError"),
        (["--folds", "2"], "EvidenceOptionError"),
        (["--method", "svm"], "CalibrationError"),
    ],
)
def test_command_refuses_with_named_errors(fadist, args, error):
    path, _ = fadist
    res = CliRunner().invoke(
        app, ["evidence", "--calibration", str(path), "--bootstrap", "0", "--quiet", *args]
    )
    assert res.exit_code == 2, res.output
    assert error in res.output


def test_bad_scale_file_is_named(fadist, tmp_path):
    path, _ = fadist
    bad = tmp_path / "scale.json"
    bad.write_text('{"name": "x", "levels": [[10, "weak"], [5, "less"]]}')
    res = CliRunner().invoke(app, ["evidence", "--calibration", str(path), "--scale", str(bad), "--quiet"])
    assert res.exit_code == 2 and "ScaleError" in res.output


def test_verbal_scale_enfsi_levels():
    assert ENFSI_2015.phrase(0.5) == ("weak support", True)
    assert ENFSI_2015.phrase(1.0) == ("weak support", True)  # LR 10 is the top of "weak"
    assert ENFSI_2015.phrase(1.5) == ("moderate support", True)
    assert ENFSI_2015.phrase(-3.5) == ("strong support", False)
    assert ENFSI_2015.phrase(7.0) == ("extremely strong support", True)


# ------------------------------------------------------------------------------- hostile option values


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_criteria_parse_or_named_error(items):
    try:
        out = parse_criteria(items)
    except EvidenceOptionError:
        return
    for metric, (_, bound) in out.items():
        assert metric in DEFAULT_CRITERIA and math.isfinite(bound) and bound >= 0


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=12,
    ),
    st.booleans(),
)
def test_scale_from_anything_or_named_error(raw, as_levels):
    if isinstance(raw, dict) and as_levels:
        raw = {"name": "x", "levels": list(raw.values())}
    try:
        scale = scale_from_dict(raw)
    except ScaleError:
        return
    for llr in (-9.0, -0.3, 0.0, 0.3, 9.0):
        phrase, _ = scale.phrase(llr)
        assert isinstance(phrase, str) and phrase


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["female", "male", "x", ""]))
def test_any_score_gives_an_lr_or_a_refusal(small_points, score, group):
    p = small_points
    seen = p.score[p.weight > 0]  # a point of weight 0 is no comparison seen
    # a group's LR is given only inside the group's own scores (both samples in the group): no extrapolation
    g = p.group_labels.index((group,)) if (group,) in p.group_labels else -1
    own = p.score[(p.weight > 0) & (p.group_a == g) & (p.group_b == g)]
    inside = math.isfinite(score) and seen.min() <= score <= seen.max() and (
        own.size > 0 and own.min() <= score <= own.max())
    try:
        r = evaluate(p, "logistic", folds=3, bootstrap=0, score=score, group={"sex": group})
    except (OutsideSupportError, CalibrationError):
        assert group not in ("female", "male") or not inside
        return
    s = r.statement
    assert inside
    assert r.system.lower_log10 <= s.pooled_log10_lr.value <= r.system.upper_log10
    assert math.isfinite(s.group_log10_lr.value)


@settings(max_examples=150, deadline=None)
@given(st.integers(-5, 12), st.integers(-5, 500), st.floats(), st.floats())
def test_numeric_options_checked(folds, bootstrap, level, strong):
    try:
        _check_options(folds, bootstrap, level, strong)
    except EvidenceOptionError:
        assert folds < 3 or bootstrap < 0 or not (0 < level < 1) or not (strong > 0 and math.isfinite(strong))
        return
    assert folds >= 3 and bootstrap >= 0 and 0 < level < 1 and math.isfinite(strong) and strong > 0


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_group_text_parses_or_named_error(text):
    try:
        out = parse_group(text)
    except CalibrationError:
        assert "=" not in text or any("=" not in p for p in text.split(","))
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


def test_run_evidence_without_score_gives_validation_only(fadist):
    path, _ = fadist
    doc = run_evidence(path, by=["sex"], bootstrap=0, folds=3)
    assert "statement" not in doc and len(doc["groups"]) == 2
    assert os.path.basename(doc["provenance"]["calibration"]["path"]) == "cal.fadist"
