"""The streamed full DET (measures.verification.det_stream, audit.stream_full_det) and its Parquet file
(report.detfile.write_det, ``faceaudit audit --det-out``).

References: ``det_curve(view, genuine)`` (the in-memory full curve, itself checked against bob.measure and
scikit-learn in test_conformance) and brute-force counts over the raw scores, by comparisons over every
score, sharing no code with faceaudit's searches.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from faceaudit.audit import _full_det, _subsets, audit, stream_full_det
from faceaudit.cli import app
from faceaudit.data.ingest import load_score_file
from faceaudit.errors import EmptyError, InputError, NotExactError, OptionError, OutputError
from faceaudit.groups import group_name, grouping_name
from faceaudit.measures.verification import det_curve, det_stream
from faceaudit.options import check_writable_file
from faceaudit.report.detfile import DET_METADATA_KEY, write_det
from faceaudit.scores import DistributionBuilder, ImpostorView, SampleIndex, uniform_edges
from faceaudit.synthetic import write_evaluation_set

KEYS = ("threshold", "false_matches", "false_non_matches")
tied = st.lists(st.integers(-6, 6).map(float), min_size=1, max_size=40)  # integer scores: many ties


def _joined(parts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in (*KEYS, "exact")}


def _brute(neg: np.ndarray, pos: np.ndarray, t: float) -> tuple[int, int]:
    return int(np.sum(neg >= t)), int(np.sum(pos < t))


def _view(neg: np.ndarray, cutoff: float | None) -> ImpostorView:
    """An exact view, or one keeping only the scores >= cutoff (the others by count and maximum)."""
    if cutoff is None:
        return ImpostorView.exact(neg)
    below = neg[neg < cutoff]
    return ImpostorView(tail=np.sort(neg[neg >= cutoff]), n_below=int(below.size),
                        below_max=float(below.max()) if below.size else -np.inf)


@settings(max_examples=150, deadline=None)
@given(neg=tied, pos=tied, chunk=st.integers(2, 9), cut=st.one_of(st.none(), st.integers(-6, 6)))
def test_stream_equals_det_curve_and_brute_force(neg, pos, chunk, cut):
    neg, pos = np.array(neg), np.sort(np.array(pos))
    view = _view(neg, None if cut is None else float(cut))
    if view.tail.size == 0 and view.n_below == 0:
        return
    parts = list(det_stream(view, pos, chunk))
    assert all(0 < p["threshold"].size <= chunk for p in parts)
    got, want = _joined(parts), det_curve(view, pos)
    for k in KEYS:
        assert np.array_equal(got[k], want[k]), k
    assert got["exact"].all()
    assert all(int(p["nonmated"]) == neg.size and int(p["mated"]) == pos.size for p in parts)
    # brute force: every distinct observed score above the bulk, then +inf, each with its counts
    bulk_max = view.below_max if view.n_below else -np.inf
    observed = sorted({float(x) for x in np.concatenate([neg, pos]) if x > bulk_max})
    assert got["threshold"].tolist() == [*observed, np.inf]
    for t, fm, fnm in zip(*(got[k] for k in KEYS), strict=True):
        assert (fm, fnm) == _brute(neg, pos, t)


@settings(max_examples=60, deadline=None)
@given(neg=tied, pos=tied, chunk=st.integers(2, 5))
def test_bulk_points_come_first_marked_inexact_with_brute_force_counts(neg, pos, chunk):
    neg, pos = np.array(neg), np.sort(np.array(pos))
    view = _view(neg, 0.0)
    if view.n_below == 0:
        return
    edges = np.arange(-6.5, view.below_max + 0.01, 1.0)  # edges at or below the tail, between scores
    fm = np.array([np.sum(neg >= e) for e in edges], np.int64)
    got = _joined(list(det_stream(view, pos, chunk, bulk=(edges, fm))))
    n = edges.size
    assert np.array_equal(got["threshold"][:n], edges) and not got["exact"][:n].any()
    assert got["exact"][n:].all()
    for t, f, g in zip(*(got[k][:n] for k in KEYS), strict=True):
        assert (f, g) == _brute(neg, pos, t)
    rest = det_curve(view, pos)
    assert all(np.array_equal(got[k][n:], rest[k]) for k in KEYS)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), chunk=st.integers(2, 9), cut=st.one_of(st.none(), st.integers(-30, 30)))
def test_chunks_are_full_without_ties(data, chunk, cut):
    """Distinct scores (no value twice, none shared): every exact chunk but the last holds ``chunk``
    points, whatever the interleaving of the two arrays (the mated one may end inside the tail)."""
    values = data.draw(st.lists(st.integers(-40, 40), min_size=2, max_size=60, unique=True))
    split = data.draw(st.integers(1, len(values) - 1))
    neg, pos = np.array(values[:split], float), np.sort(np.array(values[split:], float))
    view = _view(neg, None if cut is None else float(cut))
    if view.tail.size == 0 and view.n_below == 0:
        return
    parts = list(det_stream(view, pos, chunk))
    assert [p["threshold"].size for p in parts[:-1]] == [chunk] * (len(parts) - 1)
    got, want = _joined(parts), det_curve(view, pos)
    assert all(np.array_equal(got[k], want[k]) for k in KEYS)


def test_refusals():
    pos = np.array([1.0, 2.0])
    with pytest.raises(EmptyError):
        next(det_stream(ImpostorView.exact([]), pos))
    with pytest.raises(EmptyError):
        next(det_stream(ImpostorView.exact([0.0]), np.empty(0)))
    window = ImpostorView(tail=np.array([0.5, 0.7]), n_below=3, below_max=0.1, n_above=2, above_min=0.9)
    with pytest.raises(NotExactError):
        next(det_stream(window, pos))
    with pytest.raises(NotExactError):  # the in-memory curve left n_above out of every count
        det_curve(window, pos)
    with pytest.raises(InputError):
        next(det_stream(ImpostorView.exact([0.0]), pos, chunk=1))
    view = _view(np.array([-1.0, 0.0, 1.0]), 0.5)
    with pytest.raises(InputError):  # a "bulk" point inside the exact tail
        next(det_stream(view, pos, bulk=(np.array([0.7]), np.array([1]))))
    with pytest.raises(InputError):
        next(det_stream(view, pos, bulk=(np.array([-2.0, -1.5]), np.array([3]))))


def test_chunk_holds_the_chunk_whatever_the_ties():
    """Long runs of one value and a mated array far longer than the tail: every chunk stays within the
    chunk size, and the join is the full curve."""
    rng = np.random.default_rng(4)
    neg = np.concatenate([np.full(5000, 1.0), rng.normal(0, 1, 3000).round(2)])
    pos = np.sort(np.concatenate([np.full(4000, 1.0), rng.normal(2, 1, 20000)]))
    view = _view(neg, -0.5)
    parts = list(det_stream(view, pos, 64))
    assert max(p["threshold"].size for p in parts) <= 64
    got, want = _joined(parts), det_curve(view, pos)
    assert all(np.array_equal(got[k], want[k]) for k in KEYS)


# ----- histogram + tail distributions, groups ----------------------------------------------------------


def _grouped(seed: int, cutoff: float) -> tuple[object, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 40
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{i // 2}" for i in range(n)],
                                       {"g": [("a", "b", "c")[(i // 2) % 3] for i in range(n)]})
    i, j = np.triu_indices(n, 1)
    s = np.round(rng.normal(0, 1, i.size), 1)
    mated = samples.subject_of_sample[i] == samples.subject_of_sample[j]
    s[mated] += 2
    b = DistributionBuilder(samples, uniform_edges(-4, 6, 16), tail_cutoff=cutoff)
    b.add(i, j, s)
    return b.result(), i, j, s, mated


@pytest.mark.parametrize(("seed", "cutoff"), [(0, 1.0), (1, 0.3), (2, -np.inf)])
def test_stream_full_det_equals_full_det_for_every_group(seed, cutoff):
    dist = _grouped(seed, cutoff)[0]
    subsets = _subsets(dist, [("g",)])
    assert any(sub.view.n_below for sub in subsets.values()) == (cutoff != -np.inf)
    for sub in subsets.values():
        want = _full_det(dist, sub, 10**12)
        parts = list(stream_full_det(dist, sub, 7))
        got = _joined(parts)
        assert all(np.array_equal(got[k], want[k]) for k in KEYS)
        assert int(want["distinct"]) == got["threshold"].size
        assert got["exact"].sum() == det_curve(sub.view, sub.genuine)["threshold"].size


def _rows_by_group(table) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    d = table.to_pydict()
    out: dict[tuple[str, str], dict[str, list]] = {}
    for r in range(table.num_rows):
        g = out.setdefault((d["grouping"][r], d["group"][r]), {k: [] for k in d})
        for k in d:
            g[k].append(d[k][r])
    return {k: {c: np.array(v) for c, v in g.items()} for k, g in out.items()}


def test_parquet_round_trip_equals_full_det_and_brute_force(tmp_path):
    dist, i, j, s, mated = _grouped(5, 0.8)
    path = tmp_path / "det.parquet"
    summary = write_det(dist, path, [("g",)], chunk=16, settings={"note": "x"})
    table = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 4  # written chunk by chunk, never more than a chunk per row group
    assert all(meta.row_group(r).num_rows <= 16 for r in range(meta.num_row_groups))
    groups = _rows_by_group(table)
    assert table.num_rows == summary["rows"] == sum(g["rows"] for g in summary["groups"])
    g_of = dist.samples.group_of_sample
    label = {k: v for k, v in enumerate(dist.samples.group_labels)}
    for key, sub in _subsets(dist, [("g",)]).items():
        rows = groups[(grouping_name(key[0]), group_name(key[1]))]
        want = _full_det(dist, sub, 10**12)
        assert np.array_equal(rows["threshold"], want["threshold"])
        assert np.array_equal(rows["n_false_match"], want["false_matches"])
        assert np.array_equal(rows["n_false_nonmatch"], want["false_non_matches"])
        assert np.array_equal(rows["fmr"], want["false_matches"] / int(want["nonmated"]))
        assert np.array_equal(rows["fnmr"], want["false_non_matches"] / int(want["mated"]))
        # brute force over the raw pairs of the group: first and last points, totals
        inside = np.isin([label[g][0] for g in g_of], key[1]) if key[1] else np.ones(g_of.size, bool)
        both = inside[i] & inside[j]
        neg, pos = s[both & ~mated], s[inside[i] & mated]
        assert set(rows["n_nonmated"]) == {neg.size} and set(rows["n_mated"]) == {pos.size}
        for r in range(rows["threshold"].size):  # every row; the first and the last among them
            t = rows["threshold"][r]
            assert (rows["n_false_match"][r], rows["n_false_nonmatch"][r]) == _brute(neg, pos, t)
        inner = dist.edges[1:-1]
        assert np.array_equal(rows["threshold"][~rows["exact"]], inner[inner <= sub.view.below_max])
        above = sorted({float(x) for x in np.concatenate([neg, pos]) if x > sub.view.below_max})
        assert rows["threshold"][rows["exact"]].tolist() == [*above, np.inf]
        assert (~rows["exact"]).any() == bool(sub.view.n_below)
        assert rows["threshold"][-1] == np.inf and rows["exact"][-1]
        assert list(rows["exact"]) == sorted(rows["exact"])  # bin edges first, then the tail
    meta = json.loads(pq.read_schema(path).metadata[DET_METADATA_KEY.encode()])
    assert meta["settings"] == {"note": "x"} and meta["groupings"] == [["g"]]
    assert meta["faceaudit_version"] and meta["histogram_bins"] == 16


def test_unmeasurable_group_has_no_rows_and_is_listed(tmp_path):
    samples = SampleIndex.from_columns(["a1", "a2", "b1", "c1"], ["A", "A", "B", "C"],
                                       {"g": ["x", "x", "y", "y"]})
    b = DistributionBuilder(samples, uniform_edges(-1, 1, 4), tail_cutoff=-np.inf)
    b.add(np.array([0, 0, 2]), np.array([1, 2, 3]), np.array([0.9, 0.1, 0.2]))
    summary = write_det(b.result(), tmp_path / "d.parquet", [("g",)])
    rows = {(g["grouping"], g["group"]): g["rows"] for g in summary["groups"]}
    assert rows[("g", "y")] == 0 and rows[("g", "x")] == 0  # y: no mated pair; x: no non-mated pair
    assert rows[("overall", "all")] == 4  # 0.1, 0.2, 0.9, +inf
    assert pq.read_table(tmp_path / "d.parquet").num_rows == 4


@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.text(min_size=1, max_size=8).filter(lambda t: t.strip() == t and "\x00" not in t),
                       min_size=2, max_size=2, unique=True))
def test_group_names_are_written_exactly_as_given(tmp_path_factory, labels):
    n = 8
    samples = SampleIndex.from_columns([f"s{i}" for i in range(n)], [f"p{i // 2}" for i in range(n)],
                                       {"g": [labels[(i // 2) % 2] for i in range(n)]})
    i, j = np.triu_indices(n, 1)
    b = DistributionBuilder(samples, uniform_edges(-1, 1, 4), tail_cutoff=-np.inf)
    b.add(i, j, np.linspace(-1, 1, i.size))
    path = tmp_path_factory.mktemp("names") / "d.parquet"
    write_det(b.result(), path, [("g",)])
    written = set(pq.read_table(path).column("group").to_pylist())
    assert written == {"all", *labels}


# ----- the option and the command ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_det_out_check_on_hostile_text(tmp_path_factory, text):
    """Any text: a Path whose folder takes files, or OptionError; never another exception, never a file."""
    folder = tmp_path_factory.mktemp("opt")
    target = folder / text if text else text
    try:
        path = check_writable_file("--det-out", target)
    except OptionError as exc:
        assert exc.option == "--det-out"
    else:
        assert path.parent.is_dir() and not path.is_dir() and "\x00" not in str(path)
        path.write_bytes(b"")  # the file can in fact be made there
        path.unlink()
    assert list(folder.iterdir()) == []


def test_det_out_refuses_folders_missing_folders_and_unwritable_places(tmp_path):
    for bad in (tmp_path, tmp_path / "no" / "d.parquet"):
        with pytest.raises(OptionError):
            check_writable_file("--det-out", bad)
    if (p := __import__("pathlib").Path("/proc")).is_dir():  # takes no new file, even for root
        with pytest.raises(OptionError, match="takes no new file"):
            check_writable_file("--det-out", p / "faceaudit-det.parquet")


@pytest.fixture(scope="module")
def evalset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalset")
    samples, scores = write_evaluation_set(folder, n_subjects=40, seed=3, discrete=True)
    rows = list(csv.DictReader(open(scores)))
    half = folder / "half.csv"  # one order of each pair: the command reads pairs as unordered
    half.write_text("probe,reference,score\n" + "".join(
        f"{r['probe']},{r['reference']},{r['score']}\n" for r in rows if r["probe"] < r["reference"]))
    return samples, half


def test_cli_det_out_rows_equal_the_audit_curves_with_the_json_provenance(tmp_path, evalset):
    samples, scores = evalset
    out, det = tmp_path / "a.json", tmp_path / "det.parquet"
    args = ["audit", "--scores", str(scores), "--samples", str(samples), "--group", "sex", "--group",
            "region", "--fmr", "0.01", "--bins", "16", "--bootstrap", "0", "--json", str(out), "--quiet"]
    r = CliRunner().invoke(app, [*args, "--det-out", str(det)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    meta = json.loads(pq.read_schema(det).metadata[DET_METADATA_KEY.encode()])
    assert meta["manifest"] == doc["manifest"] and meta["settings"] == doc["settings"]
    assert meta["manifest"]["inputs"]["scores"]["sha256"]
    groups = _rows_by_group(pq.read_table(det))
    dist = load_score_file(scores, samples, group_columns=["sex", "region"], fmr_targets=[0.01], bins=16)
    res = audit(dist, fmr_targets=[0.01], bootstrap=0)
    subsets = _subsets(dist, list(res.settings.groupings))
    assert set(groups) == {(grouping_name(k[0]), group_name(k[1])) for k in subsets}
    for key, sub in subsets.items():
        rows, want = groups[(grouping_name(key[0]), group_name(key[1]))], _full_det(dist, sub, 10**12)
        assert np.array_equal(rows["threshold"], want["threshold"])
        assert np.array_equal(rows["n_false_match"], want["false_matches"])
        assert np.array_equal(rows["n_false_nonmatch"], want["false_non_matches"])
    # the JSON's decimated DET points are rows of the file
    overall = groups[("overall", "all")]
    for t in doc["overall"]["det"]["threshold"]:
        assert float(t) in set(overall["threshold"].tolist())


@pytest.mark.parametrize("bad", ["folder", "missing", "same-as-json"])
def test_cli_bad_det_out_exits_2_before_any_work(tmp_path, evalset, bad):
    samples, scores = evalset
    work = tmp_path / "w"
    work.mkdir()
    det = {"folder": work, "missing": work / "no" / "d.parquet", "same-as-json": work / "a.json"}[bad]
    r = CliRunner().invoke(app, ["audit", "--det-out", str(det), "--scores", str(scores), "--samples",
                                 str(samples), "--bootstrap", "0", "--json", str(work / "a.json"), "--quiet"])
    assert r.exit_code == 2, r.output
    assert ("OptionError" if bad != "same-as-json" else "InputError") in r.output and "--det-out" in r.output
    assert "Traceback" not in r.output
    assert list(work.iterdir()) == []


def test_nul_in_the_path_is_a_named_error(tmp_path):
    with pytest.raises(OptionError, match="NUL"):
        check_writable_file("--det-out", tmp_path / "a\x00b.parquet")
    with pytest.raises(OutputError, match="NUL"):
        write_det(_grouped(0, 1.0)[0], tmp_path / "a\x00b.parquet")
    assert list(tmp_path.iterdir()) == []


def test_write_failure_is_a_named_error_and_leaves_no_file(tmp_path, monkeypatch):
    dist = _grouped(0, 1.0)[0]
    path = tmp_path / "det.parquet"

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    import faceaudit.report.detfile as detfile

    monkeypatch.setattr(detfile, "_batch", full)
    with pytest.raises(OutputError, match="No space left"):
        write_det(dist, path)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=60, deadline=None)
@given(neg=st.lists(st.integers(-8, 8).map(lambda v: v / 2), min_size=1, max_size=80),
       pos=st.lists(st.integers(-8, 8).map(lambda v: v / 2), min_size=1, max_size=30),
       target=st.sampled_from([0.05, 0.3, 0.9]), chunk=st.integers(2, 6))
def test_written_rows_equal_brute_force_on_any_tied_scores(tmp_path_factory, neg, pos, target, chunk):
    """from_arrays (histogram + a tail down to the target and the EER) to a file: every row's counts by
    brute force, the exact rows are the distinct scores above the bulk and +inf, edges are bin edges."""
    from faceaudit.build import from_arrays

    neg_a, pos_a = np.array(neg), np.array(pos)
    dist = from_arrays(pos_a, neg_a, fmr_targets=[target], bins=4)
    path = tmp_path_factory.mktemp("w") / "d.parquet"
    write_det(dist, path, chunk=chunk)
    rows = _rows_by_group(pq.read_table(path))[("overall", "all")]
    view = dist.impostor_view()
    for t, fm, fnm in zip(rows["threshold"], rows["n_false_match"], rows["n_false_nonmatch"], strict=True):
        assert (fm, fnm) == _brute(neg_a, pos_a, t)
    bulk_max = view.below_max if view.n_below else -np.inf
    above = sorted({float(x) for x in np.concatenate([neg_a, pos_a]) if x > bulk_max})
    assert rows["threshold"][rows["exact"]].tolist() == [*above, np.inf]
    assert set(rows["threshold"][~rows["exact"]].tolist()) <= set(dist.edges.tolist())
    assert set(rows["n_nonmated"]) == {neg_a.size} and set(rows["n_mated"]) == {pos_a.size}
