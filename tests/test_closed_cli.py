"""The closed-system commands end to end: plan -> the system's answers -> audit with claims; candidates."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from faceaudit.cli import app
from faceaudit.commands.closed import is_closed_result_file

runner = CliRunner()


def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _samples(tmp_path, n_subjects=60):
    rng = np.random.default_rng(0)
    rows = []
    for s in range(n_subjects):
        for k in range(int(rng.integers(1, 5))):
            rows.append([f"0{s:03d}_{k}", f"00{s}", "female" if s % 2 else "male"])
    return write_rows(tmp_path / "samples.csv", ["sample_id", "subject_id", "sex"], rows), rows


def test_plan_then_audit_with_claims(tmp_path):
    samples, rows = _samples(tmp_path)
    out = tmp_path / "plan.parquet"
    r = runner.invoke(
        app,
        [
            "plan",
            "--samples",
            str(samples),
            "--group",
            "sex",
            "--claim-fmr",
            "0.02",
            "--claim-fnmr",
            "0.2",
            "--power",
            "0.8",
            "--rate",
            "5",
            "--out",
            str(out),
            "--seed",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "total requests" in r.output and "hours" in r.output
    table = pq.read_table(out)
    assert table.column("probe").to_pylist()[0].startswith("0")  # ids as written, leading zeros kept
    # the "system" answers: matches for every mated pair but one, and for 1 in 100 non-mated pairs
    mated = table.column("mated").to_pylist()
    words = ["match" if m else "no-match" for m in mated]
    words[mated.index(True)] = "no-match"
    for i in range(0, len(words), 100):
        if not mated[i]:
            words[i] = "match"
    results = write_rows(
        tmp_path / "results.csv",
        ["probe", "reference", "decision"],
        zip(table.column("probe").to_pylist(), table.column("reference").to_pylist(), words),
    )
    assert is_closed_result_file(results)
    r = runner.invoke(
        app,
        [
            "audit",
            "--scores",
            str(results),
            "--samples",
            str(samples),
            "--group",
            "sex",
            "--claim",
            "fmr<=0.02 per group",
            "--claim",
            "fnmr<=0.2 per group",
            "--bootstrap",
            "20",
            "--json",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["kind"] == "decision" and doc["points"][0]["source"] == "system_decision"
    verdicts = doc["claims"]["verdicts"]
    assert {v["group"] for v in verdicts} == {"female", "male"}
    assert all(v["verdict"] in ("pass", "fail", "not_enough_data") for v in verdicts)
    assert "PASS" in r.output or "NOT ENOUGH DATA" in r.output


def test_named_errors_exit_2(tmp_path):
    samples, rows = _samples(tmp_path)
    bad = write_rows(
        tmp_path / "bad.csv", ["probe", "reference", "decision"], [[rows[0][0], rows[1][0], "perhaps"]]
    )
    r = runner.invoke(app, ["audit", "--scores", str(bad), "--samples", str(samples)])
    assert r.exit_code == 2 and "DecisionWordError" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["audit", "--scores", str(bad), "--samples", str(samples), "--claim", "fmr<1"])
    assert r.exit_code == 2 and "ClaimError" in r.output
    r = runner.invoke(app, ["plan", "--samples", str(samples), "--out", str(tmp_path / "p.parquet")])
    assert r.exit_code == 2 and "InputError" in r.output


def test_identify_candidates(tmp_path):
    samples, rows = _samples(tmp_path, 30)
    ids = [r[0] for r in rows]
    gallery = write_rows(tmp_path / "g.csv", ["sample_id"], [[i] for i in ids[::2]])
    lines = []
    for p in ids[1::2]:
        enrolled = [g for g in ids[::2]][:3]
        for k, c in enumerate(enrolled, start=1):
            lines.append([f"q{p}", p, k, c, 0.9 - 0.1 * k])
    cands = write_rows(tmp_path / "c.csv", ["search_id", "probe", "rank", "candidate", "score"], lines)
    r = runner.invoke(
        app,
        [
            "identify",
            "--candidates",
            str(cands),
            "--gallery",
            str(gallery),
            "--samples",
            str(samples),
            "--list-length",
            "3",
            "--threshold",
            "0.75",
            "--rank",
            "1,3",
            "--bootstrap",
            "0",
            "--json",
            str(tmp_path / "i.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "i.json").read_text())
    assert doc["source"]["kind"] == "candidate_lists"
    assert doc["protocol"].startswith("candidate lists")
    r = runner.invoke(
        app,
        [
            "identify",
            "--candidates",
            str(cands),
            "--gallery",
            str(gallery),
            "--samples",
            str(samples),
            "--list-length",
            "2",
        ],
    )
    assert r.exit_code == 2 and "ListTooLongError" in r.output


def test_score_audit_with_claims_and_a_censored_file(tmp_path):
    samples, rows = _samples(tmp_path, 80)
    ids = [r[0] for r in rows]
    subj = {r[0]: r[1] for r in rows}
    rng = np.random.default_rng(5)
    lines = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            mated = subj[ids[a]] == subj[ids[b]]
            lines.append([ids[a], ids[b], float(rng.normal(3 if mated else 0, 1))])
    scores = write_rows(tmp_path / "scores.csv", ["probe", "reference", "score"], lines)
    r = runner.invoke(
        app,
        [
            "audit",
            "--scores",
            str(scores),
            "--samples",
            str(samples),
            "--group",
            "sex",
            "--fmr",
            "1e-2",
            "--bootstrap",
            "0",
            "--claim",
            "fmr<=0.01 per group",
            "--claim",
            "fnmr<=0.5 per group at fmr=1e-2",
            "--json",
            str(tmp_path / "a.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["schema"] == "faceaudit.audit" and len(doc["claims"]["verdicts"]) == 4
    from faceaudit.report.html import render_html

    page = render_html(doc)
    assert page.count('<tr class="verdict-') == 4 and "Claims checked" in page
    del doc["claims"]
    assert "Claims checked" not in render_html(doc)
    assert "claims (pass when the upper bound" in r.output
    censored = write_rows(
        tmp_path / "censored.csv",
        ["probe", "reference", "score"],
        [[a, b, repr(s) if s >= 1.0 else ""] for a, b, s in lines],
    )
    r = runner.invoke(
        app,
        [
            "audit",
            "--scores",
            str(censored),
            "--samples",
            str(samples),
            "--censored-below",
            "1.0",
            "--threshold",
            "1.5",
            "--bootstrap",
            "0",
            "--json",
            str(tmp_path / "c.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["kind"] == "censored" and doc["points"][0]["threshold"] == 1.5
    nm = [s for a, b, s in lines if subj[a] != subj[b]]
    assert doc["points"][0]["overall"]["fmr"]["count"] == sum(s >= 1.5 for s in nm)
    r = runner.invoke(
        app,
        [
            "audit",
            "--scores",
            str(censored),
            "--samples",
            str(samples),
            "--censored-below",
            "1.0",
            "--threshold",
            "0.5",
            "--bootstrap",
            "0",
        ],
    )
    assert r.exit_code == 2 and "BelowCensoringError" in r.output
