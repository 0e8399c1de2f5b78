"""The exhaustive comparison engine against a brute-force oracle (full matrix, exact loops)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from faceaudit.build import group_subsets, required_tail_cutoff
from faceaudit.compare import (
    assembly,
    compare_embeddings,
    load_distributions,
    prepass,
    read_embeddings,
    save_distributions,
)
from faceaudit.compare import engine as engine_mod
from faceaudit.compare import plan as plan_module
from faceaudit.compare.errors import (
    CheckpointError,
    EmbeddingAlignmentError,
    EmbeddingShapeError,
    NonFiniteEmbeddingError,
    NotNormalizedError,
    ZeroEmbeddingError,
)
from faceaudit.compare.inputs import prepare_embeddings, round_to_bfloat16
from faceaudit.errors import SampleTableError
from faceaudit.scores import DistributionBuilder, SampleIndex

FAST = {"progress": False, "block": 32, "reference_sample": 64}


def lattice_set(n=150, d=64, subjects=40, seed=0, groups=True):
    """Unit vectors with entries +-1/8 (d = 64): every dot product is k/64, exact in any order."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, subjects, n)
    proto = rng.choice([-1.0, 1.0], (subjects, d))
    flips = rng.random((n, d)) < rng.uniform(0.15, 0.5, (n, 1))
    x = np.where(flips, -proto[subj], proto[subj]) / np.sqrt(d)
    attrs = None
    if groups:
        attrs = {"sex": np.array(["f", "m"])[subj % 2], "race": np.array(["a", "b", "c"])[(subj // 2) % 3]}
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{s}" for s in subj], attrs)
    return x.astype(np.float32), samples


def oracle(x, samples, metric="cosine", edges=None, targets=(1e-3, 1e-4, 1e-5), k=20, cell_limit=None):
    """Every pair i < j by loops over a full float64 (exact for lattice inputs) score matrix."""
    n = x.shape[0]
    a = x.astype(np.float64)
    if metric == "cosine":
        full = a @ a.T
    else:
        x32 = x.astype(np.float32)
        full = -np.sqrt(
            np.maximum(np.float32(2.0) - np.float32(2.0) * (x32 @ x32.T), np.float32(0.0))
        ).astype(np.float64)
    pi, pj, ps = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            pi.append(i)
            pj.append(j)
            ps.append(full[i, j])
    pi, pj, ps = np.array(pi), np.array(pj), np.array(ps)
    cols = samples.group_columns
    subsets = list(group_subsets(samples, [c for r in range(1, len(cols) + 1)
                                           for c in itertools.combinations(cols, r)]).values())
    first = DistributionBuilder(samples, edges, track_subject_pairs=False, design="complete",
                                cell_limit=cell_limit)
    first.add(pi, pj, ps)
    cutoff = required_tail_cutoff(first.result(), targets, subsets)
    second = DistributionBuilder(
        samples, edges, tail_cutoff=cutoff, track_subject_pairs=False, design="complete",
        cell_limit=cell_limit,
    )
    second.add(pi, pj, ps)
    expected = second.result()
    # per-probe: top-k non-mated, best mate, rank (ties count against the mate)
    subj = samples.subject_of_sample
    topk = np.full((n, k), -np.inf)
    topr = np.full((n, k), -1)
    best = np.full(n, np.nan)
    rank = np.zeros(n, int)
    for p in range(n):
        others = [q for q in range(n) if q != p]
        non = sorted((-full[p, q], q) for q in others if subj[q] != subj[p])[:k]
        for t, (s, q) in enumerate(non):
            topk[p, t], topr[p, t] = -s, q
        mates = [full[p, q] for q in others if subj[q] == subj[p]]
        if mates:
            best[p] = max(mates)
            rank[p] = 1 + sum(1 for q in others if subj[q] != subj[p] and full[p, q] >= best[p])
    return expected, (topk, topr, best, rank)


def check_equal(dist, x, samples, metric="cosine"):
    expected, (topk, topr, best, rank) = oracle(x, samples, metric, dist.edges, cell_limit=dist.cell_limit)
    G = samples.n_groups
    # per cell: the cutoffs, the tails and the largest score below each tail are the oracle's
    assert dist.tail_cutoff.shape == (G, G)
    np.testing.assert_array_equal(dist.tail_cutoff, expected.tail_cutoff)
    np.testing.assert_array_equal(dist.below_max, expected.below_max)
    for g, h in np.ndindex(G, G):
        cell = np.zeros((G, G), bool)
        cell[g, h] = True
        np.testing.assert_array_equal(dist.impostor_view(cell).tail, expected.impostor_view(cell).tail)
    gp, gr = dist.tail_cell
    assert (dist.tail_score >= dist.tail_cutoff[gp, gr]).all()
    assert dist == expected
    assert dist.design == "complete" and dist.impostor_subject_pairs is None
    n = samples.n_samples
    assert dist.n_mated + dist.n_nonmated == n * (n - 1) // 2
    s = dist.probe_summary
    np.testing.assert_array_equal(s.topk_score, topk)
    np.testing.assert_array_equal(s.topk_reference, topr)
    np.testing.assert_array_equal(s.best_mated_score, best)
    np.testing.assert_array_equal(s.mate_rank, rank)


def every_cell_a_row(monkeypatch):
    """Every non-empty cell gets a histogram row (cell limit 0), as before cells were kept whole."""
    monkeypatch.setattr(plan_module, "default_cell_limit", lambda bins: 0)


@pytest.fixture(params=["small cells whole", "estimated levels"])
def levels(request, monkeypatch):
    """The test sets are small: every cell is small enough to be kept whole (no histogram row, every
    score captured) unless the cell limit is 0 and SMALL_CELL is 0, which gives every cell a row and
    makes its level come from the pre-pass estimate."""
    if request.param == "estimated levels":
        monkeypatch.setattr(prepass, "SMALL_CELL", 0)
        every_cell_a_row(monkeypatch)
    return request.param


@pytest.mark.parametrize("threads", [1, 2])
def test_numpy_equals_oracle(threads, levels):
    x, samples = lattice_set()
    dist = compare_embeddings(x, samples, backend="numpy", threads=threads, **FAST)
    check_equal(dist, x, samples)
    # group-pair cells: the oracle's cells, tails and below-tail maxima are what the engine holds
    assert dist.hist_row_of_cell.shape == (6, 6)
    assert dist.tail_score.size > 0


def test_non_power_of_two_bins_and_single_group(levels):
    x, samples = lattice_set(n=90, groups=False, seed=3)
    check_equal(compare_embeddings(x, samples, backend="numpy", bins=1000, **FAST), x, samples)


def test_euclidean_equals_oracle(levels):
    x, samples = lattice_set(n=80, seed=5)
    dist = compare_embeddings(x, samples, backend="numpy", metric="euclidean", **FAST)
    assert (dist.genuine_score <= 0).all()  # distances are negated
    check_equal(dist, x, samples, metric="euclidean")


def test_second_pass_and_rescan_stay_exact(monkeypatch):
    """Levels estimated too high force a second pass on those cells; an empty band forces the rescan."""
    x, samples = lattice_set(seed=7)
    G = samples.n_groups
    high = np.full((G, G), -np.inf)
    high[0, :] = 0.984375  # probe group 0: estimated far too high; the other cells keep everything
    monkeypatch.setattr(prepass, "cell_levels", lambda *a: high.copy())
    monkeypatch.setattr(assembly, "lower_level", lambda edges, hist, T: T)
    every_cell_a_row(monkeypatch)
    dist = compare_embeddings(x, samples, backend="numpy", **FAST)
    assert dist.meta["passes"][1].startswith(f"capture below the required cutoff in {G} cell(s)")
    assert any(p.startswith("rescan") for p in dist.meta["passes"])
    check_equal(dist, x, samples)


def tiny_group_set(seed=23):
    """Two large groups whose scores are well separated, and a tiny group (3 samples, one subject with
    2 of them) whose mated score sits deep in the non-mated bulk: its EER cutoff is far down."""
    rng = np.random.default_rng(seed)
    d, subjects = 64, 60
    proto = rng.choice([-1.0, 1.0], (subjects, d))
    subj = np.r_[np.repeat(np.arange(subjects), 4), [subjects, subjects, subjects + 1]]
    proto = np.vstack([proto, rng.choice([-1.0, 1.0], (2, d))])
    flip_rate = np.r_[np.full(subjects * 4, 0.15), [0.2, 0.8, 0.5]]  # the tiny group's mates disagree
    flips = rng.random((subj.size, d)) < flip_rate[:, None]
    x = (np.where(flips, -proto[subj], proto[subj]) / np.sqrt(d)).astype(np.float32)
    grp = np.where(subj >= subjects, "tiny", np.where(subj % 2 == 0, "big0", "big1"))
    samples = SampleIndex.from_columns(
        [f"s{i}" for i in range(subj.size)], [f"p{s}" for s in subj], {"grp": grp}
    )
    return x, samples


def test_tiny_group_deep_eer_keeps_other_tails_small(levels):
    x, samples = tiny_group_set()
    dist = compare_embeddings(x, samples, backend="numpy", **FAST)
    check_equal(dist, x, samples)
    if levels == "estimated levels":  # every cell with pairs has a row (levels from the estimate)
        pairs = plan_module.complete_cell_pairs(samples)
        np.testing.assert_array_equal(dist.hist_row_of_cell >= 0, pairs > 0)
        assert (pairs == 0).any() and np.isfinite(dist.meta["capture_level_finite"]).all()
    tiny = samples.group_labels.index(("tiny",))
    T = dist.tail_cutoff
    others = np.ones(T.shape, bool)
    others[tiny, tiny] = False
    # the tiny group's own cell needs a cutoff in the bulk; every other cell keeps a cutoff far above it
    assert T[tiny, tiny] < 0.0 < T[others].min()
    gp, gr = dist.tail_cell
    n_others = int(dist.nonmated_counts()[others].sum())
    assert others[gp, gr].sum() < 0.05 * n_others
    # one scalar cutoff for all cells (the old rule) would have kept nearly all the other cells' scores
    low, high = dist.nonmated_count_at_least(T[tiny, tiny], others)
    assert low == high > 0.9 * n_others


def test_gaussian_equals_oracle_on_the_same_scores(levels):
    """Real-valued scores (not a lattice): the oracle is fed the engine's own block-GEMM float32 scores."""
    rng = np.random.default_rng(31)
    n, d, block = 700, 48, 128
    subj = np.r_[rng.integers(0, 200, n - 4), [900, 900, 901, 902]]
    centre = rng.standard_normal((903, d))
    x = centre[subj] + 1.1 * rng.standard_normal((n, d))
    x[-4:-2] = rng.standard_normal((2, d))  # the tiny group's mates are unrelated: its EER is in the bulk
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    grp = np.where(subj >= 900, "tiny", np.where(subj % 2 == 0, "a", "b"))
    samples = SampleIndex.from_columns(np.arange(n), subj, {"grp": grp})
    dist = compare_embeddings(x, samples, backend="numpy", progress=False, block=block, reference_sample=96)
    scale = np.float32((dist.edges.size - 1) // 2)  # B / 2: scores are x / scale, x = rows @ (scale * cols).T
    x = prepare_embeddings(x)  # the engine's own float32 rows
    pi, pj, ps = [], [], []
    for bi in range(0, n, block):
        for bj in range(bi, n, block):
            xb = x[bi : bi + block] @ (x[bj : bj + block] * scale).T
            i, j = np.meshgrid(
                np.arange(bi, bi + xb.shape[0]), np.arange(bj, bj + xb.shape[1]), indexing="ij"
            )
            m = i < j
            pi.append(i[m])
            pj.append(j[m])
            ps.append(xb[m].astype(np.float64) / float(scale))
    pi, pj, ps = np.concatenate(pi), np.concatenate(pj), np.concatenate(ps)
    first = DistributionBuilder(samples, dist.edges, track_subject_pairs=False, design="complete",
                                cell_limit=dist.cell_limit)
    first.add(pi, pj, ps)
    cutoff = required_tail_cutoff(first.result(), (1e-3, 1e-4, 1e-5), [[0, 1, 2], [0], [1], [2]])
    second = DistributionBuilder(
        samples, dist.edges, tail_cutoff=cutoff, track_subject_pairs=False, design="complete",
        cell_limit=dist.cell_limit,
    )
    second.add(pi, pj, ps)
    expected = second.result()
    np.testing.assert_array_equal(dist.tail_cutoff, expected.tail_cutoff)
    np.testing.assert_array_equal(dist.below_max, expected.below_max)
    assert dist == expected
    tiny = samples.group_labels.index(("tiny",))
    assert dist.tail_cutoff[tiny, tiny] < dist.tail_cutoff.max()


def test_dask_releases_each_chunk_result_once_consumed():
    """A chunk's future is dropped once its result is taken: a held future keeps its result (the chunk's
    captures) in a worker's memory, so holding all of them made each worker grow with the pairs
    (8.3 GB per worker at 200,000 images, bench/RESULTS.md). Counted on the client: the chunk keys it
    still references after each chunk is consumed are the ones not yet consumed, plus the current one."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    from distributed import LocalCluster, default_client

    x, samples = lattice_set(seed=17)
    held: list[int] = []

    def count_held(_k: int) -> None:
        held.append(sum(1 for key in default_client().futures if str(key).startswith("numpy_chunk")))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        d = compare_embeddings(x, samples, backend="dask", scheduler=cluster.scheduler_address,
                               chunk_pairs=2000, on_chunk=count_held, **FAST)
    n_chunks = len(held)
    assert n_chunks >= 4  # several chunks, or the count says nothing
    assert held == list(range(n_chunks, 0, -1))
    assert d == compare_embeddings(x, samples, backend="numpy", chunk_pairs=2000, **FAST)

def test_torch_cpu_equals_oracle(levels):
    pytest.importorskip("torch", reason="torch is not installed: the torch backend is not tested")
    x, samples = lattice_set(seed=11)
    check_equal(compare_embeddings(x, samples, backend="torch", device="cpu", **FAST), x, samples)


def test_dask_equals_oracle_and_numpy_bit_identical(monkeypatch):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    from distributed import LocalCluster

    x, samples = lattice_set(seed=13)
    rng = np.random.default_rng(2)
    g = rng.standard_normal((300, 48)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    gs = SampleIndex.from_columns([str(i) for i in range(300)], [str(i // 3) for i in range(300)],
                                  {"grp": [str((i // 3) % 4) for i in range(300)]})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        check_equal(compare_embeddings(x, samples, backend="dask", scheduler=addr, **FAST), x, samples)
        d_dask = compare_embeddings(g, gs, backend="dask", scheduler=addr, chunk_pairs=2000, **FAST)
        # the per-cell second pass and the rescan run on the cluster too
        G = samples.n_groups
        high = np.full((G, G), -np.inf)
        high[:, 1] = 0.984375
        with monkeypatch.context() as m:
            m.setattr(prepass, "cell_levels", lambda *a: high.copy())
            m.setattr(assembly, "lower_level", lambda edges, hist, T: T)
            every_cell_a_row(m)
            d2 = compare_embeddings(x, samples, backend="dask", scheduler=addr, **FAST)
        assert len(d2.meta["passes"]) == 3
        check_equal(d2, x, samples)
    d_np = compare_embeddings(g, gs, backend="numpy", chunk_pairs=2000, **FAST)
    assert d_dask == d_np
    assert d_dask.probe_summary == d_np.probe_summary


def test_input_errors():
    x, samples = lattice_set(n=20)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(NonFiniteEmbeddingError, match="row 3"):
        compare_embeddings(bad, samples, **FAST)
    bad = x.copy()
    bad[5] = 0
    with pytest.raises(ZeroEmbeddingError, match="row 5"):
        compare_embeddings(bad, samples, **FAST)
    with pytest.raises(NotNormalizedError, match="normalize"):
        compare_embeddings(x * 2, samples, **FAST)
    d1 = compare_embeddings(x * 2, samples, normalize=True, **FAST)
    assert d1 == compare_embeddings(x, samples, **FAST)
    with pytest.raises(EmbeddingShapeError, match="different dimensions"):
        compare_embeddings([np.ones(4), np.ones(3)], samples, **FAST)
    with pytest.raises(EmbeddingShapeError, match="align"):
        compare_embeddings(x[:-1], samples, **FAST)
    with pytest.raises(SampleTableError, match="duplicate"):
        SampleIndex.from_columns(["a", "a", "b"], ["p", "q", "r"])
    dup = SampleIndex(**{**samples.__dict__, "sample_ids": np.array(["s0"] * 20, dtype=object)})
    with pytest.raises(SampleTableError, match="duplicate"):
        compare_embeddings(x, dup, **FAST)
    with pytest.raises(SampleTableError, match="more than one group"):
        SampleIndex.from_columns(["a", "b"], ["p", "p"], {"sex": ["f", "m"]})
    split = SampleIndex(**{**samples.__dict__, "group_of_sample": np.arange(20) % samples.n_groups})
    with pytest.raises(SampleTableError, match="more than one group"):
        compare_embeddings(x, split, **FAST)


def test_read_embeddings_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, samples = lattice_set(n=30)
    ids = [str(v) for v in samples.sample_ids]
    perm = np.random.default_rng(0).permutation(30)
    table = pa.table({"sample_id": [ids[i] for i in perm],
                      "embedding": pa.array([x[i].tolist() for i in perm], pa.list_(pa.float32()))})
    table = table.replace_schema_metadata({"faceaudit.model": '{"name": "toy", "dim": 64}'})
    pq.write_table(table, tmp_path / "e.parquet")
    f = read_embeddings(tmp_path / "e.parquet", samples)
    np.testing.assert_array_equal(f.matrix, x)
    assert f.model == {"faceaudit.model": {"name": "toy", "dim": 64}} and len(f.sha256) == 64
    np.save(tmp_path / "e.npy", x.astype(np.float16))
    assert read_embeddings(tmp_path / "e.npy", samples).matrix.dtype == np.float16
    np.savez(tmp_path / "e.npz", embeddings=x[perm], sample_ids=np.array(ids)[perm])
    np.testing.assert_array_equal(read_embeddings(tmp_path / "e.npz", samples).matrix, x)
    np.savez(tmp_path / "dup.npz", embeddings=x, sample_ids=np.array(ids[:-1] + [ids[0]]))
    with pytest.raises(EmbeddingAlignmentError, match="duplicate"):
        read_embeddings(tmp_path / "dup.npz", samples)
    np.savez(tmp_path / "short.npz", embeddings=x[:-1], sample_ids=np.array(ids[:-1]))
    with pytest.raises(EmbeddingAlignmentError, match="no embedding"):
        read_embeddings(tmp_path / "short.npz", samples)
    mixed = pa.table({"sample_id": ids, "embedding": [list(r) for r in x[:29]] + [[1.0, 0.0]]})
    pq.write_table(mixed, tmp_path / "mixed.parquet")
    with pytest.raises(EmbeddingShapeError, match="different dimensions"):
        read_embeddings(tmp_path / "mixed.parquet", samples)


def test_store_round_trip(tmp_path):
    x, samples = lattice_set(n=60)
    dist = compare_embeddings(
        x, samples, meta={"model": {"name": "toy"}, "embeddings_sha256": "ab" * 32}, **FAST
    )
    path = save_distributions(dist, tmp_path / "d.fadist")
    back = load_distributions(path)
    assert back == dist
    assert back.tail_cutoff.shape == (samples.n_groups,) * 2
    # a format /1 file (one scalar cutoff, in the JSON) is read with the cutoff broadcast to every cell
    import json

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k not in ("tail_cutoff", "__digest__")}  # /1 had no digest
    doc = json.loads(str(arrays["__json__"]))
    doc.update(format="faceaudit.fadist/1", tail_cutoff=repr(float(dist.tail_cutoff.max())))
    arrays["__json__"] = np.asarray(json.dumps(doc))
    with open(tmp_path / "v1.fadist", "wb") as f:
        np.savez_compressed(f, **arrays)
    old = load_distributions(tmp_path / "v1.fadist")
    np.testing.assert_array_equal(old.tail_cutoff, np.full((samples.n_groups,) * 2, dist.tail_cutoff.max()))
    np.testing.assert_array_equal(old.tail_score, dist.tail_score)
    assert back.probe_summary == dist.probe_summary
    assert back.samples.fingerprint() == dist.samples.fingerprint()
    assert back.meta["model"] == {"name": "toy"} and back.meta["settings"]["bins"] == 4096
    assert back.design == "complete" and back.impostor_subject_pairs is None


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_compare import lattice_set
    from faceaudit.compare import compare_embeddings
    x, samples = lattice_set(n=200, seed=17)
    compare_embeddings(x, samples, block=16, chunk_pairs=200, reference_sample=64, progress=False,
                       checkpoint_dir=sys.argv[1], resume="--resume" in sys.argv,
                       on_chunk=lambda k: time.sleep(0.05))
""")


def test_killed_run_resumes_bit_identical(tmp_path):
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
    done = len(list(ckpt.glob("chunk-*.npz")))
    assert proc.returncode == -signal.SIGKILL and done >= 5
    x, samples = lattice_set(n=200, seed=17)
    kw = {"block": 16, "chunk_pairs": 200, "reference_sample": 64, "progress": False}
    seen = []
    resumed = compare_embeddings(x, samples, checkpoint_dir=ckpt, resume=True, on_chunk=seen.append, **kw)
    assert 0 < len(seen) < len(list(ckpt.glob("chunk-*.npz")))  # only the missing chunks ran
    fresh = compare_embeddings(x, samples, **kw)
    assert resumed == fresh and resumed.probe_summary == fresh.probe_summary
    with pytest.raises(CheckpointError, match="another run"):
        compare_embeddings(x[::-1].copy(), samples, checkpoint_dir=ckpt, resume=True, **kw)


def test_command_writes_fadist(tmp_path):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from faceaudit.compare.command import compare

    x, samples = lattice_set(n=40)
    (tmp_path / "s.csv").write_text("sample_id,subject_id,sex\n" + "".join(
        f"{samples.sample_ids[i]},{samples.subject_ids[samples.subject_of_sample[i]]},"
        f"{samples.group_labels[samples.group_of_sample[i]][0]}\n" for i in range(40)))
    np.save(tmp_path / "e.npy", x)
    app = typer.Typer()
    app.command()(compare)
    out = tmp_path / "d.fadist"
    res = CliRunner().invoke(
        app,
        [
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--samples",
            str(tmp_path / "s.csv"),
            "--group",
            "sex",
            "--out",
            str(out),
            "--backend",
            "numpy",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    d = load_distributions(out)
    assert d.samples.group_columns == ("sex",) and d.n_mated + d.n_nonmated == 40 * 39 // 2
    assert len(d.meta["embeddings_sha256"]) == 64 and not (tmp_path / "d.fadist.ckpt").exists()
    res = CliRunner().invoke(
        app,
        [
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--samples",
            str(tmp_path / "s.csv"),
            "--out",
            str(out),
            "--backend",
            "numpy",
            "--quiet",
            "--metric",
            "manhattan",
        ],
    )
    assert res.exit_code == 2 and "InputError" in res.output


def test_bf16_runs_on_real_valued_embeddings_as_fp32_on_their_bf16_values(monkeypatch):
    """bf16 = the float32 GEMM of the bfloat16-rounded embeddings: the run's estimates (best mates,
    top-k, capture levels) see those values too, so a bf16 mate never falls below its estimate (it
    did on real-valued data: "a probe's rank capture was incomplete"); the lattice sets cannot show
    this, their values being bfloat16 numbers already."""
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch backend is not tested")
    rng = np.random.default_rng(41)
    n, d = 600, 64
    subj = rng.integers(0, 150, n)
    x = rng.standard_normal((150, d))[subj] + 1.2 * rng.standard_normal((n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    samples = SampleIndex.from_columns(np.arange(n), subj, {"grp": np.where(subj % 3 == 0, "a", "b")})
    kw = {"progress": False, "block": 128, "reference_sample": 96}
    bf16 = compare_embeddings(x, samples, backend="torch", device="cpu", precision="bf16", **kw)
    rounded = round_to_bfloat16(prepare_embeddings(x))
    # the fp32 run on exactly those values (prepare_embeddings would renormalise them)
    monkeypatch.setattr(engine_mod, "prepare_embeddings", lambda e, **_: rounded)
    fp32 = compare_embeddings(x, samples, backend="torch", device="cpu", precision="fp32", **kw)
    assert bf16 == fp32 and bf16.probe_summary == fp32.probe_summary
    assert not np.array_equal(rounded, x)
    # the rounding is torch's (ties to even included)
    halfway = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, -(1.0 + 2.0**-8), 0.3, 1e-20], np.float32)
    for v in (x, halfway):
        expected = torch.from_numpy(v).to(torch.bfloat16).to(torch.float32).numpy()
        np.testing.assert_array_equal(round_to_bfloat16(v), expected)


# ----- damaged files are named errors; artefacts are deterministic ------------------------------------------
@pytest.fixture(scope="module")
def saved_fadist(tmp_path_factory):
    x, samples = lattice_set(n=60, seed=2)
    dist = compare_embeddings(x, samples, meta={"model": {"name": "toy"}}, **FAST)
    path = save_distributions(dist, tmp_path_factory.mktemp("fadist") / "d.fadist")
    return dist, path, path.read_bytes()


def _same_load(back, dist, meta):
    """A load that succeeded must be the saved distributions, summaries and meta included."""
    return back == dist and back.probe_summary == dist.probe_summary and back.meta == meta


def test_damaged_fadist_files_are_named_errors(saved_fadist, tmp_path):
    from faceaudit.compare.errors import DistributionsFileError

    dist, path, data = saved_fadist
    meta = load_distributions(path).meta
    assert _same_load(load_distributions(path), dist, meta) and meta["model"] == {"name": "toy"}
    cases = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "tail cut": data[:-10],
        "text": b"sample_id,x\n1,2\n",
    }
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10  # inside a compressed member
    cases["bit flip"] = bytes(flipped)
    for name, content in cases.items():
        (tmp_path / f"{name}.fadist").write_bytes(content)
        with pytest.raises(DistributionsFileError):
            load_distributions(tmp_path / f"{name}.fadist")
    # wrong kinds: an embedding NPZ, a checkpoint chunk (digest-valid NPZ archives, but not distributions)
    with open(tmp_path / "emb.fadist", "wb") as f:
        np.savez(f, embeddings=np.eye(3))
    with pytest.raises(DistributionsFileError, match="not a faceaudit .fadist"):
        load_distributions(tmp_path / "emb.fadist")
    from faceaudit.compare.kernel import BlockPartial
    from faceaudit.compare.npzfile import write_npz

    write_npz(tmp_path / "chunk.fadist", BlockPartial.empty(5).to_arrays())
    with pytest.raises(DistributionsFileError, match="not a faceaudit .fadist"):
        load_distributions(tmp_path / "chunk.fadist")
    # a member altered and re-zipped with a valid CRC: only the content digest can tell
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["tail_score"] = arrays["tail_score"].copy()
    arrays["tail_score"][0] = np.nextafter(arrays["tail_score"][0], 2.0)
    with open(tmp_path / "altered.fadist", "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(DistributionsFileError, match="digest does not match"):
        load_distributions(tmp_path / "altered.fadist")


def test_fadist_hostile_bytes_never_traceback_never_wrong(saved_fadist, tmp_path_factory):
    """Random truncations and bit flips anywhere in the file: a named error, or (a flip in bytes that
    carry no content, e.g. a ZIP time stamp) the very same distributions; never a traceback."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies
    from faceaudit.compare.errors import DistributionsFileError

    dist, path, data = saved_fadist
    meta = load_distributions(path).meta
    folder = tmp_path_factory.mktemp("hostile")
    outcomes = {"error": 0, "same": 0}

    @hyp.settings(max_examples=150, deadline=None, derandomize=True)
    @hyp.given(cut=st.one_of(st.none(), st.integers(0, len(data) - 1)),
               flips=st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), max_size=3))
    def check(cut, flips):
        damaged = bytearray(data if cut is None else data[:cut])
        for pos, bit in flips:
            if pos < len(damaged):
                damaged[pos] ^= 1 << bit
        p = folder / "h.fadist"
        p.write_bytes(bytes(damaged))
        try:
            back = load_distributions(p)
        except DistributionsFileError:
            outcomes["error"] += 1
            return
        assert _same_load(back, dist, meta), (cut, flips)
        outcomes["same"] += 1

    check()
    assert outcomes["error"] > 100  # most damage is detected; the rest changed no content


def test_two_clean_runs_write_byte_identical_fadist_and_a_sidecar(tmp_path):
    """`faceaudit compare` twice on the same input: the same bytes; timings and the device in the sidecar."""
    pytest.importorskip("typer")
    import json

    from typer.testing import CliRunner

    from faceaudit.compare.command import compare
    from faceaudit.compare.store import sidecar_path

    x, samples = lattice_set(n=80, seed=9)
    (tmp_path / "s.csv").write_text("sample_id,subject_id,sex\n" + "".join(
        f"{samples.sample_ids[i]},{samples.subject_ids[samples.subject_of_sample[i]]},"
        f"{samples.group_labels[samples.group_of_sample[i]][0]}\n" for i in range(80)))
    np.save(tmp_path / "e.npy", x)
    import typer

    app = typer.Typer()
    app.command()(compare)
    outs = []
    for run in range(2):
        out = tmp_path / f"d{run}.fadist"
        res = CliRunner().invoke(
            app,
            [
                "--embeddings",
                str(tmp_path / "e.npy"),
                "--samples",
                str(tmp_path / "s.csv"),
                "--group",
                "sex",
                "--out",
                str(out),
                "--backend",
                "numpy",
                "--quiet",
                "--block",
                "16",
            ],
        )
        assert res.exit_code == 0, res.output
        outs.append(out)
        time.sleep(1.1)  # a later second: a time stamp in the archive would show
    assert outs[0].read_bytes() == outs[1].read_bytes()
    side = [json.loads(sidecar_path(o).read_text()) for o in outs]
    import hashlib

    assert side[0]["fadist_sha256"] == hashlib.sha256(outs[0].read_bytes()).hexdigest()
    assert side[0]["timing_s"]["total"] > 0 and side[0]["device"] == "cpu"
    assert (
        "timing_s" not in load_distributions(outs[0]).meta and "run" not in load_distributions(outs[0]).meta
    )


def test_resumed_run_writes_the_same_bytes_as_a_clean_one(tmp_path):
    x, samples = lattice_set(n=120, seed=4)
    kw = {"block": 16, "chunk_pairs": 300, "reference_sample": 64, "progress": False, "backend": "numpy"}

    class Stop(Exception):
        pass

    def stop_after_three(k, seen=[]):  # noqa: B006 - a counter across calls
        seen.append(k)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        compare_embeddings(x, samples, checkpoint_dir=tmp_path / "ck", on_chunk=stop_after_three, **kw)
    resumed = compare_embeddings(x, samples, checkpoint_dir=tmp_path / "ck", resume=True, **kw)
    clean = compare_embeddings(x, samples, **kw)
    save_distributions(resumed, tmp_path / "r.fadist")
    save_distributions(clean, tmp_path / "c.fadist")
    assert (tmp_path / "r.fadist").read_bytes() == (tmp_path / "c.fadist").read_bytes()


def test_damaged_checkpoints_are_refused_with_the_way_to_restart(tmp_path):
    x, samples = lattice_set(n=100, seed=6)
    kw = {"block": 16, "chunk_pairs": 300, "reference_sample": 64, "progress": False, "backend": "numpy"}
    ck = tmp_path / "ck"
    ref = compare_embeddings(x, samples, checkpoint_dir=ck, **kw)
    chunk = sorted(ck.glob("chunk-*.npz"))[2]
    good = chunk.read_bytes()
    damages = {"truncated": good[: len(good) // 2], "empty": b"", "bit flip": bytes(
        b ^ (0x01 if i == len(good) - 200 else 0) for i, b in enumerate(good))}
    for what, content in damages.items():
        chunk.write_bytes(content)
        with pytest.raises(CheckpointError, match="delete the folder") as err:
            compare_embeddings(x, samples, checkpoint_dir=ck, resume=True, **kw)
        assert chunk.name in str(err.value), what
    chunk.write_bytes(good)
    (ck / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged.*delete the folder"):
        compare_embeddings(x, samples, checkpoint_dir=ck, resume=True, **kw)
    # without --resume the folder is cleared and the run starts again
    assert compare_embeddings(x, samples, checkpoint_dir=ck, **kw) == ref


def test_damaged_embedding_files_are_named_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from faceaudit.compare.errors import EmbeddingError, EmbeddingFileError

    x, samples = lattice_set(n=30)
    np.save(tmp_path / "e.npy", x)
    data = (tmp_path / "e.npy").read_bytes()
    for name, content in {"cut.npy": data[: len(data) - 100], "head.npy": data[:40], "empty.npy": b"",
                          "text.npy": b"not an array"}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EmbeddingFileError):
            read_embeddings(tmp_path / name, samples)
    np.save(tmp_path / "int.npy", (x * 8).astype(np.int64))
    with pytest.raises(EmbeddingShapeError, match="int64"):
        read_embeddings(tmp_path / "int.npy", samples)
    np.save(tmp_path / "obj.npy", np.array([[1.0, "a"]] * 30, dtype=object), allow_pickle=True)
    with pytest.raises(EmbeddingFileError, match="object arrays are refused"):
        read_embeddings(tmp_path / "obj.npy", samples)
    np.savez(tmp_path / "e.npz", embeddings=x)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "e.npz").read_bytes()[:-50])
    with pytest.raises(EmbeddingFileError):
        read_embeddings(tmp_path / "cut.npz", samples)
    ids = [str(v) for v in samples.sample_ids]
    pq.write_table(
        pa.table({"sample_id": ids, "embedding": [list(map(float, r)) for r in x]}), tmp_path / "e.parquet"
    )
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "e.parquet").read_bytes()[:-30])
    with pytest.raises(EmbeddingFileError, match="Parquet"):
        read_embeddings(tmp_path / "cut.parquet", samples)
    pq.write_table(
        pa.table({"sample_id": ids, "embedding": [[str(v) for v in r] for r in x]}), tmp_path / "s.parquet"
    )
    with pytest.raises(EmbeddingShapeError, match="not floating-point"):
        read_embeddings(tmp_path / "s.parquet", samples)
    pq.write_table(pa.table({"sample_id": ids, "a": ["x"] * 30, "b": [1.0] * 30}), tmp_path / "cols.parquet")
    with pytest.raises(EmbeddingError, match="not floating-point"):
        read_embeddings(tmp_path / "cols.parquet", samples)


def test_unreachable_dask_scheduler_is_a_named_error_within_seconds():
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    import socket

    from faceaudit.compare.errors import SchedulerUnreachableError

    with socket.socket() as s:  # a local port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x, samples = lattice_set(n=20)
    t = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match=f"127.0.0.1:{port}"):
        compare_embeddings(x, samples, backend="dask", scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=2,
                           **FAST)
    # the bound is the contract (a named error in seconds, not distributed's default wait), not a speed
    assert time.perf_counter() - t < 30


def test_backend_capabilities_are_declared_and_options_checked():
    from faceaudit.compare.backends import REGISTRY, Backend, BackendOptions, make_backend
    from faceaudit.errors import InputError

    x, _ = lattice_set(n=20)
    emb = prepare_embeddings(x)
    assert set(REGISTRY) >= {"numpy", "torch", "dask"}
    with pytest.raises(InputError, match="fp32 only; bf16 needs --backend torch"):
        make_backend("numpy", emb, BackendOptions(precision="bf16"))
    with pytest.raises(InputError, match="fp32 only"):
        make_backend("dask", emb, BackendOptions(precision="bf16"))
    with pytest.raises(InputError, match="takes no device"):
        make_backend("numpy", emb, BackendOptions(device="cuda:0"))
    with pytest.raises(InputError, match="takes no scheduler"):
        make_backend("numpy", emb, BackendOptions(scheduler="tcp://127.0.0.1:1"))
    with pytest.raises(InputError, match="unknown backend"):
        make_backend("cupy", emb, BackendOptions())
    b = make_backend("numpy", emb, BackendOptions(threads=2))
    assert isinstance(b, Backend) and b.capabilities is REGISTRY["numpy"].capabilities and b.threads == 2
    assert (
        REGISTRY["dask"].capabilities.numpy_identical
        and not REGISTRY["dask"].capabilities.device_sample_scores
    )
    assert "bf16" in REGISTRY["torch"].capabilities.precisions and REGISTRY["torch"].capabilities.fused_kernel


@pytest.mark.parametrize(
    "bad",
    [
        {"fmr_targets": [2.0]},
        {"fmr_targets": [0.0]},
        {"fmr_targets": [float("nan")]},
        {"fmr_targets": []},
        {"chunk_pairs": 0},
        {"reference_sample": 0},
        {"bins": 1},
        {"top_k": -1},
        {"block": 0},
        {"precision": "fp8"},
    ],
)
def test_settings_outside_their_domain_are_named_errors(bad):
    from faceaudit.errors import InputError

    x, samples = lattice_set(n=20)
    with pytest.raises(InputError):
        compare_embeddings(x, samples, **{**FAST, **bad})


# ----- per-probe summaries streamed in O(n k) -------------------------------------------------------------
def test_streamed_top_k_and_rank_equal_one_global_sort_in_any_chunk_order():
    """The running top-k and rank counts against a brute-force sort of all captures: scores with many
    ties (a coarse lattice), chunks folded in shuffled orders, some chunks empty; bit-identical."""
    from faceaudit.compare.probes import ProbeAccumulator, ProbeThresholds, fold_captures, reduce_captures

    rng = np.random.default_rng(3)
    n, k = 60, 5
    i, j = np.triu_indices(n, 1)
    x = (rng.integers(-8, 9, i.size) / 4).astype(np.float32)  # ties everywhere
    subj = np.arange(n) // 3
    mated = subj[i] == subj[j]
    ci, cj, cx = i[~mated], j[~mated], x[~mated]
    gi, gj, gx = i[mated], j[mated], x[mated]
    best = np.full(n, -np.inf, np.float32)
    np.maximum.at(best, gi, gx)
    np.maximum.at(best, gj, gx)
    lo, hi = best - np.float32(0.25), best + np.float32(0.25)  # a band around the true best
    th = ProbeThresholds(k, np.full(n, np.float32(-0.5)), lo.astype(np.float32), hi.astype(np.float32))
    keep = (cx >= np.minimum(th.topk_x, th.mate_lo)[ci]) | (cx >= np.minimum(th.topk_x, th.mate_lo)[cj])
    ci, cj, cx = ci[keep], cj[keep], cx[keep]  # what the kernels would capture
    # brute force: per probe, all its non-mated scores sorted (score desc, reference asc)
    exp_x = np.full((n, k), -np.inf)
    exp_r = np.full((n, k), -1)
    exp_rank = np.zeros(n, int)
    for p in range(n):
        mine = sorted([(-float(v), int(r)) for a, r, v in zip(i, j, x) if a == p and subj[r] != subj[p]]
                      + [(-float(v), int(a)) for a, r, v in zip(i, j, x) if r == p and subj[a] != subj[p]])
        eligible = [(s, r) for s, r in mine if -s >= th.topk_x[p]]
        for t, (s, r) in enumerate(eligible[:k]):
            exp_x[p, t], exp_r[p, t] = -s, r
        exp_rank[p] = 1 + sum(1 for s, _ in mine if -s >= best[p])
    for order_seed in range(4):
        cuts = np.sort(np.random.default_rng(order_seed).integers(0, ci.size, 6))
        chunks = np.split(np.random.default_rng(order_seed + 10).permutation(ci.size), cuts)
        acc = ProbeAccumulator(n, th)
        if order_seed % 2:  # as the engine: batch by batch, each cut by the k-th best so far, then the
            saved = [fold_captures(acc, ci[c], cj[c], cx[c], batch=7) for c in chunks]
            acc = ProbeAccumulator(n, th)  # a resumed run folds the chunks' saved reductions
            for part in saved[::-1]:
                acc.fold(part)
        else:
            for c in chunks:
                acc.fold(reduce_captures(th, n, ci[c], cj[c], cx[c], acc.floor()))
        s = acc.summary(subj, gi, gj, gx, 1.0)
        np.testing.assert_array_equal(s.topk_score, exp_x)
        np.testing.assert_array_equal(s.topk_reference, exp_r)
        np.testing.assert_array_equal(s.mate_rank, exp_rank)


@pytest.mark.parametrize("seed", range(200))
def test_merge_without_sort_equals_one_sort_of_rows_and_candidates(seed):
    """merge_sorted against the sort of each touched row's held entries with its candidates (score
    desc, reference asc; a coarse lattice every third seed: ties with held scores and between
    candidates): equal when it merges; it declines only candidates out of a reduction's order, and
    then changes nothing, so the caller's sort decides."""
    from faceaudit.compare.probes import NO_REFERENCE, merge_sorted

    rng = np.random.default_rng(seed)
    n, k, coarse = int(rng.integers(1, 12)), int(rng.integers(1, 7)), seed % 3 == 0
    draw = ((lambda m: (rng.integers(-6, 7, m) / 4).astype(np.float32)) if coarse
            else (lambda m: rng.standard_normal(m).astype(np.float32)))
    top_x = np.full((n, k), -np.inf, np.float32)
    top_r = np.full((n, k), NO_REFERENCE, np.int64)
    refs = rng.permutation(1000)
    used = 0
    for q in range(n):  # each row: some held entries (score desc, ref asc), the rest empty
        h = int(rng.integers(0, k + 1))
        o = sorted(zip(-draw(h), refs[used : used + h]))
        used += h
        top_x[q, :h] = [-s for s, _ in o]
        top_r[q, :h] = [r for _, r in o]
    m = int(rng.integers(1, 15))
    p, x, r = rng.integers(0, n, m), draw(m), refs[used : used + m].astype(np.int64)
    if rng.random() < 0.8:  # a reduction's order (the merge's case); else as given
        o = sorted(range(m), key=lambda t: (p[t], -x[t], r[t]))
        p, x, r = p[o], x[o], r[o]
    exp_x, exp_r = top_x.copy(), top_r.copy()
    for q in np.unique(p).tolist():
        both = sorted([(-float(v), int(w)) for v, w in zip(top_x[q], top_r[q])]
                      + [(-float(v), int(w)) for v, w, pp in zip(x, r, p) if pp == q])[:k]
        exp_x[q], exp_r[q] = [-s for s, _ in both], [w for _, w in both]
    before = top_x.copy(), top_r.copy()
    if merge_sorted(top_x, top_r, p, r, x):
        np.testing.assert_array_equal(top_x, exp_x)
        np.testing.assert_array_equal(top_r, exp_r)
    else:
        np.testing.assert_array_equal(top_x, before[0])
        np.testing.assert_array_equal(top_r, before[1])
        key = [(int(a), -float(b), int(c)) for a, b, c in zip(p, x, r)]
        assert key != sorted(key), "declined candidates in a reduction's order"


def test_streamed_top_k_merges_without_sort_on_continuous_scores(monkeypatch):
    """Continuous scores (no ties): the folds take the sort-free merge, and the top-k and ranks equal a
    brute-force sort of each probe's scores, in any chunk order."""
    import faceaudit.compare.probes as probes

    merged = []
    real = probes.merge_sorted
    monkeypatch.setattr(probes, "merge_sorted", lambda *a: merged.append(real(*a)) or merged[-1])
    rng = np.random.default_rng(8)
    n, k = 80, 6
    i, j = np.triu_indices(n, 1)
    x = rng.standard_normal(i.size).astype(np.float32)
    subj = np.arange(n) // 4
    mated = subj[i] == subj[j]
    ci, cj, cx = i[~mated], j[~mated], x[~mated]
    th = probes.ProbeThresholds(k, np.full(n, np.float32(0.2)), np.full(n, np.float32(np.inf)),
                                np.full(n, np.float32(np.inf)))
    keep = (cx >= 0.2)
    ci, cj, cx = ci[keep], cj[keep], cx[keep]
    exp_x = np.full((n, k), -np.inf)
    exp_r = np.full((n, k), -1)
    for p in range(n):
        mine = sorted([(-float(v), int(b)) for a, b, v in zip(ci, cj, cx) if a == p]
                      + [(-float(v), int(a)) for a, b, v in zip(ci, cj, cx) if b == p])[:k]
        for t, (s, r) in enumerate(mine):
            exp_x[p, t], exp_r[p, t] = -s, r
    for order_seed in range(3):
        chunks = np.array_split(np.random.default_rng(order_seed).permutation(ci.size), 9)
        acc = probes.ProbeAccumulator(n, th)
        for c in chunks:
            probes.fold_captures(acc, ci[c], cj[c], cx[c], batch=50)
        s = acc.summary(subj, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), 1.0)
        np.testing.assert_array_equal(s.topk_score, exp_x)
        np.testing.assert_array_equal(s.topk_reference, exp_r)
    assert merged and all(merged)


def test_live_thresholds_capture_less_and_change_nothing(monkeypatch):
    """numpy raises the per-sample thresholds to each probe's k-th best between chunks: the same
    distributions and summaries as with the pre-pass's thresholds alone, from fewer captures."""
    import dataclasses

    import faceaudit.compare.backends.numpy_backend as nb
    import faceaudit.compare.engine as engine

    captured = []
    real = engine.fold_captures
    monkeypatch.setattr(engine, "fold_captures",
                        lambda acc, i, j, x: captured.append(x.size) or real(acc, i, j, x))
    rng = np.random.default_rng(5)  # 4 images a subject around its centre: a shallow tail, as in bench/
    n, subj = 1200, np.arange(1200) // 4
    x = rng.standard_normal((300, 32))[subj] + 0.9 * rng.standard_normal((n, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{s}" for s in subj],
                                       {"g": np.array(["a", "b"])[subj % 2]})
    kw = {"progress": False, "block": 64, "reference_sample": 64, "backend": "numpy", "chunk_pairs": 20000,
          "top_k": 8, "threads": 2}
    live = compare_embeddings(x, samples, **kw)
    n_live, captured[:] = sum(captured), []
    monkeypatch.setattr(nb.NumpyBackend, "capabilities",
                        dataclasses.replace(nb.CAPABILITIES, live_thresholds=False))
    fixed = compare_embeddings(x, samples, **kw)
    assert live == fixed and live.probe_summary == fixed.probe_summary
    assert n_live < 0.8 * sum(captured)  # the rest: the cells' tails, the same in both


def test_dask_completion_order_and_threads_give_the_same_summaries():
    """numpy with 1 and 2 threads and with many small chunks: identical distributions and summaries."""
    x, samples = lattice_set(n=180, seed=21)
    kw = {"progress": False, "block": 16, "reference_sample": 64, "backend": "numpy"}
    a = compare_embeddings(x, samples, threads=1, **kw)
    b = compare_embeddings(x, samples, threads=2, chunk_pairs=50, **kw)
    assert a == b and a.probe_summary == b.probe_summary
    check_equal(a, x, samples)
