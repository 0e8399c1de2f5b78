"""Candidate lists: `identify`'s numbers on the same gallery and probes, refusal where the lists stop."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lfw_subset import subset, write_samples

from faceaudit.data.candidates import (
    CandidateFileError,
    CandidateNotInGalleryError,
    DuplicateRankError,
    GalleryFileError,
    ListTooLongError,
    read_candidate_lists,
    read_gallery,
)
from faceaudit.data.decisions import DecisionWordError
from faceaudit.data.tables import read_sample_table
from faceaudit.errors import FaceAuditError, UnknownSampleError
from faceaudit.measures.candidates import NotMeasurableError, candidate_identification
from faceaudit.measures.identification import ProbeTails, identification, iter_rows

L, RANKS, BOOT, SEED = 40, [1, 5, 20], 40, 2


def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    d = tmp_path_factory.mktemp("lfw_cands")
    ids, subj, sex, race, x = subset()
    path = write_samples(d / "samples.csv", ids, subj, sex, race)
    index = read_sample_table(path, ["sex", "race"])
    scores = x @ x.T
    n = scores.shape[0]
    mated = index.subject_of_sample[:, None] == index.subject_of_sample[None, :]
    ref = ProbeTails.from_score_rows(index, iter_rows(scores), max_known=n)
    nm = scores[~mated]
    return {
        "dir": d,
        "index": index,
        "scores": scores,
        "mated": mated,
        "ref": ref,
        "ids": np.array(ids, object),
        "t": [float(np.quantile(nm, q)) for q in (0.999, 0.99, 0.5)],
    }


def _lists(
    lfw, name, *, gallery=None, probes=None, length=L, floor=-np.inf, columns=("score",), t_hidden=None
):
    """Each probe's search of the gallery (itself left out): candidates by score, ties against the mate, at
    most ``length``, only those >= ``floor``."""
    s, mated, ids = lfw["scores"], lfw["mated"], lfw["ids"]
    n = s.shape[0]
    gallery = np.arange(n) if gallery is None else gallery
    probes = np.arange(n) if probes is None else probes
    rows = []
    for p in probes:
        g = gallery[gallery != p]
        order = g[np.lexsort((mated[p, g], -s[p, g]))]
        order = order[s[p, order] >= floor][:length]
        if order.size == 0:
            rows.append([f"q{p}", ids[p], "", ""] + [""] * len(columns))
        for r, c in enumerate(order, start=1):
            extra = {
                "score": repr(float(s[p, c])),
                "decision": "match" if t_hidden is not None and s[p, c] >= t_hidden else "no-match",
            }
            rows.append([f"q{p}", ids[p], r, ids[c]] + [extra[k] for k in columns])
    path = write_rows(lfw["dir"] / f"{name}.csv", ["search_id", "probe", "rank", "candidate", *columns], rows)
    gpath = write_rows(lfw["dir"] / f"{name}_gallery.csv", ["sample_id"], [[ids[i]] for i in gallery])
    return path, read_gallery(gpath, lfw["index"])


def _same(mine, theirs, points=True):
    """The typed identification results are equal (every rate, interval and flag), points aside if asked."""
    a = mine.identification

    def strip(block):
        return block if points else dataclasses.replace(block, points=())

    assert strip(a.overall) == strip(theirs.overall)
    assert {k: [strip(b) for b in v] for k, v in a.by_group.items()} == {
        k: [strip(b) for b in v] for k, v in theirs.by_group.items()
    }
    assert a.flags == theirs.flags


def test_full_lists_equal_identify(lfw):
    path, gallery = _lists(lfw, "full")
    lists = read_candidate_lists(path, lfw["index"], gallery, list_length=L)
    assert lists.full.all()
    ts = lfw["t"]  # the lowest lies far below most lists' ends: answered by the non-mates they return
    mine = candidate_identification(lists, thresholds=ts, ranks=RANKS, bootstrap=BOOT, seed=SEED)
    theirs = identification(lfw["ref"], thresholds=ts, ranks=RANKS, bootstrap=BOOT, seed=SEED)
    _same(mine, theirs)
    assert all(p.exact for p in mine.identification.overall.points)
    fpir = [p.fpir.value for p in mine.identification.overall.points]
    assert fpir[0] < fpir[1] < fpir[2]
    with pytest.raises(NotMeasurableError):
        candidate_identification(lists, thresholds=ts, ranks=[L + 1], bootstrap=0)


def test_lists_cut_at_the_system_threshold(lfw):
    t_sys = lfw["t"][0] + 0.1  # high: some mates go unreturned
    path, gallery = _lists(lfw, "short", floor=t_sys)
    stated = read_candidate_lists(path, lfw["index"], gallery, list_length=L, candidate_threshold=t_sys)
    assert (~stated.full).sum() > 100 and (stated.lengths == 0).sum() > 0
    ts = [t_sys, t_sys + 0.05]
    mine = candidate_identification(stated, thresholds=ts, ranks=[1, 5], bootstrap=BOOT, seed=SEED)
    theirs = identification(lfw["ref"], thresholds=ts, ranks=[1, 5], bootstrap=BOOT, seed=SEED)
    assert mine.identification.overall.points == theirs.overall.points
    for name, blocks in mine.identification.by_group.items():
        for a, b in zip(blocks, theirs.by_group[name]):
            assert a.points == b.points
    # short lists without the mate: where it ranks is unknown, so no CMC, and it says so
    assert mine.identification.overall.cmc == () and mine.source.cmc_not_measurable[1] > 0
    with pytest.raises(NotMeasurableError):  # below the stated level
        candidate_identification(stated, thresholds=[t_sys - 0.05], bootstrap=0)
    with pytest.raises(NotMeasurableError):  # beyond the stated length
        candidate_identification(stated, thresholds=[t_sys], ranks=[L + 1], bootstrap=0)
    unstated = read_candidate_lists(path, lfw["index"], gallery, list_length=L)
    with pytest.raises(NotMeasurableError):  # empty lists say nothing without the stated level
        candidate_identification(unstated, thresholds=[t_sys], ranks=[1], bootstrap=0)


def test_decision_only_lists_equal_identify_at_the_hidden_threshold(lfw):
    t_hidden = lfw["t"][0]
    path, gallery = _lists(lfw, "decisions", columns=("decision",), t_hidden=t_hidden)
    lists = read_candidate_lists(path, lfw["index"], gallery, list_length=L)
    assert lists.mode == "decision"
    mine = candidate_identification(lists, ranks=RANKS, bootstrap=BOOT, seed=SEED)
    theirs = identification(lfw["ref"], thresholds=[t_hidden], ranks=RANKS, bootstrap=BOOT, seed=SEED)
    a, b = mine.identification.overall.points[0], theirs.overall.points[0]
    assert (a.fpir, a.fnir) == (b.fpir, b.fnir)
    assert mine.identification.overall.cmc == theirs.overall.cmc
    assert mine.source.mode == "decision"
    with pytest.raises(FaceAuditError):
        candidate_identification(lists, thresholds=[0.3], bootstrap=0)


def test_rank_only_lists_give_identifys_cmc(lfw):
    path, gallery = _lists(lfw, "ranks", columns=())
    lists = read_candidate_lists(path, lfw["index"], gallery, list_length=L)
    assert lists.mode == "rank"
    mine = candidate_identification(lists, ranks=RANKS, bootstrap=BOOT, seed=SEED)
    theirs = identification(lfw["ref"], thresholds=[0.5], ranks=RANKS, bootstrap=BOOT, seed=SEED)
    _same(mine, theirs, points=False)
    assert mine.identification.overall.points == ()
    with pytest.raises(NotMeasurableError):
        candidate_identification(lists, thresholds=[0.5], bootstrap=0)


def test_separate_gallery_against_brute_force(lfw):
    """FRTE layout: one enrolled sample per subject of a part of the set; probes are the rest (some of
    them of subjects never enrolled)."""
    index, s = lfw["index"], lfw["scores"]
    subj = index.subject_of_sample
    rng = np.random.default_rng(7)
    firsts = np.unique(subj, return_index=True)[1]
    gallery = np.sort(rng.choice(firsts, firsts.size * 2 // 3, replace=False))
    probes = np.setdiff1d(np.arange(index.n_samples), gallery)
    path, g = _lists(lfw, "frte", gallery=gallery, probes=probes, length=10)
    lists = read_candidate_lists(path, index, g, list_length=10)
    T = lfw["t"][1]
    out = candidate_identification(lists, thresholds=[T], ranks=[1, 10], bootstrap=0)
    fp, miss1, miss10, mated_searches = 0, 0, 0, 0
    for p in probes:
        nm = gallery[subj[gallery] != subj[p]]
        fp += bool((s[p, nm] >= T).any())
        mates = gallery[subj[gallery] == subj[p]]
        if mates.size:
            mated_searches += 1
            best = s[p, mates].max()
            rank = 1 + int((s[p, nm] >= best).sum())
            miss1 += not (rank <= 1 and best >= T)
            miss10 += not (rank <= 10 and best >= T)
    point = out.identification.overall.points[0]
    assert (point.fpir.count, point.fpir.total) == (fp, probes.size)
    assert [(f.rate.count, f.rate.total) for f in point.fnir] == [
        (miss1, mated_searches),
        (miss10, mated_searches),
    ]
    assert out.source.gallery_size == gallery.size


# ----- named errors --------------------------------------------------------------------------------
SAMPLES = [
    ("a1", "A", "f"),
    ("a2", "A", "f"),
    ("b1", "B", "m"),
    ("b2", "B", "m"),
    ("007", "C", "f"),
    ("c2", "C", "f"),
]
HEADER = ["search_id", "probe", "rank", "candidate", "score"]


@pytest.fixture
def small(tmp_path):
    index = read_sample_table(
        write_rows(tmp_path / "s.csv", ["sample_id", "subject_id", "sex"], SAMPLES), ["sex"]
    )
    gallery = read_gallery(
        write_rows(tmp_path / "g.csv", ["sample_id"], [["a2"], ["b1"], ["b2"], ["007"]]), index
    )
    return tmp_path, index, gallery


@pytest.mark.parametrize(
    "rows, error",
    [
        ([("s", "a1", 1, "a2", 0.9), ("s", "a1", 1, "b1", 0.5)], DuplicateRankError),
        ([("s", "a1", 1, "a2", 0.9), ("s", "a1", 2, "b1", 0.5), ("s", "a1", 3, "b2", 0.4)], ListTooLongError),
        ([("s", "a1", 1, "c2", 0.9)], CandidateNotInGalleryError),
        ([("s", "a1", 1, "7", 0.9)], UnknownSampleError),  # "007" is not "7"
        ([("s", "a1", 1, "a2", 0.9), ("s", "a1", 3, "b1", 0.5)], CandidateFileError),  # gap
        ([("s", "a1", 1, "a2", 0.5), ("s", "a1", 2, "b1", 0.9)], CandidateFileError),  # rising score
        ([("s", "a1", 1, "a2", 0.9), ("s", "a1", 2, "a2", 0.5)], CandidateFileError),  # same candidate twice
        ([("s", "b1", 1, "b1", 0.9)], CandidateFileError),  # itself
        (
            [("s", "a1", 1, "a2", 0.9), ("s", "b1", 2, "b2", 0.5)],
            CandidateFileError,
        ),  # two probes, one search
        ([("s", "a1", 1, "a2", 0.9), ("t", "a1", 1, "a2", 0.9)], CandidateFileError),  # searched twice
        ([("s", "a1", 1.5, "a2", 0.9)], CandidateFileError),
        ([("s", "a1", 1, "a2", 0.9), ("s", "a1", 2, "b1", "")], CandidateFileError),  # a score missing
        ([("s", "a1", "", "a2", 0.9)], CandidateFileError),
    ],
)
def test_candidate_file_errors(small, rows, error):
    d, index, gallery = small
    path = write_rows(d / "c.csv", HEADER, rows)
    with pytest.raises(error):
        read_candidate_lists(path, index, gallery, list_length=2)


def test_decision_words_and_order(small):
    d, index, gallery = small
    path = write_rows(
        d / "c.csv",
        ["search_id", "probe", "rank", "candidate", "decision"],
        [("s", "a1", 1, "a2", "no-match"), ("s", "a1", 2, "b1", "match")],
    )
    with pytest.raises(CandidateFileError):
        read_candidate_lists(path, index, gallery, list_length=2)
    path = write_rows(
        d / "c.csv",
        ["search_id", "probe", "rank", "candidate", "decision"],
        [("s", "a1", 1, "a2", "perhaps")],
    )
    with pytest.raises(DecisionWordError):
        read_candidate_lists(path, index, gallery, list_length=2)


def test_gallery_errors(small):
    d, index, _ = small
    with pytest.raises(GalleryFileError):
        read_gallery(write_rows(d / "g2.csv", ["sample_id"], [["a2"], ["a2"]]), index)
    with pytest.raises(GalleryFileError):
        read_gallery(write_rows(d / "g3.csv", ["sample_id"], [["zz"]]), index)
    with pytest.raises(GalleryFileError):
        read_gallery(write_rows(d / "g4.csv", ["id"], [["a2"]]), index)


def test_small_case_by_hand(small):
    """a1 (subject A, mate a2 enrolled) and 007 (C, itself enrolled, no other C sample enrolled)."""
    d, index, gallery = small
    rows = [
        ("s", "a1", 1, "b1", 0.8),
        ("s", "a1", 2, "a2", 0.7),
        ("u", "007", 1, "b2", 0.2),
        ("u", "007", 2, "a2", 0.1),
    ]
    lists = read_candidate_lists(write_rows(d / "c.csv", HEADER, rows), index, gallery, list_length=2)
    out = candidate_identification(lists, thresholds=[0.75], ranks=[1, 2], bootstrap=0)
    p = out.identification.overall.points[0]
    assert (p.fpir.count, p.fpir.total) == (1, 2)  # a1's b1 at 0.8; 007's list ends at 0.1 < 0.75
    # a1: mate at rank 2 with 0.7 < 0.75: a miss at both ranks; 007 has no enrolled mate
    assert [(f.rate.count, f.rate.total) for f in p.fnir] == [(1, 1), (1, 1)]
    assert [c.rate.count for c in out.identification.overall.cmc[0].cmc] == [0, 1]


ID = st.sampled_from(["a1", "a2", "b1", "b2", "007", "c2", "7", "", "zz"])
RANK = st.sampled_from(["1", "2", "3", "0", "-1", "1.5", "", "x", "1e9"])
SCORE = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["", "x", "0.5"]))
WORD = st.sampled_from(["match", "no-match", "", "maybe"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.sampled_from(["s", "t", ""]), ID, RANK, ID, SCORE, WORD), max_size=8),
    header=st.sampled_from(
        [HEADER, HEADER[:4], HEADER[:4] + ["decision"], HEADER + ["decision"], HEADER[1:]]
    ),
    length=st.sampled_from([1, 2, 5]),
    threshold=st.sampled_from([None, 0.5]),
)
def test_hostile_candidate_files(small, rows, header, length, threshold):
    d, index, gallery = small
    cols = {"search_id": 0, "probe": 1, "rank": 2, "candidate": 3, "score": 4, "decision": 5}
    path = write_rows(d / "h.csv", header, [[r[cols[h]] for h in header] for r in rows])
    try:
        lists = read_candidate_lists(path, index, gallery, list_length=length, candidate_threshold=threshold)
        ts = [0.5] if lists.mode == "score" else []
        candidate_identification(lists, thresholds=ts, ranks=[1], bootstrap=3)
    except FaceAuditError:
        return


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(ID), max_size=6),
    header=st.sampled_from([["sample_id"], ["id"], ["sample_id", "x"]]),
)
def test_hostile_gallery_files(small, rows, header):
    d, index, _ = small
    path = write_rows(d / "hg.csv", header, [[r[0]] * len(header) for r in rows])
    try:
        g = read_gallery(path, index)
    except FaceAuditError:
        return
    assert sorted(index.sample_ids[g].tolist()) == sorted(r[0] for r in rows)
