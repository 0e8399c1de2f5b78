"""LR fitting on ScoreDistributions: the histogram representation, subject-disjoint folds, subject
weightings by brute force, a known true LR, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.build import from_arrays
from faceaudit.evidence import metrics as m
from faceaudit.evidence.errors import (
    NoMatedScoresError,
    OutsideSupportError,
    SubjectsUnknownError,
    UnknownGroupError,
)
from faceaudit.evidence.evaluate import evaluate
from faceaudit.evidence.fit import cross_validate, fit_system
from faceaudit.evidence.points import calibration_points
from faceaudit.evidence.synthetic import gaussian_calibration_set, true_log10_lr
from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges


@pytest.fixture(scope="module")
def gset():
    return gaussian_calibration_set(150, seed=1, tail_quantile=0.9, bins=256)


def _blocks(x: np.ndarray, llr: np.ndarray) -> np.ndarray:
    """Unique x at which a new PAV block starts (the fitted value changes)."""
    return x[1:][llr[1:] != llr[:-1]]


@pytest.mark.parametrize("listed", [True, False])
def test_pav_on_histogram_equals_pav_on_raw_where_tail_exact(listed):
    dist, (i, j, score, mated) = gaussian_calibration_set(
        150, seed=2, tail_quantile=0.9, bins=128, listed=listed
    )
    cutoff = float(dist.tail_cutoff[0, 0])
    pts = calibration_points(dist)
    xb, lb = m.pav_fit(pts.score, pts.mated, pts.weight)
    xr, lr = m.pav_fit(score, mated)  # every raw score exactly
    # above a score where both fits start a new block, each equals the isotonic fit of the points above it
    # alone, which are the same exact scores in both: the fits must agree there
    common = np.intersect1d(_blocks(xb, lb), _blocks(xr, lr))
    start = common[common >= cutoff].min()
    above_b, above_r = xb >= start, xr >= start
    np.testing.assert_array_equal(xb[above_b], xr[above_r])
    np.testing.assert_allclose(lb[above_b], lr[above_r], rtol=0, atol=1e-12)
    # and that region holds most of the exact tail
    tail = score[~mated & (score >= cutoff)]
    assert (tail >= start).mean() > 0.5
    # the bulk is represented with its exact count: total weight = every pair
    assert pts.weight[~pts.mated].sum() == (~mated).sum()


def test_points_keep_every_pair_and_move_bulk_by_at_most_a_bin(gset):
    dist, (i, j, score, mated) = gset
    pts = calibration_points(dist, ("sex",))
    assert pts.weight[pts.mated].sum() == mated.sum()
    assert pts.weight[~pts.mated].sum() == (~mated).sum()
    cutoff = float(dist.tail_cutoff[0, 0])
    bulk = ~pts.exact
    assert (pts.score[bulk] < cutoff).all()
    # weighted bulk mean within half a bin of the raw bulk mean
    raw = score[~mated & (score < cutoff)]
    assert abs(np.average(pts.score[bulk], weights=pts.weight[bulk]) - raw.mean()) <= pts.bin_width / 2


@pytest.mark.parametrize("listed", [True, False])
def test_bulk_pairs_under_subject_weights_by_brute_force(listed):
    dist, (i, j, score, mated) = gaussian_calibration_set(
        60, seed=3, tail_quantile=0.7, bins=64, listed=listed
    )
    pts = calibration_points(dist, ("sex",))
    subj = dist.samples.subject_of_sample
    sa, sb = subj[i], subj[j]
    ga, gb = pts.subject_group[sa], pts.subject_group[sb]
    if not listed:
        ga, gb = np.minimum(ga, gb), np.maximum(ga, gb)
    cutoff = float(dist.tail_cutoff[0, 0])
    bulk = ~mated & (score < cutoff)
    G = pts.n_groups
    w = np.random.default_rng(0).integers(0, 3, size=pts.n_subjects).astype(float)
    got = pts.bulk_pairs(w[None, :])[0]
    for c in range(G * G):
        sel = bulk & (ga * G + gb == c)
        assert got[c] == pytest.approx(float((w[sa[sel]] * w[sb[sel]]).sum()))
    # point weights under w: mated w_s, exact non-mated w_a w_b
    pw = pts.weights_under(w)
    ex = pts.exact
    assert pw[ex & pts.mated].sum() == pytest.approx(w[sa[mated]].sum())
    tail = ~mated & (score >= cutoff)
    assert pw[ex & ~pts.mated].sum() == pytest.approx((w[sa[tail]] * w[sb[tail]]).sum())


def test_folds_are_subject_disjoint(gset):
    dist, _ = gset
    pts = calibration_points(dist, ("sex",))
    cv = cross_validate(pts, "logistic", k=4, seed=5)
    ex = cv.points.exact
    for code in np.unique(cv.fold_pair):
        i, j = divmod(int(code), cv.k)
        train = set(cv.train_subjects[(i, j)].tolist())
        sel = (cv.fold_pair == code) & ex
        evaluated = set(cv.points.subject_a[sel].tolist()) | set(cv.points.subject_b[sel].tolist())
        assert evaluated and not (evaluated & train)
        assert {int(cv.folds[s]) for s in evaluated} <= {i, j}
    # every pair evaluated exactly once: total weight preserved
    assert cv.points.weight.sum() == pytest.approx(pts.weight.sum())
    assert cv.points.weight[cv.points.mated].sum() == pts.weight[pts.mated].sum()


def test_known_true_lr_within_interval():
    """Equal-variance Gaussian scores: the logistic model is the true model. A 95% interval misses the
    truth by chance 1 time in 20, so: inside at least 2 of the 3 checks, and never further out than the
    interval's own width."""
    dist, _ = gaussian_calibration_set(300, seed=4, tail_quantile=0.95, bins=512)
    pts = calibration_points(dist, ("sex",))
    inside = 0
    for group, s in (("female", 1.0), ("female", 2.2), ("male", 1.6)):
        r = evaluate(pts, "logistic", bootstrap=60, seed=1, score=s, group={"sex": group}, folds=3)
        est = r.statement.group_log10_lr
        truth = float(true_log10_lr(s, group))
        width = est.high - est.low
        assert est.low - width <= truth <= est.high + width, (group, s, est, truth)
        inside += est.low <= truth <= est.high
        # the pooled LR is a different quantity (pairs of both groups): it is reported beside it
        assert r.statement.pooled_log10_lr.value != est.value
    assert inside >= 2


@pytest.mark.parametrize("method", ["logistic", "pav", "gaussian"])
def test_systems_are_bounded_by_elub_and_monotone(gset, method):
    pts = calibration_points(gset[0])
    system = fit_system(pts, method)
    s = np.linspace(-10, 10, 2001)
    llr = system.log10_lr(s)
    assert llr.max() <= system.upper and llr.min() >= system.lower
    assert np.isfinite(llr).all()
    if method != "gaussian":
        assert (np.diff(llr) >= -1e-12).all()


def _no_mated_group():
    # group "x": one sample per subject, so no same-person comparisons
    subj = ["a", "a", "b", "b", "c", "d", "e"]
    grp = ["y", "y", "y", "y", "x", "x", "x"]
    samples = SampleIndex.from_columns([f"s{k}" for k in range(7)], subj, {"g": grp})
    i, j = np.triu_indices(7, k=1)
    score = np.random.default_rng(0).normal(0, 1, i.size) + 2.0 * (np.array(subj)[i] == np.array(subj)[j])
    b = DistributionBuilder(samples, uniform_edges(-5, 5, 32), tail_cutoff=-np.inf)
    b.add(i, j, score)
    return calibration_points(b.result(), ("g",))


def test_refusals():
    pts = _no_mated_group()
    with pytest.raises(NoMatedScoresError):
        evaluate(pts, bootstrap=0, folds=3, score=0.5, group={"g": "x"})
    with pytest.raises(UnknownGroupError):
        evaluate(pts, bootstrap=0, folds=3, score=0.5, group={"g": "z"})
    with pytest.raises(UnknownGroupError):
        calibration_points(gaussian_calibration_set(20, seed=0)[0], ("race",))
    dist, _ = gaussian_calibration_set(40, seed=0)
    pts = calibration_points(dist)
    for bad in (1e6, -1e6, float("nan"), float("inf")):
        with pytest.raises(OutsideSupportError):
            evaluate(pts, bootstrap=0, folds=3, score=bad)


def test_score_arrays_without_subjects_refuse_cross_validation():
    rng = np.random.default_rng(0)
    dist = from_arrays(rng.normal(2, 1, 300), rng.normal(0, 1, 20000), bins=256)
    pts = calibration_points(dist)
    fit_system(pts, "logistic")  # fitting is possible
    with pytest.raises(SubjectsUnknownError):
        cross_validate(pts, "logistic")


def test_logistic_without_a_finite_fit_is_refused():
    from faceaudit.evidence.errors import CalibrationError
    from faceaudit.evidence.fit import _fit_logistic

    x = np.array([0.0, 1.0, 1.0, 2.0])  # quasi-separated: the classes meet at one tied score
    with pytest.raises(CalibrationError):
        _fit_logistic(x, np.array([False, False, True, True]), np.ones(4))
    with pytest.raises(CalibrationError):
        _fit_logistic(np.array([0.0, 1.0, 2.0, 3.0]), np.array([False, False, True, True]), np.ones(4))


def test_a_group_that_cannot_be_calibrated_is_flagged_not_fatal():
    # group "y": 60 people with 3 images each; group "x": 10 people with one image each (no mated pairs)
    subj = [f"y{k}" for k in range(60) for _ in range(3)] + [f"x{k}" for k in range(10)]
    grp = ["y"] * 180 + ["x"] * 10
    samples = SampleIndex.from_columns([f"s{k}" for k in range(190)], subj, {"g": grp})
    i, j = np.triu_indices(190, k=1)
    same = np.array(subj)[i] == np.array(subj)[j]
    score = np.random.default_rng(1).normal(0, 1, i.size) + 2.0 * same
    b = DistributionBuilder(samples, uniform_edges(-6, 8, 64), tail_cutoff=1.0)
    b.add(i, j, score)
    pts = calibration_points(b.result(), ("g",))
    r = evaluate(pts, "logistic", bootstrap=5, folds=3)
    assert [f for f in r.flags if f.code == "group_not_calibrated" and dict(f.params)["group"] == ("x",)]
    assert [g.label for g in r.groups] == [("y",)]
    with pytest.raises(NoMatedScoresError):
        evaluate(pts, "logistic", bootstrap=0, folds=3, score=1.0, group={"g": "x"})


def test_group_asked_in_a_one_group_set():
    dist, _ = gaussian_calibration_set(60, seed=9, rename={"male": "female"})
    pts = calibration_points(dist, ("sex",))
    r = evaluate(pts, "logistic", bootstrap=0, folds=3, score=1.0, group={"sex": "female"})
    assert r.statement.group_log10_lr.value == pytest.approx(r.statement.pooled_log10_lr.value)
