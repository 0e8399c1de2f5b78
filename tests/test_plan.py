"""Request plans: sizes against the exact binomial computed independently, and the pairs they list."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import beta, binom

from faceaudit.errors import InputError
from faceaudit.plan import comparisons_needed, plan_requests, write_plan
from faceaudit.scores import SampleIndex


def power_by_hand(n: int, claim: float, true_rate: float, level: float = 0.95) -> float:
    """k_max from the Clopper-Pearson upper bound itself (beta quantile), then the binomial cdf."""
    k = np.arange(0, min(n, 100))  # k_max stays far below 100 for the sizes tested here
    upper = beta.ppf(1 - (1 - level) / 2, k + 1, n - k)
    ok = np.flatnonzero(upper <= claim)
    return 0.0 if ok.size == 0 else float(binom.cdf(ok[-1], n, true_rate))


def test_smallest_n_against_every_smaller_n():
    n, reached = comparisons_needed(0.01, 0.8, alternative=0.5)
    assert reached == pytest.approx(power_by_hand(n, 0.01, 0.005), rel=1e-9)
    assert reached >= 0.8
    below = [power_by_hand(m, 0.01, 0.005) for m in range(1, n)]
    assert max(below) < 0.8
    assert below[366] == 0.0 < below[367]  # 0 of 367 is not enough (upper 0.01000...5), 0 of 368 is


def test_claim_1e4_at_half_the_claim():
    n, reached = comparisons_needed(1e-4, 0.8, alternative=0.5)
    assert reached >= 0.8 > power_by_hand(n - 1, 1e-4, 5e-5)
    assert reached == pytest.approx(power_by_hand(n, 1e-4, 5e-5), rel=1e-9)
    assert 200_000 < n < 300_000


def test_zero_true_rate_is_the_zero_count_bound():
    """True rate 0: the claim is supported as soon as 0 errors suffice: 1 - 0.025^(1/n) <= claim."""
    n, reached = comparisons_needed(1e-4, 0.8, alternative=0.0)
    assert reached == 1.0
    assert 1 - 0.025 ** (1 / n) <= 1e-4 < 1 - 0.025 ** (1 / (n - 1))


@pytest.mark.parametrize(
    "kw",
    [
        dict(claim=0.0),
        dict(claim=1.0),
        dict(claim=0.01, power=1.0),
        dict(claim=0.01, alternative=1.0),
        dict(claim=0.01, level=1.0),
    ],
)
def test_bad_sizing_arguments(kw):
    claim = kw.pop("claim")
    with pytest.raises(InputError):
        comparisons_needed(claim, **{"power": 0.8, **kw})


def _samples(n_subjects=120, seed=1):
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 7, n_subjects)
    subj = np.repeat(np.arange(n_subjects), per)
    sex = np.where(np.arange(n_subjects) % 3 == 0, "female", "male")[subj]
    ids = [f"s{i:05d}" for i in range(subj.size)]
    return SampleIndex.from_columns(ids, subj.astype(str), {"sex": sex})


def test_plan_pairs():
    s = _samples()
    plan = plan_requests(s, claim_fmr=0.01, claim_fnmr=0.05, power=0.8, mated_per_subject=3, seed=7)
    n_fmr, _ = comparisons_needed(0.01, 0.8)
    assert plan.fmr_comparisons == n_fmr
    subj, grp = s.subject_of_sample, s.group_of_sample
    p, r = plan.probe, plan.reference
    assert (p != r).all()
    key = np.minimum(p, r) * s.n_samples + np.maximum(p, r)
    assert np.unique(key).size == key.size  # no pair twice, in either orientation
    assert np.array_equal(plan.mated, subj[p] == subj[r])
    per_subject = Counter(subj[p][plan.mated].tolist())
    sizes = np.bincount(subj, minlength=s.n_subjects)
    for k, c in per_subject.items():
        assert c == min(3, sizes[k] * (sizes[k] - 1) // 2)
    assert sum(per_subject.values()) == sum(min(3, k * (k - 1) // 2) for k in sizes)
    for cell in plan.cells:
        if cell.kind == "mated":
            continue
        gp, gr = s.group_labels.index(cell.probe_group), s.group_labels.index(cell.reference_group)
        in_cell = ~plan.mated & (grp[p] == gp) & (grp[r] == gr)
        assert in_cell.sum() == cell.planned == min(cell.needed, cell.available)
    assert plan.total == sum(c.planned for c in plan.cells)
    assert plan.hours_at(10.0) == pytest.approx(plan.total / 36000)
    again = plan_requests(s, claim_fmr=0.01, claim_fnmr=0.05, power=0.8, mated_per_subject=3, seed=7)
    assert np.array_equal(again.probe, p) and np.array_equal(again.reference, r)
    other = plan_requests(s, claim_fmr=0.01, claim_fnmr=0.05, power=0.8, mated_per_subject=3, seed=8)
    assert not np.array_equal(other.probe, p)


def test_small_cells_take_every_pair_and_report_the_shortfall():
    s = _samples(n_subjects=40)
    plan = plan_requests(s, claim_fmr=1e-4, power=0.8, cells="within", seed=0)
    for cell in plan.cells:
        if cell.kind == "non-mated":
            assert cell.planned == cell.available < cell.needed and cell.shortfall > 0
            assert cell.probe_group == cell.reference_group


def test_plan_file_round_trip(tmp_path):
    s = _samples()
    plan = plan_requests(s, claim_fmr=0.02, power=0.8, seed=3)
    write_plan(plan, str(tmp_path / "plan.parquet"))
    t = pq.read_table(tmp_path / "plan.parquet")
    assert t.num_rows == plan.total
    assert t.column("probe").to_pylist()[:5] == [s.sample_ids[i] for i in plan.probe[:5]]
    assert t.schema.field("probe").type == "string"


def test_plan_needs_a_claim():
    with pytest.raises(InputError):
        plan_requests(_samples(), power=0.8)
    with pytest.raises(InputError):
        plan_requests(_samples(), claim_fmr=0.01, cells="some")
