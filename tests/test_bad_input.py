"""Bad input ends in a named error or a counted exclusion, never a silent number or a numpy traceback."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from faceaudit.audit import audit
from faceaudit.cli import app
from faceaudit.data.ingest import load_score_file
from faceaudit.errors import (
    DuplicatePairError,
    EmptyError,
    MatedLabelError,
    SampleTableError,
    ScoreFileError,
    UnknownSampleError,
)
from faceaudit.report.document import group_notes

SAMPLES = [
    ("a1", "A", "female"), ("a2", "A", "female"), ("b1", "B", "male"), ("b2", "B", "male"),
    ("c1", "C", "female"), ("c2", "C", "female"),
]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def samples(tmp_path):
    return write(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"], SAMPLES)


def good_rows():
    return [("a1", "a2", 0.9), ("b1", "b2", 0.8), ("c1", "c2", 0.7), ("a1", "b1", 0.1), ("a1", "c1", 0.3),
            ("b2", "c2", 0.2), ("c1", "b1", 0.4)]


def test_nan_inf_and_self_comparisons_are_counted_exclusions(tmp_path, samples):
    rows = good_rows() + [("a2", "b2", "nan"), ("b1", "c2", "inf"), ("a1", "a1", 1.0)]
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], rows)
    dist = load_score_file(scores, samples, group_columns=["sex"], fmr_targets=[0.5], bins=8)
    assert dist.n_mated == 3 and dist.n_nonmated == 4
    res = audit(dist, fmr_targets=[0.5], bootstrap=0)
    excl = res.counts["exclusions"]
    assert excl["non-finite score (NaN or infinite)"] == 2
    assert excl["self-comparison (probe and reference are the same sample)"] == 1


def test_duplicate_pair_is_named(tmp_path, samples):
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows() + [("b1", "b2", 0.5)])
    with pytest.raises(DuplicatePairError, match="probe='b1', reference='b2'"):
        load_score_file(scores, samples)


def test_unknown_sample_id_is_named(tmp_path, samples):
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows() + [("zz9", "a1", 0.5)])
    with pytest.raises(UnknownSampleError, match="zz9"):
        load_score_file(scores, samples)


def test_subject_in_two_groups_is_named(tmp_path):
    bad = write(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"],
                [("a1", "A", "female"), ("a2", "A", "male"), ("b1", "B", "male")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("a1", "a2", 0.9), ("a1", "b1", 0.1)])
    with pytest.raises(SampleTableError, match="more than one group"):
        load_score_file(scores, bad, group_columns=["sex"])


def test_duplicate_sample_ids_are_named(tmp_path):
    bad = write(tmp_path / "samples.csv", ["sample_id", "subject_id"], [("a1", "A"), ("a1", "B")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("a1", "a1", 0.9)])
    with pytest.raises(SampleTableError, match="duplicate sample_id"):
        load_score_file(scores, bad)


def test_wrong_columns_and_empty_files(tmp_path, samples):
    wrong = write(tmp_path / "w.csv", ["query", "gallery", "similarity"], [("a1", "a2", 0.9)])
    with pytest.raises(ScoreFileError, match=r"lacks column\(s\) \['probe', 'reference', 'score'\]"):
        load_score_file(wrong, samples)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ScoreFileError, match="empty"):
        load_score_file(empty, samples)
    header_only = write(tmp_path / "h.csv", ["probe", "reference", "score"], [])
    with pytest.raises(ScoreFileError, match="no rows"):
        load_score_file(header_only, samples)
    with pytest.raises(SampleTableError, match="lacks column"):
        load_score_file(write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows()), samples,
                        group_columns=["race"])


def test_mated_column_disagreeing_with_subjects_names_rows(tmp_path, samples):
    rows = [(*r, int(r[0][0] == r[1][0])) for r in good_rows()]
    rows[3] = (*rows[3][:3], 1)  # a1 vs b1 labelled mated
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score", "mated"], rows)
    with pytest.raises(MatedLabelError, match="data rows 4"):
        load_score_file(scores, samples)


def test_empty_group_is_reported_not_crashing(tmp_path):
    # subject D is the only 'x' sex and has one sample: the group has no mated pairs and no
    # within-group non-mated pairs
    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"], [*SAMPLES, ("d1", "D", "x")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [*good_rows(), ("d1", "a1", 0.2)])
    dist = load_score_file(scores, s, group_columns=["sex"], fmr_targets=[0.5], bins=8)
    res = audit(dist, fmr_targets=[0.5], bootstrap=0)
    x = next(e for e in res.by_group["sex"] if e.group == "x")
    assert x.eer is None and (x.mated, x.nonmated) == (0, 0) and group_notes(x)
    assert x.at_global_threshold[0].fmr.value is None
    d = res.differentials["sex"][0]
    assert "x" not in d.groups
    assert ("x", "no_trials") in [(e.group, e.reason) for e in d.fmr.left_out + d.fnmr.left_out]


def test_no_mated_comparisons_is_an_empty_error(tmp_path, samples):
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("a1", "b1", 0.1), ("a1", "c1", 0.3)])
    dist = load_score_file(scores, samples, fmr_targets=[0.5], bins=8)
    with pytest.raises(EmptyError, match="no mated"):
        audit(dist, fmr_targets=[0.5])


def test_cli_reports_named_error_without_traceback(tmp_path, samples):
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows() + [("b1", "b2", 0.5)])
    r = CliRunner().invoke(app, ["audit", "--scores", str(scores), "--samples", str(samples)])
    assert r.exit_code == 2
    assert "DuplicatePairError" in r.output and "Traceback" not in r.output


def test_cli_distance_flag_negates(tmp_path, samples):
    rows = [(p, q, -s) for p, q, s in good_rows()]
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], rows)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["audit", "--scores", str(scores), "--samples", str(samples), "--distance",
                                 "--fmr", "0.5", "--bootstrap", "0", "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert "negated" in doc["settings"]["score_direction"]
    # the same audit as on similarity scores
    sim = write(tmp_path / "sim.csv", ["probe", "reference", "score"], good_rows())
    out2 = tmp_path / "r2.json"
    CliRunner().invoke(app, ["audit", "--scores", str(sim), "--samples", str(samples), "--fmr", "0.5",
                             "--bootstrap", "0", "--json", str(out2), "--quiet"])
    doc2 = json.loads(out2.read_text())
    assert doc["overall"]["eer"] == doc2["overall"]["eer"]
    assert doc["overall"]["operating_points"][0]["fmr"] == doc2["overall"]["operating_points"][0]["fmr"]
