"""The compare engine's memory savings change no value: the capped assembly scanned in batches and cut to
the windows' bins, and the embeddings prepared row batch by row batch, give what one pass over every
capture / the whole matrix gives, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from test_compare import lattice_set

from faceaudit.compare import assembly, compare_embeddings, inputs, prepass
from faceaudit.compare import plan as plan_module
from faceaudit.compare.errors import NonFiniteEmbeddingError, NotNormalizedError, ZeroEmbeddingError

KW = {"progress": False, "block": 32, "reference_sample": 64, "fmr_targets": (1e-3, 1e-2, 0.05)}


@pytest.fixture
def rows_everywhere(monkeypatch):
    """Every cell with a histogram row (small sets: otherwise every cell is kept whole, nothing capped)."""
    monkeypatch.setattr(prepass, "SMALL_CELL", 0)
    monkeypatch.setattr(plan_module, "default_cell_limit", lambda bins: 0)


def _all_low_captures(real):
    """_split_captures as before the cut: the windows get every capture below its cell's cutoff."""
    def split(run, caps, C, needs):
        out = real(run, caps, C, needs)
        cell = assembly._cells_of(run, caps.i, caps.j)
        s = caps.x.astype(np.float64) / run.plan.scale
        out.window = np.flatnonzero((s < C.reshape(-1)[cell]) & (run.cell_row[cell] >= 0))
        return out
    return split


@pytest.mark.parametrize("max_tail", [0, 150])
def test_capped_assembly_in_batches_and_cut_to_the_windows_changes_nothing(rows_everywhere, monkeypatch,
                                                                         max_tail):
    x, samples = lattice_set(n=150)
    ref = compare_embeddings(x, samples, backend="numpy", max_tail=max_tail, **KW)
    assert ref.windows is not None and ref.windows.n_scores > 0
    monkeypatch.setattr(assembly, "SCAN_BATCH", 7)  # many batches, one cut mid-cell
    assert compare_embeddings(x, samples, backend="numpy", max_tail=max_tail, **KW) == ref
    monkeypatch.setattr(assembly, "_split_captures", _all_low_captures(assembly._split_captures))
    assert compare_embeddings(x, samples, backend="numpy", max_tail=max_tail, **KW) == ref


def _whole_matrix(a, metric, normalize):
    """prepare_embeddings' values computed on the whole matrix at once (the reference)."""
    a64 = np.asarray(a).astype(np.float64)
    norms = np.linalg.norm(a64, axis=1)
    if metric == "cosine" or normalize:
        a64 /= np.where(norms == 0, 1.0, norms)[:, None]
    return np.ascontiguousarray(a64, dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("metric,normalize", [("cosine", True), ("euclidean", False), ("euclidean", True)])
def test_embeddings_prepared_in_row_batches_equal_the_whole_matrix(monkeypatch, dtype, metric, normalize):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((53, 9)) * 40).astype(dtype)
    a[11] = 0 if metric == "euclidean" else a[11]
    monkeypatch.setattr(inputs, "ROW_BATCH", 5)
    got = inputs.prepare_embeddings(a, metric=metric, normalize=normalize)
    want = _whole_matrix(a, metric, normalize)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_row_batches_name_the_first_bad_row_across_batches(monkeypatch):
    monkeypatch.setattr(inputs, "ROW_BATCH", 4)
    a = np.eye(3, dtype=np.float32)[np.arange(20) % 3]
    bad = a.copy()
    bad[[9, 17], 1] = np.nan
    with pytest.raises(NonFiniteEmbeddingError, match=r"^2 embedding\(s\).*first at row 9$"):
        inputs.prepare_embeddings(bad)
    zero = a.copy()
    zero[[6, 13]] = 0
    with pytest.raises(ZeroEmbeddingError, match=r"^2 embedding\(s\).*first at row 6$"):
        inputs.prepare_embeddings(zero)
    off = a.copy()
    off[14] *= 2
    with pytest.raises(NotNormalizedError, match=r"row 14 has norm 2"):
        inputs.prepare_embeddings(off)
