"""Decision-only and censored 1:1 results: the audit's numbers where they can answer, refusal elsewhere."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lfw_subset import all_pairs, subset, write_samples

from faceaudit.audit import audit
from faceaudit.data.decisions import (
    CensoringError,
    DecisionFileError,
    DecisionWordError,
    read_closed_comparisons,
)
from faceaudit.data.ingest import load_score_file
from faceaudit.data.tables import read_sample_table
from faceaudit.errors import DuplicatePairError, FaceAuditError, MatedLabelError, UnknownSampleError
from faceaudit.measures.decisions import SYSTEM_DECISION, BelowCensoringError, closed_audit

BOOT, SEED = 60, 5


def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    d = tmp_path_factory.mktemp("lfw_closed")
    ids, subj, sex, race, x = subset()
    samples = write_samples(d / "samples.csv", ids, subj, sex, race)
    i, j, s = all_pairs(x)
    ids = np.array(ids, dtype=object)
    scores = write_rows(d / "scores.csv", ["probe", "reference", "score"], zip(ids[i], ids[j], s.tolist()))
    dist = load_score_file(scores, samples, group_columns=["sex", "race"], fmr_targets=[1e-2, 1e-1])
    result = audit(dist, fmr_targets=[1e-2, 1e-1], bootstrap=BOOT, seed=SEED)
    index = read_sample_table(samples, ["sex", "race"])
    return {
        "dir": d,
        "samples": samples,
        "index": index,
        "i": i,
        "j": j,
        "s": s,
        "ids": ids,
        "audit": result,
        "subj": np.array(subj, dtype=object),
        "sex": np.array(sex, dtype=object),
    }


def _same_rate(mine, theirs):
    """The typed rates are equal: count, total, Clopper-Pearson, rule of three and subject bootstrap."""
    assert (mine.count, mine.total) == (theirs.count, theirs.total)
    assert mine == theirs


def test_decision_only_equals_the_audit_at_the_hidden_threshold(lfw):
    res = lfw["audit"]
    for k, target in enumerate((1e-2, 1e-1)):
        t = res.overall.operating_points[k].threshold
        words = np.where(lfw["s"] >= t, "match", "no-match")
        path = write_rows(
            lfw["dir"] / f"decisions{k}.csv",
            ["probe", "reference", "decision"],
            zip(lfw["ids"][lfw["i"]], lfw["ids"][lfw["j"]], words),
        )
        closed = read_closed_comparisons(path, lfw["index"])
        assert closed.kind == "decision"
        out = closed_audit(closed, bootstrap=BOOT, seed=SEED)
        (point,) = out.points
        assert point.source == SYSTEM_DECISION and point.threshold is None
        at = res.at(t).overall
        assert (point.overall.fmr.count, point.overall.fmr.total) == (at.fmr.count, at.fmr.total)
        assert (point.overall.fnmr.count, point.overall.fnmr.total) == (
            at.fnmr.count,
            at.fnmr.total,
        )
        theirs = {
            (e.grouping_name, e.group): e.at_global_threshold[k] for es in res.by_group.values() for e in es
        }
        assert len(point.by_group) == len(theirs)
        for g in point.by_group:
            entry = theirs[(" x ".join(g.grouping), " | ".join(g.values))]
            assert entry.threshold == t
            _same_rate(g.fmr, entry.fmr)
            _same_rate(g.fnmr, entry.fnmr)
        for cg in point.cross_group:
            matrix = res.cross_group(target, cg.grouping)
            assert cg.probe_groups == matrix.probe_groups and cg.fmr_target is None
            for row_m, row_t in zip(cg.fmr, matrix.fmr):
                for m, th in zip(row_m, row_t):
                    _same_rate(m, th)
        # brute force, independently of both: women's FMR at the hidden threshold
        women = lfw["sex"] == "female"
        nm = (lfw["subj"][lfw["i"]] != lfw["subj"][lfw["j"]]) & women[lfw["i"]] & women[lfw["j"]]
        g = next(g for g in point.by_group if g.values == ("female",))
        assert (g.fmr.count, g.fmr.total) == (int((lfw["s"][nm] >= t).sum()), int(nm.sum()))
        with pytest.raises(FaceAuditError):
            closed_audit(closed, thresholds=[0.5])
        assert out.curves == ()


def _censored_file(lfw, c, name="censored.csv"):
    shown = [repr(float(v)) if v >= c else "" for v in lfw["s"]]
    return write_rows(
        lfw["dir"] / name,
        ["probe", "reference", "score"],
        zip(lfw["ids"][lfw["i"]], lfw["ids"][lfw["j"]], shown),
    )


def _brute(lfw, t, group=None):
    mated = lfw["subj"][lfw["i"]] == lfw["subj"][lfw["j"]]
    inside = (
        np.ones(mated.size, bool)
        if group is None
        else (lfw["sex"][lfw["i"]] == group) & (lfw["sex"][lfw["j"]] == group)
    )
    nm, m = ~mated & inside, mated & inside
    return int((lfw["s"][nm] >= t).sum()), int(nm.sum()), int((lfw["s"][m] < t).sum()), int(m.sum())


def test_censored_equals_scores_at_and_above_the_level_and_refuses_below(lfw):
    res = lfw["audit"]
    t_hi, t_lo = (p.threshold for p in res.overall.operating_points)  # FMR 1e-2, 1e-1
    c = float(np.quantile(lfw["s"], 0.5))  # half the pairs unreported
    closed = read_closed_comparisons(_censored_file(lfw, c), lfw["index"], censored_below=c)
    mated = lfw["subj"][lfw["i"]] == lfw["subj"][lfw["j"]]
    assert closed.censored_nonmated == int(((lfw["s"] < c) & ~mated).sum())
    assert closed.censored_mated == int(((lfw["s"] < c) & mated).sum())
    out = closed_audit(closed, thresholds=[c, t_lo, t_hi], bootstrap=BOOT, seed=SEED)
    for point in out.points:
        t = point.threshold
        for group in (None, "female", "male"):
            g = point.overall if group is None else next(x for x in point.by_group if x.values == (group,))
            assert (g.fmr.count, g.fmr.total, g.fnmr.count, g.fnmr.total) == _brute(lfw, t, group)
    # bootstrap intervals too equal the audit's at its thresholds
    theirs = {
        (e.grouping_name, e.group): e.at_global_threshold[0] for es in res.by_group.values() for e in es
    }
    for g in out.points[2].by_group:
        entry = theirs[(" x ".join(g.grouping), " | ".join(g.values))]
        _same_rate(g.fmr, entry.fmr)
        _same_rate(g.fnmr, entry.fnmr)
    # DET above the level: every operating point exact, none below the level
    curve = next(x for x in out.curves if x.grouping == ())
    assert curve.threshold.min() >= c
    for t in curve.threshold[:: max(1, curve.threshold.size // 50)]:
        fm, _, fnm, _ = _brute(lfw, t)
        assert curve.false_matches[curve.threshold == t][0] == fm
        assert curve.false_non_matches[curve.threshold == t][0] == fnm
    # EER: the audit's where it lies above the level
    assert res.overall.eer_threshold > c
    assert curve.eer_threshold == res.overall.eer_threshold
    assert curve.eer == res.overall.eer
    with pytest.raises(BelowCensoringError):
        closed_audit(closed, thresholds=[c - 1e-9], bootstrap=0)


def test_censored_above_the_eer_reports_no_eer(lfw):
    res = lfw["audit"]
    c = res.overall.eer_threshold + 0.05
    closed = read_closed_comparisons(
        _censored_file(lfw, c, "censored_hi.csv"), lfw["index"], censored_below=c
    )
    out = closed_audit(closed, bootstrap=0)
    entries = {((), ()): res.overall}
    entries.update({(e.grouping, e.values): e for es in res.by_group.values() for e in es})
    assert out.curves[0].grouping == () and out.curves[0].eer is None
    checked = {"none": 0, "some": 0}
    for cv in out.curves:
        theirs = entries[(cv.grouping, cv.values)]
        if theirs.eer_threshold is None:
            continue
        if theirs.eer_threshold < c:
            assert cv.eer is None
            checked["none"] += 1
        elif cv.eer is not None:
            assert (cv.eer, cv.eer_threshold) == (theirs.eer, theirs.eer_threshold)
            checked["some"] += 1
    assert checked["none"] >= 3 and checked["some"] >= 1
    assert out.points[0].threshold == c
    assert (out.points[0].overall.fmr.count, out.points[0].overall.fmr.total) == _brute(lfw, c)[:2]


# ----- named errors --------------------------------------------------------------------------------
SAMPLES = [("a1", "A", "f"), ("a2", "A", "f"), ("b1", "B", "m"), ("b2", "B", "m"), ("007", "C", "f")]


@pytest.fixture
def small(tmp_path):
    path = write_rows(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"], SAMPLES)
    return tmp_path, read_sample_table(path, ["sex"])


@pytest.mark.parametrize(
    "rows, error",
    [
        ([("a1", "a2", "match"), ("a1", "b1", "maybe")], DecisionWordError),
        ([("a1", "a2", "match"), ("a1", "b1", "")], DecisionWordError),
        ([("a1", "a2", "match"), ("a2", "a1", "no-match")], DuplicatePairError),
        ([("a1", "zz", "match")], UnknownSampleError),
        ([("a1", "7", "match")], UnknownSampleError),  # "007" is not "7": ids are strings as written
        ([("a1", "", "match")], UnknownSampleError),
    ],
)
def test_decision_file_errors(small, rows, error):
    d, index = small
    path = write_rows(d / "r.csv", ["probe", "reference", "decision"], rows)
    with pytest.raises(error):
        read_closed_comparisons(path, index)


def test_ids_are_strings_as_written(small):
    d, index = small
    path = write_rows(
        d / "r.csv",
        ["probe", "reference", "decision"],
        [("007", "a1", "no-match"), ("a1", "a2", "Match"), ("b1", "b2", " no_match ")],
    )
    out = closed_audit(read_closed_comparisons(path, index), bootstrap=0)
    assert (out.points[0].overall.fmr.count, out.points[0].overall.fmr.total) == (0, 1)
    assert (out.points[0].overall.fnmr.count, out.points[0].overall.fnmr.total) == (1, 2)


@pytest.mark.parametrize(
    "rows, c, error",
    [
        ([("a1", "a2", "0.9"), ("a1", "b1", "0.5")], 0.8, CensoringError),  # reported below the level
        ([("a1", "a2", "0.9"), ("a1", "b1", "")], None, CensoringError),  # unreported, no level stated
        ([("a1", "a2", "0.9"), ("a1", "b1", "NA")], 0.8, DecisionFileError),
        ([("a1", "a2", "0.9"), ("a1", "b1", "nan")], 0.8, DecisionFileError),
        ([("a1", "a2", "0.9"), ("b1", "a1", "")], float("nan"), CensoringError),
    ],
)
def test_censored_file_errors(small, rows, c, error):
    d, index = small
    path = write_rows(d / "r.csv", ["probe", "reference", "score"], rows)
    with pytest.raises(error):
        read_closed_comparisons(path, index, censored_below=c)


def test_mated_column_must_agree(small):
    d, index = small
    path = write_rows(
        d / "r.csv",
        ["probe", "reference", "decision", "mated"],
        [("a1", "a2", "match", "1"), ("a1", "b1", "no-match", "1")],
    )
    with pytest.raises(MatedLabelError):
        read_closed_comparisons(path, index)


ID = st.sampled_from(["a1", "a2", "b1", "b2", "007", "7", "", "x", " a1"])
WORD = st.sampled_from(["match", "no-match", "MATCH", "", "1", "0", "maybe", "true", "ñ", "no match"])
SCORE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["", "x", "1e400", "0.5"])
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(ID, ID, WORD, SCORE), max_size=8),
    header=st.sampled_from(
        [
            ["probe", "reference", "decision"],
            ["probe", "reference", "score"],
            ["probe", "reference", "decision", "score"],
            ["probe", "reference"],
            ["probe", "decision", "score"],
        ]
    ),
    c=st.sampled_from([None, 0.5, -1.0]),
)
def test_hostile_result_files(small, rows, header, c):
    d, index = small
    cols = {"probe": 0, "reference": 1, "decision": 2, "score": 3}
    path = write_rows(d / "h.csv", header, [[r[cols[h]] for h in header] for r in rows])
    try:
        closed = read_closed_comparisons(path, index, censored_below=c)
        closed_audit(closed, bootstrap=3)
    except FaceAuditError:
        return


def test_parquet_results_with_integer_ids(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    samples = write_rows(tmp_path / "s.csv", ["sample_id", "subject_id"], [(7, "A"), (8, "A"), (9, "B")])
    index = read_sample_table(samples)
    pq.write_table(
        pa.table({"probe": [7, 7, 8], "reference": [8, 9, 9], "score": [0.9, None, 0.7]}),
        tmp_path / "r.parquet",
    )
    closed = read_closed_comparisons(tmp_path / "r.parquet", index, censored_below=0.5)
    out = closed_audit(closed, bootstrap=0)
    assert (closed.censored_nonmated, out.points[0].overall.fmr.count, out.points[0].overall.fmr.total) == (
        1,
        1,
        2,
    )
    pq.write_table(
        pa.table({"probe": [7], "reference": [[8]], "decision": ["match"]}), tmp_path / "bad.parquet"
    )
    with pytest.raises(FaceAuditError):
        read_closed_comparisons(tmp_path / "bad.parquet", index)


def test_audit_refuses_closed_results(small):
    d, index = small
    path = write_rows(
        d / "r.csv", ["probe", "reference", "decision"], [("a1", "a2", "match"), ("a1", "b1", "no-match")]
    )
    with pytest.raises(FaceAuditError):
        audit(read_closed_comparisons(path, index).dist, bootstrap=0)


def test_eer_above_a_bulk_with_a_short_tail_is_refused_not_a_traceback():
    """eer indexed past a tail of fewer than two scores (IndexError) when the EER lay in the bulk."""
    from faceaudit.errors import NotExactError
    from faceaudit.measures.verification import eer
    from faceaudit.scores import ImpostorView

    genuine = np.array([0.0, 0.5, 0.9])
    for tail in ([], [0.95]):
        with pytest.raises(NotExactError):
            eer(ImpostorView(tail=np.array(tail), n_below=5, below_max=0.1), genuine)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(ID, st.sampled_from(["A", "B", "", "007", "7"]), st.sampled_from(["f", "m", ""])),
        max_size=6,
    ),
    header=st.sampled_from(
        [["sample_id", "subject_id", "sex"], ["sample_id", "sex"], ["sample_id", "subject_id"]]
    ),
)
def test_hostile_sample_tables(tmp_path_factory, rows, header):
    from faceaudit.data.tables import read_sample_table as read_samples

    d = tmp_path_factory.mktemp("st")
    cols = {"sample_id": 0, "subject_id": 1, "sex": 2}
    path = write_rows(d / "s.csv", header, [[r[cols[h]] for h in header] for r in rows])
    try:
        index = read_samples(path, ["sex"] if "sex" in header else [])
    except FaceAuditError:
        return
    assert list(index.sample_ids) == [
        r[0] for r in rows
    ]  # as written: "007" stays "007", " a1" keeps its space
