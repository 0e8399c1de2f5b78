"""1:N identification: engine path against brute force, exact formulas, GPD recovery, extrapolation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import genpareto, norm

from faceaudit.compare import compare_embeddings
from faceaudit.errors import InputError
from faceaudit.measures.identification import (
    ProbeTails,
    TailModel,
    fnir_at,
    fpir_at,
    fpir_extrapolated,
    hypergeometric_any,
    identification,
    iter_rows,
    parse_gallery_sizes,
)
from faceaudit.report.document import to_document as doc
from faceaudit.scores import SampleIndex
from faceaudit.stats.tails import fit_gpd, gpd_sf


def clustered(n_subjects=500, per=4, d=64, spread=0.9, seed=0):
    """Seeded unit-norm embeddings with subject clusters and two groups of different tightness."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_subjects, d))
    subj = np.repeat(np.arange(n_subjects), per)
    sex = np.where(subj % 3 == 0, "female", "male")
    emb = centres[subj] + spread * rng.normal(size=(subj.size, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj, {"sex": sex})
    return emb.astype(np.float32), samples


@pytest.fixture(scope="module")
def engine_case():
    emb, samples = clustered()
    dist = compare_embeddings(emb, samples, backend="numpy", top_k=20, progress=False)
    e = emb.astype(np.float64)
    brute = ProbeTails.from_score_rows(samples, iter_rows(e @ e.T), max_known=5000)
    return dist, ProbeTails.from_distributions(dist), brute, e @ e.T, samples


def test_engine_tails_equal_brute_force(engine_case):
    dist, fast, brute, scores, samples = engine_case
    np.testing.assert_array_equal(fast.n_nonmated, brute.n_nonmated)
    np.testing.assert_array_equal(fast.mate_rank, brute.mate_rank)
    np.testing.assert_allclose(fast.best_mated_score, brute.best_mated_score, atol=1e-5)
    qs = np.quantile(fast.top_score(), [0.3, 0.6, 0.9, 0.99])
    for t in qs:
        kf, ex = fast.count_at_least(t)
        kb, _ = brute.count_at_least(t)
        assert ex.any()
        # float32 GEMM vs float64: a score within 1e-5 of t may fall either side
        near = np.abs(scores - t) < 1e-5
        slack = near.sum(axis=1)
        assert np.all(np.abs(kf[ex] - kb[ex]) <= slack[ex])
        assert np.all(kf[~ex] <= kb[~ex] + slack[~ex])  # a lower bound where not exact


def test_brute_force_1n_equals_fast_path(engine_case):
    dist, fast, brute, scores, samples = engine_case
    subj = samples.subject_of_sample
    n = subj.size
    mated = subj[:, None] == subj[None, :]
    nm = np.where(mated, -np.inf, scores)
    mt = np.where(mated & ~np.eye(n, dtype=bool), scores, -np.inf)
    t = float(np.quantile(fast.top_score(), 0.7))
    # full gallery FPIR: the probe's best non-mated score reaches T
    lo, hi, ex = fpir_at(fast, None, t)
    assert ex.all()
    top = nm.max(axis=1)
    clear = np.abs(top - t) > 1e-5
    np.testing.assert_array_equal(lo[clear], (top >= t)[clear].astype(float))
    # full gallery FNIR at rank R: best mate < T or more than R-1 non-mates at or above it
    best = mt.max(axis=1)
    rank = 1 + (nm >= best[:, None]).sum(axis=1)
    for R in (1, 5):
        miss = fnir_at(fast, None, R, t)
        expect = ((best < t) | (rank > R)).astype(float)
        has = fast.has_mate
        ok = has & clear & (np.abs(best - t) > 1e-5)
        np.testing.assert_array_equal(miss[ok], expect[ok])


def test_hypergeometric_equals_enumeration():
    rng = np.random.default_rng(3)
    n = 9
    for _ in range(5):
        marked = rng.random(n) < 0.3
        for N in (1, 3, 6, 9):
            subsets = list(itertools.combinations(range(n), N))
            enum = np.mean([marked[list(s)].any() for s in subsets])
            got = hypergeometric_any(np.array([n]), np.array([marked.sum()]), N)[0]
            assert got == pytest.approx(enum, abs=1e-12)


def test_subsampled_fpir_and_fnir_equal_enumeration():
    # 8 samples, 4 subjects: enumerate every gallery of N non-mated references
    rng = np.random.default_rng(5)
    n = 8
    samples = SampleIndex.from_columns(np.arange(n), np.arange(n) // 2)
    s = rng.normal(size=(n, n))
    s = (s + s.T) / 2
    tails = ProbeTails.from_score_rows(samples, [(np.arange(n), s)])
    subj = samples.subject_of_sample
    T = 0.2
    for N in (1, 3, 6):
        lo, _, _ = fpir_at(tails, N, T)
        miss1 = fnir_at(tails, N, 1, T)
        for p in range(n):
            refs = [j for j in range(n) if subj[j] != subj[p]]
            mate = [j for j in range(n) if subj[j] == subj[p] and j != p][0]
            gals = list(itertools.combinations(refs, N))
            fp = np.mean([max(s[p, list(g)]) >= T for g in gals])
            miss = np.mean([not (s[p, mate] >= T and all(s[p, j] < s[p, mate] for j in g)) for g in gals])
            assert lo[p] == pytest.approx(fp, abs=1e-12)
            assert miss1[p] == pytest.approx(miss, abs=1e-12)


def heterogeneous_probes(P=400, n=3000, seed=11):
    """P probes whose non-mated scores are N(mu_p, 1), mu_p heterogeneous (a few lambs)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 0.35, P) + np.where(rng.random(P) < 0.03, 1.2, 0.0)
    N_all = P + n  # probes first; each probe is its own subject, so every other sample is non-mated
    samples = SampleIndex.from_columns(np.arange(N_all), np.arange(N_all))

    def rows():
        for a in range(0, N_all, 512):
            idx = np.arange(a, min(N_all, a + 512))
            block = rng.normal(size=(idx.size, N_all)) + np.r_[mu, np.zeros(n)][idx, None]
            yield idx, block

    tails = ProbeTails.from_score_rows(samples, rows(), max_known=60)
    return tails, mu


def true_fpir(mu, T, N):
    return float(np.mean(-np.expm1(N * np.log1p(-norm.sf(T - mu)))))


def test_fpir_grows_with_n_as_the_exact_formula_says():
    tails, mu = heterogeneous_probes()
    probes = np.arange(mu.size)
    T = 3.2
    sizes = [10, 100, 1000, int(tails.n_nonmated.min())]
    measured = [fpir_at(tails, N, T)[0][probes].mean() for N in sizes]
    assert np.all(np.diff(measured) > 0)
    for N, m in zip(sizes, measured):
        truth = true_fpir(mu, T, N)
        # a mean over 400 probes of a per-probe rate: binomial noise of the probes' exceedances
        assert m == pytest.approx(truth, rel=0.25, abs=2e-3), (N, m, truth)
    # extrapolation 30x beyond the measured size, at a threshold above most probes' observed maximum
    model = TailModel.fitted(tails, m=30, probes=np.isin(np.arange(tails.n_probes), probes))
    for N, T in ((1e5, 4.0), (1e5, 4.4)):
        p = model.exceedance(T)[probes]
        pred = float(fpir_extrapolated(p, N).mean())
        truth = true_fpir(mu, T, N)
        naive = N * float(norm.sf(T - mu).mean())
        assert abs(pred - truth) < 0.3 * truth, (N, T, pred, truth)
        assert abs(pred - truth) < abs(naive - truth)  # heterogeneity: the naive N x FMR is further off


@pytest.mark.parametrize("shape,scale", [(-0.3, 0.02), (-0.1, 0.05), (0.0, 1.0), (0.15, 0.5)])
def test_gpd_fit_recovers_known_parameters(shape, scale):
    y = genpareto.rvs(shape, scale=scale, size=20_000, random_state=7)
    fit = fit_gpd(y)
    se_shape, se_scale = fit.se
    assert abs(fit.shape - shape) < 4 * se_shape + 1e-3
    assert abs(fit.scale - scale) < 4 * se_scale + 1e-6 * scale
    ref = genpareto.fit(y, floc=0)
    assert fit.shape == pytest.approx(ref[0], abs=2e-3)
    x = np.linspace(0, float(y.max()), 7)
    np.testing.assert_allclose(gpd_sf(x, shape, scale), genpareto.sf(x, shape, scale=scale),
                               rtol=1e-9, atol=1e-15)


def test_weighted_gpd_fit_equals_repeated_data():
    y = genpareto.rvs(-0.2, scale=0.1, size=3000, random_state=2)
    w = np.random.default_rng(0).integers(0, 3, y.size)
    a = fit_gpd(y, w)
    b = fit_gpd(np.repeat(y, w))
    assert a.shape == pytest.approx(b.shape, abs=1e-5)
    assert a.scale == pytest.approx(b.scale, rel=1e-5)


def test_gpd_bad_inputs_are_named():
    with pytest.raises(InputError):
        fit_gpd([0.1, 0.2])
    with pytest.raises(InputError):
        fit_gpd([0.1, -0.2, 0.3, 0.4])
    with pytest.raises(InputError):
        fit_gpd(np.full(10, 0.5))


def test_identification_result_and_bad_inputs(engine_case):
    dist, fast, brute, scores, samples = engine_case
    t = float(np.quantile(fast.top_score(), 0.8))
    r = identification(dist, thresholds=[t], gallery_sizes=[10, 100, None], ranks=[1, 5],
                       extrapolate_to=[1e5], bootstrap=20)
    pts = doc(r)["overall"]["points"]
    vals = [p["fpir"]["value"] for p in pts]
    assert vals == sorted(vals)  # FPIR grows with the gallery
    full = pts[-1]["fpir"]
    assert full["count"] == int((fast.top_score() >= t).sum()) and full["total"] == samples.n_samples
    assert set(doc(r)["by_group"]) == {"sex"} and len(doc(r)["by_group"]["sex"]) == 2
    x = doc(r)["overall"]["extrapolated"][0]
    assert 0 <= x["fpir"] <= 1 and x["interval"]["low"] <= x["fpir"] <= x["interval"]["high"] + 1e-12
    with pytest.raises(InputError):
        identification(dist, thresholds=[t], gallery_sizes=[10**9], bootstrap=0)
    with pytest.raises(InputError):
        identification(dist, thresholds=[t], ranks=[0], bootstrap=0)
    with pytest.raises(InputError):
        parse_gallery_sizes("1e2,lots")
    assert parse_gallery_sizes("1e2,1e3,full") == [100, 1000, None]


def test_listed_design_is_refused():
    from faceaudit.build import from_arrays

    d = from_arrays(np.random.default_rng(0).normal(3, 1, 100), np.random.default_rng(1).normal(0, 1, 1000))
    with pytest.raises(InputError):
        ProbeTails.from_distributions(d)


@pytest.mark.slow
def test_lfw_validation_fit_on_subset_predict_full():
    """The shipped validation (bench/validate_extrapolation.py) on the bundled LFW SFace embeddings."""
    import importlib.util
    from pathlib import Path

    from faceaudit.demo import DEMO_DATA

    if not (DEMO_DATA / "lfw_sface.parquet").exists():
        pytest.skip("bundled LFW embeddings not present")
    spec = importlib.util.spec_from_file_location(
        "validate_extrapolation", Path(__file__).resolve().parents[1] / "bench" / "validate_extrapolation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = {r["fmr_level_full_set"]: r
            for r in mod.validate(fraction=0.25, seed=0, fmr_levels=(1e-4, 1e-5, 1e-6), m=20, bootstrap=60)}
    for r in rows.values():
        assert r["threshold_exact"], r  # every count at the thresholds is exact (no truncated tail)
    # where FPIR is large and heterogeneity matters most (FMR 1e-4 of the full set, FPIR ~0.39), the model
    # predicts the exhaustive full-N FPIR within 10% from a quarter of the subjects; N x FMR is off by >50%
    r = rows[1e-4]
    assert abs(r["predicted_full"] - r["exhaustive_full"]) <= 0.10 * r["exhaustive_full"], r
    assert abs(r["naive_full"] - r["exhaustive_full"]) > 0.5 * r["exhaustive_full"]
    for level in (1e-5, 1e-6):
        r = rows[level]
        # deeper in the tail a quarter of LFW's subjects holds few pairs of people: within a factor of 3
        assert r["exhaustive_full"] / 3 <= r["predicted_full"] <= 3 * r["exhaustive_full"], r
        # at the subset's own size the model is within a factor of 2 of what the subset measured (it is
        # calibrated on the count of scores, which cluster on a few pairs of people, not on FPIR)
        assert r["subset_measured"] / 2 <= r["self_consistency_subset"] <= 2 * r["subset_measured"], r
    for r in rows.values():
        # both intervals cover the exhaustive value on this seed (20 seeds: bench/RESULTS.md), and the
        # prediction for one gallery is at least as wide as the interval on the expectation
        for key in ("predicted_full_interval", "predicted_full_prediction_interval"):
            lo, hi = r[key]
            assert lo <= r["exhaustive_full"] <= hi, (key, r)
        ci, pi = r["predicted_full_interval"], r["predicted_full_prediction_interval"]
        assert pi[1] - pi[0] >= 0.95 * (ci[1] - ci[0]), r


def test_zero_counts_are_reported_with_count_total_and_rule_of_three(engine_case):
    """A zero count is never a bare 0 with a [0, 0] interval: count, total, rule of 3, Clopper-Pearson."""
    from faceaudit.report.document import identification_lines
    from faceaudit.stats.intervals import rule_of_three

    dist, fast, brute, scores, samples = engine_case
    t = float(fast.top_score().max()) + 0.01  # no non-mated score reaches it: FPIR counts are 0
    r = identification(fast, thresholds=[t, float(np.median(fast.top_score()))], gallery_sizes=[10, None],
                       ranks=[1], bootstrap=20)
    d = doc(r)
    for block in [d["overall"]] + d["by_group"]["sex"]:
        for p in block["points"]:
            f = p["fpir"]
            if p["threshold"] == t:
                assert f["count"] == 0 and f["total"] == block["probes"] and f["value"] == 0
                assert f["rule_of_three_upper"] == pytest.approx(rule_of_three(block["probes"]))
                assert f["clopper_pearson"]["low"] == 0 and f["clopper_pearson"]["high"] > 0
                assert "subject_bootstrap" not in f and "rule of three" in f["note"]
            else:
                # counted, non-zero rates carry Clopper-Pearson next to the subject bootstrap
                assert f["clopper_pearson"]["low"] <= f["value"] <= f["clopper_pearson"]["high"]
                assert "subject_bootstrap" in f and "rule_of_three_upper" not in f
                assert ("count" in f) == (p["gallery_size"] == "full")
    text = "\n".join(identification_lines(d))
    assert "[0, 0]" not in text
    n = d["overall"]["probes"]
    assert f"0 (0/{n:,}; <= {3 / n:.3g} by rule of 3)" in text
    assert "CP [" in text and "boot [" in text


def _two_tailed_groups(extreme_f=40, extreme_m=12, n_subjects=400, seed=7):
    """Gaussian scores; single extreme pairs (score 6) within each sex: many for female, few for male."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), 2)
    sex = np.where(subj % 2 == 0, "female", "male")
    n = subj.size
    s = rng.normal(size=(n, n))
    s = (s + s.T) / 2
    for want, label in ((extreme_f, "female"), (extreme_m, "male")):
        idx = np.flatnonzero(sex == label)
        done = 0
        while done < want:
            i, j = rng.choice(idx, 2, replace=False)
            if subj[i] != subj[j] and s[i, j] < 6:
                s[i, j] = s[j, i] = 6.0
                done += 1
    samples = SampleIndex.from_columns(np.arange(n), subj, {"sex": sex})
    return ProbeTails.from_score_rows(samples, [(np.arange(n), s)], max_known=60), sex


def test_pair_part_is_estimated_per_group_when_the_group_has_the_scores():
    tails, sex = _two_tailed_groups()
    model = TailModel.fitted(tails, m=20)
    T = 5.5  # only the injected pairs reach it: 80 female scores, 24 male
    part = np.where(sex == "female", 0, 1)
    pooled = model.components(T)
    own = model.components(T, partition=part)
    assert own["groups"] == {0: {"events": 80, "own": True}, 1: {"events": 24, "own": True}}
    f, m_ = sex == "female", sex == "male"
    n = tails.n_nonmated
    # pooled: one pair rate for everyone, so the groups look alike at T
    assert pooled["r"] > 0.9 * float(pooled["p"].mean())
    assert pooled["p"][f].mean() == pytest.approx(pooled["p"][m_].mean(), rel=0.05)
    # per group: each group's mean exceedance equals its own observed share of scores >= T
    k, _ = tails.count_at_least(T)
    for sel in (f, m_):
        assert float((own["p"] * n)[sel].sum() / n[sel].sum()) == pytest.approx(k[sel].sum() / n[sel].sum(),
                                                                             rel=1e-9)
    assert own["p"][f].mean() > 2.5 * own["p"][m_].mean()
    # identification reports the difference at an extrapolated gallery, and says how each group was calibrated
    r = identification(tails, thresholds=[T], extrapolate_to=[1e3], bootstrap=10)
    xf, xm = (b["extrapolated"][0] for b in doc(r)["by_group"]["sex"])
    assert xf["calibration"] == xm["calibration"] == "own group"
    assert xf["fpir"] > 2 * xm["fpir"]
    assert xf["interval"]["low"] <= xf["fpir"] <= xf["interval"]["high"]


def test_group_with_too_few_scores_uses_pooled_pair_part_and_is_flagged():
    tails, sex = _two_tailed_groups(extreme_f=40, extreme_m=2)
    T = 5.5  # male: 4 scores >= T
    r = identification(tails, thresholds=[T], extrapolate_to=[1e5], bootstrap=0)
    xf, xm = (b["extrapolated"][0] for b in doc(r)["by_group"]["sex"])
    assert xf["calibration"] == "own group" and xm["calibration"].startswith("pooled")
    assert any("sex" in f or "male" in f for f in doc(r)["flags"] if "pooled calibration" in f)
    assert any(f.startswith("group male:") for f in doc(r)["flags"])


def test_count_factors_match_the_exact_poisson_interval():
    from scipy.stats import chi2

    tails, sex = _two_tailed_groups()
    model = TailModel.fitted(tails, m=20)
    K = model.effective_events(5.5)
    assert K == 52  # 40 + 12 injected pairs, each one pair of subjects
    cf = model.count_factors(5.5, 20_000, seed=1)[:, 0]
    lo, hi = np.quantile(cf * K, [0.025, 0.975])
    assert lo == pytest.approx(chi2.ppf(0.025, 2 * K) / 2, rel=0.03)
    assert hi == pytest.approx(chi2.ppf(0.975, 2 * K + 2) / 2, rel=0.03)


def test_count_factors_let_a_dominant_pair_of_people_be_absent(monkeypatch):
    """One pair of people giving 100 of 104 scores is absent from a Poisson draw of the pairs with
    probability 1/e, and then the count falls to about 4/104 of itself."""
    tails, _ = _two_tailed_groups()
    model = TailModel.fitted(tails, m=20)
    monkeypatch.setattr(TailModel, "pair_counts", lambda self, t, probes=None: np.array([100, 1, 1, 1, 1]))
    cf = model.count_factors(5.5, 20_000, seed=3)[:, 0]
    assert np.mean(cf < 0.2) == pytest.approx(np.exp(-1), abs=0.02)
    assert cf.mean() == pytest.approx(1.0, abs=0.15)  # Garwood's (K + 1/2) / K at K = 5 and a ratio of means


# ----- the realisation of one gallery: lookalikes take many of one person's samples at once ----------
def test_partner_shares_equal_brute_force():
    """partner_shares against loops over every (probe subject, reference subject) pair of people."""
    from faceaudit.measures.identification import partner_shares

    emb, samples = clustered(n_subjects=60, per=3, d=16, spread=1.3, seed=3)
    sc = emb.astype(np.float64) @ emb.astype(np.float64).T
    tails = ProbeTails.from_score_rows(samples, iter_rows(sc), max_known=10_000)
    subj = samples.subject_of_sample
    sizes = np.bincount(subj)
    off = sc[subj[:, None] != subj[None, :]]
    T = float(np.quantile(off, 0.995))
    got = partner_shares(tails, T, min_events=1)
    expect = []
    for s_ in range(samples.n_subjects):
        ps = np.flatnonzero(subj == s_)
        if ps.size < 2:
            continue
        for r in range(samples.n_subjects):
            if r == s_:
                continue
            hit = (sc[np.ix_(ps, np.flatnonzero(subj == r))] >= T).any(axis=1)
            if hit.any():
                expect.append(hit.sum() / sizes[s_])
    assert got["threshold_used"] == T
    assert got["pairs_of_people"] == len(expect) > 5
    np.testing.assert_allclose(np.sort(got["shares"]), np.sort(expect))
    # too few pairs of people at T: read lower, at the highest threshold with min_events of them
    deep = float(np.quantile(off, 0.99999))
    low = partner_shares(tails, deep, min_events=len(expect))
    assert deep > low["threshold_used"] >= T and low["pairs_of_people"] == len(expect)
    np.testing.assert_allclose(np.sort(low["shares"]), np.sort(expect))


def test_realised_fpir_keeps_the_mean_and_clusters_by_subject():
    from faceaudit.measures.identification import realised_fpir

    subj = np.repeat(np.arange(40), np.r_[[200], np.ones(39, int) * 5])  # one person with 200 samples
    h = np.full((4000, subj.size), 0.05)
    # no shares known, or single-sample subjects: independent searches, binomial spread
    ind = realised_fpir(h, subj, np.empty(0), seed=1)
    assert ind.mean() == pytest.approx(0.05, abs=0.002)
    assert ind.std() == pytest.approx(np.sqrt(0.05 * 0.95 / subj.size), rel=0.1)
    # a lookalike takes all of a person's samples: the big subject is all or nothing
    allnone = realised_fpir(h, subj, np.ones(10), seed=1)
    assert allnone.mean() == pytest.approx(0.05, abs=0.004)
    big = 200 / subj.size
    assert allnone.std() > 3 * ind.std()
    assert np.mean(allnone > big) == pytest.approx(0.05, abs=0.015)  # P(a lookalike) = 1 - exp(-l) = h
    # shares in between: the mean is kept (l = -log(1 - h) / mean(f)), the spread lies between
    mid = realised_fpir(h, subj, np.array([0.1, 0.3, 0.6]), seed=1)
    assert mid.mean() == pytest.approx(0.05, abs=0.003)
    assert ind.std() < mid.std() < allnone.std()
    # shares drawn from people of a similar size: the 200-sample person draws the 21+ bin's small shares
    from faceaudit.measures.identification import MIN_BIN_SHARES

    sh = np.r_[np.full(MIN_BIN_SHARES, 1.0), np.full(MIN_BIN_SHARES, 0.05)]
    sz = np.r_[np.full(MIN_BIN_SHARES, 5), np.full(MIN_BIN_SHARES, 100)]
    matched = realised_fpir(h, subj, sh, seed=1, share_sizes=sz)
    pooled = realised_fpir(h, subj, sh, seed=1)
    assert matched.mean() == pytest.approx(0.05, abs=0.003)
    assert matched.std() < 0.7 * pooled.std()
    # several realisations per replicate: row i of the model gives draws i, i + R, ...
    assert realised_fpir(h[:10], subj, sh, seed=1, share_sizes=sz, realisations=3).shape == (30,)
    # subject weights (a bootstrap replicate) weigh whole subjects
    w = np.ones((1, subj.size))
    w[0, subj == 0] = 0.0
    only_small = realised_fpir(np.where(subj == 0, 1.0, 0.0)[None, :], subj, np.ones(3), w, seed=2)
    assert only_small[0] == 0.0


def test_identify_reports_a_prediction_interval_next_to_the_interval(engine_case):
    dist, fast, brute, scores, samples = engine_case
    T = float(np.quantile(fast.top_score(), 0.95))
    r = identification(fast, thresholds=[T], extrapolate_to=[1e5], bootstrap=40, groupings=[["sex"]])
    for block in [doc(r)["overall"], *doc(r)["by_group"]["sex"]]:
        row = block["extrapolated"][0]
        iv, pi = row["interval"], row["prediction_interval"]
        assert pi["low"] <= pi["high"] and "lookalike" in pi["method"]
        assert pi["high"] - pi["low"] >= 0.9 * (iv["high"] - iv["low"])


def test_one_pair_of_people_dominating_the_tail_is_measured_and_flagged():
    """Two 'relatives' (subjects 0 and 1 share a centre, 30 samples each) give most scores >= T."""
    rng = np.random.default_rng(5)
    n_subj, d = 300, 32
    per = np.r_[30, 30, np.full(n_subj - 2, 3)]
    subj = np.repeat(np.arange(n_subj), per)
    centres = rng.normal(size=(n_subj, d))
    centres[1] = centres[0] + 0.35 * rng.normal(size=d)
    emb = centres[subj] + 0.8 * rng.normal(size=(subj.size, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj)
    sc = emb @ emb.T
    tails = ProbeTails.from_score_rows(samples, iter_rows(sc), max_known=2000)
    model = TailModel.fitted(tails, m=20)
    off = subj[:, None] != subj[None, :]
    T = float(np.sort(sc[off])[-200])
    conc = model.pair_concentration(T)
    # brute force: the (0, 1) pair's share of the ordered non-mated pairs >= T
    hit = off & (sc >= T)
    pair01 = (hit & (np.minimum(subj[:, None], subj[None, :]) == 0)
              & (np.maximum(subj[:, None], subj[None, :]) == 1))
    assert conc["scores"] == hit.sum()
    assert conc["share"] == pytest.approx(pair01.sum() / hit.sum()) and conc["share"] > 0.5
    r = identification(tails, thresholds=[T], extrapolate_to=[1e4], bootstrap=0)
    row = doc(r)["overall"]["extrapolated"][0]
    assert row["largest_pair_of_people"]["share"] == conc["share"]
    assert any("one pair of people gives" in f for f in doc(r)["flags"])
    from faceaudit.scenario import scenario

    sr = scenario(tails, searches=1000, gallery_size=1e4, threshold=T, bootstrap=0)
    assert doc(sr)["model"]["largest_pair_of_people"]["share"] == conc["share"]
    assert any("one pair of people gives" in f for f in doc(sr)["flags"])


def test_rule_of_three_counts_pairs_of_people_not_scores():
    """Above every observed score the bound is 3 pairs of people, each with the mean number of scores a
    pair of people gives at the highest threshold with 10 scores (brute force over the score matrix)."""
    emb, samples = clustered(n_subjects=80, per=4, d=16, spread=0.7, seed=9)
    sc = emb.astype(np.float64) @ emb.astype(np.float64).T
    tails = ProbeTails.from_score_rows(samples, iter_rows(sc), max_known=10_000)
    model = TailModel.fitted(tails, m=20)
    subj = samples.subject_of_sample
    off = subj[:, None] != subj[None, :]
    tc = float(np.sort(sc[off])[-10])  # the calibration threshold: 10 ordered non-mated pairs at or above
    assert model.calibration_threshold == pytest.approx(tc)
    hit = off & (sc >= tc)
    i, j = np.nonzero(hit)
    pairs = {(min(a, b), max(a, b)) for a, b in zip(subj[i], subj[j])}
    cbar = max(1.0, hit.sum() / len(pairs))
    T = float(sc[off].max()) + 0.01
    p = model.exceedance(T)
    bound = model.unobserved_bound(T, p)
    np.testing.assert_allclose(bound - p, 3 * cbar / tails.n_nonmated.sum())
    assert model.unobserved_bound(tc, model.exceedance(tc)) is None  # 10 scores: calibrated, no bound


def test_score_rows_keep_every_score_above_a_floor():
    """max_known scores per probe, or every one >= keep_above where those are more: counts at or
    above the floor are exact for every probe (brute force)."""
    emb, samples = clustered(n_subjects=50, per=4, d=8, spread=1.5, seed=4)
    sc = emb.astype(np.float64) @ emb.astype(np.float64).T
    subj = samples.subject_of_sample
    off = subj[:, None] != subj[None, :]
    floor = float(np.quantile(sc[off], 0.97))
    tails = ProbeTails.from_score_rows(samples, iter_rows(sc, block=37), max_known=3, keep_above=floor)
    assert (tails.known_count > 3).any()
    for t in (floor, float(np.quantile(sc[off], 0.99)), float(sc[off].max())):
        k, exact = tails.count_at_least(t)
        assert exact.all()
        np.testing.assert_array_equal(k, ((sc >= t) & off).sum(axis=1))


def test_a_groups_rule_of_three_rests_on_its_own_comparisons():
    emb, samples = clustered(n_subjects=120, per=3, d=16, spread=0.7, seed=2)
    sc = emb.astype(np.float64) @ emb.astype(np.float64).T
    tails = ProbeTails.from_score_rows(samples, iter_rows(sc), max_known=10_000)
    model = TailModel.fitted(tails, m=20)
    T = float(tails.known_score.max()) + 0.01
    p = model.exceedance(T)
    whole = model.unobserved_bound(T, p) - p
    female = np.array([samples.group_labels[g] == ("female",) for g in samples.group_of_sample])
    assert 0 < female.mean() < 0.5
    own = model.unobserved_bound(T, p, female) - p
    ratio = tails.n_nonmated.sum() / tails.n_nonmated[female].sum()
    np.testing.assert_allclose(own, whole * ratio)
    r = identification(tails, thresholds=[T], extrapolate_to=[1e3], bootstrap=20, groupings=[["sex"]])
    fem = next(b for b in doc(r)["by_group"]["sex"] if b["group"] == "female")["extrapolated"][0]
    allr = doc(r)["overall"]["extrapolated"][0]
    assert fem["rule_of_three_fpir"] > allr["rule_of_three_fpir"]
    assert fem["interval"]["high"] >= fem["rule_of_three_fpir"]
    assert "rule-of-three" in fem["interval"]["method"]


def test_one_person_holding_many_probes_is_flagged():
    from faceaudit.measures.identification import MAX_PERSON_SHARE, person_concentration_flag
    from faceaudit.report.document import flag_text

    subj = np.r_[np.zeros(60, int), np.repeat(np.arange(1, 301), 3)]  # one person: 60 of 960 probes
    assert 60 / subj.size > MAX_PERSON_SHARE
    flag = person_concentration_flag(subj, "all")
    assert flag.code == "person_concentration" and (flag.params["count"], flag.params["probes"]) == (60, 960)
    assert "6% of the probes (60 of 960)" in flag_text(flag)
    assert person_concentration_flag(np.repeat(np.arange(300), 3), "all") is None
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(subj.size, 16)) + 2.0 * rng.normal(size=(301, 16))[subj]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj)
    tails = ProbeTails.from_score_rows(samples, iter_rows(emb @ emb.T), max_known=100)
    r = identification(tails, thresholds=[float(np.quantile(tails.top_score(), 0.9))], bootstrap=0)
    assert any("one person holds 6% of the probes" in f for f in doc(r)["flags"]), doc(r)["flags"]
    from faceaudit.scenario import scenario

    sr = scenario(tails, searches=1e3, gallery_size=1e4, threshold=float(np.quantile(tails.top_score(), 0.9)),
                  bootstrap=0)
    assert any("one person holds 6% of the probes" in f for f in doc(sr)["flags"])
