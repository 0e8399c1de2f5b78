"""The audit against a brute-force oracle: plain Python loops over every comparison of a small set.

The oracle shares no code with faceaudit's measures: it reads the score rows, decides mated from
the subject ids itself, and counts with loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceaudit.audit import audit
from faceaudit.build import from_arrays
from faceaudit.data.ingest import load_score_file
from faceaudit.measures.verification import eer, fmr_threshold, operating_point
from faceaudit.scores import DistributionBuilder, ImpostorView, SampleIndex, uniform_edges
from faceaudit.synthetic import write_evaluation_set

scores_st = st.lists(st.integers(-20, 20).map(lambda v: v / 4), min_size=1, max_size=60)


@pytest.fixture(scope="module")
def evalset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalset")
    samples, scores = write_evaluation_set(folder, n_subjects=40, seed=3, discrete=True)
    import csv

    srows = list(csv.DictReader(open(samples)))
    rows = list(csv.DictReader(open(scores)))
    return samples, scores, srows, rows


def oracle_rates(srows, rows, threshold, probe_filter, ref_filter):
    """(false matches, non-mated, false non-matches, mated) by loops."""
    by_id = {r["sample_id"]: r for r in srows}
    fm = nm = fnm = m = 0
    for r in rows:
        a, b = by_id[r["probe"]], by_id[r["reference"]]
        s = float(r["score"])
        if a["subject_id"] == b["subject_id"]:
            if probe_filter(a):
                m += 1
                fnm += s < threshold
        elif probe_filter(a) and ref_filter(b):
            nm += 1
            fm += s >= threshold
    return fm, nm, fnm, m


def oracle_far_threshold(neg, target):
    """bob.measure's far_threshold, restated as loops over the distinct values."""
    valid = math.nextafter(max(neg), math.inf)
    for v in sorted(set(neg), reverse=True):
        if sum(x >= v for x in neg) / len(neg) > target:
            break
        valid = v
    return valid


def test_audit_matches_oracle_overall_groups_and_cross_matrix(evalset):
    samples, scores, srows, rows = evalset
    dist = load_score_file(scores, samples, pair_order="ordered", group_columns=["sex", "region"],
                           fmr_targets=[0.01, 0.05], bins=16)
    res = audit(dist, fmr_targets=[0.01, 0.05], bootstrap=0)
    by_id = {r["sample_id"]: r for r in srows}
    neg = [float(r["score"]) for r in rows
           if by_id[r["probe"]]["subject_id"] != by_id[r["reference"]]["subject_id"]]
    for point in res.overall.operating_points:
        t = point.threshold
        assert t == oracle_far_threshold(neg, point.fmr_target)
        fm, nm, fnm, m = oracle_rates(srows, rows, t, lambda a: True, lambda b: True)
        assert (point.fmr.count, point.fmr.total) == (fm, nm)
        assert (point.fnmr.count, point.fnmr.total) == (fnm, m)
    # per group at the global thresholds, every grouping
    for grouping, entries in res.by_group.items():
        cols = grouping.split(" x ")
        for e in entries:
            def inside(a, e=e, cols=cols):
                return [a[c] for c in cols] == list(e.values)
            for g in e.at_global_threshold:
                fm, nm, fnm, m = oracle_rates(srows, rows, g.threshold, inside, inside)
                assert (g.fmr.count, g.fmr.total, g.fnmr.count, g.fnmr.total) == (
                    fm, nm, fnm, m)
            # the group's own thresholds
            gneg = [float(r["score"]) for r in rows
                    if inside(by_id[r["probe"]]) and inside(by_id[r["reference"]])
                    and by_id[r["probe"]]["subject_id"] != by_id[r["reference"]]["subject_id"]]
            for p in e.operating_points:
                assert p.threshold == oracle_far_threshold(gneg, p.fmr_target)
    # cross-group matrix, sex x region
    cross = res.cross_group(0.05, "sex x region")
    labels = cross.probe_groups
    for i, lp in enumerate(labels):
        for j, lr in enumerate(labels):
            vp, vr = lp.split(" | "), lr.split(" | ")
            fm, nm, _, _ = oracle_rates(
                srows, rows, cross.threshold,
                lambda a, vp=vp: [a["sex"], a["region"]] == vp,
                lambda b, vr=vr: [b["sex"], b["region"]] == vr)
            cell = cross.fmr[i][j]
            assert (cell.count, cell.total) == (fm, nm)


def oracle_eer_threshold(neg, pos):
    """bob.measure's eer_threshold search restated by brute force: every candidate threshold, its
    |FMR - FNMR| counted over all scores, compared exactly as integers (|a * Np - b * Nn|)."""
    neg_a, pos_a = np.asarray(neg, float), np.asarray(pos, float)
    values = sorted(set(pos) | set(neg))
    stop = values.index(min(max(pos), max(neg)))
    cands = [values[0]] + [(values[i] + values[i + 1]) / 2 for i in range(min(stop, len(values) - 2) + 1)]
    final = len(cands) - 1 if stop <= len(values) - 2 else None

    def crit(t):
        return abs(int((neg_a >= t).sum()) * len(pos) - int((pos_a < t).sum()) * len(neg))

    looped = [c for k, c in enumerate(cands) if k != final]
    scores = [crit(c) for c in looped]
    best = min(scores)
    expect = max(c for c, v in zip(looped, scores) if v == best)
    if final is not None and crit(cands[final]) < best:
        expect = cands[final]
    return expect


@settings(max_examples=300, deadline=None)
@given(neg=scores_st, pos=scores_st, bins=st.integers(1, 10))
def test_eer_equals_oracle_on_random_tied_data(neg, pos, bins):
    expect = oracle_eer_threshold(neg, pos)
    assert eer(ImpostorView.exact(neg), np.sort(pos)).threshold == expect
    dist = from_arrays(pos, neg, fmr_targets=[0.1], bins=bins)
    assert eer(dist.impostor_view(), dist.genuine_scores()).threshold == expect


def test_eer_matches_oracle_search(evalset):
    samples, scores, srows, rows = evalset
    dist = load_score_file(scores, samples, pair_order="ordered", fmr_targets=[0.01], bins=16)
    by_id = {r["sample_id"]: r for r in srows}
    mated = [by_id[r["probe"]]["subject_id"] == by_id[r["reference"]]["subject_id"] for r in rows]
    pos = sorted(float(r["score"]) for r, k in zip(rows, mated) if k)
    neg = sorted(float(r["score"]) for r, k in zip(rows, mated) if not k)
    # oracle: every candidate of bob's search, |FMR - FNMR| as exact fractions, ties to the higher
    from fractions import Fraction

    values = sorted(set(pos) | set(neg))
    stop = values.index(min(max(pos), max(neg)))
    cands = [values[0]] + [(values[i] + values[i + 1]) / 2 for i in range(min(stop, len(values) - 2) + 1)]
    final = len(cands) - 1 if stop <= len(values) - 2 else None

    def crit(t):
        return abs(Fraction(sum(x >= t for x in neg), len(neg)) - Fraction(sum(x < t for x in pos), len(pos)))

    looped = [c for k, c in enumerate(cands) if k != final]
    best = min(crit(c) for c in looped)
    expect = max(c for c in looped if crit(c) == best)
    if final is not None and crit(cands[final]) < best:
        expect = cands[final]
    # the tail reaches the target-FMR threshold only: the EER comes from its window view
    assert dist.eer_views, "the EER should lie below the tail (the window path is what this checks)"
    got = eer(dist.eer_view(), dist.genuine_scores())
    assert got.threshold == expect


def test_subject_bootstrap_matches_oracle_with_fixed_seed(evalset):
    samples, scores, srows, rows = evalset
    dist = load_score_file(scores, samples, pair_order="ordered", group_columns=["sex"], fmr_targets=[0.05],
                           bins=16)
    res = audit(dist, fmr_targets=[0.05], bootstrap=200, seed=11)
    point = res.overall.operating_points[0]
    t = point.threshold
    # oracle: redraw the same subject multiplicities, then weight every comparison by them in loops
    from faceaudit.stats.intervals import bootstrap_weights

    s = dist.samples
    W = bootstrap_weights(s.group_of_subject, 200, 11)
    subj_index = {sid: i for i, sid in enumerate(s.subject_ids.tolist())}
    by_id = {r["sample_id"]: r for r in srows}
    fmr_reps, fnmr_reps = [], []
    for w in W:
        fm = nm = fnm = m = 0.0
        for r in rows:
            a = subj_index[by_id[r["probe"]]["subject_id"]]
            b = subj_index[by_id[r["reference"]]["subject_id"]]
            x = float(r["score"])
            if a == b:
                m += w[a]
                fnm += w[a] * (x < t)
            else:
                nm += w[a] * w[b]
                fm += w[a] * w[b] * (x >= t)
        fmr_reps.append(fm / nm)
        fnmr_reps.append(fnm / m)
    lo, hi = np.quantile(fmr_reps, [0.025, 0.975])
    assert point.fmr.bootstrap.low == pytest.approx(lo, abs=1e-12)
    assert point.fmr.bootstrap.high == pytest.approx(hi, abs=1e-12)
    lo, hi = np.quantile(fnmr_reps, [0.025, 0.975])
    assert point.fnmr.bootstrap.low == pytest.approx(lo, abs=1e-12)
    assert point.fnmr.bootstrap.high == pytest.approx(hi, abs=1e-12)
    # the per-replicate rates the intervals come from (for ratio intervals on the same replicates)
    reps_fmr, reps_fnmr = res.replicates((), (), t)
    np.testing.assert_allclose(reps_fmr, fmr_reps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(reps_fnmr, fnmr_reps, rtol=0, atol=1e-12)


def test_clopper_pearson_and_rule_of_three():
    from scipy.stats import binomtest

    from faceaudit.stats.intervals import clopper_pearson, rule_of_three

    for k, n in [(0, 10), (3, 10), (10, 10), (7, 12345)]:
        ref = binomtest(k, n).proportion_ci(0.95, method="exact")
        got = clopper_pearson(k, n)
        assert got.low == pytest.approx(ref.low, abs=1e-12)
        assert got.high == pytest.approx(ref.high, abs=1e-12)
    assert rule_of_three(300) == 0.01


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(neg=scores_st, pos=scores_st, t1=st.floats(-6, 6), t2=st.floats(-6, 6))
def test_fmr_fnmr_monotone_in_threshold(neg, pos, t1, t2):
    view, gen = ImpostorView.exact(neg), np.sort(pos)
    lo, hi = sorted((t1, t2))
    a, b = operating_point(view, gen, lo), operating_point(view, gen, hi)
    assert a.false_matches >= b.false_matches
    assert a.false_non_matches <= b.false_non_matches


@settings(max_examples=60, deadline=None)
@given(neg=scores_st, pos=scores_st, bins=st.integers(1, 12),
       target=st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 0.9]))
def test_histogram_plus_tail_equals_sorted_array(neg, pos, bins, target):
    dist = from_arrays(pos, neg, fmr_targets=[target], bins=bins)
    v, g = dist.impostor_view(), dist.genuine_scores()
    ve, ge = ImpostorView.exact(neg), np.sort(pos)
    for conv in ("highest", "lowest"):
        assert fmr_threshold(v, target, g, conv) == fmr_threshold(ve, target, ge, conv)
    assert eer(v, g).threshold == eer(ve, ge).threshold


def _random_builder_parts(seed, parts):
    rng = np.random.default_rng(seed)
    n = 30
    samples = SampleIndex.from_columns([f"x{i}" for i in range(n)], [f"p{i // 3}" for i in range(n)],
                                       {"g": ["a" if (i // 3) % 2 else "b" for i in range(n)]})
    edges = uniform_edges(-3, 3, 8)
    out = []
    for _ in range(parts):
        b = DistributionBuilder(samples, edges, tail_cutoff=float(rng.choice([-np.inf, 0.0, 1.0])))
        k = 50
        p, r = rng.integers(0, n, k), rng.integers(0, n, k)
        b.add(p, r, np.round(rng.normal(0, 1, k), 1))
        out.append(b.result())
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_merge_is_associative_and_commutative(seed):
    a, b, c = _random_builder_parts(seed, 3)
    left, right = (a + b) + c, a + (b + c)
    assert left == right
    assert (a + b) == (b + a)
    assert left.n_nonmated == a.n_nonmated + b.n_nonmated + c.n_nonmated
    assert left.n_mated == a.n_mated + b.n_mated + c.n_mated


def test_det_curve_points_are_exact_in_bulk_and_tail(evalset):
    """Every DET point the audit reports, bulk (bin edges) or tail, equals the loop count."""
    samples, scores, srows, rows = evalset
    dist = load_score_file(scores, samples, pair_order="ordered", fmr_targets=[0.01], bins=16)
    assert dist.tail_score.size < dist.n_nonmated  # the bulk really is histogram-only here
    res = audit(dist, fmr_targets=[0.01], bootstrap=0, det_points=10_000)
    det = res.overall.det
    assert det.points_kept == det.points_total
    for t, fm, fnm in zip(det.threshold, det.false_matches, det.false_non_matches):
        t = float(t)
        o = oracle_rates(srows, rows, t, lambda a: True, lambda b: True)
        assert (fm, fnm) == (o[0], o[2])


def test_complete_design_bootstrap_matches_listed_design():
    """The closed-form denominators of an all-pairs design equal the listed subject-pair counts."""
    import dataclasses

    rng = np.random.default_rng(5)
    n = 24
    samples = SampleIndex.from_columns([f"x{i}" for i in range(n)], [f"p{i // 3}" for i in range(n)],
                                       {"g": ["a" if (i // 6) % 2 else "b" for i in range(n)]})
    i, j = np.triu_indices(n, 1)
    s = np.round(rng.normal(0, 1, i.size), 2)
    s[samples.subject_of_sample[i] == samples.subject_of_sample[j]] += 2
    b = DistributionBuilder(samples, uniform_edges(-4, 6, 8), tail_cutoff=-np.inf)
    b.add(i, j, s)
    listed = b.result()
    complete = dataclasses.replace(listed, design="complete", impostor_subject_pairs=None)
    r1 = audit(listed, fmr_targets=[0.05], bootstrap=300, seed=2)
    r2 = audit(complete, fmr_targets=[0.05], bootstrap=300, seed=2)
    for e1, e2 in zip(r1.by_group["g"], r2.by_group["g"]):
        b1 = e1.at_global_threshold[0].fmr.bootstrap
        b2 = e2.at_global_threshold[0].fmr.bootstrap
        assert b1.low == pytest.approx(b2.low, abs=1e-12)
        assert b1.high == pytest.approx(b2.high, abs=1e-12)


def test_json_document_has_the_documented_keys_and_at_matches_oracle(evalset, tmp_path):
    from typer.testing import CliRunner

    from faceaudit.cli import app

    samples, scores, srows, rows = evalset
    out = tmp_path / "r.json"
    # the evaluation set lists both orders of each pair (an order-dependent matcher); the command line reads
    # a pair as unordered, so it gets one order of each
    half = tmp_path / "half.csv"
    half.write_text("probe,reference,score\n" + "".join(
        f"{r['probe']},{r['reference']},{r['score']}\n" for r in rows if r["probe"] < r["reference"]))
    r = CliRunner().invoke(app, ["audit", "--scores", str(half), "--samples", str(samples), "--group", "sex",
                                 "--group", "region", "--fmr", "0.01", "--fmr", "0.001", "--bootstrap", "50",
                                 "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(out.read_text())
    assert {"eer", "eer_threshold", "operating_points"} <= set(doc["overall"])
    for p in doc["overall"]["operating_points"]:
        assert {"fmr_target", "convention", "threshold", "fmr", "fnmr"} <= set(p)
        assert {"count", "total", "value", "clopper_pearson", "subject_bootstrap"} <= set(p["fmr"])
    assert set(doc["by_group"]) == {"sex", "region", "sex x region"}
    assert set(doc["cross_group_fmr"]) == {"sex", "region", "sex x region"}
    assert {"fmr", "fnmr", "fdr", "garbe", "comparisons"} <= set(doc["differentials"]["sex"][0])
    assert ({"max_min", "max_geomean", "highest_over_lowest", "left_out"}
            <= set(doc["differentials"]["sex"][0]["fmr"]))
    assert len(doc["manifest"]["inputs"]["scores"]["sha256"]) == 64
    assert doc["settings"]["convention"] == "highest"
    # .at(threshold) on the Python object, against the loops
    dist = load_score_file(scores, samples, pair_order="ordered", group_columns=["sex"], fmr_targets=[0.01],
                           bins=16)
    res = audit(dist, fmr_targets=[0.01], bootstrap=0)
    t = res.overall.operating_points[0].threshold
    at = res.at(t)
    fm, nm, fnm, m = oracle_rates(srows, rows, t, lambda a: True, lambda b: True)
    assert at.overall.exact and at.overall.fmr.count == fm and at.overall.fnmr.count == fnm
    for g in at.groups:
        def inside(a, g=g):
            return a["sex"] == g.group
        fm, nm, fnm, m = oracle_rates(srows, rows, t, inside, inside)
        assert (g.fmr.count, g.fmr.total, g.fnmr.count) == (fm, nm, fnm)
    # below the exact tail, .at gives bounds that contain the truth
    low_t = float(dist.edges[3]) + 1e-3
    at = res.at(low_t)
    fm, nm, _, _ = oracle_rates(srows, rows, low_t, lambda a: True, lambda b: True)
    if not at.overall.exact:
        lo, hi = at.overall.fmr_bounds
        assert lo <= fm / nm <= hi
    else:
        assert at.overall.fmr.count == fm


@settings(max_examples=50, deadline=None)
@given(neg=scores_st, pos=scores_st, k=st.integers(4, 40))
def test_sampled_det_points_are_points_of_the_full_curve(neg, pos, k):
    from faceaudit.measures.verification import det_curve

    view, gen = ImpostorView.exact(neg), np.sort(pos)
    full = det_curve(view, gen)
    part = det_curve(view, gen, max_points=k)
    points = set(zip(full["threshold"].tolist(), full["false_matches"].tolist(),
                     full["false_non_matches"].tolist()))
    got = list(zip(part["threshold"].tolist(), part["false_matches"].tolist(),
                   part["false_non_matches"].tolist()))
    assert got and all(p in points for p in got)
    assert got[-1][1] == 0  # the curve ends where nothing matches


@pytest.mark.parametrize("seed,bins", [(1, 8), (2, 64), (3, 512), (4, 4096), (5, 33)])
def test_per_cell_cutoffs_give_the_exact_answers(tmp_path, seed, bins):
    """Cells keep tails from different cutoffs; every group's EER and thresholds stay exact."""
    import csv

    samples, scores = write_evaluation_set(tmp_path, n_subjects=30, seed=seed)
    srows = list(csv.DictReader(open(samples)))
    rows = list(csv.DictReader(open(scores)))
    by_id = {r["sample_id"]: r for r in srows}
    targets = [0.01, 0.001]
    dist = load_score_file(scores, samples, pair_order="ordered", group_columns=["sex", "region"],
                           fmr_targets=targets, bins=bins)
    res = audit(dist, fmr_targets=targets, bootstrap=0)
    keys = {"sex": ["sex"], "region": ["region"], "sex x region": ["sex", "region"]}
    subsets = [("overall", None, res.overall)] + [
        (name, list(e.values), e) for name, entries in res.by_group.items() for e in entries]
    for name, values, entry in subsets:
        def inside(a, name=name, values=values):
            return values is None or [a[c] for c in keys[name]] == values
        neg = [float(r["score"]) for r in rows if inside(by_id[r["probe"]]) and inside(by_id[r["reference"]])
               and by_id[r["probe"]]["subject_id"] != by_id[r["reference"]]["subject_id"]]
        pos = [float(r["score"]) for r in rows if inside(by_id[r["probe"]])
               and by_id[r["probe"]]["subject_id"] == by_id[r["reference"]]["subject_id"]]
        if not neg or not pos:
            continue
        assert entry.eer_threshold == oracle_eer_threshold(neg, pos), (name, values)
        for p in entry.operating_points:
            assert p.threshold == oracle_far_threshold(neg, p.fmr_target), (name, values)


def test_det_sampled_in_the_audit_keeps_exact_points_and_counts_all(evalset):
    samples, scores, srows, rows = evalset
    dist = load_score_file(scores, samples, pair_order="ordered", fmr_targets=[0.01], bins=16)
    full = audit(dist, fmr_targets=[0.01], bootstrap=0, det_points=10**6).overall.det
    few = audit(dist, fmr_targets=[0.01], bootstrap=0, det_points=20).overall.det
    assert few.points_total == full.points_total == full.points_kept
    assert few.points_kept <= 20 + 16  # sampled tail points plus the bulk's bin edges, then decimated
    exact = set(zip(full.threshold.tolist(), full.false_matches.tolist(), full.false_non_matches.tolist()))
    assert all(p in exact for p in zip(few.threshold.tolist(), few.false_matches.tolist(),
                                       few.false_non_matches.tolist()))
