"""Exact EERs of a streamed build without a contiguous tail (issue 17, faceaudit.eer_window).

A streamed build's exact tail now reaches the target-FMR thresholds only; each group's EER comes from
a window of bins around its crossing, read again (widened) when the search needs a value outside it.
Checked against the brute-force restatement of bob.measure's search (test_oracle.oracle_eer_threshold)
and against the EER of the full exact arrays, on random tied scores and scores on bin edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_oracle import oracle_eer_threshold

from faceaudit.build import two_pass
from faceaudit.data.ingest import load_score_file
from faceaudit.measures.verification import WindowTooNarrow, count_nonmated_at_least, eer
from faceaudit.scores import ImpostorView, SampleIndex, uniform_edges
from faceaudit.synthetic import write_evaluation_set


def _pairs(pos, neg, groups_of_subject):
    """Samples (two per subject), mated pair (2k, 2k+1) per mated score, non-mated pairs of distinct
    subjects (distinct unordered pairs) per non-mated score, in order."""
    n_subj = len(groups_of_subject)
    samples = SampleIndex.from_columns(
        [f"s{i}" for i in range(2 * n_subj)], [f"p{i // 2}" for i in range(2 * n_subj)],
        {"g": [f"g{groups_of_subject[i // 2]}" for i in range(2 * n_subj)]})
    i_s = list(range(0, 2 * len(pos), 2))
    j_s = list(range(1, 2 * len(pos), 2))
    nm = [(a, b) for a in range(2 * n_subj) for b in range(a + 1, 2 * n_subj) if a // 2 != b // 2]
    assert len(nm) >= len(neg)
    i_s += [a for a, _ in nm[: len(neg)]]
    j_s += [b for _, b in nm[: len(neg)]]
    scores = np.array(list(pos) + list(neg), dtype=np.float64)
    return samples, np.array(i_s), np.array(j_s), scores


def _build(samples, i, j, s, edges, targets, subsets, chunk=7):
    reads = []

    def read():
        reads.append(1)
        for k in range(0, s.size, chunk):
            yield i[k:k + chunk], j[k:k + chunk], s[k:k + chunk]

    dist = two_pass(read, samples, edges, targets, subsets)
    return dist, len(reads)


def _subset_scores(samples, i, j, s, groups):
    g = samples.group_of_sample
    subj = samples.subject_of_sample
    inside = np.isin(g[i], groups) & np.isin(g[j], groups)
    mated = subj[i] == subj[j]
    return s[inside & ~mated], np.sort(s[inside & mated])


def _check_every_group(dist, samples, i, j, s, subsets):
    for groups in subsets:
        neg, pos = _subset_scores(samples, i, j, s, groups)
        if not (neg.size and pos.size):
            continue
        got = eer(dist.eer_view(groups), dist.genuine_scores(groups))
        assert got.threshold == oracle_eer_threshold(list(neg), list(pos))
        full = eer(ImpostorView.exact(neg), pos)
        assert (got.threshold, got.point.false_matches, got.point.false_non_matches) == \
            (full.threshold, full.point.false_matches, full.point.false_non_matches)


def test_score_file_tail_stops_above_the_eer(tmp_path):
    """A synthetic evaluation set read as a score file: the tail holds only what the target FMR needs,
    below the EER threshold nothing is kept, and every group's EER is the brute-force one."""
    samples_csv, scores_csv = write_evaluation_set(tmp_path, n_subjects=60, seed=4)
    dist = load_score_file(scores_csv, samples_csv, group_columns=["sex"], fmr_targets=[1e-3], bins=64,
                           pair_order="ordered")
    import csv

    rows = list(csv.DictReader(open(scores_csv)))
    srows = {r["sample_id"]: r for r in csv.DictReader(open(samples_csv))}
    labels = dist.samples.group_labels
    for groups in ([0], [1], [0, 1]):
        want = {labels[g][0] for g in groups}
        sel = [r for r in rows if srows[r["probe"]]["sex"] in want and srows[r["reference"]]["sex"] in want]
        mated = [srows[r["probe"]]["subject_id"] == srows[r["reference"]]["subject_id"] for r in sel]
        pos = [float(r["score"]) for r, m in zip(sel, mated) if m]
        neg = [float(r["score"]) for r, m in zip(sel, mated) if not m]
        got = eer(dist.eer_view(groups), dist.genuine_scores(groups))
        assert got.threshold == oracle_eer_threshold(neg, pos)
        # the tail does not reach the EER: every cell's kept scores start above its threshold
        view = dist.impostor_view(dist.cell_mask(groups, groups))
        assert view.n_below > 0 and view.below_max >= got.threshold
        assert sum(x >= got.threshold for x in neg) > view.tail.size
        with pytest.raises(WindowTooNarrow):
            eer(view, dist.genuine_scores(groups))
    assert dist.eer_views  # the windows were read


def test_histogram_window_never_needs_a_second_read():
    """The first window (one bin, chosen from the exact edge values F(e)) always holds the crossing,
    ties on the bin edges included: two_pass reads twice (histogram; tail and windows), never more."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        bins = int(rng.integers(2, 24))
        neg = list(rng.integers(0, 17, int(rng.integers(20, 120))) / 4)  # many on edges of [0, 4]
        pos = list(rng.integers(0, 17, int(rng.integers(2, 12))) / 4)
        samples, i, j, s = _pairs(pos, neg, [0] * 12)
        dist, reads = _build(samples, i, j, s, uniform_edges(0.0, 4.0, bins), [0.0], [[0]])
        _check_every_group(dist, samples, i, j, s, [[0]])
        assert reads == 2


@pytest.mark.parametrize("shift", [-3, -1, 1, 2, 5])
def test_misplaced_window_is_widened_until_exact(monkeypatch, shift):
    """A window that misses the crossing (moved ``shift`` bins off it, so the crossing sits at or past
    its edge) makes the search ask for a value outside: further reads widen it, and the answer is the
    oracle's, ties at the bin edges included."""
    import faceaudit.build as build_module
    import faceaudit.eer_window as ew

    true_window = ew.crossing_window

    def misplaced(dist, groups):
        w = true_window(dist, groups)
        lo = min(max(w.lo_bin + shift, 0), dist.n_bins - 1)
        return ew.Window(cells=w.cells, lo_bin=lo, hi_bin=lo + 1)

    monkeypatch.setattr(ew, "crossing_window", misplaced)
    monkeypatch.setattr(build_module, "crossing_window", misplaced)
    rng = np.random.default_rng(abs(shift))
    widened = 0
    for _ in range(20):
        neg = list(rng.integers(0, 33, 150) / 8)
        pos = list(rng.integers(8, 33, 12) / 8)
        samples, i, j, s = _pairs(pos, neg, [0] * 12)
        dist, reads = _build(samples, i, j, s, uniform_edges(0.0, 4.0, 16), [0.0], [[0]])
        _check_every_group(dist, samples, i, j, s, [[0]])
        widened += reads > 2
    assert widened > 0, "no misplaced window needed widening: the refinement path went untested"


def test_window_view_counts_exactly_inside_and_refuses_outside():
    view = ImpostorView(tail=np.array([2.0, 2.5, 3.0]), n_below=4, below_max=1.5, n_above=5, above_min=3.5)
    assert view.total == 12
    assert count_nonmated_at_least(view, 2.5) == 5 + 2
    assert count_nonmated_at_least(view, 3.5) == 5
    with pytest.raises(WindowTooNarrow):
        count_nonmated_at_least(view, 3.6)


tied = st.lists(st.integers(0, 16).map(lambda v: v / 4), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(neg=tied, pos=tied, bins=st.integers(1, 12), groups=st.lists(st.integers(0, 1), min_size=12,
                                                                      max_size=12),
       target=st.sampled_from([0.0, 0.05, 0.3]))
def test_window_eer_equals_full_arrays(neg, pos, bins, groups, target):
    """Random tied scores (many on the bin edges of [0, 4]), two groups: every group's EER from the
    windowed streamed build equals the oracle's and the full exact arrays'."""
    pos = pos[:12]
    neg = neg[: 12 * 11 * 2 - 12]
    samples, i, j, s = _pairs(pos, neg, groups)
    subsets = [[0], [1], [0, 1]] if len(set(groups)) == 2 else [[0]]
    dist, _ = _build(samples, i, j, s, uniform_edges(0.0, 4.0, bins), [target], subsets)
    _check_every_group(dist, samples, i, j, s, subsets)
