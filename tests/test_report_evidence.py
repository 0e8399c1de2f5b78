"""Evidence (likelihood ratios) in the audit report: evidence documents attached to the audit document
(schema 1.3, ``audit --evidence`` / ``report --evidence``), only when calibrated on the audit's own .fadist
file; rendered in the audit's page with the evidence sheet's charts; the numbers in the page equal the
evidence JSON, hostile labels are text; bad evidence files are named errors (hypothesis included), and a
page without evidence is what it was before.

Browser tests drive Debian's Chromium through Playwright, as tests/test_report.py does.
"""

from __future__ import annotations

import json
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_evidence_schema import trim
from test_report import _open, chromium_context
from typer.testing import CliRunner

from faceaudit.cli import app
from faceaudit.compare.store import save_distributions
from faceaudit.evidence.synthetic import gaussian_calibration_set
from faceaudit.report.evidence import (
    EvidenceFileError,
    EvidenceMismatchError,
    attach_evidence,
    chart_specs,
    evidence_consistency,
    read_evidence,
)
from faceaudit.report.html import render_html
from faceaudit.report.jsonout import read_json, write_json
from faceaudit.report.schema import validate_document, validate_evidence_document

RUN = CliRunner()
#: a group label as an input file may carry it (no '=' or ',': it must survive `--group sex=...`)
HOSTILE = "<script>alert('x')</script>&amp;\u2028"


def _invoke(*args):
    return RUN.invoke(app, [str(a) for a in args])


def _ok(*args):
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def _refused(error: str, *args):
    res = _invoke(*args)
    assert res.exit_code == 2, res.output
    assert error in res.output, res.output
    assert "Traceback" not in res.output
    return " ".join(res.output.split())  # the message as one line (rich wraps it to the terminal)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A .fadist whose groups are 'male' and a hostile label; the same scores in another file; an audit of the
    first; two evidence documents of it (one with a score and intervals, one PAV without) and one of the other
    file."""
    d = tmp_path_factory.mktemp("evidence-report")
    dist, _ = gaussian_calibration_set(60, seed=21, tail_quantile=0.8, bins=64, rename={"female": HOSTILE})
    fadist = save_distributions(dist, d / "d.fadist")
    dist.meta["note"] = "another run"  # the same scores, another file: its evidence is not this one's
    other = save_distributions(dist, d / "other.fadist")
    ev = ["evidence", "--calibration", fadist, "--folds", 3, "--quiet"]
    _ok(*ev, "--score", 1.0, "--group", f"sex={HOSTILE}", "--bootstrap", 10, "--json", d / "e1.json",
        "--report", d / "e1.html")
    _ok(*ev, "--by", "sex", "--method", "pav", "--bootstrap", 0, "--json", d / "e2.json")
    _ok("evidence", "--calibration", other, "--folds", 3, "--bootstrap", 0, "--quiet", "--json",
        d / "mismatch.json")
    audit = ["audit", "--distributions", fadist, "--group", "sex", "--bootstrap", 10, "--fmr", 0.01,
             "--quiet"]
    _ok(*audit, "--json", d / "plain.json", "--report", d / "plain.html")
    _ok(*audit, "--evidence", d / "e1.json", "--evidence", d / "e2.json", "--json", d / "result.json",
        "--report", d / "audit.html")
    return {"dir": d, "fadist": fadist, "doc": read_json(d / "result.json"),
            "plain": read_json(d / "plain.json"), "e1": read_json(d / "e1.json"),
            "e2": read_json(d / "e2.json")}


# ---------------------------------------------------------------------------- documents and commands


def test_evidence_goes_into_the_audit_document(made):
    doc, d = made["doc"], made["dir"]
    assert doc["schema_version"] == "1.3" and made["plain"]["schema_version"] == "1.2"
    validate_document(doc)
    got = doc["evidence"]
    assert [g["source"]["path"] for g in got] == [str(d / "e1.json"), str(d / "e2.json")]
    for g, e in zip(got, (made["e1"], made["e2"])):
        assert {k: v for k, v in g.items() if k != "source"} == e  # carried whole, every key
        validate_evidence_document(e)
        # calibrated on the audit's own file, by hash
        audited = doc["manifest"]["inputs"]["distributions"]["sha256"]
        assert e["provenance"]["calibration"]["sha256"] == audited
        assert evidence_consistency(doc, e)["status"] == "verified"
    # the evidence and the audit count the same comparisons
    assert made["e1"]["system"]["n_mated"] == doc["counts"]["mated"]
    assert made["e1"]["system"]["n_nonmated"] == doc["counts"]["nonmated"]
    # everything else is the plain audit's
    assert {k: v for k, v in doc.items() if k not in ("evidence", "schema_version")} == {
        k: v for k, v in made["plain"].items() if k != "schema_version"}


def test_report_equals_audit_report_byte_for_byte(made):
    d = made["dir"]
    _ok("report", d / "result.json", "--out", d / "again.html")
    assert (d / "again.html").read_bytes() == (d / "audit.html").read_bytes()
    # the same evidence added afterwards to the audit's own JSON: the same document and page (e1 given twice
    # is attached once)
    _ok("report", d / "plain.json", "--evidence", d / "e1.json", "--evidence", d / "e2.json",
        "--evidence", d / "e1.json", "--json", d / "combined.json", "--out", d / "later.html")
    assert read_json(d / "combined.json") == made["doc"]
    assert (d / "later.html").read_bytes() == (d / "audit.html").read_bytes()
    # an evidence document's own page: `evidence --report` and `report e1.json` agree
    _ok("report", d / "e1.json", "--out", d / "e1-again.html")
    assert (d / "e1-again.html").read_bytes() == (d / "e1.html").read_bytes()


def test_a_page_without_evidence_carries_nothing_of_it(made):
    plain = (made["dir"] / "plain.html").read_text()
    assert 'id="evidence"' not in plain and "faceaudit-charts" not in plain
    with_ev = (made["dir"] / "audit.html").read_text()
    csp = [ln for ln in with_ev.splitlines() if "Content-Security-Policy" in ln][0]
    plain_csp = [ln for ln in plain.splitlines() if "Content-Security-Policy" in ln][0]
    assert csp.count("&#39;sha256-") == plain_csp.count("&#39;sha256-") + 1  # the evidence script, by hash
    assert render_html(made["plain"]) == plain


def test_older_audit_documents_take_evidence_and_move_to_1_3(made, tmp_path):
    for version in ("1.0", "1.2"):
        old = json.loads(json.dumps(made["plain"]))
        old["schema_version"] = version
        write_json(old, tmp_path / "old.json")
        _ok("report", tmp_path / "old.json", "--evidence", made["dir"] / "e2.json",
            "--json", tmp_path / "new.json", "--out", tmp_path / "new.html")
        new = read_json(tmp_path / "new.json")
        assert new["schema_version"] == "1.3" and len(new["evidence"]) == 1
        validate_document(new)
    # a document carrying evidence under a version before 1.3 breaks the schema
    stale = dict(made["doc"], schema_version="1.2")
    with pytest.raises(Exception, match="schema_version"):
        validate_document(stale)


def test_evidence_of_other_data_is_refused(made, tmp_path):
    d = made["dir"]
    common = ["--distributions", made["fadist"], "--group", "sex", "--bootstrap", 0, "--quiet"]
    _refused("EvidenceMismatchError", "audit", *common, "--evidence", d / "mismatch.json")
    _refused("EvidenceMismatchError", "report", d / "plain.json", "--evidence", d / "mismatch.json",
             "--out", tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()
    # an audit document edited to carry evidence of other data is refused too
    edited = json.loads(json.dumps(made["doc"]))
    edited["evidence"][0]["provenance"]["calibration"]["sha256"] = "0" * 64
    write_json(edited, tmp_path / "edited.json")
    _refused("EvidenceMismatchError", "report", tmp_path / "edited.json", "--out", tmp_path / "y.html")


def test_without_hashes_the_counts_decide(made, tmp_path):
    """An audit run from a score file records no .fadist: the evidence is shown as not verified when the
    comparison counts agree, and refused when they do not."""
    doc = json.loads(json.dumps(made["plain"]))
    del doc["manifest"]["inputs"]["distributions"]
    c = evidence_consistency(doc, made["e1"])
    assert c["status"] == "unverified" and "Not verified" in c["detail"] and "cannot check" in c["detail"]
    attach_evidence(doc, [made["dir"] / "e1.json"])
    page = render_html(doc)
    assert 'data-status="unverified"' in page and "Not verified" in page
    other = json.loads(json.dumps(made["e1"]))
    other["system"]["n_mated"] += 1
    write_json(other, tmp_path / "other.json")
    with pytest.raises(EvidenceMismatchError, match="same-person"):
        attach_evidence(json.loads(json.dumps(made["plain"])) | {"manifest": {}}, [tmp_path / "other.json"])


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content, what",
    [
        ("{not json", "not JSON"),
        ('{"schema": "faceaudit.evidence/1", "x": NaN}', "not JSON"),
        ('{"schema": "faceaudit.evidence/1", "x": 1e999}', "not JSON"),
        ('["faceaudit.evidence/1"]', "not a faceaudit evidence document"),
        ('{"schema": "faceaudit.scenario", "schema_version": "1.0"}', "scenario"),
        ('{"schema": "faceaudit.evidence/1"}', "breaks its schema"),
    ],
)
def test_bad_evidence_files_are_named_before_the_audit_runs(made, tmp_path, content, what):
    bad = _write(tmp_path / "bad.json", content)
    res = _refused("EvidenceFileError", "audit", "--distributions", made["fadist"], "--group", "sex",
                   "--bootstrap", 0, "--evidence", bad, "--json", tmp_path / "out.json")
    assert what in res
    assert not (tmp_path / "out.json").exists()
    _refused("EvidenceFileError", "report", made["dir"] / "plain.json", "--evidence", bad)
    _refused("EvidenceFileError", "audit", "--distributions", made["fadist"], "--evidence",
             tmp_path / "missing.json")


def test_plot_arrays_that_do_not_fit_together_are_refused(made, tmp_path):
    bad = json.loads(json.dumps(made["e1"]))
    bad["validation"]["plots"]["tippett"]["mated"].pop()  # the schema cannot say "as long as log10_lr"
    validate_evidence_document(bad)
    with pytest.raises(EvidenceFileError, match="tippett"):
        read_evidence(_write(tmp_path / "short.json", json.dumps(bad)))
    bad = json.loads(json.dumps(made["e2"]))
    bad["groups"][1]["own_log10_lr"].append(0.0)
    with pytest.raises(EvidenceFileError, match="groups/1"):
        read_evidence(_write(tmp_path / "long.json", json.dumps(bad)))


# ---------------------------------------------------------------------------- hostile documents (hypothesis)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@pytest.fixture(scope="module")
def small(made):
    """e1 with every plot array cut short: the same structure, quick to check many times."""
    doc = trim(made["e1"])
    validate_evidence_document(doc)
    return doc, _paths(doc)[1:]


def _mutate(doc, path, action, value):
    doc = json.loads(json.dumps(doc))
    *head, last = path
    target = doc
    for k in head:
        target = target[k]
    if action == "delete" and isinstance(target, dict):
        del target[last]
    elif action == "delete":
        target.pop(last)
    else:
        target[last] = value
    return doc


def _read_attach_render(tmp_path, plain, doc):
    """read_evidence either refuses with a named error or gives a document that attaches and renders."""
    path = _write(tmp_path / "h.json", json.dumps(doc))
    try:
        read_evidence(path)
        audit_doc = attach_evidence(json.loads(json.dumps(plain)), [path])
    except (EvidenceFileError, EvidenceMismatchError):
        return False
    assert 'id="evidence-0"' in render_html(audit_doc)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data(), st.sampled_from(["delete", "replace"]), JSON, st.booleans())
def test_any_damaged_evidence_document_is_refused_or_shown(made, small, tmp_path, data, action, value,
                                                            without_jsonschema):
    """With jsonschema and without it (a core install): a damaged document never ends in a traceback."""
    doc, paths = small
    path = data.draw(st.sampled_from(paths))
    bad = _mutate(doc, path, action, value)
    if without_jsonschema:
        with mock.patch("faceaudit.report.schema._check", lambda *a, **k: None):
            _read_attach_render(tmp_path, made["plain"], bad)
    else:
        _read_attach_render(tmp_path, made["plain"], bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_file_is_an_evidence_document_or_a_named_error(tmp_path, raw):
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    with pytest.raises(EvidenceFileError):
        read_evidence(path)


def test_mutation_harness_accepts_the_undamaged_document(made, small, tmp_path):
    doc, _ = small
    assert _read_attach_render(tmp_path, made["plain"], doc)  # the harness can say yes


# ---------------------------------------------------------------------------- the panel in Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    yield from chromium_context(tmp_path_factory)


def _cells(page, selector):
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel)).map(td => ({field: td.dataset.field,
        value: td.dataset.value, low: td.dataset.low, high: td.dataset.high,
        text: td.textContent.trim()}))""",
        selector,
    )


def _same(cell, estimate):
    """A cell shows the document's estimate: its attributes are the JSON numbers exactly, its text the value
    to 3 significant digits and, with an interval, the interval."""
    for key in ("value", "low", "high"):
        want = estimate[key]
        assert (cell[key] == "") if want is None else (float(cell[key]) == want), (cell, estimate)
    if estimate["value"] is None:
        assert cell["text"] == "not measured"
        return
    shown = float(cell["text"].split()[0])
    assert shown == pytest.approx(estimate["value"], rel=5e-3, abs=1e-12)
    if estimate["low"] is not None:
        assert f"{round(estimate['level'] * 100)}% interval" in cell["text"]


def test_panel_in_chromium(browser, made, tmp_path):
    d = made["dir"]
    page, problems = _open(browser, d / "audit.html")
    page.wait_for_selector("body[data-evidence-ready]", timeout=60_000)
    errors = page.evaluate("window.faceaudit.state.errors")
    assert page.get_attribute("body", "data-evidence-ready") == "1", errors
    assert problems == [] and page.evaluate("window.faceaudit.state.errors") == []
    page.screenshot(path=str(tmp_path / "evidence.png"), full_page=True)

    for k, ev in enumerate(made["doc"]["evidence"]):
        art = f"#evidence-{k}"
        assert page.get_attribute(f"{art} .consistency", "data-status") == "verified"
        # plain words first: the document's own sentences, in order, before any table
        words = page.locator(f"{art} p.evidence-words:not(.group-words)").all_text_contents()
        assert [w.strip() for w in words] == ev["summary"]
        # every chart is drawn, with marks, from the specs built from this document
        specs = chart_specs(ev, f"evidence-{k}-")
        assert set(specs) == {f"evidence-{k}-chart-{c}" for c in ("tippett", "ece", "pav", "groups")}
        drawn = page.evaluate("window.faceaudit.evidenceSpecs")
        for chart, spec in specs.items():
            assert page.locator(f"#{chart} svg").count() == 1
            series = len({r[spec["layer"][0]["encoding"]["color"]["field"]] for r in spec["data"]["values"]})
            assert page.locator(f"#{chart} svg .mark-line path").count() == series >= 2
            assert drawn[chart]["data"]["values"] == spec["data"]["values"]
        # the numbers are the document's
        m = ev["validation"]["measures"]
        for key in ("cllr", "cllr_min", "cllr_cal", "devpav", "nonmated_above_1", "mated_below_1"):
            (cell,) = _cells(page, f"{art}-measures tr[data-measure={key}] td.est")
            _same(cell, m[key])
        for c in ev["matrix"]:
            (cell,) = _cells(page, f"{art}-matrix tr[data-metric={c['metric']}] td.est")
            _same(cell, c["value"])
            status = f"{art}-matrix tr[data-metric={c['metric']}] td.status"
            assert page.get_attribute(status, "data-status") == c["status"]
        for g in ev["groups"]:
            for system in ("pooled", "own"):
                sel = f"{art}-groups tr[data-system={system}]"
                rows = page.locator(sel).all()
                row = next(r for r in rows if r.get_attribute("data-group") == g["group"])
                for key in ("cllr", "cllr_min", "cllr_cal", "nonmated_above_1", "mated_below_1"):
                    cell = row.locator(f"td.est[data-field={key}]")
                    _same({"value": cell.get_attribute("data-value"), "low": cell.get_attribute("data-low"),
                           "high": cell.get_attribute("data-high"), "text": cell.text_content().strip()},
                          g[system]["measures"][key])

    # the LR of the score, pooled and for the (hostile) group
    st_ = made["doc"]["evidence"][0]["statement"]
    for system, key in (("group", "group_log10_lr"), ("pooled", "pooled_log10_lr")):
        (cell,) = _cells(page, f"#evidence-0-lr tr[data-system={system}] td.est")
        _same(cell, st_[key])
        lr = page.get_attribute(f"#evidence-0-lr tr[data-system={system}] td[data-field=lr]", "data-value")
        assert float(lr) == pytest.approx(10 ** st_[key]["value"], rel=1e-12)
    assert float(page.get_attribute("#evidence-0-lr tr[data-system=group] td[data-field=lr]", "data-value")) \
        == pytest.approx(st_["lr"], rel=1e-12)
    assert page.locator("#evidence-0 .verbal").text_content() == st_["verbal"]["sentence"]

    # the hostile label is text wherever it appears, never markup
    label = f"sex = {HOSTILE}"
    assert page.locator(f'#evidence-1 p.group-words[data-group="{label}"]').count() == 1
    headers = page.locator("#evidence-1-groups th[rowspan]").all_text_contents()
    assert label in headers
    assert HOSTILE in page.locator("#evidence-0-lr tr[data-system=group] th").text_content()
    assert page.locator("#evidence script, #evidence img").count() == 0
    assert problems == []
