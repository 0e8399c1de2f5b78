"""`faceaudit query` under faults: 429 / 500 / timeouts / malformed JSON / dropped connections, refusals and
failures to acquire kept apart, sentinels, SIGKILL and resume, and the auth token kept out of every file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from query_helpers import (  # noqa: E402
    TOKEN,
    all_pairs,
    compare_adapter,
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
SRC = str(Path(__file__).resolve().parent.parent / "src")


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    ids, subj, sex, _race, x = small_set()
    root = tmp_path_factory.mktemp("lfw")
    pairs = all_pairs(len(ids))
    return {
        "ids": ids,
        "subj": subj,
        "sex": sex,
        "x": x,
        "pairs": pairs,
        "root": root,
        "images": write_images(root / "images", ids),
        "samples": write_samples(root / "samples.csv", ids, subj, sex),
        "plan": write_pair_plan(root / "plan.csv", ids, sex, pairs),
    }


def serve(lfw, **cfg):
    cfg.setdefault("token", TOKEN)
    return ServerThread(make_app(TableMatcher(lfw["ids"], lfw["x"]), ServerConfig(**cfg)))


def run(lfw, tmp, text, name, images=None, **kw):
    out = tmp / f"{name}.parquet"
    res = run_query(
        parse_adapter(text),
        lfw["plan"],
        ImageStore(images or lfw["images"]),
        tmp / f"{name}.sqlite",
        out,
        environ=ENV,
        **kw,
    )
    return res, out


def test_faults_are_retried_and_the_result_is_byte_identical(lfw, tmp_path):
    with serve(lfw) as srv:
        # the timeout well above a real answer on a loaded 2-core machine (the server runs SFace), the
        # injected hang well above the timeout: only the injected hangs time out
        text = compare_adapter(srv.url, response='score = "/score"', timeout=3.0)
        _, clean = run(lfw, tmp_path, text, "clean")
        srv.config.faults = {"429": 7, "500": 11, "malformed": 13, "drop": 17, "timeout": 29}
        srv.config.hang_s = 8.0
        _, faulty = run(lfw, tmp_path, text, "faulty")
        injected = dict(srv.state.faults)
    assert set(injected) == {"429", "500", "malformed", "drop", "timeout"}
    assert clean.read_bytes() == faulty.read_bytes()
    assert sidecar_paths(clean)["outcomes"].read_bytes() == sidecar_paths(faulty)["outcomes"].read_bytes()
    db = sqlite3.connect(tmp_path / "faulty.sqlite")
    labels = {e for (e,) in db.execute("SELECT error FROM attempts")}
    assert {"http 429", "http 500", "malformed json"} <= labels
    assert any(e.startswith("timeout") for e in labels) and any(e.startswith("connection") for e in labels)
    assert (
        db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] >= sum(injected.values()) - 8
    )  # in flight
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == len(lfw["pairs"]) + 6


def test_refusals_and_failures_to_acquire_are_kept_apart(lfw, tmp_path):
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table as read_samples
    from faceaudit.measures.decisions import closed_audit

    ids, subj = lfw["ids"], lfw["subj"]
    images = write_images(tmp_path / "images", ids)
    blurred, refused = ids[0], {ids[5], ids[9]}
    (images / f"{blurred}.bin").write_bytes(b"no face in this one")
    with serve(lfw, mode="decisions", threshold=0.3, refuse=frozenset(s.encode() for s in refused)) as srv:
        res, out = run(
            lfw, tmp_path, compare_adapter(srv.url, response='decision = "/match"'), "r", images=images
        )
    outcomes = pq.read_table(sidecar_paths(out)["outcomes"]).to_pydict()
    expect = {}
    for k, (i, j) in enumerate(lfw["pairs"]):
        pair = {ids[i], ids[j]}
        expect[str(k)] = (
            "refused" if pair & refused else "failure_to_acquire" if blurred in pair else "answered"
        )
    assert dict(zip(outcomes["request"], outcomes["outcome"])) == expect
    kept = pq.read_table(out).to_pydict()
    assert len(kept["probe"]) == sum(v == "answered" for v in expect.values())
    assert not ({*kept["probe"], *kept["reference"]} & (refused | {blurred}))
    by_group = res.provenance["outcomes_by_group"]["compare"]
    assert sum(c.get("refused", 0) for c in by_group.values()) == sum(v == "refused" for v in expect.values())
    from faceaudit.query.command import format_summary

    text = "\n".join(format_summary(res.provenance, out))
    for (
        cell,
        counts,
    ) in by_group.items():  # every group with a refusal or a failure is printed with its counts
        if set(counts) != {"answered"}:
            assert f"compare {cell}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) in text
    assert "not in the results (not no-matches)" in text
    # the audit counts only answered comparisons: a refusal is no non-match
    point = closed_audit(read_closed_comparisons(out, read_samples(lfw["samples"], [])), bootstrap=0).points[
        0
    ]
    answered = [(i, j) for k, (i, j) in enumerate(lfw["pairs"]) if expect[str(k)] == "answered"]
    assert point.overall.fnmr.total == sum(subj[i] == subj[j] for i, j in answered)
    assert point.overall.fmr.total == sum(subj[i] != subj[j] for i, j in answered)


def test_sentinels_flag_a_model_change_mid_run(lfw, tmp_path):
    with serve(lfw) as srv:
        text = compare_adapter(srv.url, response='score = "/score"')
        res, _ = run(lfw, tmp_path, text, "steady", sentinels=3, repeats=4)
        assert res.flags == ()
        srv.config.drift_after = srv.state.n + len(lfw["pairs"]) // 2
        res, _ = run(lfw, tmp_path, text, "drift", sentinels=3, repeats=4)
    assert res.flags and {f.code for f in res.flags} == {"sentinel_changed"}
    for f in res.flags:
        assert f.params["then"]["score"] == pytest.approx(f.params["first"]["score"] + 0.01)
    assert res.provenance["flags"][0]["code"] == "sentinel_changed"
    assert res.provenance["sentinels"] == {"count": 3, "repeats": 4}


def _cli(args, env_extra, **kw):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "faceaudit.query.command", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _args(lfw, adapter, name, tmp):
    return [
        "--adapter",
        adapter,
        "--plan",
        lfw["plan"],
        "--images",
        lfw["images"],
        "--journal",
        tmp / f"{name}.sqlite",
        "--out",
        tmp / f"{name}.parquet",
    ]


def _responses(journal: Path) -> int:
    try:
        with sqlite3.connect(journal, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_run_and_resume_is_byte_identical(lfw, tmp_path):
    n_sent = len(lfw["pairs"]) + 2 * 3
    with serve(lfw, delay_s=0.01) as srv:
        adapter = tmp_path / "vendor.toml"
        adapter.write_text(compare_adapter(srv.url, response='score = "/score"', rate=200, concurrency=4))
        proc = _cli(_args(lfw, adapter, "killed", tmp_path), ENV)
        deadline = time.monotonic() + 120
        while _responses(tmp_path / "killed.sqlite") < 40:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_at_kill = _responses(tmp_path / "killed.sqlite")
        assert done_at_kill < n_sent
        out, err = _cli(_args(lfw, adapter, "killed", tmp_path), ENV).communicate(timeout=300)
        assert err == b"", err
        sent_by_kill_and_resume = srv.state.by_path["/compare"]
        out, err = _cli(_args(lfw, adapter, "clean", tmp_path), ENV).communicate(timeout=300)
        assert err == b""
    # every request sent once, except those in flight at the kill (at most `concurrency`)
    assert n_sent <= sent_by_kill_and_resume <= n_sent + 4
    for a, b in (("killed.parquet", "clean.parquet"), ("killed.outcomes.parquet", "clean.outcomes.parquet")):
        assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes()


def test_the_token_is_in_no_file_and_no_output(lfw, tmp_path):
    with serve(lfw) as srv:
        adapter = tmp_path / "vendor.toml"
        adapter.write_text(compare_adapter(srv.url, response='score = "/score"'))
        good = _cli(_args(lfw, adapter, "ok", tmp_path), ENV).communicate(timeout=300)
        wrong = "sk-wrong-0123456789abcdef0123456789"
        bad = _cli(_args(lfw, adapter, "bad", tmp_path), {"FA_TEST_TOKEN": wrong})
        bad_out = bad.communicate(timeout=300)
        assert bad.returncode == 2 and b"VendorStatusError" in bad_out[1] and b"401" in bad_out[1]
        assert b"auth token redacted" in bad_out[1]  # the server echoed the token; the message does not
        unset = _cli(_args(lfw, adapter, "unset", tmp_path), {"FA_TEST_TOKEN": ""}).communicate(timeout=300)
        assert b"AuthError" in unset[1] and b"FA_TEST_TOKEN" in unset[1]
    assert (tmp_path / "ok.parquet").exists()
    blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()] + [*good, *bad_out, *unset]
    assert any(b"FA_TEST_TOKEN" in b for b in blobs)  # the variable's name is recorded ...
    for blob in blobs:  # ... its value never, nor the wrong one
        assert TOKEN.encode() not in blob and wrong.encode() not in blob
