"""The fused Triton GEMM + histogram + capture kernel against the numpy kernel and a brute-force oracle.

Where CUDA is present (``python3 -m pytest tests/test_triton_kernel.py`` on a GPU machine) the tests
run the compiled kernel on the GPU, in every mode: the main pass, the capture-only second pass
(TAIL_ONLY) and the below-tail rescan (MAX_BELOW, the kernel's float ``atomic_max`` and loop-carried
scalar). Without CUDA the kernel runs in Triton's interpreter on CPU torch tensors: ``TRITON_INTERPRET=1``
is set here, before triton is first imported, only then (set it yourself to interpret on a GPU
machine). Skipped when triton or torch is absent.

What is exact and what is not. On lattice sets (entries +-1/8, d = 64) every partial sum is exact, so
the kernel's scores are numpy's bit for bit, every score lies on a bin edge (ties), and the whole
ScoreDistributions must equal numpy's and the oracle's. On Gaussian sets the kernel sums in another
order than numpy's BLAS: there the histogram must equal the binning of the kernel's *own* scores
exactly (every non-mated score is captured), every pair must come back once, and the scores must agree
with numpy's within the float32 GEMM bound; the pairs whose bin differs from numpy's are counted, and
each of them must have an edge between the two scores.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the fused kernel is not tested")
if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first import of triton
pytest.importorskip("triton", reason="triton is not installed: the fused Triton kernel is not tested")

from faceaudit.compare import (  # noqa: E402
    assembly,
    compare_embeddings,  # noqa: E402
    prepass,
)
from faceaudit.compare.backends import torch_backend as tb  # noqa: E402
from faceaudit.compare.backends import triton_kernel as tk  # noqa: E402
from faceaudit.compare.backends.torch_backend import TorchBackend  # noqa: E402
from faceaudit.compare.errors import CheckpointError  # noqa: E402
from faceaudit.compare.inputs import prepare_embeddings  # noqa: E402
from faceaudit.compare.kernel import BlockPartial, gemm_error_bound, scaled_references  # noqa: E402
from faceaudit.compare.plan import Planner, make_chunks  # noqa: E402
from faceaudit.scores import SampleIndex, bin_index  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_compare import check_equal, lattice_set  # noqa: E402

if tk.interpreting():
    DEVICE = "cpu"
    if tk.interpreter_problem(torch) is not None:
        pytest.skip(tk.interpreter_problem(torch), allow_module_level=True)
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("triton was imported without TRITON_INTERPRET=1 and there is no CUDA device",
                allow_module_level=True)

#: few blocks: the interpreter costs ~20 ms per 16 x 16 tile
SETTINGS = {"progress": False, "block": 64, "reference_sample": 64}


@pytest.fixture(autouse=True)
def every_cell_a_row(monkeypatch):
    """The fused kernel bins every cell: these small sets would keep their cells whole (no row, the
    fused kernel declines), so every cell with pairs gets a row here, as in a large run."""
    from faceaudit.compare import plan as plan_module

    monkeypatch.setattr(plan_module, "default_cell_limit", lambda bins: 0)


@pytest.fixture
def fused(monkeypatch):
    monkeypatch.setenv("FACEAUDIT_TORCH_KERNEL", "triton")


def test_selection(monkeypatch):
    x = np.eye(4, dtype=np.float32)
    monkeypatch.setenv("FACEAUDIT_TORCH_KERNEL", "torch")
    assert TorchBackend(x, device=DEVICE).kernel == "torch"
    assert TorchBackend(x, device=DEVICE, kernel="triton").kernel == "triton"
    monkeypatch.setenv("FACEAUDIT_TORCH_KERNEL", "triton")
    b = TorchBackend(x, device=DEVICE)
    assert b.kernel == "triton" and "-triton[" in b.score_identity
    assert "Triton" in b.device_name
    monkeypatch.setenv("FACEAUDIT_TORCH_KERNEL", "auto")
    assert TorchBackend(x, device="cpu").kernel == "torch"  # auto: the fused kernel on CUDA only


def two_groups(n, seed):
    """The lattice set with one attribute of two values (by subject)."""
    x, samples = lattice_set(n=n, seed=seed, groups=False)
    subj = samples.subject_of_sample
    sex = np.array(["f", "m"])[subj % 2]
    return x, type(samples).from_columns(samples.sample_ids, samples.subject_ids[subj], {"sex": sex})


def low_padding_set():
    """Two groups in one block whose padding stays under MAX_PADDING: 200 samples and 16-row tiles in
    the interpreter (1.08x), 1,024 samples and 64-row tiles on a GPU (1.13x)."""
    n = 200 if DEVICE == "cpu" else 1024
    x, samples = two_groups(n, seed=5)
    tile = 16 if DEVICE == "cpu" else AUTO_CONFIG.pad
    assert tk.padded_pair_ratio(samples.group_of_sample, samples.n_groups, n, tile) <= tb.MAX_PADDING
    return x, samples, n


AUTO_CONFIG = tk.TileConfig(64, 64, 32, 4, 2)  # on a GPU: 64-row padding


class AutoHere(TorchBackend):
    """``kernel=auto`` as on CUDA, on whatever DEVICE is (on the CPU auto never takes the fused kernel)."""

    def __init__(self, emb, **kw):
        opts = {"config": AUTO_CONFIG} if DEVICE == "cuda" else None
        super().__init__(emb, **{**kw, "kernel": "triton", "triton_options": opts})
        self.requested = "auto"


@pytest.fixture
def auto_here(monkeypatch):
    monkeypatch.setattr(tb, "TorchBackend", AutoHere)  # what torch_backend.create builds
    monkeypatch.setattr(tk.FusedPairs, "PROBE_SAMPLES", 40)  # the interpreter: ~20 ms a tile


# ----- the choice of kernel ---------------------------------------------------------------------------
def test_choose_kernel_is_a_pure_function():
    kw = {"block": 1024, "n_groups": 8, "tile": 128}
    assert tb.choose_kernel("torch", plan_problem=None, padding=1.0, **kw) == (False, None)
    assert tb.choose_kernel("auto", plan_problem=None, padding=1.0, **kw) == (True, None)
    assert tb.choose_kernel("auto", plan_problem=None, padding=tb.MAX_PADDING, **kw) == (True, None)
    use, note = tb.choose_kernel("auto", plan_problem=None, padding=2.15, **kw)
    assert not use and "2.15x" in note and "block 1,024" in note and "not used" in note
    use, note = tb.choose_kernel(
        "triton", plan_problem=None, padding=2.15, **kw
    )  # forced: runs, says what it costs
    assert use and "2.15x" in note
    for requested in ("auto", "triton"):
        use, note = tb.choose_kernel(requested, plan_problem="power-of-two bins only", padding=1.0, **kw)
        assert not use and "power-of-two bins only" in note


def test_padded_pair_ratio():
    """The ratio counts exactly the pairs GroupLayout's work items visit; the command's default block
    pads a lot (the reviewer's 2.15x for 8 groups, 9.1x for 24), large blocks little."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, 5, 1000)
    for block, tile in ((300, 32), (128, 16), (1000, 64)):
        lay = tk.GroupLayout(group, 5, block=block, tile=tile)
        nb = -(-1000 // block)
        blocks = np.array([(bi, bj) for bi in range(nb) for bj in range(bi, nb)])
        visited = int((lay.items(blocks, None, 1 << 30)[:, 7].astype(np.int64) * tile * tile).sum())
        sizes = [min(block, 1000 - b * block) for b in range(nb)]
        real = sum(sizes[bi] * sizes[bj] for bi, bj in blocks)
        assert tk.padded_pair_ratio(group, 5, block, tile) == pytest.approx(visited / real, rel=1e-12)
    n = 1 << 16
    for G, lo, hi in ((8, 2.0, 2.3), (24, 8.5, 9.7)):
        group = rng.integers(0, G, n)
        assert lo < tk.padded_pair_ratio(group, G, 1024, 128) < hi
    assert tk.padded_pair_ratio(rng.integers(0, 8, n), 8, 32768, 128) < 1.1


def test_auto_falls_back_on_padding(auto_here):
    """auto: blocks of 64 samples in 6 groups, padded to 16-row tiles, visit ~2x the pairs: torch kernels,
    and the result says why; forced, the fused kernel runs and the note gives the cost."""
    x, samples = lattice_set(n=120, seed=5)
    ref = compare_embeddings(x, samples, backend="numpy", **SETTINGS)
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, **SETTINGS)
    assert "torch kernels" in dist.meta["run"]["device"] and "padding" in dist.meta["run"]["device"]
    assert "fused Triton kernel [" not in dist.meta["run"]["device"]
    assert dist == ref
    b = AutoHere(x, device=DEVICE)
    run = Planner(prepare_embeddings(x), samples, metric="cosine", bins=4096, block=64, top_k=0,
                  fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**9)
    assert "-auto[" in b.score_identity  # before the choice: the rule
    assert tb.describe_score_identity(b.score_identity).startswith("kernel=auto")
    assert b.prepare(run.plan) is False
    assert b.score_identity == b._torch_identity  # after: the kernel that computes the scores
    assert b.kernel_meta["choices"][0]["padding"] > tb.MAX_PADDING


def test_auto_probes_then_takes_the_fused_kernel(auto_here):
    """Two groups in one block: little padding, the probe passes, the fused kernel runs."""
    x, samples, block = low_padding_set()
    kw = {**SETTINGS, "block": block}
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, **kw)
    assert (
        "fused Triton kernel [" in dist.meta["run"]["device"] and "not used" not in dist.meta["run"]["device"]
    )
    check_equal(dist, x, samples)
    b = AutoHere(x, device=DEVICE)
    run = Planner(prepare_embeddings(x), samples, metric="cosine", bins=4096, block=block,
                  top_k=0, fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**9)
    assert b.prepare(run.plan) is True
    assert "-triton[" in b.score_identity and triton_version() in b.score_identity
    assert b.kernel_meta["choices"][0]["probe"].startswith("probe passed")


def test_auto_falls_back_when_the_probe_fails(auto_here, monkeypatch):
    def broken(self, plan, m=None):
        raise RuntimeError("ptxas fatal: simulated\nsecond line")

    monkeypatch.setattr(tk.FusedPairs, "probe", broken)
    x, samples, block = low_padding_set()
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, **{**SETTINGS, "block": block})
    assert (
        "torch kernels" in dist.meta["run"]["device"]
        and "probe failed (RuntimeError: ptxas fatal" in dist.meta["run"]["device"]
    )
    check_equal(dist, x, samples)


def test_probe_checks_every_mode(monkeypatch):
    x, samples = gaussian_set(n=150, seed=3)
    run = Planner(prepare_embeddings(x), samples, metric="cosine", bins=4096, block=150, top_k=0,
                  fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**9)
    fused = tk.FusedPairs(torch, torch.from_numpy(run.emb).to(DEVICE), precision="fp32")
    assert fused.probe(run.plan, m=40).startswith("probe passed: 40 samples, 780 pairs")
    assert not fused._layouts and not fused._plans  # the probe's tiny plan is not kept
    real_fetch = tk.FusedPairs._fetch

    def one_more(self, launch, count=None):  # a histogram that is off by one pair
        n, out, hist = real_fetch(self, launch, count)
        hist = hist.copy()
        hist.flat[0] += 1
        return n, out, hist

    monkeypatch.setattr(tk.FusedPairs, "_fetch", one_more)
    with pytest.raises(AssertionError, match="histogram"):
        fused.probe(run.plan, m=40)


def triton_version():
    import triton

    return triton.__version__


def test_score_identity_names_what_decides_the_scores(tmp_path, fused, monkeypatch):
    x, samples = lattice_set(n=60, seed=2)
    a = TorchBackend(x, device=DEVICE, kernel="triton")
    cfg = a.fused.config
    assert f"tiles {cfg.bm}x{cfg.bn}x{cfg.bk}" in a.score_identity and triton_version() in a.score_identity
    assert a.fused.gpu in a.score_identity
    other = tk.TileConfig(cfg.bm, cfg.bn, cfg.bk * 2, cfg.num_warps, cfg.num_stages)
    b = TorchBackend(x, device=DEVICE, kernel="triton", triton_options={"config": other})
    assert b.score_identity != a.score_identity
    assert "fused Triton kernel" in tb.describe_score_identity(a.score_identity)
    assert "torch kernels" in tb.describe_score_identity(
        TorchBackend(x, device=DEVICE, kernel="torch").score_identity
    )
    # a checkpoint of the fused kernel is not resumed by the torch kernels
    kw = {**SETTINGS, "checkpoint_dir": tmp_path / "ckpt"}
    compare_embeddings(x, samples, backend="torch", device=DEVICE, **kw)
    monkeypatch.setenv("FACEAUDIT_TORCH_KERNEL", "torch")
    with pytest.raises(CheckpointError) as err:
        compare_embeddings(x, samples, backend="torch", device=DEVICE, resume=True, **kw)
    if "scores from" in str(err.value):  # an engine that records which kernel wrote the checkpoint names it
        assert "fused Triton kernel" in str(err.value) and "FACEAUDIT_TORCH_KERNEL=triton" in str(err.value)


@pytest.mark.parametrize("levels", ["small cells whole", "estimated levels, the other histogram path"])
def test_lattice_equals_numpy_and_oracle(fused, monkeypatch, levels):
    """Scores exact in any order, all on bin edges: the whole result equals numpy's and the oracle's."""
    if levels != "small cells whole":
        monkeypatch.setattr(prepass, "SMALL_CELL", 0)
        monkeypatch.setattr(tk, "SMEM_HISTOGRAM", not tk.SMEM_HISTOGRAM)  # the other histogram path
    x, samples = lattice_set(seed=11)
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, **SETTINGS)
    assert "Triton" in dist.meta["run"]["device"]
    check_equal(dist, x, samples)
    ref = compare_embeddings(x, samples, backend="numpy", **SETTINGS)
    assert dist == ref
    assert dist.probe_summary == ref.probe_summary


def test_half_of_the_scores_on_edges_and_bf16(fused):
    """bins=64: x = 32 * k/64, half the scores on an edge, half mid-bin; bf16 inputs (the lattice's
    values are bfloat16 numbers, so bf16 must give the same result)."""
    x, samples = lattice_set(n=120, seed=4)
    ref = compare_embeddings(x, samples, backend="numpy", bins=64, **SETTINGS)
    for precision in ("fp32", "bf16"):
        dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, bins=64, precision=precision,
                                  **SETTINGS)
        check_equal(dist, x, samples)
        assert dist == ref


def test_second_pass_and_rescan(fused, monkeypatch):
    """Levels estimated too high: the capture-only second pass and the below-tail rescan run in the
    fused kernel (modes TAIL_ONLY and MAX_BELOW) and the result stays exact."""
    x, samples = lattice_set(n=120, seed=7)
    G = samples.n_groups
    high = np.full((G, G), -np.inf)
    high[0, :] = 0.984375
    monkeypatch.setattr(prepass, "cell_levels", lambda *a: high.copy())
    monkeypatch.setattr(assembly, "lower_level", lambda edges, hist, T: T)
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, **SETTINGS)
    assert dist.meta["passes"][1].startswith(f"capture below the required cutoff in {G} cell(s)")
    assert any(p.startswith("rescan") for p in dist.meta["passes"])
    check_equal(dist, x, samples)


def test_unsupported_plans_fall_back_to_torch_kernels(fused):
    x, samples = lattice_set(n=60, seed=2)
    dist = compare_embeddings(x, samples, backend="torch", device=DEVICE, bins=1000, **SETTINGS)
    assert (
        "torch kernels" in dist.meta["run"]["device"]
        and "fused Triton kernel not used" in dist.meta["run"]["device"]
    )
    assert "fused Triton kernel [" not in dist.meta["run"]["device"]
    check_equal(dist, x, samples)


# ----- the kernel's raw output on real-valued scores ------------------------------------------------
def gaussian_set(n=260, d=48, seed=5):
    """Clustered unit vectors in 4 groups; two non-mated exact duplicates and an exact opposite (scores
    1 and -1: the clipped outer bins); subjects with 1 to 6 samples."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 90, n)
    centre = rng.standard_normal((90, d))
    x = centre[subj] + 1.0 * rng.standard_normal((n, d))
    subj[-3:] = [1000, 1001, 1002]
    x[-2] = x[-3]  # another subject, the same vector: a non-mated score of (about) 1
    x[-1] = -x[-3]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    samples = SampleIndex.from_columns(np.arange(n), subj, {"grp": np.array(list("abcd"))[subj % 4]})
    return x, samples


def kernel_run(x, samples, *, bins=4096, block=96, chunk_pairs=6000, capacity=1 << 16, precision="fp32",
               config=None, smem_histogram=None):
    """The engine's plan with every non-mated pair captured; the fused kernel's chunks summed."""
    emb = prepare_embeddings(x)
    run = Planner(emb, samples, metric="cosine", bins=bins, block=block, top_k=0,
                  fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**9)
    G, n = run.G, run.n
    run.set_capture(np.full((G, G), -np.inf), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32))
    chunks = make_chunks(run.blocks, block, n, chunk_pairs)
    t = torch.from_numpy(emb).to(DEVICE)
    if precision == "bf16":
        t = t.to(torch.bfloat16).to(torch.float32)
    fused = tk.FusedPairs(torch, t, precision=precision, capacity=capacity, config=config,
                          smem_histogram=smem_histogram)
    parts = [p for _, p in fused.run_chunks(run.plan, chunks, range(len(chunks)))]
    return run, fused, BlockPartial.sum(parts, run.plan.n_slots), len(chunks)


def numpy_scores(run, i, j):
    """The numpy kernel's float32 x of pairs (i, j), from its own block GEMMs."""
    plan, emb, b = run.plan, run.emb, run.block
    scaled = scaled_references(emb, plan)
    out = np.empty(i.size, np.float32)
    bi, bj = i // b, j // b
    for key in np.unique(bi * 10**6 + bj):
        m = (bi * 10**6 + bj) == key
        r, c = int(key // 10**6), int(key % 10**6)
        xb = emb[r * b : (r + 1) * b] @ scaled[c * b : (c + 1) * b].T
        out[m] = xb[i[m] - r * b, j[m] - c * b]
    return out


@pytest.mark.parametrize("smem_histogram, mask", [(True, True), (True, False), (False, None)],
                         ids=["tl.histogram mask", "tl.histogram sentinel", "global atomics"])
def test_raw_kernel_on_gaussian_scores(smem_histogram, mask, monkeypatch):
    """Every histogram path: tl.histogram (shared memory, Triton >= 3.8) with mask= (Triton >= 3.4) or an
    out-of-range sentinel bin, and one global atomic per pair into replicated histograms (older Triton)."""
    if mask is not None:
        if mask and not tk.HIST_MASK:
            pytest.skip(f"tl.histogram has no mask= in triton {triton_version()}")
        monkeypatch.setattr(tk, "HIST_MASK", mask)
    x, samples = gaussian_set()
    run, fused, total, n_chunks = kernel_run(x, samples, smem_histogram=smem_histogram)
    plan, n, G, B = run.plan, run.n, run.G, run.plan.n_bins
    assert fused.launches == n_chunks and fused.reruns == 0
    subj, g = samples.subject_of_sample, samples.group_of_sample
    # every non-mated pair i < j captured exactly once, every mated pair returned once
    i, j, xk = total.cap_i, total.cap_j, total.cap_x
    assert (i < j).all() and (subj[i] != subj[j]).all()
    iu, ju = np.triu_indices(n, k=1)
    nonmated = subj[iu] != subj[ju]
    assert i.size == int(nonmated.sum())
    assert np.array_equal(np.unique(i * n + j), np.sort(iu[nonmated] * n + ju[nonmated]))
    assert total.gen_x.size == int((~nonmated).sum()) == plan.mated_i.size
    # the histogram is exactly bin_index of the kernel's own scores (float64 score = x / scale)
    hist = plan.slots_to_hist(total.slots)
    bins_k = bin_index(xk.astype(np.float64) / plan.scale, run.edges)
    expected = np.zeros((G, G, B), np.int64)
    np.add.at(expected, (g[i], g[j], bins_k), 1)
    np.testing.assert_array_equal(hist, expected)
    assert bins_k.max() == B - 1 and bins_k.min() == 0  # the duplicate and the opposite: outer bins
    # slot 0: excluded pairs (mated, and the lower triangle with the diagonal of each diagonal block)
    tril = sum(min(run.block, n - bi * run.block) * (min(run.block, n - bi * run.block) + 1) // 2
               for bi, bj in run.blocks if bi == bj)
    assert int(total.slots[0]) == total.gen_x.size + tril
    # scores against numpy's own block GEMMs: within the float32 bound; bin changes only across an edge
    xn = numpy_scores(run, i, j)
    bound = gemm_error_bound(run.d) * plan.scale
    diff = np.abs(xk.astype(np.float64) - xn.astype(np.float64))
    assert diff.max() <= bound
    bins_n = bin_index(xn.astype(np.float64) / plan.scale, run.edges)
    moved = bins_n != bins_k
    lo, hi = np.minimum(xk, xn)[moved], np.maximum(xk, xn)[moved]
    assert (np.floor(hi) > np.floor(lo)).all() or not moved.any()  # an edge (an integer x) between them
    print(
        f"\n{i.size} non-mated scores: {int((diff > 0).sum())} differ from numpy's (max |dx| "
        f"{diff.max():.3g}, "
        f"{bound:.3g} allowed, x = {plan.scale:g} * score); {int(moved.sum())} in another bin than numpy's"
    )
    # mated scores: the same comparison
    gn = numpy_scores(run, total.gen_i, total.gen_j)
    assert np.abs(total.gen_x.astype(np.float64) - gn).max() <= bound


def test_capture_overflow_reruns_and_bf16():
    """A capture buffer far too small: a launch that overflows reruns once with the exact room it
    needs (and the buffer grows for the next ones), and the result is the one a large buffer gives. bf16:
    operands rounded to bfloat16 (upcast in the interpreter), scores within the bound of numpy's on the
    same rounded inputs."""
    x, samples = gaussian_set(n=140, seed=9)
    _, small, total_small, n_chunks = kernel_run(x, samples, block=64, chunk_pairs=5000, capacity=16)
    _, big, total_big, _ = kernel_run(x, samples, block=64, chunk_pairs=5000)
    assert 1 <= small.reruns < n_chunks and big.reruns == 0
    for f in ("slots", "cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x"):
        np.testing.assert_array_equal(getattr(total_small, f), getattr(total_big, f))
    xb = x.astype(np.float32)
    xb = torch.from_numpy(prepare_embeddings(xb)).to(torch.bfloat16).to(torch.float32).numpy()
    run, _, total, _ = kernel_run(x, samples, block=64, chunk_pairs=5000, precision="bf16")
    exact = xb.astype(np.float64) @ xb.astype(np.float64).T * run.plan.scale
    got = exact[total.cap_i, total.cap_j]
    assert np.abs(total.cap_x - got).max() <= gemm_error_bound(run.d) * run.plan.scale


def test_tile_shapes_on_the_lattice():
    """Rectangular tiles (rows != columns, runs padded to the larger): the same histogram, captures and
    mated scores as square tiles and as numpy (lattice scores are exact in any order)."""
    x, samples = lattice_set(n=130, seed=3)
    outs = []
    for bm, bn in ((16, 16), (16, 32), (32, 16)):
        run, fused, total, _ = kernel_run(
            x,
            samples,
            config=tk.TileConfig(bm, bn, 32, 4, 1)
            if DEVICE == "cpu"
            else tk.TileConfig(max(bm, 64), max(bn, 64), 32, 4, 2),
        )
        outs.append(total)
    for other in outs[1:]:
        for f in ("slots", "cap_i", "cap_j", "cap_x", "gen_i", "gen_j", "gen_x"):
            np.testing.assert_array_equal(getattr(other, f), getattr(outs[0], f))
    np.testing.assert_array_equal(outs[0].cap_x, numpy_scores(run, outs[0].cap_i, outs[0].cap_j))
    np.testing.assert_array_equal(outs[0].gen_x, numpy_scores(run, outs[0].gen_i, outs[0].gen_j))


def test_capture_counter_is_64_bit():
    """A launch whose capture count passes 2**31 - 1: with an int32 counter the positions would wrap to
    negative values, pass the capacity test and be written out of bounds. The counter and positions are
    int64: the count comes back exact and nothing is stored."""
    x, samples = lattice_set(n=50, seed=8)
    run = Planner(prepare_embeddings(x), samples, metric="cosine", bins=4096, block=50, top_k=0,
                  fmr_targets=[1e-3], reference_sample=64, seed=0, max_capture=10**9)
    G, n = run.G, run.n
    run.set_capture(np.full((G, G), -np.inf), np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32))
    fused = tk.FusedPairs(torch, torch.from_numpy(run.emb).to(DEVICE), precision="fp32", capacity=2048)
    start = 2**31 - 5
    with fused._on_device():
        launch = fused._new_launch(run.plan, 0, [(0, 0)])
        assert launch.counter.dtype == torch.int64
        for t in launch.cap:
            t.fill_(-7)
        launch.counter.fill_(start)
        fused._run(run.plan, launch, fused._plan_arrays(run.plan)[3])
        count, (ci, cj, cx), _ = fused._fetch(launch, None)
    assert count == start + n * (n - 1) // 2  # every pair i < j captured (mated ones too)
    assert (ci == -7).all() and (cj == -7).all() and (cx == -7).all()
    # and a normal launch of the same chunk captures them all
    part = fused.collect(run.plan, fused.submit(run.plan, 0, [(0, 0)]))
    assert part.cap_i.size + part.gen_i.size == n * (n - 1) // 2


def test_group_layout():
    rng = np.random.default_rng(3)
    group = rng.integers(0, 5, 1000)
    lay = tk.GroupLayout(group, 5, block=300, tile=32)
    real = lay.index >= 0
    assert np.array_equal(np.sort(lay.index[real]), np.arange(1000))
    assert (lay.length % 16 == 0).all()
    for b in range(lay.start.shape[0]):
        for h in range(5):
            seg = lay.index[lay.start[b, h] : lay.start[b, h] + lay.length[b, h]]
            seg = seg[seg >= 0]
            assert (group[seg] == h).all() and (seg // 300 == b).all() and (np.diff(seg) > 0).all()
            assert seg.size == int(((np.arange(1000) // 300 == b) & (group == h)).sum())
    blocks = np.array([[0, 0], [0, 2]])
    for bm, bn in ((32, 32), (16, 32), (32, 16)):
        items = lay.items(blocks, None, 3, bm, bn)
        whole = lay.items(blocks, None, 1 << 30, bm, bn)
        assert (items[:, 4] - items[:, 3] <= 3).all()
        # every pair of the two blocks' samples, in padded positions, is covered once
        covered = int(((items[:, 4] - items[:, 3]) * bm * bn).sum())
        runs = lay.length[blocks[:, 0]].sum(axis=1) * lay.length[blocks[:, 1]].sum(axis=1)
        assert covered == int(runs.sum()) == int((whole[:, 7] * bm * bn).sum())
