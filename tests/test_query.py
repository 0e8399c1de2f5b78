"""`faceaudit query` end to end against the reference server (loopback) wrapping the bundled SFace
embeddings of LFW: the results equal what the matcher's own scores give, in every answer style."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from query_helpers import (  # noqa: E402
    TOKEN,
    all_pairs,
    compare_adapter,
    cosine,
    search_adapter,
    small_set,
    write_images,
    write_pair_plan,
    write_samples,
)
from reference_server import ServerConfig, ServerThread, TableMatcher, make_app  # noqa: E402

from faceaudit.query.adapter import parse_adapter  # noqa: E402
from faceaudit.query.requests import ImageStore  # noqa: E402
from faceaudit.query.run import run_query, sidecar_paths  # noqa: E402

ENV = {"FA_TEST_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    ids, subj, sex, _race, x = small_set()
    root = tmp_path_factory.mktemp("lfw")
    images = write_images(root / "images", ids)
    samples = write_samples(root / "samples.csv", ids, subj, sex)
    pairs = all_pairs(len(ids))
    plan = write_pair_plan(root / "plan.csv", ids, sex, pairs)
    return {
        "ids": ids,
        "subj": subj,
        "sex": sex,
        "x": x,
        "images": images,
        "samples": samples,
        "pairs": pairs,
        "plan": plan,
    }


def serve(lfw, **cfg):
    cfg.setdefault("token", TOKEN)
    return ServerThread(make_app(TableMatcher(lfw["ids"], lfw["x"]), ServerConfig(**cfg)))


def run(lfw, tmp, adapter_text, name="r", **kw):
    adapter = parse_adapter(adapter_text)
    out = tmp / f"{name}.parquet"
    res = run_query(
        adapter, lfw["plan"], ImageStore(lfw["images"]), tmp / f"{name}.sqlite", out, environ=ENV, **kw
    )
    return res, out


def test_scores_equal_the_matcher_and_audit_equals_the_score_audit(lfw, tmp_path):
    with serve(lfw, mode="scores") as srv:
        res, out = run(lfw, tmp_path, compare_adapter(srv.url, response='score = "/score"'))
        assert srv.state.by_path["/compare"] == len(lfw["pairs"]) + 2 * 3  # plan + sentinel repeats
    t = pq.read_table(out).to_pydict()
    ids, x = lfw["ids"], lfw["x"]
    expected = {(ids[i], ids[j]): cosine(x, i, j) for i, j in lfw["pairs"]}
    assert len(t["probe"]) == len(expected)
    for p, r, s in zip(t["probe"], t["reference"], t["score"]):
        assert s == expected[(p, r)]  # exact: JSON floats round-trip
    ref = tmp_path / "reference_scores.csv"
    ref.write_text("probe,reference,score\n" + "".join(f"{p},{r},{s!r}\n" for (p, r), s in expected.items()))
    from faceaudit.cli import app

    docs = []
    for scores in (out, ref):
        js = tmp_path / f"{scores.stem}.json"
        r = CliRunner().invoke(
            app,
            [
                "audit",
                "--scores",
                str(scores),
                "--samples",
                str(lfw["samples"]),
                "--group",
                "sex",
                "--fmr",
                "1e-2",
                "--bootstrap",
                "50",
                "--json",
                str(js),
                "--quiet",
            ],
        )
        assert r.exit_code == 0, r.output
        doc = json.loads(js.read_text())
        doc.pop("manifest")
        docs.append(doc)
    assert docs[0] == docs[1]
    assert res.provenance["outcomes"] == {"answered": len(lfw["pairs"])}
    assert res.flags == ()


def _brute_counts(lfw, score_ok):
    """(false matches, non-mated, false non-matches, mated) per sex and overall, by loops."""
    _ids, subj, sex, x = lfw["ids"], lfw["subj"], lfw["sex"], lfw["x"]
    counts = {}
    for i, j in lfw["pairs"]:
        keys = ["overall"] + ([sex[i]] if sex[i] == sex[j] else [])
        for k in keys:
            c = counts.setdefault(k, [0, 0, 0, 0])
            accept = score_ok(cosine(x, i, j))
            if subj[i] == subj[j]:
                c[3] += 1
                c[2] += not accept
            else:
                c[1] += 1
                c[0] += accept
    return counts


def _closed_counts(point):
    out = {
        "overall": [
            point.overall.fmr.count,
            point.overall.fmr.total,
            point.overall.fnmr.count,
            point.overall.fnmr.total,
        ]
    }
    for g in point.by_group:
        out[g.values[0]] = [g.fmr.count, g.fmr.total, g.fnmr.count, g.fnmr.total]
    return out


def test_decisions_at_a_hidden_threshold_equal_the_score_rates_there(lfw, tmp_path):
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table as read_samples
    from faceaudit.measures.decisions import closed_audit

    hidden = 0.3
    with serve(lfw, mode="decisions", threshold=hidden) as srv:
        _, out = run(lfw, tmp_path, compare_adapter(srv.url, response='decision = "/match"'))
    assert set(pq.read_table(out).column("decision").to_pylist()) == {"match", "no-match"}
    closed = read_closed_comparisons(out, read_samples(lfw["samples"], ["sex"]))
    point = closed_audit(closed, bootstrap=0).points[0]
    brute = _brute_counts(lfw, lambda s: s >= hidden)
    assert _closed_counts(point) == brute
    assert brute["overall"][0] > 0 and brute["overall"][3] > 0  # false matches occur; mated pairs counted


def test_censored_scores_aws_style(lfw, tmp_path):
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table as read_samples
    from faceaudit.measures.decisions import closed_audit

    level = 25.0
    response = f'score = "/FaceMatches/0/Similarity"\nscore_absent = "censored"\ncensored_below = {level}'
    with serve(lfw, mode="censored", censor_level=level) as srv:
        res, out = run(lfw, tmp_path, compare_adapter(srv.url, response=response))
    scores = pq.read_table(out).column("score").to_pylist()
    assert None in scores and any(s is not None for s in scores)
    assert res.provenance["censored_below"] == level
    closed = read_closed_comparisons(out, read_samples(lfw["samples"], ["sex"]), censored_below=level)
    result = closed_audit(closed, thresholds=[level, 40.0], bootstrap=0, curves=False)
    for point, t in zip(result.points, (level, 40.0)):
        assert _closed_counts(point) == _brute_counts(lfw, lambda s, t=t: 100.0 * s >= t)


def test_multipart_requests_give_the_same_file(lfw, tmp_path):
    with serve(lfw, mode="scores") as srv:
        _, a = run(lfw, tmp_path, compare_adapter(srv.url, response='score = "/score"'), name="a")
        _, b = run(
            lfw,
            tmp_path,
            compare_adapter(srv.url, response='score = "/score"', path="/compare-form", encoding="multipart"),
            name="b",
        )
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.drop_columns([]).equals(tb)  # same rows and values; metadata differs (other adapter)


def test_search_candidate_lists_equal_brute_force_top_k(lfw, tmp_path):
    from faceaudit.data.candidates import read_candidate_lists, read_gallery
    from faceaudit.data.tables import read_sample_table as read_samples

    ids, subj, x = lfw["ids"], lfw["subj"], lfw["x"]
    first = {}
    for i, s in enumerate(subj):
        first.setdefault(s, i)
    singles = [i for i in first.values() if subj.count(subj[i]) == 1]
    enrol = sorted(i for i in first.values() if i not in singles[-4:])  # 4 subjects never enrolled
    search = [i for i in range(len(ids)) if i not in set(enrol)]
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "sample_id,role\n"
        + "".join(f"{ids[i]},enrol\n" for i in enrol)
        + "".join(f"{ids[i]},search\n" for i in search)
    )
    k = 5
    with serve(lfw, mode="search") as srv:
        res = run_query(
            parse_adapter(search_adapter(srv.url, k)),
            plan,
            ImageStore(lfw["images"]),
            tmp_path / "j.sqlite",
            tmp_path / "c.parquet",
            environ=ENV,
        )
    cand = pq.read_table(tmp_path / "c.parquet").to_pydict()
    got = {}
    for p, c, s in zip(cand["probe"], cand["candidate"], cand["score"]):
        got.setdefault(p, []).append((c, s))
    for i in search:  # brute force: every enrolled sample, best first, ties by id
        scored = sorted((-cosine(x, i, g), ids[g]) for g in enrol)[:k]
        assert got[ids[i]] == [(gid, -s) for s, gid in scored]
    assert pq.read_table(sidecar_paths(tmp_path / "c.parquet")["gallery"]).column(
        "sample_id"
    ).to_pylist() == [ids[i] for i in enrol]
    samples = read_samples(lfw["samples"], ["sex"])
    gallery = read_gallery(sidecar_paths(tmp_path / "c.parquet")["gallery"], samples)
    lists = read_candidate_lists(tmp_path / "c.parquet", samples, gallery, list_length=k)
    assert lists.candidate.size == sum(min(k, len(enrol)) for _ in search)  # read and validated as is
    assert res.provenance["list_length"] == k


def test_a_faceaudit_plan_drives_the_query_and_the_result_reads_back(lfw, tmp_path):
    """`faceaudit plan` -> `query` -> the closed-system reader, with the plan's `mated` column checked."""
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table as read_samples
    from faceaudit.plan import plan_requests, write_plan

    samples = read_samples(lfw["samples"], ["sex"])
    plan = plan_requests(samples, claim_fmr=0.05, power=0.5, mated_per_subject=2, seed=1)
    write_plan(plan, str(tmp_path / "plan.parquet"))
    with serve(lfw, mode="scores") as srv:
        adapter = parse_adapter(compare_adapter(srv.url, response='score = "/score"'))
        run_query(
            adapter,
            tmp_path / "plan.parquet",
            ImageStore(lfw["images"]),
            tmp_path / "j.sqlite",
            tmp_path / "r.parquet",
            environ=ENV,
            sample_ids=set(lfw["ids"]),
        )
    t = pq.read_table(tmp_path / "r.parquet")
    assert t.num_rows == plan.total and set(t.column("mated").to_pylist()) <= {"true", "false"}
    closed = read_closed_comparisons(tmp_path / "r.parquet", samples)  # mated agrees with the subjects
    ids, x = lfw["ids"], lfw["x"]
    index = {s: i for i, s in enumerate(ids)}
    for p, r, s in zip(
        t.column("probe").to_pylist(), t.column("reference").to_pylist(), t.column("score").to_pylist()
    ):
        assert s == cosine(x, index[p], index[r])
    assert closed is not None


def test_search_under_faults_with_sentinels_gives_the_clean_files(lfw, tmp_path):
    ids, subj = lfw["ids"], lfw["subj"]
    first = {}
    for i, s in enumerate(subj):
        first.setdefault(s, i)
    enrol = sorted(first.values())
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "sample_id,role\n"
        + "".join(f"{ids[i]},enrol\n" for i in enrol)
        + "".join(f"{ids[i]},search\n" for i in range(len(ids)) if i not in set(enrol))
    )
    outs = []
    with serve(lfw, mode="search") as srv:
        adapter = parse_adapter(search_adapter(srv.url, 4))
        for name, faults in (("clean", {}), ("faulty", {"429": 5, "500": 7, "malformed": 11, "drop": 13})):
            srv.config.faults = faults
            res = run_query(
                adapter,
                plan,
                ImageStore(lfw["images"]),
                tmp_path / f"{name}.sqlite",
                tmp_path / f"{name}.parquet",
                environ=ENV,
                sentinels=2,
                repeats=3,
            )
            assert res.flags == ()
            outs.append(
                [
                    (tmp_path / f"{name}{suffix}").read_bytes()
                    for suffix in (".parquet", ".gallery.parquet", ".outcomes.parquet")
                ]
            )
        assert sum(srv.state.faults.values()) > 0
    assert outs[0] == outs[1]
