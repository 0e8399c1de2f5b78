"""Claim verdicts against bounds computed by hand (closed forms and root-finding on scipy's binomial)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import binom

from faceaudit.claims import (
    FAIL,
    NOT_ENOUGH_DATA,
    PASS,
    ClaimError,
    check_audit,
    check_closed_audit,
    judge,
    parse_claim,
)
from faceaudit.errors import FaceAuditError


def upper_by_hand(k: int, n: int, alpha: float = 0.05) -> float:
    """p with P(X <= k; n, p) = alpha / 2 (the exact upper bound), by root finding; closed form at 0."""
    if k == 0:
        return 1 - (alpha / 2) ** (1 / n)
    if k == n:
        return 1.0
    return brentq(lambda p: binom.cdf(k, n, p) - alpha / 2, 1e-15, 1 - 1e-15, xtol=1e-17, rtol=1e-13)


def lower_by_hand(k: int, n: int, alpha: float = 0.05) -> float:
    return (
        0.0
        if k == 0
        else brentq(lambda p: binom.sf(k - 1, n, p) - alpha / 2, 1e-15, 1 - 1e-15, xtol=1e-17, rtol=1e-13)
    )


@pytest.mark.parametrize(
    "k, n, claim, expected",
    [
        (0, 10_000, 1e-4, NOT_ENOUGH_DATA),  # upper 3.69e-4: zero errors do not support 1e-4
        (0, 40_000, 1e-4, PASS),  # upper 9.22e-5
        (
            0,
            36_886,
            1e-4,
            NOT_ENOUGH_DATA,
        ),  # 1 - 0.025^(1/n) <= 1e-4 from n = ln 0.025 / ln(1 - 1e-4) = 36886.95
        (0, 36_887, 1e-4, PASS),
        (10, 10_000, 1e-4, FAIL),  # lower 4.8e-4
        (2, 10_000, 1e-4, NOT_ENOUGH_DATA),  # [2.42e-5, 7.22e-4] straddles the claim
        (50, 10_000, 0.01, PASS),
        (100, 10_000, 0.01, NOT_ENOUGH_DATA),
        (130, 10_000, 0.01, FAIL),
        (0, 0, 0.01, NOT_ENOUGH_DATA),
    ],
)
def test_verdicts_against_hand_bounds(k, n, claim, expected):
    verdict, low, high = judge(claim, k, n)
    if n == 0:
        assert (verdict, low, high) == (NOT_ENOUGH_DATA, None, None)
        return
    lo, hi = lower_by_hand(k, n), upper_by_hand(k, n)
    assert low == pytest.approx(lo, rel=1e-9, abs=1e-15) and high == pytest.approx(hi, rel=1e-9)
    by_hand = PASS if hi <= claim else FAIL if lo > claim else NOT_ENOUGH_DATA
    assert verdict == by_hand == expected


def test_two_errors_in_ten_thousand():
    """2 / 10,000 against 1e-4: lower bound 2.42e-5 <= 1e-4 < upper 7.2e-4: not decided."""
    verdict, low, high = judge(1e-4, 2, 10_000)
    assert verdict == NOT_ENOUGH_DATA and low < 1e-4 < high


@given(k=st.integers(0, 200), extra=st.integers(0, 100_000), claim=st.floats(1e-6, 0.5))
def test_verdict_rule_matches_the_hand_bounds(k, extra, claim):
    n = k + extra
    if n == 0:
        return
    verdict, _, _ = judge(claim, k, n)
    hi, lo = upper_by_hand(k, n), lower_by_hand(k, n)
    if hi < claim * (1 - 1e-9):
        assert verdict == PASS
    elif lo > claim * (1 + 1e-9):
        assert verdict == FAIL
    elif lo < claim * (1 - 1e-9) and hi > claim * (1 + 1e-9):
        assert verdict == NOT_ENOUGH_DATA


@pytest.mark.parametrize(
    "text, fields",
    [
        ("fmr<=1e-4 per group", ("fmr", 1e-4, True, None, None)),
        ("FNMR <= 0.01 overall", ("fnmr", 0.01, False, None, None)),
        ("fnmr<=0.01 per group at fmr=1e-4", ("fnmr", 0.01, True, "fmr", 1e-4)),
        ("fmr<=1e-3 at threshold=0.52", ("fmr", 1e-3, True, "threshold", 0.52)),
    ],
)
def test_parse(text, fields):
    c = parse_claim(text)
    assert (c.metric, c.bound, c.per_group, c.at, c.at_value) == fields


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fmr",
        "fmr<1e-4",
        "fmr<=2",
        "fmr<=nan",
        "eer<=0.1",
        "fmr<=1e-4 per subject",
        "fnmr<=0.1 at fmr=3",
        "fmr<=inf",
        "fmr>=1e-4",
        "fmr<=1e-4 at fmr=x",
    ],
)
def test_unreadable_claims(text):
    with pytest.raises(ClaimError):
        parse_claim(text)


@given(st.text(max_size=40))
def test_hostile_claim_text(text):
    try:
        parse_claim(text)
    except FaceAuditError:
        pass


def test_claims_on_an_audit_document():
    from faceaudit.audit import audit
    from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges

    rng = np.random.default_rng(4)
    n = 400
    samples = SampleIndex.from_columns(
        np.arange(n).astype(str),
        (np.arange(n) // 4).astype(str),
        {"sex": np.where(np.arange(n) // 4 % 2, "f", "m")},
    )
    i, j = np.triu_indices(n, 1)
    mated = samples.subject_of_sample[i] == samples.subject_of_sample[j]
    s = np.where(mated, rng.normal(3, 1, i.size), rng.normal(0, 1, i.size))
    b = DistributionBuilder(samples, uniform_edges(-6, 8, 512), tail_cutoff=-np.inf)
    b.add(i, j, s)
    doc = audit(b.result(), fmr_targets=[1e-3], bootstrap=0)
    verdicts = check_audit(
        [parse_claim("fmr<=1e-3 per group"), parse_claim("fnmr<=0.5 overall at fmr=1e-3")], doc
    )
    assert [v.group for v in verdicts] == ["f", "m", "all"]
    for v in verdicts:
        assert v.verdict == judge(1e-3 if v.group != "all" else 0.5, v.count, v.total)[0]
    f = doc.by_group["sex"][0].at_global_threshold[0].fmr
    assert (verdicts[0].count, verdicts[0].total) == (f.count, f.total)
    with pytest.raises(ClaimError):
        check_audit([parse_claim("fnmr<=0.1 per group")], doc)  # no operating point named
    with pytest.raises(ClaimError):
        check_audit([parse_claim("fmr<=1e-4 per group")], doc)  # not an audited target
    t = doc.overall.operating_points[0].threshold
    at_t = check_audit([parse_claim(f"fnmr<=0.5 per group at threshold={t!r}")], doc)
    by_fmr = check_audit([parse_claim("fnmr<=0.5 per group at fmr=1e-3")], doc)
    assert [(v.group, v.count, v.total, v.verdict) for v in at_t] == [
        (v.group, v.count, v.total, v.verdict) for v in by_fmr
    ]


def test_claims_on_closed_results(tmp_path):
    import csv

    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table
    from faceaudit.measures.decisions import closed_audit

    with open(tmp_path / "s.csv", "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["sample_id", "subject_id", "sex"],
                ["a1", "A", "f"],
                ["a2", "A", "f"],
                ["b1", "B", "f"],
                ["b2", "B", "f"],
                ["c1", "C", "m"],
                ["c2", "C", "m"],
            ]
        )
    index = read_sample_table(tmp_path / "s.csv", ["sex"])
    rows = [
        ("a1", "a2", "match"),
        ("b1", "b2", "no-match"),
        ("c1", "c2", "match"),
        ("a1", "b1", "match"),
        ("a1", "b2", "no-match"),
        ("a2", "b1", "no-match"),
        ("c1", "a1", "no-match"),
    ]
    with open(tmp_path / "r.csv", "w", newline="") as f:
        csv.writer(f).writerows([["probe", "reference", "decision"], *rows])
    result = closed_audit(read_closed_comparisons(tmp_path / "r.csv", index), bootstrap=0)
    verdicts = check_closed_audit([parse_claim("fmr<=0.9 per group")], result)
    by_group = {v.group: v for v in verdicts}
    assert (by_group["f"].count, by_group["f"].total) == (1, 3)  # a1-b1 matched of a1-b1, a1-b2, a2-b1
    assert by_group["f"].verdict == NOT_ENOUGH_DATA  # 1 of 3: [0.0084, 0.906] straddles 0.9
    assert by_group["f"].high == pytest.approx(upper_by_hand(1, 3), rel=1e-9)
    assert by_group["m"].total == 0 and by_group["m"].verdict == NOT_ENOUGH_DATA
    with pytest.raises(ClaimError):
        check_closed_audit([parse_claim("fmr<=0.1 at fmr=1e-3")], result)
