"""Evidence measures against lir 1.3.1 / llreval 0.0.3 golden values, brute force and hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceaudit.evidence import metrics as m
from faceaudit.evidence.errors import NoMatedScoresError, NoNonMatedScoresError
from faceaudit.evidence.evaluate import ece_curve

GOLDEN = json.loads((Path(__file__).parent / "golden" / "lir.json").read_text())
CASES = sorted(GOLDEN["cases"])


def _case(name):
    c = GOLDEN["cases"][name]
    return np.array(c["inputs"]["log10_lr"]), np.array(c["inputs"]["label"]) == 1, c["lir"]


def _num(v):
    return float(v)  # "inf", "-inf", "nan" parse too


@pytest.mark.parametrize("name", CASES)
def test_cllr_family_matches_lir(name):
    x, y, g = _case(name)
    assert m.cllr(x, y) == pytest.approx(g["cllr"], abs=1e-9)
    assert m.cllr_min(x, y) == pytest.approx(g["cllr_min"], abs=1e-9)
    assert m.cllr(x, y) - m.cllr_min(x, y) == pytest.approx(g["cllr_cal"], abs=1e-9)
    assert m.cllr(x, y) == pytest.approx(g["llreval_cllr"], abs=1e-9)
    assert m.cllr_min(x, y) == pytest.approx(g["llreval_min_cllr"], abs=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_pav_matches_lir(name):
    x, y, g = _case(name)
    ours = m.pav_log10_lr(x, y)
    ref = np.array([_num(v) for v in g["pav_log10_lr"]])
    assert np.array_equal(np.isposinf(ours), np.isposinf(ref))
    assert np.array_equal(np.isneginf(ours), np.isneginf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_devpav_and_elub_match_lir(name):
    x, y, g = _case(name)
    ref = _num(g["devpav"])
    ours = m.devpav(x, y)
    assert (np.isnan(ours) and np.isnan(ref)) or ours == pytest.approx(ref, abs=1e-9)
    lo, hi = m.elub(x, y)
    assert lo == pytest.approx(g["elub_lower_log10"], abs=1e-9)
    assert hi == pytest.approx(g["elub_upper_log10"], abs=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_integer_weights_equal_repeated_points(name):
    """A histogram bin is a weighted point: weight k must equal the point repeated k times."""
    x, y, _ = _case(name)
    k = np.random.default_rng(7).integers(1, 4, size=x.size)
    xr, yr = np.repeat(x, k), np.repeat(y, k)
    w = k.astype(float)
    assert m.cllr(x, y, w) == pytest.approx(m.cllr(xr, yr), abs=1e-12)
    assert m.cllr_min(x, y, w) == pytest.approx(m.cllr_min(xr, yr), abs=1e-12)
    dev_w, dev_r = m.devpav(x, y, w), m.devpav(xr, yr)
    assert (np.isnan(dev_w) and np.isnan(dev_r)) or dev_w == pytest.approx(dev_r, abs=1e-12)
    assert m.elub(x, y, w) == pytest.approx(m.elub(xr, yr), abs=1e-12)
    assert m.misleading(x, y, w) == pytest.approx(m.misleading(xr, yr), abs=1e-12)


def test_hand_computed_cases():
    y = np.array([True, True, False, False])
    assert m.cllr(np.zeros(4), y) == pytest.approx(1.0)  # LR = 1 carries no information: 1 bit
    # LR 10 for the mated, 0.1 for the non-mated: cost log2(1.1) in each class
    assert m.cllr(np.array([1.0, 1.0, -1.0, -1.0]), y) == pytest.approx(np.log2(1.1))
    # perfectly separated scores: PAV gives LR inf / 0, Cllr_min 0
    assert m.cllr_min(np.array([3.0, 2.0, -1.0, -2.0]), y) == 0.0


def test_misleading_by_brute_force():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, 500)
    y = rng.random(500) < 0.3
    w = rng.integers(0, 5, 500).astype(float)
    got = m.misleading(x, y, w, strong=1.0)
    w1 = sum(wi for xi, yi, wi in zip(x, y, w) if yi)
    w0 = sum(wi for xi, yi, wi in zip(x, y, w) if not yi)
    assert got["mated_below_1"] == pytest.approx(sum(wi for xi, yi, wi in zip(x, y, w) if yi and xi < 0) / w1)
    assert got["nonmated_above_1"] == pytest.approx(
        sum(wi for xi, yi, wi in zip(x, y, w) if not yi and xi > 0) / w0
    )
    assert got["nonmated_strongly"] == pytest.approx(
        sum(wi for xi, yi, wi in zip(x, y, w) if not yi and xi > 1) / w0
    )


def test_ece_at_even_prior_is_cllr():
    x, y, _ = _case("gaussian_overconfident")
    w = np.ones(x.size)
    assert ece_curve(x, y, w, np.array([0.0]))[0] == pytest.approx(m.cllr(x, y))


def test_empty_class_is_a_named_error():
    with pytest.raises(NoMatedScoresError):
        m.cllr(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(NoNonMatedScoresError):
        m.pav_log10_lr(np.zeros(3), np.ones(3, bool))
    with pytest.raises(NoMatedScoresError):
        m.elub(np.zeros(3), np.array([True, False, False]), np.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("name", CASES)
def test_prepared_llr_equals_the_plain_measures(name):
    """The bootstrap's fast path (sorted once, re-weighted) gives what the plain functions give."""
    from faceaudit.evidence.evaluate import stats

    x, y, _ = _case(name)
    prepared = m.PreparedLLR(x, y)
    rng = np.random.default_rng(5)
    for _ in range(3):
        w = rng.integers(0, 3, x.size).astype(float)
        got, ref = prepared.stats(w, 1.0), stats(x, y, w, 1.0)
        for k, v in ref.items():
            assert (np.isnan(v) and np.isnan(got[k])) or got[k] == pytest.approx(v, abs=1e-12), k
