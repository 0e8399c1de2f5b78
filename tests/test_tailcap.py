"""compare --max-tail: a contiguous tail capped to a budget, every answer below it read from the exact
scores of its histogram bin (tail windows). Every answer is checked against brute force over the full
score matrix and against the uncapped run of the same comparison."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_compare import lattice_set

from faceaudit.audit import audit
from faceaudit.compare import assembly, capped, compare_embeddings, prepass
from faceaudit.compare import plan as plan_module
from faceaudit.compare.capped import KeepRanges
from faceaudit.compare.npzfile import read_npz
from faceaudit.compare.store import (
    FORMAT,
    FORMAT_PARTS,
    FORMAT_WINDOWS,
    load_distributions,
    save_distributions,
)
from faceaudit.errors import InputError, NotExactError
from faceaudit.groups import group_subsets
from faceaudit.measures.verification import (
    WindowTooNarrow,
    count_nonmated_at_least,
    eer,
    fmr_threshold,
    global_fmr_thresholds,
)
from faceaudit.scores import ImpostorView, bin_index, uniform_edges
from faceaudit.tail_windows import target_bin, target_view, threshold_view

KW = {"progress": False, "block": 32, "reference_sample": 64}
TARGETS = (1e-3, 1e-2, 0.05)


@pytest.fixture(autouse=True, params=["whole", "parts"])
def windows_mode(request, monkeypatch):
    """Every cell with a histogram row and an estimated level (the test sets are small: otherwise every
    cell would be kept whole and nothing would be capped). Every test runs twice: with windows of whole
    bins (their total never counted as over the budget) and with the windows over the budget split into
    parts (compare/refine.py; the small budgets here always pass it)."""
    monkeypatch.setattr(prepass, "SMALL_CELL", 0)
    monkeypatch.setattr(plan_module, "default_cell_limit", lambda bins: 0)
    if request.param == "whole":
        monkeypatch.setattr(assembly, "window_total", lambda *a: 0)
    return request.param


def brute(x, samples):
    """Every non-mated pair i < j with its cell, and the mated scores with their probe group."""
    full = x.astype(np.float64) @ x.astype(np.float64).T  # exact: lattice vectors
    i, j = np.triu_indices(x.shape[0], k=1)
    s = full[i, j]
    subj, g = samples.subject_of_sample, samples.group_of_sample
    mated = subj[i] == subj[j]
    G = samples.n_groups
    return (s[~mated], g[i[~mated]] * G + g[j[~mated]]), (s[mated], g[i[mated]])


def subsets_of(samples):
    cols = samples.group_columns
    return list(group_subsets(samples, [c for r in range(1, len(cols) + 1)
                                        for c in itertools.combinations(cols, r)]).values())


def check_answers(dist, x, samples, targets=TARGETS):
    """Every threshold (both conventions), EER and count at the global thresholds, per subset and per
    cell, equal to brute force."""
    (non, cell), (gen, ggroup) = brute(x, samples)
    G = samples.n_groups
    overall = list(range(G))
    glob = {}
    for groups in [overall] + subsets_of(samples):
        cells = dist.cell_mask(groups, groups)
        in_sub = cells.reshape(-1)[cell]
        exact = ImpostorView.exact(non[in_sub])
        genuine = np.sort(gen[np.isin(ggroup, groups)])
        view = dist.impostor_view(cells)
        for t in targets:
            tv = target_view(dist, cells, t, view)
            for conv in ("highest", "lowest"):
                want = fmr_threshold(exact, t, genuine, conv)
                assert fmr_threshold(tv, t, genuine, conv) == want, (groups, t, conv)
            thr = fmr_threshold(tv, t, genuine, "highest")
            assert count_nonmated_at_least(tv, thr) == count_nonmated_at_least(exact, thr)
            if groups == overall:
                glob[t] = thr
        if genuine.size:
            assert eer(dist.eer_view(groups), genuine) == eer(exact, genuine), groups
        for t, thr in glob.items():  # every subset at the global thresholds
            v = threshold_view(dist, cells, thr, view)
            assert count_nonmated_at_least(v, thr) == int((non[in_sub] >= thr).sum()), (groups, t)
    for thr in glob.values():  # every cell at the global thresholds
        counts, ok = dist.nonmated_at_least_by_cell(thr)
        assert ok.all()
        np.testing.assert_array_equal(counts.reshape(-1), np.bincount(cell[non >= thr], minlength=G * G))


def same_audit(a, b):
    """The answers of two audits (bootstrap off) equal: EERs, operating points, global points, cross."""
    assert a.overall.eer == b.overall.eer and a.overall.operating_points == b.overall.operating_points
    for k in a.by_group:
        for ga, gb in zip(a.by_group[k], b.by_group[k], strict=True):
            assert (ga.eer, ga.eer_threshold) == (gb.eer, gb.eer_threshold)
            assert ga.operating_points == gb.operating_points
            assert ga.at_global_threshold == gb.at_global_threshold
    assert a.cross_group_fmr == b.cross_group_fmr
    assert a.cards == b.cards and a.differentials == b.differentials


@pytest.mark.parametrize("max_tail", [0, 150, 1500])
def test_capped_answers_equal_brute_force_and_the_uncapped_run(max_tail):
    x, samples = lattice_set(n=150)
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=max_tail, **KW)
    assert full.windows is None and cap.windows is not None
    assert cap.tail_score.size <= max_tail < full.tail_score.size
    info = cap.meta["tail_windows"]
    assert info["required_tail"] == full.tail_score.size and info["kept_tail"] == cap.tail_score.size
    assert info["window_scores"] == cap.windows.n_scores and "bootstrap" in info["note"]
    assert cap.meta["settings"]["max_tail"] == max_tail
    # the histogram, the mated scores and the tail above the capped cutoffs are the uncapped run's
    np.testing.assert_array_equal(cap.hist_rows, full.hist_rows)
    np.testing.assert_array_equal(cap.genuine_score, full.genuine_score)
    assert cap.with_tail_cutoff(np.maximum(cap.tail_cutoff, full.tail_cutoff)).tail_score.size == \
        full.with_tail_cutoff(np.maximum(cap.tail_cutoff, full.tail_cutoff)).tail_score.size
    check_answers(cap, x, samples)
    check_answers(full, x, samples)
    for conv in ("highest", "lowest"):  # the identify command's global thresholds
        assert global_fmr_thresholds(cap, TARGETS, conv) == global_fmr_thresholds(full, TARGETS, conv)
    for conv in ("highest", "lowest"):
        same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0, convention=conv),
                   audit(cap, fmr_targets=TARGETS, bootstrap=0, convention=conv))


@pytest.mark.parametrize("seed", [0, 3])
def test_fine_bins_sparse_tails_lowest_convention(seed):
    """65,536 bins over lattice scores (steps of 1/64): most bins empty, answers and their neighbours far
    apart, mated scores between two non-mated values: the same answers capped and uncapped."""
    x, samples = lattice_set(n=150, seed=seed)
    kw = {**KW, "bins": 1 << 16, "fmr_targets": TARGETS}
    full = compare_embeddings(x, samples, backend="numpy", **kw)
    cap = compare_embeddings(x, samples, backend="numpy", max_tail=0, **kw)
    check_answers(cap, x, samples)
    for conv in ("highest", "lowest"):
        same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0, convention=conv),
                   audit(cap, fmr_targets=TARGETS, bootstrap=0, convention=conv))


def test_a_budget_that_fits_changes_nothing():
    x, samples = lattice_set(n=150)
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    fits = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS,
                              max_tail=full.tail_score.size, **KW)
    assert fits == full and fits.windows is None and "tail_windows" not in fits.meta


def test_bootstrap_below_the_capped_tail_is_stated_not_invented():
    x, samples = lattice_set(n=150)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=0, **KW)
    r = audit(cap, fmr_targets=TARGETS, bootstrap=50)
    for p in r.overall.operating_points:  # every threshold lies below an empty tail
        assert p.fmr.bootstrap is None and p.fnmr.bootstrap is not None
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0), audit(cap, fmr_targets=TARGETS, bootstrap=0))


def _missing_everything(*args, **kw):
    """An estimate whose ranges hold only the top bin of every cell: every need is missed."""
    est_dist = args[0]
    B = est_dist.n_bins
    n = est_dist.n_groups ** 2
    return KeepRanges.of(np.arange(n), np.full(n, B - 1), np.full(n, B), B)


def test_missed_bins_get_a_capture_pass_and_stay_exact(monkeypatch, windows_mode):
    x, samples = lattice_set(n=150, seed=4)
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    ref = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=100, **KW)
    monkeypatch.setattr(prepass, "estimate_keep", _missing_everything)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=100, **KW)
    what = "needed bins" if windows_mode == "whole" else "tail's bins"
    assert cap.meta["passes"][1].startswith(f"capture of the {what} in {samples.n_groups ** 2} cell(s)")
    assert cap == ref  # the result depends on the exact histogram only, not on what the pass kept
    check_answers(cap, x, samples)
    same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0), audit(cap, fmr_targets=TARGETS, bootstrap=0))


def test_estimate_and_exact_disagree_on_whether_the_tail_fits(monkeypatch):
    x, samples = lattice_set(n=150, seed=5)
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    real = capped.estimate_keep
    # estimated to pass a budget of 0 (the pass cuts its captures) though the exact tail fits
    monkeypatch.setattr(prepass, "estimate_keep", lambda *a: real(*a[:-2], 0, a[-1]))
    cut = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    assert cut == full and cut.windows is None
    # estimated to fit (the pass keeps everything it captures) though the exact tail does not
    monkeypatch.setattr(prepass, "estimate_keep", lambda *a: None)
    ref = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=50, **KW)
    monkeypatch.setattr(prepass, "estimate_keep", real)
    assert ref == compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=50, **KW)


def test_backends_agree_bit_for_bit_with_windows():
    x, samples = lattice_set(n=150, seed=9)
    d_np = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=80, **KW)
    assert d_np.windows is not None
    d_np2 = compare_embeddings(x, samples, backend="numpy", threads=2, fmr_targets=TARGETS, max_tail=80, **KW)
    assert d_np2 == d_np
    if pytest.importorskip("torch", reason="torch is not installed") is not None:
        d_t = compare_embeddings(x, samples, backend="torch", device="cpu", fmr_targets=TARGETS, max_tail=80,
                                 **KW)
        assert d_t == d_np


def test_dask_agrees_bit_for_bit_with_windows():
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    x, samples = lattice_set(n=150, seed=9)
    d_np = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=80, **KW)
    d_dask = compare_embeddings(x, samples, backend="dask", n_workers=2, fmr_targets=TARGETS, max_tail=80,
                                **KW)
    assert d_dask == d_np


def test_store_keeps_the_windows_and_the_audit_reads_them(tmp_path, windows_mode):
    x, samples = lattice_set(n=150, seed=6)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=60, **KW)
    full = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, **KW)
    save_distributions(cap, tmp_path / "cap.fadist")
    save_distributions(full, tmp_path / "full.fadist")
    back = load_distributions(tmp_path / "cap.fadist")
    assert back == cap and back.windows == cap.windows
    assert back.meta["tail_windows"] == cap.meta["tail_windows"]
    # a run without windows still writes /4, byte-for-byte as before
    assert load_distributions(tmp_path / "full.fadist").meta is not None
    plain, windowed = (read_npz(tmp_path / n) for n in ("full.fadist", "cap.fadist"))
    assert json.loads(str(plain["__json__"]))["format"] == FORMAT
    assert not any(n.startswith("window_") for n in plain)
    assert json.loads(str(windowed["__json__"]))["format"] == (FORMAT_WINDOWS if windows_mode == "whole"
                                                               else FORMAT_PARTS)
    same_audit(audit(full, fmr_targets=TARGETS, bootstrap=0), audit(back, fmr_targets=TARGETS, bootstrap=0))
    # a merge drops the windows (as it drops score files' EER windows): never a silent answer
    merged = back + back
    assert merged.windows is None


def test_raising_the_cutoff_of_a_capped_result_answers_or_refuses():
    x, samples = lattice_set(n=150, seed=6)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=60, **KW)
    higher = cap.with_tail_cutoff(np.full(cap.tail_cutoff.shape, 0.5))
    try:
        check_answers(higher, x, samples)
    except NotExactError:
        pass  # bins between the old and the new cutoff are held nowhere: refused, never bin-resolved


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_compare import lattice_set
    from faceaudit.compare import compare_embeddings, prepass
    from faceaudit.compare import plan as plan_module
    prepass.SMALL_CELL = 0
    plan_module.default_cell_limit = lambda bins: 0
    x, samples = lattice_set(n=200, seed=17)
    compare_embeddings(x, samples, block=16, chunk_pairs=200, reference_sample=64, progress=False,
                       fmr_targets=(1e-3, 1e-2, 0.05), max_tail=100,
                       checkpoint_dir=sys.argv[1], on_chunk=lambda k: time.sleep(0.05))
""")


def test_killed_capped_run_resumes_bit_identical(tmp_path):
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(ckpt)], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(ckpt.glob("chunk-*.npz"))) < 5:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and len(list(ckpt.glob("chunk-*.npz"))) >= 5
    x, samples = lattice_set(n=200, seed=17)
    kw = {"block": 16, "chunk_pairs": 200, "reference_sample": 64, "progress": False,
          "fmr_targets": (1e-3, 1e-2, 0.05), "max_tail": 100}
    seen = []
    resumed = compare_embeddings(x, samples, checkpoint_dir=ckpt, resume=True, on_chunk=seen.append, **kw)
    assert 0 < len(seen) < len(list(ckpt.glob("chunk-*.npz")))
    fresh = compare_embeddings(x, samples, **kw)
    assert resumed.windows is not None and resumed == fresh


@pytest.mark.parametrize("bad", [-1, 2.5, "many", None, True])
def test_max_tail_outside_its_domain_is_a_named_error(bad):
    x, samples = lattice_set(n=40)
    with pytest.raises(InputError, match="max_tail"):
        compare_embeddings(x, samples, backend="numpy", max_tail=bad, **KW)


# ----- the window views themselves ---------------------------------------------------------------
def _window(scores: np.ndarray, edges: np.ndarray, b: int) -> ImpostorView:
    """The view of bin b built from the full scores, as a capped tail's window holds it."""
    s = np.sort(scores)
    k = bin_index(s, edges)
    inside, below, above = s[k == b], s[k < b], s[k > b]
    return ImpostorView(tail=inside, n_below=below.size, below_max=below.max() if below.size else -np.inf,
                        n_above=above.size, above_min=above.min() if above.size else np.inf)


@pytest.mark.parametrize("seed", range(6))
def test_threshold_from_the_bin_of_the_answer_equals_the_full_computation(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(0, 1, 3000), int(rng.integers(1, 4)))  # ties and empty bins
    genuine = np.sort(np.round(rng.normal(2.5, 1, 300), 2))
    edges = uniform_edges(-5, 5, int(rng.choice([16, 64, 1000])))
    hist = np.bincount(bin_index(scores, edges), minlength=edges.size - 1)
    exact = ImpostorView.exact(scores)
    for t in (1e-3, 3e-3, 0.01, 0.2, 0.5, 0.9):
        b = target_bin(hist, t)
        nxt = np.flatnonzero(hist[b + 1:])
        for conv in ("highest", "lowest"):
            want = fmr_threshold(exact, t, genuine, conv)
            assert fmr_threshold(_window(scores, edges, b), t, genuine, conv) == want
        thr = fmr_threshold(exact, t, genuine, "highest")
        # the threshold lies in the answer's bin or the next non-empty one; both count it exactly
        tb = int(bin_index(np.array([thr]), edges)[0])
        assert tb == b or (nxt.size and tb == b + 1 + nxt[0])
        assert count_nonmated_at_least(_window(scores, edges, tb), thr) == int((scores >= thr).sum())
        if nxt.size:  # a window above the answer's bin refuses, never guesses
            with pytest.raises(NotExactError):
                fmr_threshold(_window(scores, edges, b + 1 + int(nxt[0])), t, genuine, "highest")
        prev = np.flatnonzero(hist[:b])
        if prev.size:  # and so does one below it
            with pytest.raises(WindowTooNarrow):
                fmr_threshold(_window(scores, edges, int(prev[-1])), t, genuine, "highest")


def test_commands_compare_with_max_tail_then_audit_the_file(tmp_path):
    """`faceaudit compare --max-tail 0` then `faceaudit audit --distributions`: the document's thresholds,
    EERs and global-threshold rates are the uncapped file's; the capped one states its windows."""
    from typer.testing import CliRunner

    from faceaudit.cli import app

    x, samples = lattice_set(n=150, seed=2)
    (tmp_path / "s.csv").write_text("sample_id,subject_id,sex,race\n" + "".join(
        f"{samples.sample_ids[i]},{samples.subject_ids[samples.subject_of_sample[i]]},"
        + ",".join(samples.group_labels[samples.group_of_sample[i]]) + "\n" for i in range(150)))
    np.save(tmp_path / "e.npy", x)
    docs = {}
    for name, extra in (("full", []), ("cap", ["--max-tail", "0"])):
        out = tmp_path / f"{name}.fadist"
        res = CliRunner().invoke(app, [
            "compare", "--embeddings", str(tmp_path / "e.npy"), "--samples", str(tmp_path / "s.csv"),
            "--group", "sex", "--group", "race", "--out", str(out), "--backend", "numpy", "--quiet",
            "--fmr", "0.001", "--fmr", "0.01", "--fmr", "0.05", *extra])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(app, ["audit", "--distributions", str(out), "--fmr", "0.01", "--fmr", "0.05",
                                       "--bootstrap", "0", "--json", str(tmp_path / f"{name}.json"),
                                       "--report", str(tmp_path / f"{name}.html")])
        assert res.exit_code == 0, res.output
        assert (tmp_path / f"{name}.html").stat().st_size > 10_000
        docs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert "answer bins" in res.output or load_distributions(tmp_path / "cap.fadist").windows is not None
    full, cap = docs["full"], docs["cap"]
    assert cap["manifest"]["tail_windows"]["kept_tail"] == 0
    assert "tail_windows" not in full["manifest"]

    def answers(doc):
        out = []
        for g in [doc["overall"], *[e for v in doc["by_group"].values() for e in v]]:
            out.append((g.get("eer"), g.get("eer_threshold"),
                        json.dumps(g.get("operating_points"), sort_keys=True),
                        json.dumps(g.get("at_global_threshold"), sort_keys=True)))
        return out, json.dumps(doc.get("cross_group_fmr"), sort_keys=True)

    assert answers(cap) == answers(full)


@pytest.mark.parametrize("damage", ["count", "bin", "order", "neighbour", "cell", "start"])
def test_inconsistent_windows_in_a_file_are_a_named_error(tmp_path, damage):
    """A .fadist whose windows disagree with its histogram (digest recomputed, as a crafted or buggy writer
    would) is refused on load, never audited."""
    from faceaudit.compare.errors import DistributionsFileError
    from faceaudit.compare.npzfile import write_npz
    from faceaudit.compare.store import _arrays_of

    x, samples = lattice_set(n=150, seed=6)
    cap = compare_embeddings(x, samples, backend="numpy", fmr_targets=TARGETS, max_tail=60, **KW)
    a = _arrays_of(cap)
    full_window = int(np.flatnonzero(np.diff(a["window_start"]) >= 2)[0])
    s0 = int(a["window_start"][full_window])
    if damage == "count":
        a["window_start"] = a["window_start"].copy()
        a["window_start"][full_window + 1:] -= 1
        a["window_score"], a["window_probe"], a["window_reference"] = (
            np.delete(a[k], s0) for k in ("window_score", "window_probe", "window_reference"))
    elif damage == "bin":
        a["window_score"] = a["window_score"].copy()
        a["window_score"][s0] += 0.5
    elif damage == "order":
        a["window_score"] = a["window_score"].copy()
        a["window_score"][s0:s0 + 2] = a["window_score"][s0:s0 + 2][::-1] - np.array([0.0, 1e-9])
    elif damage == "neighbour":
        a["window_below_max"] = a["window_below_max"].copy()
        a["window_below_max"][full_window] = np.inf
    elif damage == "cell":
        a["window_cell"] = a["window_cell"].copy()
        a["window_cell"][-1] = 10_000
    else:
        a["window_start"] = a["window_start"][:-1]
    write_npz(tmp_path / "bad.fadist", a)
    with pytest.raises(DistributionsFileError):
        load_distributions(tmp_path / "bad.fadist")
