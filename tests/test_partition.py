"""Partition inside the bin (compare/refine.py): where the windows of whole bins would hold more than the
budget, further passes split each answer's bin until its part fits. The answers must be those of the
uncapped run of the same comparison (itself checked against brute force in test_compare/test_tailcap),
bit for bit, and the windows must hold at most the budget where the scores do not tie."""

from __future__ import annotations

import numpy as np
import pytest
from test_eer_window import _pairs
from test_tailcap import TARGETS, check_answers, same_audit

from faceaudit import partition as refine
from faceaudit.audit import audit
from faceaudit.compare import capped, compare_embeddings, prepass
from faceaudit.compare import plan as plan_module
from faceaudit.compare.store import FORMAT_PARTS, _arrays_of, load_distributions, save_distributions
from faceaudit.groups import group_subsets
from faceaudit.measures.verification import eer, fmr_threshold, global_fmr_thresholds
from faceaudit.scores import SampleIndex
from faceaudit.tail_windows import target_view, threshold_view

KW = {"progress": False, "block": 64, "reference_sample": 64, "bins": 64, "normalize": True,
      "fmr_targets": TARGETS}


@pytest.fixture(autouse=True)
def rows_everywhere(monkeypatch):
    monkeypatch.setattr(prepass, "SMALL_CELL", 0)
    monkeypatch.setattr(plan_module, "default_cell_limit", lambda bins: 0)


def gaussian_set(n=400, d=16, subjects=50, seed=0):
    """Continuous scores (no ties): subject prototypes plus noise, two groupings."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, subjects, n)
    proto = rng.standard_normal((subjects, d))
    x = (proto[subj] + rng.standard_normal((n, d)) * rng.uniform(0.6, 1.4, (n, 1))).astype(np.float32)
    attrs = {"sex": np.array(["f", "m"])[subj % 2], "race": np.array(["a", "b", "c"])[(subj // 2) % 3]}
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{s}" for s in subj], attrs)
    return x, samples


def subsets(samples):
    cols = samples.group_columns
    return [list(range(samples.n_groups))] + list(
        group_subsets(samples, [(c,) for c in cols] + [tuple(cols)]).values())


def same_answers(cap, full, samples):
    """Every subset's thresholds (both conventions), counts there, EER; every cell at the global
    thresholds; the audits and the identify command's global thresholds: equal to the uncapped run's."""
    glob = {}
    for groups in subsets(samples):
        cells = cap.cell_mask(groups, groups)
        genuine = full.genuine_scores(groups)
        ref = full.impostor_view(cells)
        assert not ref.n_below or ref.tail.size > 0
        for t in TARGETS:
            tv = target_view(cap, cells, t, cap.impostor_view(cells))
            for conv in ("highest", "lowest"):
                assert fmr_threshold(tv, t, genuine, conv) == fmr_threshold(full.impostor_view(cells), t,
                                                                            genuine, conv), (groups, t, conv)
            if groups == subsets(samples)[0]:
                glob[t] = fmr_threshold(tv, t, genuine, "highest")
        if genuine.size:
            assert eer(cap.eer_view(groups), genuine) == eer(full.eer_view(groups), genuine), groups
        for thr in glob.values():
            assert cap.nonmated_count_at_least(thr, cells) == full.nonmated_count_at_least(thr, cells)
            v = threshold_view(cap, cells, thr, cap.impostor_view(cells))
            assert v.n_above + v.tail.size - np.searchsorted(v.tail, thr) == \
                full.nonmated_count_at_least(thr, cells)[0]
    for thr in glob.values():
        got, ok = cap.nonmated_at_least_by_cell(thr)
        want, ok_full = full.nonmated_at_least_by_cell(thr)
        assert ok.all() and ok_full.all()
        np.testing.assert_array_equal(got, want)
    for conv in ("highest", "lowest"):
        assert global_fmr_thresholds(cap, TARGETS, conv) == global_fmr_thresholds(full, TARGETS, conv)
        same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0, convention=conv),
                   audit(cap, fmr_targets=TARGETS, bootstrap=0, convention=conv))


@pytest.mark.parametrize("sub_bins,max_tail", [(4, 0), (4, 300), (1 << 14, 0), (1 << 14, 300)])
def test_parts_give_the_uncapped_answers(monkeypatch, sub_bins, max_tail):
    monkeypatch.setattr(refine, "SUB_BINS", sub_bins)
    x, samples = gaussian_set()
    full = compare_embeddings(x, samples, backend="numpy", **KW)
    cap = compare_embeddings(x, samples, backend="numpy", max_tail=max_tail, **KW)
    assert full.windows is None and cap.windows is not None and cap.windows.refined
    part = cap.meta["tail_windows"]["partition"]
    assert part["sub_bins"] == sub_bins and part["split_passes"] >= 1
    if sub_bins == 4:  # 4 parts a pass: several passes before the parts fit
        assert part["split_passes"] >= 3
    # no ties: every answer's part holds at most its share, so the windows hold at most the budget
    assert cap.windows.n_scores <= max(max_tail, part["answers"])
    assert cap.windows.n_scores < sum(int(full.hist_rows[full.hist_row_of_cell.reshape(-1)[c], b])
                                      for c, b in zip(cap.windows.cell.tolist(), cap.windows.bin.tolist()))
    np.testing.assert_array_equal(cap.hist_rows, full.hist_rows)
    same_answers(cap, full, samples)


def test_ties_stop_the_splitting_and_stay_exact(monkeypatch):
    """Lattice scores (steps of 1/64): a bin's scores are one value; the parts stop at the tie and every
    answer is still brute force's."""
    from test_compare import lattice_set

    monkeypatch.setattr(refine, "SUB_BINS", 4)
    x, samples = lattice_set(n=150, seed=3)
    cap = compare_embeddings(x, samples, backend="numpy", progress=False, block=32, reference_sample=64,
                             fmr_targets=TARGETS, max_tail=0, bins=64)
    assert cap.windows.refined and cap.meta["tail_windows"]["partition"]["split_passes"] < refine.MAX_ROUNDS
    check_answers(cap, x, samples)


def test_backends_and_threads_agree_bit_for_bit_with_parts():
    x, samples = gaussian_set(seed=2)
    base = compare_embeddings(x, samples, backend="numpy", max_tail=50, **KW)
    assert base.windows.refined
    assert compare_embeddings(x, samples, backend="numpy", threads=2, max_tail=50, **KW) == base
    pytest.importorskip("torch", reason="torch is not installed")
    assert compare_embeddings(x, samples, backend="torch", device="cpu", max_tail=50, **KW) == base


def test_dask_agrees_bit_for_bit_with_parts():
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    x, samples = gaussian_set(n=300, seed=5)
    base = compare_embeddings(x, samples, backend="numpy", max_tail=50, **KW)
    assert compare_embeddings(x, samples, backend="dask", n_workers=2, max_tail=50, **KW) == base


def test_bands_over_the_budget_are_not_kept_by_the_pass(monkeypatch):
    """The pre-pass keeps its estimated answer bands only when they fit the budget: with a budget they
    pass, the main pass keeps the contiguous tail alone (one range per cell), and the answers come from
    the parts all the same."""
    seen = []
    real = capped.estimate_keep

    def spy(*a):
        seen.append(real(*a))
        return seen[-1]

    monkeypatch.setattr(prepass, "estimate_keep", spy)
    x, samples = gaussian_set(seed=4)
    full = compare_embeddings(x, samples, backend="numpy", **KW)
    cap = compare_embeddings(x, samples, backend="numpy", max_tail=20, **KW)
    keep = seen[-1]
    assert keep is not None and np.array_equal(np.unique(keep.cell), keep.cell)  # one range per cell
    assert (keep.hi == keep.n_bins).all()
    same_answers(cap, full, samples)


def test_store_writes_parts_and_refuses_damaged_ones(tmp_path):
    from faceaudit.compare.errors import DistributionsFileError
    from faceaudit.compare.npzfile import read_npz, write_npz

    x, samples = gaussian_set(seed=6)
    cap = compare_embeddings(x, samples, backend="numpy", max_tail=40, **KW)
    save_distributions(cap, tmp_path / "cap.fadist")
    assert str(read_npz(tmp_path / "cap.fadist")["__json__"]).count(FORMAT_PARTS) == 1
    back = load_distributions(tmp_path / "cap.fadist")
    assert back == cap and back.windows.refined
    part = int(np.flatnonzero(~np.isnan(cap.windows.lo) & (np.diff(cap.windows.start) > 0))[0])
    for damage in ("lo", "count", "missing"):
        a = _arrays_of(cap)
        if damage == "lo":  # a part claimed wider than the scores it holds allow
            a["window_lo"] = a["window_lo"].copy()
            a["window_lo"][part] = a["window_score"][a["window_start"][part + 1] - 1] + 1e-12
        elif damage == "count":
            a["window_n_in_above"] = a["window_n_in_above"].copy()
            a["window_n_in_above"][part] += 1
        else:
            del a["window_n_in_below"]
        write_npz(tmp_path / f"{damage}.fadist", a)
        with pytest.raises(DistributionsFileError):
            load_distributions(tmp_path / f"{damage}.fadist")


# ----- score files: the same budget, the parts found by further reads of the file -------------------------
def _score_file(tmp_path, seed=4, n_subjects=70):
    from faceaudit.synthetic import write_evaluation_set

    return write_evaluation_set(tmp_path, n_subjects=n_subjects, seed=seed)


@pytest.mark.parametrize("sub_bins,max_tail", [(4, 0), (4, 40), (1 << 14, 0)])
def test_score_file_parts_give_the_uncapped_answers(tmp_path, monkeypatch, sub_bins, max_tail):
    """A score file read with a tail budget that binds: its answers are the unbudgeted read's (which is
    checked against brute force and bob.measure elsewhere), every EER brute force's too."""
    from test_oracle import oracle_eer_threshold

    from faceaudit.data.ingest import load_score_file

    monkeypatch.setattr(refine, "SUB_BINS", sub_bins)
    samples_csv, scores_csv = _score_file(tmp_path)
    kw = {"group_columns": ["sex", "region"], "fmr_targets": TARGETS, "bins": 64, "pair_order": "ordered"}
    full = load_score_file(scores_csv, samples_csv, max_tail=None, **kw)
    cap = load_score_file(scores_csv, samples_csv, max_tail=max_tail, **kw)
    assert full.windows is None and cap.windows is not None and not cap.eer_views
    info = cap.meta["tail_windows"]
    assert cap.tail_score.size <= max_tail < full.tail_score.size and info["max_tail"] == max_tail
    if sub_bins == 4:
        assert info["partition"]["split_reads"] >= 2 and cap.windows.refined
    same_answers(cap, full, cap.samples)
    import csv

    rows = list(csv.DictReader(open(scores_csv)))
    group = {r["sample_id"]: (r["subject_id"], r["sex"]) for r in csv.DictReader(open(samples_csv))}
    for sex in sorted({lab[0] for lab in cap.samples.group_labels}):  # each sex's EER: brute force
        groups = [g for g, lab in enumerate(cap.samples.group_labels) if lab[0] == sex]
        sel = [r for r in rows if group[r["probe"]][1] == sex and group[r["reference"]][1] == sex
               and r["probe"] != r["reference"]]
        mated = [group[r["probe"]][0] == group[r["reference"]][0] for r in sel]
        pos = [float(r["score"]) for r, m in zip(sel, mated) if m]
        neg = [float(r["score"]) for r, m in zip(sel, mated) if not m]
        if pos and neg:
            assert eer(cap.eer_view(groups), cap.genuine_scores(groups)).threshold == \
                oracle_eer_threshold(neg, pos)


def test_audit_command_max_tail_on_a_score_file(tmp_path):
    """`faceaudit audit --scores ... --max-tail 0`: the document's answers equal the default run's; the
    manifest states the windows; a negative budget is refused before any work."""
    import json

    from typer.testing import CliRunner

    from faceaudit.cli import app

    samples_csv, scores_csv = _score_file(tmp_path, seed=7)
    docs = {}
    for name, extra in (("full", []), ("cap", ["--max-tail", "0"])):
        res = CliRunner().invoke(app, [
            "audit", "--scores", str(scores_csv), "--samples", str(samples_csv), "--group", "sex",
            "--bins", "64", "--bootstrap", "0", "--fmr", "0.01", "--fmr", "0.05", "--quiet",
            "--ordered-pairs",
            "--json", str(tmp_path / f"{name}.json"), *extra])
        assert res.exit_code == 0, res.output
        docs[name] = json.loads((tmp_path / f"{name}.json").read_text())

    def answers(doc):
        return [(g.get("eer"), g.get("eer_threshold"), json.dumps(g.get("operating_points"), sort_keys=True),
                 json.dumps(g.get("at_global_threshold"), sort_keys=True))
                for g in [doc["overall"], *[e for v in doc["by_group"].values() for e in v]]]

    assert answers(docs["cap"]) == answers(docs["full"])
    assert docs["cap"]["manifest"]["tail_windows"]["kept_tail"] == 0
    assert "tail_windows" not in docs["full"]["manifest"]


def test_further_passes_show_progress_and_change_nothing(monkeypatch):
    """With progress on, each further pass has its own bar, advanced by the pairs of every block it
    visits; the result is the quiet run's."""
    from faceaudit.compare import assembly

    bars = []

    class Recorder:
        def __init__(self, enabled, total, description):
            self.enabled, self.total, self.description, self.done = enabled, total, description, 0
            bars.append(self)

        def advance(self, pairs, description=None):
            self.done += pairs

        def close(self):
            self.closed = True

    monkeypatch.setattr(assembly, "Progress", Recorder)
    x, samples = gaussian_set(n=200, seed=8)
    loud = compare_embeddings(x, samples, backend="numpy", max_tail=0, **{**KW, "progress": True})
    part = loud.meta["tail_windows"]["partition"]
    assert len(bars) == part["split_passes"] + 1 >= 2  # the splitting passes and the capture
    assert all(b.enabled and b.closed and b.done == b.total == 200 * 199 // 2 for b in bars), \
        [(b.enabled, b.done, b.total) for b in bars]
    assert [b.description for b in bars] == [f"further pass {k} (partition inside the bins)"
                                             for k in range(1, len(bars) + 1)]
    assert loud == compare_embeddings(x, samples, backend="numpy", max_tail=0, **KW)


# ----- hostile shapes: random tied and continuous scores, tiny bins and budgets, against brute force -------
from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_tied = st.lists(st.integers(0, 16).map(lambda v: v / 4), min_size=1, max_size=120)
_fine = st.lists(st.floats(0.0, 4.0, allow_nan=False, allow_subnormal=False), min_size=1, max_size=120)


@settings(max_examples=400, deadline=None)
@given(neg=st.one_of(_tied, _fine), pos=st.one_of(_tied, _fine), bins=st.integers(1, 12),
       groups=st.lists(st.integers(0, 1), min_size=12, max_size=12), max_tail=st.sampled_from([0, 1, 3, 30]),
       sub_bins=st.sampled_from([2, 3, 4, 16]), targets=st.sampled_from([[0.05], [0.0, 0.3], [0.1, 0.02]]))
def test_streamed_parts_equal_brute_force(neg, pos, bins, groups, max_tail, sub_bins, targets):
    """A streamed build (two_pass) whose tail budget binds: every subset's thresholds (both conventions),
    its EER and every cell's count at the whole set's thresholds equal brute force over the scores."""
    from faceaudit.build import two_pass
    from faceaudit.measures.verification import count_nonmated_at_least
    from faceaudit.scores import ImpostorView, uniform_edges

    pos, neg = pos[:12], neg[: 12 * 11 * 2 - 12]
    samples, i, j, s = _pairs(pos, neg, groups)
    subsets_ = [[0], [1], [0, 1]] if len(set(groups)) == 2 else [[0]]

    def read():
        for k in range(0, s.size, 5):
            yield i[k:k + 5], j[k:k + 5], s[k:k + 5]

    old, refine.SUB_BINS = refine.SUB_BINS, sub_bins
    try:
        dist = two_pass(read, samples, uniform_edges(0.0, 4.0, bins), targets, subsets_, max_tail=max_tail)
    finally:
        refine.SUB_BINS = old
    event("parts" if dist.windows is not None and dist.windows.refined else
          "whole bins" if dist.windows is not None else "tail fits")
    g, subj, G = samples.group_of_sample, samples.subject_of_sample, samples.n_groups
    mated = subj[i] == subj[j]
    for groups_ in subsets_:
        inside = np.isin(g[i], groups_) & np.isin(g[j], groups_)
        exact, genuine = ImpostorView.exact(s[inside & ~mated]), np.sort(s[inside & mated])
        cells = dist.cell_mask(groups_, groups_)
        if not exact.total:
            continue
        view = target_view(dist, cells, targets[0], dist.impostor_view(cells))
        for t in targets:
            view = target_view(dist, cells, t, dist.impostor_view(cells))
            for conv in ("highest", "lowest"):
                if conv == "lowest" and not genuine.size:
                    continue
                assert fmr_threshold(view, t, genuine, conv) == fmr_threshold(exact, t, genuine, conv)
            if len(groups_) == G:
                thr = fmr_threshold(view, t, genuine, "highest")
                counts, ok = dist.nonmated_at_least_by_cell(thr)
                cell = g[i] * G + g[j]
                want = np.bincount(cell[~mated & (s >= thr)], minlength=G * G)
                assert ok.all() and np.array_equal(counts.reshape(-1), want)
                assert count_nonmated_at_least(threshold_view(dist, cells, thr, dist.impostor_view(cells)),
                                               thr) == int((exact.tail >= thr).sum())
        if genuine.size:
            assert eer(dist.eer_view(groups_), genuine) == eer(exact, genuine)


def test_bands_are_kept_where_the_whole_bins_fit_the_budget():
    """Where the answers' whole bins fit the budget the assembly reads them from the main pass's bands: no
    further pass (a budget the bands pass but the bins do not was a needs pass over every block, found
    by bench/partition.py at 200,000 images with the default budget); the answers are the uncapped run's."""
    x, samples = gaussian_set(n=1200, seed=1)
    kw = {**KW, "bins": 256}
    full = compare_embeddings(x, samples, backend="numpy", **kw)
    cap = compare_embeddings(x, samples, backend="numpy", max_tail=20_000, **kw)
    assert cap.meta["passes"] == ["main"] and "partition" not in cap.meta["tail_windows"]
    assert cap.tail_score.size <= 20_000 < full.tail_score.size and not cap.windows.refined
    same_answers(cap, full, samples)


@settings(max_examples=40, deadline=None)
@given(bad=st.one_of(st.integers(max_value=-1), st.text("abcxyz -", max_size=5), st.booleans(),
                     st.sampled_from([2.5, -0.5, float("nan"), float("inf"), float("-inf"), 1e300 + 0.5j])))
def test_score_file_budget_outside_its_domain_is_a_named_error(bad):
    """load_score_file(max_tail=...) takes a whole number >= 0 or None; anything else is an OptionError
    before the file is read (never an IndexError from the cutoff search)."""
    from faceaudit.build import two_pass
    from faceaudit.errors import OptionError
    from faceaudit.scores import uniform_edges

    samples, i, j, s = _pairs([1.0, 2.0], [0.5, 0.25, 0.75], [0, 1] * 6)
    reads = []

    def read():
        reads.append(1)
        yield i, j, s

    with pytest.raises(OptionError, match="max_tail"):
        two_pass(read, samples, uniform_edges(0.0, 4.0, 8), [0.1], [[0, 1]], max_tail=bad)
    assert not reads
