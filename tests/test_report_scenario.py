"""The operational scenario in the report: attached to the audit document (schema 1.1), rendered in the
audit's page and on a page of its own, the numbers in the page equal to the scenario's JSON, flags
shown, hostile labels as text, tied to the threshold control; bad scenario files are named errors.

Browser tests drive Debian's Chromium through Playwright, as tests/test_report.py does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_report import HOSTILE, _open, chromium_context
from typer.testing import CliRunner

from faceaudit.audit import audit
from faceaudit.cli import app
from faceaudit.compare import compare_embeddings
from faceaudit.compare.store import save_distributions
from faceaudit.measures.identification import ProbeTails
from faceaudit.report.document import PLAIN_SCHEMA_VERSION, at_json
from faceaudit.report.html import render_html
from faceaudit.report.jsonout import read_json, write_json
from faceaudit.report.scenarios import fmt_expected, fmt_prob
from faceaudit.report.schema import validate_document, validate_scenario_document
from faceaudit.scores import SampleIndex

RUN = CliRunner()


def _invoke(*args):
    return RUN.invoke(app, [str(a) for a in args])


def _ok(*args):
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A .fadist with a hostile group label and a group too small to support a figure; an audit of it;
    two scenarios (one at a threshold the page's control can reach, one from a false-match budget)."""
    d = tmp_path_factory.mktemp("scenario-report")
    rng = np.random.default_rng(7)
    S, per, dim = 240, 4, 48
    subj = np.repeat(np.arange(S), per)
    sex = np.where(subj % 3 == 0, HOSTILE, "male")
    race = np.where(subj < 10, "rare", "common")
    emb = rng.normal(size=(S, dim))[subj] + 0.9 * rng.normal(size=(subj.size, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj, {"sex": sex, "race": race})
    dist = compare_embeddings(emb.astype(np.float32), samples, backend="numpy", top_k=20, progress=False)
    fadist = save_distributions(dist, d / "d.fadist")
    # the same scores, another file: a scenario of it must not pass as this one's
    dist.meta["note"] = "another run"
    other = save_distributions(dist, d / "other.fadist")

    # the audit alone first: its page's exact region decides which threshold the control can reach
    _ok("audit", "--distributions", fadist, "--group", "sex", "--bootstrap", 10, "--json", d / "plain.json",
        "--quiet")
    plain = read_json(d / "plain.json")
    exact_from = float(plain["distributions"]["exact_from"])
    tails = ProbeTails.from_distributions(dist)
    top = np.sort(tails.top_score())
    # an observed score, in the exact region
    t1 = float(top[np.searchsorted(top, max(np.quantile(top, 0.9), exact_from))])
    assert t1 >= exact_from

    common = ["--distributions", fadist, "--searches", 100000, "--gallery", 1e6, "--mated-share", 0.3,
              "--bootstrap", 10, "--quiet"]
    _ok("scenario", *common, "--threshold", repr(t1), "--mix", f"sex={HOSTILE}:0.3,male:0.7",
        "--json", d / "s1.json", "--report", d / "s1.html")
    _ok("scenario", *common, "--max-false-matches", 5, "--mix", "race=rare:0.2,common:0.8",
        "--json", d / "s2.json")
    _ok("scenario", *common, "--threshold", repr(t1), "--json", d / "other.json")
    _ok("scenario", "--distributions", other, "--searches", 1000, "--gallery", 1e4, "--threshold", repr(t1),
        "--bootstrap", 0, "--quiet", "--json", d / "mismatch.json")
    _ok("audit", "--distributions", fadist, "--group", "sex", "--bootstrap", 10, "--scenario", d / "s1.json",
        "--scenario", d / "s2.json", "--json", d / "result.json", "--report", d / "audit.html", "--quiet")
    return {"dir": d, "dist": dist, "t1": t1, "exact_from": exact_from,
            "result": audit(dist, groupings=[("sex",)], bootstrap=0),
            "doc": read_json(d / "result.json"), "s1": read_json(d / "s1.json"),
            "s2": read_json(d / "s2.json")}


# ---------------------------------------------------------------------------- documents and commands

def test_scenarios_go_into_the_audit_document(made):
    doc, s1, s2 = made["doc"], made["s1"], made["s2"]
    assert doc["schema_version"] == PLAIN_SCHEMA_VERSION == "1.2"  # no evidence: a 1.2 document
    validate_document(doc)
    validate_scenario_document(s1)
    got = doc["scenarios"]
    assert [g["source"]["path"] for g in got] == [str(made["dir"] / "s1.json"), str(made["dir"] / "s2.json")]
    for g, s in zip(got, (s1, s2)):
        assert {k: v for k, v in g.items() if k != "source"} == s  # carried whole, every key
        assert len(g["source"]["sha256"]) == 64
    # the scenario and the audit both name the .fadist they came from: the same file
    h = doc["manifest"]["inputs"]["distributions"]["sha256"]
    assert s1["manifest"]["inputs"]["distributions"]["sha256"] == h
    assert s2["budget"]["max_false_matches"] == 5 and s2["flags"]


def test_report_equals_audit_report_byte_for_byte(made):
    d = made["dir"]
    _ok("report", d / "result.json", "--out", d / "again.html")
    assert (d / "again.html").read_bytes() == (d / "audit.html").read_bytes()
    # the same scenarios added afterwards to the audit's own JSON give the same document and page
    _ok("report", d / "plain.json", "--scenario", d / "s1.json", "--scenario", d / "s2.json",
        "--scenario", d / "s1.json", "--json", d / "combined.json", "--out", d / "later.html")
    assert read_json(d / "combined.json") == made["doc"]  # s1 given twice is attached once
    assert (d / "later.html").read_bytes() == (d / "audit.html").read_bytes()
    # a scenario's own page: `scenario --report` and `report scenario.json` agree
    _ok("report", d / "s1.json", "--out", d / "s1-again.html")
    assert (d / "s1-again.html").read_bytes() == (d / "s1.html").read_bytes()


def test_older_audit_document_is_upgraded_when_a_scenario_is_added(made, tmp_path):
    old = json.loads(json.dumps(made["doc"]))
    del old["scenarios"]
    old["schema_version"] = "1.0"
    write_json(old, tmp_path / "old.json")
    _ok("report", tmp_path / "old.json", "--scenario", made["dir"] / "s1.json",
        "--json", tmp_path / "new.json", "--out", tmp_path / "new.html")
    new = read_json(tmp_path / "new.json")
    assert new["schema_version"] == "1.1" and len(new["scenarios"]) == 1
    validate_document(new)


def test_unverifiable_pairing_is_said_not_hidden(made, tmp_path):
    # an audit run from a score file records no .fadist: the page says it cannot check the pairing
    doc = json.loads(json.dumps(made["doc"]))
    del doc["manifest"]["inputs"]["distributions"]
    del doc["scenarios"]
    write_json(doc, tmp_path / "scores-audit.json")
    _ok("report", tmp_path / "scores-audit.json", "--scenario", made["dir"] / "s1.json",
        "--out", tmp_path / "u.html")
    html = (tmp_path / "u.html").read_text(encoding="utf-8")
    assert 'data-status="unverified"' in html and "Not verified" in html
    assert 'data-status="verified"' in (made["dir"] / "audit.html").read_text(encoding="utf-8")


def _bad_files(made, tmp_path):
    d = made["dir"]
    (tmp_path / "not.json").write_text("{ this is not json")
    ident = {"schema": "faceaudit.identification", "schema_version": "1.0"}
    (tmp_path / "ident.json").write_text(json.dumps(ident))
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    future = dict(made["s1"], schema_version="2.0")
    (tmp_path / "future.json").write_text(json.dumps(future))
    broken = json.loads(json.dumps(made["s1"]))
    broken["by_group"][0].pop("false_matches")
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    return [
        (tmp_path / "missing.json", "ScenarioFileError", "does not exist"),
        (tmp_path / "not.json", "ScenarioFileError", "not JSON"),
        (d / "plain.json", "ScenarioFileError", "faceaudit.audit"),  # an audit given as a scenario
        (tmp_path / "ident.json", "ScenarioFileError", "faceaudit.identification"),
        (tmp_path / "list.json", "ScenarioFileError", "not a faceaudit scenario document"),
        (tmp_path / "future.json", "ScenarioFileError", "2.0"),
        (tmp_path / "broken.json", "ScenarioFileError", "false_matches"),
        (d / "mismatch.json", "ScenarioMismatchError", "not the same data"),
    ]


def test_bad_scenario_files_are_named_errors(made, tmp_path):
    d = made["dir"]
    for path, name, words in _bad_files(made, tmp_path):
        res = _invoke("report", d / "plain.json", "--scenario", path, "--out", tmp_path / "x.html")
        text = " ".join(res.output.split())
        assert res.exit_code == 2, (path, res.output)
        assert name in text and words in text, (path, text)
        assert "Traceback" not in res.output
        assert not (tmp_path / "x.html").exists()


def test_audit_scenario_option_names_bad_files_before_and_after_the_audit(made, tmp_path):
    d = made["dir"]
    for path, name in ((tmp_path / "missing.json", "ScenarioFileError"),
                       (d / "mismatch.json", "ScenarioMismatchError")):
        res = _invoke("audit", "--distributions", d / "d.fadist", "--group", "sex", "--bootstrap", 0,
                      "--quiet", "--scenario", path, "--report", tmp_path / "a.html")
        assert res.exit_code == 2 and name in res.output, res.output
        assert not (tmp_path / "a.html").exists()
    # a scenario document is not an audit to add scenarios to
    res = _invoke("report", d / "s1.json", "--scenario", d / "s2.json")
    assert res.exit_code == 2 and "is a scenario document" in " ".join(res.output.split())


def test_panel_without_browser(made):
    html = (made["dir"] / "audit.html").read_text(encoding="utf-8")
    assert HOSTILE not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert html.count("<script") == 6
    assert "Operational scenarios" in html and 'id="scenario-empty"' not in html
    assert "inputs beyond what the evaluation data can support</strong>" in html  # said in the summary too
    page = render_html(made["s2"])  # the budget scenario on its own page
    assert page.count('<li class="flag">') == len(made["s2"]["flags"])
    assert "Budget of at most 5 expected false matches" in page


# ---------------------------------------------------------------------------- in Chromium

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    yield from chromium_context(tmp_path_factory)


def _panel(page, k):
    return page.evaluate("""k => {
        const el = document.getElementById('scenario-' + k);
        const cell = (tr, f) => tr.querySelector('td[data-field=' + f + ']');
        return {
          rows: Array.from(el.querySelectorAll('tr.scenario-group')).map(tr => ({
            group: tr.dataset.group, header: tr.querySelector('th').textContent,
            value: cell(tr, 'false_matches').dataset.value, text: cell(tr, 'false_matches').textContent,
            fpir: cell(tr, 'fpir').dataset.value, fpirText: cell(tr, 'fpir').textContent,
            low: cell(tr, 'interval').dataset.low, high: cell(tr, 'interval').dataset.high })),
          total: el.querySelector('.expected-total').dataset.value,
          totalText: el.querySelector('.expected-total').textContent,
          low: el.querySelector('.headline .interval').dataset.low,
          high: el.querySelector('.headline .interval').dataset.high,
          naive: el.querySelector('td[data-field=naive]').dataset.value,
          flags: Array.from(el.querySelectorAll('.flags li.flag')).map(li => li.textContent),
          svg: el.querySelectorAll('.vega svg').length,
          svgText: Array.from(el.querySelectorAll('.vega svg text')).map(t => t.textContent) };
    }""", k)


def _check_panel(page, k, scen):
    got = _panel(page, k)
    e = scen["expected"]
    assert float(got["total"]) == e["false_matches"] and got["totalText"] == fmt_expected(e["false_matches"])
    assert float(got["low"]) == e["interval"]["low"] and float(got["high"]) == e["interval"]["high"]
    assert float(got["naive"]) == e["naive_searches_x_n_x_fmr"]
    assert len(got["rows"]) == len(scen["by_group"])
    for row, g in zip(got["rows"], scen["by_group"]):
        assert row["group"] == row["header"] == g["group"]  # a hostile label is text
        assert float(row["value"]) == g["false_matches"] and row["text"] == fmt_expected(g["false_matches"])
        assert float(row["fpir"]) == g["fpir"] and row["fpirText"] == fmt_prob(g["fpir"])
        assert float(row["low"]) == g["interval"]["low"] and float(row["high"]) == g["interval"]["high"]
    assert got["flags"] == scen["flags"]
    assert got["svg"] == 1
    for g in scen["by_group"]:
        assert g["group"] in got["svgText"]  # the chart's axis labels are text too
    return got


def test_panel_in_chromium(browser, made, tmp_path):
    d, doc = made["dir"], made["doc"]
    page, problems = _open(browser, d / "audit.html")
    for k, scen in enumerate(doc["scenarios"]):
        _check_panel(page, k, scen)
    # the flags are prominent: visible, and counted in the summary
    flags = page.locator("#scenario-1 .flags li.flag")
    assert flags.count() == len(made["s2"]["flags"]) > 0
    for i in range(flags.count()):
        assert flags.nth(i).is_visible()
    total_flags = sum(len(s["flags"]) for s in doc["scenarios"])
    flag_count = " ".join(page.text_content(".scenario-flag-count").split())
    assert flag_count.startswith(f"{total_flags} warnings there flag inputs")
    assert page.evaluate("document.querySelectorAll('script').length") == 6  # no label became a script
    page.locator("#scenario").screenshot(path=str(tmp_path / "scenario-panel.png"))

    # tied to the threshold control: the button moves it to the scenario's threshold, exactly
    t1 = made["t1"]
    button = page.locator("#scenario-0 button.scenario-threshold")
    assert button.is_visible() and button.is_enabled()
    assert page.get_attribute("#scenario-0", "data-control") == "away"
    button.click()
    page.wait_for_function(f"Number(document.getElementById('thr-value').dataset.threshold) === {t1!r}")
    assert page.get_attribute("#scenario-0", "data-control") == "at"
    assert "at this scenario's threshold" in page.text_content("#scenario-0 .scenario-state")
    at = at_json(made["result"].at(t1))
    want = {e["group"]: e for e in at["groups"]}
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('tr[data-grouping=sex]')).map(tr => ({
        group: tr.dataset.group, fmr: Number(tr.querySelector('td[data-rate=fmr]').dataset.count),
        fnmr: Number(tr.querySelector('td[data-rate=fnmr]').dataset.count) }))""")
    assert {r["group"] for r in rows} == set(want) and HOSTILE in want
    for r in rows:
        assert want[r["group"]]["exact"]
        assert (r["fmr"], r["fnmr"]) == (want[r["group"]]["fmr"]["count"], want[r["group"]]["fnmr"]["count"])
    # the scenario's numbers did not move with the control; moving away says so
    _check_panel(page, 0, doc["scenarios"][0])
    page.evaluate("window.faceaudit.setIndex(0)")
    assert page.get_attribute("#scenario-0", "data-control") == "away"
    assert "do not follow the control" in page.text_content("#scenario-0 .scenario-state")
    # the budget scenario's button exists only where the control can stop at its threshold
    t2 = made["s2"]["inputs"]["threshold"]
    assert page.locator("#scenario-1 button.scenario-threshold").is_visible() == (t2 >= made["exact_from"])
    page.locator("#scenario").screenshot(path=str(tmp_path / "scenario-panel-after.png"))
    assert page.evaluate("window.faceaudit.state.errors") == []
    assert problems == []
    page.close()


def test_scenario_page_in_chromium(browser, made, tmp_path):
    page, problems = _open(browser, made["dir"] / "s1.html")
    _check_panel(page, 0, made["s1"])
    assert page.locator("button.scenario-threshold").count() == 0  # no control on the scenario's own page
    assert "computed from the score distributions" in page.text_content(".consistency")
    page.screenshot(path=str(tmp_path / "scenario-page.png"), full_page=True)
    assert page.evaluate("window.faceaudit.state.errors") == []
    assert problems == []
    page.close()
