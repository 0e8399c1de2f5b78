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
    with pytest.raises(DuplicatePairError,
                       match=r"samples 'b1' and 'b2' .*data rows 2 \(line 3\) and 8 \(line 9\)"):
        load_score_file(scores, samples)


def test_unknown_sample_id_is_named(tmp_path, samples):
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows() + [("zz9", "a1", 0.5)])
    with pytest.raises(UnknownSampleError, match="zz9"):
        load_score_file(scores, samples)


def test_subject_in_two_groups_is_named(tmp_path):
    bad = write(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"],
                [("a1", "A", "female"), ("a2", "A", "male"), ("b1", "B", "male")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"],
                   [("a1", "a2", 0.9), ("a1", "b1", 0.1)])
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
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"],
                   [("a1", "b1", 0.1), ("a1", "c1", 0.3)])
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


# ----- identifiers are text exactly as written; only an empty cell is missing -----------------------------
def load_counts(scores, samples, **kw):
    dist = load_score_file(scores, samples, fmr_targets=[0.5], bins=8, **kw)
    return dist.n_mated, dist.n_nonmated, sum(dist.exclusions.values()), dist


def test_zero_padded_and_long_digit_ids_are_distinct(tmp_path):
    # "007" and "7" are two people; 20-digit ids differing in the last digit are two samples
    big = "12345678901234567890"
    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id"],
              [("007", "007"), ("7", "7"), ("0042", "42"), ("42", "42"), (big, "0"), (big[:-1] + "1", "00")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"],
                   [("007", "7", 0.9), ("0042", "42", 0.8), (big, big[:-1] + "1", 0.7), ("7", "42", 0.1)])
    mated, nonmated, excluded, dist = load_counts(scores, s)
    # only 0042/42 share a subject ("42"); 007/7 and 0/00 are different subjects
    assert (mated, nonmated, excluded) == (1, 3, 0)
    assert sorted(dist.samples.subject_ids.tolist()) == ["0", "00", "007", "42", "7"]


def test_na_like_tokens_are_labels_not_missing(tmp_path):
    tokens = ["NA", "None", "null", "n/a", "NaN", "nan", "N/A", "-"]
    rows = [(t, f"subj-{t}", t) for t in tokens] + [(f"{t}.2", f"subj-{t}", t) for t in tokens]
    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id", "region"], rows)
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"],
                   [(t, f"{t}.2", 0.9) for t in tokens] + [("NA", "None", 0.1)])
    dist = load_score_file(scores, s, group_columns=["region"], fmr_targets=[0.5], bins=8)
    assert sorted(g[0] for g in dist.samples.group_labels) == sorted(tokens)
    assert dist.n_mated == len(tokens) and dist.n_nonmated == 1


def test_empty_cells_are_missing(tmp_path):
    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id", "region"],
              [("a", "A", ""), ("b", "A", ""), ("c", "C", "x"), ("d", "", "x")])
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("a", "b", 0.9)])
    with pytest.raises(SampleTableError, match="subject_id is missing .* first at data row 4"):
        load_score_file(scores, s, group_columns=["region"])
    s2 = write(tmp_path / "samples2.csv", ["sample_id", "subject_id", "region"],
               [("a", "A", ""), ("b", "A", ""), ("c", "C", "x")])
    # an empty score cell is a missing score: excluded and counted with the non-finite ones
    scores = write(tmp_path / "s2.csv", ["probe", "reference", "score"], [("a", "b", 0.9), ("a", "c", "")])
    dist = load_score_file(scores, s2, group_columns=["region"], fmr_targets=[0.5], bins=8)
    assert ("(missing)",) in dist.samples.group_labels
    assert dist.exclusions["non-finite score (NaN or infinite)"] == 1 and dist.n_mated == 1


def test_non_numeric_score_names_its_row_and_line(tmp_path):
    # data row 8 sits on line 12: an empty line and a quoted line break come before it
    lines = ["probe,reference,score", "a1,a2,0.9", "", "b1,b2,0.8", '"c1","c2",0.7', "a1,b1,0.1",
             "a1,c1,0.3", "", "b2,c2,0.2", "c1,b1,0.4", "a2,b2,NA"]
    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id"], [(x[0] + x[1], x[0]) for x in
                                                                      ["a1", "a2", "b1", "b2", "c1", "c2"]])
    f = tmp_path / "s.csv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScoreFileError, match=r"score at data row 8 \(.*line 11\) is not a number: 'NA'"):
        load_score_file(f, s)
    lines.insert(5, '"a2","c2\nstill c2",0.5')  # a quoted line break: two file lines, one data row
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScoreFileError, match=r"score at data row 9 \(.*line 13\)"):
        load_score_file(f, s)
    lines[-1] = "a2,b2,0.6"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnknownSampleError, match=r"data row 4 \(.*line 6\): \['c2\\nstill c2'\]"):
        load_score_file(f, s)


def test_row_numbers_in_parquet_errors_are_data_rows(tmp_path, samples):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = good_rows() + [("zz", "a1", 0.5)]
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"probe": [r[0] for r in rows], "reference": [r[1] for r in rows],
                             "score": [r[2] for r in rows]}), path, row_group_size=3)
    with pytest.raises(UnknownSampleError, match=r"data row 8 of"):
        load_score_file(path, samples, batch_rows=3)


# ----- integer-typed Parquet ids ---------------------------------------------------------------------------
def _parquet(path, **cols):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(cols), path)
    return path


def test_integer_parquet_ids_match_their_decimal_text(tmp_path):
    s = _parquet(tmp_path / "samples.parquet", sample_id=[1, 2, 3, 4], subject_id=[10, 10, 20, 20])
    scores = _parquet(tmp_path / "s.parquet", probe=[1, 3, 1], reference=[2, 4, 3], score=[0.9, 0.8, 0.1])
    assert load_counts(scores, s)[:3] == (2, 1, 0)
    text = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("1", "2", 0.9), ("1", "3", 0.2)])
    assert load_counts(text, s)[:3] == (1, 1, 0)
    padded = write(tmp_path / "p.csv", ["probe", "reference", "score"], [("001", "2", 0.9)])
    with pytest.raises(UnknownSampleError, match=r"\['001'\].*ids are integers"):
        load_counts(padded, s)


def test_every_arrow_text_and_integer_id_type_is_read(tmp_path):
    import pyarrow as pa

    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id"], [("1", "A"), ("2", "A"), ("3", "C")])
    for t in (pa.large_string(), pa.dictionary(pa.int32(), pa.string()), pa.string_view(), pa.int8(),
              pa.uint64()):
        cast = (lambda v, t=t: pa.array(v).cast(t)) if not pa.types.is_integer(t) else \
            (lambda v, t=t: pa.array([int(x) for x in v], t))
        path = _parquet(tmp_path / "s.parquet", probe=cast(["1", "1"]), reference=cast(["2", "3"]),
                        score=pa.array([0.9, 0.1], pa.float32()))
        assert load_counts(path, s)[:3] == (1, 1, 0), t


def test_integer_score_ids_against_zero_padded_text_ids_are_refused(tmp_path):
    from faceaudit.errors import IdentifierTypeError

    s = write(tmp_path / "samples.csv", ["sample_id", "subject_id"], [("007", "A"), ("7", "A"), ("8", "B")])
    scores = _parquet(tmp_path / "s.parquet", probe=[7], reference=[8], score=[0.5])
    with pytest.raises(IdentifierTypeError, match="'007'"):
        load_counts(scores, s)
    plain = write(tmp_path / "plain.csv", ["sample_id", "subject_id"], [("7", "A"), ("8", "B")])
    assert load_counts(scores, plain)[:2] == (0, 1)


def test_integer_and_text_id_for_the_same_sample_is_a_duplicate():
    from faceaudit.scores import SampleIndex

    with pytest.raises(SampleTableError, match=r"duplicate sample_id.*data rows 1 and 3"):
        SampleIndex.from_columns([7, "8", "7"], ["a", "b", "c"])
    with pytest.raises(SampleTableError, match="sample_id at data row 2 is a float"):
        SampleIndex.from_columns(["7", 8.0], ["a", "b"])
    # a trailing NUL is part of the id (numpy '<U' arrays would drop it)
    idx = SampleIndex.from_columns(["a", "a\x00"], ["s", "s\x00"])
    assert idx.n_subjects == 2


# ----- pairs are unordered --------------------------------------------------------------------------------
def test_reversed_pair_is_a_duplicate_naming_both_rows(tmp_path, samples):
    rows = good_rows() + [("b2", "b1", 0.5)]
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], rows)
    with pytest.raises(DuplicatePairError,
                       match=r"samples 'b1' and 'b2'.*data rows 2 \(line 3\) and 8 \(line 9\)"):
        load_score_file(scores, samples)
    # across read batches (Parquet, 3 rows a batch): the earlier row is found again by a second read
    path = _parquet(tmp_path / "s.parquet", probe=[r[0] for r in rows], reference=[r[1] for r in rows],
                    score=[r[2] for r in rows])
    with pytest.raises(DuplicatePairError, match=r"data rows 2 and 8"):
        load_score_file(path, samples, batch_rows=3)


def test_ordered_pairs_policy_counts_both_orders_once_each(tmp_path, samples):
    rows = good_rows() + [("b2", "b1", 0.5), ("b1", "a1", 0.2)]
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], rows)
    mated, nonmated, _, dist = load_counts(scores, samples, pair_order="ordered")
    assert (mated, nonmated) == (4, 5)
    assert "ordered" in dist.meta["inputs"]["scores"]["pair_order"]
    again = write(tmp_path / "t.csv", ["probe", "reference", "score"], rows + [("b2", "b1", 0.6)])
    with pytest.raises(DuplicatePairError,
                       match=r"probe='b2', reference='b1'.*data rows 8 \(line 9\) and 10"):
        load_score_file(again, samples, pair_order="ordered")
    from faceaudit.errors import OptionError

    with pytest.raises(OptionError, match="pair_order"):
        load_score_file(scores, samples, pair_order="sideways")


# ----- encodings ------------------------------------------------------------------------------------------
def _bytes_files(tmp_path, encoding, bom=b""):
    s = tmp_path / "samples.csv"
    s.write_bytes(bom + "sample_id,subject_id,sex\na1,A,Mé\na2,A,Mé\nb1,B,Fö\n".encode(encoding))
    scores = tmp_path / "s.csv"
    scores.write_bytes(bom + "probe,reference,score\na1,a2,0.9\na1,b1,0.1\n".encode(encoding))
    return scores, s


def test_utf8_with_and_without_bom(tmp_path):
    for bom in (b"", b"\xef\xbb\xbf"):
        scores, s = _bytes_files(tmp_path, "utf-8", bom)
        dist = load_score_file(scores, s, group_columns=["sex"], fmr_targets=[0.5], bins=8)
        assert dist.samples.group_labels == (("Fö",), ("Mé",)) and dist.n_mated == 1


def test_latin1_is_a_named_error_by_default_and_right_with_the_option(tmp_path):
    from faceaudit.errors import EncodingError

    scores, s = _bytes_files(tmp_path, "latin-1")
    with pytest.raises(EncodingError, match=r"not valid utf-8 text \(line 2\).*--encoding"):
        load_score_file(scores, s, group_columns=["sex"])
    dist = load_score_file(scores, s, group_columns=["sex"], fmr_targets=[0.5], bins=8, encoding="latin-1")
    assert dist.samples.group_labels == (("Fö",), ("Mé",))  # strings, never b'M\xe9'


def test_utf16_is_named_and_readable_with_the_option(tmp_path):
    from faceaudit.errors import EncodingError, OptionError

    scores, s = _bytes_files(tmp_path, "utf-16")
    with pytest.raises(EncodingError, match="UTF-16 byte-order mark.*'utf-16'"):
        load_score_file(scores, s)
    dist = load_score_file(scores, s, group_columns=["sex"], fmr_targets=[0.5], bins=8, encoding="utf-16")
    assert dist.samples.group_labels == (("Fö",), ("Mé",))
    for bad in ("klingon", "base64", "rot13"):
        with pytest.raises(OptionError, match="--encoding"):
            load_score_file(scores, s, encoding=bad)


# ----- Parquet schema mismatches --------------------------------------------------------------------------
def test_parquet_wrong_column_types_are_named(tmp_path, samples):
    import pyarrow as pa

    ok = {"probe": ["a1", "a1"], "reference": ["a2", "b1"], "score": [0.9, 0.1]}
    cases = [
        ({**ok, "score": ["0.9", "0.1"]}, r"'score'.*type string; scores must be numbers"),
        ({**ok, "probe": pa.array([["a1"], ["a1"]])},
         r"'probe'.*type list<element: string>; ids must be text"),
        ({**ok, "reference": pa.array([{"x": 1}, {"x": 2}])}, r"'reference'.*type struct<x: int64>"),
        ({**ok, "probe": [1.0, 2.0]}, r"'probe'.*type double; ids must be text or integers"),
        ({"probe": ok["probe"], "score": ok["score"]}, r"lacks column\(s\) \['reference'\]"),
    ]
    for i, (cols, message) in enumerate(cases):
        path = _parquet(tmp_path / f"s{i}.parquet", **cols)
        with pytest.raises(ScoreFileError, match=message):
            load_score_file(path, samples)


def test_parquet_sample_table_types_are_named(tmp_path):
    import pyarrow as pa

    scores = write(tmp_path / "s.csv", ["probe", "reference", "score"], [("1", "2", 0.9)])
    cases = [
        ({"sample_id": [1.0, 2.0], "subject_id": ["a", "a"]}, r"'sample_id'.*type double"),
        ({"sample_id": ["1", "2"], "subject_id": pa.array([[1], [2]])}, r"'subject_id'.*type list"),
        ({"sample_id": ["1", "2"], "subject_id": ["a", "a"], "sex": pa.array([{"x": 1}, {"x": 1}])},
         r"'sex'.*type struct"),
        ({"sample_id": ["1", "2"]}, r"lacks column\(s\) \['subject_id'\]"),
    ]
    for i, (cols, message) in enumerate(cases):
        path = _parquet(tmp_path / f"t{i}.parquet", **cols)
        with pytest.raises(SampleTableError, match=message):
            load_score_file(scores, path, group_columns=["sex"] if "sex" in cols else [])


def test_csv_header_problems_are_named(tmp_path, samples):
    twice = tmp_path / "twice.csv"
    twice.write_text("probe,reference,score,score\na1,a2,0.9,0.8\n")
    with pytest.raises(ScoreFileError, match=r"column\(s\) \['score'\] more than once"):
        load_score_file(twice, samples)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("probe,reference,score\na1,a2,0.9\na1,b1\n")
    with pytest.raises(ScoreFileError, match="Expected 3 columns, got 2"):
        load_score_file(ragged, samples)


def test_mated_column_problems_name_the_exact_row(tmp_path, samples):
    rows = [(*r, int(r[0][0] == r[1][0])) for r in good_rows()]
    rows[5] = (*rows[5][:3], "maybe")
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score", "mated"], rows)
    with pytest.raises(ScoreFileError, match=r"`mated` at data row 6 \(.*line 7\): cannot read 'maybe'"):
        load_score_file(scores, samples)
    rows[5] = (*rows[5][:3], "")
    scores = write(tmp_path / "s.csv", ["probe", "reference", "score", "mated"], rows)
    with pytest.raises(ScoreFileError, match=r"`mated` at data row 6 .*missing value"):
        load_score_file(scores, samples)


# ----- image manifests and label files -------------------------------------------------------------------
def test_manifest_ids_as_written_lines_and_encodings(tmp_path):
    from faceaudit.data.images import join_labels, samples_from_manifest
    from faceaudit.errors import EncodingError

    manifest = tmp_path / "m.csv"
    manifest.write_text('path,subject_id\n\na.jpg,007\n"b\nc.jpg",7\nd.jpg,\n')
    with pytest.raises(SampleTableError, match="line 6: empty 'path' or 'subject_id'"):
        samples_from_manifest(manifest)
    manifest.write_text('path,subject_id\n\na.jpg,007\n"b\nc.jpg",7\n')
    table = samples_from_manifest(manifest)
    assert table.column("subject_id").to_pylist() == ["007", "7"]
    labels = tmp_path / "l.csv"
    labels.write_bytes("subject_id,sex\n007,Mé\n".encode("latin-1"))
    with pytest.raises(EncodingError, match=r"line 2.*--encoding"):
        join_labels(table, labels)
    joined = join_labels(table, labels, encoding="latin-1")
    assert joined.table.column("sex").to_pylist() == ["Mé", "unknown"]  # "7" is not "007"
    ragged = tmp_path / "r.csv"
    ragged.write_text("path,subject_id\na.jpg,1\nb.jpg,2,extra\n")
    with pytest.raises(SampleTableError, match="line 3: 3 field"):
        samples_from_manifest(ragged)


def test_a_label_spelled_like_the_missing_group_does_not_merge_with_empty_cells():
    from faceaudit.scores import SampleIndex

    with pytest.raises(SampleTableError, match="both empty cells and the label '\\(missing\\)'"):
        SampleIndex.from_columns(["a", "b"], ["A", "B"], {"region": ["(missing)", ""]})
    idx = SampleIndex.from_columns(["a", "b"], ["A", "B"], {"region": ["(missing)", "NA"]})
    assert idx.group_labels == (("(missing)",), ("NA",))


def test_a_skipped_duplicate_check_is_said_in_the_terminal(tmp_path, samples, monkeypatch):
    """When the exact duplicate check would need more reads than allowed it is skipped: the terminal says so,
    as the manifest does (a pair listed twice would be counted twice); with the defaults the file with a
    pair listed twice is refused by name."""
    import faceaudit.data.tables as tables

    clean = write(tmp_path / "c.csv", ["probe", "reference", "score"], good_rows())
    dup = write(tmp_path / "s.csv", ["probe", "reference", "score"], good_rows() + [("b1", "b2", 0.5)])
    args = ["audit", "--samples", str(samples), "--bootstrap", "0", "--quiet", "--fmr", "0.5", "--scores"]
    assert CliRunner().invoke(app, [*args, str(dup)]).exit_code == 2
    assert "duplicate-pair check skipped" not in CliRunner().invoke(app, [*args, str(clean)]).output
    monkeypatch.setattr(tables, "DUPLICATE_BITSET_LIMIT", 0)
    r = CliRunner().invoke(app, [*args, str(clean)])
    assert r.exit_code == 0, r.output
    assert "duplicate-pair check skipped" in r.output and "counted twice" in r.output
