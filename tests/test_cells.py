"""Histogram memory bounded in the number of groups (scores.py's module docstring states the bound).

100 groups x 3 samples: every group-pair cell is tiny, so no cell has a histogram row; the object's
arrays stay under the stated bound, and every answer equals the one of the same data with a row for
every cell (the dense layout: cell limit 0) and a brute-force oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.build import two_pass
from faceaudit.compare import compare_embeddings
from faceaudit.compare import plan as plan_module
from faceaudit.compare.store import load_distributions, save_distributions
from faceaudit.errors import HistogramMemoryError, InputError, NotExactError
from faceaudit.measures.verification import eer, fmr_threshold
from faceaudit.scores import (
    DistributionBuilder,
    SampleIndex,
    bin_index,
    histogram_bytes,
    histogram_memory_limit,
    uniform_edges,
)

G, PER = 100, 3  # groups, samples per group (one subject each)
B = 4096


def hundred_groups(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = G * PER
    emb = rng.standard_normal((n, 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    subj = np.arange(n) // PER
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{s}" for s in subj],
                                       {"g": [f"g{s % G:03d}" for s in subj]})
    i, j = np.triu_indices(n, k=1)
    scores = np.einsum("ij,ij->i", emb[i].astype(np.float64), emb[j].astype(np.float64))
    return samples, emb, i, j, scores


def build(samples, i, j, s, cell_limit=None, **kw):
    edges = uniform_edges(-1.0, 1.0, B)
    subsets = [[g] for g in range(G)] + [list(range(G))]
    return two_pass(lambda: iter([(i, j, s)]), samples, edges, (1e-2, 1e-3), subsets, cell_limit=cell_limit,
                    **kw)


def array_bytes(d) -> int:
    return sum(getattr(d, a).nbytes for a in ("hist_rows", "hist_row_of_cell", "bulk_score", "bulk_probe",
                                              "bulk_reference", "tail_score", "tail_probe", "tail_reference"))


@pytest.fixture(scope="module")
def data():
    samples, emb, i, j, s = hundred_groups()
    return samples, emb, i, j, s, build(samples, i, j, s), build(samples, i, j, s, cell_limit=0)


def test_bound_holds(data):
    samples, _, i, j, s, compact, dense = data
    P = int(compact.n_nonmated)
    L = compact.cell_limit
    assert L == B // 4 and P == i.size - G * 3  # 3 mated pairs per subject of 3
    # the stated bound: rows <= min(G^2, P / (L + 1)) x B x 8, exact scores <= min(P, L G^2) x 24
    rows_bound = min(G * G, P // (L + 1)) * B * 8
    exact_bound = min(P, L * G * G) * 24
    assert compact.hist_rows.nbytes <= rows_bound and compact.hist_rows.shape[0] == 0
    assert array_bytes(compact) - compact.hist_rows.nbytes <= exact_bound + G * G * 8  # + the (G, G) index
    assert compact.histogram_nbytes() == histogram_bytes(compact.nonmated_counts(), B, L) + G * G * 8
    # the dense layout of the same data: one row per non-empty cell, G^2 x B x 8 bytes at most
    assert dense.hist_rows.shape[0] == int((dense.nonmated_counts() > 0).sum()) == G * (G - 1) // 2
    assert array_bytes(compact) * 50 < dense.hist_rows.nbytes


def outcome(f, *args):
    """The answer, or the named error (a subset none of the cutoffs was built for may not be exact)."""
    try:
        return repr(f(*args))
    except NotExactError as exc:
        return type(exc).__name__


def test_every_answer_equals_dense_and_oracle(data):
    samples, _, i, j, s, compact, dense = data
    g = samples.group_of_sample
    np.testing.assert_array_equal(compact.nonmated_counts(), dense.nonmated_counts())
    np.testing.assert_array_equal(compact.tail_cutoff, dense.tail_cutoff)
    np.testing.assert_array_equal(compact.below_max, dense.below_max)
    np.testing.assert_array_equal(compact.tail_score, dense.tail_score)
    nm = samples.subject_of_sample[i] != samples.subject_of_sample[j]
    for groups in ([0, 1], [5, 17, 42], list(range(G))):
        cells = compact.cell_mask(groups, groups)
        # histogram: from the exact scores, as the dense row, as a brute-force bincount
        sel = nm & np.isin(g[i], groups) & np.isin(g[j], groups)
        oracle = np.bincount(bin_index(s[sel], compact.edges), minlength=B)
        np.testing.assert_array_equal(compact.cell_histogram(cells), oracle)
        np.testing.assert_array_equal(dense.cell_histogram(cells), oracle)
        a, b = compact.impostor_view(cells), dense.impostor_view(cells)
        np.testing.assert_array_equal(a.tail, b.tail)
        assert (a.n_below, a.below_max) == (b.n_below, b.below_max)
        gen = compact.genuine_scores(groups)
        assert outcome(eer, a, gen) == outcome(eer, b, gen)
        for fmr in (1e-2, 1e-3):
            assert outcome(fmr_threshold, a, fmr) == outcome(fmr_threshold, b, fmr)
        for t in (-0.2, 0.0, 0.31, compact.edges[2100]):
            count = int((s[sel] >= t).sum())
            low, high = compact.nonmated_count_at_least(t, cells)
            assert high >= count >= low
            assert compact.nonmated_count_at_least(t, cells) == dense.nonmated_count_at_least(t, cells)
    for c in (0, 101, 5050, G * G - 1):
        edges_idx = np.array([1, 1000, 2048, 3000, B - 1])
        np.testing.assert_array_equal(compact.cell_at_least_edges(c, edges_idx),
                                      dense.cell_at_least_edges(c, edges_idx))


def test_audit_documents_equal(data):
    """The audit (thresholds, EER, cross-group matrix, DET, bootstrap intervals) of the compact layout
    is the dense layout's, number for number."""
    from faceaudit.audit import audit
    from faceaudit.report.document import audit_document

    samples, _, i, j, s, compact, dense = data
    kw = {"fmr_targets": (1e-2, 1e-3), "bootstrap": 50, "seed": 1}
    a, b = audit(compact, groupings=[("g",)], **kw), audit(dense, groupings=[("g",)], **kw)
    da, db = audit_document(a), audit_document(b)
    for doc in (da, db):
        doc.pop("provenance", None)
        doc.pop("manifest", None)  # the build's meta (two_pass states its cutoff rule), not a measure
    assert da == db


def test_merge_promotes_and_equals_one_build(data):
    samples, _, i, j, s, compact, _ = data
    half = i.size // 2
    edges = compact.edges
    parts = []
    for sl in (slice(0, half), slice(half, None)):
        bld = DistributionBuilder(samples, edges, tail_cutoff=compact.tail_cutoff, cell_limit=2)
        bld.add(i[sl], j[sl], s[sl])
        parts.append(bld.result())
    one = DistributionBuilder(samples, edges, tail_cutoff=compact.tail_cutoff, cell_limit=2)
    one.add(i, j, s)
    whole = one.result()
    merged = parts[0] + parts[1]
    assert merged == whole and (parts[1] + parts[0]) == whole
    assert 0 < whole.hist_rows.shape[0] < G * G  # some cells past 2 comparisons, some not


def test_compare_and_store(tmp_path, data):
    samples, emb, i, j, s, compact, _ = data
    d = compare_embeddings(emb, samples, backend="numpy", progress=False, fmr_targets=(1e-2, 1e-3))
    assert d.hist_rows.shape[0] == 0 and d.n_nonmated == compact.n_nonmated
    back = load_distributions(save_distributions(d, tmp_path / "d.fadist"))
    assert back == d
    # a dense /3 file is converted on load to the same layout
    import json

    with np.load(tmp_path / "d.fadist") as z:
        arrays = {k: z[k] for k in z.files if k not in ("__digest__", "hist_rows", "hist_row_of_cell",
                                                         "bulk_score", "bulk_probe", "bulk_reference")}
    dense = np.zeros((G, G, B), np.int64)
    gs = samples.group_of_sample
    for sc, p, r in ((d.tail_score, d.tail_probe, d.tail_reference),
                     (d.bulk_score, d.bulk_probe, d.bulk_reference)):
        np.add.at(dense, (gs[p], gs[r], bin_index(sc, d.edges)), 1)
    arrays["impostor_hist"] = dense
    doc = json.loads(str(arrays["__json__"]))
    doc["format"] = "faceaudit.fadist/2"
    arrays["__json__"] = np.asarray(json.dumps(doc))
    with open(tmp_path / "v2.fadist", "wb") as f:
        np.savez(f, **arrays)
    old = load_distributions(tmp_path / "v2.fadist")
    if d.bulk_score.size == 0:  # every small cell's scores are in the tail: the layout converts exactly
        assert old == d
    np.testing.assert_array_equal(old.nonmated_counts(), d.nonmated_counts())


def test_refused_up_front(monkeypatch):
    samples, emb, i, j, s = hundred_groups(1)
    monkeypatch.setenv("FACEAUDIT_HISTOGRAM_MEMORY", "100K")
    assert histogram_memory_limit() == 100 * 1024
    # compare knows every cell's count before it allocates: refused in the plan, with the figure
    allocated = []
    monkeypatch.setattr(plan_module.Planner, "_block_plan", lambda *a: allocated.append(1))
    with pytest.raises(HistogramMemoryError, match=r"need 0\.00 GiB .* FACEAUDIT_HISTOGRAM_MEMORY"):
        compare_embeddings(emb, samples, backend="numpy", progress=False)
    assert not allocated
    # a listed build counts, allocates nothing past the limit, and refuses with the whole input's figure
    bld = DistributionBuilder(samples, uniform_edges(-1, 1, B), cell_limit=0)
    for k in range(0, i.size, 5000):
        bld.add(i[k:k + 5000], j[k:k + 5000], s[k:k + 5000])
        assert bld._rows.nbytes <= 100 * 1024
    with pytest.raises(HistogramMemoryError, match="group-pair cells"):
        bld.result()
    for bad in ("-1", "abc", "0", "nanG", "1e-9", "infG", "1e400"):
        monkeypatch.setenv("FACEAUDIT_HISTOGRAM_MEMORY", bad)
        with pytest.raises(InputError, match="FACEAUDIT_HISTOGRAM_MEMORY"):
            histogram_memory_limit()


def test_memory_limit_setting_hostile_text():
    """Any text in FACEAUDIT_HISTOGRAM_MEMORY is a positive byte count or a named error, never a traceback."""
    import os

    from hypothesis import given, settings
    from hypothesis import strategies as st

    sizes = st.from_regex(r"\s*[-+]?\d*\.?\d*(e\d+)?\s*[kKmMgGtT]?(i?[bB])?\s*", fullmatch=True)

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.text(max_size=12), sizes))
    def check(text):
        if "\x00" in text:
            return
        old = os.environ.get("FACEAUDIT_HISTOGRAM_MEMORY")
        os.environ["FACEAUDIT_HISTOGRAM_MEMORY"] = text
        try:
            value = histogram_memory_limit()
            assert isinstance(value, int) and value >= 1
            if not text.strip():
                assert value == 4 << 30
        except InputError as exc:
            assert "FACEAUDIT_HISTOGRAM_MEMORY" in str(exc)
        finally:
            if old is None:
                os.environ.pop("FACEAUDIT_HISTOGRAM_MEMORY", None)
            else:
                os.environ["FACEAUDIT_HISTOGRAM_MEMORY"] = old

    check()
    known = (("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("1024", 1024), ("2kb", 2048))
    for text, value in known:
        os.environ["FACEAUDIT_HISTOGRAM_MEMORY"] = text
        try:
            assert histogram_memory_limit() == value
        finally:
            os.environ.pop("FACEAUDIT_HISTOGRAM_MEMORY", None)
