"""The operational scenario: named errors for bad inputs, monotone counts, the budget solver, flags, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from faceaudit.compare import compare_embeddings
from faceaudit.errors import InputError
from faceaudit.measures.identification import ProbeTails
from faceaudit.report.document import to_document as doc
from faceaudit.scenario import ScenarioError, parse_mix, scenario
from faceaudit.scores import SampleIndex


@pytest.fixture(scope="module")
def dist():
    rng = np.random.default_rng(1)
    S, per, d = 400, 4, 48
    subj = np.repeat(np.arange(S), per)
    sex = np.where(subj % 3 == 0, "female", "male")
    race = np.where(subj < 12, "rare", "common")  # a group too small to support a figure
    emb = rng.normal(size=(S, d))[subj] + 0.9 * rng.normal(size=(subj.size, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj, {"sex": sex, "race": race})
    return compare_embeddings(emb.astype(np.float32), samples, backend="numpy", top_k=20, progress=False)


@pytest.fixture(scope="module")
def tails(dist):
    return ProbeTails.from_distributions(dist)


def _t(tails, q=0.9):
    return float(np.quantile(tails.top_score(), q))


@pytest.mark.parametrize("kwargs,match", [
    ({"mix": "sex=female:0.3,male:0.6"}, "sum to"),
    ({"mix": "sex=female:-0.3,male:1.3"}, "non-negative"),
    ({"mix": "sex=female:0.5,alien:0.5"}, "not in column"),
    ({"mix": "age=young:1.0"}, "not a group column"),
    ({"mix": "sex female 1"}, "COLUMN=value"),
    ({"searches": -5}, "non-negative"),
    ({"gallery_size": -1}, "non-negative"),
    ({"gallery_size": 0}, "at least 1"),
    ({"mated_share": 1.5}, "mated share"),
    ({"max_false_matches": 10}, "exactly one"),
    ({"threshold": None}, "exactly one"),
    ({"threshold": None, "max_false_matches": -1}, "budget"),
])
def test_bad_inputs_are_named_errors(tails, kwargs, match):
    args = {"searches": 1000, "gallery_size": 1e5, "threshold": _t(tails), "bootstrap": 0}
    args.update(kwargs)
    with pytest.raises(ScenarioError, match=match) as info:
        scenario(tails, **args)
    assert isinstance(info.value, InputError)


def test_parse_mix():
    assert parse_mix("sex=female:0.3,male:0.7") == ("sex", {"female": 0.3, "male": 0.7})
    assert parse_mix(None) is None
    with pytest.raises(ScenarioError):
        parse_mix("sex=female:x")


def test_counts_fall_with_threshold_and_add_up(tails):
    totals = []
    for q in (0.5, 0.8, 0.95, 0.99):
        r = scenario(tails, searches=10_000, gallery_size=1e5, threshold=_t(tails, q), mated_share=0.3,
                     mix="sex=female:0.4,male:0.6", bootstrap=0)
        e = doc(r)["expected"]
        totals.append(e["false_matches"])
        assert sum(g["false_matches"] for g in doc(r)["by_group"]) == pytest.approx(e["false_matches"])
        assert e["from_nonmated_searches"] + e["from_mated_searches"] == pytest.approx(e["false_matches"])
        assert e["mated_searches_wrong_person_first"] <= e["from_mated_searches"] + 1e-9
        assert 0 <= e["false_matches"] <= 10_000
    assert totals == sorted(totals, reverse=True)


def test_interval_and_statement(tails):
    r = scenario(tails, searches=1e5, gallery_size=1e6, threshold=_t(tails, 0.99), mated_share=0.3,
                 mix="sex=female:0.3,male:0.7", bootstrap=30)
    iv = doc(r)["expected"]["interval"]
    assert iv["low"] <= doc(r)["expected"]["false_matches"] <= iv["high"]
    assert "100,000 searches against a gallery of 1,000,000 faces" in doc(r)["statement"]
    assert "30% sex=female" in doc(r)["statement"] and "naive" in doc(r)["statement"]
    assert any("beyond the" in f for f in doc(r)["flags"])  # 1e6 is beyond the ~1,600 references measured
    d = json.loads(json.dumps(doc(r), default=float))
    assert d["schema"] == "faceaudit.scenario"


def test_budget_solver(tails):
    B = 50.0
    r = scenario(tails, searches=10_000, gallery_size=1e4, max_false_matches=B, bootstrap=20)
    T = doc(r)["budget"]["threshold"]
    assert T is not None and doc(r)["expected"]["false_matches"] <= B + 1e-6
    lower = scenario(tails, searches=10_000, gallery_size=1e4, threshold=T - 1e-3, bootstrap=0)
    assert doc(lower)["expected"]["false_matches"] > B
    up = doc(r)["budget"]["threshold_upper_bound_within_budget"]
    assert up is None or up >= T


def test_unsupported_inputs_are_flagged(tails):
    r = scenario(tails, searches=1e5, gallery_size=1e7, threshold=float(tails.top_score().max()) + 0.05,
                 mix="race=rare:0.5,common:0.5", bootstrap=0)
    text = " ".join(doc(r)["flags"])
    assert "race=rare" in text and "not supported" in text
    assert "no non-mated score" in text
    assert "below anything this set can observe" in text


def test_cli_identify_and_scenario(dist, tmp_path):
    from faceaudit.commands.identify import identify
    from faceaudit.commands.scenario import scenario as scenario_cmd
    from faceaudit.compare.store import save_distributions

    path = save_distributions(dist, tmp_path / "d.fadist")
    app = typer.Typer()
    app.command("identify")(identify)
    app.command("scenario")(scenario_cmd)
    runner = CliRunner()
    t = _t(ProbeTails.from_distributions(dist), 0.9)
    res = runner.invoke(app, ["identify", "--distributions", str(path), "--threshold", f"{t}",
                              "--gallery-sizes", "1e2,1e3,full", "--rank", "1,10", "--extrapolate", "1e6",
                              "--bootstrap", "10", "--json", str(tmp_path / "i.json")])
    assert res.exit_code == 0, res.output
    assert "FPIR" in res.output and "naive N*FMR" in res.output and "CMC" in res.output
    res = runner.invoke(app, ["scenario", "--distributions", str(path), "--searches", "100000",
                              "--gallery", "1e7", "--threshold", f"{t}", "--mated-share", "0.3",
                              "--mix", "sex=female:0.3,male:0.7", "--bootstrap", "10"])
    assert res.exit_code == 0, res.output
    assert "expected false matches" in res.output and "female" in res.output
    res = runner.invoke(app, ["scenario", "--distributions", str(path), "--searches", "100",
                              "--gallery", "1e3", "--threshold", f"{t}", "--mix", "sex=female:0.3,male:0.6",
                              "--bootstrap", "0"])
    assert res.exit_code == 2 and "ScenarioError" in res.output


def test_cli_identify_at_fmr_targets_and_zero_counts(dist, tmp_path):
    from faceaudit.commands.identify import identify
    from faceaudit.commands.scenario import scenario as scenario_cmd
    from faceaudit.compare.store import save_distributions
    from faceaudit.measures.verification import fmr_threshold

    path = save_distributions(dist, tmp_path / "d.fadist")
    app = typer.Typer()
    app.command("identify")(identify)
    app.command("scenario")(scenario_cmd)
    runner = CliRunner()
    out = tmp_path / "i.json"
    res = runner.invoke(app, ["identify", "--distributions", str(path), "--fmr", "1e-3,1e-4,1e-7",
                              "--gallery-sizes", "1e2,full", "--bootstrap", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    want = [fmr_threshold(dist.impostor_view(), f, dist.genuine_scores()) for f in (1e-3, 1e-4, 1e-7)]
    assert d["settings"]["thresholds"] == pytest.approx(want)
    assert [f["fmr_target"] for f in d["settings"]["fmr_targets"]] == [1e-3, 1e-4, 1e-7]
    assert "global FMR 0.001" in res.output and "[0, 0]" not in res.output
    # FMR 1e-7 is beyond the ~1.3M pairs: no false positive in the small race=rare group (48 probes) is a
    # count of 0 of 48 with its rule-of-three bound, in the JSON and on the terminal
    rare = next(b for b in d["by_group"]["race"] if b["group"] == "rare")
    full = [p for p in rare["points"] if p["threshold"] == pytest.approx(want[2])]
    zero = [p["fpir"] for p in full if p["fpir"].get("count") == 0]
    assert zero
    for z in zero:
        assert z["total"] == rare["probes"] and z["rule_of_three_upper"] == pytest.approx(3 / rare["probes"])
    assert f"0 (0/{rare['probes']}; <= {3 / rare['probes']:.3g} by rule of 3)" in res.output
    res = runner.invoke(app, ["identify", "--distributions", str(path), "--fmr", "1e-3",
                              "--threshold", "0.5"])
    assert res.exit_code == 2 and "exactly one" in res.output


def test_scenario_calibrates_each_group_on_its_own_scores_or_flags_it():
    from test_identification import _two_tailed_groups

    tails, _ = _two_tailed_groups(extreme_f=40, extreme_m=12)
    r = scenario(tails, searches=1e4, gallery_size=1e3, threshold=5.5, mix="sex=female:0.5,male:0.5",
                 bootstrap=10)
    cal = doc(r)["model"]["calibration_by_group"]
    assert cal["female"]["own"] and cal["male"]["own"]
    assert cal["female"]["pair_rate"] > 2.5 * cal["male"]["pair_rate"]
    f, m = doc(r)["by_group"]
    assert f["false_matches"] > 2 * m["false_matches"]
    assert "exact-Poisson" in doc(r)["expected"]["interval"]["method"]
    tails, _ = _two_tailed_groups(extreme_f=40, extreme_m=2)
    r = scenario(tails, searches=1e4, gallery_size=1e3, threshold=5.5, mix="sex=female:0.5,male:0.5",
                 bootstrap=0)
    assert not doc(r)["model"]["calibration_by_group"]["male"]["own"]
    assert any("sex=male" in f and "pooled" in f for f in doc(r)["flags"])


def test_count_interval_adds_the_noise_of_one_run_of_searches(tails):
    """Few searches: the number one run returns is a whole number spread wider than its expectation."""
    r = scenario(tails, searches=200, gallery_size=1e4, threshold=_t(tails, 0.95), bootstrap=60, seed=1)
    iv, ci = doc(r)["expected"]["interval"], doc(r)["expected"]["count_interval"]
    assert float(ci["low"]).is_integer() and float(ci["high"]).is_integer()
    assert ci["high"] - ci["low"] > iv["high"] - iv["low"]
    assert ci["low"] <= doc(r)["expected"]["false_matches"] <= ci["high"]
    for g in doc(r)["by_group"]:
        assert g["count_interval"]["low"] <= g["count_interval"]["high"]


def test_wrong_person_first_has_an_interval(tails):
    r = scenario(tails, searches=1e4, gallery_size=1e5, threshold=_t(tails, 0.99), mated_share=0.5,
                 bootstrap=40)
    e = doc(r)["expected"]
    iv = e["mated_searches_wrong_person_first_interval"]
    assert 0 < e["mated_searches_wrong_person_first"] <= e["from_mated_searches"] + 1e-9
    assert 0 <= iv["low"] <= e["mated_searches_wrong_person_first"] <= iv["high"]
    # nobody enrolled: nobody's mate can come second
    r0 = scenario(tails, searches=1e4, gallery_size=1e5, threshold=_t(tails, 0.99), mated_share=0.0,
                  bootstrap=10)
    assert doc(r0)["expected"]["mated_searches_wrong_person_first"] == 0.0
